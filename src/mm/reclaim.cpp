// mm/reclaim.cpp — LRU aging (folio_referenced): clearing the young bit
// of PTEs and huge PMDs as reclaim's scan does.

#include "mm/mm.h"

#include <algorithm>

#include "engine/pgtable.h"
#include "engine/pmd.h"

namespace contpte {

std::uint64_t Mm::age_young(std::uint64_t budget) {
  const Geometry& g = sys_.mem().geometry();
  const std::uint64_t pmd = g.pmd_size();
  for (const auto& entry : vmas_) {
    const Vma& v = entry.second;
    for (std::uint64_t va = v.start.val; va < v.end.val && budget;) {
      const std::uint64_t pmd_end = std::min(v.end.val, align_down(va, pmd) + pmd);
      auto pmdp = pt_.entry_slot(VirtAddr{va}, 2, false);
      const Pte pmdv = pmdp ? *pmdp->ptr() : Pte{};
      if (pmd_trans_huge(pmdv) && !is_huge_zero_pmd(pmdv)) {
        const std::uint64_t haddr = align_down(va, pmd);
        if (pmdp_test_and_clear_young(env_, VirtAddr{haddr}, *pmdp)) flush_pmds({haddr});
        ++sys_.stats().reclaim_entries;
        budget -= std::min<std::uint64_t>(budget, std::uint64_t{1} << pmd_order());
      }
      if (!pmd_table(pmdv)) {
        va = pmd_end;
        continue;
      }
      PteSlot slot = *pt_.pte_slot(VirtAddr{va}, false);
      for (; va < pmd_end && budget; va += g.page_size(), ++slot) {
        const Pte pte = *slot.ptr();
        if (!pte_present(pte) || pte_special(pte)) continue;
        const bool block = pte_valid_cont(pte);
        ptep_clear_flush_young(env_, VirtAddr{va}, slot);
        ++sys_.stats().reclaim_entries;
        // contpte ages the whole block: the checker is told so.
        if (sys_.checker) {
          if (block)
            sys_.checker->clean(asid_, align_down(va, g.cont_pte_size()), g.cont_ptes, false, true);
          else
            sys_.checker->clean(asid_, va, 1, false, true);
        }
        --budget;
      }
    }
  }
  return budget;
}

}  // namespace contpte
