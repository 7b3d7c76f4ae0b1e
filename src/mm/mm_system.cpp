// mm/mm_system.cpp — the machine-wide state (MmSystem): rmap's per-folio
// map counts, the lazyfree mark, the zero pages and the page cache's files.

#include "mm/mm.h"

#include <algorithm>
#include <stdexcept>

#include "engine/pgtable.h"

namespace contpte {

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

}  // namespace contpte
