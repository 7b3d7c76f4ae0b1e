// explore/hw_branch.cpp — hardware branches: another CPU's access as a
// small state machine (walk; FEAT_HAFDBS AF/DBM compare-exchange; TLB
// fill; fault, waiting for the page-table lock, retry), and device walkers
// without hardware A/D updates (`dev`), whose fault handler runs
// handle_pte_fault's path (mm/pte_fault.h) as steps.
//
// Promises: the fault decision is hw/access_rules.h's, as for the MMU; an
// access that can never complete is an error of the run (unmapped); a dev
// access faulting again for the reason its handler just handled, with the
// PTE as the handler left it, is the checker's rule fault_loop.
#include "explore/explorer_impl.h"

#include <stdexcept>

#include "mm/pte_fault.h"

namespace contpte {

Footprint Explorer::Impl::hw_footprint(unsigned b, StepKind k) {
  const ExploreBranch& s = spec(b);
  Footprint f{k};
  auto slot = slot_of(s.va);
  f.slot = slot ? slot->ptr() : nullptr;
  std::tie(f.va_lo, f.va_hi) = block_of(s.va.val);
  // A dev walk decides on its word alone (its handler always runs); a CPU's
  // retry may decide between waiting again and `unmapped` on the lock.
  f.lock_sensitive = k == StepKind::HwWalk && runs[b].retried && !s.device;
  return f;
}

void Explorer::Impl::hw_step(unsigned b) {
  BranchRun& r = runs[b];
  const ExploreBranch& s = spec(b);
  StepRecord rec;
  rec.va = s.va.val;
  const Footprint f = r.pending;
  switch (r.hw) {
    case HwPhase::Walk: hw_walk(b, rec); break;
    case HwPhase::Update: hw_update(b, rec); break;
    case HwPhase::FaultWait:
      if (r.to_handler) return dev_fault_handler(b);  // records its own steps
      rec.note = "fault handler took the page-table lock; the access retries";
      r.retried = true;
      r.hw = HwPhase::Walk;
      break;
    case HwPhase::Handler: dev_handler_done(b, rec); break;
    case HwPhase::Done: throw std::logic_error("explorer: finished hw branch stepped");
  }
  switch (r.hw) {
    case HwPhase::Walk: r.pending = hw_footprint(b, StepKind::HwWalk); break;
    case HwPhase::Update: r.pending = hw_footprint(b, StepKind::HwUpdate); break;
    case HwPhase::FaultWait:
      r.pending = Footprint{StepKind::FaultRetry};
      // A handler that runs as steps holds the lock until its Release.
      r.pending.lock_instant = !r.to_handler && setup.commute_instant_locks;
      break;
    case HwPhase::Handler: r.pending = Footprint{StepKind::Release}; break;
    case HwPhase::Done: r.done = true; break;
  }
  record(b, f, std::move(rec));
  after_step();
}

void Explorer::Impl::hw_walk(unsigned b, StepRecord& rec) {
  BranchRun& r = runs[b];
  const ExploreBranch& s = spec(b);
  // The block a CONT leaf belongs to is checked in every state it changes
  // (check_block_of), so the walk itself depends on its own word only.
  const WalkResult w = walker.walk(setup.pt->root(), setup.asid, s.va, nullptr);
  rec.before = rec.after = w.desc;
  const Pte d = w.desc;
  const bool hafdbs = setup.features.hafdbs && !s.device;  // a device walker never updates A/D
  const bool needs_dirty = needs_dirty_update(d, s.access);
  const AccessFault af = access_fault(w.valid, d, s.access, hafdbs);
  if (af != AccessFault::None && handler_fault(b, af, d)) return dev_fault(b, rec, af);
  const std::string fault = af == AccessFault::None ? std::string() : std::string(access_fault_name(af));
  if (!fault.empty()) {
    const bool unmapped = !w.valid;
    if (unmapped && s.no_vma) {
      unmapped_access(b, rec, fmt::format("no VMA covers {:#x} (SIGSEGV)", s.va.val));
    } else if (!r.retried || (unmapped && lock_holder >= 0)) {
      // The handler waits for the page-table lock; a PTE cleared by a
      // statement in progress (break-before-make) is valid again after it.
      r.hw = HwPhase::FaultWait;
      rec.note = fault + ": the handler waits for the page-table lock";
    } else if (unmapped) {
      unmapped_access(b, rec,
                      fmt::format("no valid PTE maps {:#x} after its fault was handled and no statement is "
                                  "in progress",
                                  s.va.val));
    } else {
      r.hw = HwPhase::Done;
      r.end = BranchEnd::Faulted;
      r.outcome = "faulted: " + fault;
      rec.note = fault + " again: the access does not complete";
    }
    return;
  }
  if (needs_hafdbs_update(d, s.access)) {
    r.hw = HwPhase::Update;
    r.expected = d;
    r.update_slot = w.slot;
    r.needs_dirty = needs_dirty;
    rec.note = needs_dirty ? "needs the dirty update" : "needs the access flag";
    return;
  }
  fill_tlb(b, w, d);
  r.hw = HwPhase::Done;
  r.outcome = "done";
  rec.note = "TLB fill; the access completes";
}

// An access that can never complete: an error of the run (a top-level
// access would be the process's SIGSEGV), in every interleaving it occurs.
void Explorer::Impl::unmapped_access(unsigned b, StepRecord& rec, const std::string& why) {
  runs[b].hw = HwPhase::Done;
  rec.note = why + ": the access cannot complete";
  unmapped(b, why);
}

void Explorer::Impl::unmapped(unsigned b, const std::string& why) {
  BranchRun& r = runs[b];
  r.end = BranchEnd::Unmapped;
  r.outcome = "unmapped: " + why;
  const std::string what = fmt::format("{}: {}; the access cannot complete", spec(b).label, why);
  if (kept) kept->problems.push_back({spec(b).line, what});
  fail("unmapped", fmt::format("unmapped: {}:{}: {}", setup.source, spec(b).line, what), spec(b).va.val);
}

// Whether fault `af` on the walked word `d` goes to the stepped handler
// (handle_pte_fault's path): every fault of a device walker; for another
// CPU on a core without FEAT_HAFDBS, the faults hardware would otherwise
// have handled itself — AF clear, and a write to a writable (DBM) entry
// that is still PTE_RDONLY (clean). Its other faults (no valid PTE, no
// write permission) wait for the lock and retry as on any core.
bool Explorer::Impl::handler_fault(unsigned b, AccessFault af, Pte d) const {
  if (spec(b).device) return true;
  if (setup.features.hafdbs || runs[b].gave_up) return false;
  return hafdbs_would_handle(af, d);
}

// A dev access (or a CPU's without FEAT_HAFDBS, handler_fault) faulted
// (`af`) on the word its walk read. The reason its
// handler just handled, with the PTE still as the handler left it
// (nobody undid a fix in between): a walker that reads each descriptor
// alone would fault forever (rule fault_loop). Anything else goes to the
// handler, which waits for the page-table lock.
void Explorer::Impl::dev_fault(unsigned b, StepRecord& rec, AccessFault af) {
  BranchRun& r = runs[b];
  const std::string fault(access_fault_name(af));
  if (af == r.handled && r.left_faulting) {
    r.hw = HwPhase::Done;
    r.end = BranchEnd::Faulted;
    r.outcome = "fault_loop: " + fault;
    rec.note = fault + " again, as its handler left the PTE: it would fault forever";
    report_fault_loop(b, fault, rec.before);
    return;
  }
  r.hw = HwPhase::FaultWait;
  r.to_handler = true;
  r.handled = af;
  rec.note = fault + ": the handler waits for the page-table lock";
}

// A finding of the checker (claimable by `expect violation fault_loop`);
// with checking off (--no-check), not reported: the access just ends.
void Explorer::Impl::report_fault_loop(unsigned b, const std::string& fault, Pte pte) {
  const ExploreBranch& s = spec(b);
  if (!chk) return;
  chk->report_fault_loop(s.va, s.line, pte,
                         fmt::format("{} faulted again ({}) after its fault handler (ptep_set_access_flags) "
                                     "left the PTE still faulting for it: a walker without hardware A/D "
                                     "updates would fault forever",
                                     s.label, fault));
}

// The handler, under the page-table lock: handle_pte_fault's path
// (mm/pte_fault.h) through this branch's StepEnv, each memory operation
// a step that other branches may interleave with, as for an engine
// statement. A fault it cannot handle (no valid PTE, a write to a PTE
// without write permission) is an error of the run.
void Explorer::Impl::dev_fault_handler(unsigned b) {
  BranchRun& r = runs[b];
  const ExploreBranch& s = spec(b);
  lock_holder = static_cast<int>(b);
  r.retried = true;
  StepRecord rec;
  rec.va = s.va.val;
  rec.note = "fault handler takes the page-table lock (handle_pte_fault)";
  record(b, r.pending, std::move(rec));
  after_step();
  r.to_handler = false;
  if (s.segv) {
    // handle_mm_fault's access_error, before any PTE is looked at.
    r.handler_error = true;
    unmapped(b, fmt::format("{}; SIGSEGV: the mapping does not permit it", access_fault_name(r.handled)));
    r.hw = HwPhase::Handler;
    r.pending = Footprint{StepKind::Release};
    return;
  }
  // Inside a VMA this is handle_mm_fault's own path for a present PTE the
  // VMA permits (the set-up ruled out the allocating and copy-on-write
  // paths); outside every VMA the PTE-level handler. Both build the entry
  // from ptep_get under the lock and call ptep_set_access_flags.
  const auto slot = slot_of(s.va);
  const auto why = slot ? handle_pte_level_fault(r.env, VirtAddr{align_down(s.va.val, geo.page_size())}, *slot,
                                                 s.access == MemAccess::Write)
                        : std::optional<std::string_view>("no page table maps it");
  // A CPU's handler that finds the PTE not valid or not writable for a
  // write gives up (Linux: pte_same fails under the lock, or the fault is
  // do_wp_page's, which a PTE-level scenario has no VMA for) and the access
  // retries; its faults are then a CPU's ordinary ones (a second one ends
  // the access as faulted), never a fault_loop.
  r.gave_up = why.has_value() && !s.device;
  r.handler_error = why.has_value() && s.device;
  if (r.handler_error) unmapped(b, fmt::format("{}; {}", access_fault_name(r.handled), *why));
  r.hw = HwPhase::Handler;
  r.pending = Footprint{StepKind::Release};
}

// The handler drops the lock (the end of an operation, as for an engine
// statement); the access retries unless the fault could not be handled.
void Explorer::Impl::dev_handler_done(unsigned b, StepRecord& rec) {
  BranchRun& r = runs[b];
  const ExploreBranch& s = spec(b);
  settle_and_check_tlbs();
  lock_holder = -1;
  const WalkResult w = walker.walk(setup.pt->root(), setup.asid, s.va, nullptr);
  r.left_faulting = access_fault(w.valid, w.desc, s.access, false) == r.handled;
  if (r.handler_error) {
    rec.note = "drops the page-table lock; the fault could not be handled";
    r.hw = HwPhase::Done;
    return;
  }
  rec.note = r.left_faulting ? "fault handler done, drops the page-table lock; the PTE still faults; retries"
                             : "fault handler done, drops the page-table lock; the access retries";
  r.hw = HwPhase::Walk;
}

// FEAT_HAFDBS: AF and (for a store through a DBM entry) !RDONLY, by a
// compare-exchange on the word the walk read; if software changed it in
// between, the walk starts again.
void Explorer::Impl::hw_update(unsigned b, StepRecord& rec) {
  BranchRun& r = runs[b];
  const HafdbsUpdate u =
      hafdbs_update(r.update_slot, r.expected, r.needs_dirty, [&](Pte* word, Pte v) { write_word(word, v); });
  rec.before = u.before;
  rec.after = u.after;
  if (!u.exchanged) {
    rec.note = "compare-exchange failed: the PTE changed; walks again";
    r.hw = HwPhase::Walk;
    return;
  }
  const Pte v = u.after;
  rec.wrote = u.wrote();
  rec.note = r.needs_dirty ? "sets dirty (and AF); TLB fill; the write completes"
                           : "sets AF; TLB fill; the access completes";
  const WalkResult w = walker.walk(setup.pt->root(), setup.asid, spec(b).va, nullptr);
  fill_tlb(b, w, v);
  r.hw = HwPhase::Done;
  r.outcome = "done";
}

void Explorer::Impl::fill_tlb(unsigned b, const WalkResult& w, Pte cached) {
  runs[b].tlb = tlb_entry_from_walk(w, setup.asid, cached, geo.page_shift);
}

}  // namespace contpte
