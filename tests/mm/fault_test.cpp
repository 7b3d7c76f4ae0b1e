// The anonymous fault (src/mm/fault.cpp) against Linux 6.18's
// do_anonymous_page, seen through scenarios: mTHP order choice, the
// VMA and empty-PTE limits, allocation fallback and its counters.

#include <gtest/gtest.h>

#include "support/scenario_run.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

using namespace contpte;

namespace {

using contpte::testing::describe;
using contpte::testing::ran_ok;
using contpte::testing::run;

TEST(MmFault, WriteFaultMapsTheLargestAllowedFolioAsOneContBlock) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 256K addr=0x4000000000\n"
      "write A+0x5000 4K\n"
      "expect cont A 64K\n"
      "expect nocont A+0x10000 192K\n"
      "expect stat anon_fault_alloc_64K == 1\n"
      "expect stat folds == 0\n"
      "expect pte A+0x5000 dirty=1 write=1 young=1\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmFault, WithoutMthpEveryFaultIsOnePage) {
  RunResult r = run(
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "expect nocont A 64K\n"
      "expect stat faults_anon == 16\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmFault, OrderMustFitTheVmaAndEmptyPtes) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 96K addr=0x4000000000\n"   // the second 64K block is cut by the VMA end
      "write A+0x10000 4K\n"
      "expect nocont A+0x10000 32K\n"
      "expect stat anon_fault_alloc_64K == 0\n"
      "read A 4K\n"                       // zero page in the first block
      "write A+0x8000 4K\n"               // block not empty: order 0
      "expect nocont A 64K\n"
      "expect stat faults_zero == 1\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmFault, AllocationFailureFallsBackAndIsCounted) {
  // 2M of RAM, one frame of it the zero page: 31 aligned 64K blocks are
  // left; the 32nd fault falls back to a single page.
  RunResult r = run(
      "mthp 64K\n"
      "memory 2M\n"
      "mmap A 4M addr=0x4000000000\n"
      "write A 2M stride=64K\n"
      "expect stat anon_fault_alloc_64K == 31\n"
      "expect stat anon_fault_fallback_64K == 1\n"
      "expect nocont A+0x1f0000 64K\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmFault, FragmentedMemoryFallsBackToSmallerOrders) {
  // fragment 1: every free frame is at order 0, the blocks the zero page
  // split included (SCENARIO.md): no 64K folio at all, every fault falls back.
  RunResult r = run(
      "mthp 64K\n"
      "memory 64M\n"
      "fragment 1\n"
      "mmap A 16M addr=0x4000000000\n"
      "write A 16M stride=64K\n"
      "expect stat anon_fault_fallback_64K == 256\n"
      "expect stat anon_fault_alloc_64K == 0\n"
      "expect violations 0\n");
  EXPECT_EQ(r.exit_status(), 0) << describe(r);
  // Half: some 64K folios, some fallbacks.
  RunResult half = run(
      "mthp 64K\nmemory 64M\nfragment 0.5\nmmap A 16M addr=0x4000000000\nwrite A 16M stride=64K\n"
      "expect stat anon_fault_alloc_64K > 0\n");
  EXPECT_EQ(half.exit_status(), 0) << describe(half);
  RunResult unfragmented = run(
      "mthp 64K\nmemory 64M\nmmap A 16M addr=0x4000000000\nwrite A 16M stride=64K\n"
      "expect stat anon_fault_fallback_64K == 0\nexpect cont A 16M\n");
  EXPECT_EQ(unfragmented.exit_status(), 0) << describe(unfragmented);
}

}  // namespace
