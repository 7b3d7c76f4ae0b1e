// hw/walker.h — the stage-1 translation table walker (Arm ARM D8.2-D8.3).
//
// Owns: reading descriptors from the root down, for 4K and 16K granules (4
// levels) and 64K (3 levels) at 48-bit VA; table, block (level 1 with 4K,
// level 2) and page descriptors; the contiguous hint at level 3 and level
// 2, which widens the range one TLB entry may cover; a walk cache of
// non-leaf descriptors; the count and cost of descriptor reads.
// Must not know: TLB organisation, access permissions, hardware A/D
// updates (the MMU does those on the descriptor the walk found).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "hw/phys_mem.h"
#include "hw/tlb.h"

namespace contpte {

struct WalkResult {
  bool valid = false;       // false: translation fault at `level`
  unsigned level = 0;       // level of the leaf (or of the invalid descriptor)
  Pte desc{};               // the leaf descriptor read
  Pte* slot = nullptr;      // where it is stored (for A/D updates and checks)
  std::uint64_t va_base = 0;     // first VA the entry may cover
  std::uint8_t size_shift = 0;   // log2 of that range (CONT widens it)
  std::uint64_t pa_base = 0;     // output address of va_base
  unsigned mem_accesses = 0;     // descriptor reads made
};

// Caches non-leaf descriptors: the address of the level-3 table for a VA's
// PMD range, which lets a walk skip straight to the last read. Last-level
// TLB invalidations (all that user PTE changes issue) keep it; ASID and
// full invalidations clear it.
//
// Organisation: 4-way set associative, FIFO within a set, sets indexed by
// the PMD index (a common walk-cache design; cores do not document theirs).
class WalkCache {
 public:
  explicit WalkCache(unsigned entries);
  // Inline: every TLB miss asks. Sets are a power of two in every preset
  // (a mask, not a division), else the index is taken modulo the count.
  std::optional<std::uint64_t> lookup(std::uint16_t asid, std::uint64_t pmd_index) const {
    if (!sets_) return std::nullopt;
    const std::uint64_t k = key(asid, pmd_index);
    const Slot* set = &slots_[set_of(pmd_index) * kWays];
    for (unsigned w = 0; w < kWays; ++w)
      if (set[w].key == k) return set[w].table_pa;
    return std::nullopt;
  }
  void insert(std::uint16_t asid, std::uint64_t pmd_index, std::uint64_t table_pa);
  void clear();
  unsigned capacity() const { return static_cast<unsigned>(slots_.size()); }

 private:
  static constexpr unsigned kWays = 4;
  static std::uint64_t key(std::uint16_t asid, std::uint64_t idx) {
    return ((std::uint64_t{asid} << 48) ^ idx) + 1;  // 0 marks an empty slot
  }
  struct Slot {
    std::uint64_t key = 0;
    std::uint64_t table_pa = 0;
  };
  std::uint64_t set_of(std::uint64_t idx) const {
    return set_mask_ ? idx & set_mask_ : idx % sets_;
  }
  std::vector<Slot> slots_;          // sets * kWays
  std::vector<std::uint8_t> next_;   // per set: FIFO victim
  std::uint64_t sets_ = 0;
  std::uint64_t set_mask_ = 0;       // sets_ - 1 when a power of two above 1
};

class Walker {
 public:
  explicit Walker(PhysMem& mem);
  // Walks `va` from the table at `root`. With a walk cache, a hit skips the
  // reads of the levels above the last one.
  WalkResult walk(PhysAddr root, std::uint16_t asid, VirtAddr va, WalkCache* wc) const;

 private:
  void finish_leaf(WalkResult& r, unsigned level, Pte desc, VirtAddr va) const;
  PhysMem& mem_;
  // The geometry's numbers a walk uses, worked out once (a walk runs on
  // every TLB miss).
  std::uint64_t idx_mask_ = 0;     // one table's index bits
  std::uint64_t oa_mask_ = 0;      // output address bits of a descriptor
  unsigned start_level_ = 0;
  unsigned pmd_shift_ = 0;
  unsigned level_shift_[4] = {};
  unsigned cont_pte_bits_ = 0;     // log2 CONT_PTES
  unsigned cont_pmd_bits_ = 0;     // log2 CONT_PMDS
  bool level1_blocks_ = false;     // level-1 block descriptors (4K granule only)
};

}  // namespace contpte
