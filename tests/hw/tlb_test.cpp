// One TLB structure alone (hw/tlb.cpp) and the core descriptions around it
// (hw/tlb_presets.cpp): hits and misses with entries of mixed sizes, each
// replacement policy's victim, the two ways of holding a contiguous block,
// invalidation semantics, the preset table's sources, and every message of
// the JSON loader word for word.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "hw/tlb.h"

using namespace contpte;

namespace {

constexpr std::uint64_t K = 1024, M = 1024 * K, G = 1024 * M;

TlbStructureConfig structure(unsigned entries, unsigned ways, Replacement r = Replacement::Lru,
                             ContHolding c = ContHolding::OneEntry) {
  // Aggregate initialisation: assigning the name after construction trips
  // g++ 12's -Wrestrict false positive (GCC bug 105329) at -O3.
  return TlbStructureConfig{"T", entries, ways, r, c, 0};
}

// A leaf entry: `size` bytes at `va` mapping to `pa`.
TlbEntry entry(std::uint64_t va, std::uint64_t size, std::uint64_t pa, std::uint16_t asid = 1,
               unsigned level = 3, bool cont = false) {
  TlbEntry e;
  e.asid = asid;
  e.va = va;
  e.size_shift = static_cast<std::uint8_t>(std::countr_zero(size));
  e.level = static_cast<std::uint8_t>(level);
  e.cont = cont;
  e.pa = pa;
  e.desc = Pte{pa | bits::kTypePage | bits::kAf};
  e.page_shift = 12;
  return e;
}
TlbEntry page(std::uint64_t va, std::uint16_t asid = 1) {
  return entry(va, 4 * K, va + 1 * G, asid);
}

std::set<std::uint64_t> vas(const Tlb& t) {
  std::set<std::uint64_t> s;
  t.for_each([&](const TlbEntry& e) { s.insert(e.va); });
  return s;
}

// ---- hits and misses ---------------------------------------------------------------------

TEST(TlbLookup, MissesWhenEmptyThenHitsEveryByteOfThePage) {
  Tlb t(structure(48, 48));
  EXPECT_EQ(t.lookup(1, 0x400000), nullptr);
  EXPECT_FALSE(t.insert(page(0x400000), 0x400000).has_value());
  for (std::uint64_t off : {0ull, 1ull, 0x800ull, 0xfffull}) {
    const TlbEntry* e = t.lookup(1, 0x400000 + off);
    ASSERT_NE(e, nullptr) << off;
    EXPECT_EQ(e->va, 0x400000u);
    EXPECT_EQ(e->pa + off, 0x400000 + 1 * G + off);
  }
  EXPECT_EQ(t.lookup(1, 0x3fffff), nullptr);
  EXPECT_EQ(t.lookup(1, 0x401000), nullptr);
  EXPECT_EQ(t.lookup(2, 0x400000), nullptr) << "another ASID";
  EXPECT_EQ(t.size(), 1u);
}

TEST(TlbLookup, PageContiguousBlockAndBlockCoexistAndMatchTheirOwnRanges) {
  for (unsigned ways : {48u, 4u}) {  // fully and set associative
    Tlb t(structure(48, ways));
    t.insert(page(0x10000000), 0x10000000);
    t.insert(entry(0x20000000, 64 * K, 0x80000000, 1, 3, true), 0x20000000);  // CONT PTEs
    t.insert(entry(0x40000000, 2 * M, 0xc0000000, 1, 2), 0x40000000);        // PMD block
    ASSERT_EQ(t.size(), 3u);

    const TlbEntry* e = t.lookup(1, 0x2000f123);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->size(), 64 * K);
    EXPECT_TRUE(e->cont);
    EXPECT_EQ(e->pa + (0x2000f123 - e->va), 0x8000f123u);
    EXPECT_EQ(t.lookup(1, 0x20010000), nullptr) << "first byte after the 64K block";
    EXPECT_EQ(t.lookup(1, 0x1ffff000), nullptr) << "page before the 64K block";

    e = t.lookup(1, 0x401fffff);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->size(), 2 * M);
    EXPECT_EQ(e->level, 2);
    EXPECT_EQ(t.lookup(1, 0x40200000), nullptr);

    e = t.lookup(1, 0x10000fff);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->size(), 4 * K);
    EXPECT_EQ(t.lookup(1, 0x10001000), nullptr);
  }
}

TEST(TlbLookup, UnalignedVaInAnEntryIsAlignedAndPaFollows) {
  Tlb t(structure(8, 8));
  TlbEntry e = entry(0x20003000, 64 * K, 0x80003000, 1, 3, true);  // va/pa of the accessed page
  t.insert(e, 0x20003000);
  const TlbEntry* got = t.peek(1, 0x20000000);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->va, 0x20000000u);
  EXPECT_EQ(got->pa, 0x80000000u);
}

TEST(TlbInsert, SameVaAndSizeReplacesInPlace) {
  Tlb t(structure(2, 2));
  t.insert(page(0x1000), 0x1000);
  t.insert(page(0x2000), 0x2000);
  TlbEntry dirty = page(0x1000);
  dirty.desc = Pte{dirty.desc.val | bits::kDbm};
  EXPECT_FALSE(t.insert(dirty, 0x1000).has_value()) << "a refill evicts nothing";
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.peek(1, 0x1000)->desc, dirty.desc);
}

