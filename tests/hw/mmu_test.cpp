// The MMU: the access path (L1, L2, walk), FEAT_HAFDBS updates, faults
// without hardware management, and the mapping of flush requests onto TLBI
// instructions as Linux's __flush_tlb_range issues them.

#include <gtest/gtest.h>

#include "engine/pgtable.h"
#include "hw/mmu.h"
#include "hw/page_table.h"
#include "hw/sim_env.h"
#include "mm/buddy.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

using namespace contpte;

namespace {

struct World {
  PhysMem mem;
  PageTable pt;
  BuddyAllocator buddy;
  SimEnv env;
  Checker checker;
  Mmu mmu;
  World(Granule g, Variant v, TlbConfig cfg, bool hafdbs = true)
      : mem(g, std::uint64_t{4} << 30),
        pt(mem),
        buddy(mem),
        env(mem, pt, Features{v, v == Variant::Bbml2, hafdbs}),
        checker(mem.geometry(), v == Variant::Bbml2),
        mmu(mem, std::move(cfg), hafdbs, &checker, 1) {
    env.add_observer(&mmu);
  }
  const Geometry& g() const { return mem.geometry(); }
  // Maps a folio of 2^order pages at va with one set_ptes.
  Pfn map(VirtAddr va, unsigned order, PgProt prot = prot::kPageShared, bool young = true) {
    const Pfn pfn = *buddy.alloc_folio(order);
    Pte pte = pfn_pte(pfn, prot, g().page_shift);
    if (!young) pte = pte_mkold(pte);
    set_ptes(env, va, *pt.pte_slot(va, true), pte, 1u << order);
    return pfn;
  }
  AccessResult access(std::uint64_t va, MemAccess k) { return mmu.access(pt, 1, VirtAddr{va}, k); }
};

unsigned order_of(unsigned n) { return static_cast<unsigned>(__builtin_ctz(n)); }

class MmuGranule : public ::testing::TestWithParam<Granule> {};

TEST_P(MmuGranule, OneWalkPerFoldedBlockAndOnePerPageWithoutCont) {
  for (Variant v : {Variant::Upstream, Variant::Off}) {
    World w(GetParam(), v, resolve_tlb_config("neoverse-n1"));
    const unsigned n = w.g().cont_ptes;
    w.map(VirtAddr{0x40000000}, order_of(n));
    for (unsigned i = 0; i < n; ++i)
      ASSERT_EQ(w.access(0x40000000 + i * w.g().page_size(), MemAccess::Read).fault, Fault::None);
    EXPECT_EQ(w.mmu.stats().walks, v == Variant::Off ? n : 1u) << variant_name(v);
    EXPECT_EQ(w.mmu.stats().accesses, n);
  }
}

INSTANTIATE_TEST_SUITE_P(AllGranules, MmuGranule,
                         ::testing::Values(Granule::k4K, Granule::k16K, Granule::k64K));

TEST(Mmu, HardwareSetsAfAndDirtyInTheAccessedPte) {
  World w(Granule::k4K, Variant::Upstream, resolve_tlb_config("neoverse-n1"));
  w.map(VirtAddr{0x40000000}, 4, prot::kPageShared, /*young=*/false);
  ASSERT_EQ(w.access(0x40003000, MemAccess::Write).fault, Fault::None);
  const Pte p3 = *w.pt.pte_slot(VirtAddr{0x40003000}, false)->ptr();
  const Pte p4 = *w.pt.pte_slot(VirtAddr{0x40004000}, false)->ptr();
  EXPECT_TRUE(pte_young(p3));
  EXPECT_TRUE(pte_hw_dirty(p3));
  EXPECT_FALSE(pte_young(p4));
  EXPECT_FALSE(pte_dirty(p4));
  EXPECT_EQ(w.mmu.stats().hw_af_updates, 1u);
  EXPECT_EQ(w.mmu.stats().hw_dirty_updates, 1u);
  // The block entry now caches the dirty state: a write to page 4 hits it
  // and updates nothing — the block is dirty through page 3.
  ASSERT_EQ(w.access(0x40004000, MemAccess::Write).fault, Fault::None);
  EXPECT_FALSE(pte_hw_dirty(*w.pt.pte_slot(VirtAddr{0x40004000}, false)->ptr()));
  EXPECT_TRUE(pte_dirty(ptep_get(w.env, *w.pt.pte_slot(VirtAddr{0x40004000}, false))));
  EXPECT_TRUE(w.checker.violations().empty());
  // A single page read, then written: the write walks again (the cached
  // entry does not permit the store) and marks it dirty.
  w.map(VirtAddr{0x40100000}, 0, prot::kPageShared, /*young=*/false);
  ASSERT_EQ(w.access(0x40100000, MemAccess::Read).fault, Fault::None);
  ASSERT_EQ(w.access(0x40100000, MemAccess::Write).fault, Fault::None);
  EXPECT_TRUE(pte_hw_dirty(*w.pt.pte_slot(VirtAddr{0x40100000}, false)->ptr()));
  EXPECT_EQ(w.mmu.stats().walks, 3u);
}

TEST(Mmu, WithoutHafdbsOldOrCleanPtesFault) {
  World w(Granule::k4K, Variant::Upstream, resolve_tlb_config("neoverse-n1"), /*hafdbs=*/false);
  w.map(VirtAddr{0x40000000}, 0, prot::kPageShared, /*young=*/false);
  EXPECT_EQ(w.access(0x40000000, MemAccess::Read).fault, Fault::AccessFlag);
  w.map(VirtAddr{0x40100000}, 0, prot::kPageShared, /*young=*/true);
  EXPECT_EQ(w.access(0x40100000, MemAccess::Read).fault, Fault::None);
  EXPECT_EQ(w.access(0x40100000, MemAccess::Write).fault, Fault::Permission);
}

TEST(Mmu, PermissionsAtEl0) {
  World w(Granule::k4K, Variant::Upstream, resolve_tlb_config("neoverse-n1"));
  w.map(VirtAddr{0x40000000}, 0, prot::kPageReadonly);
  EXPECT_EQ(w.access(0x40000000, MemAccess::Read).fault, Fault::None);
  EXPECT_EQ(w.access(0x40000000, MemAccess::Write).fault, Fault::Permission);
  EXPECT_EQ(w.access(0x40000000, MemAccess::Exec).fault, Fault::Permission);
  w.map(VirtAddr{0x40100000}, 0, prot::kPageExeconly);
  EXPECT_EQ(w.access(0x40100000, MemAccess::Exec).fault, Fault::None);
  EXPECT_EQ(w.access(0x40100000, MemAccess::Read).fault, Fault::Permission);
  EXPECT_EQ(w.access(0x40200000, MemAccess::Read).fault, Fault::Translation);
  w.map(VirtAddr{0x40300000}, 0, prot::kPageNone);
  EXPECT_EQ(w.access(0x40300000, MemAccess::Read).fault, Fault::Translation);
}

TEST(Mmu, ExecUsesTheInstructionTlb) {
  World w(Granule::k4K, Variant::Upstream, resolve_tlb_config("neoverse-n1"));
  w.map(VirtAddr{0x40000000}, 0, prot::kPageReadonlyExec);
  w.access(0x40000000, MemAccess::Exec);
  EXPECT_NE(w.mmu.l1i().peek(1, 0x40000000), nullptr);
  EXPECT_EQ(w.mmu.l1d().peek(1, 0x40000000), nullptr);
  w.access(0x40000000, MemAccess::Exec);
  EXPECT_EQ(w.mmu.stats().l1_hits, 1u);
}

// Linux 6.12 __flush_tlb_range: without FEAT_TLBIRANGE one TLBI per page,
// and the whole ASID from MAX_DVM_OPS (PTRS_PER_PTE) pages on; with it,
// range instructions of decreasing scale, single pages for an odd page.
TEST(Mmu, FlushRequestsBecomeTlbiInstructionsAsLinuxIssuesThem) {
  TlbConfig n1 = resolve_tlb_config("neoverse-n1");
  ASSERT_FALSE(n1.tlbi_range);
  World a(Granule::k4K, Variant::Upstream, n1);
  a.mmu.on_tlbi({TlbiKind::Range, 1, VirtAddr{0x40000000}, 16, true});
  EXPECT_EQ(a.mmu.stats().tlbi_va, 16u);
  a.mmu.on_tlbi({TlbiKind::Range, 1, VirtAddr{0x40000000}, 511, true});
  EXPECT_EQ(a.mmu.stats().tlbi_va, 16u + 511u);
  a.mmu.on_tlbi({TlbiKind::Range, 1, VirtAddr{0x40000000}, 512, true});
  EXPECT_EQ(a.mmu.stats().tlbi_asid, 1u);
  a.mmu.on_tlbi({TlbiKind::Page, 1, VirtAddr{0x40000000}, 1, true});
  a.mmu.on_tlbi({TlbiKind::Mm, 1, VirtAddr{}, 0, true});
  EXPECT_EQ(a.mmu.stats().tlbi_va, 16u + 511u + 1u);
  EXPECT_EQ(a.mmu.stats().tlbi_asid, 2u);

  TlbConfig ranged = n1;
  ranged.tlbi_range = true;
  World b(Granule::k4K, Variant::Upstream, ranged);
  b.mmu.on_tlbi({TlbiKind::Range, 1, VirtAddr{0x40000000}, 16, true});  // scale 0, num 7
  EXPECT_EQ(b.mmu.stats().tlbi_range, 1u);
  EXPECT_EQ(b.mmu.stats().tlbi_va, 0u);
  b.mmu.on_tlbi({TlbiKind::Range, 1, VirtAddr{0x40000000}, 17, true});  // 16 + one page
  EXPECT_EQ(b.mmu.stats().tlbi_range, 2u);
  EXPECT_EQ(b.mmu.stats().tlbi_va, 1u);
  b.mmu.on_tlbi({TlbiKind::Range, 1, VirtAddr{0x40000000}, 100, true});  // 64 (scale 1) + 36 (scale 0)
  EXPECT_EQ(b.mmu.stats().tlbi_range, 4u);
  b.mmu.on_tlbi({TlbiKind::Range, 1, VirtAddr{0x40000000}, 4096, true});  // no ASID flush with ranges
  EXPECT_EQ(b.mmu.stats().tlbi_asid, 0u);
}

TEST(Mmu, InvalidationDropsTheBlockEntryCoveringAPage) {
  World w(Granule::k4K, Variant::Upstream, resolve_tlb_config("neoverse-n1"));
  w.map(VirtAddr{0x40000000}, 4);
  w.access(0x40000000, MemAccess::Read);
  ASSERT_NE(w.mmu.l1d().peek(1, 0x4000f000), nullptr);
  w.mmu.on_tlbi({TlbiKind::Page, 1, VirtAddr{0x40007000}, 1, true});
  EXPECT_EQ(w.mmu.l1d().peek(1, 0x4000f000), nullptr);
  EXPECT_EQ(w.mmu.l2().peek(1, 0x4000f000), nullptr);
}

// A write to a read-only PTE outside every mapping: nothing handles it. (An
// access-flag fault there, on a core without FEAT_HAFDBS, goes to the
// PTE-level handler and the read completes.)
TEST(Mmu, UnhandledFaultIsARunErrorNamingLineAndAddress) {
  RunResult r = run_scenario(parse_scenario(
      "hafdbs off\nalloc F order=0\nset_ptes 0x40000000 F nr=1 prot=r young\nwrite 0x40000000 4K\n"
      "expect stat faults == 1\n",
      "t.cpt"));
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(*r.error,
            "t.cpt:4: write 0x40000000 in process 0: permission fault at level 3; SIGSEGV: no mapping");
  const RunResult af = run_scenario(parse_scenario(
      "hafdbs off\nalloc F order=0\nset_ptes 0x40000000 F nr=1 prot=rw\nread 0x40000000 4K\n"
      "expect raw 0x40000000 young=1 dirty=0\n",
      "t.cpt"));
  EXPECT_EQ(af.exit_status(), 0) << af.error.value_or("");
  EXPECT_EQ(af.expects_passed, 1u);
  EXPECT_EQ(r.exit_status(), 1);
  EXPECT_EQ(r.statements, 3u);  // the file stops there: the expect never runs
}

TEST(Mmu, ContHeldAsPagesByAStructureThatSplitsIt) {
  TlbConfig cfg = resolve_tlb_config("neoverse-n1");
  cfg.l1d.cont = ContHolding::SplitPages;
  cfg.l2.cont = ContHolding::SplitPages;
  World w(Granule::k4K, Variant::Upstream, cfg);
  w.map(VirtAddr{0x40000000}, 4);
  for (unsigned i = 0; i < 16; ++i) w.access(0x40000000 + i * 0x1000, MemAccess::Read);
  EXPECT_EQ(w.mmu.stats().walks, 16u);
}


// Page-table freeing and the walk cache: the checker finds a walk that went
// through a freed table still cached, and a non-last-level flush drops it.
TEST(MmuWalkCache, AFreedTableReachedThroughTheWalkCacheIsStale) {
  for (bool flush : {false, true}) {
    World w(Granule::k4K, Variant::Upstream, resolve_tlb_config("neoverse-n1"));
    const std::uint64_t a = 0x4000000000, b = 0x4000400000;  // one 1G range, two PMD ranges
    w.map(VirtAddr{a}, 4);
    ASSERT_EQ(w.access(a, MemAccess::Read).fault, Fault::None);  // caches A's PTE table
    // munmap of A: clear, free every table above (nothing else is mapped).
    get_and_clear_full_ptes(w.env, VirtAddr{a}, *w.pt.pte_slot(VirtAddr{a}, false), 16, false);
    auto freed = w.pt.free_pgd_range(a, a + 0x10000, 0, 0);
    ASSERT_EQ(freed.size(), 3u);  // PTE, PMD and PUD tables
    if (flush)
      w.env.flush_tlb_range_tables(TlbFlush{VirtAddr{a}, 16, true});
    else
      w.env.flush_tlb_range(TlbFlush{VirtAddr{a}, 16, true});  // last level only: the bug
    w.pt.release(freed);
    // B's tables reuse those pages, its PTE table the one A's walk-cache
    // entry names; A is unmapped, so a read of A must fault.
    w.map(VirtAddr{b}, 4);
    const AccessResult r = w.access(a, MemAccess::Read);
    if (flush) {
      EXPECT_EQ(r.fault, Fault::Translation);
      EXPECT_TRUE(w.checker.violations().empty());
    } else {
      EXPECT_EQ(r.fault, Fault::None);  // translated through B's table
      ASSERT_FALSE(w.checker.violations().empty());
      EXPECT_EQ(w.checker.violations()[0].rule, Rule::StaleTranslation);
      EXPECT_NE(w.checker.violations()[0].detail.find("stale walk-cache entry"), std::string::npos);
    }
  }
}

}  // namespace
