// Mmu::miss_fast, the fused path an L1 miss takes without a checker, must
// behave exactly as the general path (L2 lookup, walk_and_fill): two
// machines built alike, one with the fused path and one without, given the
// same random stream of reads, writes, fetches, retries, TLBIs and direct
// PTE changes, must return the same results and end with the same MmuStats,
// the same TLB contents and the same page-table words — for every granule,
// hafdbs on and off, LRU/FIFO/random replacement, one-entry and split-pages
// holding of contiguous blocks, and every preset.

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "engine/pgtable.h"
#include "hw/mmu.h"
#include "hw/page_table.h"
#include "hw/sim_env.h"
#include "mm/buddy.h"

namespace contpte {

// Mmu befriends this (mmu.h): the switch between the two paths.
struct MmuFastPathSwitch {
  static bool get(const Mmu& m) { return m.fast_miss_; }
  static void set(Mmu& m, bool on) { m.fast_miss_ = on; }
};

namespace {

struct Machine {
  PhysMem mem;
  PageTable pt;
  BuddyAllocator buddy;
  SimEnv env;
  Mmu mmu;
  Machine(Granule g, Variant v, const TlbConfig& cfg, bool hafdbs, bool fast)
      : mem(g, std::uint64_t{1} << 30),
        pt(mem),
        buddy(mem),
        env(mem, pt, Features{v, false, hafdbs}),
        mmu(mem, cfg, hafdbs, nullptr, 7) {
    MmuFastPathSwitch::set(mmu, fast);
  }
};

using EntryKey = std::tuple<std::uint16_t, std::uint64_t, unsigned, unsigned, bool, std::uint64_t,
                            std::uint64_t, unsigned>;

std::vector<EntryKey> contents(const Tlb& t) {
  std::vector<EntryKey> v;
  t.for_each([&](const TlbEntry& e) {
    v.emplace_back(e.asid, e.va, e.size_shift, e.level, e.cont, e.pa, e.desc.val, e.page_shift);
  });
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::uint64_t> stats_of(const MmuStats& s) {
  return {s.accesses,         s.l1_hits,       s.l2_hits,        s.tlb_misses,
          s.walks,            s.walk_mem_accesses, s.walk_cycles, s.cycles,
          s.faults,           s.hw_af_updates, s.hw_dirty_updates, s.tlb_overlaps,
          s.tlbi_va,          s.tlbi_range,    s.tlbi_asid,      s.tlbi_all};
}

struct Case {
  Granule granule;
  Variant variant;
  TlbConfig cfg;
  bool hafdbs;
  std::uint64_t seed;
  std::string name() const {
    return cfg.name + "/" + std::string(geometry(granule).name) + "/" +
           std::string(variant_name(variant)) + "/l1d:" +
           std::string(replacement_name(cfg.l1d.replacement)) + "," +
           std::string(cont_holding_name(cfg.l1d.cont)) + "/l2:" +
           std::string(replacement_name(cfg.l2.replacement)) + "," +
           std::string(cont_holding_name(cfg.l2.cont)) + "/hafdbs=" +
           std::to_string(hafdbs) + "/random_pte=" + std::to_string(cfg.hafdbs_random_pte) +
           "/seed=" + std::to_string(seed);
  }
};

// Both machines get the same mappings: `chunks` runs of folios at PMD
// ranges spread over 80 PMDs (so the walk cache, 4-way per set, misses and
// evicts too), with random protections, ages and folio sizes up to a
// contiguous block.
std::vector<std::uint64_t> map_all(Machine& a, Machine& b, std::mt19937_64& rng) {
  const Geometry& g = a.mem.geometry();
  const std::uint64_t base = std::uint64_t{1} << 32;
  const unsigned cont_order = static_cast<unsigned>(__builtin_ctz(g.cont_ptes));
  const PgProt prots[] = {prot::kPageShared, prot::kPageShared, prot::kPageReadonly,
                          prot::kPageSharedExec, prot::kPageExeconly, prot::kPageReadonlyExec};
  std::vector<std::uint64_t> pages;
  for (unsigned c = 0; c < 40; ++c) {
    const std::uint64_t pmd = rng() % 80;
    std::uint64_t va = base + (pmd << g.pmd_shift()) +
                       (rng() % 4) * (std::uint64_t{g.cont_ptes} << g.page_shift);
    for (unsigned f = 0; f < 3; ++f) {
      const unsigned order = rng() % 3 == 0 ? static_cast<unsigned>(rng() % (cont_order + 1))
                                            : cont_order;
      const PgProt p = prots[rng() % std::size(prots)];
      const bool young = rng() % 3 != 0;
      for (Machine* m : {&a, &b}) {
        if (m->pt.pte_slot(VirtAddr{va}, false) &&
            pte_valid(*m->pt.pte_slot(VirtAddr{va}, false)->ptr()))
          continue;  // overlaps an earlier chunk
        const auto pfn = m->buddy.alloc_folio(order);
        if (!pfn) continue;
        Pte pte = pfn_pte(*pfn, p, g.page_shift);
        if (!young) pte = pte_mkold(pte);
        set_ptes(m->env, VirtAddr{va}, *m->pt.pte_slot(VirtAddr{va}, true), pte, 1u << order);
      }
      for (unsigned i = 0; i < (1u << order); ++i) pages.push_back(va + (std::uint64_t{i} << g.page_shift));
      va += std::uint64_t{g.cont_ptes} << g.page_shift;  // the next block: leaves holes
    }
  }
  return pages;
}

void run_case(const Case& c) {
  SCOPED_TRACE(c.name());
  Machine fast(c.granule, c.variant, c.cfg, c.hafdbs, true);
  Machine slow(c.granule, c.variant, c.cfg, c.hafdbs, false);
  ASSERT_TRUE(MmuFastPathSwitch::get(fast.mmu));
  std::mt19937_64 rng(c.seed);
  std::vector<std::uint64_t> pages = map_all(fast, slow, rng);
  std::shuffle(pages.begin(), pages.end(), rng);
  ASSERT_FALSE(pages.empty());
  const Geometry& g = fast.mem.geometry();
  for (int step = 0; step < 4000; ++step) {
    const unsigned op = rng() % 100;
    // Half the accesses go to 200 hot pages: more than an L1 holds, so
    // the L2 hits too.
    const std::uint64_t page = pages[rng() % (rng() % 2 ? std::min<std::size_t>(200, pages.size())
                                                        : pages.size())];
    const auto asid = static_cast<std::uint16_t>(1 + rng() % 2);
    if (op < 85) {
      // An access, sometimes beside the mapped page (a hole: a fault).
      const std::uint64_t va = page + (rng() % 8 == 0 ? std::uint64_t{g.cont_ptes} << g.page_shift : 0) +
                               (rng() % g.page_size() & ~std::uint64_t{7});
      const auto kind = static_cast<MemAccess>(rng() % 3);
      const bool retry = rng() % 10 == 0;
      const AccessResult ra = fast.mmu.access(fast.pt, asid, VirtAddr{va}, kind, retry);
      const AccessResult rb = slow.mmu.access(slow.pt, asid, VirtAddr{va}, kind, retry);
      ASSERT_EQ(ra.fault, rb.fault) << "step " << step;
      ASSERT_EQ(ra.level, rb.level) << "step " << step;
    } else if (op < 93) {
      // A TLBI: one page, a range, or the whole ASID.
      const unsigned k = rng() % 8;
      const TlbiRequest r{k < 4 ? TlbiKind::Page : k < 7 ? TlbiKind::Range : TlbiKind::Mm, asid,
                          VirtAddr{page}, k < 4 ? 1 : k < 7 ? 1 + rng() % 600 : 0, true};
      fast.mmu.on_tlbi(r);
      slow.mmu.on_tlbi(r);
    } else {
      // Software changes a PTE without a TLBI (stale entries stay, as they
      // would): makes it old, clean, or read-only.
      const unsigned k = rng() % 3;
      for (Machine* m : {&fast, &slow}) {
        Pte* slot = m->pt.pte_slot(VirtAddr{page}, false)->ptr();
        *slot = k == 0 ? pte_mkold(*slot) : k == 1 ? set_pte_bit(*slot, bits::kRdonly)
                                                   : pte_wrprotect(*slot);
      }
    }
    if (step % 500 == 499 || step == 3999) {
      ASSERT_EQ(stats_of(fast.mmu.stats()), stats_of(slow.mmu.stats())) << "step " << step;
      ASSERT_EQ(contents(fast.mmu.l1d()), contents(slow.mmu.l1d())) << "step " << step;
      ASSERT_EQ(contents(fast.mmu.l1i()), contents(slow.mmu.l1i())) << "step " << step;
      ASSERT_EQ(contents(fast.mmu.l2()), contents(slow.mmu.l2())) << "step " << step;
    }
  }
  for (std::uint64_t p : pages)
    ASSERT_EQ(fast.pt.pte_slot(VirtAddr{p}, false)->ptr()->val,
              slow.pt.pte_slot(VirtAddr{p}, false)->ptr()->val);
  // The stream exercised both the fused path's common case and its exits.
  EXPECT_GT(fast.mmu.stats().walks, 100u);
  EXPECT_GT(fast.mmu.stats().l2_hits, 3u);
  EXPECT_GT(fast.mmu.stats().faults, 10u);
}

TEST(MmuFastPath, OnByDefaultWithoutAChecker) {
  const TlbConfig cfg = resolve_tlb_config("neoverse-n1");
  Machine m(Granule::k4K, Variant::Upstream, cfg, true, false);
  Mmu plain(m.mem, cfg, true, nullptr, 1);
  EXPECT_TRUE(MmuFastPathSwitch::get(plain));
  Checker checker(m.mem.geometry(), false);
  Mmu checked(m.mem, cfg, true, &checker, 1);
  EXPECT_FALSE(MmuFastPathSwitch::get(checked));
}

TEST(MmuFastPath, SameResultsStatsTlbsAndPtesAsTheGeneralPath) {
  std::uint64_t seed = 1;
  for (const TlbPreset& p : tlb_presets()) {
    const TlbConfig base = p.make();
    for (Granule gr : {Granule::k4K, Granule::k16K, Granule::k64K})
      for (Variant v : {Variant::Upstream, Variant::Off})
        for (bool hafdbs : {true, false}) {
          TlbConfig cfg = base;
          if (cfg.walk_cache_entries == 0) cfg.walk_cache_entries = 64;
          run_case({gr, v, cfg, hafdbs, seed++});
        }
  }
  // Replacement policies, split holding and random-PTE updates on the N1.
  const TlbConfig n1 = resolve_tlb_config("neoverse-n1");
  for (Replacement r : {Replacement::Lru, Replacement::Fifo, Replacement::Random})
    for (ContHolding h : {ContHolding::OneEntry, ContHolding::SplitPages})
      for (bool random_pte : {false, true}) {
        TlbConfig cfg = n1;
        cfg.l1d.replacement = cfg.l1i.replacement = cfg.l2.replacement = r;
        cfg.l1d.cont = cfg.l2.cont = h;
        cfg.hafdbs_random_pte = random_pte;
        cfg.walk_cache_entries = random_pte ? 8 : 64;  // 8: two sets, many misses
        for (Granule gr : {Granule::k4K, Granule::k64K})
          run_case({gr, Variant::Upstream, cfg, true, seed++});
      }
  // Organisations the fused path's fills do not inline (Tlb::fill_absent_l1
  // and _l2 hand them to fill_absent_other): set-associative L1s, an L2 of
  // 4, 3 or 16 ways, a fully associative L2.
  struct Shape {
    unsigned l1_entries, l1_ways, l2_entries, l2_ways;
  };
  for (Shape sh : {Shape{48, 4, 1024, 4}, Shape{48, 3, 768, 3}, Shape{32, 32, 2048, 16},
                   Shape{64, 64, 256, 256}})
    for (Replacement r : {Replacement::Lru, Replacement::Random}) {
      TlbConfig cfg = n1;
      cfg.name = "shape-" + std::to_string(sh.l1_ways) + "-" + std::to_string(sh.l2_ways);
      cfg.l1d.entries = cfg.l1i.entries = sh.l1_entries;
      cfg.l1d.ways = cfg.l1i.ways = sh.l1_ways;
      cfg.l2.entries = sh.l2_entries;
      cfg.l2.ways = sh.l2_ways;
      cfg.l1d.replacement = cfg.l1i.replacement = cfg.l2.replacement = r;
      run_case({Granule::k4K, Variant::Upstream, cfg, true, seed++});
    }
}

}  // namespace
}  // namespace contpte
