// fork and copy-on-write (src/mm/fork.cpp) against Linux 6.18: fork's
// write-protect of both sides, the child's one-page copy, the reuse of an
// exclusive large folio (and the unfold it causes).

#include <gtest/gtest.h>

#include "support/scenario_run.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

using namespace contpte;

namespace {

using contpte::testing::ran_ok;
using contpte::testing::run;

TEST(MmCow, ForkWriteProtectsBothAndTheChildWriteCopiesOnePage) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "fork\n"
      "expect cont A 64K\n"
      "expect pte A write=0 dirty=1\n"
      "process 1\n"
      "expect cont A 64K\n"
      "expect pte A write=0 young=0\n"
      "write A+0x3000 4K\n"
      "expect nocont A 64K\n"               // the copy's ptep_clear_flush unfolded it
      "expect stat faults_cow == 1\n"
      "expect pte A+0x3000 write=1\n"
      "process 0\n"
      "expect cont A 64K\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmCow, ExclusiveLargeFolioIsReusedAndItsBlockStaysUnfolded) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "fork\n"
      "exit 1\n"
      "write A+0x4000 4K\n"
      "expect stat faults_reuse == 1\n"
      "expect stat reuse_unfolds == 1\n"
      "expect nocont A 64K\n"
      "write A+0x5000 4K\n"
      "expect stat faults_reuse == 2\n"
      "expect nocont A 64K\n"
      "expect stat folds == 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmCow, ForkWriteProtectsABatchWhoseLaterPagesWereReused) {
  // After reuse page by page, one folio's PTEs differ in write permission;
  // fork batches them (folio_pte_batch merges the write bit) and must
  // write-protect them all, or the parent's writes would reach the child.
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "fork\n"
      "exit 1\n"
      "write A+0x4000 4K\n"               // reused: only this PTE writable
      "expect pte A write=0\n"
      "expect pte A+0x4000 write=1\n"
      "fork\n"
      "expect pte A+0x4000 write=0\n"
      "process 2\n"
      "expect pte A+0x4000 write=0\n"
      "process 0\n"
      "write A+0x4000 4K\n"
      "expect stat faults_cow == 1\n");
  EXPECT_TRUE(ran_ok(r));
}

}  // namespace
