// Regression: an access retried after its fault was counted twice in
// `accesses` (fixed in f93cbe3).

#include <gtest/gtest.h>

#include "support/scenario_run.h"

using namespace contpte;

namespace {

using contpte::testing::ran_ok;
using contpte::testing::run;

// A faulting access is re-executed after the fault handler; the program
// made one access, so `accesses` counts it once.
TEST(MmFault, RetriedAccessesAreCountedOnce) {
  RunResult r = run("mmap A 64K addr=0x4000000000\nwrite A 64K\nexpect stat accesses == 16\n"
                    "expect stat faults == 16\n");
  EXPECT_TRUE(ran_ok(r));
}

}  // namespace
