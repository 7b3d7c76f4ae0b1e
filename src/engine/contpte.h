// engine/contpte.h — the out-of-line slow paths of the contpte layer
// (Linux arch/arm64/mm/contpte.c, 6.12.117).
//
// Owns: convert (the one place that clears, invalidates and rewrites a
// block), try_fold / try_unfold / unfold_partial, and the block-wide
// versions of the PTE API. Callers are the inline wrappers in
// engine/pgtable.h, which have already asked the cheap question.
// Must not know: how the Env stores PTEs or flushes TLBs.
#pragma once

#include "engine/raw.h"

namespace contpte {

// The VAs [start, end) a block-wide A/D operation on [start, end) really
// covers: widened to whole blocks where its first (`first_cont`) or last
// (`last_cont`) PTE is contiguous, as contpte_clear_young_dirty_ptes and
// contpte_ptep_test_and_clear_young do (A/D are per folio to core-mm). A
// core-mm caller's account of what it cleared (scenario/pte_statements.h)
// takes the range from here.
struct VaRange {
  std::uint64_t start = 0, end = 0;
};
constexpr VaRange widen_to_blocks(const Geometry& g, VaRange r, bool first_cont, bool last_cont) {
  if (last_cont) r.end = align_down(r.end + g.cont_pte_size() - 1, g.cont_pte_size());
  if (first_cont) r.start = align_down(r.start, g.cont_pte_size());
  return r;
}

namespace contpte_detail {

template <Env E>
bool mm_is_user(const E& env) {
  // Kernel mappings cannot tolerate the transient faults a fold or unfold
  // causes (user faults serialize on the PTL), so they never get CONT.
  return env.mm_is_user();
}

// contpte_convert: repaint a whole block as contiguous (pte has CONT) or as
// single pages (pte has no CONT).
//
// Each entry is cleared with an atomic get-and-clear while its AF and dirty
// are gathered: hardware on another CPU may set them until the entry is
// invalid, and a read-then-write would silently drop such an update. Then the
// block is invalidated, so no TLB holds both the old and the new size for one
// address (that overlap is a TLB conflict abort without FEAT_BBML2_NOABORT),
// and only then are the new entries written — break-before-make.
template <Env E>
void convert(E& env, VirtAddr addr, PteSlot ptep, Pte pte) {
  EngineScope<E> scope_(env, "contpte_convert");
  const Geometry& g = env.geometry();
  const unsigned cont = g.cont_ptes;
  const PteSlot start_ptep = ptep.align_down(cont);
  const VirtAddr start_addr{align_down(addr.val, g.cont_pte_size())};
  pte = pfn_pte(Pfn{align_down(pte_pfn(pte, g.page_shift).val, cont)},
                pte_pgprot(pte, g.page_shift), g.page_shift);
  const Variant variant = env.features().variant;

  PteSlot p = start_ptep;
  VirtAddr a = start_addr;
  for (unsigned i = 0; i < cont; ++i, ++p, a = a + g.page_size()) {
    // `naive` reads and leaves the entry live: the race this layer avoids.
    Pte ptent = variant == Variant::Naive ? raw::ptep_get(env, p)
                                          : raw::ptep_get_and_clear(env, a, p);
    if (pte_dirty(ptent)) pte = pte_mkdirty(pte);
    if (pte_young(ptent)) pte = pte_mkyoung(pte);
  }

  // With FEAT_BBML2_NOABORT overlapping entries of different sizes do not
  // abort; a walk between clear and rewrite just faults and retries on the
  // PTL, and the stale entries agree with the new ones on output and
  // attributes, so Linux 6.17 (`bbml2`) elides this invalidation — on a CPU
  // that has the feature (system_supports_bbml2_noabort), a property of the
  // core, not of the kernel.
  const bool elide = variant == Variant::Bbml2 && env.features().bbml2_noabort;
  if (!elide && variant != Variant::Naive)
    detail::flush_tlb_range(env, start_addr, cont, /*sync=*/true);

  raw::set_ptes(env, start_addr, start_ptep, pte, cont);

  // `naive` never broke the old entries, so it can only flush afterwards.
  if (variant == Variant::Naive) detail::flush_tlb_range(env, start_addr, cont, true);

  if (pte_cont(pte))
    ++env.counters().folds;
  else
    ++env.counters().unfolds;
}

// __contpte_try_fold: the inline check already saw that this is the last
// slot of a block with a PFN ending an aligned run, valid, not special and
// not CONT. Left to check: one folio covers the whole block (folding across
// folios would merge A/D of pages core-mm tracks apart), and every entry is
// valid with consecutive PFNs and identical attributes apart from AF/dirty,
// which the fold ORs together.
template <Env E>
void try_fold_slow(E& env, VirtAddr addr, PteSlot ptep, Pte pte) {
  EngineScope<E> scope_(env, "contpte_try_fold");
  if (!contpte_detail::mm_is_user(env)) return;
  const Geometry& g = env.geometry();
  const unsigned shift = g.page_shift;
  const Pfn pfn = pte_pfn(pte, shift);
  // Special mappings were refused by the caller; a PFN without a folio
  // (not from the allocator) cannot be proven to be one folio either.
  const FolioInfo folio = env.folio_of(pfn);
  if (!folio.valid) return;
  const std::uint64_t folio_start = addr.val - (pfn.val - folio.head.val) * g.page_size();
  const std::uint64_t folio_end = folio_start + folio.nr_pages * g.page_size();
  const std::uint64_t cont_start = align_down(addr.val, g.cont_pte_size());
  const std::uint64_t cont_end = cont_start + g.cont_pte_size();
  if (folio_start > cont_start || folio_end < cont_end) return;

  const PgProt prot = pte_pgprot(pte_mkold(pte_mkclean(pte)), shift);
  Pte expected = pfn_pte(Pfn{align_down(pfn.val, g.cont_ptes)}, prot, shift);
  PteSlot p = ptep.align_down(g.cont_ptes);
  for (unsigned i = 0; i < g.cont_ptes; ++i, ++p) {
    Pte subpte = pte_mkold(pte_mkclean(raw::ptep_get(env, p)));
    if (!pte_same(subpte, expected)) return;
    expected = pte_advance_pfn(expected, 1, shift);
  }
  contpte_detail::convert(env, addr, ptep, pte_mkcont(pte));
}

// __contpte_try_unfold: the caller saw a valid CONT entry.
template <Env E>
void try_unfold_slow(E& env, VirtAddr addr, PteSlot ptep, Pte pte) {
  EngineScope<E> scope_(env, "contpte_try_unfold");
  if (!contpte_detail::mm_is_user(env)) return;
  contpte_detail::convert(env, addr, ptep, pte_mknoncont(pte));
}

template <Env E>
inline void try_unfold(E& env, VirtAddr addr, PteSlot ptep, Pte pte) {
  if (pte_valid_cont(pte)) [[unlikely]]
    contpte_detail::try_unfold_slow(env, addr, ptep, pte);
}

// contpte_try_fold: only the write of a block's last slot tries, because
// core-mm fills ranges low to high, so that write is the likely completion.
template <Env E>
inline void try_fold(E& env, VirtAddr addr, PteSlot ptep, Pte pte) {
  const Geometry& g = env.geometry();
  const std::uint64_t contmask = g.cont_ptes - 1;
  const bool valign = ((addr.val >> g.page_shift) & contmask) == contmask;
  if (!valign) [[likely]]
    return;
  const bool palign = (pte_pfn(pte, g.page_shift).val & contmask) == contmask;
  if (palign && pte_valid(pte) && !pte_cont(pte) && !pte_special(pte))
    contpte_detail::try_fold_slow(env, addr, ptep, pte);
}

// contpte_try_unfold_partial: a batched call over part of a block would
// leave it inconsistent, so unfold the blocks the range starts or ends in.
template <Env E>
void try_unfold_partial(E& env, VirtAddr addr, PteSlot ptep, unsigned nr) {
  EngineScope<E> scope_(env, "contpte_try_unfold_partial");
  const Geometry& g = env.geometry();
  const unsigned cont = g.cont_ptes;
  if (ptep != ptep.align_down(cont) || nr < cont)
    contpte_detail::try_unfold(env, addr, ptep, raw::ptep_get(env, ptep));
  const PteSlot end = ptep + nr;
  if (end != end.align_down(cont)) {
    const VirtAddr last_addr = addr + g.page_size() * (nr - 1);
    const PteSlot last = ptep + (nr - 1);
    contpte_detail::try_unfold(env, last_addr, last, raw::ptep_get(env, last));
  }
}

// contpte_ptep_get: A/D of a block is the OR over its entries (hardware
// sets them in whichever entry it walked). The PTL is held: nobody can
// unfold the block under us.
template <Env E>
Pte ptep_get(E& env, PteSlot ptep, Pte orig) {
  EngineScope<E> scope_(env, "contpte_ptep_get");
  const unsigned cont = env.geometry().cont_ptes;
  PteSlot p = ptep.align_down(cont);
  // The OR of pte_dirty()/pte_young() over the entries, without a branch per
  // entry: `any` collects software DIRTY and AF, `hw` collects
  // hardware-dirty (DBM set, RDONLY clear).
  constexpr unsigned kDbmToRdonly = 51 - 7;
  static_assert(bits::kDbm == bits::kRdonly << kDbmToRdonly);
  std::uint64_t any = 0, hw = 0;
  for (unsigned i = 0; i < cont; ++i, ++p) {
    const std::uint64_t v = raw::ptep_get(env, p).val;
    any |= v;
    hw |= v & ~(v << kDbmToRdonly);
  }
  if ((any & bits::kDirty) || (hw & bits::kDbm)) orig = pte_mkdirty(orig);
  if (any & bits::kAf) orig = pte_mkyoung(orig);
  return orig;
}

// Linux retries without bound; a block left torn for good (a buggy raw
// write) would hang us, so after this many retries we return the target
// entry as read and count it (`lockless_giveups`).
inline constexpr unsigned kLocklessRetryLimit = 1000;

// contpte_ptep_get_lockless: no PTL, so the block may be unfolded, changed
// and refolded while we read it. Accept a gathered view only if every entry
// is valid CONT with the expected PFN and the same attributes; else retry.
// A non-CONT target is consistent on its own.
template <Env E>
Pte ptep_get_lockless(E& env, PteSlot orig_ptep, std::uint64_t* retries = nullptr) {
  EngineScope<E> scope_(env, "contpte_ptep_get_lockless");
  const Geometry& g = env.geometry();
  const unsigned shift = g.page_shift;
  const unsigned cont = g.cont_ptes;
  for (unsigned attempt = 0;; ++attempt) {
    Pte orig = raw::ptep_get(env, orig_ptep);
    if (!pte_valid_cont(orig)) return orig;
    if (attempt == kLocklessRetryLimit) return orig;
    const PgProt orig_prot = pte_pgprot(pte_mkold(pte_mkclean(orig)), shift);
    PteSlot p = orig_ptep.align_down(cont);
    std::uint64_t pfn = pte_pfn(orig, shift).val - orig_ptep.index_in(cont);
    bool consistent = true;
    for (unsigned i = 0; i < cont; ++i, ++p, ++pfn) {
      Pte pte = raw::ptep_get(env, p);
      const PgProt prot = pte_pgprot(pte_mkold(pte_mkclean(pte)), shift);
      if (!pte_valid_cont(pte) || pte_pfn(pte, shift).val != pfn || prot != orig_prot) {
        consistent = false;
        break;
      }
      if (pte_dirty(pte)) orig = pte_mkdirty(orig);
      if (pte_young(pte)) orig = pte_mkyoung(orig);
    }
    if (consistent) return orig;
    if (retries) ++*retries;
    // The explorer's Env makes a retry a step of its own: a reader that
    // starts again with nothing changed would only spin.
    if constexpr (requires { env.lockless_retry(); }) env.lockless_retry();
  }
}

// contpte_set_ptes (nr > 1): the targets are not present (set_ptes' contract),
// so nothing needs unfolding; each whole block whose VA and PFN are aligned
// is written with CONT directly — no fold, no convert. Invalid (PROT_NONE)
// entries never get CONT (6.12 stable fix: hardware ignores CONT on an
// invalid entry and the walker-visible block would be torn when it is
// made valid one entry at a time).
template <Env E>
void set_ptes(E& env, VirtAddr addr, PteSlot ptep, Pte pte, unsigned nr) {
  EngineScope<E> scope_(env, "contpte_set_ptes");
  if (!contpte_detail::mm_is_user(env)) return raw::set_ptes(env, addr, ptep, pte, nr);
  const Geometry& g = env.geometry();
  const unsigned shift = g.page_shift;
  const std::uint64_t cont_size = g.cont_pte_size();
  const std::uint64_t end = addr.val + (std::uint64_t{nr} << shift);
  std::uint64_t pfn = pte_pfn(pte, shift).val;
  const PgProt prot = pte_pgprot(pte, shift);
  std::uint64_t a = addr.val;
  do {
    const std::uint64_t boundary = align_down(a + cont_size, cont_size);
    const std::uint64_t next = (boundary - 1 < end - 1) ? boundary : end;
    const unsigned n = static_cast<unsigned>((next - a) >> shift);
    Pte p = pfn_pte(Pfn{pfn}, prot, shift);
    if (((a | next | (pfn << shift)) & (cont_size - 1)) == 0 && pte_valid(p))
      p = pte_mkcont(p);
    else
      p = pte_mknoncont(p);
    raw::set_ptes(env, VirtAddr{a}, ptep, p, n);
    a = next;
    ptep = ptep + n;
    pfn += n;
  } while (a != end);
}

template <Env E>
void clear_full_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr, bool full) {
  EngineScope<E> scope_(env, "contpte_clear_full_ptes");
  try_unfold_partial(env, addr, ptep, nr);
  raw::clear_full_ptes(env, addr, ptep, nr, full);
}

template <Env E>
Pte get_and_clear_full_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr, bool full) {
  EngineScope<E> scope_(env, "contpte_get_and_clear_full_ptes");
  try_unfold_partial(env, addr, ptep, nr);
  return raw::get_and_clear_full_ptes(env, addr, ptep, nr, full);
}

