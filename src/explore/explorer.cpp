#include "explore/explorer.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>
#include <unordered_set>

#include <fmt/format.h>

#include "engine/pgtable.h"
#include "hw/access_fault.h"
#include "hw/walker.h"
#include "mm/pte_fault.h"

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

namespace {

using Clock = std::array<std::uint32_t, Explorer::kMaxBranches>;
using Mask = std::uint32_t;
constexpr Mask bit(unsigned b) { return Mask{1} << b; }

// Thrown to end an execution early: sleep-blocked (equivalent to one
// already explored), failed, or the bound reached.
struct AbortExecution {};
// Thrown out of a lockless reader's re-execution when it reaches the step
// it has not taken yet.
struct ReaderStopped {};

// What a step touches, for the dependence relation of partial-order
// reduction: two steps of different branches commute unless they touch the
// same PTE word and one writes it, or one is a lock operation and so is
// the other, or one invalidates a TLB the other fills.
struct Footprint {
  StepKind kind = StepKind::Load;
  const Pte* slot = nullptr;      // the word loaded / written
  const Pte* read_lo = nullptr;   // a range of words read as a whole
  const Pte* read_hi = nullptr;   //   (a walk's block check, a reader's retry)
  std::uint64_t va_lo = 0, va_hi = 0;  // Tlbi: VAs flushed; hw: the block its fill covers
  // A walk after a fault retry: whether it finds a statement in progress
  // decides between waiting again and the access failing, so it does not
  // commute with taking or dropping the page-table lock.
  bool lock_sensitive = false;
};

bool writes(StepKind k) {
  return k == StepKind::Store || k == StepKind::Xchg || k == StepKind::Cmpxchg || k == StepKind::HwUpdate;
}
bool takes_lock(StepKind k) {
  return k == StepKind::Acquire || k == StepKind::Release || k == StepKind::FaultRetry;
}
bool fills(StepKind k) { return k == StepKind::HwWalk || k == StepKind::HwUpdate; }
bool touches(const Footprint& f, const Pte* p) {
  return p && (f.slot == p || (f.read_lo <= p && p < f.read_hi));
}

bool dependent(const Footprint& a, const Footprint& b) {
  if (takes_lock(a.kind) && takes_lock(b.kind)) return true;
  if ((a.lock_sensitive && takes_lock(b.kind)) || (b.lock_sensitive && takes_lock(a.kind))) return true;
  // The end of a statement settles the checker's A/D bookkeeping and checks
  // the other CPUs' TLBs against memory: it reads everything.
  for (const auto* r : {&a, &b}) {
    const Footprint& o = r == &a ? b : a;
    if (r->kind == StepKind::Release &&
        (writes(o.kind) || fills(o.kind) || o.kind == StepKind::Tlbi))
      return true;
  }
  for (const auto* t : {&a, &b}) {
    const Footprint& o = t == &a ? b : a;
    if (t->kind == StepKind::Tlbi && fills(o.kind) && t->va_lo < o.va_hi && o.va_lo < t->va_hi)
      return true;
  }
  if (writes(a.kind) && touches(b, a.slot)) return true;
  if (writes(b.kind) && touches(a, b.slot)) return true;
  return false;
}

// A PTE with the bits a gathered view may differ in (AF and dirty) cleared.
Pte strip_ad(Pte p) { return pte_mkold(pte_mkclean(p)); }

}  // namespace

struct Explorer::Impl {
  enum class Mode : std::uint8_t { Explore, Seeded };
  enum class Phase : std::uint8_t { Idle, Running, Finished, Done };
  // A dev branch's handler runs inside the FaultWait step (it takes the
  // lock) and drops the lock in the Handler step.
  enum class HwPhase : std::uint8_t { Walk, Update, FaultWait, Handler, Done };

  struct BranchRun {
    BranchRun(Explorer& x, unsigned b) : env(x, b) {}
    StepEnv env;
    Footprint pending;
    bool done = false;
    std::uint32_t nsteps = 0;
    Clock clock{};
    // engine
    Phase phase = Phase::Idle;
    // hardware
    HwPhase hw = HwPhase::Walk;
    Pte expected{};
    Pte* update_slot = nullptr;
    bool needs_dirty = false;
    bool retried = false;
    // dev: the fault its handler is handling or last handled, whether the
    // handler left the PTE still faulting for it, and whether it could not
    // handle it at all (an error of the run).
    AccessFault handled = AccessFault::None;
    bool left_faulting = false;
    bool handler_error = false;
    std::optional<TlbEntry> tlb;
    BranchEnd end = BranchEnd::Completed;
    std::string outcome;
    // lockless reader
    std::vector<Pte> log;
    std::size_t replay_idx = 0;
    std::size_t attempt_start = 0;  // first step of the current attempt
    std::optional<Pte> result;
  };

  struct Node {
    Mask enabled = 0, backtrack = 0, done = 0, sleep = 0;
    std::vector<Footprint> pending;
    unsigned chosen = 0;
  };

  Impl(Explorer& self, ExploreSetup s)
      : x(self), setup(std::move(s)), geo(setup.mem->geometry()), walker(*setup.mem),
        view_env(*setup.mem, *setup.pt, setup.features, setup.asid) {
    if (setup.branches.empty()) throw std::invalid_argument("explorer: no branches");
    if (setup.branches.size() > kMaxBranches)
      throw std::invalid_argument(fmt::format("explorer: at most {} branches", kMaxBranches));
  }

  Explorer& x;
  ExploreSetup setup;
  const Geometry& geo;
  Walker walker;
  SimEnv view_env;  // ptep_get for settling and final checks (no observers)

