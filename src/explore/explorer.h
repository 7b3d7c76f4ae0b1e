// explore/explorer.h — deterministic interleaving of concurrent branches at
// the granularity of single PTE loads, stores, exchanges, compare-exchanges
// and TLB invalidations, exhaustively (stateless model checking with
// dynamic partial-order reduction and sleep sets) or in one seeded order.
//
// Owns: the schedule, the stepping Env the engine runs on (StepEnv), the
// other CPUs' hardware accesses (walk, AF/DBM compare-exchange, TLB fill,
// fault and retry after the page-table lock), lockless readers, the page
// table lock, the conformance checks in every state and the built-in
// properties in every final state, and the shortest counterexample.
// Must not know: scenario syntax, report formats. Branch bodies and the
// final-state check come from the caller as callables.
//
// How the engine code is stepped without a copy of it: an engine branch
// runs inline, on the explorer's stack, and every Env call is a scheduling
// point where the explorer may first run steps of the other branches. At
// most one engine branch is inside its statement (it holds the page-table
// lock), so one stack suffices for it. Lockless readers are engine code too
// and may be several at once: they are re-executed from their start with
// the values their earlier loads returned (they have no other effect) and
// stopped at their next load. Hardware accesses are small state machines.
//
// Every execution starts again from the state before the block: PTE writes
// are undone from a log, the checker and the per-branch state are copies.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/env.h"
#include "engine/external.h"
#include "hw/checker.h"
#include "hw/page_table.h"
#include "hw/phys_mem.h"
#include "hw/sim_env.h"
#include "hw/tlb.h"

namespace contpte {

class Explorer;

// What one step did, in the order the branches could observe.
enum class StepKind : std::uint8_t {
  Acquire,      // engine branch takes the page-table lock (its statement starts)
  Release,      // statement done: settle A/D bookkeeping, drop the lock
  Load,         // READ_ONCE of a PTE
  Store,        // WRITE_ONCE
  Xchg,         // get-and-clear
  Cmpxchg,      // software compare-exchange
  Tlbi,         // TLB invalidation (engine or its core-mm caller)
  HwWalk,       // another CPU walks: reads the PTE, fills its TLB if no update is needed
  HwUpdate,     // that CPU's AF/DBM compare-exchange (and fill on success)
  FaultRetry,   // the fault handler took the page-table lock; the access retries
                //   (a dev handler runs under it and drops it with a Release)
  ReaderRetry,  // a lockless reader saw a torn block and starts again
};
std::string_view step_kind_name(StepKind k);

struct StepRecord {
  unsigned branch = 0;
  StepKind kind = StepKind::Load;
  std::uint64_t va = 0;   // the PTE's VA, the access's VA or the flush start
  std::uint64_t nr = 0;   // pages flushed (Tlbi)
  Pte before{}, after{};  // the PTE word before and after (memory steps)
  bool wrote = false;     // the word changed
  std::string note;       // e.g. "translation fault: waits for the page-table lock"
  // The engine function (and its caller) the step belongs to, from the
  // EngineScope markers (engine/env.h); empty for hardware and lock steps.
  EngineWhere where;
};

// The engine's Env inside the explorer: each memory or TLB operation is a
// step. Also what a statement's core-mm caller does around the arch call.
class StepEnv {
 public:
  StepEnv(Explorer& x, unsigned branch) : x_(&x), branch_(branch) {}

  // ---- the Env interface (engine/env.h) ----
  Pte read(PteSlot s);
  void write(PteSlot s, Pte v);
  Pte xchg(PteSlot s, Pte v);
  Pte cmpxchg(PteSlot s, Pte expected, Pte v);
  void flush_tlb_range(TlbFlush f);
  void flush_tlb_page(VirtAddr a, bool sync);
  void flush_tlb_mm();
  FolioInfo folio_of(Pfn pfn) const;
  const Features& features() const;
  const Geometry& geometry() const;
  bool mm_is_user() const { return true; }
  EngineCounters& counters() { return counters_; }
  // ptep_get_lockless calls this before it starts again on a torn block.
  void lockless_retry();
  // EngineScope: the function the branch's next steps belong to.
  EngineWhere enter_function(std::string_view fn);
  void leave_function(EngineWhere previous);
  // An engine built from a Linux tree (engine/external.h): its accesses
  // are checked against the live tables, its findings fail the execution.
  bool is_pte_word(const Pte* p) const;
  void engine_finding(EngineFinding f);

