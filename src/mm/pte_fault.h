// mm/pte_fault.h — handle_pte_fault's path (mm/memory.c) for a fault on a
// present PTE whose access is permitted: the access flag, and for a write
// the dirty state, set by ptep_set_access_flags. Taken by a CPU without
// FEAT_HAFDBS and by a device walker without HTTU (an SMMU's page request
// reaches handle_mm_fault the same way).
//
// Owns: the entry the handler builds and what it passes; the PTE-level
// form of the handler that `dev` accesses outside every VMA use (no VMA to
// consult: a non-present PTE or a write to a PTE without write permission
// cannot be handled there).
// Must not know: which walker faulted, schedules, scenarios. Generic over
// the engine's Env, so the memory manager (SimEnv) and the explorer's
// stepped handler (StepEnv) run the same code.
#pragma once

#include <optional>
#include <string_view>

#include "engine/pgtable.h"

namespace contpte {

// entry = pte_mkyoung(orig), pte_mkdirty(entry) for a write;
// ptep_set_access_flags(vma, addr, ptep, entry, write). `orig` is the
// ptep_get() the handler decided on; `page` the faulting page's address.
// Returns whether the PTE changed (Linux then skips update_mmu_cache's
// spurious-fault flush).
template <Env E>
bool pte_fault_set_accessed(E& env, VirtAddr page, PteSlot ptep, Pte orig, bool write) {
  Pte entry = pte_mkyoung(orig);
  if (write) entry = pte_mkdirty(entry);
  return ptep_set_access_flags(env, page, ptep, entry, write);
}

// The PTE-level handler of a device access outside every VMA (docs/explore.md,
// "Device walkers and `fault_loop`"), under the page-table lock. Linux reads
// orig_pte locklessly before it takes the lock and gives up if pte_same
// fails under it (the access faults again); reading it under the lock is
// the same handler without that round trip. Returns why the fault cannot
// be handled, or nullopt when ptep_set_access_flags ran.
inline constexpr std::string_view kNoValidPte = "no valid PTE and no mapping (a fault on a non-present PTE)";
template <Env E>
std::optional<std::string_view> handle_pte_level_fault(E& env, VirtAddr page, PteSlot ptep, bool write) {
  EngineScope<E> scope_(env, "handle_pte_fault (core mm)");
  const Pte orig = ptep_get(env, ptep);
  if (!pte_valid(orig)) return kNoValidPte;
  if (write && !pte_write(orig)) return "a write to a PTE without write permission";
  pte_fault_set_accessed(env, page, ptep, orig, write);
  return std::nullopt;
}

}  // namespace contpte
