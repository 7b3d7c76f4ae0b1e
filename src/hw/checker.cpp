#include "hw/checker.h"

#include <fmt/format.h>

namespace contpte {

namespace {
// Bits a block's entries must agree on: everything but the output address,
// AF and the dirty state (software DIRTY and the RDONLY that DBM clears).
constexpr std::uint64_t kAgreeMaskIgnored = bits::kAf | bits::kDirty | bits::kRdonly;
// Whether two entries agree on attributes (all but the output address and
// the bits above).
constexpr bool attrs_agree(Pte a, Pte b, std::uint64_t oa_mask) {
  return ((a.val ^ b.val) & ~oa_mask & ~kAgreeMaskIgnored) == 0;
}
}  // namespace

void Checker::report(Rule r, std::uint64_t va, std::vector<std::pair<std::uint64_t, std::uint64_t>> ptes,
                     std::string detail) {
  // One finding per rule, address and line: a stale entry hit a thousand
  // times by one access statement is one bug.
  if (!seen_.emplace(static_cast<int>(r), va, line_).second) return;
  ++counts_[static_cast<std::size_t>(r)];
  Violation v{r, VirtAddr{va}, {}, std::move(detail), line_, step_, false};
  for (const auto& [at, word] : ptes) v.ptes.emplace_back(VirtAddr{at}, Pte{word});
  violations_.push_back(std::move(v));
}

void Checker::report_engine(const EngineFinding& f) {
  const Rule r = f.kind == EngineFindingKind::KernelWarning ? Rule::KernelWarning
                 : f.kind == EngineFindingKind::OutOfRange  ? Rule::OutOfRange
                                                            : Rule::WildWrite;
  if (!seen_detail_.emplace(static_cast<int>(r), f.detail, line_).second) return;
  ++counts_[static_cast<std::size_t>(r)];
  violations_.push_back(Violation{r, VirtAddr{0}, {}, f.detail, line_, step_, false});
}

void Checker::report_fault_loop(VirtAddr va, unsigned line, Pte pte, std::string detail) {
  if (!seen_.emplace(static_cast<int>(Rule::FaultLoop), va.val, line).second) return;
  ++counts_[static_cast<std::size_t>(Rule::FaultLoop)];
  violations_.push_back(Violation{Rule::FaultLoop, va, {{va, pte}}, std::move(detail), line, step_, false});
}

// Rule 1. Arm ARM D8.7.1 (the Contiguous bit): if the entries of a block
// do not all have the hint, map a contiguous output range, or carry the
// same attributes, the TLB may cache any of them for the whole range —
// the translation is unpredictable. Invalid entries are allowed: they are
// break-before-make in progress.
bool Checker::check_block(const Pte* block, unsigned n, std::uint64_t va_base, unsigned shift,
                          bool in_progress) {
  const std::uint64_t oa_mask = pte_addr_mask(geo_.page_shift);
  const std::uint64_t step = std::uint64_t{1} << shift;
  const Pte* first_valid = nullptr;
  unsigned first_idx = 0;
  for (unsigned i = 0; i < n; ++i)
    if (pte_valid(block[i])) {
      first_valid = block + i;
      first_idx = i;
      break;
    }
  if (!first_valid) return true;
  const std::uint64_t base_oa = (first_valid->val & oa_mask) - first_idx * step;
  std::string why;
  if (base_oa & ((step * n) - 1)) why = "output range not aligned to the block";
  for (unsigned i = 0; i < n && why.empty(); ++i) {
    const Pte p = block[i];
    if (!pte_valid(p)) continue;
    if (!pte_cont(p))
      why = fmt::format("entry {} lacks PTE_CONT", i);
    else if ((p.val & oa_mask) != base_oa + i * step)
      why = fmt::format("entry {} does not map the consecutive output address", i);
    else if (!in_progress && !attrs_agree(p, *first_valid, oa_mask))
      why = fmt::format("entry {} disagrees on attributes with entry {}", i, first_idx);
  }
  if (why.empty()) return true;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ptes;
  for (unsigned i = 0; i < n; ++i) ptes.emplace_back(va_base + i * step, block[i].val);
  report(Rule::Misprogrammed, va_base, std::move(ptes), "contiguous block misprogrammed: " + why);
  return false;
}

// Every pair of valid entries of a clean block agrees (CONT, the output
// address each implies for the block's start, attributes when checked),
// so the rewritten entry needs comparing with one other valid entry only;
// an entry made invalid cannot break it.
bool Checker::block_still_clean(const Pte* block, unsigned n, unsigned written, unsigned shift,
                                bool in_progress) const {
  const Pte w = block[written];
  if (!pte_valid(w)) return true;
  if (!pte_cont(w)) return false;
  const std::uint64_t oa_mask = pte_addr_mask(geo_.page_shift);
  const std::uint64_t step = std::uint64_t{1} << shift;
  const std::uint64_t base = (w.val & oa_mask) - written * step;
  for (unsigned i = 0; i < n; ++i) {
    if (i == written || !pte_valid(block[i])) continue;
    const Pte r = block[i];
    return (r.val & oa_mask) - i * step == base &&
           (in_progress || attrs_agree(r, w, oa_mask));
  }
  return (base & ((step * n) - 1)) == 0;  // the only valid entry: the range must be aligned
}

// Rule 2. Two live entries of one ASID whose ranges overlap: without
// FEAT_BBML2_NOABORT a TLB conflict abort (Arm ARM D8.14.3); with it,
// tolerated only when output and attributes agree.
unsigned Checker::check_fill(const Tlb& tlb, const TlbEntry& filled) {
  unsigned tolerated = 0;
  const std::uint64_t oa_mask = pte_addr_mask(geo_.page_shift);
  tlb.for_each_overlapping(filled.asid, filled.va, filled.size(), [&](const TlbEntry& e) {
    if (e.va == filled.va && e.size_shift == filled.size_shift) return;  // the entry itself
    if (!e.overlaps(filled)) return;
    const std::uint64_t lo = std::max(e.va, filled.va);
    const bool same_output = e.pa + (lo - e.va) == filled.pa + (lo - filled.va);
    const bool same_attrs =
        ((e.desc.val ^ filled.desc.val) & ~oa_mask & ~kAgreeMaskIgnored & ~bits::kCont) == 0;
    if (bbml2_ && same_output && same_attrs) {
      ++tolerated;
      return;
    }
    report(Rule::TlbConflict, lo, {{e.va, e.desc.val}, {filled.va, filled.desc.val}},
           fmt::format("{} holds {:#x}+{:#x} and {:#x}+{:#x} for one ASID", tlb.config().name, e.va,
                       e.size(), filled.va, filled.size()));
  });
  return tolerated;
}

// A contiguous block's dirty state is the block's (Arm ARM D8.7.1: the
// TLB may have cached any entry), so a write through a block entry needs
// some entry of the block to be writable-dirty, not the accessed one.
bool Checker::block_dirty(const WalkResult& now) const {
  if (!pte_cont(now.desc) || !now.slot || now.level < 2) return false;
  const unsigned n = now.level == 3 ? geo_.cont_ptes : geo_.cont_pmds;
  const Pte* block = now.slot - PteSlot(now.slot).index_in(n);
  for (unsigned i = 0; i < n; ++i)
    if (pte_valid(block[i]) && pte_hw_dirty(block[i])) return true;
  return false;
}

// Rule 3. The TLB may only grant what memory grants once the change is
// complete: a valid entry, the same output address, and for a write a PTE
// that is writable and already dirty (else the write skips the dirty
// update hardware owes the OS).
void Checker::check_hit(const TlbEntry& e, std::uint64_t va, MemAccess kind, const WalkResult& now) {
  const Pte m = now.desc;
  std::string why;
  if (!now.valid) {
    why = "memory holds no valid entry";
  } else {
    const std::uint64_t cached_pa = e.pa + (va - e.va);
    const std::uint64_t mem_pa = now.pa_base + (va - now.va_base);
    if (cached_pa != mem_pa)
      why = fmt::format("TLB outputs {:#x}, memory {:#x}", cached_pa, mem_pa);
    else if (kind == MemAccess::Write && pte_rdonly(m) && !block_dirty(now))
      why = pte_write(m) ? "a write skips the dirty update of a clean PTE"
                         : "a write through a read-only PTE";
    else if (kind == MemAccess::Exec && !pte_user_exec(m))
      why = "execution from a PTE that is no longer executable";
    else if (kind != MemAccess::Exec && !(m.val & bits::kUser))
      why = "access to a PTE no longer accessible at EL0";
  }
  if (why.empty()) return;
  report(Rule::StaleTranslation, va, {{va, m.val}},
         fmt::format("stale TLB entry {:#x}+{:#x}: {}", e.va, e.size(), why));
}

void Checker::check_walk(std::uint64_t va, const WalkResult& walked, const WalkResult& from_root) {
  if (walked.slot == from_root.slot) return;
  report(Rule::StaleTranslation, va, {{va, walked.desc.val}},
         fmt::format("stale walk-cache entry: the walk read a table the page tables no longer link at "
                     "{:#x} (found {:#x}, memory {})",
                     va, walked.desc.val,
                     from_root.slot ? fmt::format("{:#x}", from_root.desc.val) : std::string("has no table")));
}

void Checker::on_pte_write(std::uint16_t asid, std::uint64_t va, Pte before, Pte after) {
  touched_blocks_.insert(key(asid, va & ~(geo_.cont_pte_size() - 1)));
  (void)before;
  if (!pte_present(after)) return;
  if (pte_dirty(after) || pte_young(after)) {
    Owed& o = owed_[key(asid, va)];
    o.dirty |= pte_dirty(after);
    o.young |= pte_young(after);
  }
}

void Checker::clean(std::uint16_t asid, std::uint64_t va, std::uint64_t nr_pages, bool dirty,
                    bool young) {
  for (std::uint64_t i = 0; i < nr_pages; ++i) {
    auto it = owed_.find(key(asid, va + i * geo_.page_size()));
    if (it == owed_.end()) continue;
    if (dirty) it->second.dirty = false;
    if (young) it->second.young = false;
    if (!it->second.dirty && !it->second.young) owed_.erase(it);
  }
}

void Checker::returned(std::uint16_t asid, std::uint64_t va, std::uint64_t nr_pages, Pte value) {
  for (std::uint64_t i = 0; i < nr_pages; ++i) {
    const std::uint64_t page = va + i * geo_.page_size();
    auto it = owed_.find(key(asid, page));
    if (it == owed_.end()) continue;
    if (it->second.dirty && !pte_dirty(value))
      report(Rule::LostDirty, page, {{va, value.val}},
             "get-and-clear returned a clean value for a page that was dirty");
    if (it->second.young && !pte_young(value))
      report(Rule::LostYoung, page, {{va, value.val}},
             "get-and-clear returned an old value for a page that was young");
    owed_.erase(it);
  }
}

void Checker::settle(const std::function<Pte(std::uint16_t, std::uint64_t)>& view,
                     const std::function<Pte(std::uint16_t, std::uint64_t)>& stored) {
  const std::uint64_t block = geo_.cont_pte_size();
  constexpr std::uint64_t kVaMask = (std::uint64_t{1} << 48) - 1;
  for (std::uint64_t kb : touched_blocks_) {
    const auto asid = static_cast<std::uint16_t>(kb >> 48);
    const std::uint64_t b = kb & kVaMask;
    for (std::uint64_t va = b; va < b + block; va += geo_.page_size()) {
      auto it = owed_.find(key(asid, va));
      if (it == owed_.end()) continue;
      const Pte v = view(asid, va);
      auto ptes = [&] {
        return std::vector<std::pair<std::uint64_t, std::uint64_t>>{{va, stored(asid, va).val}};
      };
      if (it->second.dirty && !pte_dirty(v))
        report(Rule::LostDirty, va, ptes(),
               pte_present(v) ? "ptep_get reports clean a page that was dirty and was not cleaned"
                              : "a dirty PTE vanished without being returned or discarded");
      if (it->second.young && !pte_young(v))
        report(Rule::LostYoung, va, ptes(),
               pte_present(v) ? "ptep_get reports old a page that was young and was not aged"
                              : "a young PTE vanished without being returned or discarded");
      // Reported once; what is lost is not owed any more.
      if (!pte_dirty(v)) it->second.dirty = false;
      if (!pte_young(v)) it->second.young = false;
      if (!it->second.dirty && !it->second.young) owed_.erase(it);
    }
  }
  touched_blocks_.clear();
}

}  // namespace contpte
