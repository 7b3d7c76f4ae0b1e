#include "hw/page_table.h"

#include <cassert>

namespace contpte {

namespace {
// Table descriptor (Arm ARM D8.3.1): valid + table bit, next-level address.
constexpr std::uint64_t kTableDesc = bits::kValid | bits::kTable;
}  // namespace

PageTable::PageTable(PhysMem& mem) : mem_(mem), root_(mem.alloc_table()) {}

std::optional<PteSlot> PageTable::pte_slot(VirtAddr va, bool alloc) {
  return entry_slot(va, 3, alloc);
}

std::optional<PteSlot> PageTable::entry_slot(VirtAddr va, unsigned target, bool alloc) {
  const Geometry& g = mem_.geometry();
  assert(va.val < kUserVaEnd);
  assert(target >= g.start_level && target <= 3);
  const std::uint64_t idx_mask = g.ptrs_per_table() - 1;
  PhysAddr table = root_;
  for (unsigned level = g.start_level; level < target; ++level) {
    Pte* words = mem_.table(table);
    Pte& desc = words[(va.val >> g.level_shift(level)) & idx_mask];
    if (desc.val == 0) {
      if (!alloc) return std::nullopt;
      PhysAddr next = mem_.alloc_table();
      desc = Pte{next.val | kTableDesc};
      if (level == 2) {
        const std::uint64_t base = va.val & ~((std::uint64_t{1} << g.pmd_shift()) - 1);
        pte_page_va_.emplace(mem_.table(next), base);
      }
      if (level == 1) {
        const std::uint64_t base = va.val & ~((std::uint64_t{1} << g.level_shift(1)) - 1);
        pmd_page_va_.emplace(mem_.table(next), base);
      }
    }
    // A block descriptor here (valid, or a PROT_NONE / invalidated huge PMD
    // that software still owns): there is no table below it to hand out.
    if ((desc.val & (bits::kValid | bits::kTable)) != (bits::kValid | bits::kTable)) return std::nullopt;
    table = PhysAddr{desc.val & pte_addr_mask(g.page_shift)};
  }
  Pte* words = mem_.table(table);
  return PteSlot{words + ((va.val >> g.level_shift(target)) & idx_mask)};
}

PhysAddr PageTable::alloc_pte_page(VirtAddr pmd_base) {
  const PhysAddr pa = mem_.alloc_table();
  pte_page_va_.emplace(mem_.table(pa), pmd_base.val & ~(geometry().pmd_size() - 1));
  return pa;
}

Pte PageTable::table_desc(PhysAddr pa) { return Pte{pa.val | kTableDesc}; }

std::optional<VirtAddr> PageTable::pmd_va_of(PteSlot slot) const {
  const Geometry& g = mem_.geometry();
  const std::size_t idx = slot.index_in(g.ptrs_per_table());
  auto it = pmd_page_va_.find(slot.ptr() - idx);
  if (it == pmd_page_va_.end()) return std::nullopt;
  return VirtAddr{it->second + (std::uint64_t{idx} << g.pmd_shift())};
}

std::optional<VirtAddr> PageTable::va_of(PteSlot slot) const {
  const Geometry& g = mem_.geometry();
  const std::size_t idx = slot.index_in(g.ptrs_per_table());
  auto it = pte_page_va_.find(slot.ptr() - idx);
  if (it == pte_page_va_.end()) return std::nullopt;
  return VirtAddr{it->second + (std::uint64_t{idx} << g.page_shift)};
}

}  // namespace contpte
