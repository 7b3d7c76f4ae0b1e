// explore/explorer.cpp — the explorer's public face: the names of step
// kinds and branch ends, StepEnv (the engine's Env inside the explorer,
// each call handed to Explorer::Impl) and Explorer's forwarding members.
// The explorer itself is split by area; explore/explorer_impl.h lists
// which file holds what.
#include "explore/explorer.h"

#include "explore/explorer_impl.h"

namespace contpte {

std::string_view step_kind_name(StepKind k) {
  switch (k) {
    case StepKind::Acquire: return "lock";
    case StepKind::Release: return "unlock";
    case StepKind::Load: return "load";
    case StepKind::Store: return "store";
    case StepKind::Xchg: return "xchg";
    case StepKind::Cmpxchg: return "cmpxchg";
    case StepKind::Tlbi: return "tlbi";
    case StepKind::HwWalk: return "walk";
    case StepKind::HwUpdate: return "hw-cmpxchg";
    case StepKind::FaultRetry: return "fault";
    case StepKind::ReaderRetry: return "retry";
  }
  return "?";
}

std::string_view branch_end_name(BranchEnd e) {
  switch (e) {
    case BranchEnd::Completed: return "completed";
    case BranchEnd::Faulted: return "faulted";
    case BranchEnd::Unmapped: return "unmapped";
    case BranchEnd::Stuck: return "never finished";
  }
  return "?";
}

// ---- StepEnv -----------------------------------------------------------------

Pte StepEnv::read(PteSlot s) { return x_->impl_->env_op(branch_, {StepKind::Load, s.ptr(), {}, {}}); }
void StepEnv::write(PteSlot s, Pte v) { x_->impl_->env_op(branch_, {StepKind::Store, s.ptr(), v, {}}); }
Pte StepEnv::xchg(PteSlot s, Pte v) { return x_->impl_->env_op(branch_, {StepKind::Xchg, s.ptr(), v, {}}); }
Pte StepEnv::cmpxchg(PteSlot s, Pte expected, Pte v) {
  return x_->impl_->env_op(branch_, {StepKind::Cmpxchg, s.ptr(), v, expected});
}
void StepEnv::flush_tlb_range(TlbFlush f) {
  x_->impl_->tlbi(branch_, {TlbiKind::Range, asid(), f.start, f.nr_pages, f.sync});
}
void StepEnv::flush_tlb_page(VirtAddr a, bool sync) {
  x_->impl_->tlbi(branch_, {TlbiKind::Page, asid(), a, 1, sync});
}
void StepEnv::flush_tlb_mm() { x_->impl_->tlbi(branch_, {TlbiKind::Mm, asid(), VirtAddr{}, 0, true}); }
FolioInfo StepEnv::folio_of(Pfn pfn) const { return x_->impl_->setup.mem->folio_of(pfn); }
const Features& StepEnv::features() const { return x_->impl_->setup.features; }
const Geometry& StepEnv::geometry() const { return x_->impl_->geo; }
void StepEnv::lockless_retry() { x_->impl_->lockless_retry(branch_); }
EngineWhere StepEnv::enter_function(std::string_view fn) {
  EngineWhere& w = x_->impl_->where[branch_];
  const EngineWhere prev = w;
  w = EngineWhere{fn, prev.function};
  return prev;
}
void StepEnv::leave_function(EngineWhere previous) { x_->impl_->where[branch_] = previous; }
bool StepEnv::is_pte_word(const Pte* p) const { return x_->impl_->setup.mem->is_table_word(p); }
void StepEnv::engine_finding(EngineFinding f) {
  if (Checker* c = checker()) c->report_engine(f);
}
void StepEnv::caller_flush(VirtAddr va, std::uint64_t nr) {
  EngineScope<StepEnv> scope(*this, nr == 1 ? "flush_tlb_page (core mm)" : "flush_tlb_range (core mm)");
  ++caller_tlbi_;
  x_->impl_->tlbi(branch_, {nr == 1 ? TlbiKind::Page : TlbiKind::Range, asid(), va, nr, true});
}
Checker* StepEnv::checker() const { return x_->impl_->chk; }
std::uint16_t StepEnv::asid() const { return x_->impl_->setup.asid; }

// ---- Explorer ----------------------------------------------------------------

Explorer::Explorer(ExploreSetup setup) : impl_(std::make_unique<Impl>(*this, std::move(setup))) {}
Explorer::~Explorer() = default;
ExploreResult Explorer::explore(std::uint64_t max) { return impl_->explore(max); }
KeptRun Explorer::run_seeded(std::uint64_t seed, Checker* live, SimEnv* machine) {
  return impl_->run_seeded(seed, live, machine);
}

}  // namespace contpte
