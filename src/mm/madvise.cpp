// mm/madvise.cpp — MADV_FREE, MADV_COLD and MADV_PAGEOUT (mm/madvise.c,
// and the reclaim of what PAGEOUT isolates), with split_folio for the
// folios a range covers only in part.

#include "mm/mm.h"

#include <algorithm>

#include "engine/pgtable.h"
#include "engine/pmd.h"
#include "mm/walk.h"

namespace contpte {

// ---- madvise FREE / COLD / PAGEOUT ------------------------------------------------

bool Mm::exclusive(const FolioInfo& f) const {
  // folio_maybe_mapped_shared / folio_mapcount == folio_nr_pages: only this
  // process maps it, each page once.
  return f.valid && sys_.mapped_only_by(f.head, pid_) && sys_.mapcount(f.head) == f.nr_pages;
}

// split_folio as madvise calls it (split_huge_page): unmap_folio replaces
// each PTE by a migration entry with ptep_clear_flush — on a contiguous
// block the first one unfolds it — the folio is split, and remap_page puts
// each page back with set_pte_at, carrying its write, young and dirty state.
void Mm::split_folio(Pfn head, std::uint64_t base_va) {
  const Geometry& g = sys_.mem().geometry();
  const FolioInfo f = sys_.mem().folio_of(head);
  if (!f.valid || f.nr_pages == 1) return;
  if (auto pmdp = pt_.entry_slot(VirtAddr{base_va}, 2, false); pmdp && pmd_trans_huge(*pmdp->ptr()))
    if (const Vma* v = find_vma(VirtAddr{base_va})) split_huge_pmd(*v, base_va, *pmdp);
  auto first = pt_.pte_slot(VirtAddr{base_va}, false);
  std::vector<bool> mapped(f.nr_pages, false);
  std::vector<Pte> old(f.nr_pages);
  if (first) {
    for (std::uint64_t i = 0; i < f.nr_pages; ++i) {
      const PteSlot slot = *first + static_cast<std::ptrdiff_t>(i);
      const Pte pte = ptep_get(env_, slot);
      if (!pte_present(pte) || pte_special(pte) || pte_pfn(pte, g.page_shift) != head + i) continue;
      const VirtAddr va{base_va + (i << g.page_shift)};
      old[i] = ptep_get_and_clear(env_, va, slot);
      if (sys_.checker) sys_.checker->returned(asid_, va.val, 1, old[i]);
      ++sys_.stats().caller_tlbi;
      env_.flush_tlb_page(va, true);
      mapped[i] = true;
    }
  }
  sys_.split_folio(head, mapped, pid_);
  for (std::uint64_t i = 0; i < f.nr_pages; ++i)
    if (mapped[i])
      set_pte_at(env_, VirtAddr{base_va + (i << g.page_shift)}, *first + static_cast<std::ptrdiff_t>(i),
                 pte_mknoncont(old[i]));
}

// madvise_free_pte_range / madvise_cold_or_pageout_pte_range share this
// walk: a huge PMD the range covers whole is one folio; one covered in
// part, or a PTE-mapped large folio the batch does not cover whole, is split
// (if this process maps it alone; else left alone) and its pages are then
// taken one by one. The pte handed over has the batch's access and dirty
// state gathered.
template <class Fn>
void Mm::for_each_madvise_folio(std::uint64_t start, std::uint64_t end, Fn&& fn) {
  const Geometry& g = sys_.mem().geometry();
  const unsigned shift = g.page_shift;
  auto pmd_entry = [&](std::uint64_t addr, std::uint64_t next) {
    auto pmdp = pt_.entry_slot(VirtAddr{addr}, 2, false);
    if (!pmdp || !pmd_trans_huge(*pmdp->ptr())) return false;
    const Pte pmd = *pmdp->ptr();
    const FolioInfo f = sys_.mem().folio_of(pte_pfn(pmd, shift));
    if (is_huge_zero_pmd(pmd) || !exclusive(f)) return true;
    const std::uint64_t haddr = align_down(addr, g.pmd_size());
    if (next - addr == g.pmd_size()) {
      fn(haddr, *pmdp, pmd, static_cast<unsigned>(f.nr_pages), true);
      return true;
    }
    split_folio(f.head, haddr);
    return false;  // its pages, now PTE-mapped order-0 folios, follow
  };
  walk_range(start, end, pmd_entry, [&](std::uint64_t addr, PteSlot slot, Pte pte, unsigned nr) {
    const FolioInfo f = pte_special(pte) ? FolioInfo{} : sys_.mem().folio_of(pte_pfn(pte, shift));
    if (!f.valid) return true;
    if (f.nr_pages > 1 && nr < f.nr_pages) {
      // Only part of the folio is here — the range covers part of it,
      // or the rest is no longer mapped: split it unless another
      // process may map it (folio_maybe_mapped_shared). Its mapcount
      // does not matter here, unlike for a whole folio below.
      if (sys_.mapped_only_by(f.head, pid_)) {
        split_folio(f.head, addr - ((pte_pfn(pte, shift).val - f.head.val) << shift));
        return false;  // the same address again, now an order-0 folio
      }
    } else if (exclusive(f)) {
      for (unsigned i = 1; i < nr; ++i) {
        const Pte p = ptep_get(env_, slot + static_cast<std::ptrdiff_t>(i));
        if (pte_young(p)) pte = pte_mkyoung(pte);
        if (pte_dirty(p)) pte = pte_mkdirty(pte);
      }
      fn(addr, slot, pte, nr, false);
    }
    return true;
  });
}

void Mm::madvise_free(VirtAddr at, std::uint64_t len) {
  const std::uint64_t start = at.val;
  const std::uint64_t end = start + align_up(len, page_size());
  const unsigned shift = sys_.mem().geometry().page_shift;
  bool flush = false;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // private anonymous parts
  for (const auto& [s, v] : vmas_)
    if (v.start.val < end && start < v.end.val && !v.shared)
      ranges.emplace_back(std::max(start, v.start.val), std::min(end, v.end.val));
  for (const auto& [rs, re] : ranges)
    for_each_madvise_folio(rs, re, [&](std::uint64_t va, PteSlot slot, Pte pte, unsigned nr, bool is_pmd) {
      const FolioInfo f = sys_.mem().folio_of(pte_pfn(pte, shift));
      if (pte_young(pte) || pte_dirty(pte)) {
        if (is_pmd) {
          const Pte old = pmdp_invalidate(va, slot);
          set_pmd_at(env_, VirtAddr{va}, slot, pte_mkclean(pte_mkold(old)));
        } else {
          clear_young_dirty_ptes(env_, VirtAddr{va}, slot, nr, CYDP_CLEAR_YOUNG | CYDP_CLEAR_DIRTY);
          if (sys_.checker) sys_.checker->clean(asid_, va, nr, true, true);
        }
        flush = true;
      }
      sys_.set_lazyfree(f.head, true);
      sys_.stats().pglazyfree += nr;
    });
  if (flush) flush_range(start, end);
}

void Mm::madvise_cold(VirtAddr at, std::uint64_t len, bool pageout) {
  const std::uint64_t start = at.val;
  const std::uint64_t end = start + align_up(len, page_size());
  const Geometry& g = sys_.mem().geometry();
  bool flush = false;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (const auto& [s, v] : vmas_)
    if (v.start.val < end && start < v.end.val && !v.shared)
      ranges.emplace_back(std::max(start, v.start.val), std::min(end, v.end.val));
  // Reclaim happens after the walk (reclaim_pages on the isolated list).
  struct Victim {
    std::uint64_t va;
    unsigned nr;
    bool is_pmd;
  };
  std::vector<Victim> victims;
  for (const auto& [rs, re] : ranges)
    for_each_madvise_folio(rs, re, [&](std::uint64_t va, PteSlot slot, Pte pte, unsigned nr, bool is_pmd) {
      if (pageout) {
        victims.push_back({va, nr, is_pmd});
        return;
      }
      if (pte_young(pte)) {
        if (is_pmd) {
          const Pte old = pmdp_invalidate(va, slot);
          set_pmd_at(env_, VirtAddr{va}, slot, pte_mkold(old));
        } else {
          clear_young_dirty_ptes(env_, VirtAddr{va}, slot, nr, CYDP_CLEAR_YOUNG);
          if (sys_.checker) sys_.checker->clean(asid_, va, nr, false, true);
        }
        flush = true;
      }
      sys_.stats().pgdeactivate += nr;  // folio_deactivate
    });
  if (flush) flush_range(start, end);
  // shrink_folio_list without swap: an anonymous folio can only be dropped
  // if it is lazyfree and still clean (a write since MADV_FREE makes it
  // swap-backed again); try_to_unmap clears its PTEs in one batch. A
  // swap-backed large folio fails add_to_swap, and reclaim falls back to
  // splitting it to swap its pages one by one (swpout_fallback): with no
  // swap those fail too, so the folio stays mapped — as order-0 pages.
  auto keep = [&](const FolioInfo& f, std::uint64_t va) {
    const bool swapbacked = !sys_.lazyfree(f.head);
    sys_.set_lazyfree(f.head, false);
    if (swapbacked && f.nr_pages > 1) split_folio(f.head, va);
  };
  for (const Victim& v : victims) {
    if (v.is_pmd) {
      auto pmdp = pt_.entry_slot(VirtAddr{v.va}, 2, false);
      const Pte pmd = *pmdp->ptr();
      const FolioInfo f = sys_.mem().folio_of(pte_pfn(pmd, g.page_shift));
      if (!sys_.lazyfree(f.head) || pte_dirty(pmd)) {
        keep(f, v.va);
        continue;
      }
      pmdp_huge_get_and_clear(env_, VirtAddr{v.va}, *pmdp);
      flush_pmds({v.va});
      sys_.stats().pglazyfreed += v.nr;
      sys_.unmap_pages(f.head, f.nr_pages, pid_);
      continue;
    }
    const PteSlot slot = *pt_.pte_slot(VirtAddr{v.va}, false);
    Pte pte = ptep_get(env_, slot);
    const FolioInfo f = sys_.mem().folio_of(pte_pfn(pte, g.page_shift));
    bool dirty = false;
    for (unsigned i = 0; i < v.nr; ++i) dirty |= pte_dirty(ptep_get(env_, slot + i));
    if (!sys_.lazyfree(f.head) || dirty) {
      keep(f, v.va);
      continue;
    }
    const Pte got = get_and_clear_full_ptes(env_, VirtAddr{v.va}, slot, v.nr, false);
    if (sys_.checker) sys_.checker->returned(asid_, v.va, v.nr, got);
    flush_range(v.va, v.va + (std::uint64_t{v.nr} << g.page_shift));
    sys_.stats().pglazyfreed += v.nr;
    sys_.unmap_pages(f.head, v.nr, pid_);
  }
}

}  // namespace contpte
