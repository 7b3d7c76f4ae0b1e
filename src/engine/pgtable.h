// engine/pgtable.h — the public, contpte-aware PTE API (the
// CONFIG_ARM64_CONTPTE block of arch/arm64/include/asm/pgtable.h and
// ptep_modify_prot_start/commit of arch/arm64/mm/mmu.c, Linux 6.12.117).
//
// Owns: one inline wrapper per kernel function. Each reads one PTE, asks one
// cheap question (valid CONT? nr == 1? last slot of a block?) and either
// finishes with the raw operation or calls the slow path in engine/contpte.h.
// The `off` variant is the kernel without CONFIG_ARM64_CONTPTE: every
// wrapper is its raw twin.
// Must not know: how the Env is implemented.
//
// Preconditions are core-mm's (the caller holds the page-table lock; a
// batched call covers present PTEs of one folio with consecutive PFNs and
// one protection, within one page-table page; set_ptes with nr > 1 targets
// non-present PTEs). They are not re-checked here, as in Linux; the
// conformance checker of src/hw reports what breaking them leads to.
#pragma once

#include "engine/contpte.h"
#include "engine/external.h"

namespace contpte {

template <Env E>
inline bool contpte_off(const E& env) {
  return env.features().variant == Variant::Off;
}

template <Env E>
inline Pte ptep_get(E& env, PteSlot ptep) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::ptep_get(*x, env, ptep);
  Pte pte = raw::ptep_get(env, ptep);
  if (!pte_valid_cont(pte) || contpte_off(env)) [[likely]]
    return pte;
  return contpte_detail::ptep_get(env, ptep, pte);
}

// Without the PTL. `retries`, if given, counts the re-reads a torn block cost.
template <Env E>
inline Pte ptep_get_lockless(E& env, PteSlot ptep, std::uint64_t* retries = nullptr) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::ptep_get_lockless(*x, env, ptep);
  Pte pte = raw::ptep_get(env, ptep);
  if (!pte_valid_cont(pte) || contpte_off(env)) [[likely]]
    return pte;
  return contpte_detail::ptep_get_lockless(env, ptep, retries);
}

// A single-PTE write may overwrite a CONT entry (unfold first) and may
// complete a block (try to fold); with nr > 1 the targets are empty.
template <Env E>
inline void set_ptes(E& env, VirtAddr addr, PteSlot ptep, Pte pte, unsigned nr) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::set_ptes(*x, env, addr, ptep, pte, nr);
  if (contpte_off(env)) return raw::set_ptes(env, addr, ptep, pte, nr);
  pte = pte_mknoncont(pte);
  if (nr == 1) [[likely]] {
    contpte_detail::try_unfold(env, addr, ptep, raw::ptep_get(env, ptep));
    raw::set_ptes(env, addr, ptep, pte, 1);
    if (env.features().variant != Variant::Nofold) contpte_detail::try_fold(env, addr, ptep, pte);
  } else {
    contpte_detail::set_ptes(env, addr, ptep, pte, nr);
  }
}

template <Env E>
inline void set_pte_at(E& env, VirtAddr addr, PteSlot ptep, Pte pte) {
  set_ptes(env, addr, ptep, pte, 1);
}

template <Env E>
inline void pte_clear(E& env, VirtAddr addr, PteSlot ptep) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::pte_clear(*x, env, addr, ptep);
  if (!contpte_off(env)) contpte_detail::try_unfold(env, addr, ptep, raw::ptep_get(env, ptep));
  raw::pte_clear(env, addr, ptep);
}

template <Env E>
inline Pte ptep_get_and_clear(E& env, VirtAddr addr, PteSlot ptep) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::ptep_get_and_clear(*x, env, addr, ptep);
  if (!contpte_off(env)) contpte_detail::try_unfold(env, addr, ptep, raw::ptep_get(env, ptep));
  return raw::ptep_get_and_clear(env, addr, ptep);
}

template <Env E>
inline void clear_full_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr, bool full) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::clear_full_ptes(*x, env, addr, ptep, nr, full);
  if (contpte_off(env)) return raw::clear_full_ptes(env, addr, ptep, nr, full);
  if (nr == 1) [[likely]] {
    contpte_detail::try_unfold(env, addr, ptep, raw::ptep_get(env, ptep));
    raw::clear_full_ptes(env, addr, ptep, nr, full);
  } else {
    contpte_detail::clear_full_ptes(env, addr, ptep, nr, full);
  }
}

template <Env E>
inline Pte get_and_clear_full_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr, bool full) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::get_and_clear_full_ptes(*x, env, addr, ptep, nr, full);
  if (contpte_off(env)) return raw::get_and_clear_full_ptes(env, addr, ptep, nr, full);
  if (nr == 1) [[likely]] {
    contpte_detail::try_unfold(env, addr, ptep, raw::ptep_get(env, ptep));
    return raw::get_and_clear_full_ptes(env, addr, ptep, nr, full);
  }
  return contpte_detail::get_and_clear_full_ptes(env, addr, ptep, nr, full);
}