  Mode mode = Mode::Explore;
  std::mt19937_64 rng;
  std::optional<Checker> chk_copy;
  Checker* chk = nullptr;
  std::vector<std::pair<Pte*, Pte>> undo;
  std::vector<BranchRun> runs;
  std::vector<StepRecord> steps;
  std::vector<Footprint> fps;
  std::vector<Clock> clocks;
  std::vector<Node> stack;
  std::size_t depth = 0;
  int lock_holder = -1;
  std::size_t violations_seen = 0;
  std::vector<ExploreFailure> exec_failures;  // this execution's, one per rule
  KeptRun* kept = nullptr;
  ExploreResult result;
  std::array<EngineWhere, kMaxBranches> where{};  // per branch: the engine function it is in

  unsigned nbranches() const { return static_cast<unsigned>(setup.branches.size()); }
  const ExploreBranch& spec(unsigned b) const { return setup.branches[b]; }

  std::uint64_t va_of(const Pte* p) const {
    auto v = setup.pt->va_of(PteSlot(const_cast<Pte*>(p)));
    return v ? v->val : 0;
  }
  std::pair<std::uint64_t, std::uint64_t> block_of(std::uint64_t va) const {
    const std::uint64_t b = geo.cont_pte_size();
    return {va & ~(b - 1), (va & ~(b - 1)) + b};
  }
  std::pair<const Pte*, const Pte*> block_words(const Pte* slot) const {
    if (!slot) return {nullptr, nullptr};
    const PteSlot first = PteSlot(const_cast<Pte*>(slot)).align_down(geo.cont_ptes);
    return {first.ptr(), first.ptr() + geo.cont_ptes};
  }

  // ---- one execution -------------------------------------------------------