// Aging clears AF on the whole block and keeps it folded: core-mm tracks
// access per folio and a block never spans folios, so over-clearing the
// neighbours is harmless and avoids an unfold.
template <Env E>
bool ptep_test_and_clear_young(E& env, VirtAddr addr, PteSlot ptep) {
  EngineScope<E> scope_(env, "contpte_ptep_test_and_clear_young");
  const Geometry& g = env.geometry();
  PteSlot p = ptep.align_down(g.cont_ptes);
  VirtAddr a{align_down(addr.val, g.cont_pte_size())};
  bool young = false;
  for (unsigned i = 0; i < g.cont_ptes; ++i, ++p, a = a + g.page_size())
    young |= raw::ptep_test_and_clear_young(env, a, p);
  return young;
}

template <Env E>
bool ptep_clear_flush_young(E& env, VirtAddr addr, PteSlot ptep) {
  EngineScope<E> scope_(env, "contpte_ptep_clear_flush_young");
  const Geometry& g = env.geometry();
  bool young = contpte_detail::ptep_test_and_clear_young(env, addr, ptep);
  if (young)
    detail::flush_tlb_range(env, VirtAddr{align_down(addr.val, g.cont_pte_size())},
                            g.cont_ptes, /*sync=*/false);
  return young;
}

