// explore/explorer_impl.h — the explorer's private state, shared by the
// files that implement it (not part of the explore/ API; include
// explore/explorer.h).
//
// Promises: one struct, Explorer::Impl, holding one execution's state (the
// branches' runs, the steps so far with their footprints and vector clocks,
// the undo log, the execution's checker copy) and the search's state (the
// stack of scheduling points); its member functions are defined by area:
//   search.cpp         the search: scheduling points, DPOR backtracking, sleep
//                      sets, one execution from the state before the block,
//                      explore() and run_seeded()
//   engine_branch.cpp  engine branches: each Env operation a step, the
//                      page-table lock around a statement, TLB invalidations
//   hw_branch.cpp      hardware branches: another CPU's walk, AF/DBM update
//                      and TLB fill, fault and retry; device walkers (dev)
//   readers.cpp        lockless readers, interleaved or observed
//   findings.cpp       the checks in every state and at the end, and the
//                      counterexamples they leave
// Below: what a step touches (Footprint) and when two steps commute.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "engine/pgtable.h"
#include "explore/explorer.h"
#include "hw/access_rules.h"
#include "hw/walker.h"

namespace contpte {
namespace explore_detail {

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
  // A CPU's fault handler that takes the page-table lock and drops it at
  // once (with FEAT_HAFDBS it has nothing to change: it only waits for a
  // statement in progress): it leaves the lock as it found it, so two of
  // them commute, and so does one with a walk that looks at the lock.
  bool lock_instant = false;
  bool operator==(const Footprint&) const = default;
};

inline bool writes(StepKind k) {
  return k == StepKind::Store || k == StepKind::Xchg || k == StepKind::Cmpxchg || k == StepKind::HwUpdate;
}
inline bool takes_lock(StepKind k) {
  return k == StepKind::Acquire || k == StepKind::Release || k == StepKind::FaultRetry;
}
inline bool fills(StepKind k) { return k == StepKind::HwWalk || k == StepKind::HwUpdate; }
inline bool touches(const Footprint& f, const Pte* p) {
  return p && (f.slot == p || (f.read_lo <= p && p < f.read_hi));
}

inline bool dependent(const Footprint& a, const Footprint& b) {
  if (takes_lock(a.kind) && takes_lock(b.kind) && !(a.lock_instant && b.lock_instant)) return true;
  if ((a.lock_sensitive && takes_lock(b.kind) && !b.lock_instant) ||
      (b.lock_sensitive && takes_lock(a.kind) && !a.lock_instant))
    return true;
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
inline Pte strip_ad(Pte p) { return pte_mkold(pte_mkclean(p)); }

}  // namespace explore_detail
// The explorer's files (and only they: this header is private) use the
// helpers above unqualified.
using namespace explore_detail;

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
    // dev, and a CPU without FEAT_HAFDBS on an access-flag or dirty-state
    // fault: the fault is going to its handler (which holds the lock until
    // its Release); the fault its handler is handling or last handled,
    // whether the handler left the PTE still faulting for it, and whether
    // it could not handle it at all (an error of the run).
    bool to_handler = false;
    bool gave_up = false;  // a CPU's handler found nothing it could do: its faults are ordinary since
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
    view_env.set_tlb(&tlbs);
    if (setup.branches.empty()) throw std::invalid_argument("explorer: no branches");
    if (setup.branches.size() > kMaxBranches)
      throw std::invalid_argument(fmt::format("explorer: at most {} branches", kMaxBranches));
  }

  Explorer& x;
  ExploreSetup setup;
  const Geometry& geo;
  Walker walker;
  // ptep_get for settling and final checks (no observers), and the route of
  // every TLB invalidation the branches make: SimEnv::invalidate_tlb, the
  // one route (hw/sim_env.h), whose TLBs are this execution's (`tlbs`).
  SimEnv view_env;

  // The TLBs one execution's invalidations reach: the other CPUs' and
  // device walkers' entries (BranchRun::tlb, fresh in each execution) and,
  // in the kept run, the machine's own (the MMU), through the Env of the
  // address space in the machine — as each invalidation is made.
  struct ExecutionTlbs final : SimObserver {
    explicit ExecutionTlbs(Impl& i) : x(i) {}
    Impl& x;
    SimEnv* machine = nullptr;  // the kept run's: run_seeded()
    void on_tlbi(const TlbiRequest& r) override;
  };
  ExecutionTlbs tlbs{*this};

  Mode mode = Mode::Explore;
  std::mt19937_64 rng;
  std::optional<Checker> chk_copy;
  Checker* chk = nullptr;
  std::vector<std::pair<Pte*, Pte>> undo;
  std::vector<BranchRun> runs;
  std::vector<StepRecord> steps;
  std::vector<Footprint> fps;
  std::vector<Clock> clocks;
  // Per step, the scheduling point (index in `stack`) that chose its
  // branch: the step itself, or the one its at-once steps follow.
  std::vector<std::uint32_t> step_node;
  std::vector<Node> stack;
  std::vector<std::vector<Footprint>> spare_pending;  // popped nodes' buffers, reused
  std::size_t depth = 0;
  int lock_holder = -1;
  std::size_t violations_seen = 0;
  std::vector<ExploreFailure> exec_failures;  // this execution's, one per rule
  std::uint64_t fail_calls = 0;                // findings reported (for observe_reader)
  KeptRun* kept = nullptr;
  ExploreResult result;
  std::array<EngineWhere, kMaxBranches> where{};  // per branch: the engine function it is in

  unsigned nbranches() const { return static_cast<unsigned>(setup.branches.size()); }
  const ExploreBranch& spec(unsigned b) const { return setup.branches[b]; }

  // The VA a PTE word maps, remembered: the tables do not change shape
  // inside a parallel block, and the look-up walks them.
  std::uint64_t va_of(const Pte* p) const {
    if (auto it = va_cache.find(p); it != va_cache.end()) return it->second;
    auto v = setup.pt->va_of(PteSlot(const_cast<Pte*>(p)));
    return va_cache.emplace(p, v ? v->val : 0).first->second;
  }
  mutable std::unordered_map<const Pte*, std::uint64_t> va_cache;
  // The PTE word that maps a VA, remembered once a table maps it (the walk
  // was a twentieth of the explorer's time: every hardware step and every
  // settle asks).
  std::optional<PteSlot> slot_of(VirtAddr va) const {
    if (auto it = slot_cache.find(va.val); it != slot_cache.end()) return PteSlot(it->second);
    auto s = setup.pt->pte_slot(va, false);
    if (s) slot_cache.emplace(va.val, s->ptr());
    return s;
  }
  mutable std::unordered_map<std::uint64_t, Pte*> slot_cache;
  std::pair<std::uint64_t, std::uint64_t> block_of(std::uint64_t va) const {
    const std::uint64_t b = geo.cont_pte_size();
    return {va & ~(b - 1), (va & ~(b - 1)) + b};
  }
  std::pair<const Pte*, const Pte*> block_words(const Pte* slot) const {
    if (!slot) return {nullptr, nullptr};
    const PteSlot first = PteSlot(const_cast<Pte*>(slot)).align_down(geo.cont_ptes);
    return {first.ptr(), first.ptr() + geo.cont_ptes};
  }

  // ---- search.cpp: the search ---------------------------------------------

  void reset_world();
  void start_execution();
  void init_branch(unsigned b);
  // Lockless readers as observers: the reduction for `contpte explore`.
  bool observing() const { return mode == Mode::Explore && setup.reduce && setup.observe_readers; }
  bool enabled(unsigned b) const;
  bool read_word_changed_since(unsigned b, std::size_t from) const;
  int pick();
  void add_backtrack_points();

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
    // SlotSteps per PTE word: a flat open-addressing table keyed by the
    // word's address, emptied in O(1) by a new generation. The look-ups run
    // for every branch at every step (sixteen for a block's range read); a
    // node-based map's modulo hashing and cache misses were a quarter of the
    // explorer's time.
    class SlotTable {
     public:
      const SlotSteps* find(const Pte* p) const {
        for (std::size_t i = home(p);; i = (i + 1) & mask()) {
          const Entry& e = t_[i];
          if (e.gen != gen_) return nullptr;
          if (e.key == p) return &e.v;
        }
      }
      SlotSteps& operator[](const Pte* p) {
        if (2 * (size_ + 1) > t_.size()) grow();
        return insert(p);
      }
      void clear() {
        if (++gen_ == 0) {  // wrapped: no stale entry may look current
          for (Entry& e : t_) e.gen = 0;
          gen_ = 1;
        }
        size_ = 0;
      }

     private:
      struct Entry {
        const Pte* key = nullptr;
        std::uint32_t gen = 0;  // current when == gen_
        SlotSteps v;
      };
      std::size_t mask() const { return t_.size() - 1; }
      std::size_t home(const Pte* p) const {
        return static_cast<std::size_t>((reinterpret_cast<std::uintptr_t>(p) >> 3) * 0x9E3779B97F4A7C15ull >>
                                        (64 - bits_));
      }
      SlotSteps& insert(const Pte* p) {
        for (std::size_t i = home(p);; i = (i + 1) & mask()) {
          Entry& e = t_[i];
          if (e.gen != gen_) {
            e = Entry{p, gen_, SlotSteps{}};
            ++size_;
            return e.v;
          }
          if (e.key == p) return e.v;
        }
      }
      void grow() {
        std::vector<Entry> old(t_.size() * 2);
        old.swap(t_);
        ++bits_;
        const std::uint32_t g = gen_;
        for (Entry& e : t_) e.gen = 0;
        gen_ = 1;
        size_ = 0;
        for (const Entry& e : old)
          if (e.gen == g) insert(e.key) = e.v;
      }
      unsigned bits_ = 8;
      std::vector<Entry> t_ = std::vector<Entry>(std::size_t{1} << 8);
      std::uint32_t gen_ = 1;
      std::size_t size_ = 0;
    };
    // lockish: every lock step; lock_changing: those that are not instant.
    PerBranch lockish = none(), lock_changing = none(), lock_sensitive = none(), write = none(), fill = none(),
              release = none(), tlbi = none();
    std::array<std::vector<int>, kMaxBranches> tlbi_steps, fill_steps, range_reads;
    SlotTable slots;

    void clear() {
      lockish = lock_changing = lock_sensitive = write = fill = release = tlbi = none();
      for (auto& v : tlbi_steps) v.clear();
      for (auto& v : fill_steps) v.clear();
      for (auto& v : range_reads) v.clear();
      slots.clear();
    }

    void add(int i, unsigned q, const Footprint& f) {
      if (takes_lock(f.kind)) lockish[q] = i;
      if (takes_lock(f.kind) && !f.lock_instant) lock_changing[q] = i;
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

    // For every branch q but p, the latest step of q that does not commute
    // with f, or -1 (one look-up of f's word serves every branch).
    void latest_all(const Impl& x, unsigned p, unsigned n, const Footprint& f, PerBranch& best) const {
      best = none();
      auto consider = [&](unsigned q, int i) {
        if (i > best[q] && dependent(x.fps[static_cast<std::size_t>(i)], f)) best[q] = i;
      };
      auto scan = [&](unsigned q, const std::vector<int>& v) {  // the latest dependent one
        for (auto it = v.rbegin(); it != v.rend() && *it > best[q]; ++it)
          if (dependent(x.fps[static_cast<std::size_t>(*it)], f)) {
            best[q] = *it;
            return;
          }
      };
      const bool lock = takes_lock(f.kind), wr = writes(f.kind), fl = fills(f.kind);
      const bool rel = f.kind == StepKind::Release, tlbi_step = f.kind == StepKind::Tlbi;
      for (unsigned q = 0; q < n; ++q) {
        if (q == p) continue;
        if (lock) consider(q, f.lock_instant ? lock_changing[q] : lockish[q]), consider(q, lock_sensitive[q]);
        if (f.lock_sensitive) consider(q, lock_changing[q]);
        if (rel) consider(q, write[q]), consider(q, fill[q]), consider(q, tlbi[q]);
        if (wr || fl || tlbi_step) consider(q, release[q]);
        if (tlbi_step) scan(q, fill_steps[q]);
        if (fl) scan(q, tlbi_steps[q]);
        if (wr && f.slot) scan(q, range_reads[q]);
      }
      if (f.slot)
        if (const SlotSteps* ss = slots.find(f.slot))
          for (unsigned q = 0; q < n; ++q)
            if (q != p) consider(q, wr ? ss->touch[q] : ss->write[q]);
      for (const Pte* w = f.read_lo; w && w < f.read_hi; ++w)
        if (const SlotSteps* ss = slots.find(w))
          for (unsigned q = 0; q < n; ++q)
            if (q != p) consider(q, ss->write[q]);
    }
  };
  DepIndex dep;

  // Per branch: the latest step of each other branch that does not commute
  // with a footprint (its pending step, mostly), brought up to date as
  // steps are appended. pick and record ask it for every branch at every
  // step; recomputing it each time was a quarter of the explorer's time.
  struct LatestDependent {
    Footprint f;
    bool valid = false;
    std::size_t upto = 0;  // steps[0, upto) are accounted for
    std::array<int, kMaxBranches> latest{};
  };
  std::array<LatestDependent, kMaxBranches> latest_dep;
  const std::array<int, kMaxBranches>& latest_for(unsigned p, const Footprint& f);

  StepRecord& record(unsigned b, const Footprint& f, StepRecord rec);
  StepRecord& record_at_once(unsigned b, const Footprint& f, StepRecord rec);
  StepRecord& append_step(unsigned b, const Footprint& f, StepRecord rec);

  // Steps that need no scheduling point. A branch holding the page-table
  // lock (a statement, a fault handler) loads and writes words that no
  // branch running without the lock ever touches — every word of the block
  // but the ones the hardware branches walk — in an order no other branch
  // can observe while it runs: every such step commutes with every step
  // another branch could take before it (those branches wait for the lock
  // or touch other words), and any later step of theirs that touches the
  // word comes after the lock is dropped. So the step runs at once, as part
  // of the branch's previous one (Lipton's reduction of invisible steps;
  // what DPOR would explore is unchanged: no race, no backtrack point, the
  // same classes). Off when readers are interleaved (they load every word
  // without the lock), when not reducing, and in a seeded run (it picks
  // among all orders).
  bool lock_private(unsigned b, const Pte* slot) const {
    return coalesce && lock_holder == static_cast<int>(b) &&
           std::find(lockfree_words.begin(), lockfree_words.end(), slot) == lockfree_words.end();
  }
  void plan_coalescing();
  bool coalesce = false;
  std::vector<const Pte*> lockfree_words;  // the words branches touch without the lock
  void step(unsigned b);
  bool execute();
  bool next_schedule();
  ExploreResult explore(std::uint64_t max);
  KeptRun run_seeded(std::uint64_t seed, Checker* live, SimEnv* machine);

  // ---- engine_branch.cpp: engine branches ----------------------------------

  struct MemOp {
    StepKind kind;
    Pte* slot;
    Pte value;
    Pte expected;
  };
  Pte env_op(unsigned b, const MemOp& op);
  void wait_turn(unsigned b);
  void tlbi(unsigned b, TlbiRequest req);
  std::pair<std::uint64_t, std::uint64_t> tlbi_range(const TlbiRequest& req) const;
  void lockless_retry(unsigned b);
  void run_engine(unsigned b);
  void release_engine(unsigned b);

  // ---- hw_branch.cpp: hardware branches and device walkers -----------------

  Footprint hw_footprint(unsigned b, StepKind k);
  void hw_step(unsigned b);
  void hw_walk(unsigned b, StepRecord& rec);
  void unmapped_access(unsigned b, StepRecord& rec, const std::string& why);
  void unmapped(unsigned b, const std::string& why);
  bool handler_fault(unsigned b, AccessFault af, Pte d) const;
  void dev_fault(unsigned b, StepRecord& rec, AccessFault af);
  void report_fault_loop(unsigned b, const std::string& fault, Pte pte);
  void dev_fault_handler(unsigned b);
  void dev_handler_done(unsigned b, StepRecord& rec);
  void hw_update(unsigned b, StepRecord& rec);
  void fill_tlb(unsigned b, const WalkResult& w, Pte cached);

  // ---- readers.cpp: lockless readers ---------------------------------------

  void replay_reader(unsigned b);
  void reader_step(unsigned b);

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
  // Per PTE word written in this execution: its value before, and its
  // writes in execution order (the same as happens-before: writes to one
  // word never commute). Sorted by word, for a binary search per load.
  struct WordWrites {
    const Pte* word;
    Pte initial;
    std::vector<ObsWrite> writes;
  };
  std::vector<WordWrites> obs_words;
  // An attempt's state: the cut and what the reader has gathered. A
  // lockless reader (ptep_get_lockless) keeps its first load whole and,
  // of the block's words it then loads, compares them without AF and dirty
  // and ORs their AF and dirty into its result: two attempts that agree on
  // those continue alike (without this, the 2^16 orders in which a reader
  // can see a block's AF/dirty being rewritten word by word are all apart).
  // `gathered` names that view of the attempt's values (see ReaderMove).
  struct ObsKey {
    Clock cut{};
    std::uint32_t gathered = 0;
    bool operator==(const ObsKey&) const = default;
  };
  struct ObsKeyHash {
    std::size_t operator()(const ObsKey& k) const {
      std::uint64_t h = k.gathered * 0x9e3779b97f4a7c15ull;
      for (std::uint32_t c : k.cut) h = (h ^ c) * 0xff51afd7ed558ccdull, h ^= h >> 32;
      return static_cast<std::size_t>(h ^ (h >> 29));
    }
  };
  // The states observed: open addressing with linear probing over a
  // power-of-two table (a node-based set allocated a node per state, which
  // was most of the reader's cost).
  class ObsSeen {
   public:
    // Whether k is new (and now in the set).
    bool insert(const ObsKey& k) {
      if ((size_ + 1) * 2 > keys_.size()) grow();
      if (insert_new(k)) return ++size_, true;
      return false;
    }
    void clear() {
      if (size_ == 0) return;
      std::fill(hashes_.begin(), hashes_.end(), 0);
      size_ = 0;
    }

   private:
    // hashes_[i] is 0 for a free slot, else the key's hash with bit 0 set
    // (compared before the key).
    bool insert_new(const ObsKey& k) { return insert_hashed(k, ObsKeyHash{}(k) | 1); }
    bool insert_hashed(const ObsKey& k, std::size_t h) {
      const std::size_t mask = keys_.size() - 1;
      for (std::size_t i = (h >> 1) & mask;; i = (i + 1) & mask) {
        if (hashes_[i] == 0) {
          hashes_[i] = h;
          keys_[i] = k;
          return true;
        }
        if (hashes_[i] == h && keys_[i] == k) return false;
      }
    }
    void grow() {
      std::vector<ObsKey> keys = std::move(keys_);
      std::vector<std::size_t> hashes = std::move(hashes_);
      keys_.assign(std::max<std::size_t>(64, keys.size() * 2), ObsKey{});
      hashes_.assign(keys_.size(), 0);
      for (std::size_t i = 0; i < keys.size(); ++i)
        if (hashes[i]) insert_hashed(keys[i], hashes[i]);
    }
    std::vector<ObsKey> keys_;
    std::vector<std::size_t> hashes_;
    std::size_t size_ = 0;
  };
  ObsSeen obs_seen;
  std::vector<ObsStep> obs_path;
  struct Witness {
    Pte value;
    std::vector<ObsStep> path;
  };
  std::vector<Witness> obs_found;
  std::uint64_t obs_nodes = 0;
  // observe_from's values tried, per recursion depth (the attempt's length
  // plus those of the attempts before it): kept to spare an allocation per
  // state; a deque, so that a deeper level's growth moves no shallower one.
  std::deque<std::vector<Pte>> obs_tried;
  std::size_t obs_retries = 0;

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
    // The attempt as the reader's result sees it: its first value whole,
    // the later ones without AF and dirty (a node of `gathered_nodes`), and
    // whether any later one was young / dirty.
    std::uint32_t gathered = 0;  // bit 31: some later value young; bit 30: dirty
  };
  static constexpr std::uint32_t kGatheredYoung = 1u << 31, kGatheredDirty = 1u << 30;
  // Per reader, the trie of attempts as gathered: children by value.
  std::vector<std::vector<std::vector<std::pair<Pte, std::uint32_t>>>> gathered_nodes;
  // Beyond this many moves a reader's trie starts again (a bound on memory;
  // the answers are recomputed, nothing is lost).
  static constexpr std::size_t kReaderMovesMax = 1u << 22;
  std::vector<std::vector<ReaderMove>> reader_moves;  // per branch; [0]: an attempt's start

  const ReaderMove& reader_move(unsigned b, std::uint32_t node, const std::vector<Pte>& log);
  std::uint32_t reader_child(unsigned b, std::uint32_t node, Pte v);
  std::uint32_t gathered_child(unsigned b, std::uint32_t node, Pte v);
  std::vector<WordWrites>::const_iterator word_lower_bound(const Pte* w) const;
  const WordWrites* word_writes(const Pte* w) const;
  const std::vector<ObsWrite>* writes_of(const Pte* w) const;
  Pte value_at(const Pte* w, const Clock& c) const;
  void index_writes();
  void observe_from(unsigned b, const Clock& cut, std::vector<Pte>& log, std::uint32_t node);
  bool in_cut(std::size_t i, const Clock& c) const { return c[steps[i].branch] >= clocks[i][steps[i].branch]; }
  std::vector<StepRecord> linearize(unsigned b, const std::vector<ObsStep>& path, std::optional<Pte> returns,
                                    bool all) const;
  // Observation reused across classes with the same order of PTE writes
  // (readers.cpp, write_order_key).
  static constexpr std::size_t kObservedMemoMax = 1u << 20;
  std::unordered_map<std::string, std::vector<Pte>> observed_memo;  // write_order_key -> values
  // Builds the key in `wok_key` (its buffers are reused: one key per
  // reader per class, and allocating them showed in profiles).
  const std::string& write_order_key(unsigned b);
  std::string wok_key;
  std::array<std::vector<std::uint32_t>, kMaxBranches> wok_positions;
  void observe_reader(unsigned b);
  void observe_reader_states(unsigned b);
  bool value_existed(unsigned b, Pte got) const;
  void check_readers();

  // ---- findings.cpp: checks and counterexamples ----------------------------

  void write_word(Pte* p, Pte v);
  void check_block_of(const Pte* p, std::uint64_t va);
  // Per block this execution wrote, whether its last check found it
  // clean (check_block_of); reset with every execution.
  struct CleanBlock {
    const Pte* first;
    bool clean, in_progress;  // clean as checked with / without a statement in progress
  };
  std::vector<CleanBlock> clean_blocks;
  void after_step();
  void fail(std::string rule, std::string verdict, std::uint64_t va,
            std::vector<StepRecord>* witness = nullptr);
  void merge_failures();
  void mark_culprit(ExploreFailure& f) const;
  void settle_and_check_tlbs();
  void final_checks();
  void tally_outcomes();
};

}  // namespace contpte
