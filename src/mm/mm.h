// mm/mm.h — a small model of the Linux 6.18 memory manager for anonymous
// memory: processes, VMAs, faults, fork, munmap, mprotect, madvise.
//
// Owns: each process's address space (VMAs, page table, ASID) and the
// decisions Linux makes about folios — which mTHP order a fault gets, when
// a write copies and when it reuses, how fork shares and write-protects,
// how zap batches and frees. Every page-table change goes through the
// contpte engine's public API, at the point where the kernel calls it.
// Must not know: scenarios, report formats, the TLB model (flushes are
// requested through the Env, as mmu_gather and flush_tlb_range do).
//
// One file per seam, named after the Linux source it models:
//   mm_system.cpp   MmSystem: rmap map counts, lazyfree, zero pages, files
//   vma.cpp         VMAs: mmap, brk, split/merge, anon_vma, mprotect
//   walk.h/.cpp     shared walks (folio batches, huge PMDs) and flushes
//   zap.cpp         munmap, MADV_DONTNEED, exit: zap + mmu_gather
//   fault.cpp       handle_mm_fault, the anonymous fault (mTHP orders)
//   fork.cpp        fork's copy_page_range and copy-on-write
//   huge_memory.cpp PMD-sized THP
//   filemap.cpp     page cache, readahead, fault-around, shmem
//   madvise.cpp     MADV_FREE / COLD / PAGEOUT, split_folio
//   reclaim.cpp     LRU aging (folio_referenced)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hw/checker.h"
#include "hw/page_table.h"
#include "hw/phys_mem.h"
#include "hw/sim_env.h"
#include "mm/buddy.h"

