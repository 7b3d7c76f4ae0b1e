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

std::optional<Pfn> BuddyAllocator::alloc_folio(unsigned order) {
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
  return Pfn{pfn};
}

void BuddyAllocator::fragment(double fraction, std::uint64_t seed) {
  std::vector<std::uint64_t> blocks(free_[max_order_].begin(), free_[max_order_].end());
  std::mt19937_64 rng(seed);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  const auto n = static_cast<std::size_t>(fraction * double(blocks.size()) + 0.5);
  for (std::size_t i = 0; i < n && i < blocks.size(); ++i) {
    free_[max_order_].erase(blocks[i]);
    free_frames_ -= std::uint64_t{1} << max_order_;
    for (std::uint64_t f = 0; f < (std::uint64_t{1} << max_order_); ++f) {
      insert_free(blocks[i] + f, 0);
      no_merge_.insert(blocks[i] + f);
    }
  }
}

void BuddyAllocator::free_folio(Pfn head, unsigned order) {
  mem_.remove_folio(head);
  if (order == 0 && no_merge_.count(head.val)) {
    insert_free(head.val, 0);
    return;
  }
  std::uint64_t pfn = head.val;
  while (order < max_order_) {
    const std::uint64_t buddy = pfn ^ (std::uint64_t{1} << order);
    auto it = free_[order].find(buddy);
    if (it == free_[order].end()) break;
    free_[order].erase(it);
    free_frames_ -= std::uint64_t{1} << order;
    pfn &= ~(std::uint64_t{1} << order);
    ++order;
  }
  insert_free(pfn, order);
}

}  // namespace contpte
