// report/explore_report.h — what `contpte explore` prints and writes.
//
// Owns: the verdict of each explored `parallel` block and, for a failure,
// the counterexample laid out so that a reviewer sees the bug in one read:
// the verdict and the rule or expect that failed, the configuration, the
// branches, each step (branch, line, operation, PTE before and after) with
// the step that lost the information marked, then the totals explored.
// Must not know: how interleavings are explored.
#pragma once

#include <iosfwd>

#include <nlohmann/json.hpp>

#include "scenario/runner.h"

namespace contpte {

void print_explorations(std::ostream& out, const RunResult& r);

// {"line", "branches", "executions", "sleep_blocked", "steps", "exhausted",
//  "seconds", "verdict", "failure": {"rule", "verdict", "va", "marked", "steps": [...]}}
nlohmann::json explorations_json(const RunResult& r);

}  // namespace contpte