template <Env E>
inline bool ptep_test_and_clear_young(E& env, VirtAddr addr, PteSlot ptep) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::ptep_test_and_clear_young(*x, env, addr, ptep);
  Pte orig = raw::ptep_get(env, ptep);
  if (!pte_valid_cont(orig) || contpte_off(env)) [[likely]]
    return raw::ptep_test_and_clear_young(env, addr, ptep);
  return contpte_detail::ptep_test_and_clear_young(env, addr, ptep);
}

template <Env E>
inline bool ptep_clear_flush_young(E& env, VirtAddr addr, PteSlot ptep) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::ptep_clear_flush_young(*x, env, addr, ptep);
  Pte orig = raw::ptep_get(env, ptep);
  if (!pte_valid_cont(orig) || contpte_off(env)) [[likely]]
    return raw::ptep_clear_flush_young(env, addr, ptep);
  return contpte_detail::ptep_clear_flush_young(env, addr, ptep);
}

template <Env E>
inline void wrprotect_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::wrprotect_ptes(*x, env, addr, ptep, nr);
  if (contpte_off(env)) return raw::wrprotect_ptes(env, addr, ptep, nr);
  if (nr == 1) [[likely]] {
    // wrprotect_ptes is only called on present PTEs, so CONT alone decides
    // the unfold, and the value read serves as the cmpxchg's first guess
    // (fork is sensitive to this for order-0 folios).
    Pte orig = raw::ptep_get(env, ptep);
    if (pte_cont(orig)) [[unlikely]] {
      contpte_detail::try_unfold_slow(env, addr, ptep, orig);
      orig = pte_mknoncont(orig);
    }
    raw::ptep_set_wrprotect_from(env, addr, ptep, orig);
  } else {
    contpte_detail::wrprotect_ptes(env, addr, ptep, nr);
  }
}

template <Env E>
inline void ptep_set_wrprotect(E& env, VirtAddr addr, PteSlot ptep) {
  wrprotect_ptes(env, addr, ptep, 1);
}

template <Env E>
inline void clear_young_dirty_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr,
                                   unsigned flags) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::clear_young_dirty_ptes(*x, env, addr, ptep, nr, flags);
  if (contpte_off(env) || (nr == 1 && !pte_cont(raw::ptep_get(env, ptep)))) [[likely]]
    return raw::clear_young_dirty_ptes(env, addr, ptep, nr, flags);
  contpte_detail::clear_young_dirty_ptes(env, addr, ptep, nr, flags);
}

template <Env E>
inline bool ptep_set_access_flags(E& env, VirtAddr addr, PteSlot ptep, Pte entry, bool dirty) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::ptep_set_access_flags(*x, env, addr, ptep, entry, dirty);
  if (contpte_off(env)) return raw::ptep_set_access_flags(env, addr, ptep, entry, dirty);
  Pte orig = raw::ptep_get(env, ptep);
  entry = pte_mknoncont(entry);
  if (!pte_valid_cont(orig)) [[likely]]
    return raw::ptep_set_access_flags(env, addr, ptep, entry, dirty);
  return contpte_detail::ptep_set_access_flags(env, addr, ptep, entry, dirty);
}

// mprotect's per-PTE transaction (arch/arm64/mm/mmu.c, no erratum
// workaround): start clears the PTE (unfolding its block), commit writes
// the new value with set_pte_at, which may fold the block again.
template <Env E>
inline Pte ptep_modify_prot_start(E& env, VirtAddr addr, PteSlot ptep) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::ptep_modify_prot_start(*x, env, addr, ptep);
  return ptep_get_and_clear(env, addr, ptep);
}

template <Env E>
inline void ptep_modify_prot_commit(E& env, VirtAddr addr, PteSlot ptep, Pte old, Pte pte) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::ptep_modify_prot_commit(*x, env, addr, ptep, old, pte);
  set_pte_at(env, addr, ptep, pte);
}

// The batched transaction mprotect uses since Linux 6.17 (arm64's
// modify_prot_start_ptes / modify_prot_commit_ptes): the nr PTEs of one
// folio are cleared together (a partial block unfolds, a whole one is
// cleared without converting) and rewritten with one set_ptes, which
// writes CONT directly on a whole aligned block.
template <Env E>
inline Pte modify_prot_start_ptes(E& env, VirtAddr addr, PteSlot ptep, unsigned nr) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::modify_prot_start_ptes(*x, env, addr, ptep, nr);
  return get_and_clear_full_ptes(env, addr, ptep, nr, false);
}

template <Env E>
inline void modify_prot_commit_ptes(E& env, VirtAddr addr, PteSlot ptep, Pte old, Pte pte,
                                    unsigned nr) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::modify_prot_commit_ptes(*x, env, addr, ptep, old, pte, nr);
  set_ptes(env, addr, ptep, pte, nr);
}

// How many PTEs from ptep to the end of its block core-mm may batch over
// without re-reading: 1 unless the entry is a valid CONT one.
template <Env E>
inline unsigned pte_batch_hint(const E& env, PteSlot ptep, Pte pte) {
  if (const ExternalEngine* x = env.features().external) [[unlikely]]
    return external::pte_batch_hint(*x, env, ptep, pte);
  if (!pte_valid_cont(pte) || contpte_off(env)) return 1;
  const unsigned cont = env.geometry().cont_ptes;
  return cont - static_cast<unsigned>(ptep.index_in(cont));
}

}  // namespace contpte
