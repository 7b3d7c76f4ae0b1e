// mm/buddy.h — the buddy frame allocator (mm/page_alloc.c in miniature).
//
// Owns: per-order free lists over the simulated RAM's frames, splitting on
// allocation and merging buddies on free; registers each allocated folio in
// PhysMem so page_folio() finds it.
// Must not know: page tables, contpte, scenarios.
//
// Deterministic: the lowest free block of the smallest sufficient order is
// taken, so a scenario allocates the same PFNs on every run.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "hw/phys_mem.h"

namespace contpte {

// Largest buddy order per granule: Linux's MAX_PAGE_ORDER on arm64
// (ARCH_FORCE_MAX_ORDER: 10 for 4K, 11 for 16K, 13 for 64K), which is at
// least the PMD order so a PMD-sized folio can be allocated.
constexpr unsigned max_page_order(Granule g) {
  switch (g) {
    case Granule::k4K: return 10;
    case Granule::k16K: return 11;
    case Granule::k64K: return 13;
  }
  return 10;
}

class BuddyAllocator {
 public:
  explicit BuddyAllocator(PhysMem& mem);

  unsigned max_order() const { return max_order_; }
  // A naturally aligned block of 2^order frames registered as one folio,
  // or nullopt when no block that large is free. `counted` false: the
  // frames stay out of peak_used_frames() (the zero pages, which Linux
  // does not count as anyone's memory).
  std::optional<Pfn> alloc_folio(unsigned order, bool counted = true);
  void free_folio(Pfn head, unsigned order);

  // The `fragment F` scenario header: a fraction F of the free frames
  // (rounded to a frame) becomes order-0 frames that never merge again —
  // what long-lived unmovable allocations scattered through memory do to a
  // real buddy allocator. Free blocks of every order are taken in an order
  // drawn from `seed`, whole, the last one in part; `fragment 1.0` leaves
  // no free block above order 0. Large allocations then fail and fall
  // back, as on a fragmented machine.
  void fragment(double fraction, std::uint64_t seed);
  // Free blocks of any order above `order` (fragment 1.0 leaves none above 0).
  std::size_t free_blocks_above(unsigned order) const {
    std::size_t n = 0;
    for (unsigned o = order + 1; o <= max_order_; ++o) n += free_[o].size();
    return n;
  }

  std::uint64_t free_frames() const { return free_frames_; }
  // The most frames allocated at once (counted ones only): the peak of
  // memory in use by folios — anonymous, page cache, shmem — each whole.
  std::uint64_t peak_used_frames() const { return peak_used_; }
  std::size_t free_blocks(unsigned order) const { return free_[order].size(); }

 private:
  void insert_free(std::uint64_t pfn, unsigned order);

  PhysMem& mem_;
  unsigned max_order_;
  std::vector<std::set<std::uint64_t>> free_;  // per order: first PFN of free blocks
  std::uint64_t free_frames_ = 0;
  std::uint64_t uncounted_ = 0;  // frames allocated with counted == false
  std::uint64_t peak_used_ = 0;
  bool fragmented(std::uint64_t pfn) const { return pfn < no_merge_.size() && no_merge_[pfn]; }
  std::vector<bool> no_merge_;  // per frame: fragmented, freed back as order 0 and never merged
};

}  // namespace contpte
