// mm/zap.cpp — unmapping (mm/memory.c zap_*_range, mm/mmu_gather.c,
// free_pgtables): munmap, MADV_DONTNEED and exit_mmap gather what they
// clear into one mmu_gather and flush once before freeing page tables.

#include "mm/mm.h"

#include <algorithm>

#include "engine/pgtable.h"
#include "engine/pmd.h"
#include "mm/walk.h"

namespace contpte {

// zap_pte_range + mmu_gather: batches of one folio cleared with
// get_and_clear_full_ptes, rmap dropped (freeing folios no one maps), one
// flush for the whole range at the end.
void Mm::zap_range(std::uint64_t start, std::uint64_t end, MmuGather& tlb) {
  const unsigned shift = sys_.mem().geometry().page_shift;
  // zap_huge_pmd: a huge PMD the range covers is cleared as one entry.
  for_each_huge_pmd(start, end, [&](std::uint64_t haddr, PteSlot pmdp, Pte) {
    const Pte old = pmdp_huge_get_and_clear(env_, VirtAddr{haddr}, pmdp);
    if (!is_huge_zero_pmd(old)) {
      const FolioInfo f = sys_.mem().folio_of(pte_pfn(old, shift));
      if (f.valid) sys_.unmap_pages(f.head, f.nr_pages, pid_);
    }
    tlb.pmds.push_back(haddr);
  });
  for_each_present_batch(start, end, [&](std::uint64_t va, PteSlot slot, Pte pte, unsigned nr) {
    // tlb_remove_tlb_entries: the gathered range is what was cleared.
    tlb.start = std::min(tlb.start, va);
    tlb.end = std::max(tlb.end, va + (std::uint64_t{nr} << shift));
    const Pte got = get_and_clear_full_ptes(env_, VirtAddr{va}, slot, nr, tlb.fullmm);
    if (sys_.checker) sys_.checker->returned(asid_, va, nr, got);
    if (!pte_special(pte)) {
      const FolioInfo f = sys_.mem().folio_of(pte_pfn(pte, shift));
      if (f.valid) sys_.unmap_pages(f.head, nr, pid_);
    }
  });
}

void Mm::free_pgtables(std::uint64_t start, std::uint64_t end, MmuGather& tlb) {
  auto next = vmas_.lower_bound(VirtAddr{end});
  const std::uint64_t ceiling = next == vmas_.end() ? 0 : next->second.start.val;
  auto prev = vmas_.lower_bound(VirtAddr{start});
  const std::uint64_t floor = prev == vmas_.begin() ? 0 : std::prev(prev)->second.end.val;
  auto freed = pt_.free_pgd_range(start, end, floor, ceiling);
  tlb.tables.insert(tlb.tables.end(), freed.begin(), freed.end());
}

// tlb_finish_mmu / arm64's tlb_flush: one flush for everything gathered —
// by page over the cleared PTEs (the freed tables' first pages included), or
// with a PMD stride when only huge PMDs and tables went; a walk-cache flush
// too (last_level = false) once a table was freed. A full-mm teardown needs
// no range flush (its ASID is not reused without a full invalidation):
// exit_mmap issues flush_tlb_mm. The tables are freed only after the flush,
// so no walker can still reach them.
void Mm::tlb_finish_mmu(MmuGather& tlb) {
  const bool tables = !tlb.tables.empty();
  if (!tlb.fullmm) {
    const std::uint64_t page = page_size();
    if (tlb.end > tlb.start) {
      std::uint64_t s = tlb.start, e = tlb.end;
      for (std::uint64_t haddr : tlb.pmds) {
        s = std::min(s, haddr);
        e = std::max(e, haddr + sys_.mem().geometry().pmd_size());
      }
      for (const auto& t : tlb.tables) {
        s = std::min(s, t.va);
        e = std::max(e, t.va + page);
      }
      const TlbFlush f{VirtAddr{s}, (e - s) / page, true};
      ++sys_.stats().caller_tlbi;
      if (tables)
        env_.flush_tlb_range_tables(f);
      else
        env_.flush_tlb_range(f);
    } else if (!tlb.pmds.empty() || tables) {
      std::vector<std::uint64_t> at = tlb.pmds;
      for (const auto& t : tlb.tables) at.push_back(t.va);
      std::sort(at.begin(), at.end());
      at.erase(std::unique(at.begin(), at.end()), at.end());
      flush_pmds(at, /*last_level=*/!tables);
    }
  }
  pt_.release(tlb.tables);
  sys_.stats().pgtables_freed += tlb.tables.size();
  const bool fullmm = tlb.fullmm;
  tlb = MmuGather{};
  tlb.fullmm = fullmm;
}

// unmap_region: zap, free the page tables no neighbour shares, one flush.
void Mm::munmap(VirtAddr at, std::uint64_t len) {
  const std::uint64_t start = at.val;
  const std::uint64_t end = start + align_up(len, page_size());
  split_vma_at(start);
  split_vma_at(end);
  auto first = vmas_.lower_bound(at);
  if (first == vmas_.end() || first->first.val >= end) return;  // nothing mapped: nothing to do
  const std::uint64_t lo = first->second.start.val;
  std::uint64_t hi = lo;
  MmuGather tlb;
  zap_range(start, end, tlb);
  for (auto it = first; it != vmas_.end() && it->first.val < end;) {
    hi = it->second.end.val;
    it = vmas_.erase(it);
  }
  free_pgtables(lo, hi, tlb);
  tlb_finish_mmu(tlb);
}

void Mm::madvise_dontneed(VirtAddr start, std::uint64_t len) {
  MmuGather tlb;
  zap_range(start.val, start.val + align_up(len, page_size()), tlb);
  tlb_finish_mmu(tlb);
}

// exit_mmap: everything zapped and every table below the root freed, with
// one flush of the ASID.
void Mm::exit_mmap() {
  MmuGather tlb;
  tlb.fullmm = true;
  for (const auto& [s, v] : vmas_) zap_range(v.start.val, v.end.val, tlb);
  vmas_.clear();
  free_pgtables(0, kUserVaEnd, tlb);
  ++sys_.stats().caller_tlbi;
  env_.flush_tlb_mm();
  tlb_finish_mmu(tlb);
}

}  // namespace contpte
