// mm/fork.cpp — fork's copy_page_range (write-protecting both sides) and
// the copy-on-write fault it prepares (do_wp_page, wp_page_copy).

#include "mm/mm.h"

#include <algorithm>
#include <stdexcept>

#include "engine/pgtable.h"
#include "engine/pmd.h"
#include "mm/walk.h"

namespace contpte {

// wp_page_copy: a private copy of one page; the old PTE is cleared and
// flushed (ptep_clear_flush) before the new one is set — on a folded block
// that clear unfolds it.
void Mm::wp_page_copy(const Vma& v, std::uint64_t va, PteSlot ptep, Pte orig) {
  const unsigned shift = sys_.mem().geometry().page_shift;
  anon_vma_prepare(va);  // a copy of the zero page or of a file page is the first anonymous one
  auto pfn = sys_.buddy().alloc_folio(0);
  if (!pfn) throw std::runtime_error("out of memory in copy-on-write");
  Pte entry = pte_mkdirty(pfn_pte(*pfn, vm_page_prot(v), shift));
  if (v.writable()) entry = pte_mkwrite(entry);
  const VirtAddr a{align_down(va, page_size())};
  ptep_get_and_clear(env_, a, ptep);
  // The old page's A/D are not wanted: its contents were just copied.
  if (sys_.checker) sys_.checker->discard(asid_, a.val, 1);
  ++sys_.stats().caller_tlbi;
  env_.flush_tlb_page(a, true);
  set_pte_at(env_, a, ptep, entry);
  sys_.map_pages(*pfn, 1, pid_);
  if (!pte_special(orig)) {
    const FolioInfo f = sys_.mem().folio_of(pte_pfn(orig, shift));
    if (f.valid) sys_.unmap_pages(f.head, 1, pid_);
    sys_.stats().bytes_copied += page_size();
  } else {
    sys_.stats().bytes_zeroed += page_size();  // a copy of the zero page is a zeroed page
  }
  ++sys_.stats().faults_cow;
}

// do_wp_page: the zero page and folios another process still maps are
// copied; a folio only this process maps is reused in place — for a large
// folio Linux 6.18 makes just this PTE writable (ptep_set_access_flags),
// which unfolds its block, and does not refold it.
FaultResult Mm::do_wp_page(const Vma& v, std::uint64_t va, PteSlot ptep, Pte orig) {
  const unsigned shift = sys_.mem().geometry().page_shift;
  if (!pte_special(orig)) {
    const FolioInfo f = sys_.mem().folio_of(pte_pfn(orig, shift));
    // wp_page_shared: a shared file mapping writes the page-cache page
    // itself; a private one copies it (mapped_only_by is false for it).
    if (f.valid && (v.shared || sys_.mapped_only_by(f.head, pid_))) {
      const bool was_cont = pte_cont(orig);
      Pte entry = pte_mkwrite(pte_mkdirty(pte_mkyoung(orig)));
      ptep_set_access_flags(env_, VirtAddr{align_down(va, page_size())}, ptep, entry, true);
      ++sys_.stats().faults_reuse;
      if (was_cont && !pte_cont(*ptep.ptr())) ++sys_.stats().reuse_unfolds;
      return FaultResult::Handled;
    }
  }
  wp_page_copy(v, va, ptep, orig);
  return FaultResult::Handled;
}

// copy_page_range / copy_present_ptes: the child gets the parent's PTEs,
// batched per folio; in a private writable mapping both sides lose write
// permission (wrprotect_ptes on the parent, pte_wrprotect for the child)
// so the first write of either copies. The child's PTEs are old. The
// parent's TLB is flushed once at the end (dup_mmap).
std::unique_ptr<Mm> Mm::fork(unsigned child_pid, std::uint16_t child_asid) {
  auto child = std::make_unique<Mm>(sys_, child_pid, child_asid);
  child->vmas_ = vmas_;
  // anon_vma_fork: each child VMA that inherits anonymous memory gets an
  // anon_vma of its own, linked to the parent's (so not reusable).
  for (auto& [start, cv] : child->vmas_)
    if (cv.anon_vma) {
      cv.anon_vma = sys_.new_anon_vma();
      cv.anon_vma_singular = false;
    }
  const Geometry& g = sys_.mem().geometry();
  const unsigned shift = g.page_shift;
  for (const auto& entry : vmas_) {
    const Vma& v = entry.second;  // a named reference: lambdas may not capture bindings (C++20)
    // vma_needs_copy: a VMA without an anon_vma holds nothing a fault
    // could not rebuild — zero-page PTEs, page-cache pages, shmem — so
    // fork leaves the child's page table empty there.
    if (!v.anon_vma) continue;
    // copy_pmd_range allocates the child's PTE table under every parent
    // PMD that has one, whether or not a PTE in it is present.
    for (std::uint64_t va = align_down(v.start.val, g.pmd_size()); va < v.end.val; va += g.pmd_size()) {
      const VirtAddr at{std::max(va, v.start.val)};
      if (pt_.pte_slot(at, false)) child->pt_.pte_slot(at, true);
    }
    // copy_huge_pmd: the child maps the same THP (or huge zero folio);
    // both PMDs are write-protected and the child's is old.
    for_each_huge_pmd(v.start.val, v.end.val, [&](std::uint64_t haddr, PteSlot src, Pte pmd) {
      if (!is_huge_zero_pmd(pmd)) {
        const FolioInfo f = sys_.mem().folio_of(pte_pfn(pmd, shift));
        if (f.valid) sys_.map_pages(f.head, f.nr_pages, child_pid);
      }
      pmdp_set_wrprotect(env_, VirtAddr{haddr}, src);
      pmd = pte_mkold(pte_wrprotect(pmd));
      set_pmd_at(child->env_, VirtAddr{haddr}, *child->pt_.entry_slot(VirtAddr{haddr}, 2, true), pmd);
    });
    for_each_present_batch(v.start.val, v.end.val, [&](std::uint64_t va, PteSlot src, Pte pte, unsigned nr) {
      if (!pte_special(pte)) {
        const FolioInfo f = sys_.mem().folio_of(pte_pfn(pte, shift));
        if (f.valid) sys_.map_pages(f.head, nr, child_pid);
      }
      if (!v.shared && pte_write(pte)) {
        wrprotect_ptes(env_, VirtAddr{va}, src, nr);
        pte = pte_wrprotect(pte);
      }
      if (v.shared) pte = pte_mkclean(pte);
      pte = pte_mkold(pte);
      set_ptes(child->env_, VirtAddr{va}, *child->pt_.pte_slot(VirtAddr{va}, true), pte, nr);
    });
  }
  ++sys_.stats().caller_tlbi;
  env_.flush_tlb_mm();
  return child;
}

}  // namespace contpte