  void reset_world() {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) *it->first = it->second;
    undo.clear();
  }

  void start_execution() {
    runs.clear();
    runs.reserve(nbranches());
    for (unsigned b = 0; b < nbranches(); ++b) runs.emplace_back(x, b);
    steps.clear();
    fps.clear();
    clocks.clear();
    depth = 0;
    lock_holder = -1;
    exec_failures.clear();
    obs_writes.clear();
    obs_initial.clear();
    dep.clear();
    if (mode == Mode::Explore) {
      chk_copy.reset();
      if (setup.checker) chk_copy.emplace(*setup.checker);
      chk = chk_copy ? &*chk_copy : nullptr;
    }
    violations_seen = chk ? chk->violations().size() : 0;
    for (unsigned b = 0; b < nbranches(); ++b) init_branch(b);
  }

  void init_branch(unsigned b) {
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

  // Lockless readers as observers: the reduction for `contpte explore`.
  bool observing() const { return mode == Mode::Explore && setup.reduce && setup.observe_readers; }

  Footprint hw_footprint(unsigned b, StepKind k) {
    const ExploreBranch& s = spec(b);
    Footprint f{k};
    auto slot = setup.pt->pte_slot(s.va, false);
    f.slot = slot ? slot->ptr() : nullptr;
    std::tie(f.va_lo, f.va_hi) = block_of(s.va.val);
    // A dev walk decides on its word alone (its handler always runs).
    f.lock_sensitive = k == StepKind::HwWalk && runs[b].retried && !s.device;
    return f;
  }

  bool enabled(unsigned b) const {
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
  bool read_word_changed_since(unsigned b, std::size_t from) const {
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
  int pick() {
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
  // step, all do (dep.latest finds it without scanning every step).
  void add_backtrack_points() {
    for (unsigned p = 0; p < nbranches(); ++p) {
      if (runs[p].done) continue;
      const Footprint& next = runs[p].pending;
      int race = -1;
      for (unsigned q = 0; q < nbranches(); ++q) {
        if (q == p) continue;
        const int i = dep.latest(*this, q, next);
        if (i < 0 || runs[p].clock[q] >= clocks[static_cast<std::size_t>(i)][q]) continue;  // i happens before p
        race = std::max(race, i);
      }
      if (race < 0) continue;
      Node& ni = stack[static_cast<std::size_t>(race)];
      ni.backtrack |= (ni.enabled & bit(p)) ? bit(p) : ni.enabled;
    }
  }

  // Per branch, the latest step of each kind the dependence relation asks
  // about, so that the latest step of a branch that does not commute with a
  // given one is found in a few look-ups instead of a scan of every step.
  struct DepIndex {
    using PerBranch = std::array<int, kMaxBranches>;
    static PerBranch none() {
      PerBranch a;
      a.fill(-1);
      return a;
    }
    struct SlotSteps {
      PerBranch write = none(), touch = none();  // writes it; loads, walks or writes it
    };
    PerBranch lockish = none(), lock_sensitive = none(), write = none(), fill = none(), release = none(),
              tlbi = none();
    std::array<std::vector<int>, kMaxBranches> tlbi_steps, fill_steps, range_reads;
    std::unordered_map<const Pte*, SlotSteps> slots;

    void clear() {
      lockish = lock_sensitive = write = fill = release = tlbi = none();
      for (auto& v : tlbi_steps) v.clear();
      for (auto& v : fill_steps) v.clear();
      for (auto& v : range_reads) v.clear();
      slots.clear();
    }

    void add(int i, unsigned q, const Footprint& f) {
      if (takes_lock(f.kind)) lockish[q] = i;
      if (f.lock_sensitive) lock_sensitive[q] = i;
      if (writes(f.kind)) write[q] = i;
      if (fills(f.kind)) fill[q] = i, fill_steps[q].push_back(i);
      if (f.kind == StepKind::Release) release[q] = i;
      if (f.kind == StepKind::Tlbi) tlbi[q] = i, tlbi_steps[q].push_back(i);
      if (f.read_lo) range_reads[q].push_back(i);
      if (f.slot) {
        SlotSteps& ss = slots[f.slot];
        ss.touch[q] = i;
        if (writes(f.kind)) ss.write[q] = i;
      }
    }

    // The latest step of branch q that does not commute with f, or -1.
    int latest(const Impl& x, unsigned q, const Footprint& f) const {
      int best = -1;
      auto consider = [&](int i) {
        if (i > best && dependent(x.fps[static_cast<std::size_t>(i)], f)) best = i;
      };
      auto scan = [&](const std::vector<int>& v) {  // the latest dependent one
        for (auto it = v.rbegin(); it != v.rend() && *it > best; ++it)
          if (dependent(x.fps[static_cast<std::size_t>(*it)], f)) {
            best = *it;
            return;
          }
      };
      if (takes_lock(f.kind)) consider(lockish[q]), consider(lock_sensitive[q]);
      if (f.lock_sensitive) consider(lockish[q]);
      if (f.kind == StepKind::Release) consider(write[q]), consider(fill[q]), consider(tlbi[q]);
      if (writes(f.kind) || fills(f.kind) || f.kind == StepKind::Tlbi) consider(release[q]);
      if (f.kind == StepKind::Tlbi) scan(fill_steps[q]);
      if (fills(f.kind)) scan(tlbi_steps[q]);
      if (f.slot) {
        if (auto it = slots.find(f.slot); it != slots.end())
          consider(writes(f.kind) ? it->second.touch[q] : it->second.write[q]);
        if (writes(f.kind)) scan(range_reads[q]);
      }
      for (const Pte* p = f.read_lo; p && p < f.read_hi; ++p)
        if (auto it = slots.find(p); it != slots.end()) consider(it->second.write[q]);
      return best;
    }
  };
  DepIndex dep;

  // Appends a step: its vector clock joins those of the earlier steps it
  // does not commute with.
  // (The latest such step of each branch suffices: its clock covers the
  // branch's earlier ones.)
  StepRecord& record(unsigned b, const Footprint& f, StepRecord rec) {
    Clock c = runs[b].clock;
    for (unsigned q = 0; q < nbranches(); ++q) {
      if (q == b) continue;
      const int j = dep.latest(*this, q, f);
      if (j < 0) continue;
      const Clock& cj = clocks[static_cast<std::size_t>(j)];
      for (unsigned k = 0; k < nbranches(); ++k) c[k] = std::max(c[k], cj[k]);
    }
    c[b] = ++runs[b].nsteps;
    dep.add(static_cast<int>(steps.size()), b, f);
    runs[b].clock = c;
    rec.branch = b;
    rec.kind = f.kind;
    rec.where = where[b];
    steps.push_back(std::move(rec));
    fps.push_back(f);
    clocks.push_back(c);
    ++result.steps;
    return steps.back();
  }

  void write_word(Pte* p, Pte v) {
    const Pte old = *p;
    if (old == v) return;
    undo.emplace_back(p, old);
    *p = v;
    if (!chk) return;
    const auto va = setup.pt->va_of(PteSlot(p));
    if (!va) return;
    chk->on_pte_write(setup.asid, va->val, old, v);
    check_block_of(p, va->val);
  }

  // Rule 1 in every state, not only when this model's walks happen: a CPU
  // may walk (speculatively, too) at any moment, so a block is never to be
  // left with a valid CONT entry that disagrees on CONT or output address
  // with another valid entry — nor on attributes, once no statement is in
  // progress. Only a write can break it, so the written block is checked.
  void check_block_of(const Pte* p, std::uint64_t va) {
    const auto [lo, hi] = block_words(p);
    if (std::none_of(lo, hi, [](Pte w) { return pte_valid_cont(w); })) return;
    chk->check_block(lo, geo.cont_ptes, block_of(va).first, geo.page_shift, lock_holder >= 0);
  }

  // After each step: a new checker finding fails the execution.
  void after_step() {
    if (!chk) return;
    for (; violations_seen < chk->violations().size(); ++violations_seen) {
      const Violation& v = chk->violations()[violations_seen];
      const std::string rule(rule_name(v.rule));
      fail(rule, fmt::format("{} at {:#x}: {}", rule, v.va.val, v.detail), v.va.val);
    }
  }

  // Records the first failure of `rule` in this execution, with the steps
  // so far; the execution goes on.
  void fail(std::string rule, std::string verdict, std::uint64_t va, std::vector<StepRecord>* witness = nullptr) {
    if (mode != Mode::Explore) return;  // a kept run reports through the live checker
    for (ExploreFailure& f : exec_failures)
      if (f.rule == rule) {
        // Observed readers can fail in several ways in one execution: keep the shortest.
        if (witness && witness->size() < f.steps.size()) {
          f.verdict = std::move(verdict);
          f.va = va;
          f.steps = std::move(*witness);
          mark_culprit(f);
        }
        return;
      }
    ExploreFailure f;
    f.rule = std::move(rule);
    f.verdict = std::move(verdict);
    f.va = va;
    f.steps = witness ? std::move(*witness) : steps;
    mark_culprit(f);
    exec_failures.push_back(std::move(f));
  }

  // Keeps the shortest counterexample per rule, losses of information first.
  void merge_failures() {
    if (exec_failures.empty()) return;
    ++result.failing;
    for (ExploreFailure& f : exec_failures) {
      auto it = std::find_if(result.failures.begin(), result.failures.end(),
                             [&](const ExploreFailure& g) { return g.rule == f.rule; });
      if (it == result.failures.end()) result.failures.push_back(std::move(f));
      else if (f.steps.size() < it->steps.size()) *it = std::move(f);
    }
    static constexpr std::string_view kOrder[] = {"lost_dirty", "lost_young", "stale_translation",
                                                  "tlb_conflict", "misprogrammed", "fault_loop", "reader",
                                                  "deadlock", "unmapped", "expect"};
    auto rank = [](const ExploreFailure& f) {
      return std::find(std::begin(kOrder), std::end(kOrder), f.rule) - std::begin(kOrder);
    };
    std::stable_sort(result.failures.begin(), result.failures.end(),
                     [&](const ExploreFailure& a, const ExploreFailure& b) { return rank(a) < rank(b); });
    exec_failures.clear();
  }

  // The step that lost the information: for a lost dirty or young bit, the
  // last write that turned that page's PTE from dirty (young) to clean (old).
  void mark_culprit(ExploreFailure& f) const {
    const bool dirty = f.rule == "lost_dirty", young = f.rule == "lost_young";
    if (!dirty && !young) {
      if (!f.steps.empty()) f.marked = static_cast<int>(f.steps.size() - 1);
      f.mark_note = "found here";
      return;
    }
    for (std::size_t i = f.steps.size(); i-- > 0;) {
      const StepRecord& s = f.steps[i];
      if (!s.wrote || s.va != f.va) continue;
      const bool lost = dirty ? pte_dirty(s.before) && !pte_dirty(s.after) && pte_present(s.after)
                              : pte_young(s.before) && !pte_young(s.after) && pte_present(s.after);
      if (lost) {
        f.marked = static_cast<int>(i);
        f.mark_note = dirty ? "the dirty bit is lost here" : "the access flag is lost here";
        return;
      }
    }
  }

  // ---- engine branches -----------------------------------------------------

  struct MemOp {
    StepKind kind;
    Pte* slot;
    Pte value;
    Pte expected;
  };

  Pte env_op(unsigned b, const MemOp& op) {
    BranchRun& r = runs[b];
    if (spec(b).kind == ExploreBranch::Kind::Reader) {
      if (op.kind != StepKind::Load)
        throw std::logic_error("explorer: a lockless reader wrote a PTE");
      if (r.replay_idx < r.log.size()) return r.log[r.replay_idx++];
      r.pending = Footprint{StepKind::Load, op.slot};
      throw ReaderStopped{};
    }
    r.pending = Footprint{op.kind, op.slot};
    wait_turn(b);
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
    record(b, r.pending, std::move(rec));
    after_step();
    return ret;
  }

  // Runs other branches' steps until the schedule gives `b` the next one.
  void wait_turn(unsigned b) {
    for (;;) {
      const int c = pick();
      if (c < 0) throw std::logic_error("explorer: engine branch not schedulable");
      if (static_cast<unsigned>(c) == b) return;
      step(static_cast<unsigned>(c));
    }
  }

  void tlbi(unsigned b, TlbiRequest req) {
    BranchRun& r = runs[b];
    Footprint f{StepKind::Tlbi};
    if (req.kind == TlbiKind::Mm) {
      f.va_hi = ~std::uint64_t{0};
    } else {
      f.va_lo = req.start.val;
      f.va_hi = req.start.val + (req.nr_pages << geo.page_shift);
    }
    r.pending = f;
    wait_turn(b);
    for (BranchRun& o : runs)
      if (o.tlb && o.tlb->va < f.va_hi && f.va_lo < o.tlb->va + o.tlb->size()) o.tlb.reset();
    if (kept) kept->tlbis.push_back(req);
    StepRecord rec;
    rec.va = f.va_lo;
    rec.nr = req.kind == TlbiKind::Mm ? 0 : req.nr_pages;
    rec.note = req.kind == TlbiKind::Mm ? "flush_tlb_mm" : req.kind == TlbiKind::Page ? "by VA" : "range";
    record(b, f, std::move(rec));
    after_step();
  }

  void lockless_retry(unsigned b) {
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

  void run_engine(unsigned b) {
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

  void release_engine(unsigned b) {
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

  // The end of an operation: the A/D information it removed must show in
  // ptep_get (lost_dirty / lost_young), and no other CPU may still hold a
  // translation the operation changed (stale_translation).
  void settle_and_check_tlbs() {
    if (!chk) return;
    chk->settle([&](std::uint16_t, std::uint64_t va) {
                  auto s = setup.pt->pte_slot(VirtAddr{va}, false);
                  return s ? ptep_get(view_env, *s) : Pte{};
                },
                [&](std::uint16_t, std::uint64_t va) {
                  auto s = setup.pt->pte_slot(VirtAddr{va}, false);
                  return s ? *s->ptr() : Pte{};
                });
    for (unsigned b = 0; b < nbranches(); ++b)
      if (runs[b].tlb)
        chk->check_hit(*runs[b].tlb, spec(b).va.val, spec(b).access,
                       walker.walk(setup.pt->root(), setup.asid, spec(b).va, nullptr));
  }

  // ---- hardware branches ---------------------------------------------------

  void hw_step(unsigned b) {
    BranchRun& r = runs[b];
    const ExploreBranch& s = spec(b);
    StepRecord rec;
    rec.va = s.va.val;
    const Footprint f = r.pending;
    switch (r.hw) {
      case HwPhase::Walk: hw_walk(b, rec); break;
      case HwPhase::Update: hw_update(b, rec); break;
      case HwPhase::FaultWait:
        if (s.device) return dev_fault_handler(b);  // records its own steps
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
      case HwPhase::FaultWait: r.pending = Footprint{StepKind::FaultRetry}; break;
      case HwPhase::Handler: r.pending = Footprint{StepKind::Release}; break;
      case HwPhase::Done: r.done = true; break;
    }
    record(b, f, std::move(rec));
    after_step();
  }

  void hw_walk(unsigned b, StepRecord& rec) {
    BranchRun& r = runs[b];
    const ExploreBranch& s = spec(b);
    // The block a CONT leaf belongs to is checked in every state it changes
    // (check_block_of), so the walk itself depends on its own word only.
    const WalkResult w = walker.walk(setup.pt->root(), setup.asid, s.va, nullptr);
    rec.before = rec.after = w.desc;
    const Pte d = w.desc;
    const bool hafdbs = setup.features.hafdbs && !s.device;  // a device walker never updates A/D
    const bool needs_dirty = s.access == MemAccess::Write && pte_rdonly(d);
    const AccessFault af = access_fault(w.valid, d, s.access, hafdbs);
    if (af != AccessFault::None && s.device) return dev_fault(b, rec, af);
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
    if (!pte_young(d) || needs_dirty) {
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
  void unmapped_access(unsigned b, StepRecord& rec, const std::string& why) {
    runs[b].hw = HwPhase::Done;
    rec.note = why + ": the access cannot complete";
    unmapped(b, why);
  }
  void unmapped(unsigned b, const std::string& why) {
    BranchRun& r = runs[b];
    r.end = BranchEnd::Unmapped;
    r.outcome = "unmapped: " + why;
    const std::string what = fmt::format("{}: {}; the access cannot complete", spec(b).label, why);
    if (kept) kept->problems.push_back({spec(b).line, what});
    fail("unmapped", fmt::format("unmapped: {}:{}: {}", setup.source, spec(b).line, what), spec(b).va.val);
  }

  // ---- device walkers (dev) ------------------------------------------------

  // A dev access faulted (`af`) on the word its walk read. The reason its
  // handler just handled, with the PTE still as the handler left it
  // (nobody undid a fix in between): a walker that reads each descriptor
  // alone would fault forever (rule fault_loop). Anything else goes to the
  // handler, which waits for the page-table lock.
  void dev_fault(unsigned b, StepRecord& rec, AccessFault af) {
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
    r.handled = af;
    rec.note = fault + ": the handler waits for the page-table lock";
  }

  // A finding of the checker (claimable by `expect violation fault_loop`);
  // with checking off (--no-check), not reported: the access just ends.
  void report_fault_loop(unsigned b, const std::string& fault, Pte pte) {
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
  void dev_fault_handler(unsigned b) {
    BranchRun& r = runs[b];
    const ExploreBranch& s = spec(b);
    lock_holder = static_cast<int>(b);
    r.retried = true;
    StepRecord rec;
    rec.va = s.va.val;
    rec.note = "fault handler takes the page-table lock (handle_pte_fault)";
    record(b, r.pending, std::move(rec));
    after_step();
    const auto slot = setup.pt->pte_slot(s.va, false);
    const auto why = slot ? handle_pte_level_fault(r.env, VirtAddr{align_down(s.va.val, geo.page_size())}, *slot,
                                                   s.access == MemAccess::Write)
                          : std::optional<std::string_view>("no page table maps it");
    r.handler_error = why.has_value();
    if (why) unmapped(b, fmt::format("{}; {}", access_fault_name(r.handled), *why));
    r.hw = HwPhase::Handler;
    r.pending = Footprint{StepKind::Release};
  }

  // The handler drops the lock (the end of an operation, as for an engine
  // statement); the access retries unless the fault could not be handled.
  void dev_handler_done(unsigned b, StepRecord& rec) {
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
  void hw_update(unsigned b, StepRecord& rec) {
    BranchRun& r = runs[b];
    Pte v = pte_mkyoung(r.expected);
    if (r.needs_dirty && pte_write(r.expected)) v = clear_pte_bit(v, bits::kRdonly);
    rec.before = *r.update_slot;
    if (rec.before != r.expected) {
      rec.after = rec.before;
      rec.note = "compare-exchange failed: the PTE changed; walks again";
      r.hw = HwPhase::Walk;
      return;
    }
    write_word(r.update_slot, v);
    rec.after = v;
    rec.wrote = rec.after != rec.before;
    rec.note = r.needs_dirty ? "sets dirty (and AF); TLB fill; the write completes"
                             : "sets AF; TLB fill; the access completes";
    const WalkResult w = walker.walk(setup.pt->root(), setup.asid, spec(b).va, nullptr);
    fill_tlb(b, w, v);
    r.hw = HwPhase::Done;
    r.outcome = "done";
  }

  void fill_tlb(unsigned b, const WalkResult& w, Pte cached) {
    TlbEntry e;
    e.asid = setup.asid;
    e.va = w.va_base;
    e.size_shift = w.size_shift;
    e.level = static_cast<std::uint8_t>(w.level);
    e.cont = pte_cont(w.desc);
    e.pa = w.pa_base;
    e.desc = cached;
    e.page_shift = static_cast<std::uint8_t>(geo.page_shift);
    runs[b].tlb = e;
  }

  // ---- lockless readers ----------------------------------------------------

  // Re-executes the reader from its start with the values it has loaded so
  // far, until it reaches a step it has not taken (its pending step) or
  // returns.
  void replay_reader(unsigned b) {
    BranchRun& r = runs[b];
    r.replay_idx = 0;
    r.env = StepEnv(x, b);
    try {
      r.result = ptep_get_lockless(r.env, spec(b).slot);
      r.done = true;
    } catch (const ReaderStopped&) {
    }
  }

  void reader_step(unsigned b) {
    BranchRun& r = runs[b];
    const Footprint f = r.pending;
    StepRecord rec;
    rec.va = va_of(spec(b).slot.ptr());
    if (f.kind == StepKind::Load) {
      rec.va = va_of(f.slot);
      rec.before = rec.after = *f.slot;
      r.log.push_back(*f.slot);
    } else {
      rec.note = "saw a torn block; starts again";
      r.log.push_back(Pte{});
    }
    record(b, f, std::move(rec));
    if (f.kind == StepKind::ReaderRetry) r.attempt_start = steps.size();
    replay_reader(b);
    if (r.done) steps.back().note = fmt::format("returns {:#018x}", r.result->val);
    after_step();
  }

  // ---- driving -------------------------------------------------------------

  void step(unsigned b) {
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
  bool execute() {
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

  void final_checks() {
    if (observing())
      for (unsigned b = 0; b < nbranches(); ++b)
        if (spec(b).kind == ExploreBranch::Kind::Reader) observe_reader(b);
    for (unsigned b = 0; b < nbranches(); ++b) {
      if (runs[b].done) continue;
      fail("deadlock",
           fmt::format("{} never finished{}", spec(b).label,
                       spec(b).kind == ExploreBranch::Kind::Reader ? ": the block stays torn" : ""),
           spec(b).va.val);
      runs[b].end = BranchEnd::Stuck;
      if (kept) kept->problems.push_back({spec(b).line, fmt::format("{} never finished", spec(b).label)});
    }
    if (!observing()) check_readers();
    settle_and_check_tlbs();
    after_step();
    tally_outcomes();
    if (mode == Mode::Explore && setup.on_final) {
      FinalState fs;
      for (unsigned b = 0; b < nbranches(); ++b) {
        fs.ends.push_back(runs[b].end);
        fs.reader_values.emplace_back();
        if (spec(b).kind != ExploreBranch::Kind::Reader) continue;
        if (observing()) fs.reader_values.back() = observed_values[b];
        else if (runs[b].result) fs.reader_values.back().push_back(*runs[b].result);
      }
      setup.on_final(fs);
    }
    if (mode == Mode::Explore && setup.check_final) {
      EngineCounters sum;
      for (const BranchRun& r : runs) sum += r.env.counters();
      auto failures = setup.check_final(sum);
      if (!failures.empty()) fail("expect", failures.front(), 0);
    }
  }

  // How each branch ended: counted over the exploration, kept for a seeded run.
  void tally_outcomes() {
    if (mode == Mode::Explore) {
      result.outcomes.resize(nbranches());
      for (unsigned b = 0; b < nbranches(); ++b) {
        BranchOutcomes& o = result.outcomes[b];
        const BranchRun& r = runs[b];
        switch (r.end) {
          case BranchEnd::Completed: ++o.completed; break;
          case BranchEnd::Faulted: ++o.faulted; break;
          case BranchEnd::Unmapped: ++o.unmapped; break;
          case BranchEnd::Stuck: ++o.stuck; break;
        }
        if (r.end != BranchEnd::Completed && o.first_fault.empty()) o.first_fault = r.outcome;
      }
    }
    if (kept) {
      for (const BranchRun& r : runs) {
        kept->ends.push_back(r.end);
        kept->outcomes.push_back(r.end == BranchEnd::Completed ? std::string("completed")
                                 : r.outcome.empty()            ? std::string(branch_end_name(r.end))
                                                                : r.outcome);
      }
    }
  }

  // A lockless reader returns a value the PTE held (its AF/dirty possibly
  // gathered from the block) — never a mix of two states.
  // ---- lockless readers as observers ---------------------------------------
  //
  // A lockless reader writes nothing, so it cannot change what the other
  // branches do: for one execution of theirs (one class of equivalent
  // interleavings, with its happens-before order), what the reader can
  // return depends only on which memory states its loads see. A state a
  // load may see is a cut: a set of the other branches' steps closed under
  // happens-before (every linearization of the class passes through each
  // cut), written as each branch's step count. A load of word w at cut C
  // reads the last write to w in C (writes to one word are ordered), or
  // any later write e to w, the cut growing to C ∪ ↓e, the smallest cut
  // where w holds e's value. The smaller cut can do all the larger can, so
  // per value only the earliest is taken. Retries keep no state (as in
  // ptep_get_lockless), so an attempt is (cut, values loaded so far), and
  // each is visited once. Exactly the values the reader can return when
  // interleaved in every order, at a cost independent of how many orders.

  struct ObsWrite {
    std::size_t step;  // index in `steps`
    unsigned branch;
    std::uint32_t pos;  // the step's position in its branch (1-based)
    Pte value;
  };
  struct ObsStep {
    Clock cut{};
    const Pte* slot = nullptr;  // null: a retry
    Pte value{};
  };

  std::vector<std::vector<Pte>> observed_values;  // per branch, this execution
  std::vector<std::pair<const Pte*, std::vector<ObsWrite>>> obs_writes;
  std::vector<std::pair<const Pte*, Pte>> obs_initial;
  std::unordered_set<std::string> obs_seen;
  std::vector<ObsStep> obs_path;
  struct Witness {
    Pte value;
    std::vector<ObsStep> path;
  };
  std::vector<Witness> obs_found;
  std::uint64_t obs_nodes = 0;

  // What a lockless reader does after the loads of one attempt returned a
  // given sequence of values. The reader is engine code and deterministic
  // in what its loads return, so each answer is kept, in a trie of
  // attempts per reader that outlives the execution (the PTE words it
  // names are the same in every execution of the block): the reader runs
  // only for an attempt never seen. Re-running it for every state
  // observed cost an exception (its stop at the next load) per state,
  // most of the explorer's time.
  struct ReaderMove {
    enum class Kind : std::uint8_t { Unknown, Load, Retry, Returns };
    Kind kind = Kind::Unknown;
    const Pte* slot = nullptr;  // Load: the word it loads next
    Pte value{};                // Returns: what it returns
    std::vector<std::pair<Pte, std::uint32_t>> next;  // Load: by the value loaded
  };
  // Beyond this many moves a reader's trie starts again (a bound on memory;
  // the answers are recomputed, nothing is lost).
  static constexpr std::size_t kReaderMovesMax = 1u << 22;
  std::vector<std::vector<ReaderMove>> reader_moves;  // per branch; [0]: an attempt's start

  // The reader's move at trie node `node`, for the attempt `log` (the
  // values along the path from the root to `node`).
  const ReaderMove& reader_move(unsigned b, std::uint32_t node, const std::vector<Pte>& log) {
    ReaderMove& m = reader_moves[b][node];
    if (m.kind != ReaderMove::Kind::Unknown) return m;
    BranchRun& r = runs[b];
    r.log = log;
    r.done = false;
    r.result.reset();
    replay_reader(b);
    if (r.done) {
      m.kind = ReaderMove::Kind::Returns;
      m.value = *r.result;
    } else if (r.pending.kind == StepKind::ReaderRetry) {
      m.kind = ReaderMove::Kind::Retry;
    } else {
      m.kind = ReaderMove::Kind::Load;
      m.slot = r.pending.slot;
    }
    return m;
  }

  // The trie node after `node` when its load returned `v`.
  std::uint32_t reader_child(unsigned b, std::uint32_t node, Pte v) {
    for (const auto& [value, child] : reader_moves[b][node].next)
      if (value == v) return child;
    const auto child = static_cast<std::uint32_t>(reader_moves[b].size());
    reader_moves[b].emplace_back();  // may move the vector: index again below
    reader_moves[b][node].next.emplace_back(v, child);
    return child;
  }

  const std::vector<ObsWrite>* writes_of(const Pte* w) const {
    for (const auto& [p, v] : obs_writes)
      if (p == w) return &v;
    return nullptr;
  }
  Pte initial_of(const Pte* w) const {
    for (const auto& [p, v] : obs_initial)
      if (p == w) return v;
    return *w;  // never written in this execution
  }
  Pte value_at(const Pte* w, const Clock& c) const {
    Pte v = initial_of(w);
    if (const auto* ws = writes_of(w))
      for (const ObsWrite& e : *ws) {
        if (c[e.branch] < e.pos) break;
        v = e.value;
      }
    return v;
  }

  void index_writes() {
    obs_writes.clear();
    obs_initial.clear();
    for (std::size_t i = 0; i < steps.size(); ++i) {
      if (!steps[i].wrote || !writes(fps[i].kind) || !fps[i].slot) continue;
      const Pte* w = fps[i].slot;
      auto it = std::find_if(obs_writes.begin(), obs_writes.end(), [&](const auto& e) { return e.first == w; });
      if (it == obs_writes.end()) {
        obs_writes.push_back({w, {}});
        obs_initial.push_back({w, steps[i].before});
        it = obs_writes.end() - 1;
      }
      const unsigned q = steps[i].branch;
      it->second.push_back({i, q, clocks[i][q], steps[i].after});
    }
  }

  // An attempt's state: the cut and what the reader has gathered. A
  // lockless reader (ptep_get_lockless) keeps its first load whole and,
  // of the block's words it then loads, compares them without AF and dirty
  // and ORs their AF and dirty into its result: two attempts that agree on
  // those continue alike (without this, the 2^16 orders in which a reader
  // can see a block's AF/dirty being rewritten word by word are all apart).
  std::string obs_key(const Clock& c, const std::vector<Pte>& log) const {
    std::string k(reinterpret_cast<const char*>(c.data()), nbranches() * sizeof(c[0]));
    auto put = [&](std::uint64_t v) { k.append(reinterpret_cast<const char*>(&v), sizeof v); };
    bool young = false, dirty = false;
    for (std::size_t i = 0; i < log.size(); ++i) {
      if (i == 0) {
        put(log[i].val);
        continue;
      }
      put(strip_ad(log[i]).val);
      young |= pte_young(log[i]);
      dirty |= pte_dirty(log[i]);
    }
    put(log.size() | (std::uint64_t{young} << 62) | (std::uint64_t{dirty} << 63));
    return k;
  }

  // The reader's attempt from (cut, log): runs it and branches on what its
  // next load may return.
  void observe_from(unsigned b, const Clock& cut, std::vector<Pte>& log, std::uint32_t node) {
    if (!obs_seen.insert(obs_key(cut, log)).second) return;
    ++obs_nodes;
    const ReaderMove& m = reader_move(b, node, log);
    if (m.kind == ReaderMove::Kind::Returns) {
      const Pte v = m.value;
      auto it = std::find_if(obs_found.begin(), obs_found.end(), [&](const Witness& w) { return w.value == v; });
      if (it == obs_found.end()) obs_found.push_back({v, obs_path});
      else if (obs_path.size() < it->path.size()) it->path = obs_path;
      return;
    }
    if (m.kind == ReaderMove::Kind::Retry) {
      obs_path.push_back({cut, nullptr, {}});
      std::vector<Pte> fresh;
      observe_from(b, cut, fresh, 0);
      obs_path.pop_back();
      return;
    }
    const Pte* w = m.slot;
    std::vector<Pte> tried;
    auto branch = [&](const Clock& c, Pte v) {
      if (std::find(tried.begin(), tried.end(), v) != tried.end()) return;  // a smaller cut gave it
      tried.push_back(v);
      const std::uint32_t child = reader_child(b, node, v);
      obs_path.push_back({c, w, v});
      log.push_back(v);
      observe_from(b, c, log, child);
      log.pop_back();
      obs_path.pop_back();
    };
    branch(cut, value_at(w, cut));
    if (const auto* ws = writes_of(w))
      for (const ObsWrite& e : *ws) {
        if (cut[e.branch] >= e.pos) continue;  // in the cut already
        Clock c = cut;
        for (unsigned k = 0; k < nbranches(); ++k) c[k] = std::max(c[k], clocks[e.step][k]);
        branch(c, e.value);
      }
  }

  bool in_cut(std::size_t i, const Clock& c) const { return c[steps[i].branch] >= clocks[i][steps[i].branch]; }

  // One linearization of this execution in which the reader takes `path`:
  // before each of its steps, the steps of its cut not yet placed, in the
  // execution's order (a cut is closed under happens-before, so this order
  // is one of the class's).
  std::vector<StepRecord> linearize(unsigned b, const std::vector<ObsStep>& path, std::optional<Pte> returns,
                                    bool all) const {
    std::vector<StepRecord> out;
    std::vector<bool> placed(steps.size(), false);
    auto place_cut = [&](const Clock& c) {
      for (std::size_t i = 0; i < steps.size(); ++i)
        if (!placed[i] && in_cut(i, c)) out.push_back(steps[i]), placed[i] = true;
    };
    for (const ObsStep& o : path) {
      place_cut(o.cut);
      StepRecord rec;
      rec.branch = b;
      if (o.slot) {
        rec.kind = StepKind::Load;
        rec.va = va_of(o.slot);
        rec.before = rec.after = o.value;
      } else {
        rec.kind = StepKind::ReaderRetry;
        rec.va = va_of(spec(b).slot.ptr());
        rec.note = "saw a torn block; starts again";
      }
      out.push_back(std::move(rec));
    }
    if (returns && !out.empty()) out.back().note = fmt::format("returns {:#018x}", returns->val);
    if (all)
      for (std::size_t i = 0; i < steps.size(); ++i)
        if (!placed[i]) out.push_back(steps[i]);
    return out;
  }

  void observe_reader(unsigned b) {
    if (obs_writes.empty() && obs_initial.empty()) index_writes();
    obs_seen.clear();
    obs_found.clear();
    obs_path.clear();
    if (reader_moves.size() != nbranches()) reader_moves.assign(nbranches(), {});
    if (reader_moves[b].empty() || reader_moves[b].size() > kReaderMovesMax) reader_moves[b].assign(1, {});
    std::vector<Pte> log;
    observe_from(b, Clock{}, log, 0);
    result.reader_states += obs_nodes;
    obs_nodes = 0;
    observed_values.resize(nbranches());
    observed_values[b].clear();
    for (const Witness& w : obs_found) {
      observed_values[b].push_back(w.value);
      if (value_existed(b, w.value)) continue;
      std::vector<StepRecord> ws = linearize(b, w.path, w.value, false);
      fail("reader",
           fmt::format("{} returned {:#018x}, a value the PTE never held", spec(b).label, w.value.val),
           spec(b).va.val, &ws);
    }
    // After every other step: the block as it stays. A reader that cannot
    // return from there spins forever.
    Clock full{};
    for (unsigned q = 0; q < nbranches(); ++q) full[q] = runs[q].nsteps;
    obs_seen.clear();
    obs_found.clear();
    obs_path.clear();
    log.clear();
    observe_from(b, full, log, 0);
    BranchRun& r = runs[b];
    r.done = true;
    r.end = BranchEnd::Completed;
    if (obs_found.empty()) {
      r.end = BranchEnd::Stuck;
      std::vector<StepRecord> ws = linearize(b, obs_path, std::nullopt, true);
      fail("deadlock", fmt::format("{} never finished: the block stays torn", spec(b).label), spec(b).va.val, &ws);
    }
  }

  // Whether `got` is a value the reader's PTE held in this execution (its
  // AF/dirty possibly gathered from the block).
  bool value_existed(unsigned b, Pte got) const {
    const Pte* slot = spec(b).slot.ptr();
    Pte initial = *slot;
    for (auto it = undo.rbegin(); it != undo.rend(); ++it)  // the word before this execution
      if (it->first == slot) initial = it->second;
    bool existed = strip_ad(got) == strip_ad(initial);
    for (std::size_t i = 0; i < steps.size() && !existed; ++i)
      if (fps[i].slot == slot && writes(fps[i].kind) && steps[i].wrote)
        existed = strip_ad(steps[i].after) == strip_ad(got);
    return existed;
  }

  void check_readers() {
    for (unsigned b = 0; b < nbranches(); ++b) {
      if (spec(b).kind != ExploreBranch::Kind::Reader || !runs[b].result) continue;
      const Pte got = *runs[b].result;
      if (value_existed(b, got)) continue;
      const std::string what =
          fmt::format("{} returned {:#018x}, a value the PTE never held", spec(b).label, got.val);
      if (kept) kept->problems.push_back({spec(b).line, what});
      fail("reader", what, spec(b).va.val);
    }
  }


  // The deepest state with a branch still to try; false when none is left.
  bool next_schedule() {
    while (!stack.empty()) {
      Node& n = stack.back();
      const Mask todo = n.backtrack & n.enabled & ~n.done & ~n.sleep;
      if (todo) {
        n.chosen = static_cast<unsigned>(__builtin_ctz(todo));
        n.backtrack |= bit(n.chosen);
        return true;
      }
      stack.pop_back();
    }
    return false;
  }

  ExploreResult explore(std::uint64_t max) {
    mode = Mode::Explore;
    result = {};
    stack.clear();
    reader_moves.clear();
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

  KeptRun run_seeded(std::uint64_t seed, Checker* live) {
    mode = Mode::Seeded;
    rng.seed(seed);
    stack.clear();
    KeptRun k;
    kept = &k;
    chk = live;
    execute();
    undo.clear();  // kept
    for (const BranchRun& r : runs) {
      k.counters += r.env.counters();
      k.caller_tlbi += r.env.caller_tlbi();
    }
    k.steps = steps;
    kept = nullptr;
    return k;
  }
};

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
KeptRun Explorer::run_seeded(std::uint64_t seed, Checker* live) { return impl_->run_seeded(seed, live); }

}  // namespace contpte
