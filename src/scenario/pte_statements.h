// scenario/pte_statements.h — a PTE-level scenario statement as the arch
// call plus what its core-mm caller does around it.
//
// Owns: which engine function each PTE-level statement calls, the TLB flush
// its caller issues after clearing, downgrading or cleaning (counted as
// caller_tlbi, apart from the engine's own), and which pages' access/dirty
// information the caller consumed (returned), threw away (discard) or
// cleared on purpose (clean), for the checker. Aging is not flushed, as in
// Linux.
// Must not know: how statements are scheduled. The same code runs in the
// sequential runner (SimEnv) and in an explorer branch (StepEnv), so what
// `contpte run` and `contpte explore` execute is one thing.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

#include "engine/pgtable.h"
#include "hw/checker.h"
#include "scenario/scenario.h"

namespace contpte {

template <Env E>
struct PteCaller {
  E& env;
  const Geometry& geo;
  Checker* chk;  // null: checking off
  std::uint16_t asid;
  std::function<PteSlot(VirtAddr)> slot;
  std::function<Pte(VirtAddr)> stored;                 // the word, outside the engine
  std::function<void(VirtAddr, std::uint64_t)> flush;  // the caller's flush_tlb_page/range

  void returned(VirtAddr va, std::uint64_t nr, Pte v) {
    if (chk) chk->returned(asid, va.val, nr, v);
  }
  void discard(VirtAddr va, std::uint64_t nr) {
    if (chk) chk->discard(asid, va.val, nr);
  }
  void clean(std::uint64_t start, std::uint64_t nr, bool dirty, bool young) {
    if (chk) chk->clean(asid, start, nr, dirty, young);
  }

  // The range a block-wide A/D operation really covers (first VA, pages):
  // the engine's widen_to_blocks (engine/contpte.h) where contpte is on.
  std::pair<std::uint64_t, std::uint64_t> widened(VirtAddr va, unsigned nr) {
    VaRange r{va.val, va.val + std::uint64_t{nr} * geo.page_size()};
    if (env.features().variant != Variant::Off)
      r = widen_to_blocks(geo, r, pte_cont(stored(va)), pte_cont(stored(VirtAddr{r.end - geo.page_size()})));
    return {r.start, (r.end - r.start) >> geo.page_shift};
  }

  void op(const PteOp& o) {
    const PteSlot p = slot(o.addr);
    switch (o.kind) {
      case PteOpKind::PteClear:
        pte_clear(env, o.addr, p);
        discard(o.addr, 1);
        flush(o.addr, 1);
        break;
      case PteOpKind::PtepGetAndClear:
        returned(o.addr, 1, ptep_get_and_clear(env, o.addr, p));
        flush(o.addr, 1);
        break;
      case PteOpKind::PtepSetWrprotect:
        ptep_set_wrprotect(env, o.addr, p);
        flush(o.addr, 1);
        break;
      case PteOpKind::PtepTestAndClearYoung:
      case PteOpKind::PtepClearFlushYoung: {
        // Block-wide on a contiguous block (contpte ages all of it).
        auto [start, nr] = widened(o.addr, 1);
        if (o.kind == PteOpKind::PtepTestAndClearYoung)
          ptep_test_and_clear_young(env, o.addr, p);
        else
          ptep_clear_flush_young(env, o.addr, p);
        clean(start, nr, /*dirty=*/false, /*young=*/true);
        break;
      }
    }
  }

  void batch(const PteBatch& b) {
    const PteSlot p = slot(b.addr);
    switch (b.kind) {
      case PteBatchKind::GetAndClearFullPtes:
        returned(b.addr, b.nr, get_and_clear_full_ptes(env, b.addr, p, b.nr, b.full));
        flush(b.addr, b.nr);
        break;
      case PteBatchKind::ClearFullPtes:
        clear_full_ptes(env, b.addr, p, b.nr, b.full);
        discard(b.addr, b.nr);
        flush(b.addr, b.nr);
        break;
      case PteBatchKind::WrprotectPtes:
        wrprotect_ptes(env, b.addr, p, b.nr);
        flush(b.addr, b.nr);
        break;
      case PteBatchKind::ClearYoungDirtyPtes: {
        auto [start, nr] = widened(b.addr, b.nr);
        unsigned flags = (b.young ? CYDP_CLEAR_YOUNG : 0u) | (b.dirty ? CYDP_CLEAR_DIRTY : 0u);
        clear_young_dirty_ptes(env, b.addr, p, b.nr, flags);
        clean(start, nr, b.dirty, b.young);
        if (b.dirty) flush(b.addr, b.nr);
        break;
      }
    }
  }

  // Pre-6.17 change_pte_range: one start/commit per present PTE, then the
  // flush of the range (a protection change may downgrade).
  void modify_prot(const ModifyProt& m) {
    const PteSlot first = slot(m.addr);
    for (unsigned i = 0; i < m.nr; ++i) {
      const VirtAddr va = m.addr + std::uint64_t{i} * geo.page_size();
      const PteSlot p = first + i;
      if (!pte_present(ptep_get(env, p))) continue;
      Pte old = ptep_modify_prot_start(env, va, p);
      returned(va, 1, old);
      ptep_modify_prot_commit(env, va, p, old, pte_modify(old, pgprot_of(m.prot)));
    }
    flush(m.addr, m.nr);
  }

  // `make_entry` builds the statement's entry for the PFN the PTE holds.
  template <class MakeEntry>
  void set_access_flags(const SetAccessFlags& s, MakeEntry&& make_entry) {
    const PteSlot p = slot(s.addr);
    const Pfn pfn = pte_pfn(ptep_get(env, p), geo.page_shift);
    ptep_set_access_flags(env, s.addr, p, make_entry(pfn), s.dirty);
  }

  void set(const SetPtes& s, Pte first) { set_ptes(env, s.addr, slot(s.addr), first, s.nr); }

  // A buggy caller: the word is written as is, no engine, no TLBI.
  void raw_set(const RawSet& r, Pte v) { env.write(slot(r.addr), v); }
};

}  // namespace contpte
