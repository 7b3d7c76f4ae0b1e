// report/report.h — what `contpte run` prints and writes.
//
// Owns: the human-readable summary of runs and the JSON report with the
// stable keys of docs/scenario.md ("version", "runs", "config", "stats",
// "expects", "violations").
// Must not know: how runs are executed.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenario/runner.h"

namespace contpte {

// One run as the report's `runs` list holds it (sweep lines reuse its
// stats, expects and violations).
nlohmann::json run_json(const RunResult& r);

// The report as JSON: {"version": 1, "runs": [...]}.
nlohmann::json json_report(const std::vector<RunResult>& runs);

// Per run: file and configuration, statements, expects passed/failed,
// the counters, then each failed expect with its line, violations, error.
void print_summary(std::ostream& out, const RunResult& r);

// The main job's comparison: per workload (scenario), one row per
// configuration with TLB misses per thousand accesses, walk cycles, faults,
// bytes zeroed and copied by faults, folds, unfolds, TLB invalidations,
// cont_coverage, RSS, and the translation-cycle speedup against `baseline`.
void print_comparison(std::ostream& out, const std::vector<RunResult>& runs,
                      std::string_view baseline = "base-4k");

// The same as an SVG chart: per workload, the speedup and the memory cost
// (RSS relative to the baseline) of each configuration, as grouped bars.
std::string comparison_svg(const std::vector<RunResult>& runs, std::string_view baseline = "base-4k");

// One closing line over several runs.
void print_totals(std::ostream& out, const std::vector<RunResult>& runs);

}  // namespace contpte
