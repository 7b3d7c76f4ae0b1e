// The memory manager's decisions, each against what Linux 6.18 does, seen
// through scenarios: mTHP order choice and fallback, zero page, COW copy vs
// reuse (and the unfold reuse causes), fork's write-protect, munmap's
// batching and freeing, mprotect's batched rewrite, VMA merging, and the
// errors a scenario gets for misuse.

#include <gtest/gtest.h>

#include "support/scenario_run.h"
#include "workload/runner.h"
#include "workload/scenario.h"

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

TEST(MmMunmap, PartialUnmapKeepsTheFolioAndFullUnmapFreesIt) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "munmap A 16K\n"
      "expect raw A+0x4000 cont=0 present=1\n"
      "expect stat folios_freed == 0\n"
      "munmap A+0x4000 48K\n"
      "expect stat folios_freed == 1\n"
      "expect stat rss_bytes == 0\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmMprotect, BatchedRewriteKeepsWholeBlocksContiguous) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 128K addr=0x4000000000\n"
      "write A 128K\n"
      "mprotect A 128K r\n"
      "expect cont A 128K\n"
      "expect pte A write=0 dirty=1\n"
      "expect stat unfolds == 0\n"
      "expect stat folds == 0\n"
      "mprotect A 16K rw\n"        // part of a block: it unfolds
      "expect nocont A 64K\n"
      "expect cont A+0x10000 64K\n"
      "expect pte A write=1\n"     // exclusive anon: writable right away
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmVma, AdjacentAnonymousMappingsMergeAndAFaultMaySpanBoth) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 32K addr=0x4000000000\n"
      "mmap B 32K addr=0x4000008000\n"
      "write A 4K\n"
      "expect cont A 64K\n"
      "expect pte B write=1 present=1\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmVma, TopDownPlacementAlignsPmdMultiplesToThePmd) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 4K\n"
      "mmap B 2M\n"
      "write B 4K\n"
      "expect cont B 64K\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmErrors, AccessOutsideAnyMappingIsSigsegv) {
  RunResult r = run("mmap A 64K addr=0x4000000000\nwrite 0x4000010000 4K\nexpect violations 0\n");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(*r.error,
            "t.cpt:2: write 0x4000010000 in process 0: translation fault at level 0; SIGSEGV: no mapping");
  EXPECT_EQ(r.statements, 2u);
}

TEST(MmErrors, OffsetPastTheMappingIsAnInputError) {
  try {
    run("mmap A 64K addr=0x4000000000\nwrite A+0x10000 4K\n");
    FAIL();
  } catch (const ScenarioError& e) {
    EXPECT_STREQ(e.what(), "t.cpt:2:7: error: offset 0x10000 is past the end of 'A' (64K)");
  }
}

TEST(MmErrors, PteLevelStatementInsideAMappingIsAnInputError) {
  try {
    run("mmap A 64K addr=0x40000000\nalloc F order=0\nset_ptes 0x40000000 F nr=1 prot=rw\n");
    FAIL();
  } catch (const ScenarioError& e) {
    EXPECT_NE(std::string(e.what()).find("t.cpt:3:1: error: PTE-level statement inside a mapping"),
              std::string::npos)
        << e.what();
  }
}

TEST(MmErrors, UnknownMappingNameIsAnInputError) {
  try {
    run("mmap A 64K addr=0x4000000000\nwrite B 4K\n");
    FAIL();
  } catch (const ScenarioError& e) {
    EXPECT_NE(std::string(e.what()).find("t.cpt:2:7: error: no mapping named 'B' in process 0"),
              std::string::npos)
        << e.what();
  }
}

TEST(MmErrors, WriteToReadOnlyMappingIsARunError) {
  RunResult r = run("mmap A 64K prot=r addr=0x4000000000\nwrite A 4K\n");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_NE(r.error->find("SIGSEGV: the mapping does not permit it"), std::string::npos) << *r.error;
  EXPECT_EQ(r.exit_status(), 1);
}

}  // namespace

namespace {

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

namespace {

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

// A faulting access is re-executed after the fault handler; the program
// made one access, so `accesses` counts it once.
TEST(MmFault, RetriedAccessesAreCountedOnce) {
  RunResult r = run("mmap A 64K addr=0x4000000000\nwrite A 64K\nexpect stat accesses == 16\n"
                    "expect stat faults == 16\n");
  EXPECT_TRUE(ran_ok(r));
}

}  // namespace
