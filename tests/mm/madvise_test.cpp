// madvise FREE / COLD / PAGEOUT (src/mm/madvise.cpp, Linux 6.18's
// mm/madvise.c): a range covering a large folio only in part splits it to
// order 0 first; a whole folio is kept as it is.

#include <gtest/gtest.h>

#include "support/scenario_run.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

using namespace contpte;

namespace {

using contpte::testing::ran_ok;
using contpte::testing::run;

TEST(MadviseFree, PartialRangeSplitsTheFolioAndUnfoldsItsBlock) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "madvise A 16K free\n"
      "expect stat folio_splits == 1\n"
      "expect stat split_64K == 1\n"
      "expect nocont A 64K\n"
      "expect pte A dirty=0 young=0\n"
      "expect pte A+0x3000 dirty=0\n"
      "expect pte A+0x4000 dirty=1 young=1 present=1\n"
      "expect stat pglazyfree == 4\n"
      "munmap A+0x8000 4K\n"          // order-0 folios now: one is freed
      "expect stat folios_freed == 1\n"
      "write A+0x1000 4K\n"           // no fold back: the pages are separate folios
      "expect nocont A 64K\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MadviseFree, WholeFolioIsKeptContiguousAndCleaned) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 128K addr=0x4000000000\n"
      "write A 128K\n"
      "madvise A 64K free\n"
      "expect stat folio_splits == 0\n"
      "expect cont A 128K\n"
      "expect pte A+0x8000 dirty=0 young=0\n"
      "expect pte A+0x10000 dirty=1\n"
      "expect stat pglazyfree == 16\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MadviseFree, FolioSharedAfterForkIsLeftAlone) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "fork\n"
      "madvise A 16K free\n"
      "expect stat folio_splits == 0\n"
      "expect stat pglazyfree == 0\n"
      "expect cont A 64K\n"
      "expect pte A dirty=1\n");
  EXPECT_TRUE(ran_ok(r));
}

// Checked against Linux 6.18 (tests/data/live-6.18/pageout-no-swap.cpt).
TEST(MadvisePageout, OnlyACleanLazyfreeFolioIsDroppedWithoutSwap) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 192K addr=0x4000000000\n"
      "write A 192K\n"
      "madvise A 128K free\n"
      "write A+0x11000 4K\n"          // redirtied: swap-backed again at unmap time, kept whole
      "madvise A 192K pageout\n"      // the third folio was never freed: add_to_swap fails, split
      "expect pte A present=0\n"
      "expect pte A+0xf000 present=0\n"
      "expect pte A+0x10000 present=1 cont=1\n"
      "expect pte A+0x20000 present=1 cont=0\n"
      "expect pte A+0x2f000 present=1 cont=0\n"
      "expect stat folio_splits == 1\n"
      "expect stat split_64K == 1\n"
      "expect stat pglazyfreed == 16\n"
      "expect stat folios_freed == 1\n"
      "expect stat rss_bytes == 128K\n"
      "read A 4K\n"                   // reads zeros again
      "expect stat faults_zero == 1\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MadviseCold, WholeFolioIsAgedContiguousAndAPartSplits) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap A 128K addr=0x4000000000\n"
      "write A 128K\n"
      "madvise A 64K cold\n"
      "expect cont A 64K\n"
      "expect pte A+0x4000 young=0 dirty=1\n"
      "expect stat pgdeactivate == 16\n"
      "madvise A+0x10000 32K cold\n"
      "expect stat folio_splits == 1\n"
      "expect nocont A+0x10000 64K\n"
      "expect pte A+0x10000 young=0\n"
      "expect pte A+0x18000 young=1\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MadviseThp, FreeOnAWholePmdCleansTheBlockAndOnAPartSplitsPmdAndFolio) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 4M addr=0x4000000000\n"
      "write A 4M stride=2M\n"
      "madvise A 2M free\n"
      "expect pte A huge=1 dirty=0 young=0\n"
      "expect stat pglazyfree == 512\n"
      "madvise A 2M pageout\n"
      "expect pte A present=0\n"
      "expect stat pglazyfreed == 512\n"
      "madvise A+0x200000 64K free\n"
      "expect stat thp_split_pmd == 1\n"
      "expect stat split_2M == 1\n"
      "expect pte A+0x200000 huge=0 dirty=0\n"
      "expect pte A+0x210000 huge=0 dirty=1\n"
      "expect nocont A+0x200000 2M\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

}  // namespace