TEST(TlbInsert, OverlappingEntriesOfDifferentSizesAreBothKeptForTheChecker) {
  Tlb t(structure(8, 8));
  t.insert(page(0x20003000), 0x20003000);
  t.insert(entry(0x20000000, 64 * K, 0x80000000, 1, 3, true), 0x20003000);
  EXPECT_EQ(t.size(), 2u);
  unsigned overlapping = 0;
  t.for_each([&](const TlbEntry& e) { overlapping += e.covers(1, 0x20003000); });
  EXPECT_EQ(overlapping, 2u);
}

TEST(TlbConstruct, RejectsWaysThatDoNotDivideEntries) {
  EXPECT_THROW(Tlb(structure(1280, 7)), std::invalid_argument);
  EXPECT_THROW(Tlb(structure(0, 0)), std::invalid_argument);
  EXPECT_THROW(Tlb(structure(4, 8)), std::invalid_argument);
  EXPECT_NO_THROW(Tlb(structure(1280, 5)));
}

// ---- replacement -------------------------------------------------------------------------

TEST(TlbLru, FullyAssociativeEvictsTheLeastRecentlyUsed) {
  Tlb t(structure(4, 4));
  for (std::uint64_t va : {0x1000, 0x2000, 0x3000, 0x4000}) t.insert(page(va), va);
  ASSERT_NE(t.lookup(1, 0x1000), nullptr);  // 0x2000 is now the oldest use
  auto ev = t.insert(page(0x5000), 0x5000);
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->va, 0x2000u);
  ev = t.insert(page(0x6000), 0x6000);
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->va, 0x3000u);
  EXPECT_EQ(vas(t), (std::set<std::uint64_t>{0x1000, 0x4000, 0x5000, 0x6000}));
}

TEST(TlbLru, LargeFullyAssociativeStructureFindsEveryEntry) {
  Tlb t(structure(5000, 5000));  // past 4096 entries the index is sized differently
  for (std::uint64_t i = 0; i < 5000; ++i) ASSERT_FALSE(t.insert(page(i << 12), i << 12));
  for (std::uint64_t i = 0; i < 5000; ++i) ASSERT_NE(t.peek(1, i << 12), nullptr) << i;
  ASSERT_NE(t.lookup(1, 0), nullptr);
  EXPECT_EQ(t.insert(page(5000 << 12), 5000 << 12)->va, 1u << 12);
  EXPECT_EQ(t.invalidate_range(1, 0, 2500 << 12), 2499u);
  EXPECT_EQ(t.size(), 2501u);
}

TEST(TlbLru, PeekDoesNotCountAsAUse) {
  Tlb t(structure(2, 2));
  t.insert(page(0x1000), 0x1000);
  t.insert(page(0x2000), 0x2000);
  ASSERT_NE(t.peek(1, 0x1000), nullptr);
  EXPECT_EQ(t.insert(page(0x3000), 0x3000)->va, 0x1000u);
}

TEST(TlbLru, SetAssociativeEvictsOnlyWithinTheSet) {
  Tlb t(structure(8, 2));  // 4 sets indexed by (va >> size_shift) % 4
  // Pages 0, 4, 8 (page numbers) share set 0; page 1 lives in set 1.
  t.insert(page(0x0000), 0x0000);
  t.insert(page(0x1000), 0x1000);
  t.insert(page(0x4000), 0x4000);
  ASSERT_NE(t.lookup(1, 0x0000), nullptr);
  auto ev = t.insert(page(0x8000), 0x8000);
  ASSERT_TRUE(ev.has_value());
  EXPECT_EQ(ev->va, 0x4000u);
  EXPECT_EQ(vas(t), (std::set<std::uint64_t>{0x0000, 0x1000, 0x8000}));
  // A 64K entry is placed by its own number: 0x20000 >> 16 = 2, set 2.
  EXPECT_FALSE(t.insert(entry(0x20000, 64 * K, 0x900000, 1, 3, true), 0x20000).has_value());
}

TEST(TlbFifo, HitsDoNotRefreshAnEntry) {
  Tlb t(structure(4, 4, Replacement::Fifo));
  for (std::uint64_t va : {0x1000, 0x2000, 0x3000, 0x4000}) t.insert(page(va), va);
  ASSERT_NE(t.lookup(1, 0x1000), nullptr);
  EXPECT_EQ(t.insert(page(0x5000), 0x5000)->va, 0x1000u);
  EXPECT_EQ(t.insert(page(0x6000), 0x6000)->va, 0x2000u);
}

std::vector<std::uint64_t> random_evictions(std::uint64_t seed, unsigned ways) {
  Tlb t(structure(16, ways, Replacement::Random), seed);
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = 0; i < 400; ++i) {
    const std::uint64_t va = (i * 7919 % 1024) << 12;
    if (auto ev = t.insert(page(va), va)) out.push_back(ev->va);
  }
  return out;
}

