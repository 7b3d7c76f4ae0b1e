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

// Each block's verdict, configuration, branches and counterexamples.
// Without `verbose` a counterexample collapses runs of like steps (same
// branch, operation and engine function, consecutive pages, the same PTE
// state but the PFN) into one line, and a further failing rule's
// counterexample is printed only when it differs from one already printed
// (else it is named as the same interleaving, or as its first N steps).
// Every step is labelled with the engine function it belongs to.
void print_explorations(std::ostream& out, const RunResult& r, bool verbose = false);

// The last line printed for a file (`contpte explore`): its verdict —
// "FILE: FAILED — ...", "FILE: ok — every interleaving ... passes", or
// "FILE: BOUNDED — ...".
void print_explore_verdict(std::ostream& out, const RunResult& r);

// {"line", "branches", "executions", "sleep_blocked", "steps", "exhausted",
//  "seconds", "verdict", "failure": {"rule", "verdict", "va", "marked", "steps": [...]}}
nlohmann::json explorations_json(const RunResult& r);

// Each parallel block as `contpte run` executed it: how every branch ended
// (an access that did not complete says why).
void print_parallel_runs(std::ostream& out, const RunResult& r);
// [{"line", "branches": [{"branch", "line", "text", "outcome", "completed"}]}]
nlohmann::json parallel_runs_json(const RunResult& r);

}  // namespace contpte
