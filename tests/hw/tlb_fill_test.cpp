// Tlb::fill, the fill the MMU makes after a walk, has a direct path of its
// own for the usual case (the lookup that just missed showed the key absent;
// set-associative or small fully associative structures). It must place,
// evict and count exactly as Tlb::insert does: the same operations on two
// structures, one filled through each, must leave the same entries, for
// every replacement policy, both ways of holding a contiguous block, and
// the organisations the direct path specialises (4, 5 and 8 ways; a small
// fully associative structure) and those it leaves to insert (3 ways, a
// large fully associative structure).

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "hw/tlb.h"

using namespace contpte;

namespace {

constexpr std::uint64_t K = 1024, M = 1024 * K;

using Snapshot = std::vector<std::tuple<std::uint16_t, std::uint64_t, unsigned, std::uint64_t>>;

Snapshot snapshot(const Tlb& t) {
  Snapshot s;
  t.for_each([&](const TlbEntry& e) { s.emplace_back(e.asid, e.va, e.size_shift, e.pa); });
  std::sort(s.begin(), s.end());
  return s;
}

// An entry of `size` bytes covering va: a page, a contiguous block of 16
// pages (PTE_CONT) or a level-2 block.
TlbEntry covering(std::uint64_t va, std::uint64_t size, std::uint16_t asid) {
  TlbEntry e;
  e.asid = asid;
  e.va = va & ~(size - 1);
  e.size_shift = static_cast<std::uint8_t>(std::countr_zero(size));
  e.level = size == 2 * M ? 2 : 3;
  e.cont = size == 64 * K;
  e.pa = 0x100000000 + e.va;
  e.desc = Pte{e.pa | bits::kTypePage | bits::kAf};
  e.page_shift = 12;
  return e;
}

void run_both(const TlbStructureConfig& cfg, std::uint64_t seed) {
  Tlb by_fill(cfg, 9), by_insert(cfg, 9);
  std::mt19937_64 rng(seed);
  const std::uint64_t sizes[] = {4 * K, 4 * K, 64 * K, 2 * M};
  std::size_t fills = 0;
  for (int step = 0; step < 6000; ++step) {
    const auto asid = static_cast<std::uint16_t>(1 + rng() % 2);
    const std::uint64_t va = (rng() % (16 * M)) & ~0xfffull;
    const unsigned op = rng() % 20;
    if (op < 16) {  // an access: a lookup, and a fill on a miss
      const TlbEntry* a = by_fill.lookup(asid, va);
      const TlbEntry* b = by_insert.lookup(asid, va);
      ASSERT_EQ(a != nullptr, b != nullptr) << step;
      if (a) {
        ASSERT_EQ(a->va, b->va) << step;
        ASSERT_EQ(a->size_shift, b->size_shift) << step;
        continue;
      }
      const TlbEntry e = covering(va, sizes[rng() % 4], asid);
      by_fill.fill(e, va);
      by_insert.insert(e, va);
      ++fills;
    } else if (op < 17) {  // a fill with no miss before it (the general path on both)
      const TlbEntry e = covering(va, sizes[rng() % 4], asid);
      by_fill.fill(e, va);
      by_insert.insert(e, va);
    } else if (op < 19) {
      const std::uint64_t len = (1 + rng() % 64) * 4 * K;
      ASSERT_EQ(by_fill.invalidate_range(asid, va, len), by_insert.invalidate_range(asid, va, len))
          << step;
    } else {
      ASSERT_EQ(by_fill.invalidate_asid(asid), by_insert.invalidate_asid(asid)) << step;
    }
    if (step % 97 == 0) {
      ASSERT_EQ(snapshot(by_fill), snapshot(by_insert)) << step;
    }
    ASSERT_EQ(by_fill.size(), by_insert.size()) << step;
  }
  EXPECT_EQ(snapshot(by_fill), snapshot(by_insert));
  EXPECT_GT(fills, 3000u);  // the walk-fill path was what ran, many times
}

TEST(TlbFill, PlacesAndEvictsAsInsertDoes) {
  struct Shape {
    unsigned entries, ways;
  };
  const Shape shapes[] = {{48, 48}, {128, 128}, {40, 4}, {40, 5}, {64, 8}, {30, 3}, {8, 4}};
  for (Replacement r : {Replacement::Lru, Replacement::Fifo, Replacement::Random})
    for (ContHolding c : {ContHolding::OneEntry, ContHolding::SplitPages})
      for (const Shape& s : shapes) {
        SCOPED_TRACE(std::string(replacement_name(r)) + " " + std::string(cont_holding_name(c)) +
                     " " + std::to_string(s.entries) + "/" + std::to_string(s.ways));
        run_both(TlbStructureConfig{"T", s.entries, s.ways, r, c, 0}, 3 + s.ways);
      }
}

}  // namespace