TEST(TlbRandom, EvictionsAreDeterministicFromTheSeed) {
  for (unsigned ways : {16u, 4u}) {
    const auto a = random_evictions(7, ways);
    EXPECT_GT(a.size(), 300u);
    EXPECT_EQ(a, random_evictions(7, ways));
    EXPECT_NE(a, random_evictions(8, ways));
  }
}

// Which way of a set an entry goes to is invisible to LRU and FIFO but
// decides what a random eviction takes: a fill takes the free way of lowest
// index while the set has one (for_each lists a set's entries in way
// order), for every organisation of the set's replacement state (a recency
// order up to 8 ways, stamps beyond).
TEST(TlbPlacement, AFillTakesTheLowestFreeWay) {
  for (unsigned ways : {4u, 5u, 3u, 12u})
    for (Replacement r : {Replacement::Lru, Replacement::Fifo, Replacement::Random})
      for (bool use_fill : {false, true}) {
        SCOPED_TRACE("ways=" + std::to_string(ways) + " " + std::string(replacement_name(r)) +
                     (use_fill ? " fill" : " insert"));
        Tlb t(structure(2 * ways, ways, r));
        // Pages of set 0 (two sets: even page numbers).
        auto va_of = [](unsigned i) { return std::uint64_t{2 * i} << 12; };
        auto add = [&](unsigned i) {
          const std::uint64_t va = va_of(i);
          if (use_fill) {
            ASSERT_EQ(t.lookup(1, va), nullptr);
            t.fill(page(va), va);
          } else {
            t.insert(page(va), va);
          }
        };
        for (unsigned i = 0; i < ways; ++i) add(i);
        // Free ways 2 and 1 (in that order), then fill two new pages.
        t.invalidate_range(1, va_of(2), 4 * K);
        t.invalidate_range(1, va_of(1), 4 * K);
        add(100);
        add(101);
        std::vector<std::uint64_t> order;
        t.for_each([&](const TlbEntry& e) { order.push_back(e.va); });
        std::vector<std::uint64_t> want{va_of(0), va_of(100), va_of(101)};
        for (unsigned i = 3; i < ways; ++i) want.push_back(va_of(i));
        EXPECT_EQ(order, want);
      }
}

// ---- contiguous blocks: one entry or split -------------------------------------------------

TEST(TlbSplitPages, HoldsOnlyThePageOfTheAccess) {
  Tlb t(structure(48, 48, Replacement::Lru, ContHolding::SplitPages));
  const TlbEntry block = entry(0x20000000, 64 * K, 0x80000000, 1, 3, true);
  t.insert(block, 0x20003010);
  ASSERT_EQ(t.size(), 1u);
  const TlbEntry* e = t.lookup(1, 0x20003fff);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->va, 0x20003000u);
  EXPECT_EQ(e->size(), 4 * K);
  EXPECT_EQ(e->pa, 0x80003000u);
  EXPECT_TRUE(e->cont) << "still built from a PTE_CONT descriptor";
  EXPECT_EQ(t.lookup(1, 0x20004000), nullptr);
  EXPECT_EQ(t.lookup(1, 0x20002fff), nullptr);

  // Sixteen accesses, sixteen entries: what a core ignoring the hint pays.
  for (std::uint64_t off = 0; off < 64 * K; off += 4 * K) t.insert(block, 0x20000000 + off);
  EXPECT_EQ(t.size(), 16u);
}

TEST(TlbSplitPages, ContiguousPmdsSplitIntoOneBlockPerDescriptor) {
  Tlb t(structure(48, 48, Replacement::Lru, ContHolding::SplitPages));
  // 4K granule: 16 contiguous 2M blocks = 32M; the split keeps one 2M block.
  t.insert(entry(0x40000000, 32 * M, 0x100000000, 1, 2, true), 0x40000000 + 5 * 2 * M + 77);
  const TlbEntry* e = t.peek(1, 0x40000000 + 5 * 2 * M);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->size(), 2 * M);
  EXPECT_EQ(e->pa, 0x100000000 + 5 * 2 * M);
  // 16K granule: 128 contiguous 16K pages = 2M; the split keeps one 16K page.
  TlbEntry e16 = entry(0x80000000, 2 * M, 0x200000000, 1, 3, true);
  e16.page_shift = 14;
  t.insert(e16, 0x80000000 + 3 * 16 * K);
  e = t.peek(1, 0x80000000 + 3 * 16 * K);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->size(), 16 * K);
}

TEST(TlbSplitPages, BlocksWithoutTheHintAndUnknownPageSizeAreKeptWhole) {
  Tlb t(structure(48, 48, Replacement::Lru, ContHolding::SplitPages));
  t.insert(entry(0x40000000, 2 * M, 0x100000000, 1, 2, false), 0x40001000);
  EXPECT_EQ(t.peek(1, 0x40001000)->size(), 2 * M);
  TlbEntry presplit = entry(0x20000000, 64 * K, 0x80000000, 1, 3, true);
  presplit.page_shift = 0;  // the caller has split it already (or cannot say)
  t.insert(presplit, 0x20000000);
  EXPECT_EQ(t.peek(1, 0x20000000)->size(), 64 * K);
}

