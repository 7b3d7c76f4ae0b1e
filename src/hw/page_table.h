// hw/page_table.h — one address space's translation tables in PhysMem.
//
// Owns: the table descriptors from the root down to the level-3 (PTE)
// tables, created on demand as Linux's pte_alloc does, and the map from a
// PTE slot back to its virtual address (for traces and the checker).
// Must not know: what is mapped (mm), PTE_CONT policy (engine).
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "hw/phys_mem.h"

namespace contpte {

class PageTable {
 public:
  explicit PageTable(PhysMem& mem);

  PhysAddr root() const { return root_; }
  const Geometry& geometry() const { return mem_.geometry(); }

  // The level-3 slot of `va`, allocating intermediate tables when `alloc`.
  // nullopt if a table is missing and !alloc. `va` must be a user address.
  std::optional<PteSlot> pte_slot(VirtAddr va, bool alloc);
  // The descriptor slot of `va` at `level` (start_level..3), allocating the
  // tables above it when `alloc`. Level 2 is where a PMD block is written.
  std::optional<PteSlot> entry_slot(VirtAddr va, unsigned level, bool alloc);
  // The VA a slot maps, if the slot belongs to one of this table's PTE pages.
  std::optional<VirtAddr> va_of(PteSlot slot) const;
  // The first VA a level-2 (PMD) slot maps, if it is one of this table's.
  std::optional<VirtAddr> pmd_va_of(PteSlot slot) const;

  // A new, empty PTE page for the PMD range at `pmd_base`, not yet linked:
  // splitting a huge PMD fills it before pmd_populate makes it visible.
  // Returns its physical address; pte_page() gives its first slot.
  PhysAddr alloc_pte_page(VirtAddr pmd_base);
  PteSlot pte_page(PhysAddr pa) { return PteSlot{mem_.table(pa)}; }
  // The table descriptor that links a lower table (pmd_populate).
  static Pte table_desc(PhysAddr pa);

  // free_pgd_range: unlinks every table below the root that maps only
  // addresses in [addr, end) and lies inside [floor, ceiling) — the gap
  // between the neighbouring mappings (`ceiling` 0: the top of the address
  // space) — by Linux's rules: PTE tables whose whole PMD range is inside,
  // and each upper table whose whole range is inside. The tables are not
  // freed yet: the caller flushes the walk caches for `FreedTables::va`
  // ranges, then calls release().
  struct FreedTable {
    std::uint64_t va;     // first address the table mapped
    unsigned level;       // the level of its entries (3: a PTE table)
    PhysAddr pa;
  };
  std::vector<FreedTable> free_pgd_range(std::uint64_t addr, std::uint64_t end, std::uint64_t floor,
                                         std::uint64_t ceiling);
  void release(const std::vector<FreedTable>& tables);

  // Calls fn(first VA, first slot) for every allocated PTE page.
  template <class Fn>
  void for_each_pte_page(Fn&& fn) const {
    for (const auto& [ptr, base] : pte_page_va_) fn(VirtAddr{base}, PteSlot{const_cast<Pte*>(ptr)});
  }
  // Calls fn(first VA, first slot) for every allocated level-2 (PMD) table.
  template <class Fn>
  void for_each_pmd_page(Fn&& fn) const {
    for (const auto& [ptr, base] : pmd_page_va_) fn(VirtAddr{base}, PteSlot{const_cast<Pte*>(ptr)});
  }

 private:
  void free_range(unsigned level, PhysAddr table, std::uint64_t addr, std::uint64_t end, std::uint64_t floor,
                  std::uint64_t ceiling, std::vector<FreedTable>& out);
  void unlink(Pte& desc, unsigned child_level, std::uint64_t va, std::vector<FreedTable>& out);

  PhysMem& mem_;
  PhysAddr root_;
  std::unordered_map<const Pte*, std::uint64_t> pte_page_va_;  // PTE page -> first VA
  std::unordered_map<const Pte*, std::uint64_t> pmd_page_va_;  // level-2 table -> first VA
};

}  // namespace contpte
