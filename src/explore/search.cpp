// explore/search.cpp — the search over interleavings: stateless model
// checking with dynamic partial-order reduction (Flanagan & Godefroid) and
// sleep sets, or one seeded order.
//
// Promises: every execution starts again from the state before the block
// (PTE writes undone from the log, the checker and the per-branch state
// fresh copies); executions are deterministic given the schedule, so the
// stack of scheduling points replays a prefix and tries a new choice at its
// end; each step is recorded with its footprint and a vector clock (the
// happens-before order the reduction and the reader observers use).
// explore() visits every interleaving up to equivalence (at most `max`);
// run_seeded() keeps one, chosen by the seed.
#include "explore/explorer_impl.h"

#include <chrono>
#include <stdexcept>

namespace contpte {

void Explorer::Impl::reset_world() {
  for (auto it = undo.rbegin(); it != undo.rend(); ++it) *it->first = it->second;
  undo.clear();
}

void Explorer::Impl::start_execution() {
  runs.clear();
  runs.reserve(nbranches());
  for (unsigned b = 0; b < nbranches(); ++b) runs.emplace_back(x, b);
  steps.clear();
  fps.clear();
  clocks.clear();
  step_node.clear();
  clean_blocks.clear();
  depth = 0;
  lock_holder = -1;
  exec_failures.clear();
  obs_words.clear();
  dep.clear();
  for (auto& l : latest_dep) l.valid = false;
  if (mode == Mode::Explore) {
    chk_copy.reset();
    if (setup.checker) chk_copy.emplace(*setup.checker);
    chk = chk_copy ? &*chk_copy : nullptr;
  }
  violations_seen = chk ? chk->violations().size() : 0;
  for (unsigned b = 0; b < nbranches(); ++b) init_branch(b);
}

void Explorer::Impl::init_branch(unsigned b) {
  BranchRun& r = runs[b];
  switch (spec(b).kind) {
    case ExploreBranch::Kind::Engine: r.pending = {StepKind::Acquire}; break;
    case ExploreBranch::Kind::Hw: r.pending = hw_footprint(b, StepKind::HwWalk); break;
    case ExploreBranch::Kind::Reader:
      if (observing()) r.done = true;  // not scheduled: observed at the end (observe_reader)
      else replay_reader(b);
      break;
  }
}

bool Explorer::Impl::enabled(unsigned b) const {
  const BranchRun& r = runs[b];
  if (r.done) return false;
  switch (r.pending.kind) {
    case StepKind::Acquire:
    case StepKind::FaultRetry: return lock_holder < 0;
    case StepKind::ReaderRetry: return read_word_changed_since(b, r.attempt_start);
    default: return true;
  }
}

// A reader that starts again while none of the words it read in this
// attempt has changed since would read the same values and fail the same
// way: it waits until one of them is written (this is what makes spinning
// readers finite to explore, and loses no behaviour).
bool Explorer::Impl::read_word_changed_since(unsigned b, std::size_t from) const {
  std::vector<const Pte*> read;
  for (std::size_t i = from; i < steps.size(); ++i) {
    if (steps[i].branch == b && fps[i].kind == StepKind::Load) read.push_back(fps[i].slot);
    else if (steps[i].branch != b && steps[i].wrote &&
             std::find(read.begin(), read.end(), fps[i].slot) != read.end())
      return true;
  }
  return false;
}

// The scheduling point: which branch takes the next step.
int Explorer::Impl::pick() {
  if (depth < stack.size()) {  // replaying the prefix of an earlier execution
    Node& n = stack[depth];
    // Executions are deterministic given the schedule; a branch that
    // cannot take its step here would mean they are not.
    if (!enabled(n.chosen)) throw std::logic_error("explorer: replayed schedule diverged");
    n.done |= bit(n.chosen);
    ++depth;
    return static_cast<int>(n.chosen);
  }
  Node n;
  if (!spare_pending.empty()) {  // a popped node's buffer: no allocation per scheduling point
    n.pending = std::move(spare_pending.back());
    spare_pending.pop_back();
  }
  n.pending.resize(nbranches());
  for (unsigned b = 0; b < nbranches(); ++b) {
    n.pending[b] = runs[b].pending;
    if (enabled(b)) n.enabled |= bit(b);
  }
  if (depth > 0 && setup.reduce) {
    const Node& p = stack[depth - 1];
    const Mask cand = (p.sleep | p.done) & ~bit(p.chosen);
    for (unsigned q = 0; q < nbranches(); ++q)
      if ((cand & bit(q)) && !runs[q].done && !dependent(p.pending[q], p.pending[p.chosen]))
        n.sleep |= bit(q);
  }
  if (mode == Mode::Explore) add_backtrack_points();
  if (n.enabled == 0) return -1;
  if (!setup.reduce) n.backtrack = n.enabled;
  const Mask awake = n.enabled & ~n.sleep;
  if (awake == 0) {
    ++result.sleep_blocked;
    throw AbortExecution{};
  }
  unsigned c = static_cast<unsigned>(__builtin_ctz(awake));
  if (mode == Mode::Seeded) {
    std::vector<unsigned> choices;
    for (unsigned b = 0; b < nbranches(); ++b)
      if (awake & bit(b)) choices.push_back(b);
    c = choices[std::uniform_int_distribution<std::size_t>(0, choices.size() - 1)(rng)];
  }
  n.chosen = c;
  n.backtrack |= bit(c);
  n.done |= bit(c);
  stack.push_back(std::move(n));
  ++depth;
  return static_cast<int>(c);
}

// Flanagan & Godefroid's DPOR: for each branch's next step, the last
// earlier step of another branch that it does not commute with and that
// does not happen before that branch is a race; the state before that
// step must also try the branch (or, if it could not run there, all).
//
// Only the latest dependent step of each other branch q matters: an
// earlier one of q happens before it, so if the latest happens before p's
// step, all do (dep.latest_all finds it without scanning every step).
void Explorer::Impl::add_backtrack_points() {
  for (unsigned p = 0; p < nbranches(); ++p) {
    if (runs[p].done) continue;
    const Footprint& next = runs[p].pending;
    int race = -1;
    for (unsigned q = 0; q < nbranches(); ++q) {
      if (q == p) continue;
      const int i = latest_for(p, next)[q];
      if (i < 0 || runs[p].clock[q] >= clocks[static_cast<std::size_t>(i)][q]) continue;  // i happens before p
      race = std::max(race, i);
    }
    if (race < 0) continue;
    Node& ni = stack[step_node[static_cast<std::size_t>(race)]];
    ni.backtrack |= (ni.enabled & bit(p)) ? bit(p) : ni.enabled;
  }
}

const std::array<int, Explorer::kMaxBranches>& Explorer::Impl::latest_for(unsigned p, const Footprint& f) {
  LatestDependent& c = latest_dep[p];
  if (!c.valid || !(c.f == f)) {
    c.f = f;
    c.valid = true;
    c.upto = steps.size();
    dep.latest_all(*this, p, nbranches(), f, c.latest);
    return c.latest;
  }
  for (; c.upto < steps.size(); ++c.upto) {
    const unsigned q = steps[c.upto].branch;
    if (q != p && dependent(fps[c.upto], f)) c.latest[q] = static_cast<int>(c.upto);
  }
  return c.latest;
}

// Appends a step: its vector clock joins those of the earlier steps it
// does not commute with.
// (The latest such step of each branch suffices: its clock covers the
// branch's earlier ones.)
StepRecord& Explorer::Impl::record(unsigned b, const Footprint& f, StepRecord rec) {
  Clock c = runs[b].clock;
  const auto& latest = latest_for(b, f);
  for (unsigned q = 0; q < nbranches(); ++q) {
    if (q == b) continue;
    const int j = latest[q];
    if (j < 0) continue;
    const Clock& cj = clocks[static_cast<std::size_t>(j)];
    for (unsigned k = 0; k < nbranches(); ++k) c[k] = std::max(c[k], cj[k]);
  }
  c[b] = ++runs[b].nsteps;
  dep.add(static_cast<int>(steps.size()), b, f);
  runs[b].clock = c;
  return append_step(b, f, std::move(rec));
}

// The step, its footprint and clock (its branch's, as record set it), and
// the scheduling point that chose its branch (the latest one).
StepRecord& Explorer::Impl::append_step(unsigned b, const Footprint& f, StepRecord rec) {
  rec.branch = b;
  rec.kind = f.kind;
  rec.where = where[b];
  steps.push_back(std::move(rec));
  fps.push_back(f);
  clocks.push_back(runs[b].clock);
  step_node.push_back(static_cast<std::uint32_t>(depth - 1));
  ++result.steps;
  return steps.back();
}

// A step with no scheduling point before it (lock_private): no other
// branch's step it does not commute with can come before it, so its clock
// is its branch's own. It is left out of the dependence index: a later
// step of another branch that touches its word holds the lock after this
// branch dropped it, so it is ordered after this step by the lock already.
StepRecord& Explorer::Impl::record_at_once(unsigned b, const Footprint& f, StepRecord rec) {
  runs[b].clock[b] = ++runs[b].nsteps;
  ++result.steps_at_once;
  return append_step(b, f, std::move(rec));
}

void Explorer::Impl::plan_coalescing() {
  lockfree_words.clear();
  coalesce = mode == Mode::Explore && setup.reduce && setup.coalesce_lock_private;
  for (unsigned b = 0; b < nbranches() && coalesce; ++b) {
    const ExploreBranch& s = spec(b);
    if (s.kind == ExploreBranch::Kind::Reader && !observing()) coalesce = false;
    if (s.kind != ExploreBranch::Kind::Hw) continue;
    const auto slot = slot_of(s.va);
    if (slot) lockfree_words.push_back(slot->ptr());
  }
}

void Explorer::Impl::step(unsigned b) {
  switch (spec(b).kind) {
    case ExploreBranch::Kind::Engine:
      if (runs[b].phase == Phase::Idle) run_engine(b);
      else release_engine(b);
      break;
    case ExploreBranch::Kind::Hw: hw_step(b); break;
    case ExploreBranch::Kind::Reader: reader_step(b); break;
  }
}

// One execution from the state before the block. Returns false when it
// was cut (sleep-blocked or failed).
bool Explorer::Impl::execute() {
  start_execution();
  try {
    for (;;) {
      const int c = pick();
      if (c < 0) break;
      step(static_cast<unsigned>(c));
    }
    final_checks();
  } catch (const AbortExecution&) {
    return false;
  }
  return true;
}

// The deepest state with a branch still to try; false when none is left.
bool Explorer::Impl::next_schedule() {
  while (!stack.empty()) {
    Node& n = stack.back();
    const Mask todo = n.backtrack & n.enabled & ~n.done & ~n.sleep;
    if (todo) {
      n.chosen = static_cast<unsigned>(__builtin_ctz(todo));
      n.backtrack |= bit(n.chosen);
      return true;
    }
    spare_pending.push_back(std::move(n.pending));
    stack.pop_back();
  }
  return false;
}

ExploreResult Explorer::Impl::explore(std::uint64_t max) {
  mode = Mode::Explore;
  result = {};
  stack.clear();
  reader_moves.clear();
  gathered_nodes.clear();
  observed_memo.clear();
  va_cache.clear();
  slot_cache.clear();
  plan_coalescing();
  kept = nullptr;
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    const bool complete = execute();
    if (complete) ++result.executions;
    if (complete && setup.progress && result.executions % ExploreSetup::kProgressEvery == 0)
      setup.progress(result.executions,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    merge_failures();
    reset_world();
    if (!next_schedule()) {
      result.exhausted = true;
      break;
    }
    if (result.executions >= max) break;
    // Replay up to the chosen state: the choice there is new.
    depth = 0;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::move(result);
}

KeptRun Explorer::Impl::run_seeded(std::uint64_t seed, Checker* live, SimEnv* machine) {
  mode = Mode::Seeded;
  coalesce = false;  // a seeded run picks among every order
  rng.seed(seed);
  stack.clear();
  KeptRun k;
  kept = &k;
  chk = live;
  tlbs.machine = machine;
  execute();
  tlbs.machine = nullptr;
  undo.clear();  // kept
  for (const BranchRun& r : runs) {
    k.counters += r.env.counters();
    k.caller_tlbi += r.env.caller_tlbi();
  }
  k.steps = steps;
  kept = nullptr;
  return k;
}

}  // namespace contpte