TEST(TlbOneEntry, HoldsTheWholeContiguousBlock) {
  Tlb t(structure(48, 48));
  for (std::uint64_t off = 0; off < 64 * K; off += 4 * K)
    if (!t.lookup(1, 0x20000000 + off))
      t.insert(entry(0x20000000, 64 * K, 0x80000000, 1, 3, true), 0x20000000 + off);
  EXPECT_EQ(t.size(), 1u);
}

// ---- invalidation ------------------------------------------------------------------------

TEST(TlbInvalidate, RangeDropsEntriesCoveringItButNotTheirNeighbours) {
  for (unsigned ways : {48u, 6u}) {
    Tlb t(structure(48, ways));
    t.insert(page(0x1ffff000), 0x1ffff000);                                        // before
    t.insert(entry(0x20000000, 64 * K, 0x80000000, 1, 3, true), 0x20000000);       // covering
    t.insert(page(0x20010000), 0x20010000);                                        // after
    t.insert(entry(0x20000000, 64 * K, 0x80000000, 2, 3, true), 0x20000000);       // other ASID
    t.insert(entry(0x40000000, 2 * M, 0xc0000000, 1, 2), 0x40000000);

    EXPECT_EQ(t.invalidate_range(1, 0x20003000, 4 * K), 1u);
    EXPECT_EQ(t.peek(1, 0x20000000), nullptr);
    EXPECT_NE(t.peek(1, 0x1ffff000), nullptr);
    EXPECT_NE(t.peek(1, 0x20010000), nullptr);
    EXPECT_NE(t.peek(2, 0x20000000), nullptr);

    // A page inside the 2M block drops the block.
    EXPECT_EQ(t.invalidate_range(1, 0x40100000, 4 * K), 1u);
    EXPECT_EQ(t.peek(1, 0x40000000), nullptr);
    EXPECT_EQ(t.size(), 3u);
    // An empty range drops nothing; the last byte of a range counts.
    EXPECT_EQ(t.invalidate_range(1, 0x1ffff000, 0), 0u);
    EXPECT_EQ(t.invalidate_range(1, 0x1fffe000, 0x1001), 1u);
  }
}

TEST(TlbInvalidate, LargeRangeTakesEveryEntryInsideAndNothingOutside) {
  Tlb t(structure(1280, 5));
  std::mt19937_64 rng(3);
  unsigned inside = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::uint64_t va = (rng() % (1u << 20)) << 12;  // 4 GiB of pages
    if (t.peek(1, va)) continue;
    t.insert(page(va), va);
  }
  t.for_each([&](const TlbEntry& e) { inside += e.va >= 1 * G && e.va < 3 * G; });
  const std::size_t before = t.size();
  EXPECT_EQ(t.invalidate_range(1, 1 * G, 2 * G), inside);
  EXPECT_EQ(t.size(), before - inside);
  t.for_each([&](const TlbEntry& e) { EXPECT_TRUE(e.va < 1 * G || e.va >= 3 * G); });
}

TEST(TlbInvalidate, RangeToTheTopOfTheAddressSpaceDoesNotWrap) {
  Tlb t(structure(8, 8));
  t.insert(page(0x1000), 0x1000);
  t.insert(page(0xfffffffffffff000), 0xfffffffffffff000);
  EXPECT_EQ(t.invalidate_range(1, 0xffffffffffffe000, 0x4000), 1u);
  EXPECT_NE(t.peek(1, 0x1000), nullptr);
}

TEST(TlbInvalidate, ByAsidAndAll) {
  Tlb t(structure(48, 48));
  for (std::uint64_t va = 0; va < 8 * 4 * K; va += 4 * K) {
    t.insert(page(va, 1), va);
    t.insert(page(va, 2), va);
  }
  EXPECT_EQ(t.invalidate_asid(1), 8u);
  EXPECT_EQ(t.lookup(1, 0), nullptr);
  EXPECT_NE(t.lookup(2, 0), nullptr);
  EXPECT_EQ(t.invalidate_all(), 8u);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.lookup(2, 0), nullptr);
  t.insert(page(0x5000), 0x5000);  // usable again
  EXPECT_NE(t.lookup(1, 0x5000), nullptr);
}

// ---- against a reference model -----------------------------------------------------------