// A whole block can be write-protected in place: until the caller's flush the
// TLB may still allow writes, after it none. A partial range must unfold, or
// CONT entries would disagree on RDONLY and the block stay unpredictable
// after the flush.
template <Env E>
void wrprotect_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr) {
  EngineScope<E> scope_(env, "contpte_wrprotect_ptes");
  try_unfold_partial(env, addr, ptep, nr);
  raw::wrprotect_ptes(env, addr, ptep, nr);
}

// A/D can be cleared without unfolding; a range that starts or ends inside a
// CONT block is widened to the whole block (A/D are per folio to core-mm).
template <Env E>
void clear_young_dirty_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr, unsigned flags) {
  EngineScope<E> scope_(env, "contpte_clear_young_dirty_ptes");
  const Geometry& g = env.geometry();
  const bool last_cont = pte_cont(raw::ptep_get(env, ptep + (nr - 1)));
  const bool first_cont = pte_cont(raw::ptep_get(env, ptep));
  const VaRange r = widen_to_blocks(g, {addr.val, addr.val + nr * g.page_size()}, first_cont, last_cont);
  if (first_cont) ptep = ptep.align_down(g.cont_ptes);
  raw::clear_young_dirty_ptes(env, VirtAddr{r.start}, ptep,
                              static_cast<unsigned>((r.end - r.start) >> g.page_shift), flags);
}

