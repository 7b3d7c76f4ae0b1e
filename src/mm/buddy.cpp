#include "mm/buddy.h"

#include <algorithm>
#include <cassert>
#include <random>

namespace contpte {

BuddyAllocator::BuddyAllocator(PhysMem& mem)
    : mem_(mem), max_order_(max_page_order(mem.geometry().granule)), free_(max_order_ + 1) {
  // Carve RAM into the largest naturally aligned blocks that fit.
  std::uint64_t pfn = 0;
  const std::uint64_t end = mem.nr_frames();
  while (pfn < end) {
    unsigned order = max_order_;
    while (order > 0 && ((pfn & ((std::uint64_t{1} << order) - 1)) != 0 ||
                         pfn + (std::uint64_t{1} << order) > end))
      --order;
    insert_free(pfn, order);
    pfn += std::uint64_t{1} << order;
  }
}

void BuddyAllocator::insert_free(std::uint64_t pfn, unsigned order) {
  free_[order].insert(pfn);
  free_frames_ += std::uint64_t{1} << order;
}

std::optional<Pfn> BuddyAllocator::alloc_folio(unsigned order, bool counted) {
  if (order > max_order_) return std::nullopt;
  unsigned o = order;
  while (o <= max_order_ && free_[o].empty()) ++o;
  if (o > max_order_) return std::nullopt;
  const std::uint64_t pfn = *free_[o].begin();
  free_[o].erase(free_[o].begin());
  free_frames_ -= std::uint64_t{1} << o;
  // Split: keep the low half, free the high halves.
  while (o > order) {
    --o;
    insert_free(pfn + (std::uint64_t{1} << o), o);
  }
  mem_.add_folio(Pfn{pfn}, order);
  if (!counted) uncounted_ += std::uint64_t{1} << order;
  peak_used_ = std::max(peak_used_, mem_.nr_frames() - free_frames_ - uncounted_);
  return Pfn{pfn};
}

void BuddyAllocator::fragment(double fraction, std::uint64_t seed) {
  // Every free block, of any order, in an order drawn from the seed.
  std::vector<std::pair<std::uint64_t, unsigned>> blocks;
  for (unsigned o = 0; o <= max_order_; ++o)
    for (std::uint64_t pfn : free_[o]) blocks.emplace_back(pfn, o);
  std::mt19937_64 rng(seed);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  if (no_merge_.size() < mem_.nr_frames()) no_merge_.resize(mem_.nr_frames(), false);
  // A fraction of the free frames, rounded to the nearest frame.
  std::uint64_t left = static_cast<std::uint64_t>(fraction * double(free_frames_) + 0.5);
  for (const auto& [pfn, order] : blocks) {
    if (left == 0) break;
    const std::uint64_t n = std::uint64_t{1} << order;
    if (order == 0 && no_merge_[pfn]) continue;  // already fragmented: not counted twice
    free_[order].erase(pfn);
    free_frames_ -= n;
    // The first `take` frames become unmergeable order-0 frames; the rest
    // of the block goes back as the largest aligned blocks it holds.
    const std::uint64_t take = std::min(n, left);
    for (std::uint64_t f = 0; f < take; ++f) {
      insert_free(pfn + f, 0);
      no_merge_[pfn + f] = true;
    }
    left -= take;
    for (std::uint64_t f = pfn + take; f < pfn + n;) {
      unsigned o = static_cast<unsigned>(__builtin_ctzll(f | (std::uint64_t{1} << order)));
      while (f + (std::uint64_t{1} << o) > pfn + n) --o;
      insert_free(f, o);
      f += std::uint64_t{1} << o;
    }
  }
}

void BuddyAllocator::free_folio(Pfn head, unsigned order) {
  mem_.remove_folio(head);
  if (order == 0 && fragmented(head.val)) {
    insert_free(head.val, 0);
    return;
  }
  std::uint64_t pfn = head.val;
  while (order < max_order_) {
    const std::uint64_t buddy = pfn ^ (std::uint64_t{1} << order);
    auto it = free_[order].find(buddy);
    if (it == free_[order].end() || (order == 0 && fragmented(buddy))) break;
    free_[order].erase(it);
    free_frames_ -= std::uint64_t{1} << order;
    pfn &= ~(std::uint64_t{1} << order);
    ++order;
  }
  insert_free(pfn, order);
}

}  // namespace contpte
