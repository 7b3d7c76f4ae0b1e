// mm/huge_memory.cpp — PMD-sized THP (mm/huge_memory.c): the huge PMD
// fault, its write fault, the huge zero folio and splitting a huge PMD.

#include "mm/mm.h"

#include "engine/pgtable.h"
#include "engine/pmd.h"

namespace contpte {

// ---- PMD-sized THP ---------------------------------------------------------------

unsigned Mm::pmd_order() const {
  const Geometry& g = sys_.mem().geometry();
  return g.pmd_shift() - g.page_shift;
}

// thp_vma_allowable_order(PMD_ORDER) and thp_vma_suitable_order: the PMD
// size's sysfs policy allows it for this VMA, and the VMA covers the whole
// naturally aligned PMD range.
bool Mm::thp_pmd_allowed(const Vma& v, std::uint64_t haddr) const {
  if (v.nohugepage || v.shared || v.file >= 0) return false;
  auto it = sys_.thp().per_order.find(pmd_order());
  if (it == sys_.thp().per_order.end()) return false;
  const ThpMode m = it->second == ThpMode::Inherit ? sys_.thp().top : it->second;
  if (!(m == ThpMode::Always || (m == ThpMode::Madvise && v.hugepage))) return false;
  return haddr >= v.start.val && haddr + sys_.mem().geometry().pmd_size() <= v.end.val;
}

bool Mm::is_huge_zero_pmd(Pte pmd) const {
  return sys_.is_huge_zero(pte_pfn(pmd, sys_.mem().geometry().page_shift));
}

// vma_alloc_anon_folio_pmd: a failure is counted as thp_fault_fallback
// and in the PMD size's anon_fault_fallback.
std::optional<Pfn> Mm::alloc_pmd_folio() {
  auto pfn = sys_.buddy().alloc_folio(pmd_order());
  if (!pfn) {
    ++sys_.stats().thp_fault_fallback;
    ++sys_.stats().anon_fault_fallback[pmd_order()];
  }
  return pfn;
}

// map_anon_folio_pmd: one block descriptor, dirty, writable if the VMA is.
void Mm::map_anon_folio_pmd(const Vma& v, Pfn pfn, std::uint64_t haddr, PteSlot pmdp) {
  const Geometry& g = sys_.mem().geometry();
  Pte entry = pte_mkdirty(pmd_mkhuge(pfn_pte(pfn, vm_page_prot(v), g.page_shift)));
  if (v.writable()) entry = pte_mkwrite(entry);
  set_pmd_at(env_, VirtAddr{haddr}, pmdp, entry);
  const std::uint64_t nr = std::uint64_t{1} << pmd_order();
  sys_.map_pages(pfn, nr, pid_);
  ++sys_.stats().anon_fault_alloc[pmd_order()];
  ++sys_.stats().thp_fault_alloc;
  ++sys_.stats().faults_anon;
  sys_.stats().bytes_zeroed += g.pmd_size();
}

// do_huge_pmd_anonymous_page: a read maps the huge zero folio read-only; a
// write maps a new PMD-sized folio. Either may fall back to the PTE path
// (nullopt) when the allocation fails.
std::optional<FaultResult> Mm::do_huge_pmd_anonymous_page(const Vma& v, std::uint64_t va, PteSlot pmdp,
                                                          bool write) {
  const Geometry& g = sys_.mem().geometry();
  const std::uint64_t haddr = align_down(va, g.pmd_size());
  // vmf_anon_prepare comes first, so even a read that maps the huge zero
  // PMD leaves the VMA with an anon_vma (fork then copies it).
  anon_vma_prepare(va);
  if (!write) {
    auto zero = sys_.huge_zero_pfn();
    if (!zero) {
      ++sys_.stats().thp_fault_fallback;
      return std::nullopt;
    }
    set_pmd_at(env_, VirtAddr{haddr}, pmdp, pte_mkspecial(pmd_mkhuge(pfn_pte(*zero, vm_page_prot(v), g.page_shift))));
    ++sys_.stats().faults_zero;
    return FaultResult::Handled;
  }
  auto pfn = alloc_pmd_folio();
  if (!pfn) return std::nullopt;
  map_anon_folio_pmd(v, *pfn, haddr, pmdp);
  return FaultResult::Handled;
}

// do_huge_pmd_wp_page (Linux 6.18): a write to the huge zero PMD replaces
// it with a new THP (do_huge_zero_wp_pmd); a THP only this process maps is
// reused whole; anything else — a THP still shared after fork, or no
// memory for the zero-page copy — splits the PMD and falls back to the
// PTE fault, which copies or reuses one page.
std::optional<FaultResult> Mm::do_huge_pmd_wp_page(const Vma& v, std::uint64_t va, PteSlot pmdp, Pte orig) {
  const Geometry& g = sys_.mem().geometry();
  const std::uint64_t haddr = align_down(va, g.pmd_size());
  if (is_huge_zero_pmd(orig)) {
    if (auto pfn = alloc_pmd_folio()) {
      pmdp_huge_get_and_clear(env_, VirtAddr{haddr}, pmdp);  // pmdp_huge_clear_flush
      flush_pmds({haddr});
      map_anon_folio_pmd(v, *pfn, haddr, pmdp);
      return FaultResult::Handled;
    }
  } else {
    const FolioInfo f = sys_.mem().folio_of(pte_pfn(orig, g.page_shift));
    if (f.valid && sys_.mapped_only_by(f.head, pid_)) {
      const Pte entry = pte_mkwrite(pte_mkdirty(pte_mkyoung(orig)));
      pmdp_set_access_flags(env_, VirtAddr{haddr}, pmdp, entry, true);
      ++sys_.stats().faults_reuse;
      return FaultResult::Handled;
    }
  }
  split_huge_pmd(v, haddr, pmdp);
  return std::nullopt;
}

// pmdp_invalidate: exchange in a not-valid copy (software still sees the
// THP), then flush the block from the TLBs (flush_pmd_tlb_range).
Pte Mm::pmdp_invalidate(std::uint64_t haddr, PteSlot pmdp) {
  const Pte old = pmdp_establish(env_, VirtAddr{haddr}, pmdp, pmd_mkinvalid(*pmdp.ptr()));
  flush_pmds({haddr});
  return old;
}

// __split_huge_pmd_locked: the PMD is invalidated, a PTE page is filled
// with PTEs mapping the same folio — one set_ptes for all of them, which
// contpte may write as contiguous blocks — carrying the PMD's write, young
// and dirty state, then linked in (pmd_populate). The huge zero PMD
// becomes PTEs of the ordinary zero page. The folio stays one large folio.
// Linux deposits the PTE page at fault time; it is allocated here instead.
void Mm::split_huge_pmd(const Vma& v, std::uint64_t haddr, PteSlot pmdp) {
  const Geometry& g = sys_.mem().geometry();
  ++sys_.stats().thp_split_pmd;
  const bool zero = is_huge_zero_pmd(*pmdp.ptr());
  Pte old;
  if (zero) {
    old = pmdp_huge_get_and_clear(env_, VirtAddr{haddr}, pmdp);  // pmdp_huge_clear_flush
    flush_pmds({haddr});
  } else {
    old = pmdp_invalidate(haddr, pmdp);
  }
  const PhysAddr table = pt_.alloc_pte_page(VirtAddr{haddr});
  const PteSlot first = pt_.pte_page(table);
  const unsigned nr = g.ptrs_per_table();
  if (zero) {
    const Pte z = pte_mkspecial(pfn_pte(sys_.zero_pfn(), vm_page_prot(v), g.page_shift));
    for (unsigned i = 0; i < nr; ++i)
      set_pte_at(env_, VirtAddr{haddr + (std::uint64_t{i} << g.page_shift)}, first + i, z);
  } else {
    Pte entry = pfn_pte(pte_pfn(old, g.page_shift), vm_page_prot(v), g.page_shift);
    if (pte_write(old)) entry = pte_mkwrite(entry);
    if (!pte_young(old)) entry = pte_mkold(entry);
    if (pte_dirty(old)) entry = pte_mkdirty(entry);
    set_ptes(env_, VirtAddr{haddr}, first, entry, nr);
  }
  pmd_populate(env_, pmdp, PageTable::table_desc(table));
}

}  // namespace contpte
