// engine/pmd.h — the huge-PMD operations core-mm calls (Linux
// arch/arm64/include/asm/pgtable.h: set_pmd_at, pmd_populate,
// pmdp_establish, pmdp_huge_get_and_clear, pmdp_test_and_clear_young,
// pmdp_set_access_flags, pmdp_set_wrprotect).
//
// Owns: one named operation per kernel helper on a level-2 entry. On arm64
// a PMD is a PTE-sized word whose A/D, RDONLY and DBM bits sit where a
// PTE's do, so each helper is the raw PTE operation applied to the PMD's
// word — as arm64 defines them (pmdp_test_and_clear_young is
// __ptep_test_and_clear_young on the pmd cast to a pte, and so on). They
// are never contpte-aware: CONT on a PMD (contiguous PMD blocks) belongs
// to hugetlb, which this model does not map.
// Must not know: folios, VMAs, how the Env stores words. Flushes that
// core-mm makes after one of these (flush_pmd_tlb_range) stay with the
// caller, as in the kernel: only pmdp_set_access_flags flushes, because
// arm64's __ptep_set_access_flags does.
#pragma once

#include "engine/raw.h"

namespace contpte {

// set_pmd_at: write a huge PMD (a block descriptor, or the huge zero
// folio's) into an entry that is none or was just cleared.
template <Env E>
inline void set_pmd_at(E& env, VirtAddr, PteSlot pmdp, Pte pmd) {
  raw::set_pte(env, pmdp, pmd);
}

// pmd_populate: link a PTE table (`table` is its table descriptor) into
// the PMD entry, as __split_huge_pmd_locked does after filling the table.
template <Env E>
inline void pmd_populate(E& env, PteSlot pmdp, Pte table) {
  raw::set_pte(env, pmdp, table);
}

// pmdp_establish: exchange in `pmd`, returning the old entry with any A/D
// update hardware made up to the exchange (arm64: xchg_relaxed).
// pmdp_invalidate is this with pmd_mkinvalid of the entry, then a flush.
template <Env E>
inline Pte pmdp_establish(E& env, VirtAddr, PteSlot pmdp, Pte pmd) {
  ++env.counters().pte_stores;
  return env.xchg(pmdp, pmd);
}

// pmdp_huge_get_and_clear: clear the entry atomically, returning it with
// the A/D state hardware set until the clear (zap_huge_pmd,
// pmdp_huge_clear_flush without its flush).
template <Env E>
inline Pte pmdp_huge_get_and_clear(E& env, VirtAddr addr, PteSlot pmdp) {
  return raw::ptep_get_and_clear(env, addr, pmdp);
}

// pmdp_test_and_clear_young: clear AF with a compare-exchange loop
// (hardware may set AF or make the entry dirty meanwhile); returns whether
// it was young. No flush: pmdp_clear_flush_young's caller flushes.
template <Env E>
inline bool pmdp_test_and_clear_young(E& env, VirtAddr addr, PteSlot pmdp) {
  return raw::ptep_test_and_clear_young(env, addr, pmdp);
}

// pmdp_set_access_flags: make the entry at most more permissive (AF,
// dirty, write), atomically against hardware updates; true when anything
// changed. A dirty update flushes the address, as arm64's
// __ptep_set_access_flags does, since a read-only TLB entry would keep
// faulting.
template <Env E>
inline bool pmdp_set_access_flags(E& env, VirtAddr addr, PteSlot pmdp, Pte entry, bool dirty) {
  return raw::ptep_set_access_flags(env, addr, pmdp, entry, dirty);
}

// pmdp_set_wrprotect: write-protect a huge PMD (fork's copy_huge_pmd),
// keeping a dirtiness hardware gave it in the software dirty bit.
template <Env E>
inline void pmdp_set_wrprotect(E& env, VirtAddr addr, PteSlot pmdp) {
  raw::ptep_set_wrprotect(env, addr, pmdp);
}

}  // namespace contpte