// The same operations on a plain list with timestamps: every lookup, victim
// and invalidation must agree — entries of mixed sizes; LRU and FIFO; fully
// associative (small, with its tag filter, and large, with its hash index),
// and set associative with a power-of-two and another number of sets; the
// fill of insert() and the fill after a missed lookup (Tlb::fill, which
// does not report its victim: the victim must be gone and nothing else).
TEST(TlbModel, AgreesWithANaiveModelUnderRandomOperations) {
  struct Shape {
    unsigned entries, ways;
  };
  for (Replacement policy : {Replacement::Lru, Replacement::Fifo})
    for (Shape shape : {Shape{30, 30}, Shape{30, 5}, Shape{30, 3}, Shape{96, 96}})
      for (bool use_fill : {false, true}) {
        const unsigned entries = shape.entries, ways = shape.ways, nsets = entries / ways;
        SCOPED_TRACE(std::string(replacement_name(policy)) + " entries=" + std::to_string(entries) +
                     " ways=" + std::to_string(ways) + (use_fill ? " fill" : " insert"));
        Tlb t(structure(entries, ways, policy));
        struct Ref {
          TlbEntry e;
          std::uint64_t used;  // last use (LRU) or fill (FIFO)
        };
        std::vector<Ref> ref;
        std::uint64_t clock = 0;
        int evictions = 0;
        std::mt19937_64 rng(11 + ways);
        // Half the accesses go to a hot set somewhat larger than the
        // structure (hits, so that LRU and FIFO differ), half anywhere in
        // 64M (misses that fill it and evict); 2M entries rare, since each
        // drops every entry it covers.
        const std::uint64_t sizes[] = {4 * K, 4 * K, 4 * K, 4 * K, 64 * K, 64 * K, 64 * K, 2 * M};
        std::vector<std::uint64_t> hot(entries + entries / 2);
        for (auto& h : hot) h = (rng() % (64 * M)) & ~0xfffull;
        for (int step = 0; step < 20000; ++step) {
          const std::uint16_t asid = static_cast<std::uint16_t>(1 + rng() % 2);
          const std::uint64_t va =
              rng() % 2 ? hot[rng() % hot.size()] : (rng() % (64 * M)) & ~0xfffull;
          // Invalidations rare enough that the structure fills and evicts.
          const unsigned op = rng() % 50;
          if (op < 40) {  // lookup; fill on a miss
            const TlbEntry* got = t.lookup(asid, va);
            // No overlapping entries in this test: at most one covers va.
            auto want = std::find_if(ref.begin(), ref.end(),
                                     [&](const Ref& r) { return r.e.covers(asid, va); });
            ASSERT_EQ(got != nullptr, want != ref.end()) << step;
            if (got) {
              EXPECT_EQ(got->va, want->e.va) << step;
              if (policy == Replacement::Lru) want->used = ++clock;
              continue;
            }
            const std::uint64_t size = sizes[rng() % std::size(sizes)];
            const std::uint64_t first = va & ~(size - 1), last = first + size - 1;
            const TlbEntry e = entry(first, size, 0x100000000 + first, asid, size == 2 * M ? 2 : 3,
                                     size == 64 * K);
            // Keep both free of overlaps: drop what the new entry covers.
            t.invalidate_range(asid, first, size);
            std::erase_if(ref, [&](const Ref& r) {
              return r.e.asid == asid && r.e.va <= last && first <= r.e.va + r.e.size() - 1;
            });
            const std::uint64_t set = (e.va >> e.size_shift) % nsets;
            std::vector<Ref*> in_set;
            for (auto& r : ref)
              if ((r.e.va >> r.e.size_shift) % nsets == set) in_set.push_back(&r);
            std::optional<TlbEntry> want_ev;
            if (in_set.size() == ways) {
              Ref* victim = *std::min_element(in_set.begin(), in_set.end(),
                                              [](Ref* a, Ref* b) { return a->used < b->used; });
              want_ev = victim->e;
              ref.erase(ref.begin() + (victim - ref.data()));
              ++evictions;
            }
            if (use_fill) {
              t.fill(e, va);
              if (want_ev) {
                ASSERT_EQ(t.peek(want_ev->asid, want_ev->va), nullptr) << step;
              }
            } else {
              const auto ev = t.insert(e, va);
              ASSERT_EQ(ev.has_value(), want_ev.has_value()) << step;
              if (ev) {
                EXPECT_EQ(ev->va, want_ev->va) << step;
                EXPECT_EQ(ev->asid, want_ev->asid) << step;
              }
            }
            ref.push_back({e, ++clock});
          } else if (op < 49) {
            const std::uint64_t len = (1 + rng() % 64) * 4 * K;
            const std::uint64_t last = va + len - 1;
            const auto n = std::erase_if(ref, [&](const Ref& r) {
              return r.e.asid == asid && r.e.va <= last && va <= r.e.va + r.e.size() - 1;
            });
            ASSERT_EQ(t.invalidate_range(asid, va, len), n) << step;
          } else {
            const auto n = std::erase_if(ref, [&](const Ref& r) { return r.e.asid == asid; });
            ASSERT_EQ(t.invalidate_asid(asid), n) << step;
          }
          ASSERT_EQ(t.size(), ref.size()) << step;
        }
        EXPECT_GT(evictions, 500);  // replacement was exercised
      }
}

// ---- presets -----------------------------------------------------------------------------

const std::vector<std::string> kFields{
    "l1d.entries", "l1d.ways", "l1d.replacement", "l1d.cont", "l1d.hit_cycles",
    "l1i.entries", "l1i.ways", "l1i.replacement", "l1i.cont", "l1i.hit_cycles",
    "l2.entries",  "l2.ways",  "l2.replacement",  "l2.cont",  "l2.hit_cycles",
    "walk_cache_entries", "walk_access_cycles", "tlbi_range", "hafdbs", "bbml2_noabort",
    "hafdbs_random_pte",
    // The kernel-cost constants of the time estimate (docs/estimate.md).
    "costs.clock_ghz", "costs.base_cpi", "costs.fault_ns", "costs.pte_ns",
    "costs.zero_bytes_per_ns", "costs.copy_bytes_per_ns", "costs.tlbi_ns", "costs.reclaim_page_ns"};

