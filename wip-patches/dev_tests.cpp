
// ---- device walkers (dev) ----------------------------------------------------

// A dev write to page 0 of a block whose page 3 another CPU dirtied: the
// handler's ptep_set_access_flags must make page 0 itself writable-dirty.
// Upstream (the per-entry no-op check) does; the check before Linux's fix
// (the gathered ptep_get compared with the new entry, our test hook) sees
// "already dirty and young" and returns without touching page 0, so the
// device faults again for the same reason: fault_loop.
ExploreResult explore_dev_after_sibling_dirty(bool prefix_check) {
  PhysMem mem(Granule::k4K, std::uint64_t{64} << 20);
  BuddyAllocator buddy(mem);
  PageTable pt(mem);
  Features feat;
  feat.test_gathered_access_flags_check = prefix_check;
  SimEnv env(mem, pt, feat);
  const VirtAddr base{0x40000000};
  const PteSlot first = *pt.pte_slot(base, true);
  set_ptes(env, base, first, pte_mkyoung(pfn_pte(*buddy.alloc_folio(4), prot::kPageShared, 12)), 16);
  Pte* p3 = first.ptr() + 3;
  *p3 = clear_pte_bit(*p3, bits::kRdonly);  // hardware dirtied page 3 (DBM)
  Checker chk(mem.geometry(), false);
  ExploreSetup s;
  s.source = "t.cpt";
  s.mem = &mem;
  s.pt = &pt;
  s.features = feat;
  s.checker = &chk;
  ExploreBranch d;
  d.kind = ExploreBranch::Kind::Hw;
  d.device = true;
  d.access = MemAccess::Write;
  d.va = base;
  d.line = 7;
  d.label = "dev write 0x40000000";
  s.branches.push_back(d);
  ExploreBranch h;  // and another CPU reads page 9 meanwhile
  h.kind = ExploreBranch::Kind::Hw;
  h.access = MemAccess::Read;
  h.va = base + 0x9000;
  h.label = "hw read 0x40009000";
  s.branches.push_back(h);
  Explorer x(std::move(s));
  return x.explore(100000);
}

TEST(ExploreDev, TheGatheredNoOpCheckMakesADeviceFaultForever) {
  const ExploreResult fixed = explore_dev_after_sibling_dirty(false);
  EXPECT_TRUE(fixed.exhausted);
  EXPECT_FALSE(fixed.failed()) << fixed.failures.front().verdict;
  ASSERT_EQ(fixed.outcomes.size(), 2u);
  EXPECT_TRUE(fixed.outcomes[0].always_completed());

  const ExploreResult loop = explore_dev_after_sibling_dirty(true);
  ASSERT_TRUE(loop.failed());
  EXPECT_EQ(rules(loop), std::vector<std::string>{"fault_loop"});
  EXPECT_EQ(loop.failures[0].verdict,
            "fault_loop at 0x40000000: dev write 0x40000000 faulted again (permission fault (read-only)) after its "
            "fault handler ran (ptep_set_access_flags) and left the PTE unchanged: a walker without hardware A/D "
            "updates would fault forever");
  EXPECT_EQ(loop.outcomes[0].faulted, loop.executions);
  EXPECT_EQ(loop.outcomes[0].first_fault, "fault_loop: permission fault (read-only)");
}

constexpr std::string_view kDevBlock = R"(granule 4K
contpte upstream
alloc F order=4
set_ptes 0x40000000 F nr=16 prot=rw
write 0x40003000 4K
)";

// `dev` outside parallel blocks: an old, clean PTE faults twice (AF, then
// the write), each handled by ptep_set_access_flags on the whole block.
TEST(ExploreDev, TopLevelDevWriteIsHandledAndCompletes) {
  const RunResult r = run_scenario(parse_scenario(std::string(kDevBlock) + R"(dev write 0x40000000
expect raw 0x40000000 young=1 dirty=1 cont=1
expect violations 0
)",
                                                  "t.cpt"));
  EXPECT_EQ(r.exit_status(), 0) << r.error.value_or("");
  EXPECT_EQ(r.expects_passed, 2u);
}

TEST(ExploreDev, DevWriteToAReadOnlyPteIsAnError) {
  const RunResult r = run_scenario(parse_scenario(R"(granule 4K
alloc F order=0
set_ptes 0x40000000 F nr=1 prot=r young
dev write 0x40000000
)",
                                                  "t.cpt"));
  EXPECT_EQ(r.exit_status(), 1);
  EXPECT_EQ(r.error.value_or(""),
            "t.cpt:4: dev write 0x40000000 in process 0: permission fault (read-only); a write to a PTE without "
            "write permission");
}

TEST(ExploreDev, DevAccessToNoPteIsAnError) {
  const RunResult r = run_scenario(parse_scenario("granule 4K\ndev read 0x50000000\n", "t.cpt"));
  EXPECT_EQ(r.exit_status(), 1);
  EXPECT_EQ(r.error.value_or(""),
            "t.cpt:2: dev read 0x50000000 in process 0: translation fault; no valid PTE and no mapping (a fault on a "
            "non-present PTE)");
}

// In a mapping the memory manager's fault path handles it (AF after reclaim aged it).
TEST(ExploreDev, TopLevelDevInAMappingGoesThroughTheMm) {
  const RunResult r = run_scenario(parse_scenario(R"(granule 4K
mmap A 64K prot=rw
write A 4K
reclaim
expect pte A young=0
dev read A
expect pte A young=1
)",
                                                  "t.cpt"));
  EXPECT_EQ(r.exit_status(), 0) << r.error.value_or("");
  EXPECT_EQ(r.expects_passed, 2u);
}

// In parallel blocks: a dev read racing an aging of the block faults on
// AF=0 where the aging came first, is handled and completes everywhere.
TEST(ExploreDev, DevBranchRacingAgingCompletesInEveryInterleaving) {
  const RunResult r = explore_text(std::string(kDevBlock) + R"(parallel
  engine ptep_clear_flush_young 0x40000000
  dev read 0x40005000
end
)");
  const ExploreResult& x = r.explorations.at(0).result;
  EXPECT_TRUE(x.exhausted);
  EXPECT_FALSE(x.failed()) << printed(r);
  ASSERT_EQ(x.outcomes.size(), 2u);
  EXPECT_TRUE(x.outcomes[1].always_completed()) << printed(r);
  EXPECT_EQ(r.exit_status(), 0);
  EXPECT_NE(printed(r).find("fault handler takes the page-table lock"), std::string::npos);
}

TEST(ExploreDev, BadDevStatementsAreInputErrors) {
  EXPECT_THROW(parse_scenario("dev exec 0x40000000\n", "t.cpt"), ScenarioError);
  EXPECT_THROW(parse_scenario("parallel\n  dev exec 0x40000000\nend\n", "t.cpt"), ScenarioError);
  try {
    parse_scenario("dev exec 0x40000000\n", "t.cpt");
  } catch (const ScenarioError& e) {
    EXPECT_NE(std::string(e.what()).find("t.cpt:1:5: error: unknown device access 'exec'; expected read or write"),
              std::string::npos)
        << e.what();
  }
}