namespace contpte {

enum class ThpMode : std::uint8_t { Always, Inherit, Madvise, Never };

// The sysfs THP policy: per folio order (hugepages-<size>/enabled) and the
// top-level setting that `inherit` refers to.
struct ThpSettings {
  std::map<unsigned, ThpMode> per_order;  // order -> mode; absent = never
  ThpMode top = ThpMode::Never;
};

struct Vma {
  VirtAddr start, end;  // [start, end), page aligned
  Prot prot = Prot::RW;
  bool shared = false;
  bool hugepage = false;    // VM_HUGEPAGE (MADV_HUGEPAGE)
  bool nohugepage = false;  // VM_NOHUGEPAGE
  int file = -1;            // file-backed: MmSystem's file id; -1 anonymous
  std::uint64_t pgoff = 0;  // file page at `start`
  // The VMA's anon_vma (0: none yet). Linux attaches one on the first fault
  // that creates anonymous memory in the VMA (anon_vma_prepare), not on a
  // read that maps the zero page; fork copies page tables only for VMAs that
  // have one (vma_needs_copy). Two VMAs with different anon_vmas never merge.
  std::uint64_t anon_vma = 0;
  // Whether anon_vma may be shared with a neighbour (reusable_anon_vma: its
  // chain is singular). A forked child's VMA is also linked to the parent's
  // anon_vma, so it is not.
  bool anon_vma_singular = true;
  bool writable() const { return prot == Prot::RW || prot == Prot::RWX; }
  // handle_mm_fault's access_error: whether the VMA permits the access (a
  // read needs VM_READ, a write VM_WRITE, a fetch VM_EXEC); else SIGSEGV.
  bool permits(bool write, bool exec) const {
    const bool readable = prot == Prot::R || prot == Prot::RW || prot == Prot::RX || prot == Prot::RWX;
    const bool executable = prot == Prot::RX || prot == Prot::RWX || prot == Prot::X;
    return write ? writable() : exec ? executable : readable;
  }
  std::uint64_t len() const { return end.val - start.val; }
};

// Counters the kernel would show (vmstat, hugepages-*/stats).
struct MmStats {
  std::uint64_t faults = 0;
  std::uint64_t faults_anon = 0;      // do_anonymous_page with a new folio
  std::uint64_t faults_zero = 0;      // read fault mapped the zero page
  std::uint64_t faults_cow = 0;       // wp_page_copy
  std::uint64_t faults_reuse = 0;     // wp_page_reuse (write to an exclusive folio)
  std::uint64_t faults_access = 0;    // AF / dirty fixed by ptep_set_access_flags
  std::uint64_t reuse_unfolds = 0;    // reuse of a large folio that unfolded its block
  std::map<unsigned, std::uint64_t> anon_fault_alloc;     // per order
  std::map<unsigned, std::uint64_t> anon_fault_fallback;  // per order
  std::uint64_t folios_freed = 0;
  std::uint64_t pgtables_freed = 0;   // page-table pages free_pgtables released
  std::uint64_t caller_tlbi = 0;      // flushes the mm requested (mmu_gather, fork, COW)
  std::uint64_t bytes_zeroed = 0;     // new anonymous folios (and copies of the zero page)
  std::uint64_t bytes_copied = 0;     // copy-on-write copies of data pages
  // PMD-sized THP (vmstat thp_*).
  std::uint64_t thp_fault_alloc = 0;      // a PMD-mapped folio allocated by a fault
  std::uint64_t thp_fault_fallback = 0;   // a PMD-sized allocation failed: PTE fault instead
  std::uint64_t thp_split_pmd = 0;        // huge PMDs split to PTE mappings
  std::uint64_t thp_zero_page_alloc = 0;  // the huge zero folio allocated
  // Large folios split to order 0 (split_folio), in total and per order
  // (hugepages-<size>/stats/split).
  std::uint64_t folio_splits = 0;
  std::map<unsigned, std::uint64_t> split;
  std::uint64_t pglazyfree = 0;    // pages MADV_FREE marked lazily freeable
  std::uint64_t pglazyfreed = 0;   // lazyfree pages MADV_PAGEOUT discarded
  std::uint64_t pgdeactivate = 0;  // pages MADV_COLD / PAGEOUT took off the active list
  std::uint64_t reclaim_entries = 0;  // PTEs and huge PMDs reclaim's aging test-and-cleared
  // File mappings and the page cache.
  std::uint64_t faults_file = 0;        // read faults served from the page cache
  std::uint64_t faultaround_pages = 0;  // PTEs filemap_map_pages set around a fault
  std::uint64_t pagecache_folios = 0;   // folios readahead added to the page cache
  std::uint64_t shmem_folios = 0;       // zeroed folios shared anonymous memory allocated
  std::uint64_t pagecache_bytes = 0;    // bytes read into the page cache
  std::map<unsigned, std::uint64_t> pagecache_alloc;  // readahead folios per order
};

// A file's page cache and readahead state (struct address_space and
// struct file_ra_state in miniature). Files hold no data: a folio stands
// for the pages read.
struct FileCache {
  std::string name;
  std::uint64_t nr_pages = 0;                       // file size in pages (i_size rounded up)
  std::map<std::uint64_t, std::pair<Pfn, unsigned>> folios;  // first index -> (head, order)
  // file_ra_state: the last window, its async part's first page
  // (PG_readahead) and the folio order it used.
  std::uint64_t ra_start = 0, ra_size = 0, ra_async = 0;
  unsigned ra_order = 0;
  bool ra_valid = false;
  // shmem: the object behind a shared anonymous mapping. No readahead and
  // no backing store: a missing page is allocated zeroed (shmem_fault), one
  // 4K folio at a time (shmem_enabled and hugepages-*/shmem_enabled default
  // to never).
  bool shmem = false;
};

enum class FaultResult : std::uint8_t { Handled, Segv };

// What a file mapping maps (mmap's file and offset): the page cache of the
// file called `name`, from file page `pgoff` (vm_pgoff, in pages of the
// granule). `nr_pages`: the file's size in pages; the file is created on
// first use and grows to the largest size any mapping gives it. `shmem`:
// the object behind a shared anonymous mapping.
struct FileMap {
  std::string name;
  std::uint64_t nr_pages = 0;
  std::uint64_t pgoff = 0;
  bool shmem = false;
};

class Mm;

// The machine-wide state every process shares: memory, allocator, the
// per-folio map counts rmap keeps, the zero page.
class MmSystem {
 public:
  MmSystem(PhysMem& mem, BuddyAllocator& buddy, Features features, ThpSettings thp);

  PhysMem& mem() { return mem_; }
  BuddyAllocator& buddy() { return buddy_; }
  const Features& features() const { return features_; }
  const ThpSettings& thp() const { return thp_; }
  Pfn zero_pfn() const { return zero_pfn_; }
  // The huge zero folio (mm_get_huge_zero_folio): allocated on first use,
  // then shared by every read fault that maps a zero PMD; nullopt when no
  // PMD-sized block is free.
  std::optional<Pfn> huge_zero_pfn();
  // A new anon_vma's identity.
  std::uint64_t new_anon_vma() { return ++anon_vmas_; }
  bool is_huge_zero(Pfn pfn) const { return huge_zero_pfn_ && *huge_zero_pfn_ == pfn; }
  MmStats& stats() { return stats_; }

