// hw/access_rules.h — what one hardware access does with the leaf
// descriptor its walk read: the fault it takes, the FEAT_HAFDBS update it
// needs and the compare-exchange that makes it, and the TLB entry it
// fills. Each rule has this one home; the MMU (hw/mmu.cpp: the main CPU)
// and the explorer's hardware branches (explore/hw_branch.cpp: other CPUs
// and device walkers) apply them, and tests/hw/access_rules_test.cpp
// checks that the two agree on random descriptors.
//
// The walkers the model has: a CPU with FEAT_HAFDBS (hardware sets AF, and
// clears PTE_RDONLY for a store through a DBM entry), a CPU without it
// (`hafdbs off`), and a device walker without hardware access/dirty
// updates (an SMMU without HTTU, or with HA/HD off in its context
// descriptor: a `dev` access, docs/explore.md).
//
// Owns: which fault, in which order the checks are made (EL0 permission,
// then write permission, then the access flag, as the MMU checks them), and
// the fault's name as reports print it; which update an access needs, the
// word the update writes and what it sets; the fields of a TLB entry built
// from a walk.
// Must not know: who handles the fault (the memory manager, the PTE-level
// handler of a `dev` access) or what the handler does; how a walker stores
// a word (the MMU's memory and counters, the explorer's undo log) or
// which TLB structure an entry goes to.
// Inline: they sit on the MMU's miss path.
#pragma once

#include <cstdint>
#include <string_view>

#include "arch/pte.h"
#include "hw/checker.h"
#include "hw/tlb.h"
#include "hw/walker.h"

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

// Whether fault `f` on descriptor `d` is one a walker with FEAT_HAFDBS
// would have handled itself: AF clear, or a write to a writable (DBM)
// entry still PTE_RDONLY (clean). A walker without it takes these to the
// OS's access-flag/dirty handler (ptep_set_access_flags).
constexpr bool hafdbs_would_handle(AccessFault f, Pte d) {
  return f == AccessFault::AccessFlag || (f == AccessFault::ReadOnly && pte_write(d));
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

// What a descriptor cached in a TLB lets EL0 do without a walk: AP[1]
// (USER) for loads and stores, RDONLY clear for stores (a store to a clean
// entry walks, to update or fault), UXN clear for fetches. Cached entries
// are young: access_fault() without its AF test.
constexpr bool cached_permits(Pte d, MemAccess kind) {
  switch (kind) {
    case MemAccess::Read: return d.val & bits::kUser;
    case MemAccess::Write: return (d.val & bits::kUser) && !pte_rdonly(d);
    case MemAccess::Exec: return pte_user_exec(d);
  }
  return false;
}

// The fault as the MMU reports it to the memory manager: the Arm ARM's
// fault classes, in which a write to a read-only entry is a permission
// fault.
enum class Fault : std::uint8_t { None, Translation, AccessFlag, Permission };
constexpr Fault fault_class(AccessFault f) {
  switch (f) {
    case AccessFault::None: return Fault::None;
    case AccessFault::Translation: return Fault::Translation;
    case AccessFault::Permission:
    case AccessFault::ReadOnly: return Fault::Permission;
    case AccessFault::AccessFlag: return Fault::AccessFlag;
  }
  return Fault::None;
}

// ---- FEAT_HAFDBS ------------------------------------------------------------

// A store through an entry that is not yet dirty (PTE_RDONLY set): with
// FEAT_HAFDBS and DBM (PTE_WRITE) hardware clears RDONLY, else it faults.
constexpr bool needs_dirty_update(Pte d, MemAccess kind) { return kind == MemAccess::Write && pte_rdonly(d); }

// An access that did not fault on `d` under FEAT_HAFDBS updates it first
// when AF is clear or the store needs the dirty state; else the walk's
// descriptor is cached as it is.
constexpr bool needs_hafdbs_update(Pte d, MemAccess kind) {
  return !pte_young(d) || needs_dirty_update(d, kind);
}

// The word hardware writes over `old`: AF set and, for a store through a
// DBM entry, PTE_RDONLY cleared. Also the descriptor the TLB caches after
// the update of the walked descriptor (a store that needs the dirty state
// and reached the update has DBM: it did not fault).
constexpr Pte hafdbs_value(Pte old, bool needs_dirty) {
  Pte v = pte_mkyoung(old);
  if (needs_dirty && pte_write(old)) v = clear_pte_bit(v, bits::kRdonly);
  return v;
}

// One FEAT_HAFDBS compare-exchange: `before` is the word found, `after`
// the word left. It exchanges when the word is still `expected` (the value
// the walk read); then it stores hafdbs_value(expected) unless that is the
// word already. On a mismatch software changed the entry meanwhile and
// nothing is written: the caller walks again (the explorer's other CPUs)
// or retries on the value found (the MMU).
struct HafdbsUpdate {
  Pte before{}, after{};
  bool exchanged = false;
  bool wrote() const { return after != before; }
  bool sets_af() const { return wrote() && !pte_young(before); }
  bool sets_dirty() const { return wrote() && pte_rdonly(before) && !pte_rdonly(after); }
};

// `store(word, value)` writes the word (the MMU's memory, the explorer's
// logged write); it is called only when the word changes.
template <class Store>
inline HafdbsUpdate hafdbs_update(Pte* word, Pte expected, bool needs_dirty, Store&& store) {
  HafdbsUpdate u;
  u.before = u.after = *word;
  if (u.before != expected) return u;
  u.exchanged = true;
  const Pte v = hafdbs_value(expected, needs_dirty);
  if (v != u.before) {
    store(word, v);
    u.after = v;
  }
  return u;
}

// ---- TLB fill ---------------------------------------------------------------

// The TLB entry the walk `w` fills in `asid`, caching descriptor `cached`
// (the walked one, or it after the FEAT_HAFDBS update). `page_shift`: the
// granule's, for a structure that splits blocks itself; 0 when the caller
// splits them (the MMU's fill).
inline TlbEntry tlb_entry_from_walk(const WalkResult& w, std::uint16_t asid, Pte cached,
                                   unsigned page_shift = 0) {
  TlbEntry e;
  e.asid = asid;
  e.va = w.va_base;
  e.size_shift = w.size_shift;
  e.level = static_cast<std::uint8_t>(w.level);
  e.cont = pte_cont(w.desc);
  e.pa = w.pa_base;
  e.desc = cached;
  e.page_shift = static_cast<std::uint8_t>(page_shift);
  return e;
}

}  // namespace contpte
