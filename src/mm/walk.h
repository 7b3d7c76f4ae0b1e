// mm/walk.h — private to src/mm: the page-table walks the memory
// manager's operations share (zap, mprotect, fork), as member templates of
// Mm, so each operation's file instantiates them with its own callback.
#pragma once

#include <algorithm>
#include <optional>
#include <type_traits>

#include "engine/pgtable.h"
#include "mm/mm.h"

namespace contpte {

// The walk zap_pte_range, change_pte_range, copy_pte_range and madvise's
// pte_range callbacks share (walk_pmd_range / walk_pte_range): each
// PMD-sized step [addr, next) of [start, end) is offered to
// pmd_entry(addr, next) first — true: it handled the step, its PTEs are
// skipped — then each run of present PTEs of one folio in the step's PTE
// table (folio_pte_batch) goes to fn(va, slot, first pte, nr). A batch
// never crosses a PTE table, as in the kernel. An `fn` that returns bool
// returns false when it changed the mapping at va (split a folio): the same
// address is then walked again.
template <class PmdFn, class Fn>
void Mm::walk_range(std::uint64_t start, std::uint64_t end, PmdFn&& pmd_entry, Fn&& fn) {
  const Geometry& g = sys_.mem().geometry();
  for (std::uint64_t va = start; va < end;) {
    const std::uint64_t next = std::min(end, align_down(va, g.pmd_size()) + g.pmd_size());
    auto slot = pmd_entry(va, next) ? std::nullopt : pt_.pte_slot(VirtAddr{va}, false);
    if (!slot) {
      va = next;
      continue;
    }
    while (va < next) {
      Pte pte = ptep_get(env_, *slot);
      std::uint64_t nr = 1;
      if (pte_present(pte)) {
        nr = folio_pte_batch(*slot, &pte, (next - va) >> g.page_shift);
        if constexpr (std::is_same_v<std::invoke_result_t<Fn&, std::uint64_t, PteSlot, Pte, unsigned>, bool>) {
          if (!fn(va, *slot, pte, static_cast<unsigned>(nr))) continue;
        } else {
          fn(va, *slot, pte, static_cast<unsigned>(nr));
        }
      }
      va += nr << g.page_shift;
      *slot = *slot + static_cast<std::ptrdiff_t>(nr);
    }
  }
}

// The PTE level of zap_pte_range / change_pte_range / copy_pte_range:
// runs of present PTEs of one folio, one PTE table at a time.
template <class Fn>
void Mm::for_each_present_batch(std::uint64_t start, std::uint64_t end, Fn&& fn) {
  walk_range(start, end, [](std::uint64_t, std::uint64_t) { return false; }, fn);
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
    } else if (const Vma* v = find_vma(VirtAddr{haddr})) {
      split_huge_pmd(*v, haddr, *pmdp);
    }
  }
}

}  // namespace contpte