  // rmap: a page of a folio mapped (or unmapped) by process `pid`.
  void map_pages(Pfn head, std::uint64_t n, unsigned pid);
  void unmap_pages(Pfn head, std::uint64_t n, unsigned pid);
  // Total mappings of the folio's pages, and whether all belong to `pid`
  // (Linux 6.18 folio_maybe_mapped_shared / folio_mapcount checks).
  bool mapped_only_by(Pfn head, unsigned pid) const;
  std::uint64_t mapcount(Pfn head) const;
  // MADV_FREE's mark (folio_mark_lazyfree): clean, the folio may be
  // dropped instead of swapped; cleared when it is found dirty again.
  void set_lazyfree(Pfn head, bool on);
  bool lazyfree(Pfn head) const;
  // The page cache: one per file (struct address_space), shared by every
  // process that maps the file, whatever the offset. The file called
  // `name` (created on first use, growing to `nr_pages`), its folio
  // holding page `index`, if cached.
  int file_id(const std::string& name, std::uint64_t nr_pages, bool shmem = false);
  FileCache& file(int id) { return files_[static_cast<std::size_t>(id)]; }
  std::optional<std::pair<Pfn, std::uint64_t>> find_cached(int id, std::uint64_t index) const;
  // A page-cache folio: never freed by unmapping, never reused by a write
  // fault (it is not anonymous), never exclusive.
  bool is_file_folio(Pfn head) const;
  // split_folio's bookkeeping: each page `pid` maps (mapped[i]) becomes an
  // order-0 folio mapped once; the others are freed.
  void split_folio(Pfn head, const std::vector<bool>& mapped, unsigned pid);

  // Every observer each process's Env gets.
  std::vector<SimObserver*> observers;
  // The TLBs every process's flushes invalidate (SimEnv::invalidate_tlb):
  // the MMU; may be null.
  SimObserver* tlb = nullptr;
  // The conformance checker, told which access/dirty information the mm
  // consumes (a get-and-clear's result) or throws away; may be null.
  Checker* checker = nullptr;

 private:
  struct FolioMaps {
    bool lazyfree = false;
    bool file = false;  // page cache: the cache holds it
    unsigned order = 0;
    std::map<unsigned, std::uint64_t> by_pid;  // pid -> mapped pages
    std::uint64_t total = 0;
  };
  PhysMem& mem_;
  BuddyAllocator& buddy_;
  Features features_;
  ThpSettings thp_;
  Pfn zero_pfn_;
  std::optional<Pfn> huge_zero_pfn_;
  std::uint64_t anon_vmas_ = 0;
  MmStats stats_;
  std::map<std::uint64_t, FolioMaps> folios_;  // head pfn
  std::vector<FileCache> files_;
  friend class Mm;
};

class Mm {
 public:
  Mm(MmSystem& sys, unsigned pid, std::uint16_t asid);
  Mm(const Mm&) = delete;

  unsigned pid() const { return pid_; }
  std::uint16_t asid() const { return asid_; }
  PageTable& page_table() { return pt_; }
  SimEnv& env() { return env_; }
  const std::map<VirtAddr, Vma>& vmas() const { return vmas_; }
  const Vma* find_vma(VirtAddr va) const;

  // mmap of anonymous memory, or of `file` from its page file->pgoff.
  // `addr` fixes the place (MAP_FIXED_NOREPLACE semantics: it must be
  // free); else the top-down allocator picks it (thp_get_unmapped_area:
  // PMD aligned for anonymous lengths that are PMD multiples; a regular
  // file's mapping that holds a whole PMD-aligned PMD-sized stretch of the
  // file at an address congruent to its file offset modulo the PMD size).
  // Returns the start, or nullopt when no room.
  std::optional<VirtAddr> mmap(std::uint64_t len, Prot prot, bool shared, std::optional<VirtAddr> addr,
                               std::uint64_t align, const FileMap* file = nullptr);
  void munmap(VirtAddr start, std::uint64_t len);
  // brk(): moves a heap's break from `old_brk` to `new_brk`. Growing maps
  // [old_brk, new_brk) as anonymous read-write memory that merges with the
  // heap's VMA when compatible; false (the break stays) when that range is
  // not free. Shrinking unmaps [new_brk, old_brk).
  bool brk(VirtAddr old_brk, VirtAddr new_brk);
  void mprotect(VirtAddr start, std::uint64_t len, Prot prot);
  void madvise_dontneed(VirtAddr start, std::uint64_t len);
  // MADV_FREE: whole exclusive folios in the range are cleaned and made old
  // (clear_young_dirty_ptes) and marked lazyfree; one the range covers only
  // in part is split to order-0 pages first.
  void madvise_free(VirtAddr start, std::uint64_t len);
  // MADV_COLD (pageout false): whole exclusive folios are made old and
  // deactivated. MADV_PAGEOUT: they are reclaimed — with no swap device
  // only a lazyfree folio still clean can go: it is unmapped and freed.
  // Partly covered folios are split first, as for MADV_FREE.
  void madvise_cold(VirtAddr start, std::uint64_t len, bool pageout);
  void madvise_hugepage(VirtAddr start, std::uint64_t len, bool on);
  // MADV_POPULATE_WRITE: fault in for write every page of the range.
  FaultResult populate_write(VirtAddr start, std::uint64_t len);

