// A walk through the walk cache starts at the level-3 table it names; for a
// valid page descriptor there the walker takes a one-read path of its own.
// Either way the walk must find what a walk from the root finds — the same
// leaf (or fault level), descriptor, slot, range and output address — with
// one read instead of one per level. Random tables: pages, contiguous
// pages, invalid and reserved level-3 entries, and level-2 blocks, for
// every granule.

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "hw/page_table.h"
#include "hw/walker.h"

using namespace contpte;

namespace {

constexpr std::uint64_t G = std::uint64_t{1} << 30;

class WalkCacheAgreement : public ::testing::TestWithParam<Granule> {};

TEST_P(WalkCacheAgreement, ACachedWalkFindsWhatAWalkFromTheRootFinds) {
  PhysMem mem(GetParam(), 64 * G);
  PageTable pt(mem);
  Walker walker(mem);
  WalkCache wc(64);
  const Geometry& g = mem.geometry();
  const std::uint64_t base = 0x40000000;
  std::mt19937_64 rng(GetParam() == Granule::k4K ? 1 : 2);
  // Eight PMD ranges of level-3 tables filled at random; a ninth mapped by a
  // level-2 block.
  const std::uint64_t ptrs = g.ptrs_per_table();
  for (std::uint64_t pmd = 0; pmd < 8; ++pmd) {
    for (std::uint64_t i = 0; i < ptrs; ++i) {
      const VirtAddr va{base + pmd * g.pmd_size() + (i << g.page_shift)};
      Pte* slot = pt.pte_slot(va, true)->ptr();
      const Pte page = pfn_pte(Pfn{1000 + pmd * ptrs + i}, prot::kPageShared, g.page_shift);
      switch (rng() % 5) {
        case 0: *slot = Pte{}; break;                                     // invalid
        case 1: *slot = Pte{page.val & ~bits::kTable}; break;             // reserved at level 3
        case 2: *slot = pte_mkcont(page); break;                          // contiguous hint
        default: *slot = page; break;
      }
    }
  }
  const VirtAddr block_va{base + 8 * g.pmd_size()};
  *pt.entry_slot(block_va, 2, true)->ptr() =
      Pte{(5 * G) | (prot::kPageShared.val & ~bits::kTable)};

  int cached_pages = 0;
  for (int i = 0; i < 4000; ++i) {
    const VirtAddr va{base + rng() % (9 * g.pmd_size())};
    const WalkResult want = walker.walk(pt.root(), 1, va, nullptr);
    const bool warm = wc.lookup(1, va.val >> g.pmd_shift()) != nullptr;
    const WalkResult got = walker.walk(pt.root(), 1, va, &wc);
    ASSERT_EQ(got.valid, want.valid) << i;
    ASSERT_EQ(got.level, want.level) << i;
    ASSERT_EQ(got.desc, want.desc) << i;
    ASSERT_EQ(got.slot, want.slot) << i;
    if (want.valid) {
      ASSERT_EQ(got.va_base, want.va_base) << i;
      ASSERT_EQ(got.size_shift, want.size_shift) << i;
      ASSERT_EQ(got.pa_base, want.pa_base) << i;
    }
    // A warm cache saves every read but the last; a cold one saves none.
    ASSERT_EQ(got.mem_accesses, warm ? 1u : want.mem_accesses) << i;
    cached_pages += warm && want.valid && want.level == 3;
  }
  EXPECT_GT(cached_pages, 1000);  // the one-read path ran, often
}

INSTANTIATE_TEST_SUITE_P(AllGranules, WalkCacheAgreement,
                         ::testing::Values(Granule::k4K, Granule::k16K, Granule::k64K),
                         [](const auto& info) {
                           std::string name = "g";
                           name += geometry(info.param).name;
                           return name;
                         });

}  // namespace
