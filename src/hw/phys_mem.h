// hw/phys_mem.h — simulated physical memory: page-table pages and frame
// metadata, sparse.
//
// Owns: storage of page-table pages (the words the engine writes and the
// walker reads) and, per allocated folio, its head and size — what
// page_folio() reports. Frames hold no data bytes; memory use is
// proportional to what is touched (page-table pages and live folios).
// Must not know: allocation policy (mm), the contpte engine's rules.
//
// Layout: RAM frames are PFNs [0, ram_bytes / page_size). Page-table pages
// get physical addresses from a pool placed right after RAM, so they never
// alias a data frame and `memory` in a scenario is all available to folios.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "arch/granule.h"
#include "arch/pte.h"
#include "engine/env.h"

namespace contpte {

class PhysMem {
 public:
  PhysMem(Granule granule, std::uint64_t ram_bytes);
  PhysMem(const PhysMem&) = delete;
  PhysMem& operator=(const PhysMem&) = delete;

  const Geometry& geometry() const { return geo_; }
  std::uint64_t ram_bytes() const { return ram_bytes_; }
  std::uint64_t nr_frames() const { return ram_bytes_ >> geo_.page_shift; }

  // A zeroed page-table page, aligned to its size (so a PteSlot can be
  // aligned down to its block). Returns its physical address.
  PhysAddr alloc_table();
  // The words of a table page; nullptr if `pa` is not one. Inline, and
  // shifts rather than divisions (tables and chunks are powers of two): the
  // walker calls it for every level of every walk.
  Pte* table(PhysAddr pa) { return const_cast<Pte*>(std::as_const(*this).table(pa)); }
  const Pte* table(PhysAddr pa) const {
    if (pa.val < ram_bytes_ || (pa.val & (geo_.page_size() - 1))) return nullptr;
    const std::uint64_t idx = (pa.val - ram_bytes_) >> geo_.page_shift;
    if (idx >= nr_tables_) return nullptr;
    const unsigned per_chunk_shift = kChunkShift - geo_.page_shift;
    return chunks_[idx >> per_chunk_shift].get() +
           ((idx & ((std::uint64_t{1} << per_chunk_shift) - 1)) << (geo_.page_shift - 3));
  }
  // Tables ever allocated (the pool's high-water mark) and in use now.
  std::size_t nr_tables() const { return nr_tables_; }
  std::size_t live_tables() const { return nr_tables_ - free_tables_.size(); }
  // The most tables in use at once, and how many alloc_table() calls there
  // were (each hands out a zeroed page, as pte_alloc does).
  std::size_t peak_live_tables() const { return peak_live_tables_; }
  std::uint64_t tables_allocated() const { return tables_allocated_; }
  // Returns a table page to the pool (pte_free, pmd_free); the next
  // alloc_table() reuses it. Its words are zeroed now, so that a walk that
  // could still reach it finds nothing mapped; the caller unlinks it and
  // invalidates the walk caches first, as Linux frees tables only after the
  // mmu_gather flush.
  void free_table(PhysAddr pa);

  // Whether `p` is a descriptor word of a table page in use (not freed):
  // the only memory an engine call may touch (wild_write otherwise).
  bool is_table_word(const Pte* p) const;

  // Folio registry: which frames form one folio (page_folio()).
  void add_folio(Pfn head, unsigned order);
  void remove_folio(Pfn head);
  // split_folio: every page of the folio at `head` becomes a folio of its own.
  void split_folio(Pfn head);
  FolioInfo folio_of(Pfn pfn) const;
  bool is_ram(Pfn pfn) const { return pfn.val < nr_frames(); }

 private:
  struct AlignedFree {
    void operator()(Pte* p) const;
  };
  Geometry geo_;
  std::uint64_t ram_bytes_;
  std::uint64_t next_table_pa_;
  // Table pages in allocation order: table PA = ram_bytes + index * page,
  // so a lookup is an index, not a hash (the walker does one per level).
  // They are carved from chunks of kChunkBytes: one aligned allocation per
  // page would cost the host allocator's alignment padding on every PTE
  // page, doubling the memory of a sparse address space.
  static constexpr unsigned kChunkShift = 18;
  static constexpr std::size_t kChunkBytes = std::size_t{1} << kChunkShift;  // 256K
  std::size_t tables_per_chunk() const { return kChunkBytes / geo_.page_size(); }
  std::vector<std::unique_ptr<Pte[], AlignedFree>> chunks_;
  std::size_t nr_tables_ = 0;
  std::size_t peak_live_tables_ = 0;
  std::uint64_t tables_allocated_ = 0;
  std::vector<std::uint64_t> free_tables_;  // physical addresses, reused last-freed first
  std::map<std::uint64_t, std::uint64_t> folios_;  // head PFN -> nr pages
};

}  // namespace contpte
