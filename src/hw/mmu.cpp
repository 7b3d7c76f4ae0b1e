#include "hw/mmu.h"

#include "hw/page_table.h"
#include "hw/tlb_fill.h"

#include <utility>

namespace contpte {

namespace {
// Linux arch/arm64/include/asm/tlbflush.h: a range instruction covers
// (num + 1) << (5 * scale + 1) pages; beyond 31 << 16 pages Linux flushes
// the whole ASID instead.
constexpr std::uint64_t tlbi_range_pages(std::uint64_t num, unsigned scale) {
  return (num + 1) << (5 * scale + 1);
}
constexpr std::uint64_t kMaxTlbiRangePages = tlbi_range_pages(31, 3);
}  // namespace

std::string_view fault_name(Fault f) {
  switch (f) {
    case Fault::None: return "none";
    case Fault::Translation: return "translation fault";
    case Fault::AccessFlag: return "access flag fault";
    case Fault::Permission: return "permission fault";
  }
  return "?";
}

Mmu::Mmu(PhysMem& mem, TlbConfig cfg, bool hafdbs, Checker* checker, std::uint64_t seed)
    : mem_(mem),
      cfg_(std::move(cfg)),
      hafdbs_(hafdbs),
      checker_(checker),
      walker_(mem),
      walk_cache_(cfg_.walk_cache_entries),
      l1d_(cfg_.l1d, seed),
      l1i_(cfg_.l1i, seed + 1),
      l2_(cfg_.l2, seed + 2),
      rng_(seed),
      l1d_hit_cycles_(cfg_.l1d.hit_cycles),
      l1i_hit_cycles_(cfg_.l1i.hit_cycles),
      l2_hit_cycles_(cfg_.l2.hit_cycles),
      fast_miss_(!checker && cfg_.walk_cache_entries != 0),
      cont_general_(cfg_.l1d.cont == ContHolding::SplitPages ||
                    cfg_.l1i.cont == ContHolding::SplitPages ||
                    cfg_.l2.cont == ContHolding::SplitPages || cfg_.hafdbs_random_pte) {
  page_shift_ = mem_.geometry().page_shift;
  page_mask_ = (std::uint64_t{1} << page_shift_) - 1;
  page_oa_mask_ = pte_addr_mask(page_shift_) & ~page_mask_;
  // miss_fast()'s test of a level-3 descriptor, per kind of access: a valid
  // page descriptor (bits 1:0), young, that EL0 may use for the access
  // (AP[1] for loads and stores, UXN clear for fetches), writable as it is
  // for a store (RDONLY clear: no dirty update needed), and not a
  // contiguous block when those take the general path.
  const std::uint64_t page = bits::kValid | bits::kTable | bits::kAf;
  const std::uint64_t cont = cont_general_ ? bits::kCont : 0;
  as_is_[static_cast<unsigned>(MemAccess::Read)] = {page | bits::kUser | cont, page | bits::kUser};
  as_is_[static_cast<unsigned>(MemAccess::Write)] = {page | bits::kUser | bits::kRdonly | cont,
                                                     page | bits::kUser};
  as_is_[static_cast<unsigned>(MemAccess::Exec)] = {page | bits::kUxn | cont, page};
}

MmuStats Mmu::stats() const {
  MmuStats s = stats_;
  s.tlb_misses += fast_walks_;
  s.walks += fast_walks_;
  s.walk_mem_accesses += fast_walks_;
  s.walk_cycles += fast_walks_ * cfg_.walk_access_cycles;
  s.cycles += fast_walks_ * cfg_.walk_access_cycles;
  return s;
}

// A TLB hit's permission (hw/access_rules.h).
bool Mmu::permits(const Pte& d, MemAccess kind) const { return cached_permits(d, kind); }

AccessResult Mmu::access(const PageTable& pt, std::uint16_t asid, VirtAddr va, MemAccess kind,
                         bool retry) {
  if (!retry) ++stats_.accesses;
  const bool exec = kind == MemAccess::Exec;
  Tlb& l1 = exec ? l1i_ : l1d_;
  // Tlb::lookup's first check, the entry used last; the rest of the lookup
  // is in access_l1() (kept apart so that this path stays small).
  const TlbEntry* e1 = l1.mru_;
  if (!e1 || !e1->covers(asid, va.val)) [[unlikely]]
    return access_l1(pt, asid, va, kind, l1);
  if (permits(e1->desc, kind)) [[likely]]
    return l1_hit(pt, asid, va, kind, *e1);
  return miss(pt, asid, va, kind, l1, false);
}

AccessResult Mmu::l1_hit(const PageTable& pt, std::uint16_t asid, VirtAddr va, MemAccess kind,
                         const TlbEntry& e) {
  ++stats_.l1_hits;
  stats_.cycles += kind == MemAccess::Exec ? l1i_hit_cycles_ : l1d_hit_cycles_;
  if (checker_) check_hit(pt.root(), asid, va, kind, e);
  return {};
}

// An access whose L1's last-used entry does not cover it. Most often (a
// random access) the L1's tag filter shows at once that it misses: the
// miss then follows by a jump, this function having no frame of its own.
AccessResult Mmu::access_l1(const PageTable& pt, std::uint16_t asid, VirtAddr va, MemAccess kind,
                            Tlb& l1) {
  if (l1.filtered_out(asid, va.val)) return miss(pt, asid, va, kind, l1, true);
  return access_l1_probe(pt, asid, va, kind, l1);
}

// The rest of the L1 lookup (inlined from tlb_fill.h), then a hit or the
// miss.
AccessResult Mmu::access_l1_probe(const PageTable& pt, std::uint16_t asid, VirtAddr va,
                                  MemAccess kind, Tlb& l1) {
  const TlbEntry* e1 = l1.lookup_after_mru(asid, va.val);
  if (e1 && permits(e1->desc, kind)) return l1_hit(pt, asid, va, kind, *e1);
  return miss(pt, asid, va, kind, l1, e1 == nullptr);
}

// An L1 miss, or an L1 entry that does not permit the access (`l1_absent`
// false).
AccessResult Mmu::miss(const PageTable& pt, std::uint16_t asid, VirtAddr va, MemAccess kind,
                       Tlb& l1, bool l1_absent) {
  if (fast_miss_) [[likely]]
    return miss_fast(pt, asid, va, kind, l1_absent);
  return miss_general(pt, asid, va, kind, l1);
}

// The L1 miss in general: L2, then the walk.
AccessResult Mmu::miss_general(const PageTable& pt, std::uint16_t asid, VirtAddr va,
                               MemAccess kind, Tlb& l1) {
  const PhysAddr root = pt.root();
  prefetch_walk(asid, va);
  if (const TlbEntry* e = l2_.lookup(asid, va.val); e && permits(e->desc, kind)) {
    ++stats_.l2_hits;
    stats_.cycles += l2_hit_cycles_;
    const TlbEntry copy = *e;  // fill may evict from l2's neighbours; keep a copy
    if (checker_) checker_->check_hit(copy, va.val, kind, walker_.walk(root, asid, va, nullptr));
    fill(l1, copy, va.val);
    return {};
  }
  // A miss, or a hit that does not permit the access (a store to a clean
  // entry): hardware walks, and updates the descriptor if it may.
  return walk_and_fill(pt, asid, va, kind, l1);
}

// The checker's look at a TLB hit: out of line, so that the hit path
// without a checker keeps a small frame.
void Mmu::check_hit(PhysAddr root, std::uint16_t asid, VirtAddr va, MemAccess kind,
                    const TlbEntry& e) {
  checker_->check_hit(e, va.val, kind, walker_.walk(root, asid, va, nullptr));
}

// The L1 miss without a checker, with a walk cache: what access() and
// walk_and_fill() do, fused for the common case — the walk cache gives the
// level-3 table (found once, for the prefetch and the walk), the entry is a
// valid, young page or block descriptor that permits the access as it is
// (no FEAT_HAFDBS update, no fault), and, for a contiguous block, no
// structure splits it and no random PTE of it is drawn. Anything
// else goes to walk_and_fill(), which walks again from the start: a walk
// through a walk-cache hit changes nothing, so doing it twice is unseen.
// A walk-cache miss walks from the root once (that walk fills the walk
// cache) and hands the result to fill_from_walk().
AccessResult Mmu::miss_fast(const PageTable& pt, std::uint16_t asid, VirtAddr va, MemAccess kind,
                            bool l1_absent) {
  Tlb& l1 = kind == MemAccess::Exec ? l1i_ : l1d_;
  // Start the host's load of the descriptor while the L2 is probed (see
  // prefetch_walk()).
  Pte* const slot = walker_.cached_leaf_slot(asid, va, walk_cache_);
  if (slot) __builtin_prefetch(slot);
  // Tlb::lookup, with its search inlined and without its first check of the
  // entry used last: after an L1 miss that entry (filled or hit last, so
  // in the L1 too) seldom covers va, and the search finds it anyway — its
  // use then changes nothing, since it is already its set's most recent.
  const TlbEntry* hit = l2_.lookup_after_mru(asid, va.val);
  if (hit && permits(hit->desc, kind)) {
    ++stats_.l2_hits;
    stats_.cycles += l2_hit_cycles_;
    const TlbEntry copy = *hit;  // fill may evict from l2's neighbours; keep a copy
    fill(l1, copy, va.val);
    return {};
  }
  if (!slot) [[unlikely]]
    return walk_from_root(pt, asid, va, kind, !hit && l1_absent);
  {
    const Pte d = *slot;
    const AsIs& want = as_is_[static_cast<unsigned>(kind)];
    if ((d.val & want.care) == want.set) [[likely]] {
      ++fast_walks_;  // a miss, one walk of one read (see stats())
      TlbEntry e;
      e.asid = asid;
      e.level = 3;
      e.desc = d;
      e.cont = pte_cont(d);
      if (!e.cont) [[likely]] {
        // Walker::finish_leaf for a page: its own range and frame.
        e.va = va.val & ~page_mask_;
        e.size_shift = static_cast<std::uint8_t>(page_shift_);
        e.pa = d.val & page_oa_mask_;
      } else {
        WalkResult w;
        walker_.finish_leaf(w, 3, d, va);
        e.va = w.va_base;
        e.size_shift = w.size_shift;
        e.pa = w.pa_base;
      }
      // Both lookups for va found no entry (when the L1's found one that
      // does not permit the access, its fill checks for it).
      if (!hit) l2_.fill_absent_l2(e, va.val);
      else l2_.fill(field_copy(e), va.val);  // a copy: see Tlb::fill_absent_l1
      if (l1_absent) l1.fill_absent_l1(e, va.val);
      else l1.fill(field_copy(e), va.val);
      return {};
    }
  }
  return walk_and_fill(pt, asid, va, kind, l1);
}

// miss_fast() after a walk-cache miss: the walk from the root (what walk()
// does once its walk cache has missed), then the general handling of its
// result. Out of line, so that the common miss keeps a small frame.
AccessResult Mmu::walk_from_root(const PageTable& pt, std::uint16_t asid, VirtAddr va,
                                 MemAccess kind, bool absent) {
  Tlb& l1 = kind == MemAccess::Exec ? l1i_ : l1d_;
  return fill_from_walk(pt, asid, va, kind, l1,
                        walker_.walk_tables(pt.root(), asid, va, &walk_cache_), absent);
}

// An L1 miss is most often an L2 miss too (the L2 reaches a few MiB): start
// loading the descriptor the walk will read, when the walk cache knows its
// table, so that the host's cache miss on it overlaps the L2 probe's
// instead of following it. A hint only: nothing is read or changed.
void Mmu::prefetch_walk(std::uint16_t asid, VirtAddr va) const {
  if (!cfg_.walk_cache_entries) return;
  const Geometry& g = mem_.geometry();
  if (const Pte* words = walk_cache_.lookup(asid, va.val >> g.pmd_shift()))
    __builtin_prefetch(words + ((va.val >> g.page_shift) & (g.ptrs_per_table() - 1)));
}

// The FEAT_HAFDBS update of the descriptor at `target` for an access whose
// walk read `d` (old AF clear, or a store needing the dirty state); returns
// the descriptor the TLB caches. Out of line: the common miss (a young
// entry, a load) needs none, and keeping it apart keeps that path lean.
Pte Mmu::hw_update(const PageTable& pt, std::uint16_t asid, Pte* target, Pte d,
                   bool needs_dirty) {
  // The compare-exchange retries on the value it finds (the target may be
  // another entry of the block than the walked one, see fill_from_walk).
  for (Pte old = *target; pte_valid(old);) {  // software cleared it: the access retries
    const HafdbsUpdate u = hafdbs_update(target, old, needs_dirty, [&](Pte* word, Pte v) {
      *word = v;
      if (checker_)
        if (auto tva = pt.va_of(PteSlot(word))) checker_->on_pte_write(asid, tva->val, old, v);
    });
    if (u.exchanged) {
      stats_.hw_af_updates += u.sets_af();
      stats_.hw_dirty_updates += u.sets_dirty();
      break;
    }
    old = u.before;
  }
  return hafdbs_value(d, needs_dirty);
}

AccessResult Mmu::walk_and_fill(const PageTable& pt, std::uint16_t asid, VirtAddr va,
                                MemAccess kind, Tlb& l1) {
  return fill_from_walk(
      pt, asid, va, kind, l1,
      walker_.walk(pt.root(), asid, va, cfg_.walk_cache_entries ? &walk_cache_ : nullptr), false);
}

// What follows the walk `w` of va: counts, faults, FEAT_HAFDBS, fills.
// `absent`: the lookups of both levels for va found no entry (miss_fast),
// so that the fills need not look for one.
inline AccessResult Mmu::fill_from_walk(const PageTable& pt, std::uint16_t asid, VirtAddr va,
                                 MemAccess kind, Tlb& l1, const WalkResult& w, bool absent) {
  const Geometry& g = mem_.geometry();
  ++stats_.tlb_misses;
  ++stats_.walks;
  stats_.walk_mem_accesses += w.mem_accesses;
  stats_.walk_cycles += std::uint64_t{w.mem_accesses} * cfg_.walk_access_cycles;
  stats_.cycles += std::uint64_t{w.mem_accesses} * cfg_.walk_access_cycles;
  auto fault = [&](Fault f) {
    ++stats_.faults;
    return AccessResult{f, w.level};
  };
  if (checker_ && cfg_.walk_cache_entries)
    checker_->check_walk(va.val, w, walker_.walk(pt.root(), asid, va, nullptr));
  if (!w.valid) return fault(Fault::Translation);

  if (checker_ && pte_cont(w.desc)) {
    const unsigned n = w.level == 3 ? g.cont_ptes : g.cont_pmds;
    const std::size_t idx = PteSlot(w.slot).index_in(n);
    checker_->check_block(w.slot - idx, n, w.va_base, g.level_shift(w.level));
  }

  const Pte d = w.desc;
  if (const AccessFault f = access_fault(true, d, kind, hafdbs_); f != AccessFault::None)
    return fault(fault_class(f));

  // FEAT_HAFDBS: set AF and, for a store through a DBM descriptor, clear
  // RDONLY — atomically, since software may be changing the entry: a
  // compare-exchange that retries on the value it finds. A preset may make
  // hardware update a random entry of a contiguous block instead (the Arm
  // ARM allows any), to stress the engine's gathering.
  Pte* target = w.slot;
  if (cfg_.hafdbs_random_pte && pte_cont(d) && w.level == 3) {
    const std::size_t idx = PteSlot(w.slot).index_in(g.cont_ptes);
    target = w.slot - idx + std::uniform_int_distribution<unsigned>(0, g.cont_ptes - 1)(rng_);
  }
  const Pte cached =
      needs_hafdbs_update(d, kind) ? hw_update(pt, asid, target, d, needs_dirty_update(d, kind)) : d;

  const TlbEntry e = tlb_entry_from_walk(w, asid, cached);
  if (!e.cont && !checker_) [[likely]] {  // what fill() comes to: no split, nothing to check
    if (absent) {
      l2_.fill_absent_l2(e, va.val);
      l1.fill_absent_l1(e, va.val);
    } else {
      l2_.fill(e, va.val);
      l1.fill(e, va.val);
    }
    return {};
  }
  fill(l2_, e, va.val);
  fill(l1, e, va.val);
  return {};
}

// A structure that ignores the contiguous hint holds just the page (or
// block descriptor) of the access.
void Mmu::fill(Tlb& t, const TlbEntry& e, std::uint64_t va) {
  // Test `cont` first: config() is a call, and most entries are not blocks.
  if (e.cont && t.config().cont == ContHolding::SplitPages) {
    TlbEntry stored = e;
    const unsigned shift = mem_.geometry().level_shift(e.level);
    stored.size_shift = static_cast<std::uint8_t>(shift);
    stored.va = va & ~((std::uint64_t{1} << shift) - 1);
    stored.pa = e.pa + (stored.va - e.va);
    t.fill(stored, va);
    if (checker_) stats_.tlb_overlaps += checker_->check_fill(t, stored);
    return;
  }
  t.fill(e, va);
  if (checker_) stats_.tlb_overlaps += checker_->check_fill(t, e);
}

void Mmu::flush_range(std::uint16_t asid, std::uint64_t start, std::uint64_t nr_pages) {
  const std::uint64_t len = nr_pages << mem_.geometry().page_shift;
  l1d_.invalidate_range(asid, start, len);
  l1i_.invalidate_range(asid, start, len);
  l2_.invalidate_range(asid, start, len);
}

void Mmu::flush_asid(std::uint16_t asid) {
  ++stats_.tlbi_asid;
  l1d_.invalidate_asid(asid);
  l1i_.invalidate_asid(asid);
  l2_.invalidate_asid(asid);
  walk_cache_.clear();
}

// __flush_tlb_range as Linux 6.12 issues it: the whole ASID past
// MAX_DVM_OPS pages without FEAT_TLBIRANGE (or past the largest range),
// else one TLBI per page, or range TLBIs of decreasing scale with single
// pages for the odd remainder.
void Mmu::on_tlbi(const TlbiRequest& r) {
  const Geometry& g = mem_.geometry();
  if (!r.last_level && r.kind != TlbiKind::Mm && r.nr_pages)
    walk_cache_.invalidate(r.asid, r.start.val >> g.pmd_shift(),
                           (r.start.val + (r.nr_pages << g.page_shift) - 1) >> g.pmd_shift());
  switch (r.kind) {
    case TlbiKind::Page:
      ++stats_.tlbi_va;
      flush_range(r.asid, r.start.val, 1);
      return;
    case TlbiKind::Mm:
      flush_asid(r.asid);
      return;
    case TlbiKind::Range: break;
  }
  std::uint64_t pages = r.nr_pages;
  if ((!cfg_.tlbi_range && pages >= g.ptrs_per_table()) || pages > kMaxTlbiRangePages) {
    flush_asid(r.asid);
    return;
  }
  flush_range(r.asid, r.start.val, pages);
  if (!cfg_.tlbi_range) {
    stats_.tlbi_va += pages;
    return;
  }
  for (int scale = 3; pages > 0;) {
    if (pages == 1 || scale < 0) {
      ++stats_.tlbi_va;
      --pages;
      continue;
    }
    const std::uint64_t capped = std::min(pages, tlbi_range_pages(31, scale));
    const std::int64_t num = static_cast<std::int64_t>(capped >> (5 * scale + 1)) - 1;
    if (num >= 0) {
      ++stats_.tlbi_range;
      pages -= tlbi_range_pages(static_cast<std::uint64_t>(num), scale);
    }
    --scale;
  }
}

}  // namespace contpte