// True if every entry of the block already has the AF, dirty and write
// state `entry` asks for. Checked per entry, not on the gathered view: a
// walker that evaluates entries one by one (no HAFDBS, an SMMU without
// HTTU) keeps faulting on a target whose sibling alone was updated, and
// any entry of a block may be the one cached (Arm ARM D8.7.1).
template <Env E>
bool all_subptes_match_access_flags(E& env, PteSlot ptep, Pte entry) {
  const unsigned cont = env.geometry().cont_ptes;
  constexpr std::uint64_t mask = bits::kRdonly | bits::kAf | bits::kWrite | bits::kDirty;
  const std::uint64_t want = entry.val & mask;
  PteSlot p = ptep.align_down(cont);
  for (unsigned i = 0; i < cont; ++i, ++p)
    if ((raw::ptep_get(env, p).val & mask) != want) return false;
  return true;
}

// The no-op check before Linux's fix (Features::test_gathered_access_flags_check,
// tests only): the gathered view already equals `entry` when only a sibling
// is young or dirty, and the faulting entry is left as it was.
template <Env E>
bool gathered_matches_access_flags(E& env, PteSlot ptep, Pte entry) {
  return pte_mknoncont(ptep_get(env, ptep, raw::ptep_get(env, ptep))) == entry;
}

