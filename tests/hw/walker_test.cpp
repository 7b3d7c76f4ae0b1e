// The walker against hand-computed cases, for each granule: which
// descriptor it reads, how many reads, and the range and output address a
// TLB entry built from it covers — pages, contiguous blocks of pages
// (64K / 2M / 2M), level-2 blocks (2M / 32M / 512M), contiguous level-2
// blocks (32M / 1G / 16G) and the 4K granule's 1G level-1 block.

#include <gtest/gtest.h>

#include "hw/page_table.h"
#include "hw/walker.h"

using namespace contpte;

namespace {

constexpr std::uint64_t K = 1024, M = K * K, G = M * K;

class WalkerTest : public ::testing::TestWithParam<Granule> {
 protected:
  WalkerTest() : mem_(GetParam(), 64 * G), pt_(mem_), walker_(mem_) {}
  const Geometry& g() const { return mem_.geometry(); }
  Pte page(std::uint64_t pfn) { return pfn_pte(Pfn{pfn}, prot::kPageShared, g().page_shift); }
  // A level-2 block descriptor: bit 1 clear.
  Pte block(std::uint64_t pa) {
    return Pte{(pa & pte_addr_mask(g().page_shift)) | (prot::kPageShared.val & ~bits::kTable)};
  }
  PhysMem mem_;
  PageTable pt_;
  Walker walker_;
};

TEST_P(WalkerTest, PageDescriptorReadsOneEntryPerLevel) {
  const VirtAddr va{0x40000000 + 5 * g().page_size()};
  *pt_.pte_slot(va, true)->ptr() = page(0x1234);
  WalkResult w = walker_.walk(pt_.root(), 1, va, nullptr);
  ASSERT_TRUE(w.valid);
  EXPECT_EQ(w.level, 3u);
  EXPECT_EQ(w.mem_accesses, g().levels);
  EXPECT_EQ(w.size_shift, g().page_shift);
  EXPECT_EQ(w.va_base, va.val);
  EXPECT_EQ(w.pa_base, 0x1234ull << g().page_shift);
}

TEST_P(WalkerTest, ContiguousPagesWidenTheEntryToTheBlock) {
  // 64K with 4K pages, 2M with 16K and 64K pages.
  const std::uint64_t block = g().cont_pte_size();
  EXPECT_EQ(block, GetParam() == Granule::k4K ? 64 * K : 2 * M);
  const VirtAddr base{0x40000000};
  const std::uint64_t pfn0 = 16 * g().cont_ptes;
  for (unsigned i = 0; i < g().cont_ptes; ++i)
    *pt_.pte_slot(base + i * g().page_size(), true)->ptr() = pte_mkcont(page(pfn0 + i));
  const VirtAddr va = base + 3 * g().page_size() + 0x10;
  WalkResult w = walker_.walk(pt_.root(), 1, va, nullptr);
  ASSERT_TRUE(w.valid);
  EXPECT_EQ(std::uint64_t{1} << w.size_shift, block);
  EXPECT_EQ(w.va_base, base.val);
  EXPECT_EQ(w.pa_base, pfn0 << g().page_shift);
}

TEST_P(WalkerTest, Level2BlockAndContiguousLevel2Blocks) {
  const std::uint64_t pmd = g().pmd_size();
  EXPECT_EQ(pmd, GetParam() == Granule::k4K ? 2 * M : GetParam() == Granule::k16K ? 32 * M : 512 * M);
  const VirtAddr va{8 * G + 3 * pmd + 0x1000};
  *pt_.entry_slot(va, 2, true)->ptr() = block(40 * G);
  WalkResult w = walker_.walk(pt_.root(), 1, va, nullptr);
  ASSERT_TRUE(w.valid);
  EXPECT_EQ(w.level, 2u);
  EXPECT_EQ(w.mem_accesses, g().levels - 1);
  EXPECT_EQ(std::uint64_t{1} << w.size_shift, pmd);
  EXPECT_EQ(w.pa_base, 40 * G);

  // CONT_PMDS blocks: 32M with 4K, 1G with 16K, 16G with 64K.
  const std::uint64_t cont = g().cont_pmd_size();
  EXPECT_EQ(cont, GetParam() == Granule::k4K ? 32 * M : GetParam() == Granule::k16K ? 1 * G : 16 * G);
  const VirtAddr base{64 * G};
  for (unsigned i = 0; i < g().cont_pmds; ++i)
    *pt_.entry_slot(base + i * pmd, 2, true)->ptr() = pte_mkcont(block(128 * G + i * pmd));
  WalkResult c = walker_.walk(pt_.root(), 1, base + 5 * pmd + 0x2000, nullptr);
  ASSERT_TRUE(c.valid);
  EXPECT_EQ(std::uint64_t{1} << c.size_shift, cont);
  EXPECT_EQ(c.va_base, base.val);
  EXPECT_EQ(c.pa_base, 128 * G);
}

TEST_P(WalkerTest, InvalidDescriptorIsATranslationFaultAtItsLevel) {
  const VirtAddr va{0x40000000};
  WalkResult w = walker_.walk(pt_.root(), 1, va, nullptr);
  EXPECT_FALSE(w.valid);
  EXPECT_EQ(w.level, g().start_level);
  pt_.pte_slot(va, true);
  w = walker_.walk(pt_.root(), 1, va, nullptr);
  EXPECT_FALSE(w.valid);
  EXPECT_EQ(w.level, 3u);
  // PROT_NONE is present for Linux, invalid for the walker.
  *pt_.pte_slot(va, true)->ptr() = pfn_pte(Pfn{1}, prot::kPageNone, g().page_shift);
  EXPECT_FALSE(walker_.walk(pt_.root(), 1, va, nullptr).valid);
}

TEST_P(WalkerTest, WalkCacheSkipsTheUpperLevels) {
  WalkCache wc(16);
  const VirtAddr va{0x40000000};
  *pt_.pte_slot(va, true)->ptr() = page(7);
  EXPECT_EQ(walker_.walk(pt_.root(), 1, va, &wc).mem_accesses, g().levels);
  EXPECT_EQ(walker_.walk(pt_.root(), 1, va, &wc).mem_accesses, 1u);
  // Another ASID has its own cached entries.
  EXPECT_EQ(walker_.walk(pt_.root(), 2, va, &wc).mem_accesses, g().levels);
}

INSTANTIATE_TEST_SUITE_P(AllGranules, WalkerTest,
                         ::testing::Values(Granule::k4K, Granule::k16K, Granule::k64K),
                         [](const auto& info) {
                           std::string name = "g";
                           name += geometry(info.param).name;
                           return name;
                         });

TEST(Walker4K, Level1BlockIsOneGigabyte) {
  PhysMem mem(Granule::k4K, 64 * G);
  PageTable pt(mem);
  Walker walker(mem);
  const VirtAddr va{5 * G + 0x1234000};
  *pt.entry_slot(va, 1, true)->ptr() =
      Pte{(3 * G) | (prot::kPageShared.val & ~bits::kTable)};
  WalkResult w = walker.walk(pt.root(), 1, va, nullptr);
  ASSERT_TRUE(w.valid);
  EXPECT_EQ(w.level, 1u);
  EXPECT_EQ(w.mem_accesses, 2u);
  EXPECT_EQ(std::uint64_t{1} << w.size_shift, 1 * G);
  EXPECT_EQ(w.va_base, 5 * G);
  EXPECT_EQ(w.pa_base, 3 * G);
}

}  // namespace
