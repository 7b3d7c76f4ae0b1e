// hw/access_rules.h — what one hardware access does with the leaf
// descriptor its walk read: the fault it takes, the FEAT_HAFDBS update it
// needs, the value that update writes, the TLB entry it fills. The MMU
// (hw/mmu.cpp) and the explorer's other CPUs and device walkers
// (explore/explorer.cpp) apply these rules; each has this one home.
// Inline: they sit on the MMU's miss path.
#pragma once

#include <cstdint>
#include <string_view>

#include "arch/pte.h"
#include "hw/checker.h"
#include "hw/tlb.h"
#include "hw/walker.h"

namespace contpte {

enum class Fault : std::uint8_t { None, Translation, AccessFlag, Permission };

struct AccessDecision {
  Fault fault = Fault::None;
  bool read_only = false;     // the Permission fault is a write to a PTE_RDONLY entry
  bool needs_dirty = false;   // a store through a DBM entry: hardware clears RDONLY
  bool needs_update = false;  // hardware must set AF and/or the dirty state first
};

// The decision for an access of `kind` through descriptor `d` (`valid`: the
// walk found a valid leaf). `hafdbs`: the walker updates AF and dirty in
// hardware (FEAT_HAFDBS); without it (hafdbs off, or a device walker without
// HTTU) AF=0 is an access-flag fault and a write to a PTE_RDONLY entry a
// permission fault.
inline AccessDecision decide_access(bool valid, Pte d, MemAccess kind, bool hafdbs) {
  if (!valid) return {Fault::Translation};
  const bool el0_ok = kind == MemAccess::Exec ? pte_user_exec(d) : (d.val & bits::kUser) != 0;
  if (!el0_ok) return {Fault::Permission};
  const bool needs_dirty = kind == MemAccess::Write && pte_rdonly(d);
  if (needs_dirty && !(pte_write(d) && hafdbs)) return {Fault::Permission, true};
  if (!pte_young(d) && !hafdbs) return {Fault::AccessFlag};
  return {Fault::None, false, needs_dirty, !pte_young(d) || needs_dirty};
}

// "translation fault", "permission fault", "permission fault (read-only)",
// "access flag fault" ("" for none): what counterexamples and errors say.
inline std::string_view access_fault_text(const AccessDecision& a) {
  switch (a.fault) {
    case Fault::None: return "";
    case Fault::Translation: return "translation fault";
    case Fault::AccessFlag: return "access flag fault";
    case Fault::Permission: return a.read_only ? "permission fault (read-only)" : "permission fault";
  }
  return "";
}

// FEAT_HAFDBS: the word the hardware's compare-exchange writes over `old`:
// AF, and for a store through a DBM entry RDONLY cleared.
inline Pte hafdbs_updated(Pte old, bool needs_dirty) {
  Pte v = pte_mkyoung(old);
  if (needs_dirty && pte_write(old)) v = clear_pte_bit(v, bits::kRdonly);
  return v;
}

// The descriptor the TLB caches after that update of the walked `d`.
inline Pte hafdbs_cached(Pte d, bool needs_dirty) {
  Pte cached = pte_mkyoung(d);
  if (needs_dirty) cached = clear_pte_bit(cached, bits::kRdonly);
  return cached;
}

// The TLB entry the walk `w` fills, caching `cached`.
inline TlbEntry tlb_entry_from_walk(const WalkResult& w, std::uint16_t asid, Pte cached) {
  TlbEntry e;
  e.asid = asid;
  e.va = w.va_base;
  e.size_shift = w.size_shift;
  e.level = static_cast<std::uint8_t>(w.level);
  e.cont = pte_cont(w.desc);
  e.pa = w.pa_base;
  e.desc = cached;
  return e;
}

}  // namespace contpte
