// tests/mm/buddy_allocator_test.cpp — the buddy frame allocator: natural
// alignment, determinism (lowest block of the smallest sufficient order),
// splitting, merging on free, limits, and folio registration.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "mm/buddy.h"

namespace contpte {
namespace {

constexpr std::uint64_t kRam = std::uint64_t{64} << 20;

class BuddyAllocatorTest : public ::testing::TestWithParam<Granule> {};

TEST_P(BuddyAllocatorTest, MaxOrderIsLinuxMaxPageOrder) {
  EXPECT_EQ(max_page_order(Granule::k4K), 10u);
  EXPECT_EQ(max_page_order(Granule::k16K), 11u);
  EXPECT_EQ(max_page_order(Granule::k64K), 13u);
  // At least the PMD order, so a PMD-sized folio can be allocated.
  const Geometry& g = geometry(GetParam());
  EXPECT_GE(max_page_order(GetParam()), g.pmd_shift() - g.page_shift);
}

TEST_P(BuddyAllocatorTest, FoliosAreNaturallyAlignedRegisteredAndDisjoint) {
  PhysMem mem(GetParam(), kRam);
  BuddyAllocator buddy(mem);
  EXPECT_EQ(buddy.free_frames(), mem.nr_frames());
  std::set<std::uint64_t> used;
  const unsigned orders[] = {0, 3, 1, 0, 4, 2, 5, 0, 7};
  for (unsigned o : orders) {
    if (o > buddy.max_order()) continue;
    const auto pfn = buddy.alloc_folio(o);
    ASSERT_TRUE(pfn.has_value());
    EXPECT_EQ(pfn->val % (1ull << o), 0u) << "order " << o;
    const FolioInfo f = mem.folio_of(*pfn + ((1ull << o) - 1));
    EXPECT_TRUE(f.valid);
    EXPECT_EQ(f.head, *pfn);
    EXPECT_EQ(f.nr_pages, 1ull << o);
    for (std::uint64_t p = pfn->val; p < pfn->val + (1ull << o); ++p)
      EXPECT_TRUE(used.insert(p).second) << "frame " << p << " handed out twice";
  }
  EXPECT_EQ(buddy.free_frames(), mem.nr_frames() - used.size());
}

TEST_P(BuddyAllocatorTest, DeterministicLowestFirstAndBuddiesAdjacent) {
  PhysMem m1(GetParam(), kRam), m2(GetParam(), kRam);
  BuddyAllocator b1(m1), b2(m2);
  for (unsigned o : {2u, 0u, 4u, 1u}) EXPECT_EQ(b1.alloc_folio(o), b2.alloc_folio(o));
  // A fresh allocator splits its first block and hands out the low half,
  // then its buddy.
  PhysMem m3(GetParam(), kRam);
  BuddyAllocator b3(m3);
  EXPECT_EQ(b3.alloc_folio(3), Pfn{0});
  EXPECT_EQ(b3.alloc_folio(3), Pfn{8});
  EXPECT_EQ(b3.alloc_folio(0), Pfn{16});
}

TEST_P(BuddyAllocatorTest, FreeMergesBackToTheInitialState) {
  PhysMem mem(GetParam(), kRam);
  BuddyAllocator buddy(mem);
  auto free_lists = [&] {
    std::vector<std::size_t> v;
    for (unsigned o = 0; o <= buddy.max_order(); ++o) v.push_back(buddy.free_blocks(o));
    return v;
  };
  const auto initial = free_lists();
  std::vector<std::pair<Pfn, unsigned>> got;
  for (unsigned o : {0u, 0u, 1u, 2u, 5u, 3u}) got.push_back({buddy.alloc_folio(o).value(), o});
  EXPECT_NE(free_lists(), initial);
  for (auto it = got.rbegin(); it != got.rend(); ++it) {
    buddy.free_folio(it->first, it->second);
    EXPECT_FALSE(mem.folio_of(it->first).valid) << "freed folios leave the registry";
  }
  EXPECT_EQ(buddy.free_frames(), mem.nr_frames());
  EXPECT_EQ(free_lists(), initial) << "every split merged back";
}

TEST_P(BuddyAllocatorTest, LimitsAndExhaustion) {
  PhysMem mem(GetParam(), std::uint64_t{8} << 20);
  BuddyAllocator buddy(mem);
  EXPECT_FALSE(buddy.alloc_folio(buddy.max_order() + 1).has_value());
  std::uint64_t n = 0;
  while (buddy.alloc_folio(0)) ++n;
  EXPECT_EQ(n, mem.nr_frames());
  EXPECT_EQ(buddy.free_frames(), 0u);
  EXPECT_FALSE(buddy.alloc_folio(0).has_value());
}

// `fragment F` (SCENARIO.md): a fraction F of free memory at order 0.
// fragment 1.0 leaves no free block above order 0 — also the blocks split
// before fragmenting (here: by an allocation first) and, with 64K pages,
// memory smaller than one max-order block (512M), which fragmenting whole
// max-order blocks left untouched.
TEST_P(BuddyAllocatorTest, FragmentOneLeavesNothingAboveOrderZero) {
  PhysMem mem(GetParam(), kRam);
  BuddyAllocator buddy(mem);
  ASSERT_TRUE(buddy.alloc_folio(0));  // splits a block, as the zero page does
  const std::uint64_t free = buddy.free_frames();
  buddy.fragment(1.0, 7);
  EXPECT_EQ(buddy.free_frames(), free);
  EXPECT_EQ(buddy.free_blocks_above(0), 0u);
  EXPECT_EQ(buddy.free_blocks(0), free);
  EXPECT_FALSE(buddy.alloc_folio(1));
  // A fragmented frame freed again stays at order 0, and so does its
  // neighbour's: they never merge.
  auto a = buddy.alloc_folio(0), b = buddy.alloc_folio(0);
  ASSERT_TRUE(a && b);
  buddy.free_folio(*a, 0);
  buddy.free_folio(*b, 0);
  EXPECT_EQ(buddy.free_blocks_above(0), 0u);
}

// A fraction F: F of the free frames (to the nearest frame) are at order
// 0, the rest stays in blocks; property over several fractions and seeds.
TEST_P(BuddyAllocatorTest, FragmentPutsTheFractionOfFreeFramesAtOrderZero) {
  for (double f : {0.0, 0.1, 0.3, 0.5, 0.77, 1.0})
    for (std::uint64_t seed : {1u, 2u, 3u}) {
      PhysMem mem(GetParam(), kRam);
      BuddyAllocator buddy(mem);
      ASSERT_TRUE(buddy.alloc_folio(0));
      const std::uint64_t free = buddy.free_frames();
      buddy.fragment(f, seed);
      EXPECT_EQ(buddy.free_frames(), free);
      const auto want = static_cast<std::uint64_t>(f * double(free) + 0.5);
      // The order-0 list also holds the buddy the first allocation left
      // and, when the last block is taken in part, one order-0 frame of
      // its remainder.
      EXPECT_GE(buddy.free_blocks(0), want) << "fraction " << f << " seed " << seed;
      EXPECT_LE(buddy.free_blocks(0), want + 2) << "fraction " << f << " seed " << seed;
    }
}

INSTANTIATE_TEST_SUITE_P(AllGranules, BuddyAllocatorTest,
                         ::testing::Values(Granule::k4K, Granule::k16K, Granule::k64K),
                         [](const ::testing::TestParamInfo<Granule>& info) {
                           std::string n("g");
                           n.append(geometry(info.param).name);
                           return n;
                         });

}  // namespace
}  // namespace contpte