  // The leaf translation of `va` as a PTE value: the PTE (read through
  // ptep_get when `gathered`, else the stored word), or, under a huge PMD,
  // the block descriptor advanced to va's page (table bit clear:
  // pmd_trans_huge tells it apart). None if nothing maps va.
  Pte leaf_pte(VirtAddr va, bool gathered);
  // Pages mapped by huge PMDs (rss) in this address space.
  std::uint64_t pmd_mapped_pages() const;

  // handle_mm_fault for a user access that faulted at `va`.
  FaultResult handle_fault(VirtAddr va, bool write, bool exec);

  // fork(): a new address space sharing every anonymous folio, with
  // private writable PTEs write-protected in both (copy_pte_range).
  std::unique_ptr<Mm> fork(unsigned child_pid, std::uint16_t child_asid);
  // One LRU aging pass (folio_referenced): ptep_clear_flush_young on every
  // present PTE (block-wide on a contiguous one) and pmdp_clear_flush_young
  // on every huge PMD, lowest address first, until `budget` pages are aged.
  // Returns what is left of the budget.
  std::uint64_t age_young(std::uint64_t budget);
  // exit: unmaps everything.
  void exit_mmap();

 private:
  // ---- VMAs (vma.cpp) ----
  PgProt vm_page_prot(const Vma& v) const;
  void split_vma_at(std::uint64_t addr);
  void merge_around(std::uint64_t addr);
  // anon_vma_prepare for the VMA holding `va`: before the first anonymous
  // folio (or COW copy, or huge zero PMD) of a private mapping.
  void anon_vma_prepare(std::uint64_t va);

  // ---- shared walks and flushes (walk.h, walk.cpp) ----
  // Calls fn(va, slot, first pte, nr) for each run of present PTEs of one
  // folio (folio_pte_batch) in [start, end), never across a PTE page; the
  // first pte is made writable if any of the run is.
  template <class Fn>
  void for_each_present_batch(std::uint64_t start, std::uint64_t end, Fn&& fn);
  // The walk both of those and madvise's share: pmd_entry(addr, next) per
  // PMD-sized step first (true: handled), then fn per present batch; see
  // walk.h.
  template <class PmdFn, class Fn>
  void walk_range(std::uint64_t start, std::uint64_t end, PmdFn&& pmd_entry, Fn&& fn);

  // ---- unmapping (zap.cpp) ----
  // What one mmu_gather collected while unmapping; tlb_finish_mmu turns it
  // into one flush and then frees the tables.
  struct MmuGather {
    bool fullmm = false;
    std::uint64_t start = ~std::uint64_t{0}, end = 0;  // cleared PTEs (tlb->start, tlb->end)
    std::vector<std::uint64_t> pmds;                   // huge PMDs cleared
    std::vector<PageTable::FreedTable> tables;         // tlb->freed_tables
  };
  // zap_page_range: clears the PTEs and huge PMDs of [start, end) into `tlb`.
  void zap_range(std::uint64_t start, std::uint64_t end, MmuGather& tlb);
  // free_pgtables for the mappings in [start, end) now gone, between the
  // neighbours' end (`floor`) and start (`ceiling`, 0: none).
  void free_pgtables(std::uint64_t start, std::uint64_t end, MmuGather& tlb);
  void tlb_finish_mmu(MmuGather& tlb);

  // ---- the anonymous fault (fault.cpp) ----
  FaultResult do_anonymous_page(const Vma& v, std::uint64_t va, PteSlot ptep, bool write);

