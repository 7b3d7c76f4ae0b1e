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

// Caches non-leaf descriptors: the level-3 table for a VA's PMD range,
// which lets a walk skip straight to the last read. Last-level TLB
// invalidations (all that user PTE changes issue) keep it; non-last-level
// ones (after page tables were freed) drop the entries of their range;
// ASID and full invalidations clear it.
//
// What it holds for a table is where the simulation keeps that table's
// words (PhysMem::table of the table's physical address), not the address
// itself: a table page keeps its physical address and its storage for the
// life of the PhysMem (a freed one goes back to PhysMem's pool, never to
// the host), so the two name the same table, and a hit then costs the walk
// one load instead of a translation of the address on every TLB miss. As
// on hardware, an entry left behind after its table was freed and reused
// would translate through the new owner's table: freeing code must issue
// the non-last-level flush first.
//
// Organisation: 4-way set associative, FIFO within a set, sets indexed by
// the PMD index (a common walk-cache design; cores do not document theirs).
class WalkCache {
 public:
  explicit WalkCache(unsigned entries);
  // The words of the level-3 table cached for (asid, pmd_index), or nullptr.
  // Inline: every TLB miss asks. Sets are a power of two in every preset
  // (a mask, not a division), else the index is taken modulo the count.
  Pte* lookup(std::uint16_t asid, std::uint64_t pmd_index) const {
    if (!sets_) return nullptr;
    const std::uint64_t k = key(asid, pmd_index);
    const Slot* set = &slots_[set_of(pmd_index) * kWays];
    for (unsigned w = 0; w < kWays; ++w)
      if (set[w].key == k) return set[w].table;
    return nullptr;
  }
  // `table`: the words of the level-3 table the level-2 descriptor names.
  void insert(std::uint16_t asid, std::uint64_t pmd_index, Pte* table);
  void clear();
  // A non-last-level TLBI by VA (TLBI VAE1IS and its range forms) for the
  // PMD indices [first, last] of `asid`: what freeing a table needs.
  void invalidate(std::uint16_t asid, std::uint64_t first, std::uint64_t last);
  unsigned capacity() const { return static_cast<unsigned>(slots_.size()); }

 private:
  static constexpr unsigned kWays = 4;
  static std::uint64_t key(std::uint16_t asid, std::uint64_t idx) {
    return ((std::uint64_t{asid} << 48) ^ idx) + 1;  // 0 marks an empty slot
  }
  struct Slot {
    std::uint64_t key = 0;
    Pte* table = nullptr;
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
  // Inline: the common walk (the walk cache gives the level-3 table, whose
  // entry is a valid page descriptor: one read) is part of every TLB miss.
  WalkResult walk(PhysAddr root, std::uint16_t asid, VirtAddr va, WalkCache* wc) const {
    if (wc) {
      if (Pte* slot = cached_leaf_slot(asid, va, *wc)) {
        const Pte desc = *slot;
        if (is_page(desc)) [[likely]] {
          WalkResult r;
          r.mem_accesses = 1;
          r.level = 3;
          r.slot = slot;
          r.desc = desc;
          finish_leaf(r, 3, desc, va);
          return r;
        }
      }
    }
    return walk_tables(root, asid, va, wc);
  }

 private:
  // The MMU's fused miss path (Mmu::miss_fast) reads the level-3 slot once
  // for its prefetch and its walk; it uses the two helpers below, which
  // are the first half of walk() above.
  friend class Mmu;
  // The level-3 descriptor the walk cache leads to for `va` (the one read
  // a walk-cache hit makes), or nullptr when the walk cache misses.
  Pte* cached_leaf_slot(std::uint16_t asid, VirtAddr va, const WalkCache& wc) const {
    if (Pte* words = wc.lookup(asid, va.val >> pmd_shift_)) [[likely]]
      return words + ((va.val >> level_shift_[3]) & idx_mask_);
    return nullptr;
  }
  // A valid page descriptor (what a level-3 read must find to be a leaf).
  static bool is_page(Pte d) {
    constexpr std::uint64_t kPage = bits::kValid | bits::kTable;
    return (d.val & kPage) == kPage;
  }
  // The walk from the root (or from the walk cache's table, for anything
  // but a valid page descriptor there).
  WalkResult walk_tables(PhysAddr root, std::uint16_t asid, VirtAddr va, WalkCache* wc) const;
  // A valid leaf descriptor `desc` at `level`: the range one TLB entry
  // built from it covers, and that range's output address.
  void finish_leaf(WalkResult& r, unsigned level, Pte desc, VirtAddr va) const {
    const unsigned shift = level_shift_[level];
    unsigned size_shift = shift;
    // The contiguous hint: CONT_PTES level-3 entries, or CONT_PMDS level-2
    // entries, form one aligned range that a TLB may cache as one entry.
    if (pte_cont(desc)) {
      if (level == 3) size_shift = shift + cont_pte_bits_;
      if (level == 2) size_shift = shift + cont_pmd_bits_;
    }
    const std::uint64_t size = std::uint64_t{1} << size_shift;
    const std::uint64_t block_mask = (std::uint64_t{1} << shift) - 1;
    r.valid = true;
    r.size_shift = static_cast<std::uint8_t>(size_shift);
    r.va_base = va.val & ~(size - 1);
    // The output of va_base: this descriptor's output minus va's offset
    // from va_base in whole descriptor units (the hint says the run is
    // contiguous).
    const std::uint64_t oa = desc.val & oa_mask_ & ~block_mask;
    r.pa_base = oa - ((va.val & ~block_mask) - r.va_base);
  }
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
