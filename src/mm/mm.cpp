#include "mm/mm.h"

#include <algorithm>
#include <stdexcept>

#include "engine/pgtable.h"
#include "engine/raw.h"

namespace contpte {

namespace {
constexpr std::uint64_t align_down(std::uint64_t v, std::uint64_t a) { return v & ~(a - 1); }
constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) & ~(a - 1); }
// Top of the mmap area: the stack and its gap sit above (mmap_base()).
constexpr std::uint64_t kMmapBase = kUserVaEnd - (std::uint64_t{8} << 30);
constexpr std::uint64_t kMmapMin = std::uint64_t{1} << 32;
}  // namespace

// ---- MmSystem ----------------------------------------------------------------

MmSystem::MmSystem(PhysMem& mem, BuddyAllocator& buddy, Features features, ThpSettings thp)
    : mem_(mem), buddy_(buddy), features_(features), thp_(std::move(thp)) {
  // The shared zero page: one frame that every read fault of anonymous
  // memory maps (special: no folio refcounting, never folded).
  auto z = buddy_.alloc_folio(0, /*counted=*/false);
  if (!z) throw std::runtime_error("no memory for the zero page");
  zero_pfn_ = *z;
}

std::optional<Pfn> MmSystem::huge_zero_pfn() {
  if (!huge_zero_pfn_) {
    const Geometry& g = mem_.geometry();
    huge_zero_pfn_ = buddy_.alloc_folio(g.pmd_shift() - g.page_shift, /*counted=*/false);
    if (huge_zero_pfn_) ++stats_.thp_zero_page_alloc;
  }
  return huge_zero_pfn_;
}

void MmSystem::map_pages(Pfn head, std::uint64_t n, unsigned pid) {
  FolioMaps& f = folios_[head.val];
  f.by_pid[pid] += n;
  f.total += n;
}

void MmSystem::unmap_pages(Pfn head, std::uint64_t n, unsigned pid) {
  auto it = folios_.find(head.val);
  if (it == folios_.end()) return;
  FolioMaps& f = it->second;
  auto p = f.by_pid.find(pid);
  if (p != f.by_pid.end()) {
    p->second -= std::min(p->second, n);
    if (p->second == 0) f.by_pid.erase(p);
  }
  f.total -= std::min(f.total, n);
  if (f.total == 0 && !f.file) {
    // The last mapping is gone: the folio is freed (no page cache, no swap).
    const FolioInfo info = mem_.folio_of(head);
    buddy_.free_folio(head, static_cast<unsigned>(__builtin_ctzll(info.nr_pages)));
    folios_.erase(it);
    ++stats_.folios_freed;
  }
}

bool MmSystem::mapped_only_by(Pfn head, unsigned pid) const {
  auto it = folios_.find(head.val);
  if (it == folios_.end()) return true;
  if (it->second.file) return false;  // the page cache holds it too
  return it->second.by_pid.size() <= 1 && it->second.by_pid.count(pid);
}

int MmSystem::file_id(const std::string& name, std::uint64_t nr_pages, bool shmem) {
  for (std::size_t i = 0; i < files_.size(); ++i)
    if (files_[i].name == name) {
      files_[i].nr_pages = std::max(files_[i].nr_pages, nr_pages);
      return static_cast<int>(i);
    }
  files_.push_back(FileCache{name, nr_pages, {}, 0, 0, 0, 0, false, shmem});
  return static_cast<int>(files_.size() - 1);
}

std::optional<std::pair<Pfn, std::uint64_t>> MmSystem::find_cached(int id, std::uint64_t index) const {
  const auto& folios = files_[static_cast<std::size_t>(id)].folios;
  auto it = folios.upper_bound(index);
  if (it == folios.begin()) return std::nullopt;
  --it;
  if (index >= it->first + (std::uint64_t{1} << it->second.second)) return std::nullopt;
  return std::pair{it->second.first, it->first};  // head pfn, first index
}

bool MmSystem::is_file_folio(Pfn head) const {
  auto it = folios_.find(head.val);
  return it != folios_.end() && it->second.file;
}

void MmSystem::set_lazyfree(Pfn head, bool on) {
  auto it = folios_.find(head.val);
  if (it != folios_.end()) it->second.lazyfree = on;
}

