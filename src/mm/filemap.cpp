// mm/filemap.cpp — file mappings (mm/filemap.c, mm/readahead.c,
// do_fault in mm/memory.c, shmem): the page cache, readahead windows,
// fault-around, private COW of file pages and shared anonymous memory.

#include "mm/mm.h"

#include <algorithm>

#include "engine/pgtable.h"

namespace contpte {

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

// The window is fault_around_bytes aligned in the virtual address (PTE
// index), clamped to the VMA and the PTE page (do_fault_around), then in
// file indices to the file's last page (filemap_map_pages: no PTE beyond
// i_size, which keeps SIGBUS there). File page i sits at
// v.start + (i - v.pgoff) pages, so a folio naturally aligned in the file
// is aligned in the address space only where the two are congruent.
void Mm::do_fault_around(const Vma& v, std::uint64_t va) {
  const Geometry& g = sys_.mem().geometry();
  if (kFaultAroundBytes <= g.page_size()) return;  // should_fault_around
  FileCache& f = sys_.file(v.file);
  const std::uint64_t pmd_base = align_down(va, g.pmd_size());
  const std::uint64_t file_end =
      f.nr_pages > v.pgoff ? v.start.val + ((f.nr_pages - v.pgoff) << g.page_shift) : v.start.val;
  const std::uint64_t from = std::max({align_down(va, kFaultAroundBytes), v.start.val, pmd_base});
  const std::uint64_t to = std::min({align_down(va, kFaultAroundBytes) + kFaultAroundBytes, v.end.val,
                                     pmd_base + g.pmd_size(), file_end});
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

}  // namespace contpte
