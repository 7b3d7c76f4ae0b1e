// `contpte run --scale N` (RunOptions::scale): every access statement makes
// N times its accesses, and `expect stat accesses` is scaled to match, so a
// file's own expectations hold at any scale.
#include <gtest/gtest.h>

#include "workload/runner.h"
#include "workload/scenario.h"

using namespace contpte;

namespace {

TEST(Scale, AccessStatementsRunNTimesAndTheAccessExpectationFollows) {
  const Scenario sc = parse_scenario(
      "mthp 64K\n"
      "mmap A 1M addr=0x4000000000\n"
      "write A 1M stride=4K\n"                      // 256 accesses, one pass
      "read A 1M stride=4K count=100 pattern=random\n"
      "expect stat accesses == 356\n"
      "expect stat rss_bytes == 1M\n",
      "t.cpt");
  RunOptions opts;
  const RunResult one = run_scenario(sc, opts);
  EXPECT_EQ(one.exit_status(), 0);
  EXPECT_EQ(one.stat("accesses"), 356);
  opts.scale = 3;
  const RunResult three = run_scenario(sc, opts);
  EXPECT_EQ(three.exit_status(), 0) << (three.failures.empty() ? "" : three.failures[0].message);
  EXPECT_EQ(three.stat("accesses"), 3 * 356);
  EXPECT_EQ(three.stat("faults_anon"), one.stat("faults_anon"));  // the same memory, touched more
}

}  // namespace
