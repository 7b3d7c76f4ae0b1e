// engine/raw.h — the contpte-unaware PTE operations (Linux's __ptep_get,
// __set_ptes, __ptep_get_and_clear, ...).
//
// Owns: single-PTE and batched operations that ignore PTE_CONT, each one Env
// call per PTE word touched, and the TLB flush helpers that count requests.
// Must not know: blocks, folding, variants. `__` names are reserved in C++,
// so Linux's double-underscore twins live in namespace `raw`.
#pragma once

#include "engine/env.h"

namespace contpte {

// clear_young_dirty_ptes() flags (cydp_t).
enum Cydp : unsigned { CYDP_CLEAR_YOUNG = 1u, CYDP_CLEAR_DIRTY = 2u };

namespace detail {
// Every invalidation the engine asks for goes through here so that `tlbi`
// counts requests (one per call) and `tlbi_pages` what they covered.
template <Env E>
void flush_tlb_range(E& env, VirtAddr start, std::uint64_t nr_pages, bool sync) {
  EngineScope<E> scope_(env, "__flush_tlb_range");
  auto& c = env.counters();
  ++c.tlbi;
  c.tlbi_pages += nr_pages;
  env.flush_tlb_range(TlbFlush{start, nr_pages, sync});
}
template <Env E>
void flush_tlb_page(E& env, VirtAddr addr, bool sync) {
  EngineScope<E> scope_(env, "__flush_tlb_page");
  auto& c = env.counters();
  ++c.tlbi;
  ++c.tlbi_pages;
  env.flush_tlb_page(addr, sync);
}
}  // namespace detail

namespace raw {

template <Env E>
inline Pte ptep_get(E& env, PteSlot ptep) {
  return env.read(ptep);
}

template <Env E>
inline void set_pte(E& env, PteSlot ptep, Pte pte) {
  ++env.counters().pte_stores;
  env.write(ptep, pte);
}

// __set_ptes: nr consecutive PFNs with the same attributes, one store each.
template <Env E>
inline void set_ptes(E& env, VirtAddr, PteSlot ptep, Pte pte, unsigned nr) {
  EngineScope<E> scope_(env, "__set_ptes");
  // pte_advance_pfn(pte, 1) is an add of one page to the output address
  // field: the field holds PA[47:page_shift] in place, and a folio never
  // ends at the top of the 48-bit PA space, so the add cannot carry out.
  const std::uint64_t step = env.geometry().page_size();
  env.counters().pte_stores += nr;
  for (;;) {
    env.write(ptep, pte);
    if (--nr == 0) break;
    ++ptep;
    pte.val += step;
  }
}

template <Env E>
inline void pte_clear(E& env, VirtAddr, PteSlot ptep) {
  EngineScope<E> scope_(env, "__pte_clear");
  raw::set_pte(env, ptep, Pte{});
}

// An atomic exchange, so an AF or dirty update the hardware makes between
// our read and our write cannot be lost: it lands in the value returned.
template <Env E>
inline Pte ptep_get_and_clear(E& env, VirtAddr, PteSlot ptep) {
  EngineScope<E> scope_(env, "__ptep_get_and_clear");
  ++env.counters().pte_stores;
  return env.xchg(ptep, Pte{});
}

template <Env E>
inline Pte cmpxchg(E& env, PteSlot ptep, Pte old, Pte v) {
  Pte seen = env.cmpxchg(ptep, old, v);
  if (seen == old) ++env.counters().pte_stores;
  return seen;
}

template <Env E>
inline void clear_full_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr, bool) {
  EngineScope<E> scope_(env, "__clear_full_ptes");
  const std::uint64_t page = env.geometry().page_size();
  for (;;) {
    raw::ptep_get_and_clear(env, addr, ptep);
    if (--nr == 0) break;
    ++ptep;
    addr = addr + page;
  }
}

// Returns the first PTE with the young/dirty of all of them OR-ed in: the
// caller (zap) tracks A/D per folio.
template <Env E>
inline Pte get_and_clear_full_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr, bool) {
  EngineScope<E> scope_(env, "__get_and_clear_full_ptes");
  const std::uint64_t page = env.geometry().page_size();
  Pte pte = raw::ptep_get_and_clear(env, addr, ptep);
  while (--nr) {
    ++ptep;
    addr = addr + page;
    Pte tmp = raw::ptep_get_and_clear(env, addr, ptep);
    if (pte_dirty(tmp)) pte = pte_mkdirty(pte);
    if (pte_young(tmp)) pte = pte_mkyoung(pte);
  }
  return pte;
}