  // ---- the caller's side ----
  // The TLB flush a core-mm caller issues after the arch call (flush_tlb_page
  // / flush_tlb_range): one step, counted as caller_tlbi.
  void caller_flush(VirtAddr va, std::uint64_t nr);
  // The execution's checker (null when checking is off).
  Checker* checker() const;
  std::uint16_t asid() const;

  const EngineCounters& counters() const { return counters_; }
  std::uint64_t caller_tlbi() const { return caller_tlbi_; }

 private:
  Explorer* x_;
  unsigned branch_;
  EngineCounters counters_;
  std::uint64_t caller_tlbi_ = 0;
};
static_assert(Env<StepEnv>);

struct ExploreBranch {
  enum class Kind : std::uint8_t { Engine, Hw, Reader };
  Kind kind = Kind::Engine;
  std::string label;  // source text, e.g. "engine ptep_set_wrprotect 0x40000000"
  unsigned line = 0;
  std::function<void(StepEnv&)> body;  // Engine: the statement, with its caller's flush
  MemAccess access = MemAccess::Read;  // Hw
  VirtAddr va{};                       // Hw, Reader
  PteSlot slot{};                      // Reader: the PTE it reads
  // Hw: the process has mappings and none covers `va` (a memory-manager
  // scenario): a translation fault finds no VMA, which is an error at once.
  bool no_vma = false;
  // Hw: a device walker without hardware A/D updates (`dev`, an SMMU
  // without HTTU) instead of another CPU: it faults on AF=0 and on a write
  // to a PTE_RDONLY entry; its fault handler takes the page-table lock and
  // runs handle_pte_fault's path (mm/pte_fault.h) through this branch's
  // StepEnv, each memory operation a step; then the access retries.
  // Faulting again for the reason just handled, with the PTE as the
  // handler left it, is rule fault_loop. Inside a VMA the handler is the
  // memory manager's path for a present PTE the VMA permits (`segv`: it
  // does not permit the access, the process's SIGSEGV, an error of the
  // run); the set-up refuses a dev branch whose fault would allocate or
  // copy (no PTE; a write to a PTE without write permission).
  // A CPU (`hw`) on a core without FEAT_HAFDBS runs the same handler for
  // its access-flag and dirty-state faults (docs/explore.md).
  bool device = false;
  bool segv = false;
};

// How a branch ended in one execution.
enum class BranchEnd : std::uint8_t {
  Completed,  // engine: the statement returned; hw: the access completed; reader: returned
  Faulted,    // hw: a permission / access-flag fault again after its handler ran;
              //     dev: fault_loop
  Unmapped,   // hw: no valid PTE after the fault handler ran and no statement in progress,
              //     or no VMA: an error of the run
  Stuck,      // never finished (a reader on a block that stays torn)
};
std::string_view branch_end_name(BranchEnd e);

// Per branch, over every execution explored: in how many it ended each way.
struct BranchOutcomes {
  std::uint64_t completed = 0, faulted = 0, unmapped = 0, stuck = 0;
  std::string first_fault;  // the first fault that ended the access, e.g. "permission fault (read-only)"
  bool always_completed() const { return faulted == 0 && unmapped == 0 && stuck == 0; }
};

// A final state of one execution, for tests that compare explorations:
// how each branch ended and, per reader, every value it can return there
// (one when readers are interleaved, all of them when they are observed).
struct FinalState {
  std::vector<BranchEnd> ends;
  std::vector<std::vector<Pte>> reader_values;  // per branch; empty for others
};

struct ExploreSetup {
  std::string source;  // the scenario file, to name branch lines in messages
  PhysMem* mem = nullptr;
  PageTable* pt = nullptr;
  std::uint16_t asid = 1;
  Features features;
  const Checker* checker = nullptr;  // state before the block; null: checking off
  std::vector<ExploreBranch> branches;
  // The `expect`s after the block, in a final state: one message per failure.
  // `counters` are what the engine branches counted in this execution.
  std::function<std::vector<std::string>(const EngineCounters& counters)> check_final;
  // false: every interleaving, no partial-order reduction (tests compare the
  // final states both reach).
  bool reduce = true;
  // With `reduce`: lockless readers are observers — not interleaved, but
  // every value sequence they can load is enumerated over each execution of
  // the other branches (explorer.cpp, "lockless readers as observers").
  // false: they are interleaved step by step like the other branches.
  bool observe_readers = true;
  // With `reduce`: a CPU's fault handler that takes the page-table lock and
  // drops it at once commutes with another such handler and with a walk
  // that looks at the lock (explorer.cpp, Footprint::lock_instant). false:
  // every pair of lock steps is ordered (tests compare the two).
  bool commute_instant_locks = true;
  // With `reduce`: a branch holding the page-table lock takes its steps on
  // words no branch touches without the lock at once, with no scheduling
  // point before them (explorer_impl.h, lock_private). false: every step is
  // a scheduling point (tests compare the two).
  bool coalesce_lock_private = true;
  // Called with each complete execution's final state (tests).
  std::function<void(const FinalState&)> on_final;
  // Called every kProgressEvery complete executions of explore() with the
  // count so far and the seconds since it began (a terminal's progress line).
  std::function<void(std::uint64_t executions, double seconds)> progress;
  static constexpr std::uint64_t kProgressEvery = 1024;
};

struct ExploreFailure {
  std::string verdict;  // "lost_dirty: ptep_get reports clean ..." or an expect's message
  std::string rule;     // checker rule, "expect", "reader" or "deadlock"
  std::uint64_t va = 0;
  std::vector<StepRecord> steps;
  int marked = -1;      // index of the step that lost the information, if known
  std::string mark_note;
};

struct ExploreResult {
  std::uint64_t executions = 0;    // complete interleavings explored
  std::uint64_t sleep_blocked = 0; // executions cut as equivalent to one explored
  std::uint64_t steps = 0;         // steps executed over all executions
  std::uint64_t steps_at_once = 0; // of those, lock-private ones run with no scheduling point
  std::uint64_t reader_states = 0; // observed readers: (cut, loaded values) states visited
  std::uint64_t reader_memo_hits = 0; // observed readers whose writes' order an earlier class had
  std::uint64_t failing = 0;       // executions that failed
  bool exhausted = false;          // every interleaving (up to equivalence) explored
  double seconds = 0;
  // The shortest counterexample found for each rule that failed (a finding
  // does not end its execution, so one bug does not hide another), the
  // losses of information first.
  std::vector<ExploreFailure> failures;
  std::vector<BranchOutcomes> outcomes;  // per branch, in the block's order
  bool failed() const { return !failures.empty(); }
};

// Result of one seeded execution that is kept (`contpte run`).
struct KeptRun {
  std::vector<StepRecord> steps;
  EngineCounters counters;         // summed over the engine branches
  std::uint64_t caller_tlbi = 0;
  // Reader / deadlock / unmapped findings: errors of the run, each with
  // the line of its branch.
  struct Problem {
    unsigned line = 0;
    std::string text;
  };
  std::vector<Problem> problems;
  std::vector<BranchEnd> ends;        // per branch
  std::vector<std::string> outcomes;  // per branch, e.g. "completed", "faulted: permission fault"
};

class Explorer {
 public:
  static constexpr unsigned kMaxBranches = 16;
  explicit Explorer(ExploreSetup setup);
  ~Explorer();
  Explorer(const Explorer&) = delete;
  Explorer& operator=(const Explorer&) = delete;

  // Every interleaving up to equivalence, at most `max` complete ones; the
  // memory is left as it was before.
  ExploreResult explore(std::uint64_t max);

  // One interleaving chosen by `seed`, kept in memory; the checker given
  // (the run's own) sees it, and each of its TLB invalidations also reaches
  // `machine`'s TLBs (the address space's Env in the machine, the MMU
  // behind it) through SimEnv::invalidate_tlb as it is made; null: none.
  KeptRun run_seeded(std::uint64_t seed, Checker* live, SimEnv* machine = nullptr);

 private:
  friend class StepEnv;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace contpte
