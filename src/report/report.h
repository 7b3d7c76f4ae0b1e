// report/report.h — what `contpte run` prints and writes.
//
// Owns: the human-readable summary of runs and the JSON report with the
// stable keys of SCENARIO.md ("version", "runs", "config", "stats",
// "expects", "violations").
// Must not know: how runs are executed.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "workload/runner.h"

namespace contpte {

// The report as JSON: {"version": 1, "runs": [...]}.
nlohmann::json json_report(const std::vector<RunResult>& runs);

// Per run: file and configuration, statements, expects passed/failed,
// the counters, then each failed expect with its line, violations, error.
void print_summary(std::ostream& out, const RunResult& r);

// One closing line over several runs.
void print_totals(std::ostream& out, const std::vector<RunResult>& runs);

}  // namespace contpte
