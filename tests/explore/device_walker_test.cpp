// Device walkers without hardware A/D updates (`dev read|write ADDR`, an
// SMMU without HTTU) and the conformance rule fault_loop (docs/explore.md,
// "Device walkers and `fault_loop`"; docs/design.md rule 7):
// - the engine follows the fixed contpte_ptep_set_access_flags (each entry
//   of the block compared), so the device's access completes; the test hook
//   Features::test_gathered_access_flags_check restores the comparison of
//   the gathered ptep_get that Linux had before "arm64: contpte: fix
//   set_access_flags() no-op check for SMMU/ATS faults", and both `run` and
//   `explore` find the fault_loop;
// - the fault is handled and the access retried, at top level (the PTE-level
//   handler outside mappings, the memory manager's fault path inside) and
//   in every interleaving of a parallel block;
// - a write to a read-only PTE, or a fault on no PTE, is an error of the run
//   (exit 1); a dev branch inside a mapping goes through the memory
//   manager's fault path, one whose fault would map or copy a page is an
//   input error (exit 2);
// - a CPU without FEAT_HAFDBS (hafdbs off) takes its access-flag and
//   dirty-state faults to the same handler and loops the same way;
// - the reduction stays exact with dev branches, whose handler is stepped.

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <regex>
#include <set>
#include <sstream>

#include "engine/pgtable.h"
#include "explore/explorer.h"
#include "hw/page_table.h"
#include "hw/phys_mem.h"
#include "hw/sim_env.h"
#include "mm/buddy.h"
#include "report/explore_report.h"
#include "scenario/pte_statements.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

namespace fs = std::filesystem;
using namespace contpte;

