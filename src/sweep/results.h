// sweep/results.h — the JSON Lines results file of a sweep.
//
// Owns: the file format. Line 1 is the header
//   {"contpte_sweep": 1, "version": V, "spec": {...resolved spec...},
//    "planned": RUNS_IN_THE_WHOLE_SWEEP, "shard": {"index", "count", "runs"}}
// then one line per finished run
//   {"key": {...}, "stats": {...}, "expects": {...}, "expect_failures": [...],
//    "violations": [...], "exit": N, "wall_s": X}   (+ "error" on a run error)
// written whole with its newline by one write, so a killed process leaves at
// most one partly written last line (no newline): that run counts as not done.
// Must not know: how runs execute.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sweep/plan.h"

namespace contpte::sweep {

inline constexpr int kResultsFormat = 1;

nlohmann::json results_header(const Plan& plan, Shard shard, std::size_t shard_runs);

struct ResultLine {
  unsigned line = 0;     // 1-based line number in its file
  nlohmann::json value;  // the whole line
  std::string id;        // RunKey::id() of its key
};

struct ResultsFile {
  std::string path;
  nlohmann::json header;
  std::vector<ResultLine> runs;
  bool partial_tail = false;      // a last line without its newline (ignored)
  unsigned partial_line = 0;      // its line number
  std::uint64_t complete_bytes = 0;  // bytes up to the last complete line
};

// Reads a results file. A line that is not a run of this header's sweep (bad
// JSON, missing fields, a key outside the spec) throws SweepError
// `FILE:LINE: error: ...`; a partly written last line is not an error.
// A file whose header line is incomplete has `header` null and no runs.
ResultsFile read_results_file(const std::string& path);

// A run line's identity for comparing runs of different threads, shards or
// orders: the line without `wall_s`.
nlohmann::json comparable(const nlohmann::json& run_line);

// The runs of a results file as flat records, one per run: the key's fields,
// then every stat, then `exit`, `wall_s`, `expects_passed`, `expects_failed`,
// `violations` (a count) — ready for a data frame.
std::vector<nlohmann::json> flat_records(const ResultsFile& f);

}  // namespace contpte::sweep
