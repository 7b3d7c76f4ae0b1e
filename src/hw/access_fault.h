// hw/access_fault.h — the fault one access takes on the leaf descriptor its
// walk read, for the walkers the model has: another CPU with FEAT_HAFDBS
// (hardware sets AF, and clears PTE_RDONLY for a store through a DBM
// entry), a CPU without it (`hafdbs off`), and a device walker without
// hardware access/dirty updates (an SMMU without HTTU, or with HA/HD off in
// its context descriptor: a `dev` access, docs/explore.md).
//
// Owns: which fault, in which order the checks are made (EL0 permission,
// then write permission, then the access flag, as the MMU checks them), and
// the fault's name as reports print it.
// Must not know: who handles the fault (the memory manager, the PTE-level
// handler of a `dev` access) or what the handler does.
#pragma once

#include <cstdint>
#include <string_view>

#include "arch/pte.h"
#include "hw/checker.h"

namespace contpte {

enum class AccessFault : std::uint8_t {
  None,
  Translation,  // no valid descriptor
  Permission,   // EL0 may not access it this way (AP[1], UXN)
  ReadOnly,     // a write to a PTE_RDONLY entry that the walker may not make dirty itself
  AccessFlag,   // AF clear and the walker does not set it itself
};

// `valid`: the walk found a valid leaf `d`. `hafdbs`: the walker updates
// AF and the dirty state in hardware (then only a write to an entry without
// DBM faults for RDONLY); a device walker without HTTU passes false.
constexpr AccessFault access_fault(bool valid, Pte d, MemAccess kind, bool hafdbs) {
  if (!valid) return AccessFault::Translation;
  const bool el0_ok = kind == MemAccess::Exec ? pte_user_exec(d) : (d.val & bits::kUser) != 0;
  if (!el0_ok) return AccessFault::Permission;
  if (kind == MemAccess::Write && pte_rdonly(d) && !(pte_write(d) && hafdbs)) return AccessFault::ReadOnly;
  if (!pte_young(d) && !hafdbs) return AccessFault::AccessFlag;
  return AccessFault::None;
}

constexpr std::string_view access_fault_name(AccessFault f) {
  switch (f) {
    case AccessFault::None: return "no fault";
    case AccessFault::Translation: return "translation fault";
    case AccessFault::Permission: return "permission fault";
    case AccessFault::ReadOnly: return "permission fault (read-only)";
    case AccessFault::AccessFlag: return "access flag fault";
  }
  return "?";
}

}  // namespace contpte
