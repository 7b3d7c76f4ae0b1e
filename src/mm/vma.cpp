// mm/vma.cpp — the address space's VMAs (mm/mmap.c, mm/vma.c,
// mm/mprotect.c): mmap, brk, split and merge, anon_vma_prepare,
// MADV_HUGEPAGE's flags and mprotect's change_protection.

#include "mm/mm.h"

#include <algorithm>

#include "engine/pgtable.h"
#include "engine/pmd.h"
#include "mm/walk.h"

namespace contpte {

namespace {
// Top of the mmap area: the stack and its gap sit above (mmap_base()).
constexpr std::uint64_t kMmapBase = kUserVaEnd - (std::uint64_t{8} << 30);
constexpr std::uint64_t kMmapMin = std::uint64_t{1} << 32;
}  // namespace

// ---- Mm ------------------------------------------------------------------------

Mm::Mm(MmSystem& sys, unsigned pid, std::uint16_t asid)
    : sys_(sys), pid_(pid), asid_(asid), pt_(sys.mem()), env_(sys.mem(), pt_, sys.features(), asid) {
  env_.set_tlb(sys_.tlb);
  for (SimObserver* o : sys_.observers) env_.add_observer(o);
}

const Vma* Mm::find_vma(VirtAddr va) const {
  auto it = vmas_.upper_bound(va);
  if (it == vmas_.begin()) return nullptr;
  --it;
  return va < it->second.end ? &it->second : nullptr;
}

// protection_map[]: a private writable mapping is mapped read-only until a
// write fault (copy-on-write); the write fault makes the PTE writable.
PgProt Mm::vm_page_prot(const Vma& v) const {
  switch (v.prot) {
    case Prot::RW: return v.shared ? prot::kPageShared : prot::kPageReadonly;
    case Prot::RWX: return v.shared ? prot::kPageSharedExec : prot::kPageReadonlyExec;
    default: return pgprot_of(v.prot);
  }
}

void Mm::split_vma_at(std::uint64_t addr) {
  auto it = vmas_.upper_bound(VirtAddr{addr});
  if (it == vmas_.begin()) return;
  --it;
  Vma& v = it->second;
  if (addr <= v.start.val || addr >= v.end.val) return;
  // vma_adjust_trans_huge: a huge PMD cannot straddle two VMAs, so one
  // across an unaligned boundary is split to PTEs first.
  const std::uint64_t pmd = sys_.mem().geometry().pmd_size();
  if (addr % pmd != 0)
    if (auto pmdp = pt_.entry_slot(VirtAddr{addr}, 2, false); pmdp && pmd_trans_huge(*pmdp->ptr()))
      split_huge_pmd(v, align_down(addr, pmd), *pmdp);
  Vma hi = v;
  hi.start = VirtAddr{addr};
  if (v.file >= 0) hi.pgoff = v.pgoff + ((addr - v.start.val) >> sys_.mem().geometry().page_shift);
  v.end = VirtAddr{addr};
  vmas_.emplace(VirtAddr{addr}, hi);
}

namespace {
// `a` ends where `b` starts and both have the same flags apart from their
// access rights (anon_vma_compatible); a file mapping continues only with
// the same file at the next file page.
bool adjacent_same_flags(const Vma& a, const Vma& b, unsigned page_shift) {
  const bool same_backing =
      a.file == b.file && (a.file < 0 || b.pgoff == a.pgoff + (a.len() >> page_shift));
  return a.end == b.start && a.shared == b.shared && a.hugepage == b.hugepage &&
         a.nohugepage == b.nohugepage && same_backing;
}
}  // namespace

// vma_merge: adjacent anonymous VMAs with equal flags become one, so a
// fault in the merged VMA may get a folio spanning both.
void Mm::merge_around(std::uint64_t addr) {
  const unsigned shift = sys_.mem().geometry().page_shift;
  auto compatible = [shift](const Vma& a, const Vma& b) {
    // is_mergeable_anon_vma: the same anon_vma, or one of them has none yet.
    const bool anon_ok = a.anon_vma == b.anon_vma || !a.anon_vma || !b.anon_vma;
    return adjacent_same_flags(a, b, shift) && a.prot == b.prot && anon_ok;
  };
  auto it = vmas_.upper_bound(VirtAddr{addr});
  if (it != vmas_.begin()) --it;
  if (it != vmas_.begin()) --it;
  while (it != vmas_.end()) {
    auto next = std::next(it);
    if (next == vmas_.end()) break;
    if (compatible(it->second, next->second)) {
      if (!it->second.anon_vma) {
        it->second.anon_vma = next->second.anon_vma;
        it->second.anon_vma_singular = next->second.anon_vma_singular;
      }
      it->second.end = next->second.end;
      vmas_.erase(next);
      continue;
    }
    if (it->first.val > addr) break;
    it = next;
  }
}

// find_mergeable_anon_vma: a VMA adjacent to a neighbour that differs at
// most in its access rights (anon_vma_compatible) shares the neighbour's
// anon_vma when that one is reusable — the next VMA is tried first — so
// that an mprotect which later makes their rights equal can merge them.
void Mm::anon_vma_prepare(std::uint64_t va) {
  auto it = vmas_.upper_bound(VirtAddr{va});
  if (it == vmas_.begin()) return;
  --it;
  Vma& v = it->second;
  if (v.anon_vma || v.shared) return;
  const unsigned shift = sys_.mem().geometry().page_shift;
  auto compatible = [shift](const Vma& a, const Vma& b) { return adjacent_same_flags(a, b, shift); };
  auto reuse = [&](const Vma& n) {
    if (!n.anon_vma || !n.anon_vma_singular) return false;
    v.anon_vma = n.anon_vma;
    return true;
  };
  if (auto next = std::next(it); next != vmas_.end() && compatible(v, next->second) && reuse(next->second))
    return;
  if (it != vmas_.begin() && compatible(std::prev(it)->second, v) && reuse(std::prev(it)->second)) return;
  v.anon_vma = sys_.new_anon_vma();
  v.anon_vma_singular = true;
}

namespace {
// The top-down allocator (unmapped_area_topdown): the highest `len` bytes
// aligned to `align` in a gap below the mmap base.
std::optional<std::uint64_t> top_down(const std::map<VirtAddr, Vma>& vmas, std::uint64_t len, std::uint64_t align) {
  std::uint64_t hi = kMmapBase;
  for (auto it = vmas.rbegin();; ++it) {
    const std::uint64_t lo = it == vmas.rend() ? kMmapMin : std::min(it->second.end.val, hi);
    if (hi >= lo + len) {
      const std::uint64_t cand = align_down(hi - len, align);
      if (cand >= lo) return cand;
    }
    if (it == vmas.rend()) return std::nullopt;
    hi = std::min(hi, it->second.start.val);
  }
}
}  // namespace

std::optional<VirtAddr> Mm::mmap(std::uint64_t len, Prot prot, bool shared, std::optional<VirtAddr> addr,
                                 std::uint64_t align, const FileMap* file) {
  const std::uint64_t page = page_size();
  len = align_up(len, page);
  std::uint64_t start = 0;
  if (addr) {
    start = addr->val;
    for (const auto& [s, v] : vmas_)
      if (s.val < start + len && start < v.end.val) return std::nullopt;  // occupied
  } else {
    const std::uint64_t pmd = sys_.mem().geometry().pmd_size();
    std::optional<std::uint64_t> at;
    if (file && !file->shmem && align <= page) {
      // A regular file's get_unmapped_area (thp_get_unmapped_area, as
      // ext4 and xfs use): when the mapping holds a whole PMD-aligned
      // PMD-sized stretch of the file, ask for a PMD more and start where
      // the address is congruent to the file offset modulo the PMD size
      // (a PMD further up when the padded area's start already is: the
      // top-down allocator's start is the lowest free address of the gap),
      // so the page cache's large folios can be mapped by PMDs.
      const std::uint64_t off = file->pgoff * page;
      const std::uint64_t off_align = align_up(off, pmd);
      if (off + len > off_align && off + len - off_align >= pmd)
        if (auto ret = top_down(vmas_, len + pmd, page)) {
          const std::uint64_t off_sub = (off - *ret) & (pmd - 1);
          at = *ret + (off_sub ? off_sub : pmd);
        }
    }
    if (!at) {
      // thp_get_unmapped_area for private anonymous memory: lengths that are PMD
      // multiples are PMD aligned so they can get PMD-sized folios.
      std::uint64_t a = std::max(align, page);
      if (len % pmd == 0 && !file) a = std::max(a, pmd);
      at = top_down(vmas_, len, a);
    }
    if (!at) return std::nullopt;
    start = *at;
  }
  Vma v{VirtAddr{start}, VirtAddr{start + len}, prot, shared, false, false};
  if (file) {
    v.file = sys_.file_id(file->name, file->nr_pages, file->shmem);
    v.pgoff = file->pgoff;
  }
  vmas_.emplace(v.start, v);
  merge_around(start);
  return v.start;
}

// brk (mm/mmap.c, do_brk_flags): the new area is plain anonymous read-write
// memory whatever the heap's tail has become; it joins the heap's VMA only
// when their flags still match (not after an mprotect or MADV_HUGEPAGE of
// the tail), which is what lets a later fault choose a folio that straddles
// the old break. Shrinking unmaps the tail as munmap does.
bool Mm::brk(VirtAddr old_brk, VirtAddr new_brk) {
  const std::uint64_t old_end = align_up(old_brk.val, page_size());
  const std::uint64_t new_end = align_up(new_brk.val, page_size());
  if (new_end < old_end) {
    munmap(VirtAddr{new_end}, old_end - new_end);
    return true;
  }
  if (new_end == old_end) return true;
  return mmap(new_end - old_end, Prot::RW, false, VirtAddr{old_end}, 0).has_value();
}

void Mm::madvise_hugepage(VirtAddr at, std::uint64_t len, bool on) {
  const std::uint64_t start = at.val;
  const std::uint64_t end = start + align_up(len, page_size());
  split_vma_at(start);
  split_vma_at(end);
  for (auto it = vmas_.lower_bound(at); it != vmas_.end() && it->first.val < end; ++it) {
    it->second.hugepage = on;
    it->second.nohugepage = !on;
  }
  merge_around(start);
  merge_around(end);
}

// change_protection / change_pte_range with the 6.17 batched
// modify_prot_start_ptes / modify_prot_commit_ptes: one batch per run of a
// large folio, so a whole uniform block is rewritten contiguous in one go.
void Mm::mprotect(VirtAddr at, std::uint64_t len, Prot prot) {
  const std::uint64_t start = at.val;
  const Geometry& g = sys_.mem().geometry();
  const unsigned shift = g.page_shift;
  const std::uint64_t end = start + align_up(len, page_size());
  split_vma_at(start);
  split_vma_at(end);
  bool flushed_any = false;
  for (auto it = vmas_.lower_bound(at); it != vmas_.end() && it->first.val < end; ++it) {
    Vma& v = it->second;
    if (v.prot == prot) continue;  // nothing to change: skipped
    v.prot = prot;
    const PgProt newprot = vm_page_prot(v);
    // change_huge_pmd: invalidate, modify, set — the whole block at once.
    for_each_huge_pmd(v.start.val, v.end.val, [&](std::uint64_t haddr, PteSlot pmdp, Pte) {
      const Pte oldpmd = pmdp_invalidate(haddr, pmdp);
      Pte entry = pte_modify(oldpmd, newprot);
      // can_change_pmd_writable: an exclusive anonymous THP (never the
      // huge zero folio) in a private writable mapping.
      if (v.writable() && !v.shared && pte_valid(entry) && !is_huge_zero_pmd(oldpmd)) {
        const FolioInfo f = sys_.mem().folio_of(pte_pfn(oldpmd, shift));
        if (f.valid && sys_.mapped_only_by(f.head, pid_)) entry = pte_mkwrite(entry);
      }
      set_pmd_at(env_, VirtAddr{haddr}, pmdp, entry);
      flushed_any = true;
    });
    for_each_present_batch(v.start.val, v.end.val, [&](std::uint64_t va, PteSlot slot, Pte, unsigned nr) {
      Pte oldpte = modify_prot_start_ptes(env_, VirtAddr{va}, slot, nr);
      if (sys_.checker) sys_.checker->returned(asid_, va, nr, oldpte);
      Pte ptent = pte_modify(oldpte, newprot);
      // can_change_pte_writable: an exclusive anonymous folio in a private
      // writable mapping is made writable right away, as the write fault
      // would.
      if (v.writable() && !v.shared && !pte_special(oldpte)) {
        const FolioInfo f = sys_.mem().folio_of(pte_pfn(oldpte, shift));
        if (f.valid && sys_.mapped_only_by(f.head, pid_)) ptent = pte_mkwrite(ptent);
      }
      modify_prot_commit_ptes(env_, VirtAddr{va}, slot, oldpte, ptent, nr);
      flushed_any = true;
    });
  }
  if (flushed_any) flush_range(start, end);
  merge_around(start);
  merge_around(end);
}

}  // namespace contpte
