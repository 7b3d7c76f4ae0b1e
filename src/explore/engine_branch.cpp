// explore/engine_branch.cpp — engine branches: the engine's code runs
// inline on the explorer's stack, and each Env operation (PTE load, store,
// exchange, compare-exchange, TLB invalidation) is a scheduling point where
// other branches' steps may run first.
//
// Promises: a statement holds the page-table lock from its first step to
// its Release step (at most one engine branch is inside its statement); a
// TLB invalidation drops the matching entries of every branch's TLB and, in
// a kept run, is handed back for the main CPU's TLBs; a lockless reader's
// Env calls replay its logged loads and stop it at its next new one.
#include "explore/explorer_impl.h"

#include <stdexcept>

namespace contpte {

Pte Explorer::Impl::env_op(unsigned b, const MemOp& op) {
  BranchRun& r = runs[b];
  if (spec(b).kind == ExploreBranch::Kind::Reader) {
    if (op.kind != StepKind::Load)
      throw std::logic_error("explorer: a lockless reader wrote a PTE");
    if (r.replay_idx < r.log.size()) return r.log[r.replay_idx++];
    r.pending = Footprint{StepKind::Load, op.slot};
    throw ReaderStopped{};
  }
  r.pending = Footprint{op.kind, op.slot};
  const bool at_once = lock_private(b, op.slot);
  if (!at_once) wait_turn(b);
  StepRecord rec;
  rec.va = va_of(op.slot);
  rec.before = *op.slot;
  Pte ret = rec.before;
  switch (op.kind) {
    case StepKind::Load: break;
    case StepKind::Store:
    case StepKind::Xchg: write_word(op.slot, op.value); break;
    case StepKind::Cmpxchg:
      if (rec.before == op.expected) write_word(op.slot, op.value);
      else rec.note = "compare-exchange failed";
      break;
    default: throw std::logic_error("explorer: bad memory step");
  }
  rec.after = *op.slot;
  rec.wrote = rec.after != rec.before;
  if (at_once) record_at_once(b, r.pending, std::move(rec));
  else record(b, r.pending, std::move(rec));
  after_step();
  return ret;
}

// Runs other branches' steps until the schedule gives `b` the next one.
void Explorer::Impl::wait_turn(unsigned b) {
  for (;;) {
    const int c = pick();
    if (c < 0) throw std::logic_error("explorer: engine branch not schedulable");
    if (static_cast<unsigned>(c) == b) return;
    step(static_cast<unsigned>(c));
  }
}

void Explorer::Impl::tlbi(unsigned b, TlbiRequest req) {
  BranchRun& r = runs[b];
  Footprint f{StepKind::Tlbi};
  std::tie(f.va_lo, f.va_hi) = tlbi_range(req);
  r.pending = f;
  wait_turn(b);
  view_env.invalidate_tlb(req);  // the one route: ExecutionTlbs::on_tlbi
  StepRecord rec;
  rec.va = f.va_lo;
  rec.nr = req.kind == TlbiKind::Mm ? 0 : req.nr_pages;
  rec.note = req.kind == TlbiKind::Mm ? "flush_tlb_mm" : req.kind == TlbiKind::Page ? "by VA" : "range";
  record(b, f, std::move(rec));
  after_step();
}

// The VAs an invalidation covers, [lo, hi): all of them for flush_tlb_mm.
std::pair<std::uint64_t, std::uint64_t> Explorer::Impl::tlbi_range(const TlbiRequest& req) const {
  if (req.kind == TlbiKind::Mm) return {0, ~std::uint64_t{0}};
  return {req.start.val, req.start.val + (req.nr_pages << geo.page_shift)};
}

void Explorer::Impl::ExecutionTlbs::on_tlbi(const TlbiRequest& r) {
  const auto [lo, hi] = x.tlbi_range(r);
  for (BranchRun& o : x.runs)
    if (o.tlb && o.tlb->va < hi && lo < o.tlb->va + o.tlb->size()) o.tlb.reset();
  if (machine) machine->invalidate_tlb(r);
}

void Explorer::Impl::lockless_retry(unsigned b) {
  BranchRun& r = runs[b];
  if (spec(b).kind != ExploreBranch::Kind::Reader) return;
  if (r.replay_idx < r.log.size()) {
    ++r.replay_idx;
    return;
  }
  r.pending = Footprint{StepKind::ReaderRetry};
  std::tie(r.pending.read_lo, r.pending.read_hi) = block_words(spec(b).slot.ptr());
  throw ReaderStopped{};
}

void Explorer::Impl::run_engine(unsigned b) {
  BranchRun& r = runs[b];
  lock_holder = static_cast<int>(b);
  r.phase = Phase::Running;
  StepRecord rec;
  rec.note = "takes the page-table lock";
  record(b, r.pending, std::move(rec));
  spec(b).body(r.env);
  r.phase = Phase::Finished;
  r.pending = Footprint{StepKind::Release};
}

void Explorer::Impl::release_engine(unsigned b) {
  BranchRun& r = runs[b];
  settle_and_check_tlbs();
  lock_holder = -1;
  r.phase = Phase::Done;
  r.done = true;
  StepRecord rec;
  rec.note = "statement done, drops the page-table lock";
  record(b, r.pending, std::move(rec));
  after_step();
}

}  // namespace contpte
