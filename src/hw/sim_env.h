// hw/sim_env.h — the engine's Env over simulated memory.
//
// Owns: turning each engine PTE access into an operation on PhysMem and a
// notification to observers (the trace printer, the conformance checker's
// feed), and each TLB flush request into one TlbiRequest that reaches the
// TLBs (the MMU) by one route, invalidate_tlb().
// Must not know: mm policy, scenario syntax.
//
// Single-threaded: the "atomic" operations are atomic because nothing else
// runs between the read and the write here. The explorer supplies its own
// Env that yields at each of these calls.
#pragma once

#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/env.h"
#include "engine/external.h"
#include "hw/page_table.h"
#include "hw/phys_mem.h"

namespace contpte {

enum class PteAccessOp : std::uint8_t { Load, Store, Xchg, Cmpxchg };
enum class TlbiKind : std::uint8_t { Page, Range, Mm };

struct PteAccess {
  PteAccessOp op;
  PteSlot slot;
  Pte before;   // the word found
  Pte after;    // the word left (== before for a load or a failed cmpxchg)
  Pte expected; // cmpxchg only
};

struct TlbiRequest {
  TlbiKind kind;
  std::uint16_t asid;      // the address space the flush is for
  VirtAddr start;
  std::uint64_t nr_pages;  // 0 for Mm
  bool sync;
  // false: the walk caches too (TLBI VAE1IS rather than VALE1IS), as
  // mmu_gather asks once it has freed page tables.
  bool last_level = true;
};

// Something that wants to see every PTE access and flush request.
class SimObserver {
 public:
  virtual ~SimObserver() = default;
  virtual void on_pte_access(const PteAccess&) {}
  virtual void on_tlbi(const TlbiRequest&) {}
};

class SimEnv {
 public:
  SimEnv(PhysMem& mem, PageTable& pt, Features features, std::uint16_t asid = 1)
      : mem_(mem), pt_(pt), features_(features), asid_(asid) {}

  // ---- the Env interface (engine/env.h) ----
  Pte read(PteSlot s) {
    Pte v = *s.ptr();
    if (!observers_.empty()) notify({PteAccessOp::Load, s, v, v, {}});
    return v;
  }
  void write(PteSlot s, Pte v) {
    Pte old = *s.ptr();
    *s.ptr() = v;
    if (!observers_.empty()) notify({PteAccessOp::Store, s, old, v, {}});
  }
  Pte xchg(PteSlot s, Pte v) {
    Pte old = *s.ptr();
    *s.ptr() = v;
    if (!observers_.empty()) notify({PteAccessOp::Xchg, s, old, v, {}});
    return old;
  }
  Pte cmpxchg(PteSlot s, Pte expected, Pte v) {
    Pte old = *s.ptr();
    if (old == expected) *s.ptr() = v;
    if (!observers_.empty()) notify({PteAccessOp::Cmpxchg, s, old, *s.ptr(), expected});
    return old;
  }
  void flush_tlb_range(TlbFlush f) { notify_tlbi({TlbiKind::Range, asid_, f.start, f.nr_pages, f.sync}); }
  void flush_tlb_page(VirtAddr a, bool sync) { notify_tlbi({TlbiKind::Page, asid_, a, 1, sync}); }
  void flush_tlb_mm() { notify_tlbi({TlbiKind::Mm, asid_, VirtAddr{}, 0, true}); }
  FolioInfo folio_of(Pfn pfn) const { return mem_.folio_of(pfn); }
  const Features& features() const { return features_; }
  const Geometry& geometry() const { return mem_.geometry(); }
  bool mm_is_user() const { return true; }
  EngineCounters& counters() { return counters_; }
  // Used by an engine built from a Linux tree (engine/external.h) only.
  bool is_pte_word(const Pte* p) const { return mem_.is_table_word(p); }
  void engine_finding(EngineFinding f) { findings_.push_back(std::move(f)); }
  void engine_fallback(const char* name) { fallbacks_used_.insert(name); }

  // ---- simulator side ----
  // Findings of foreign engine code since the last take (the runner turns
  // them into violations at the statement that made them).
  std::vector<EngineFinding> take_findings() { return std::exchange(findings_, {}); }
  const std::set<std::string>& fallbacks_used() const { return fallbacks_used_; }
  // __flush_tlb_range with last_level = false: the TLB entries of the range
  // and the walk-cache entries that lead to it (tlb_finish_mmu after
  // free_pgtables). Not part of the engine's Env: the engine frees no table.
  void flush_tlb_range_tables(TlbFlush f) {
    notify_tlbi({TlbiKind::Range, asid_, f.start, f.nr_pages, f.sync, false});
  }
  const EngineCounters& counters() const { return counters_; }
  PageTable& page_table() { return pt_; }
  std::uint16_t asid() const { return asid_; }
  PhysMem& memory() { return mem_; }
  void add_observer(SimObserver* o) { observers_.push_back(o); }
  void remove_observer(SimObserver* o) { std::erase(observers_, o); }
  // The TLBs this address space's flushes invalidate (the MMU); null: none.
  void set_tlb(SimObserver* tlb) { tlb_ = tlb; }

  // The one route by which a TLB invalidation reaches the TLBs. The Env's
  // own flushes (the engine's, the memory manager's) come here first, then
  // the observers see them; a core-mm caller's flush after a PTE-level
  // call comes here directly, unseen by observers (the trace shows it as
  // the caller's step). The explorer's flushes come here too, through its
  // own SimEnv, whose TLBs are one execution's (explore/explorer_impl.h,
  // ExecutionTlbs), which in the kept execution hands each on to the
  // machine's Env here.
  void invalidate_tlb(const TlbiRequest& r) {
    if (tlb_) tlb_->on_tlbi(r);
  }

 private:
  void notify(const PteAccess& a) {
    for (auto* o : observers_) o->on_pte_access(a);
  }
  void notify_tlbi(const TlbiRequest& r) {
    invalidate_tlb(r);
    for (auto* o : observers_) o->on_tlbi(r);
  }

  PhysMem& mem_;
  PageTable& pt_;
  Features features_;
  std::uint16_t asid_;
  EngineCounters counters_;
  std::vector<SimObserver*> observers_;
  std::vector<EngineFinding> findings_;
  std::set<std::string> fallbacks_used_;
  SimObserver* tlb_ = nullptr;
};

static_assert(Env<SimEnv>);

}  // namespace contpte
