// mm/walk.cpp — what the mm's operations share: folio_pte_batch, the
// caller's TLB flushes (flush_tlb_range, a PMD-stride flush), and reading
// a leaf translation.

#include "mm/mm.h"

#include <algorithm>

#include "engine/pgtable.h"

namespace contpte {

void Mm::flush_range(std::uint64_t start, std::uint64_t end) {
  ++sys_.stats().caller_tlbi;
  env_.flush_tlb_range(TlbFlush{VirtAddr{start}, (end - start) / page_size(), true});
}

// folio_pte_batch: how many PTEs from ptep map consecutive pages of the
// folio `pte` maps, with the same attributes apart from access, dirty and
// write state (core-mm merges those), up to max_nr. With FPB_MERGE_WRITE
// (6.18), `*pte` comes back writable if any PTE of the batch is: fork must
// write-protect a batch whose first page was read-only but a later one
// reused in place.
std::uint64_t Mm::folio_pte_batch(PteSlot ptep, Pte* pte, std::uint64_t max_nr) {
  const unsigned shift = sys_.mem().geometry().page_shift;
  const Pfn pfn = pte_pfn(*pte, shift);
  const FolioInfo f = sys_.mem().folio_of(pfn);
  if (!f.valid || f.nr_pages == 1 || pte_special(*pte)) return 1;
  max_nr = std::min(max_nr, f.head.val + f.nr_pages - pfn.val);
  auto canon = [&](Pte p) { return pte_mknoncont(pte_mkold(pte_mkclean(pte_wrprotect(p)))); };
  Pte expected = canon(*pte);
  bool any_writable = pte_write(*pte);
  std::uint64_t n = 1;
  for (; n < max_nr; ++n) {
    expected = pte_advance_pfn(expected, 1, shift);
    const Pte next = ptep_get(env_, ptep + static_cast<std::ptrdiff_t>(n));
    if (!pte_present(next) || canon(next) != expected) break;
    any_writable |= pte_write(next);
  }
  if (any_writable) *pte = pte_mkwrite(*pte);
  return n;
}

// A flush of whole PMD blocks: __flush_tlb_range with a PMD stride is one
// TLBI per block, or the whole ASID past MAX_DVM_OPS of them.
void Mm::flush_pmds(const std::vector<std::uint64_t>& haddrs, bool last_level) {
  ++sys_.stats().caller_tlbi;
  if (haddrs.size() >= sys_.mem().geometry().ptrs_per_table()) {
    env_.flush_tlb_mm();
    return;
  }
  for (std::uint64_t a : haddrs) {
    if (last_level)
      env_.flush_tlb_page(VirtAddr{a}, true);
    else
      env_.flush_tlb_range_tables(TlbFlush{VirtAddr{a}, 1, true});
  }
}

Pte Mm::leaf_pte(VirtAddr va, bool gathered) {
  const Geometry& g = sys_.mem().geometry();
  if (auto slot = pt_.pte_slot(va, false)) return gathered ? ptep_get(env_, *slot) : *slot->ptr();
  if (auto pmdp = pt_.entry_slot(va, 2, false); pmdp && pmd_trans_huge(*pmdp->ptr()))
    return pte_advance_pfn(*pmdp->ptr(), (va.val & (g.pmd_size() - 1)) >> g.page_shift, g.page_shift);
  return Pte{};
}

std::uint64_t Mm::pmd_mapped_pages() const {
  const Geometry& g = sys_.mem().geometry();
  std::uint64_t n = 0;
  pt_.for_each_pmd_page([&](VirtAddr, PteSlot s) {
    for (unsigned i = 0; i < g.ptrs_per_table(); ++i) n += pmd_trans_huge(s.ptr()[i]);
  });
  return n << (g.pmd_shift() - g.page_shift);
}

}  // namespace contpte
