// trace/replay.h — replay of a recorded trace (trace/trace.h) through
// the memory manager and MMU models, under one configuration or all the
// built-in ones.
//
// Owns: placing each recorded mapping as Linux would (top-down, THP-aligned
// through the simulated mm; the brk heap low, after where the program would
// be), translating mapping-relative offsets into simulated addresses,
// rounding ranges to the simulated page size, and which syscalls replay
// models (docs/trace.md lists the approximations).
// Must not know: how the trace was recorded; report formats.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "scenario/configs.h"
#include "scenario/runner.h"
#include "trace/trace.h"

namespace contpte {

struct ReplayOptions {
  RunOptions run;
  // Called now and then with the compressed bytes read so far and the file
  // size; from several threads when configurations replay in parallel
  // (calls are serialized).
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
};

// Replays `path` under `config`. Throws TraceError for a trace that cannot
// be read (nothing is reported), ScenarioError for a bad configuration.
// The result's stats are the suite's, plus `replay_unresolved_accesses`
// (accesses the replayed layout could not satisfy: counted, skipped) and
// `replay_failed_mmaps`.
RunResult replay_trace(const std::string& path, const BuiltinConfig& config, const ReplayOptions& opts);

// The trace under every built-in configuration, on up to `threads` threads,
// in kBuiltinConfigs order.
std::vector<RunResult> replay_compare(const std::string& path, const ReplayOptions& opts, unsigned threads);

// Replays records already in memory (tests and benchmarks).
RunResult replay_records(const TraceContents& trace, const BuiltinConfig& config, const RunOptions& opts);

}  // namespace contpte
