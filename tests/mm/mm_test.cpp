// The memory manager's decisions, each against what Linux 6.18 does, seen
// through scenarios: munmap's batching and freeing, mprotect's batched
// rewrite, VMA merging and placement, exit's flush, and the errors a
// scenario gets for misuse. Faults: fault_test.cpp; fork and COW:
// fork_test.cpp; PMD THP: huge_memory_test.cpp; madvise: madvise_test.cpp.

#include <gtest/gtest.h>

#include "support/scenario_run.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

using namespace contpte;

namespace {

using contpte::testing::ran_ok;
using contpte::testing::run;

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