namespace {

fs::path source_dir() { return fs::path(CONTPTE_SOURCE_DIR); }

RunOptions with_hook(bool gathered_check) {
  RunOptions o;
  if (gathered_check) o.test_features = [](Features& f) { f.test_gathered_access_flags_check = true; };
  return o;
}

RunResult run_text(std::string_view text, RunOptions opts = {}) {
  return run_scenario(parse_scenario(text, "t.cpt"), opts);
}
RunResult explore_text(std::string_view text, RunOptions opts = {}) {
  opts.explore_max = 1'000'000;
  return run_scenario(parse_scenario(text, "t.cpt"), opts);
}
fs::path race_file(const char* name) { return source_dir() / "examples/races" / name; }
// An example of examples/races explored exhaustively, with the engine's
// (fixed) comparison or the gathered one it replaced.
RunResult explore_race(const char* name, bool gathered_check) {
  RunOptions o = with_hook(gathered_check);
  o.explore_max = 1'000'000;
  return run_scenario(load_scenario(race_file(name)), o);
}

std::string printed(const RunResult& r) {
  std::ostringstream out;
  print_explorations(out, r);
  return std::regex_replace(out.str(), std::regex(R"(, [0-9.]+ s, [0-9]+/s)"), "");
}

std::vector<std::string> rules(const ExploreResult& x) {
  std::vector<std::string> out;
  for (const auto& f : x.failures) out.push_back(f.rule);
  return out;
}

std::vector<std::string> violation_rules(const RunResult& r) {
  std::vector<std::string> out;
  for (const auto& v : r.violations) out.emplace_back(rule_name(v.rule));
  return out;
}

// ---- the explorer alone --------------------------------------------------

// A dev write to page 0 of a folded block whose page 3 hardware dirtied
// (DBM), racing another CPU's read of page 9. The handler's
// ptep_set_access_flags must make page 0 itself dirty: upstream does; the
// gathered check sees "already dirty and young" and returns.
ExploreResult explore_dev_after_sibling_dirty(bool gathered_check) {
  PhysMem mem(Granule::k4K, std::uint64_t{64} << 20);
  BuddyAllocator buddy(mem);
  PageTable pt(mem);
  Features feat;
  feat.test_gathered_access_flags_check = gathered_check;
  SimEnv env(mem, pt, feat);
  const VirtAddr base{0x40000000};
  const PteSlot first = *pt.pte_slot(base, true);
  set_ptes(env, base, first, pte_mkyoung(pfn_pte(*buddy.alloc_folio(4), prot::kPageShared, 12)), 16);
  Pte* p3 = first.ptr() + 3;
  *p3 = clear_pte_bit(*p3, bits::kRdonly);  // hardware dirtied page 3
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
  ExploreBranch h;
  h.kind = ExploreBranch::Kind::Hw;
  h.access = MemAccess::Read;
  h.va = base + 0x9000;
  h.line = 8;
  h.label = "hw read 0x40009000";
  s.branches.push_back(h);
  Explorer x(std::move(s));
  return x.explore(100'000);
}

TEST(ExploreDev, TheGatheredNoOpCheckMakesADeviceFaultForever) {
  const ExploreResult fixed = explore_dev_after_sibling_dirty(false);
  EXPECT_TRUE(fixed.exhausted);
  EXPECT_FALSE(fixed.failed()) << fixed.failures.front().verdict;
  ASSERT_EQ(fixed.outcomes.size(), 2u);
  EXPECT_TRUE(fixed.outcomes[0].always_completed());

  const ExploreResult loop = explore_dev_after_sibling_dirty(true);
  EXPECT_TRUE(loop.exhausted);
  ASSERT_TRUE(loop.failed());
  EXPECT_EQ(rules(loop), std::vector<std::string>{"fault_loop"});
  EXPECT_EQ(loop.failures[0].verdict,
            "fault_loop at 0x40000000: dev write 0x40000000 faulted again (permission fault (read-only)) after its "
            "fault handler (ptep_set_access_flags) left the PTE still faulting for it: a walker without hardware "
            "A/D updates would fault forever");
  // Whatever the other CPU does, the device never completes.
  EXPECT_EQ(loop.outcomes[0].faulted, loop.executions);
  EXPECT_EQ(loop.outcomes[0].first_fault, "fault_loop: permission fault (read-only)");
  EXPECT_TRUE(loop.outcomes[1].always_completed());
  // The counterexample: the walk, the handler under the lock (its steps
  // labelled with the kernel functions), the unlock, the second walk.
  const auto& steps = loop.failures[0].steps;
  ASSERT_GE(steps.size(), 4u);
  EXPECT_EQ(steps.front().kind, StepKind::HwWalk);
  EXPECT_EQ(steps.back().kind, StepKind::HwWalk);
  bool handler_step = false;
  for (const StepRecord& r : steps)
    handler_step |= r.where.within == "handle_pte_fault (core mm)" || r.where.function == "handle_pte_fault (core mm)";
  EXPECT_TRUE(handler_step);
}

// ---- the shipped race, under `run` and `explore` -------------------------

const fs::path kRace = "examples/races/upstream-dev-write-vs-hw-write.cpt";

// Its pinned count on the fixed engine: CorrectRaces in explorer_test.cpp.
TEST(ExploreDev, ExploreFindsTheFaultLoopWithTheGatheredCheck) {
  RunOptions o = with_hook(true);
  o.explore_max = 1'000'000;
  const RunResult r = run_scenario(load_scenario(source_dir() / kRace), o);
  ASSERT_EQ(r.explorations.size(), 1u);
  const ExploreResult& x = r.explorations[0].result;
  EXPECT_TRUE(x.exhausted);
  ASSERT_TRUE(x.failed());
  // Only where the CPU dirtied page 3 before the handler read the block:
  // the expect on page 0 fails there too.
  EXPECT_EQ(rules(x), (std::vector<std::string>{"fault_loop", "expect"}));
  EXPECT_LT(x.outcomes[1].faulted, x.executions);
  EXPECT_GT(x.outcomes[1].faulted, 0u);
  EXPECT_EQ(r.exit_status(), 1);
  const std::string out = printed(r);
  EXPECT_NE(out.find("counterexample for fault_loop"), std::string::npos) << out;
  EXPECT_NE(out.find("[handle_pte_fault (core mm) › contpte_ptep_set_access_flags]"), std::string::npos) << out;
}

// `contpte run`: the seeded interleaving of the block, and top level.
constexpr std::string_view kSiblingDirty = R"(granule 4K
alloc F order=4
set_ptes 0x40000000 F nr=16 prot=rw young
write 0x40003000 4K
)";

TEST(ExploreDev, RunFindsTheFaultLoopAtTopLevelWithTheGatheredCheck) {
  const std::string text = std::string(kSiblingDirty) + "dev write 0x40000000\n";
  const RunResult fixed = run_text(text);
  EXPECT_EQ(fixed.exit_status(), 0) << fixed.error.value_or("");
  EXPECT_TRUE(fixed.violations.empty());

  const RunResult loop = run_text(text, with_hook(true));
  EXPECT_FALSE(loop.error) << *loop.error;
  ASSERT_EQ(violation_rules(loop), std::vector<std::string>{"fault_loop"});
  EXPECT_EQ(loop.violations[0].line, 5u);
  EXPECT_EQ(loop.violations[0].va.val, 0x40000000u);
  EXPECT_EQ(loop.violations[0].detail,
            "dev write 0x40000000 faulted again (permission fault (read-only)) after its fault handler "
            "(ptep_set_access_flags) left the PTE still faulting for it: a walker without hardware A/D updates would "
            "fault forever");
  EXPECT_EQ(loop.exit_status(), 1);

  // Claimed, the run passes: a scenario that demonstrates the bug.
  const RunResult claimed = run_text(text + "expect violation fault_loop 1\nexpect raw 0x40000000 dirty=0\n",
                                     with_hook(true));
  EXPECT_EQ(claimed.exit_status(), 0) << claimed.error.value_or("");
  EXPECT_EQ(claimed.expects_passed, 2u);
}

TEST(ExploreDev, RunFindsTheFaultLoopInTheSeededInterleaving) {
  // Page 3 is dirty before the block, so every interleaving loops.
  const std::string text = std::string(kSiblingDirty) +
                           "parallel\n  hw read 0x40009000\n  dev write 0x40000000\nend\n";
  const RunResult fixed = run_text(text);
  EXPECT_EQ(fixed.exit_status(), 0) << fixed.error.value_or("");
  ASSERT_EQ(fixed.parallel_runs.size(), 1u);
  EXPECT_EQ(fixed.parallel_runs[0].outcomes[1], "completed");

  const RunResult loop = run_text(text, with_hook(true));
  ASSERT_EQ(violation_rules(loop), std::vector<std::string>{"fault_loop"});
  EXPECT_EQ(loop.violations[0].line, 7u);  // the branch's line
  EXPECT_EQ(loop.parallel_runs[0].outcomes[1], "fault_loop: permission fault (read-only)");
  EXPECT_EQ(loop.exit_status(), 1);
  EXPECT_EQ(run_text(text + "expect violation fault_loop\n", with_hook(true)).exit_status(), 0);
}

// ---- faults handled and retried -------------------------------------------

// Outside parallel blocks: an old, clean PTE of a block, written by the
// device: one fault (the write permission, checked first) whose handler
// makes the whole block young and dirty, then the write completes.
TEST(ExploreDev, TopLevelDevWriteIsHandledAndCompletes) {
  const RunResult r = run_text(R"(granule 4K
alloc F order=4
set_ptes 0x40000000 F nr=16 prot=rw
dev write 0x40000000
expect raw 0x40000000 young=1 dirty=1 cont=1
expect raw 0x4000f000 young=1 dirty=1 cont=1
expect stat folds == 0
expect violations 0
)");
  EXPECT_EQ(r.exit_status(), 0) << r.error.value_or("");
  EXPECT_EQ(r.expects_passed, 4u);
}

// A read needs AF only: the PTE stays clean.
TEST(ExploreDev, TopLevelDevReadSetsTheAccessFlagOnly) {
  const RunResult r = run_text(R"(granule 4K
alloc F order=0
set_ptes 0x40000000 F nr=1 prot=r
dev read 0x40000000
expect raw 0x40000000 young=1 dirty=0
)");
  EXPECT_EQ(r.exit_status(), 0) << r.error.value_or("");
  EXPECT_EQ(r.expects_passed, 1u);
}

TEST(ExploreDev, DevWriteToAReadOnlyPteIsAnError) {
  const RunResult r = run_text(R"(granule 4K
alloc F order=0
set_ptes 0x40000000 F nr=1 prot=r young
dev write 0x40000000
expect raw 0x40000000 young=1
)");
  EXPECT_EQ(r.exit_status(), 1);
  EXPECT_EQ(r.error.value_or(""),
            "t.cpt:4: dev write 0x40000000 in process 0: permission fault (read-only); a write to a PTE without "
            "write permission");
  EXPECT_EQ(r.expects_passed, 0u);  // the file stops there
}

TEST(ExploreDev, DevAccessToNoPteIsAnError) {
  const RunResult r = run_text("granule 4K\ndev read 0x50000000\n");
  EXPECT_EQ(r.exit_status(), 1);
  EXPECT_EQ(r.error.value_or(""),
            "t.cpt:2: dev read 0x50000000 in process 0: translation fault; no valid PTE and no mapping (a fault on a "
            "non-present PTE)");
}

// Inside a mapping the memory manager's fault path handles it: the AF that
// reclaim's aging cleared, then a write fault through the mm.
TEST(ExploreDev, TopLevelDevInAMappingGoesThroughTheMm) {
  const RunResult r = run_text(R"(granule 4K
mmap A 64K prot=rw
write A 4K
reclaim
expect pte A young=0
dev read A
expect pte A young=1
dev write A+4K
expect pte A+4K present=1 dirty=1 young=1
expect stat faults_access == 1
)");
  EXPECT_EQ(r.exit_status(), 0) << r.error.value_or("");
  EXPECT_EQ(r.expects_passed, 4u);
  // A mapping that does not permit it is the process's SIGSEGV.
  const RunResult ro = run_text("granule 4K\nmmap A 64K prot=r\nread A 4K\ndev write A\n");
  EXPECT_EQ(ro.exit_status(), 1);
  EXPECT_TRUE(std::regex_match(ro.error.value_or(""),
                               std::regex("t\\.cpt:4: dev write 0x[0-9a-f]+ in process 0: permission fault \\(read-only\\); "
                                          "SIGSEGV: the mapping does not permit it")))
      << ro.error.value_or("");
}

// Inside a mapping a dev branch's fault goes to the memory manager's fault
// path (handle_mm_fault -> handle_pte_fault -> ptep_set_access_flags):
// memory that MADV_FREE made clean and old, a device writing page 0 while
// another CPU dirties page 3 (examples/races/upstream-dev-write-in-mapping-
// vs-hw-write.cpt). With the gathered no-op check the device loops where
// the CPU came first, as outside mappings.
TEST(ExploreDev, DevBranchInsideAMappingGoesThroughTheMmFaultPath) {
  const char* const race = "upstream-dev-write-in-mapping-vs-hw-write.cpt";
  const RunResult fixed = explore_race(race, false);
  ASSERT_EQ(fixed.explorations.size(), 1u);
  EXPECT_FALSE(fixed.explorations[0].result.failed()) << printed(fixed);
  EXPECT_TRUE(fixed.explorations[0].result.outcomes[1].always_completed());
  // The handler's steps are the engine's ptep_set_access_flags on the block.
  EXPECT_EQ(fixed.exit_status(), 0);

  const RunResult loop = explore_race(race, true);
  const ExploreResult& x = loop.explorations.at(0).result;
  EXPECT_TRUE(x.exhausted);
  ASSERT_TRUE(x.failed());
  EXPECT_EQ(rules(x).front(), "fault_loop") << printed(loop);
  EXPECT_GT(x.outcomes[1].faulted, 0u);
  EXPECT_LT(x.outcomes[1].faulted, x.executions);
  EXPECT_NE(printed(loop).find("contpte_ptep_set_access_flags]"), std::string::npos) << printed(loop);
  EXPECT_EQ(loop.exit_status(), 1);
}

// A mapping that does not permit the access: the process's SIGSEGV, an
// error of the run in every interleaving (as at top level).
TEST(ExploreDev, DevBranchInAMappingThatDoesNotPermitItIsSigsegv) {
  const std::string text = "granule 4K\nmmap A 64K prot=r\nread A 4K\nparallel\n  hw read A\n  dev write A\nend\n";
  const RunResult r = explore_text(text);
  const ExploreResult& x = r.explorations.at(0).result;
  EXPECT_EQ(rules(x), std::vector<std::string>{"unmapped"}) << printed(r);
  EXPECT_EQ(x.outcomes.at(1).unmapped, x.executions);
  EXPECT_TRUE(std::regex_search(x.failures.at(0).verdict,
                                std::regex("t\\.cpt:6: dev write A: permission fault \\(read-only\\); SIGSEGV: the "
                                           "mapping does not permit it; the access cannot complete")))
      << x.failures.at(0).verdict;
  EXPECT_EQ(r.exit_status(), 1);
}

// The fault paths that map or copy a page (do_anonymous_page, do_fault,
// do_wp_page) do not run inside blocks: a dev branch that would take one
// is an input error naming it.
TEST(ExploreDev, DevBranchWhoseFaultWouldMapOrCopyIsAnInputError) {
  auto error_of = [](const std::string& text) {
    try {
      run_text(text);
    } catch (const ScenarioError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string none = error_of("granule 4K\nmmap A 64K prot=rw\nparallel\n  dev read A\nend\n");
  EXPECT_NE(none.find("t.cpt:4:12: error: a dev branch inside a mapping ("), std::string::npos) << none;
  EXPECT_NE(none.find("finds no PTE: its fault would map a page (do_anonymous_page / do_fault), which does not "
                      "run inside parallel blocks; touch the page before the block"),
            std::string::npos)
      << none;
  // A read fault mapped the zero page, read-only: a write would copy.
  const std::string cow = error_of("granule 4K\nmmap A 64K prot=rw\nread A 4K\nparallel\n  dev write A\nend\n");
  EXPECT_NE(cow.find("writes a PTE without write permission: its fault would copy or reuse the page (do_wp_page)"),
            std::string::npos)
      << cow;
  // The same branches after the page was written are handled (AF only).
  EXPECT_EQ(run_text("granule 4K\nmmap A 64K prot=rw\nwrite A 4K\nparallel\n  dev write A\nend\n").exit_status(), 0);
}

// ---- CPUs without FEAT_HAFDBS (hafdbs off) --------------------------------

// A CPU that does not update A/D in hardware takes access-flag and
// dirty-state faults to handle_pte_fault, as a device walker does; the
// fault just handled again, with the PTE as its handler left it, is the
// same finding: fault_loop. Page 3 of the block is dirty (as an agent with
// hardware updates left it), so the gathered check is a no-op for page 0.
constexpr std::string_view kNoHafdbs = R"(granule 4K
hafdbs off
alloc F order=4
set_ptes 0x40000000 F nr=16 prot=rw young
raw_set 0x40003000 pfn=F+3 prot=rw cont young dirty
)";

TEST(ExploreDev, CpuWithoutHafdbsLoopsAtTopLevelWithTheGatheredCheck) {
  const std::string text = std::string(kNoHafdbs) + "write 0x40000000 4K\nexpect raw 0x40000000 dirty=1\n";
  const RunResult fixed = run_text(text);
  EXPECT_EQ(fixed.exit_status(), 0) << fixed.error.value_or("");
  EXPECT_TRUE(fixed.violations.empty());
  EXPECT_EQ(fixed.expects_passed, 1u);

  const RunResult loop = run_text(text, with_hook(true));
  EXPECT_FALSE(loop.error) << *loop.error;
  ASSERT_EQ(violation_rules(loop), std::vector<std::string>{"fault_loop"});
  EXPECT_EQ(loop.violations[0].line, 6u);
  EXPECT_EQ(loop.violations[0].detail,
            "the CPU's write of 0x40000000 faulted again (permission fault (read-only)) after its fault handler "
            "(ptep_set_access_flags) left the PTE still faulting for it: a core without hardware A/D updates would "
            "fault forever");
  EXPECT_EQ(loop.exit_status(), 1);
  // With FEAT_HAFDBS the CPU dirties its entry itself: no fault, no loop.
  std::string on = text;
  on.replace(on.find("hafdbs off"), 10, "hafdbs on");
  EXPECT_EQ(run_text(on, with_hook(true)).exit_status(), 0);
}

TEST(ExploreDev, CpuWithoutHafdbsLoopsInParallelBlocksWithTheGatheredCheck) {
  const char* const race = "upstream-nohafdbs-cpu-write-vs-dev-read.cpt";
  const RunResult fixed = explore_race(race, false);
  ASSERT_EQ(fixed.explorations.size(), 1u);
  EXPECT_FALSE(fixed.explorations[0].result.failed()) << printed(fixed);
  EXPECT_TRUE(fixed.explorations[0].result.outcomes[0].always_completed()) << printed(fixed);

  const RunResult loop = explore_race(race, true);
  const ExploreResult& x = loop.explorations.at(0).result;
  ASSERT_TRUE(x.failed());
  EXPECT_EQ(rules(x).front(), "fault_loop") << printed(loop);
  EXPECT_EQ(x.outcomes[0].faulted, x.executions) << "page 3 is dirty before the block: every interleaving loops";
  EXPECT_EQ(x.outcomes[0].first_fault, "fault_loop: permission fault (read-only)");
  EXPECT_EQ(loop.exit_status(), 1);
  // The seeded interleaving of `run` reports it too.
  const RunResult seeded = run_scenario(load_scenario(race_file(race)), with_hook(true));
  EXPECT_EQ(violation_rules(seeded), std::vector<std::string>{"fault_loop"});
}

// A CPU's fault on a write-protected PTE is no access-flag or dirty-state
// fault: it waits for the lock and retries as on any core (the handler does
// not run; nothing is an error).
TEST(ExploreDev, CpuWithoutHafdbsWritingAReadOnlyPteJustFaults) {
  const RunResult r = explore_text(R"(granule 4K
hafdbs off
alloc F order=4
set_ptes 0x40000000 F nr=16 prot=r young
parallel
  hw write 0x40005000
  dev read 0x40009000
end
)");
  const ExploreResult& x = r.explorations.at(0).result;
  EXPECT_FALSE(x.failed()) << printed(r);
  EXPECT_EQ(x.outcomes.at(0).faulted, x.executions);
  EXPECT_EQ(x.outcomes.at(0).first_fault, "faulted: permission fault (read-only)");
  EXPECT_EQ(r.exit_status(), 0);
}

// In parallel blocks: a dev read racing the aging of its block faults on
// AF=0 where the aging came first, is handled and completes everywhere.
TEST(ExploreDev, DevBranchRacingAgingCompletesInEveryInterleaving) {
  const RunResult r = explore_text(R"(granule 4K
alloc F order=4
set_ptes 0x40000000 F nr=16 prot=rw young
parallel
  engine ptep_clear_flush_young 0x40000000
  dev read 0x40005000
end
expect raw 0x40005000 young=1
)");
  const ExploreResult& x = r.explorations.at(0).result;
  EXPECT_TRUE(x.exhausted);
  // The expect fails where the device read first and the aging came after.
  EXPECT_EQ(rules(x), std::vector<std::string>{"expect"}) << printed(r);
  ASSERT_EQ(x.outcomes.size(), 2u);
  EXPECT_TRUE(x.outcomes[1].always_completed()) << printed(r);
}

TEST(ExploreDev, DevBranchWritingAReadOnlyPteIsAnErrorInEveryInterleaving) {
  const std::string text = R"(granule 4K
alloc F order=4
set_ptes 0x40000000 F nr=16 prot=r young
parallel
  engine ptep_clear_flush_young 0x40000000
  dev write 0x40005000
end
)";
  const RunResult r = explore_text(text);
  const ExploreResult& x = r.explorations.at(0).result;
  EXPECT_TRUE(x.exhausted);
  EXPECT_EQ(rules(x), std::vector<std::string>{"unmapped"});
  EXPECT_EQ(x.outcomes[1].unmapped, x.executions);
  EXPECT_EQ(x.failures[0].verdict,
            "unmapped: t.cpt:6: dev write 0x40005000: permission fault (read-only); a write to a PTE without write "
            "permission; the access cannot complete");
  EXPECT_EQ(r.exit_status(), 1);
  const RunResult seeded = run_text(text);
  EXPECT_EQ(seeded.error.value_or(""),
            "t.cpt:6: dev write 0x40005000: permission fault (read-only); a write to a PTE without write permission; "
            "the access cannot complete");
}

// A fault the handler fixed, undone by another branch before the retry, is
// handled again: not a fault_loop. Aging between the handler and the retry
// clears AF again.
TEST(ExploreDev, AFixUndoneBeforeTheRetryIsHandledAgain) {
  PhysMem mem(Granule::k4K, std::uint64_t{64} << 20);
  BuddyAllocator buddy(mem);
  PageTable pt(mem);
  Features feat;
  SimEnv env(mem, pt, feat);
  const VirtAddr base{0x40000000};
  const PteSlot first = *pt.pte_slot(base, true);
  set_ptes(env, base, first, pte_mkold(pfn_pte(*buddy.alloc_folio(4), prot::kPageShared, 12)), 16);
  Checker chk(mem.geometry(), false);
  ExploreSetup s;
  s.mem = &mem;
  s.pt = &pt;
  s.features = feat;
  s.checker = &chk;
  ExploreBranch e;
  e.label = "engine ptep_test_and_clear_young";
  e.body = [&](StepEnv& se) {  // as the runner calls it: the checker is told about the aging
    PteCaller<StepEnv> c{se,
                         se.geometry(),
                         se.checker(),
                         se.asid(),
                         [&pt](VirtAddr a) { return *pt.pte_slot(a, false); },
                         [&pt](VirtAddr a) { return *pt.pte_slot(a, false)->ptr(); },
                         [&se](VirtAddr a, std::uint64_t nr) { se.caller_flush(a, nr); }};
    c.op(PteOp{PteOpKind::PtepTestAndClearYoung, base});
  };
  s.branches.push_back(e);
  ExploreBranch d;
  d.kind = ExploreBranch::Kind::Hw;
  d.device = true;
  d.access = MemAccess::Read;
  d.va = base + 0x5000;
  d.label = "dev read";
  s.branches.push_back(d);
  // The stores of each execution (pte_stores counts the compare-exchanges
  // made): 16 by each handler run (AF), 16 by the aging.
  std::set<std::uint64_t> stores;
  s.check_final = [&](const EngineCounters& c) {
    stores.insert(c.pte_stores);
    return std::vector<std::string>{};
  };
  Explorer x(std::move(s));
  const ExploreResult r = x.explore(100'000);
  EXPECT_TRUE(r.exhausted);
  EXPECT_FALSE(r.failed()) << r.failures.front().verdict;
  EXPECT_TRUE(r.outcomes[1].always_completed());
  // 32: one handler run and the aging; 48: handler, aging, handler again —
  // the second fault was handled, not reported.
  EXPECT_EQ(stores, (std::set<std::uint64_t>{32, 48}));
}

// ---- the reduction with dev branches -------------------------------------

// A block of 16 PTEs (folded or not, random AF), one random engine
// operation on it, a dev access and a CPU's access: the reduced exploration
// reaches exactly the final states and failures of every interleaving.
struct Outcome {
  std::set<std::vector<std::uint64_t>> finals;
  std::set<std::string> rules;
  std::uint64_t executions = 0;
  bool exhausted = false;
};

Outcome explore_random_dev(std::uint64_t seed, bool reduce, bool gathered_check, bool hafdbs = true) {
  std::mt19937_64 rng(seed);
  PhysMem mem(Granule::k4K, std::uint64_t{64} << 20);
  BuddyAllocator buddy(mem);
  PageTable pt(mem);
  Features feat;
  feat.test_gathered_access_flags_check = gathered_check;
  feat.hafdbs = hafdbs;  // off: the CPU's access-flag and dirty faults run the handler too
  SimEnv env(mem, pt, feat);
  const VirtAddr base{0x40000000};
  const Pfn pfn = *buddy.alloc_folio(4);
  const PteSlot first = *pt.pte_slot(base, true);
  Pte pte = pte_mkold(pfn_pte(pfn, prot::kPageShared, 12));
  if (rng() % 2) pte = pte_mkyoung(pte);
  set_ptes(env, base, first, pte, rng() % 2 ? 16 : 15);
  if (rng() % 2) first.ptr()[rng() % 15] = pte_mkdirty(pte_mkyoung(first.ptr()[0]));  // a sibling updated
  const unsigned page = static_cast<unsigned>(rng() % 16);
  const unsigned op = static_cast<unsigned>(rng() % 4);
  Checker chk(mem.geometry(), false);
  ExploreSetup s;
  s.mem = &mem;
  s.pt = &pt;
  s.features = feat;
  s.checker = &chk;
  s.reduce = reduce;
  ExploreBranch e;
  e.label = "engine op " + std::to_string(op);
  e.body = [=, &pt](StepEnv& se) {
    const VirtAddr va = base + std::uint64_t{page} * 4096;
    PteCaller<StepEnv> c{se,
                         se.geometry(),
                         se.checker(),
                         se.asid(),
                         [&pt](VirtAddr a) { return *pt.pte_slot(a, false); },
                         [&pt](VirtAddr a) { return *pt.pte_slot(a, false)->ptr(); },
                         [&se](VirtAddr a, std::uint64_t nr) { se.caller_flush(a, nr); }};
    switch (op) {
      case 0: c.op(PteOp{PteOpKind::PtepSetWrprotect, va}); break;
      case 1: c.op(PteOp{PteOpKind::PtepClearFlushYoung, va}); break;
      case 2: c.batch(PteBatch{PteBatchKind::ClearYoungDirtyPtes, base, 16, false, true, true}); break;
      case 3: c.op(PteOp{PteOpKind::PtepTestAndClearYoung, va}); break;
    }
  };
  s.branches.push_back(e);
  ExploreBranch d;
  d.kind = ExploreBranch::Kind::Hw;
  d.device = true;
  d.access = rng() % 2 ? MemAccess::Write : MemAccess::Read;
  d.va = base + (rng() % 16) * 4096;
  d.label = "dev";
  // Without FEAT_HAFDBS the CPU runs the stepped handler itself: the
  // engine operation and the CPU alone keep the full enumeration small.
  if (hafdbs) s.branches.push_back(d);
  ExploreBranch h;
  h.kind = ExploreBranch::Kind::Hw;
  h.access = rng() % 2 ? MemAccess::Write : MemAccess::Read;
  h.va = base + (rng() % 16) * 4096;
  h.label = "hw";
  s.branches.push_back(h);
  Outcome out;
  s.on_final = [&](const FinalState& fs) {
    std::vector<std::uint64_t> w(reinterpret_cast<const std::uint64_t*>(first.ptr()),
                                 reinterpret_cast<const std::uint64_t*>(first.ptr()) + 16);
    for (BranchEnd b : fs.ends) w.push_back(static_cast<std::uint64_t>(b));
    out.finals.insert(w);
  };
  Explorer x(std::move(s));
  const ExploreResult r = x.explore(reduce ? 1'000'000 : 3'000);
  out.exhausted = r.exhausted;
  for (const auto& f : r.failures) out.rules.insert(f.rule);
  out.executions = r.executions;
  return out;
}

// Seeds 1-24 on a core with FEAT_HAFDBS, 25-40 without (the CPU's
// handler is stepped as the device's; no device branch then).
TEST(ExploreDevProperty, ReductionReachesEveryFinalStateAndEveryFailure) {
  unsigned compared = 0, loops = 0, compared_off = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    const bool hafdbs = seed <= 24;
    for (bool gathered : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "seed " << seed << (gathered ? " gathered check" : "")
                                        << (hafdbs ? "" : " hafdbs off"));
      const Outcome reduced = explore_random_dev(seed, true, gathered, hafdbs);
      ASSERT_TRUE(reduced.exhausted);
      if (!gathered) {
        EXPECT_EQ(reduced.rules.count("fault_loop"), 0u);  // the fixed engine never loops
      }
      loops += reduced.rules.count("fault_loop");
      const Outcome full = explore_random_dev(seed, false, gathered, hafdbs);
      if (!full.exhausted) continue;
      ++compared;
      compared_off += !hafdbs;
      EXPECT_EQ(reduced.finals, full.finals);
      EXPECT_EQ(reduced.rules, full.rules);
      EXPECT_LE(reduced.executions, full.executions);
    }
  }
  EXPECT_GE(compared, 16u) << "too few cases small enough to enumerate";
  EXPECT_GE(compared_off, 8u) << "too few cases without FEAT_HAFDBS small enough to enumerate";
  EXPECT_GE(loops, 1u) << "no case showed the gathered check's fault_loop";
}

}  // namespace
