// sweep/sweep.h — runs a shard of a sweep plan into a results file.
//
// Owns: the run of one key (its scenario under the configuration's header
// lines, the core as its `tlb` line and the sweep's seed as its `seed` line;
// or a trace replayed under the same), the check of every combination
// before anything runs, and the resumable append to the results file.
// Must not know: the CLI, Slurm (the shard comes in as a number pair).
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "sweep/plan.h"

namespace contpte::sweep {

// Parses every (scenario, configuration, core) of the plan as it will run;
// throws SweepError with the scenario's FILE:LINE:COL message on the first
// bad one. Traces and cores were checked by resolve_plan.
void check_plan(const Plan& plan);

// Runs plan.key(i) and returns its results line (sweep/results.h). An input
// error only visible while running gives a line with exit 2 and "error".
nlohmann::json run_one(const Plan& plan, std::size_t i);

struct SweepOptions {
  unsigned threads = 1;
  // After each run: runs done and runs to do in this process (serialized).
  std::function<void(std::size_t, std::size_t)> progress;
};

struct SweepOutcome {
  std::size_t shard_runs = 0;  // the shard's share of the plan
  std::size_t present = 0;     // already in the results file (skipped)
  std::size_t ran = 0;
  bool redone_partial = false;  // the file ended in a partly written line (dropped)
  int status = 0;               // the highest exit status of the runs made now
};

// Checks the plan, then runs the shard's runs that `out_path` does not hold
// yet, appending one line per run as it finishes. A new or empty file gets
// the header first; an existing one must have the same header (spec,
// version, shard), or SweepError is thrown before anything runs.
SweepOutcome run_sweep(const Plan& plan, Shard shard, const std::string& out_path, const SweepOptions& opts);

}  // namespace contpte::sweep
