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

namespace {
bool is_table(Pte d) { return (d.val & (bits::kValid | bits::kTable)) == (bits::kValid | bits::kTable); }
}  // namespace

// The PMD-granular trimming of free_pgd_range: a PTE table is freed only if
// no neighbouring mapping shares its PMD range. Addresses wrap as Linux's
// do (ceiling 0 is the top), hence the `- 1` comparisons.
std::vector<PageTable::FreedTable> PageTable::free_pgd_range(std::uint64_t addr, std::uint64_t end,
                                                             std::uint64_t floor, std::uint64_t ceiling) {
  std::vector<FreedTable> out;
  const Geometry& g = mem_.geometry();
  const std::uint64_t pmd_mask = ~(g.pmd_size() - 1);
  addr &= pmd_mask;
  if (addr < floor) {
    addr += g.pmd_size();
    if (!addr) return out;
  }
  if (ceiling) {
    ceiling &= pmd_mask;
    if (!ceiling) return out;
  }
  if (end - 1 > ceiling - 1) end -= g.pmd_size();
  if (addr > end - 1) return out;
  free_range(g.start_level, root_, addr, end, floor, ceiling, out);
  return out;
}

// One level of free_p4d/pud/pmd_range: the entries of `table` (at `level`)
// for [addr, end); below each, the lower tables first, then the table the
// entry points to if the whole range it maps lies in [floor, ceiling).
void PageTable::free_range(unsigned level, PhysAddr table, std::uint64_t addr, std::uint64_t end,
                           std::uint64_t floor, std::uint64_t ceiling, std::vector<FreedTable>& out) {
  const Geometry& g = mem_.geometry();
  const std::uint64_t span = std::uint64_t{1} << g.level_shift(level);
  Pte* words = mem_.table(table);
  for (std::uint64_t a = addr, next; a != end; a = next) {
    const std::uint64_t boundary = (a & ~(span - 1)) + span;
    next = boundary - 1 < end - 1 ? boundary : end;
    Pte& desc = words[(a >> g.level_shift(level)) & (g.ptrs_per_table() - 1)];
    // pmd_none_or_clear_bad: nothing below an empty entry or a block.
    if (!is_table(desc)) continue;
    if (level == 2) {  // free_pte_range: the PTE table goes with its PMD range
      unlink(desc, 3, a & ~(span - 1), out);
      continue;
    }
    const PhysAddr child{desc.val & pte_addr_mask(g.page_shift)};
    free_range(level + 1, child, a, next, floor, ceiling, out);
    std::uint64_t start = a & ~(span - 1);
    if (start < floor) continue;
    std::uint64_t top = ceiling;
    if (top) {
      top &= ~(span - 1);
      if (!top) continue;
    }
    if (next - 1 > top - 1) continue;
    unlink(desc, level + 1, start, out);
  }
}

void PageTable::unlink(Pte& desc, unsigned child_level, std::uint64_t va, std::vector<FreedTable>& out) {
  const PhysAddr pa{desc.val & pte_addr_mask(mem_.geometry().page_shift)};
  desc = Pte{};  // pmd_clear / pud_clear: a plain store, as in Linux
  if (child_level == 3) pte_page_va_.erase(mem_.table(pa));
  if (child_level == 2) pmd_page_va_.erase(mem_.table(pa));
  out.push_back({va, child_level, pa});
}

void PageTable::release(const std::vector<FreedTable>& tables) {
  for (const FreedTable& t : tables) mem_.free_table(t.pa);
}

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