// Compare-exchange loop: hardware may set AF or clear RDONLY concurrently.
template <Env E>
inline bool ptep_test_and_clear_young(E& env, VirtAddr, PteSlot ptep) {
  EngineScope<E> scope_(env, "__ptep_test_and_clear_young");
  Pte pte = raw::ptep_get(env, ptep);
  Pte old;
  do {
    old = pte;
    pte = raw::cmpxchg(env, ptep, old, pte_mkold(old));
  } while (pte != old);
  return pte_young(pte);
}

// The flush is the nosync flavour: a stale young entry only costs aging
// accuracy, so Linux elides the trailing DSB.
template <Env E>
inline bool ptep_clear_flush_young(E& env, VirtAddr addr, PteSlot ptep) {
  bool young = raw::ptep_test_and_clear_young(env, addr, ptep);
  if (young) detail::flush_tlb_page(env, addr, /*sync=*/false);
  return young;
}

// ___ptep_set_wrprotect: `pte` is the caller's belief of the current value;
// the cmpxchg corrects it if hardware made the PTE dirty meanwhile, and
// pte_wrprotect then keeps that dirtiness in PTE_DIRTY.
template <Env E>
inline void ptep_set_wrprotect_from(E& env, VirtAddr, PteSlot ptep, Pte pte) {
  Pte old;
  do {
    old = pte;
    pte = raw::cmpxchg(env, ptep, old, pte_wrprotect(old));
  } while (pte != old);
}

template <Env E>
inline void ptep_set_wrprotect(E& env, VirtAddr addr, PteSlot ptep) {
  EngineScope<E> scope_(env, "__ptep_set_wrprotect");
  ptep_set_wrprotect_from(env, addr, ptep, raw::ptep_get(env, ptep));
}

template <Env E>
inline void wrprotect_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr) {
  EngineScope<E> scope_(env, "__wrprotect_ptes");
  const std::uint64_t page = env.geometry().page_size();
  for (; nr; --nr, ++ptep, addr = addr + page) raw::ptep_set_wrprotect(env, addr, ptep);
}

template <Env E>
inline void clear_young_dirty_pte(E& env, VirtAddr, PteSlot ptep, Pte pte, unsigned flags) {
  Pte old;
  do {
    old = pte;
    Pte v = old;
    if (flags & CYDP_CLEAR_YOUNG) v = pte_mkold(v);
    if (flags & CYDP_CLEAR_DIRTY) v = pte_mkclean(v);
    pte = raw::cmpxchg(env, ptep, old, v);
  } while (pte != old);
}

// When both A and D are being cleared a racing hardware update is being
// discarded anyway (MADV_FREE), so Linux uses a plain store.
template <Env E>
inline void clear_young_dirty_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr,
                                   unsigned flags) {
  EngineScope<E> scope_(env, "__clear_young_dirty_ptes");
  const std::uint64_t page = env.geometry().page_size();
  for (;;) {
    Pte pte = raw::ptep_get(env, ptep);
    if (flags == (CYDP_CLEAR_YOUNG | CYDP_CLEAR_DIRTY))
      raw::set_pte(env, ptep, pte_mkclean(pte_mkold(pte)));
    else
      raw::clear_young_dirty_pte(env, addr, ptep, pte, flags);
    if (--nr == 0) break;
    ++ptep;
    addr = addr + page;
  }
}

// __ptep_set_access_flags (arch/arm64/mm/fault.c): only ever makes the PTE
// more permissive — ORs in AF, DIRTY and WRITE and takes RDONLY as the
// lowest of old and new — atomically against hardware updates. Returns
// whether anything was to be done; a dirty update flushes the page because a
// read-only TLB entry would keep faulting.
template <Env E>
inline bool ptep_set_access_flags(E& env, VirtAddr addr, PteSlot ptep, Pte entry, bool dirty) {
  EngineScope<E> scope_(env, "__ptep_set_access_flags");
  Pte pte = raw::ptep_get(env, ptep);
  if (pte_same(pte, entry)) return false;
  std::uint64_t want = entry.val & (bits::kRdonly | bits::kAf | bits::kWrite | bits::kDirty);
  // RDONLY must end as (old & new): invert, OR, invert back.
  want ^= bits::kRdonly;
  Pte old;
  do {
    old = pte;
    Pte v{((old.val ^ bits::kRdonly) | want) ^ bits::kRdonly};
    pte = raw::cmpxchg(env, ptep, old, v);
  } while (pte != old);
  if (dirty) detail::flush_tlb_page(env, addr, /*sync=*/true);
  return true;
}

}  // namespace raw
}  // namespace contpte
