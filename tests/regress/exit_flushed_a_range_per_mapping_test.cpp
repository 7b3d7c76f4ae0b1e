// Regression: exit issued a range flush per VMA instead of one ASID flush
// (fixed in f93cbe3).

#include <gtest/gtest.h>

#include "support/scenario_run.h"

using namespace contpte;

namespace {

using contpte::testing::ran_ok;
using contpte::testing::run;

// exit tears down the whole address space: no range flush per mapping,
// one flush_tlb_mm (arm64 tlb_flush with fullmm). Found by the workload
// author: exit used to issue a range flush per VMA (one TLBI per page at
// 16K pages).
TEST(MmExit, ExitIssuesOneAsidFlushNotARangePerMapping) {
  RunResult r = run(
      "granule 16K\nmthp none\n"
      "fork\nprocess 1\n"
      "mmap A 16M addr=0x4000000000\nmmap B 8M addr=0x4040000000\n"
      "write A 16M stride=16K\nwrite B 8M stride=16K\n"
      "expect stat tlbi_instructions == 1\n"   // fork's flush_tlb_mm of the parent
      "process 0\nexit 1\n"
      "expect stat tlbi_instructions == 2\n"
      "expect stat tlbi_instructions_asid == 2\n"
      "expect stat folios_freed == 1536\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

}  // namespace