  // ---- file mappings (filemap.cpp: mm/filemap.c, mm/readahead.c, do_fault) ----
  FaultResult do_fault(const Vma& v, std::uint64_t va, PteSlot ptep, bool write);
  // filemap_fault: the page-cache page of file page `index`, reading it
  // (and a readahead window around it) on a miss.
  std::optional<Pfn> filemap_fault(const Vma& v, std::uint64_t index);
  std::optional<Pfn> shmem_alloc(FileCache& f, std::uint64_t index);
  void page_cache_ra(FileCache& f, std::uint64_t start, std::uint64_t size, unsigned order);
  // do_fault_around / filemap_map_pages: maps the cached pages of the
  // fault-around window whose PTEs are empty, one set_ptes per run of one
  // folio.
  void do_fault_around(const Vma& v, std::uint64_t va);
  std::uint64_t file_index(const Vma& v, std::uint64_t va) const {
    return v.pgoff + ((va - v.start.val) >> sys_.mem().geometry().page_shift);
  }

  // ---- PMD-sized THP (huge_memory.cpp); nullopt = VM_FAULT_FALLBACK ----
  unsigned pmd_order() const;
  bool thp_pmd_allowed(const Vma& v, std::uint64_t haddr) const;
  bool is_huge_zero_pmd(Pte pmd) const;
  std::optional<FaultResult> do_huge_pmd_anonymous_page(const Vma& v, std::uint64_t va, PteSlot pmdp,
                                                        bool write);
  std::optional<FaultResult> do_huge_pmd_wp_page(const Vma& v, std::uint64_t va, PteSlot pmdp, Pte orig);
  void map_anon_folio_pmd(const Vma& v, Pfn pfn, std::uint64_t haddr, PteSlot pmdp);
  std::optional<Pfn> alloc_pmd_folio();
  Pte pmdp_invalidate(std::uint64_t haddr, PteSlot pmdp);
  void split_huge_pmd(const Vma& v, std::uint64_t haddr, PteSlot pmdp);
  // Calls whole(haddr, pmdp, pmd) for each huge PMD that [start, end)
  // covers entirely; one it covers in part is split to PTEs first, so the
  // PTE pass that follows sees its pages (zap_pmd_range, change_pmd_range;
  // walk.h).
  template <class Fn>
  void for_each_huge_pmd(std::uint64_t start, std::uint64_t end, Fn&& whole);
  // One flush per PMD-stride address, or the whole ASID past Linux's limit;
  // `last_level` false: the walk caches too (page tables were freed);
  // walk.cpp.
  void flush_pmds(const std::vector<std::uint64_t>& haddrs, bool last_level = true);

  // ---- madvise FREE / COLD / PAGEOUT (madvise.cpp) ----
  // split_folio: unmaps the folio's pages mapped at base_va (a PMD is split
  // first), splits it to order-0 folios and maps the pages back, one
  // set_pte_at each — no block can fold again. Only for a folio this
  // process maps alone.
  void split_folio(Pfn head, std::uint64_t base_va);
  // Calls fn(va, slot, gathered pte, nr, is_pmd) for each whole folio this
  // process maps alone in [start, end) — a huge PMD or a batch of PTEs —
  // after splitting the folios the range covers only in part.
  template <class Fn>
  void for_each_madvise_folio(std::uint64_t start, std::uint64_t end, Fn&& fn);
  bool exclusive(const FolioInfo& f) const;

  // ---- copy-on-write (fork.cpp) ----
  FaultResult do_wp_page(const Vma& v, std::uint64_t va, PteSlot ptep, Pte orig);
  void wp_page_copy(const Vma& v, std::uint64_t va, PteSlot ptep, Pte orig);

  // ---- fault.cpp, walk.cpp ----
  std::vector<unsigned> thp_orders(const Vma& v) const;
  bool pte_range_none(std::uint64_t start, unsigned nr);
  std::uint64_t folio_pte_batch(PteSlot ptep, Pte* pte, std::uint64_t max_nr);
  void flush_range(std::uint64_t start, std::uint64_t end);
  std::uint64_t page_size() const { return sys_.mem().geometry().page_size(); }

  MmSystem& sys_;
  unsigned pid_;
  std::uint16_t asid_;
  PageTable pt_;
  SimEnv env_;
  std::map<VirtAddr, Vma> vmas_;  // by start
};

}  // namespace contpte