TEST(TlbPresets, EveryPresetIsWellFormedAndEveryFieldHasASource) {
  std::set<std::string_view> names;
  ASSERT_GE(tlb_presets().size(), 3u);
  for (const auto& p : tlb_presets()) {
    SCOPED_TRACE(std::string(p.name));
    EXPECT_TRUE(names.insert(p.name).second) << "duplicate name";
    EXPECT_FALSE(p.summary.empty());
    const TlbConfig c = p.make();
    EXPECT_EQ(c.name, p.name);
    for (const TlbStructureConfig* s : {&c.l1d, &c.l1i, &c.l2}) {
      EXPECT_GE(s->entries, 1u);
      EXPECT_EQ(s->entries % s->ways, 0u) << s->name;
      EXPECT_NO_THROW(Tlb{*s});
    }
    std::vector<std::string> fields;
    for (const auto& [f, s] : c.sources) {
      fields.push_back(f);
      EXPECT_FALSE(s.empty()) << f;
      // An assumed value is labelled as such, up front.
      if (s.find("assum") != std::string::npos) {
        EXPECT_EQ(s.rfind("unknown", 0), 0u) << f << ": " << s;
      }
    }
    EXPECT_EQ(fields, kFields);
  }
}

TEST(TlbPresets, TheRequiredCoresHaveTheirDocumentedGeometry) {
  const TlbConfig n1 = resolve_tlb_config("neoverse-n1");
  EXPECT_EQ(n1.l1d.entries, 48u);
  EXPECT_EQ(n1.l1d.ways, 48u);
  EXPECT_EQ(n1.l1i.entries, 48u);
  EXPECT_EQ(n1.l2.entries, 1280u);
  EXPECT_EQ(n1.l2.ways, 5u);
  EXPECT_FALSE(n1.tlbi_range);
  EXPECT_EQ(n1.l1d.cont, ContHolding::OneEntry);

  const TlbConfig v1 = resolve_tlb_config("neoverse-v1");
  EXPECT_EQ(v1.l2.entries, 2048u);
  EXPECT_EQ(v1.l2.ways, 8u);
  EXPECT_TRUE(v1.tlbi_range);

  const TlbConfig m1 = resolve_tlb_config("apple-m1");
  EXPECT_EQ(m1.l1d.entries, 160u);
  EXPECT_EQ(m1.l2.entries, 3072u);

  // CPU features: every preset has hardware A/D (the scenarios' default
  // before the cores carried it) and none is on Linux 6.17's BBML2_NOABORT
  // allow-list.
  for (const TlbConfig* c : {&n1, &v1, &m1}) {
    EXPECT_TRUE(c->hafdbs) << c->name;
    EXPECT_FALSE(c->bbml2_noabort) << c->name;
  }

  EXPECT_EQ(default_tlb_preset(), "neoverse-n1");
  EXPECT_EQ(resolve_tlb_config("default").name, "neoverse-n1");
}

TEST(TlbPresets, ListingNamesEveryPresetItsGeometryAndSources) {
  const std::string s = format_presets();
  for (const auto& p : tlb_presets())
    EXPECT_NE(s.find(std::string(p.name) + " "), std::string::npos);
  EXPECT_NE(s.find("neoverse-n1 (default) — "), std::string::npos);
  EXPECT_EQ(s.find("(default)"), s.rfind("(default)")) << "one default";
  EXPECT_NE(s.find("  L2   1280 entries, 5-way (256 sets), lru, contiguous block: one-entry, "
                   "hit +3 cycles\n"),
            std::string::npos);
  EXPECT_NE(s.find("  L1D  48 entries, fully associative, lru, contiguous block: one-entry, "
                   "hit +1 cycle\n"),
            std::string::npos);
  EXPECT_NE(s.find("    l2.entries               Cortex-A76 Core TRM (Arm 100798, r3p0) A5.2.3"),
            std::string::npos);
  EXPECT_NE(s.find("FEAT_TLBIRANGE no"), std::string::npos);
  EXPECT_NE(s.find("FEAT_TLBIRANGE yes"), std::string::npos);
  EXPECT_NE(s.find("  FEAT_HAFDBS yes; FEAT_BBML2_NOABORT no\n"), std::string::npos);
  EXPECT_NE(s.find("    hafdbs                   ID_AA64MMFR1_EL1 = 0x10212122"), std::string::npos);
}

TEST(TlbPresets, ComponentNamesRoundTrip) {
  for (const auto& r : replacement_policies()) EXPECT_EQ(replacement_name(r.id), r.name);
  for (const auto& h : cont_holdings()) EXPECT_EQ(cont_holding_name(h.id), h.name);
}

// ---- JSON core descriptions --------------------------------------------------------------

