#include "hw/phys_mem.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

namespace contpte {

void PhysMem::AlignedFree::operator()(Pte* p) const { std::free(p); }

PhysMem::PhysMem(Granule granule, std::uint64_t ram_bytes)
    : geo_(contpte::geometry(granule)), ram_bytes_(ram_bytes), next_table_pa_(ram_bytes) {}

PhysAddr PhysMem::alloc_table() {
  ++tables_allocated_;
  if (!free_tables_.empty()) {
    const PhysAddr pa{free_tables_.back()};
    free_tables_.pop_back();
    peak_live_tables_ = std::max(peak_live_tables_, live_tables());
    return pa;  // zeroed when freed
  }
  const std::size_t bytes = geo_.page_size();
  const std::size_t per_chunk = tables_per_chunk();
  if (nr_tables_ == chunks_.size() * per_chunk) {
    void* mem = std::aligned_alloc(bytes, per_chunk * bytes);
    if (!mem) throw std::bad_alloc();
    chunks_.emplace_back(static_cast<Pte*>(mem));
  }
  Pte* words = chunks_.back().get() + (nr_tables_ % per_chunk) * geo_.ptrs_per_table();
  std::fill_n(words, geo_.ptrs_per_table(), Pte{});
  const std::uint64_t pa = next_table_pa_;
  next_table_pa_ += bytes;
  ++nr_tables_;
  peak_live_tables_ = std::max(peak_live_tables_, live_tables());
  return PhysAddr{pa};
}

void PhysMem::free_table(PhysAddr pa) {
  Pte* words = table(pa);
  if (!words) throw std::logic_error("free_table: not a table page");
  std::fill_n(words, geo_.ptrs_per_table(), Pte{});
  free_tables_.push_back(pa.val);
}

bool PhysMem::is_table_word(const Pte* p) const {
  const std::size_t words_per_chunk = kChunkBytes / sizeof(Pte);
  for (std::size_t c = 0; c < chunks_.size(); ++c) {
    const Pte* base = chunks_[c].get();
    if (p < base || p >= base + words_per_chunk) continue;
    const std::size_t idx = c * tables_per_chunk() +
                            static_cast<std::size_t>(p - base) / geo_.ptrs_per_table();
    if (idx >= nr_tables_) return false;
    const std::uint64_t pa = ram_bytes_ + (std::uint64_t{idx} << geo_.page_shift);
    return std::find(free_tables_.begin(), free_tables_.end(), pa) == free_tables_.end();
  }
  return false;
}

void PhysMem::add_folio(Pfn head, unsigned order) {
  folios_[head.val] = std::uint64_t{1} << order;
}

void PhysMem::remove_folio(Pfn head) { folios_.erase(head.val); }

void PhysMem::split_folio(Pfn head) {
  auto it = folios_.find(head.val);
  if (it == folios_.end()) return;
  const std::uint64_t nr = it->second;
  for (std::uint64_t i = 0; i < nr; ++i) folios_[head.val + i] = 1;
}

FolioInfo PhysMem::folio_of(Pfn pfn) const {
  auto it = folios_.upper_bound(pfn.val);
  if (it == folios_.begin()) return {};
  --it;
  if (pfn.val >= it->first + it->second) return {};
  return FolioInfo{true, Pfn{it->first}, it->second};
}

}  // namespace contpte