// contpte_ptep_set_access_flags: A/D can be fixed up on the whole block
// without unfolding; a change of the write bit must unfold first.
template <Env E>
bool ptep_set_access_flags(E& env, VirtAddr addr, PteSlot ptep, Pte entry, bool dirty) {
  EngineScope<E> scope_(env, "contpte_ptep_set_access_flags");
  const Geometry& g = env.geometry();
  if (env.features().test_gathered_access_flags_check ? gathered_matches_access_flags(env, ptep, entry)
                                                      : all_subptes_match_access_flags(env, ptep, entry))
    return false;
  const Pte orig = pte_mknoncont(raw::ptep_get(env, ptep));
  if (pte_write(orig) == pte_write(entry)) {
    // Hardware access management would need only one entry updated, but a
    // walker without it needs all of them; flush once for the block
    // rather than per page.
    PteSlot p = ptep.align_down(g.cont_ptes);
    const VirtAddr start{align_down(addr.val, g.cont_pte_size())};
    VirtAddr a = start;
    for (unsigned i = 0; i < g.cont_ptes; ++i, ++p, a = a + g.page_size())
      raw::ptep_set_access_flags(env, a, p, entry, false);
    if (dirty) detail::flush_tlb_range(env, start, g.cont_ptes, /*sync=*/true);
  } else {
    contpte_detail::try_unfold_slow(env, addr, ptep, orig);
    raw::ptep_set_access_flags(env, addr, ptep, entry, dirty);
  }
  return true;
}

}  // namespace contpte_detail
}  // namespace contpte