bool MmSystem::lazyfree(Pfn head) const {
  auto it = folios_.find(head.val);
  return it != folios_.end() && it->second.lazyfree;
}

void MmSystem::split_folio(Pfn head, const std::vector<bool>& mapped, unsigned pid) {
  auto it = folios_.find(head.val);
  if (it == folios_.end()) return;
  const unsigned order = static_cast<unsigned>(__builtin_ctzll(mapped.size()));
  folios_.erase(it);
  mem_.split_folio(head);
  ++stats_.folio_splits;
  ++stats_.split[order];
  for (std::size_t i = 0; i < mapped.size(); ++i) {
    if (mapped[i]) {
      FolioMaps& f = folios_[head.val + i];
      f.by_pid[pid] = 1;
      f.total = 1;
    } else {
      // Pages nobody maps any more are freed with the split (a partly
      // unmapped folio on the deferred split queue gives them back here).
      buddy_.free_folio(head + i, 0);
      ++stats_.folios_freed;
    }
  }
}

std::uint64_t MmSystem::mapcount(Pfn head) const {
  auto it = folios_.find(head.val);
  return it == folios_.end() ? 0 : it->second.total;
}

// ---- Mm ------------------------------------------------------------------------

Mm::Mm(MmSystem& sys, unsigned pid, std::uint16_t asid)
    : sys_(sys), pid_(pid), asid_(asid), pt_(sys.mem()), env_(sys.mem(), pt_, sys.features(), asid) {
  for (SimObserver* o : sys_.observers) env_.add_observer(o);
}

const Vma* Mm::find_vma(std::uint64_t va) const {
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
  auto it = vmas_.upper_bound(addr);
  if (it == vmas_.begin()) return;
  --it;
  Vma& v = it->second;
  if (addr <= v.start || addr >= v.end) return;
  // vma_adjust_trans_huge: a huge PMD cannot straddle two VMAs, so one
  // across an unaligned boundary is split to PTEs first.
  const std::uint64_t pmd = sys_.mem().geometry().pmd_size();
  if (addr % pmd != 0)
    if (auto pmdp = pt_.entry_slot(VirtAddr{addr}, 2, false); pmdp && pmd_trans_huge(*pmdp->ptr()))
      split_huge_pmd(v, align_down(addr, pmd), *pmdp);
  Vma hi = v;
  hi.start = addr;
  if (v.file >= 0) hi.pgoff = v.pgoff + ((addr - v.start) >> sys_.mem().geometry().page_shift);
  v.end = addr;
  vmas_.emplace(addr, hi);
}

namespace {
// `a` ends where `b` starts and both have the same flags apart from their
// access rights (anon_vma_compatible); a file mapping continues only with
// the same file at the next file page.
bool adjacent_same_flags(const Vma& a, const Vma& b, unsigned page_shift) {
  const bool same_backing =
      a.file == b.file && (a.file < 0 || b.pgoff == a.pgoff + ((a.end - a.start) >> page_shift));
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
  auto it = vmas_.upper_bound(addr);
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
    if (it->first > addr) break;
    it = next;
  }
}

