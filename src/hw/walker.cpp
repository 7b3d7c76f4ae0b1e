#include "hw/walker.h"

#include <algorithm>
#include <bit>

namespace contpte {

WalkCache::WalkCache(unsigned entries) {
  sets_ = entries / kWays;
  if (entries && !sets_) sets_ = 1;
  if (sets_ > 1 && std::has_single_bit(sets_)) set_mask_ = sets_ - 1;
  slots_.resize(sets_ * kWays);
  next_.resize(sets_);
}

void WalkCache::clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{});
  std::fill(next_.begin(), next_.end(), 0);
}

void WalkCache::invalidate(std::uint16_t asid, std::uint64_t first, std::uint64_t last) {
  for (Slot& slot : slots_) {
    if (!slot.key) continue;
    const std::uint64_t k = slot.key - 1;
    const std::uint64_t idx = k & ((std::uint64_t{1} << 48) - 1);
    if ((k >> 48) == asid && idx >= first && idx <= last) slot = Slot{};
  }
}

void WalkCache::insert(std::uint16_t asid, std::uint64_t idx, Pte* table) {
  if (!sets_) return;
  const std::uint64_t k = key(asid, idx);
  const std::uint64_t s = set_of(idx);
  Slot* set = &slots_[s * kWays];
  for (unsigned w = 0; w < kWays; ++w)
    if (set[w].key == k) return;
  set[next_[s]] = Slot{k, table};
  next_[s] = static_cast<std::uint8_t>((next_[s] + 1) % kWays);
}

Walker::Walker(PhysMem& mem) : mem_(mem) {
  const Geometry& g = mem.geometry();
  idx_mask_ = g.ptrs_per_table() - 1;
  oa_mask_ = pte_addr_mask(g.page_shift);
  start_level_ = g.start_level;
  pmd_shift_ = g.pmd_shift();
  for (unsigned l = 0; l < 4; ++l) level_shift_[l] = g.level_shift(l);
  cont_pte_bits_ = static_cast<unsigned>(std::countr_zero(g.cont_ptes));
  cont_pmd_bits_ = static_cast<unsigned>(std::countr_zero(g.cont_pmds));
  level1_blocks_ = g.granule == Granule::k4K;
}

WalkResult Walker::walk_tables(PhysAddr root, std::uint16_t asid, VirtAddr va,
                               WalkCache* wc) const {
  WalkResult r;
  unsigned level = start_level_;
  const std::uint64_t pmd_index = va.val >> pmd_shift_;
  Pte* words = wc ? wc->lookup(asid, pmd_index) : nullptr;
  if (words)
    level = 3;
  else
    words = mem_.table(root);
  for (;; ++level) {
    if (!words) return r;  // not a table page: treat as invalid (cannot happen for our tables)
    Pte* slot = words + ((va.val >> level_shift_[level]) & idx_mask_);
    const Pte desc = *slot;
    ++r.mem_accesses;
    r.level = level;
    r.slot = slot;
    r.desc = desc;
    if (!(desc.val & bits::kValid)) return r;  // translation fault
    const bool is_table = desc.val & bits::kTable;
    if (level < 3 && is_table) {
      words = mem_.table(PhysAddr{desc.val & oa_mask_});
      if (level == 2 && wc && words) wc->insert(asid, pmd_index, words);
      continue;
    }
    // Leaf: a page at level 3 (bit 1 set), a block at levels 1-2 (bit 1
    // clear; level-1 blocks exist only with the 4K granule). Bit 1 clear at
    // level 3 is reserved: a translation fault.
    if (level == 3 && !is_table) return r;
    if (level < 3 && !(level == 2 || (level == 1 && level1_blocks_))) return r;
    finish_leaf(r, level, desc, va);
    return r;
  }
}

}  // namespace contpte