std::string json_error(std::string_view text) {
  try {
    parse_tlb_config_json(text, "my-core.json");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TlbJson, TheShippedExampleLoads) {
  const std::string path = std::string(CONTPTE_SOURCE_DIR) + "/examples/cores/my-core.json";
  const TlbConfig c = resolve_tlb_config(path);
  EXPECT_EQ(c.name, "n1-nocont-l1");
  EXPECT_EQ(c.l1d.cont, ContHolding::SplitPages);
  EXPECT_EQ(c.l1i.cont, ContHolding::SplitPages);
  EXPECT_EQ(c.l1i.entries, 48u) << "from the base preset";
  EXPECT_EQ(c.l2.cont, ContHolding::OneEntry);
  EXPECT_EQ(c.l2.entries, 1280u);
  std::map<std::string, std::string> src(c.sources.begin(), c.sources.end());
  EXPECT_EQ(src["l1d.cont"], "hypothetical: what-if experiment, no real core");
  EXPECT_EQ(src["l1d.ways"], "given by " + path + " (no source stated)");
  EXPECT_EQ(src.size(), kFields.size());
}

TEST(TlbJson, MissingFieldsComeFromTheDefaultPreset) {
  const TlbConfig c = parse_tlb_config_json(R"({"l2": {"ways": 4}})", "dir/small.json");
  const TlbConfig n1 = resolve_tlb_config("default");
  EXPECT_EQ(c.name, "small") << "the file's stem when no name is given";
  EXPECT_EQ(c.description, "core described by dir/small.json (fields not given: neoverse-n1)");
  EXPECT_EQ(c.l2.entries, 1280u);
  EXPECT_EQ(c.l2.ways, 4u);
  EXPECT_EQ(c.l1d.entries, n1.l1d.entries);
  EXPECT_EQ(c.walk_access_cycles, n1.walk_access_cycles);
  std::map<std::string, std::string> src(c.sources.begin(), c.sources.end());
  std::map<std::string, std::string> n1src(n1.sources.begin(), n1.sources.end());
  EXPECT_EQ(src["l2.ways"], "given by dir/small.json (no source stated)");
  EXPECT_EQ(src["l2.entries"], n1src["l2.entries"]);
}

TEST(TlbJson, BaseSelectsAnotherPreset) {
  const TlbConfig c =
      parse_tlb_config_json(R"({"base": "apple-m1", "tlbi_range": false})", "x.json");
  EXPECT_EQ(c.l2.entries, 3072u);
  EXPECT_FALSE(c.tlbi_range);
}

TEST(TlbJson, CpuFeaturesAreFieldsOfTheCore) {
  const TlbConfig c = parse_tlb_config_json(
      R"({"hafdbs": false, "bbml2_noabort": true, "sources": {"bbml2_noabort": "what-if"}})",
      "x.json");
  EXPECT_FALSE(c.hafdbs);
  EXPECT_TRUE(c.bbml2_noabort);
  EXPECT_FALSE(c.tlbi_range) << "from the default preset";
  std::map<std::string, std::string> src(c.sources.begin(), c.sources.end());
  EXPECT_EQ(src["hafdbs"], "given by x.json (no source stated)");
  EXPECT_EQ(src["bbml2_noabort"], "what-if");
  const TlbConfig d = parse_tlb_config_json("{}", "y.json");
  EXPECT_TRUE(d.hafdbs);
  EXPECT_FALSE(d.bbml2_noabort);
  EXPECT_EQ(json_error(R"({"hafdbs": "on"})"),
            "my-core.json: hafdbs: expected true or false, got \"on\"");
  EXPECT_EQ(json_error(R"({"bbml2_noabort": 1})"),
            "my-core.json: bbml2_noabort: expected true or false, got 1");
}

// Issue 25: a core that changes only `entries` keeps the base structure's
// organisation while it stays valid, instead of failing on the base's ways.
TEST(TlbJson, EntriesAloneKeepTheBaseOrganisation) {
  // neoverse-n1: L1D fully associative (48), L2 5-way (1280).
  const TlbConfig fa = parse_tlb_config_json(R"({"l1d": {"entries": 64}})", "big-l1.json");
  EXPECT_EQ(fa.l1d.entries, 64u);
  EXPECT_EQ(fa.l1d.ways, 64u);  // still fully associative
  const TlbConfig set = parse_tlb_config_json(R"({"l2": {"entries": 2560}})", "big-l2.json");
  EXPECT_EQ(set.l2.entries, 2560u);
  EXPECT_EQ(set.l2.ways, 5u);  // still 5-way, now 512 sets
  const TlbConfig both = parse_tlb_config_json(R"({"l2": {"entries": 2048, "ways": 8}})", "x.json");
  EXPECT_EQ(both.l2.ways, 8u);
  EXPECT_EQ(json_error(R"({"l2": {"entries": 1024}})"),
            "my-core.json: l2.ways: the base's 5 ways do not divide entries 1024; give ways");
  EXPECT_EQ(json_error(R"({"l2": {"entries": 4}})"),
            "my-core.json: l2.ways: the base's 5 ways do not divide entries 4; give ways");
}

TEST(TlbJson, EveryErrorNamesTheFileAndTheField) {
  EXPECT_EQ(json_error(R"({"l2": {"ways": 7}})"),
            "my-core.json: l2.ways: 7 does not divide entries 1280");
  EXPECT_EQ(json_error(R"({"l1d": {"ways": 64}})"),
            "my-core.json: l1d.ways: 64 exceeds entries 48");
  EXPECT_EQ(json_error(R"({"l1d": {"entries": 0}})"),
            "my-core.json: l1d.entries: 0 must be at least 1");
  EXPECT_EQ(json_error(R"({"l1d": {"entries": 2000000, "ways": 2000000}})"),
            "my-core.json: l1d.entries: 2000000 is more than 1048576");
  EXPECT_EQ(json_error(R"({"l2": {"ways": 0}})"), "my-core.json: l2.ways: 0 must be at least 1");
  EXPECT_EQ(json_error(R"({"l3": {}})"),
            "my-core.json: l3: unknown field; expected one of name, description, base, l1d, l1i, "
            "l2, walk_cache_entries, walk_access_cycles, tlbi_range, hafdbs, bbml2_noabort, "
            "hafdbs_random_pte, costs, sources");
  EXPECT_EQ(json_error(R"({"l1d": {"assoc": 4}})"),
            "my-core.json: l1d.assoc: unknown field; expected one of entries, ways, replacement, "
            "cont, hit_cycles");
  EXPECT_EQ(json_error(R"({"l1d": {"entries": "48"}})"),
            "my-core.json: l1d.entries: expected a non-negative integer, got \"48\"");
  EXPECT_EQ(json_error(R"({"l1d": {"entries": -1}})"),
            "my-core.json: l1d.entries: expected a non-negative integer, got -1");
  EXPECT_EQ(json_error(R"({"walk_cache_entries": 1.5})"),
            "my-core.json: walk_cache_entries: expected a non-negative integer, got 1.5");
  EXPECT_EQ(json_error(R"({"walk_access_cycles": 10000000000})"),
            "my-core.json: walk_access_cycles: 10000000000 is too large");
  EXPECT_EQ(json_error(R"({"l1d": {"replacement": "plru"}})"),
            "my-core.json: l1d.replacement: unknown policy 'plru'; expected one of lru, fifo, "
            "random");
  EXPECT_EQ(json_error(R"({"l2": {"cont": "split"}})"),
            "my-core.json: l2.cont: unknown holding 'split'; expected one of one-entry, "
            "split-pages");
  EXPECT_EQ(json_error(R"({"tlbi_range": 1})"),
            "my-core.json: tlbi_range: expected true or false, got 1");
  EXPECT_EQ(json_error(R"({"hafdbs_random_pte": "yes"})"),
            "my-core.json: hafdbs_random_pte: expected true or false, got \"yes\"");
  EXPECT_EQ(json_error(R"({"l1i": 48})"), "my-core.json: l1i: expected an object, got 48");
  EXPECT_EQ(json_error(R"({"name": 3})"), "my-core.json: name: expected a string, got 3");
  EXPECT_EQ(json_error(R"({"name": ""})"), "my-core.json: name: must not be empty");
  EXPECT_EQ(json_error(R"({"base": "cortex-a53"})"),
            "my-core.json: base: unknown preset 'cortex-a53'; expected one of neoverse-n1, "
            "neoverse-v1, apple-m1");
  EXPECT_EQ(json_error(R"({"sources": {"l2.entrys": "x"}})"),
            "my-core.json: sources.l2.entrys: not a field of the core; expected a name such as "
            "l2.entries or tlbi_range");
  EXPECT_EQ(json_error(R"({"sources": {"l2.entries": ""}})"),
            "my-core.json: sources.l2.entries: must not be empty (write \"unknown\" if no source "
            "gives it)");
  EXPECT_EQ(json_error(R"({"sources": {"l2.entries": 5}})"),
            "my-core.json: sources.l2.entries: expected a string, got 5");
  EXPECT_EQ(json_error(R"({"sources": []})"), "my-core.json: sources: expected an object, got []");
  EXPECT_EQ(json_error("[1, 2]"),
            "my-core.json: expected a JSON object describing a core, got array");
  EXPECT_EQ(json_error("{\n  \"l2\": {\"ways\": 4,}\n}"),
            "my-core.json:2:20: invalid JSON: syntax error while parsing object key - unexpected "
            "'}'; expected string literal");
}

TEST(TlbJson, ResolveErrorsForNamesAndFiles) {
  auto error = [](std::string_view what) {
    try {
      resolve_tlb_config(what);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_EQ(error("neoverse-n2"),
            "unknown TLB preset 'neoverse-n2'; expected one of neoverse-n1, neoverse-v1, "
            "apple-m1, default, or a JSON file (NAME.json)");
  EXPECT_EQ(error("/nonexistent/my-core.json"),
            "/nonexistent/my-core.json: cannot open: No such file or directory");

  const auto dir = std::filesystem::temp_directory_path();
  const auto path = dir / "contpte-tlb-test-core.json";
  std::ofstream(path) << R"({"name": "tmp", "l2": {"ways": 7}})";
  EXPECT_EQ(error(path.string()), path.string() + ": l2.ways: 7 does not divide entries 1280");
  std::filesystem::remove(path);
}

}  // namespace
