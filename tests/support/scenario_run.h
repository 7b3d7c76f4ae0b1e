// tests/support/scenario_run.h — running scenario text in tests, and a
// failure message that says which expect, violation or error broke a run.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "scenario/runner.h"
#include "scenario/scenario.h"

namespace contpte::testing {

inline RunResult run(std::string_view text, const RunOptions& opts = {}) {
  return run_scenario(parse_scenario(text, "t.cpt"), opts);
}

inline std::string describe(const RunResult& r) {
  std::string s;
  for (const auto& f : r.failures) s += std::to_string(f.loc.line) + ": " + f.message + "\n";
  for (const auto& v : r.violations) s += "violation " + std::string(rule_name(v.rule)) + " line " + std::to_string(v.line) + "\n";
  if (r.error) s += *r.error + "\n";
  return s;
}

// EXPECT_TRUE(ran_ok(r)): every expect held, no unclaimed finding, no error.
inline ::testing::AssertionResult ran_ok(const RunResult& r) {
  if (r.exit_status() == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "exit status " << r.exit_status() << "\n" << describe(r);
}

}  // namespace contpte::testing
