// mm/walk.h — private to src/mm: the page-table walks the memory
// manager's operations share (zap, mprotect, fork), as member templates of
// Mm, so each operation's file instantiates them with its own callback.
#pragma once

#include <algorithm>

#include "engine/pgtable.h"
#include "mm/mm.h"

namespace contpte {

// The PTE level of zap_pte_range / change_pte_range / copy_pte_range:
// runs of present PTEs of one folio, one PTE table at a time.
template <class Fn>
void Mm::for_each_present_batch(std::uint64_t start, std::uint64_t end, Fn&& fn) {
  const Geometry& g = sys_.mem().geometry();
  for (std::uint64_t va = start; va < end;) {
    // A batch never crosses a page-table page, as in the kernel.
    const std::uint64_t pmd_end = std::min(end, align_down(va, g.pmd_size()) + g.pmd_size());
    auto slot = pt_.pte_slot(VirtAddr{va}, false);
    if (!slot) {
      va = pmd_end;
      continue;
    }
    while (va < pmd_end) {
      Pte pte = ptep_get(env_, *slot);
      std::uint64_t nr = 1;
      if (pte_present(pte)) {
        nr = folio_pte_batch(*slot, &pte, (pmd_end - va) >> g.page_shift);
        fn(va, *slot, pte, static_cast<unsigned>(nr));
      }
      va += nr << g.page_shift;
      *slot = *slot + static_cast<std::ptrdiff_t>(nr);
    }
  }
}

// zap_pmd_range / change_pmd_range / copy_pmd_range: the PMD level first.
template <class Fn>
void Mm::for_each_huge_pmd(std::uint64_t start, std::uint64_t end, Fn&& whole) {
  const std::uint64_t pmd = sys_.mem().geometry().pmd_size();
  for (std::uint64_t haddr = align_down(start, pmd); haddr < end; haddr += pmd) {
    auto pmdp = pt_.entry_slot(VirtAddr{haddr}, 2, false);
    if (!pmdp || !pmd_trans_huge(*pmdp->ptr())) continue;
    if (haddr >= start && haddr + pmd <= end) {
      whole(haddr, *pmdp, *pmdp->ptr());
    } else if (const Vma* v = find_vma(haddr)) {
      split_huge_pmd(*v, haddr, *pmdp);
    }
  }
}

}  // namespace contpte