// find_mergeable_anon_vma: a VMA adjacent to a neighbour that differs at
// most in its access rights (anon_vma_compatible) shares the neighbour's
// anon_vma when that one is reusable — the next VMA is tried first — so
// that an mprotect which later makes their rights equal can merge them.
void Mm::anon_vma_prepare(std::uint64_t va) {
  auto it = vmas_.upper_bound(va);
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

std::optional<std::uint64_t> Mm::mmap(std::uint64_t len, Prot prot, bool shared,
                                      std::optional<std::uint64_t> addr, std::uint64_t align,
                                      const std::string* file, bool shmem) {
  const std::uint64_t page = page_size();
  len = align_up(len, page);
  std::uint64_t start = 0;
  if (addr) {
    start = *addr;
    for (const auto& [s, v] : vmas_)
      if (s < start + len && start < v.end) return std::nullopt;  // occupied
  } else {
    // thp_get_unmapped_area: anonymous lengths that are PMD multiples are
    // PMD aligned so they can get PMD-sized folios.
    const std::uint64_t pmd = sys_.mem().geometry().pmd_size();
    std::uint64_t a = std::max(align, page);
    if (len % pmd == 0 && !file) a = std::max(a, pmd);
    // Top-down: the highest gap below the mmap base that fits.
    std::uint64_t hi = kMmapBase;
    bool found = false;
    for (auto it = vmas_.rbegin();; ++it) {
      const std::uint64_t lo = it == vmas_.rend() ? kMmapMin : std::min(it->second.end, hi);
      if (hi >= lo + len) {
        const std::uint64_t cand = align_down(hi - len, a);
        if (cand >= lo) {
          start = cand;
          found = true;
          break;
        }
      }
      if (it == vmas_.rend()) break;
      hi = std::min(hi, it->second.start);
    }
    if (!found) return std::nullopt;
  }
  Vma v{start, start + len, prot, shared, false, false};
  if (file) v.file = sys_.file_id(*file, len / page, shmem);
  vmas_.emplace(start, v);
  merge_around(start);
  return start;
}

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

// zap_pte_range + mmu_gather: batches of one folio cleared with
// get_and_clear_full_ptes, rmap dropped (freeing folios no one maps), one
// flush for the whole range at the end.
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

void Mm::zap_range(std::uint64_t start, std::uint64_t end, MmuGather& tlb) {
  const unsigned shift = sys_.mem().geometry().page_shift;
  // zap_huge_pmd: a huge PMD the range covers is cleared as one entry.
  for_each_huge_pmd(start, end, [&](std::uint64_t haddr, PteSlot pmdp, Pte) {
    const Pte old = raw::ptep_get_and_clear(env_, VirtAddr{haddr}, pmdp);
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
  auto next = vmas_.lower_bound(end);
  const std::uint64_t ceiling = next == vmas_.end() ? 0 : next->second.start;
  auto prev = vmas_.lower_bound(start);
  const std::uint64_t floor = prev == vmas_.begin() ? 0 : std::prev(prev)->second.end;
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
void Mm::munmap(std::uint64_t start, std::uint64_t len) {
  const std::uint64_t end = start + align_up(len, page_size());
  split_vma_at(start);
  split_vma_at(end);
  auto first = vmas_.lower_bound(start);
  if (first == vmas_.end() || first->first >= end) return;  // nothing mapped: nothing to do
  const std::uint64_t lo = first->second.start;
  std::uint64_t hi = lo;
  MmuGather tlb;
  zap_range(start, end, tlb);
  for (auto it = first; it != vmas_.end() && it->first < end;) {
    hi = it->second.end;
    it = vmas_.erase(it);
  }
  free_pgtables(lo, hi, tlb);
  tlb_finish_mmu(tlb);
}

// brk (mm/mmap.c, do_brk_flags): the new area is plain anonymous read-write
// memory whatever the heap's tail has become; it joins the heap's VMA only
// when their flags still match (not after an mprotect or MADV_HUGEPAGE of
// the tail), which is what lets a later fault choose a folio that straddles
// the old break. Shrinking unmaps the tail as munmap does.
bool Mm::brk(std::uint64_t old_brk, std::uint64_t new_brk) {
  old_brk = align_up(old_brk, page_size());
  new_brk = align_up(new_brk, page_size());
  if (new_brk < old_brk) {
    munmap(new_brk, old_brk - new_brk);
    return true;
  }
  if (new_brk == old_brk) return true;
  return mmap(new_brk - old_brk, Prot::RW, false, old_brk, 0).has_value();
}

void Mm::madvise_dontneed(std::uint64_t start, std::uint64_t len) {
  MmuGather tlb;
  zap_range(start, start + align_up(len, page_size()), tlb);
  tlb_finish_mmu(tlb);
}

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
    if (const Vma* v = find_vma(base_va)) split_huge_pmd(*v, base_va, *pmdp);
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
  for (std::uint64_t addr = start; addr < end;) {
    const std::uint64_t next = std::min(end, align_down(addr, g.pmd_size()) + g.pmd_size());
    if (auto pmdp = pt_.entry_slot(VirtAddr{addr}, 2, false); pmdp && pmd_trans_huge(*pmdp->ptr())) {
      const Pte pmd = *pmdp->ptr();
      const FolioInfo f = sys_.mem().folio_of(pte_pfn(pmd, shift));
      if (is_huge_zero_pmd(pmd) || !exclusive(f)) {
        addr = next;
        continue;
      }
      const std::uint64_t haddr = align_down(addr, g.pmd_size());
      if (next - addr == g.pmd_size()) {
        fn(haddr, *pmdp, pmd, static_cast<unsigned>(f.nr_pages), true);
        addr = next;
        continue;
      }
      split_folio(f.head, haddr);
    }
    auto slot = pt_.pte_slot(VirtAddr{addr}, false);
    if (!slot) {
      addr = next;
      continue;
    }
    while (addr < next) {
      Pte pte = ptep_get(env_, *slot);
      std::uint64_t nr = 1;
      const FolioInfo f = pte_present(pte) && !pte_special(pte) ? sys_.mem().folio_of(pte_pfn(pte, shift))
                                                                : FolioInfo{};
      if (f.valid) {
        nr = folio_pte_batch(*slot, &pte, (next - addr) >> shift);
        if (f.nr_pages > 1 && nr < f.nr_pages) {
          // Only part of the folio is here — the range covers part of it,
          // or the rest is no longer mapped: split it unless another
          // process may map it (folio_maybe_mapped_shared). Its mapcount
          // does not matter here, unlike for a whole folio below.
          if (sys_.mapped_only_by(f.head, pid_)) {
            split_folio(f.head, addr - ((pte_pfn(pte, shift).val - f.head.val) << shift));
            continue;  // the same address again, now an order-0 folio
          }
        } else if (exclusive(f)) {
          for (std::uint64_t i = 1; i < nr; ++i) {
            const Pte p = ptep_get(env_, *slot + static_cast<std::ptrdiff_t>(i));
            if (pte_young(p)) pte = pte_mkyoung(pte);
            if (pte_dirty(p)) pte = pte_mkdirty(pte);
          }
          fn(addr, *slot, pte, static_cast<unsigned>(nr), false);
        }
      }
      addr += nr << shift;
      *slot = *slot + static_cast<std::ptrdiff_t>(nr);
    }
  }
}

void Mm::madvise_free(std::uint64_t start, std::uint64_t len) {
  const std::uint64_t end = start + align_up(len, page_size());
  const unsigned shift = sys_.mem().geometry().page_shift;
  bool flush = false;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // private anonymous parts
  for (const auto& [s, v] : vmas_)
    if (v.start < end && start < v.end && !v.shared) ranges.emplace_back(std::max(start, v.start), std::min(end, v.end));
  for (const auto& [rs, re] : ranges)
    for_each_madvise_folio(rs, re, [&](std::uint64_t va, PteSlot slot, Pte pte, unsigned nr, bool is_pmd) {
      const FolioInfo f = sys_.mem().folio_of(pte_pfn(pte, shift));
      if (pte_young(pte) || pte_dirty(pte)) {
        if (is_pmd) {
          const Pte old = pmdp_invalidate(va, slot);
          raw::set_pte(env_, slot, pte_mkclean(pte_mkold(old)));
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

void Mm::madvise_cold(std::uint64_t start, std::uint64_t len, bool pageout) {
  const std::uint64_t end = start + align_up(len, page_size());
  const Geometry& g = sys_.mem().geometry();
  bool flush = false;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
  for (const auto& [s, v] : vmas_)
    if (v.start < end && start < v.end && !v.shared) ranges.emplace_back(std::max(start, v.start), std::min(end, v.end));
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
          raw::set_pte(env_, slot, pte_mkold(old));
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
      raw::ptep_get_and_clear(env_, VirtAddr{v.va}, *pmdp);
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

void Mm::madvise_hugepage(std::uint64_t start, std::uint64_t len, bool on) {
  const std::uint64_t end = start + align_up(len, page_size());
  split_vma_at(start);
  split_vma_at(end);
  for (auto it = vmas_.lower_bound(start); it != vmas_.end() && it->first < end; ++it) {
    it->second.hugepage = on;
    it->second.nohugepage = !on;
  }
  merge_around(start);
  merge_around(end);
}

// change_protection / change_pte_range with the 6.17 batched
// modify_prot_start_ptes / modify_prot_commit_ptes: one batch per run of a
// large folio, so a whole uniform block is rewritten contiguous in one go.
void Mm::mprotect(std::uint64_t start, std::uint64_t len, Prot prot) {
  const Geometry& g = sys_.mem().geometry();
  const unsigned shift = g.page_shift;
  const std::uint64_t end = start + align_up(len, page_size());
  split_vma_at(start);
  split_vma_at(end);
  bool flushed_any = false;
  for (auto it = vmas_.lower_bound(start); it != vmas_.end() && it->first < end; ++it) {
    Vma& v = it->second;
    if (v.prot == prot) continue;  // nothing to change: skipped
    v.prot = prot;
    const PgProt newprot = vm_page_prot(v);
    // change_huge_pmd: invalidate, modify, set — the whole block at once.
    for_each_huge_pmd(v.start, v.end, [&](std::uint64_t haddr, PteSlot pmdp, Pte) {
      const Pte oldpmd = pmdp_invalidate(haddr, pmdp);
      Pte entry = pte_modify(oldpmd, newprot);
      // can_change_pmd_writable: an exclusive anonymous THP (never the
      // huge zero folio) in a private writable mapping.
      if (v.writable() && !v.shared && pte_valid(entry) && !is_huge_zero_pmd(oldpmd)) {
        const FolioInfo f = sys_.mem().folio_of(pte_pfn(oldpmd, shift));
        if (f.valid && sys_.mapped_only_by(f.head, pid_)) entry = pte_mkwrite(entry);
      }
      raw::set_pte(env_, pmdp, entry);
      flushed_any = true;
    });
    for_each_present_batch(v.start, v.end, [&](std::uint64_t va, PteSlot slot, Pte, unsigned nr) {
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
    if (a < v.start || a + size > v.end) continue;  // thp_vma_suitable_orders
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

// ---- file mappings: page cache, readahead, fault-around ----------------------------

namespace {
// read_ahead_kb and fault_around_bytes defaults.
constexpr std::uint64_t kReadAheadBytes = 128 * 1024;
constexpr std::uint64_t kFaultAroundBytes = 64 * 1024;
}  // namespace

// page_cache_ra_order: folios of `order` (at most the window's size) for
// the window's pages not cached yet, each naturally aligned in the file,
// lower orders where alignment, cached neighbours or the allocator refuse.
void Mm::page_cache_ra(FileCache& f, std::uint64_t start, std::uint64_t size, unsigned order) {
  const std::uint64_t end = std::min(start + size, f.nr_pages);
  if (start >= end) return;
  order = std::min<unsigned>(order, 63 - static_cast<unsigned>(__builtin_clzll(end - start)));
  order = std::min(order, pmd_order());
  const int id = static_cast<int>(&f - &sys_.files_[0]);
  for (std::uint64_t idx = start; idx < end;) {
    if (sys_.find_cached(id, idx)) {
      ++idx;
      continue;
    }
    unsigned o = order;
    auto fits = [&](unsigned k) {
      const std::uint64_t n = std::uint64_t{1} << k;
      if ((idx & (n - 1)) || idx + n > end) return false;
      for (std::uint64_t i = 1; i < n; ++i)
        if (sys_.find_cached(id, idx + i)) return false;
      return true;
    };
    while (o > 0 && !fits(o)) --o;
    std::optional<Pfn> pfn;
    for (;; --o) {
      pfn = sys_.buddy().alloc_folio(o);
      if (pfn || o == 0) break;
    }
    if (!pfn) break;  // out of memory: the window is cut short
    f.folios[idx] = {*pfn, o};
    auto& maps = sys_.folios_[pfn->val];
    maps.file = true;
    maps.order = o;
    const std::uint64_t n = std::uint64_t{1} << o;
    ++sys_.stats().pagecache_folios;
    ++sys_.stats().pagecache_alloc[o];
    sys_.stats().pagecache_bytes += n * page_size();
    idx += n;
  }
  f.ra_start = start;
  f.ra_size = end - start;
  f.ra_order = order;
  f.ra_valid = true;
}

// filemap_fault: a hit on the page marked PG_readahead starts the next
// window (do_async_mmap_readahead: twice the size up to read_ahead_kb,
// folio order + 2), so a sequential reader finds its pages cached in ever
// larger folios; a miss reads around the fault with order-0 folios
// (do_sync_mmap_readahead). Past the end of the file: SIGBUS.
std::optional<Pfn> Mm::filemap_fault(const Vma& v, std::uint64_t index) {
  FileCache& f = sys_.file(v.file);
  if (index >= f.nr_pages) return std::nullopt;
  const std::uint64_t ra_pages = std::max<std::uint64_t>(1, kReadAheadBytes / page_size());
  if (auto hit = sys_.find_cached(v.file, index)) {
    if (f.ra_valid && index == f.ra_start + f.ra_size - f.ra_async) {
      const std::uint64_t next = f.ra_start + f.ra_size;
      const std::uint64_t size = std::min(ra_pages, f.ra_size * 2);
      page_cache_ra(f, next, size, f.ra_order + 2);
      f.ra_async = f.ra_size;  // the new window's first page is the next mark
    }
    return hit->first + (index - hit->second);
  }
  if (f.shmem) return shmem_alloc(f, index);
  const std::uint64_t start = index > ra_pages / 2 ? index - ra_pages / 2 : 0;
  page_cache_ra(f, start, ra_pages, 0);
  f.ra_async = f.ra_size / 4;
  auto got = sys_.find_cached(v.file, index);
  if (!got) return std::nullopt;
  return got->first + (index - got->second);
}

// shmem_get_folio for a hole: a zeroed order-0 folio into the object.
std::optional<Pfn> Mm::shmem_alloc(FileCache& f, std::uint64_t index) {
  auto pfn = sys_.buddy().alloc_folio(0);
  if (!pfn) return std::nullopt;
  f.folios[index] = {*pfn, 0};
  auto& maps = sys_.folios_[pfn->val];
  maps.file = true;
  maps.order = 0;
  ++sys_.stats().shmem_folios;
  sys_.stats().bytes_zeroed += page_size();
  return pfn;
}

void Mm::do_fault_around(const Vma& v, std::uint64_t va) {
  const Geometry& g = sys_.mem().geometry();
  if (kFaultAroundBytes <= g.page_size()) return;  // should_fault_around
  const std::uint64_t pmd_base = align_down(va, g.pmd_size());
  const std::uint64_t from = std::max({align_down(va, kFaultAroundBytes), v.start, pmd_base});
  const std::uint64_t to = std::min({align_down(va, kFaultAroundBytes) + kFaultAroundBytes, v.end,
                                     pmd_base + g.pmd_size()});
  FileCache& f = sys_.file(v.file);
  const std::uint64_t mark = f.ra_valid ? f.ra_start + f.ra_size - f.ra_async : ~std::uint64_t{0};
  const PteSlot base = *pt_.pte_slot(VirtAddr{from}, true);
  // arch_wants_old_prefaulted_pte: with hardware AF, pages mapped ahead of
  // use are old, so reclaim can tell whether they are ever used.
  const bool old_prefault = sys_.features().hafdbs;
  for (std::uint64_t a = from; a < to;) {
    const std::uint64_t index = file_index(v, a);
    auto hit = sys_.find_cached(v.file, index);
    if (!hit) {
      a += g.page_size();
      continue;
    }
    const Pfn head = hit->first;
    const std::uint64_t folio_end_index = hit->second + (std::uint64_t{1} << sys_.folios_[head.val].order);
    const std::uint64_t run_limit = std::min(to, a + ((folio_end_index - index) << g.page_shift));
    // next_uptodate_folio skips a folio marked for async readahead: the
    // fault on it must start the next window.
    if (mark >= hit->second && mark < folio_end_index) {
      a = run_limit;
      continue;
    }
    while (a < run_limit) {
      // A run of empty PTEs over this folio: one set_ptes.
      PteSlot slot = base + static_cast<std::ptrdiff_t>((a - from) >> g.page_shift);
      if (!pte_none(ptep_get(env_, slot))) {
        a += g.page_size();
        continue;
      }
      std::uint64_t n = 0;
      while (a + (n << g.page_shift) < run_limit &&
             pte_none(ptep_get(env_, slot + static_cast<std::ptrdiff_t>(n))))
        ++n;
      const Pfn pfn = head + (file_index(v, a) - hit->second);
      Pte entry = pfn_pte(pfn, vm_page_prot(v), g.page_shift);
      if (v.shared) entry = pte_wrprotect(entry);  // write-notify: page_mkwrite on the first write
      const bool faulting = va >= a && va < a + (n << g.page_shift);
      if (old_prefault && !faulting) entry = pte_mkold(entry);
      set_ptes(env_, VirtAddr{a}, slot, entry, static_cast<unsigned>(n));
      sys_.map_pages(head, n, pid_);
      sys_.stats().faultaround_pages += faulting ? n - 1 : n;
      a += n << g.page_shift;
    }
  }
}

// do_fault: a read maps from the page cache (fault-around first, then
// filemap_fault for the page itself — finish_fault maps just that page for
// a regular file); a write to a private mapping copies the page into a new
// anonymous one (do_cow_fault); a write to a shared one maps the
// page-cache page writable and dirty (do_shared_fault).
FaultResult Mm::do_fault(const Vma& v, std::uint64_t va, PteSlot ptep, bool write) {
  const Geometry& g = sys_.mem().geometry();
  const VirtAddr a{align_down(va, g.page_size())};
  if (!write) {
    do_fault_around(v, va);
    if (!pte_none(ptep_get(env_, ptep))) {
      ++sys_.stats().faults_file;
      return FaultResult::Handled;
    }
  }
  auto pfn = filemap_fault(v, file_index(v, va));
  if (!pfn) return FaultResult::Segv;  // SIGBUS: beyond the file, or no memory
  const FolioInfo folio = sys_.mem().folio_of(*pfn);
  if (write && !v.shared) {
    anon_vma_prepare(va);  // do_cow_fault: the copy is anonymous memory
    auto copy = sys_.buddy().alloc_folio(0);
    if (!copy) return FaultResult::Segv;
    Pte entry = pte_mkwrite(pte_mkdirty(pfn_pte(*copy, vm_page_prot(v), g.page_shift)));
    set_pte_at(env_, a, ptep, entry);
    sys_.map_pages(*copy, 1, pid_);
    sys_.stats().bytes_copied += g.page_size();
    ++sys_.stats().faults_cow;
    return FaultResult::Handled;
  }
  Pte entry = pfn_pte(*pfn, vm_page_prot(v), g.page_shift);
  if (write)
    entry = pte_mkwrite(pte_mkdirty(entry));
  else if (v.shared)
    entry = pte_wrprotect(entry);
  set_pte_at(env_, a, ptep, entry);
  sys_.map_pages(folio.head, 1, pid_);
  ++sys_.stats().faults_file;
  return FaultResult::Handled;
}

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
  return haddr >= v.start && haddr + sys_.mem().geometry().pmd_size() <= v.end;
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
  raw::set_pte(env_, pmdp, entry);  // set_pmd_at
  (void)haddr;
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
    raw::set_pte(env_, pmdp, pte_mkspecial(pmd_mkhuge(pfn_pte(*zero, vm_page_prot(v), g.page_shift))));
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
      raw::ptep_get_and_clear(env_, VirtAddr{haddr}, pmdp);  // pmdp_huge_clear_flush
      flush_pmds({haddr});
      map_anon_folio_pmd(v, *pfn, haddr, pmdp);
      return FaultResult::Handled;
    }
  } else {
    const FolioInfo f = sys_.mem().folio_of(pte_pfn(orig, g.page_shift));
    if (f.valid && sys_.mapped_only_by(f.head, pid_)) {
      const Pte entry = pte_mkwrite(pte_mkdirty(pte_mkyoung(orig)));
      raw::ptep_set_access_flags(env_, VirtAddr{haddr}, pmdp, entry, true);
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
  ++env_.counters().pte_stores;
  const Pte old = env_.xchg(pmdp, pmd_mkinvalid(*pmdp.ptr()));
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
    old = raw::ptep_get_and_clear(env_, VirtAddr{haddr}, pmdp);  // pmdp_huge_clear_flush
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
  raw::set_pte(env_, pmdp, PageTable::table_desc(table));  // pmd_populate
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

FaultResult Mm::handle_fault(std::uint64_t va, bool write, bool exec) {
  ++sys_.stats().faults;
  const Vma* v = find_vma(va);
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
      if (raw::ptep_set_access_flags(env_, VirtAddr{haddr}, pmdp, entry, write))
        ++sys_.stats().faults_access;
      return FaultResult::Handled;
    }
  }
  const PteSlot ptep = *pt_.pte_slot(VirtAddr{va}, true);
  const Pte pte = ptep_get(env_, ptep);
  if (pte_none(pte)) return v->file >= 0 ? do_fault(*v, va, ptep, write) : do_anonymous_page(*v, va, ptep, write);
  if (!pte_present(pte)) return FaultResult::Segv;  // no swap in this model
  if (write && !pte_write(pte)) return do_wp_page(*v, va, ptep, pte);
  // An access-flag or dirty-state fault (no FEAT_HAFDBS): set them.
  Pte entry = pte_mkyoung(pte);
  if (write) entry = pte_mkdirty(entry);
  if (ptep_set_access_flags(env_, VirtAddr{align_down(va, page_size())}, ptep, entry, write))
    ++sys_.stats().faults_access;
  return FaultResult::Handled;
}

FaultResult Mm::populate_write(std::uint64_t start, std::uint64_t len) {
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
    if (handle_fault(va, true, false) == FaultResult::Segv) return FaultResult::Segv;
    // The fault may have mapped a whole folio or PMD: look again, but never
    // twice at a page the fault left as it was.
    if (!populated(va)) va += page_size();
  }
  return FaultResult::Handled;
}

Pte Mm::leaf_pte(std::uint64_t va, bool gathered) {
  const Geometry& g = sys_.mem().geometry();
  if (auto slot = pt_.pte_slot(VirtAddr{va}, false)) return gathered ? ptep_get(env_, *slot) : *slot->ptr();
  if (auto pmdp = pt_.entry_slot(VirtAddr{va}, 2, false); pmdp && pmd_trans_huge(*pmdp->ptr()))
    return pte_advance_pfn(*pmdp->ptr(), (va & (g.pmd_size() - 1)) >> g.page_shift, g.page_shift);
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
    for (std::uint64_t va = align_down(v.start, g.pmd_size()); va < v.end; va += g.pmd_size()) {
      const VirtAddr at{std::max(va, v.start)};
      if (pt_.pte_slot(at, false)) child->pt_.pte_slot(at, true);
    }
    // copy_huge_pmd: the child maps the same THP (or huge zero folio);
    // both PMDs are write-protected and the child's is old.
    for_each_huge_pmd(v.start, v.end, [&](std::uint64_t haddr, PteSlot src, Pte pmd) {
      if (!is_huge_zero_pmd(pmd)) {
        const FolioInfo f = sys_.mem().folio_of(pte_pfn(pmd, shift));
        if (f.valid) sys_.map_pages(f.head, f.nr_pages, child_pid);
      }
      raw::ptep_set_wrprotect(env_, VirtAddr{haddr}, src);
      pmd = pte_mkold(pte_wrprotect(pmd));
      raw::set_pte(child->env_, *child->pt_.entry_slot(VirtAddr{haddr}, 2, true), pmd);
    });
    for_each_present_batch(v.start, v.end, [&](std::uint64_t va, PteSlot src, Pte pte, unsigned nr) {
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

std::uint64_t Mm::age_young(std::uint64_t budget) {
  const Geometry& g = sys_.mem().geometry();
  const std::uint64_t pmd = g.pmd_size();
  for (const auto& entry : vmas_) {
    const Vma& v = entry.second;
    for (std::uint64_t va = v.start; va < v.end && budget;) {
      const std::uint64_t pmd_end = std::min(v.end, align_down(va, pmd) + pmd);
      auto pmdp = pt_.entry_slot(VirtAddr{va}, 2, false);
      const Pte pmdv = pmdp ? *pmdp->ptr() : Pte{};
      if (pmd_trans_huge(pmdv) && !is_huge_zero_pmd(pmdv)) {
        const std::uint64_t haddr = align_down(va, pmd);
        if (raw::ptep_test_and_clear_young(env_, VirtAddr{haddr}, *pmdp)) flush_pmds({haddr});
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

// exit_mmap: everything zapped and every table below the root freed, with
// one flush of the ASID.
void Mm::exit_mmap() {
  MmuGather tlb;
  tlb.fullmm = true;
  for (const auto& [s, v] : vmas_) zap_range(v.start, v.end, tlb);
  vmas_.clear();
  free_pgtables(0, kUserVaEnd, tlb);
  ++sys_.stats().caller_tlbi;
  env_.flush_tlb_mm();
  tlb_finish_mmu(tlb);
}

}  // namespace contpte
