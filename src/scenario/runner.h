// scenario/runner.h — the interpreter of a parsed scenario over the
// simulated machine (sim/machine.h), checking its `expect`s.
//
// Owns: the run of one scenario under one configuration: allocation of the
// named folios, the statements in order, the expects where they stand, the
// counters that make up the report's `stats`.
// Must not know: report formats (JSON, tables) — it returns a RunResult.
//
// Errors: input that can only be found while running (an address that
// resolves badly) throws ScenarioError (exit 2, no report); a run error (a
// fault nothing handles) ends the run with RunResult::error set (exit 1).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "explore/explorer.h"
#include "hw/checker.h"
#include "scenario/scenario.h"
#include "sim/watcher.h"

namespace contpte {

struct ExternalEngine;

// A configuration as the report names it: a built-in one, or `file` when the
// scenario's own header is used.
struct RunConfig {
  std::string name = "file";
  std::string granule = "4K";
  std::string contpte = "upstream";
  std::vector<std::string> mthp;
  std::string tlb = "default";
};

struct ExpectFailure {
  SourceLoc loc;
  std::string message;  // "expect raw 0x40000000: young: expected 1, found 0"
};


// One `parallel` block as `contpte explore` explored it.
struct BlockExploration {
  SourceLoc loc;                      // the `parallel` line
  std::vector<std::string> branches;  // each branch's source text
  std::vector<unsigned> lines;        // and line
  ExploreResult result;
};

// One `parallel` block as `contpte run` executed it (its seeded
// interleaving): how each branch ended ("completed", "faulted: ...",
// "unmapped: ...", "never finished").
struct ParallelRun {
  SourceLoc loc;                      // the `parallel` line
  std::vector<std::string> branches;  // each branch's source text
  std::vector<unsigned> lines;        // and line
  std::vector<std::string> outcomes;  // and how it ended
};

struct RunResult {
  std::string scenario;  // file name as given
  RunConfig config;
  // Report `stats`, in a stable order of keys (sim/stats.h).
  std::vector<std::pair<std::string, double>> stats;
  unsigned statements = 0;
  unsigned expects_passed = 0;
  unsigned expects_failed = 0;
  std::vector<ExpectFailure> failures;
  std::vector<Violation> violations;
  std::optional<std::string> error;  // run error, e.g. an unhandled fault
  std::vector<BlockExploration> explorations;  // `contpte explore`: one per parallel block
  std::optional<std::string> isa;  // a replayed trace's ISA ("x86-64", "aarch64", "unknown")
  // --kernel: the arch helpers the tree lacks whose generic core-mm version
  // ran in this run (docs/kernel.md "Fallbacks"), sorted; where a stat
  // differs from the built-in engine's, one of these is why.
  std::vector<std::string> kernel_fallbacks;
  std::vector<ParallelRun> parallel_runs;      // every parallel block, as run (seeded)

  // 0 every expect held; 1 a failure, an unclaimed violation or a run error;
  // 3 (`contpte explore`) otherwise, when an exploration reached its bound:
  // nothing failed, but nothing is proved either.
  int exit_status() const;
  double stat(std::string_view name) const;
};

// `--trace`: what a run shows as it goes: every statement, each step of a
// parallel block's interleaving, and (as a MachineWatcher) every PTE access
// and TLB invalidation of every process. The printer is
// report/trace_printer.h, wired by apps/.
class RunTrace : public MachineWatcher {
 public:
  // `st` is about to run.
  virtual void on_statement(const Statement& st) = 0;
  // One step of the interleaving a parallel block `st` ran in, made by the
  // branch written at `branch`.
  virtual void on_block_step(const Statement& st, const SourceLoc& branch, const StepRecord& step,
                             unsigned page_shift) = 0;
};

struct RunOptions {
  RunTrace* trace = nullptr;      // --trace (report/trace_printer.h)
  std::ostream* dump = nullptr;   // where `dump` prints (stdout by default)
  bool check = true;              // run the conformance checker (`--no-check`: off)
  // `contpte explore`: explore every interleaving of each parallel block (at
  // most this many), then go on from the seeded one. Unset: run the seeded
  // interleaving only.
  std::optional<std::uint64_t> explore_max;
  // Called as an exploration goes on (ExploreSetup::progress) with the
  // parallel block's "FILE:LINE": a terminal's progress line.
  std::function<void(const std::string& where, std::uint64_t executions, double seconds)> explore_progress;
  // `--scale N`: run the scenario N times larger (scenario/scale.h: every
  // mapping, range and access count grows N times). run_driven ignores it.
  std::uint64_t scale = 1;
  // `--kernel DIR`: the engine seam's choice. Set, every engine call runs the
  // code of a Linux tree built for the run's granule and configuration
  // (true: CONFIG_ARM64_CONTPTE=y for `contpte upstream`, false for `off`);
  // other variants are a ScenarioError. Unset: the built-in engine.
  std::function<const ExternalEngine*(const Geometry&, bool contpte)> kernel_engine;
  // Tests only (no flag reaches it): adjusts the built-in engine's features,
  // e.g. Features::test_gathered_access_flags_check.
  std::function<void(Features&)> test_features;
};

// Checks what can only be checked against the runner's capabilities
// (statements of later issues, stat names: sim/stats.h); throws
// ScenarioError.
void validate_for_run(const Scenario& sc);

RunResult run_scenario(const Scenario& sc, const RunOptions& opts = {});

class Mm;

// The machine a run builds from a scenario header, for runs driven by code
// instead of statements (trace replay): its processes and the path every
// user access takes (MMU, fault to the memory manager, retry).
class RunMachine {
 public:
  virtual ~RunMachine() = default;
  virtual Mm& mm(std::size_t pid) = 0;
  // fork() of process `parent`; returns the child's pid.
  virtual std::size_t fork(std::size_t parent) = 0;
  virtual void exit(std::size_t pid) = 0;
  // One user access; false when the fault cannot be resolved (SIGSEGV).
  // `continued`: the second page of an access that straddles a page
  // boundary, translated but not counted again in `accesses` (the program
  // made one access, whatever the granule).
  virtual bool access(std::size_t pid, std::uint64_t va, MemAccess kind, bool continued = false) = 0;
  // The end of a step for the conformance checker (a statement's end).
  virtual void end_step() = 0;
  // User instructions the driven program executed (the `instructions`
  // stat; without a call, a run counts accesses x insns_per_access).
  virtual void count_instructions(std::uint64_t n) = 0;
};

// Builds the machine `sc.header` describes (sc's statements are not run),
// lets `drive` run it, and collects the stats as run_scenario does.
RunResult run_driven(const Scenario& sc, const RunOptions& opts, const std::function<void(RunMachine&)>& drive);

}  // namespace contpte
