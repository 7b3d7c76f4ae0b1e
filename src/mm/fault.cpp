// mm/fault.cpp — handle_mm_fault and the anonymous fault
// (mm/memory.c do_anonymous_page): mTHP order choice and fallback, the
// zero page, MADV_POPULATE_WRITE.

#include "mm/mm.h"

#include "engine/pgtable.h"
#include "engine/pmd.h"
#include "mm/pte_fault.h"

namespace contpte {

// thp_vma_allowable_orders for an anonymous fault: the sizes whose sysfs
// policy is `always`, or `madvise` on a MADV_HUGEPAGE VMA (`inherit`
// follows the top-level setting); never for MADV_NOHUGEPAGE. PMD-sized
// folios are do_huge_pmd_anonymous_page's, not modelled here.
std::vector<unsigned> Mm::thp_orders(const Vma& v) const {
  std::vector<unsigned> out;
  if (v.nohugepage || v.shared || v.file >= 0) return out;
  const Geometry& g = sys_.mem().geometry();
  const unsigned pmd_order = g.pmd_shift() - g.page_shift;
  for (auto it = sys_.thp().per_order.rbegin(); it != sys_.thp().per_order.rend(); ++it) {
    const auto [order, mode] = *it;
    if (order == 0 || order >= pmd_order) continue;
    ThpMode m = mode == ThpMode::Inherit ? sys_.thp().top : mode;
    if (m == ThpMode::Always || (m == ThpMode::Madvise && v.hugepage)) out.push_back(order);
  }
  return out;  // highest first
}

bool Mm::pte_range_none(std::uint64_t start, unsigned nr) {
  auto slot = pt_.pte_slot(VirtAddr{start}, true);
  for (unsigned i = 0; i < nr; ++i)
    if (!pte_none(ptep_get(env_, *slot + static_cast<std::ptrdiff_t>(i)))) return false;
  return true;
}

// do_anonymous_page: a read maps the zero page; a write allocates the
// largest allowed folio whose naturally aligned range lies in the VMA and
// has no PTE yet (alloc_anon_folio), falling back order by order when the
// allocation fails, and maps it with one set_ptes.
FaultResult Mm::do_anonymous_page(const Vma& v, std::uint64_t va, PteSlot ptep, bool write) {
  const Geometry& g = sys_.mem().geometry();
  const unsigned shift = g.page_shift;
  if (!write && !v.shared) {
    const Pte entry = pte_mkspecial(pfn_pte(sys_.zero_pfn(), vm_page_prot(v), shift));
    set_pte_at(env_, VirtAddr{align_down(va, g.page_size())}, ptep, entry);
    ++sys_.stats().faults_zero;
    return FaultResult::Handled;
  }
  anon_vma_prepare(va);
  std::vector<unsigned> orders;
  for (unsigned order : thp_orders(v)) {
    const std::uint64_t size = g.page_size() << order;
    const std::uint64_t a = align_down(va, size);
    if (a < v.start.val || a + size > v.end.val) continue;  // thp_vma_suitable_orders
    orders.push_back(order);
  }
  // The highest order whose range is still all empty, then lower ones.
  while (!orders.empty()) {
    const std::uint64_t a = align_down(va, g.page_size() << orders.front());
    if (pte_range_none(a, 1u << orders.front())) break;
    orders.erase(orders.begin());
  }
  orders.push_back(0);
  for (unsigned order : orders) {
    auto pfn = sys_.buddy().alloc_folio(order);
    if (!pfn) {
      if (order > 0) ++sys_.stats().anon_fault_fallback[order];
      continue;
    }
    const std::uint64_t a = align_down(va, g.page_size() << order);
    Pte entry = pfn_pte(*pfn, vm_page_prot(v), shift);
    entry = pte_mkdirty(entry);
    if (v.writable()) entry = pte_mkwrite(entry);
    const unsigned nr = 1u << order;
    set_ptes(env_, VirtAddr{a}, *pt_.pte_slot(VirtAddr{a}, true), entry, nr);
    sys_.map_pages(*pfn, nr, pid_);
    if (order > 0) ++sys_.stats().anon_fault_alloc[order];
    ++sys_.stats().faults_anon;
    sys_.stats().bytes_zeroed += std::uint64_t{nr} * g.page_size();
    return FaultResult::Handled;
  }
  return FaultResult::Segv;  // out of memory: the OOM killer's business
}

FaultResult Mm::handle_fault(VirtAddr at, bool write, bool exec) {
  ++sys_.stats().faults;
  const std::uint64_t va = at.val;
  const Vma* v = find_vma(at);
  if (!v) return FaultResult::Segv;
  const bool readable = v->prot == Prot::R || v->prot == Prot::RW || v->prot == Prot::RX ||
                        v->prot == Prot::RWX;
  const bool executable = v->prot == Prot::RX || v->prot == Prot::RWX || v->prot == Prot::X;
  if ((write && !v->writable()) || (exec && !executable) || (!write && !exec && !readable))
    return FaultResult::Segv;
  // __handle_mm_fault: the PMD level first. An empty PMD may get a huge
  // page; a huge PMD is handled whole unless a write has to split it.
  const PteSlot pmdp = *pt_.entry_slot(VirtAddr{va}, 2, true);
  const Pte pmd = *pmdp.ptr();
  const std::uint64_t haddr = align_down(va, sys_.mem().geometry().pmd_size());
  if (pmd_none(pmd) && thp_pmd_allowed(*v, haddr)) {
    if (auto r = do_huge_pmd_anonymous_page(*v, va, pmdp, write)) return *r;
  } else if (pmd_trans_huge(pmd)) {
    if (write && !pte_write(pmd)) {
      if (auto r = do_huge_pmd_wp_page(*v, va, pmdp, pmd)) return *r;
      // Split: the PTE fault below handles the write.
    } else {
      // huge_pmd_set_accessed (touch_pmd): AF, and dirty for a write.
      Pte entry = pte_mkyoung(pmd);
      if (write) entry = pte_mkdirty(entry);
      if (pmdp_set_access_flags(env_, VirtAddr{haddr}, pmdp, entry, write))
        ++sys_.stats().faults_access;
      return FaultResult::Handled;
    }
  }
  const PteSlot ptep = *pt_.pte_slot(VirtAddr{va}, true);
  const Pte pte = ptep_get(env_, ptep);
  if (pte_none(pte)) return v->file >= 0 ? do_fault(*v, va, ptep, write) : do_anonymous_page(*v, va, ptep, write);
  if (!pte_present(pte)) return FaultResult::Segv;  // no swap in this model
  if (write && !pte_write(pte)) return do_wp_page(*v, va, ptep, pte);
  // An access-flag or dirty-state fault (no FEAT_HAFDBS, or a device
  // walker without HTTU): set them.
  if (pte_fault_set_accessed(env_, VirtAddr{align_down(va, page_size())}, ptep, pte, write))
    ++sys_.stats().faults_access;
  return FaultResult::Handled;
}

FaultResult Mm::populate_write(VirtAddr at, std::uint64_t len) {
  const std::uint64_t start = at.val;
  const std::uint64_t pmd = sys_.mem().geometry().pmd_size();
  // How far va is already mapped writable and dirty (0: it needs a fault).
  // Looks without allocating a PTE page, which would rule out a huge PMD.
  auto populated = [&](std::uint64_t va) -> std::uint64_t {
    auto ready = [](Pte p) { return pte_present(p) && pte_write(p) && pte_dirty(p); };
    if (auto pmdp = pt_.entry_slot(VirtAddr{va}, 2, false); pmdp && pmd_trans_huge(*pmdp->ptr()))
      return ready(*pmdp->ptr()) ? align_down(va, pmd) + pmd - va : 0;
    auto slot = pt_.pte_slot(VirtAddr{va}, false);
    return slot && ready(ptep_get(env_, *slot)) ? page_size() : 0;
  };
  for (std::uint64_t va = start; va < start + len;) {
    if (const std::uint64_t step = populated(va)) {
      va += step;
      continue;
    }
    if (handle_fault(VirtAddr{va}, true, false) == FaultResult::Segv) return FaultResult::Segv;
    // The fault may have mapped a whole folio or PMD: look again, but never
    // twice at a page the fault left as it was.
    if (!populated(va)) va += page_size();
  }
  return FaultResult::Handled;
}

}  // namespace contpte
