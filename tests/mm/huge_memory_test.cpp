// PMD-sized THP against Linux 6.18's mm/huge_memory.c, seen through the
// resulting page tables: which faults map a level-2 block, the huge zero
// page, the splits a partial munmap / mprotect / madvise / VMA split cause
// (PTEs written with one set_ptes, so contpte folds them), fork's copy,
// and do_huge_pmd_wp_page's reuse-or-split.

#include <gtest/gtest.h>

#include "support/scenario_run.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

using namespace contpte;

namespace {

using contpte::testing::ran_ok;
using contpte::testing::run;

TEST(ThpFault, WriteFaultMapsALevel2BlockAndTheTlbCoversItWithOneEntry) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 4M addr=0x4000000000\n"
      "write A+0x5000 4K\n"
      "expect pte A huge=1 write=1 dirty=1 young=1\n"
      "expect pte A+0x1ff000 huge=1 write=1\n"
      "expect pte A+0x200000 present=0\n"
      "expect stat thp_fault_alloc == 1\n"
      "expect stat anon_fault_alloc_2M == 1\n"
      "expect stat faults_anon == 1\n"
      "expect stat bytes_zeroed == 2M\n"
      "expect stat rss_bytes == 2M\n"
      "read A 2M stride=4K\n"       // one walk filled a 2M entry
      "expect stat walks == 2\n"
      "expect stat cont_coverage == 0\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpFault, BlockPfnsAreThoseOfOneNaturallyAlignedFolio) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 2M addr=0x4000000000\n"
      "alloc X order=0\n"            // the first frame after the zero page
      "write A 4K\n"
      "expect pte A pfn=512\n"       // 2M-aligned: frames 512..1023
      "expect pte A+0x3000 pfn=515\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpFault, OnlyWhenTheVmaCoversTheAlignedPmdRange) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 3M addr=0x4000100000\n"  // covers [2M, 4M) of its PMDs only
      "write A 4K\n"
      "expect pte A huge=0 present=1\n"
      "write A+0x100000 4K\n"          // 0x4000200000: a whole PMD inside
      "expect pte A+0x100000 huge=1\n"
      "expect stat thp_fault_alloc == 1\n"
      "expect stat faults_anon == 2\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpFault, PolicyAlwaysMadviseInheritAndNever) {
  // madvise: only a MADV_HUGEPAGE VMA; inherit follows top.
  RunResult r = run(
      "thp 2M=madvise\n"
      "mmap A 2M addr=0x4000000000\n"
      "mmap B 2M addr=0x4000400000\n"
      "madvise B 2M hugepage\n"
      "write A 4K\n"
      "write B 4K\n"
      "expect pte A huge=0\n"
      "expect pte B huge=1\n");
  EXPECT_TRUE(ran_ok(r));
  RunResult inherit = run(
      "thp 2M=inherit top=always\n"
      "mmap A 2M addr=0x4000000000\n"
      "mmap B 2M addr=0x4000400000\n"
      "madvise B 2M nohugepage\n"
      "write A 4K\n"
      "write B 4K\n"
      "expect pte A huge=1\n"
      "expect pte B huge=0\n");
  EXPECT_TRUE(ran_ok(inherit));
  RunResult mthp_only = run(
      "mthp 64K\n"
      "mmap A 2M addr=0x4000000000\n"
      "write A 4K\n"
      "expect pte A huge=0 cont=1\n"
      "expect stat thp_fault_alloc == 0\n");
  EXPECT_TRUE(ran_ok(mthp_only));
}

TEST(ThpFault, AllocationFailureFallsBackToTheLargestMthpOrder) {
  // 2M of RAM, one frame of it the zero page: no 2M block is left, so the
  // fault falls back to the PTE path, which still gets a 64K folio.
  RunResult r = run(
      "thp 2M=always 64K=always\n"
      "memory 2M\n"
      "mmap A 2M addr=0x4000000000\n"
      "write A 4K\n"
      "expect pte A huge=0 cont=1\n"
      "expect stat thp_fault_fallback == 1\n"
      "expect stat anon_fault_fallback_2M == 1\n"
      "expect stat anon_fault_alloc_64K == 1\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpZeroPage, ReadMapsTheHugeZeroPmdAndAWriteReplacesItWithAThp) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 4M addr=0x4000000000\n"
      "read A 4K\n"
      "read A+0x200000 4K\n"          // the same huge zero folio
      "expect pte A huge=1 write=0\n"
      "expect stat thp_zero_page_alloc == 1\n"
      "expect stat faults_zero == 2\n"
      "expect stat bytes_zeroed == 0\n"
      "write A+0x1000 4K\n"           // do_huge_zero_wp_pmd
      "expect pte A huge=1 write=1 dirty=1\n"
      "expect pte A+0x200000 huge=1 write=0\n"
      "expect stat thp_fault_alloc == 1\n"
      "expect stat thp_split_pmd == 0\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpZeroPage, SplittingTheHugeZeroPmdMapsTheSmallZeroPage) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 2M addr=0x4000000000\n"
      "read A 4K\n"
      "mprotect A+0x100000 1M r\n"    // VMA split inside the PMD
      "expect stat thp_split_pmd == 1\n"
      "expect pte A huge=0 present=1 write=0 pfn=0\n"
      "expect pte A+0x1ff000 huge=0 pfn=0\n"
      "write A 4K\n"                  // a copy of the zero page
      "expect stat faults_cow == 1\n"
      "expect pte A write=1 dirty=1\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpSplit, PartialMunmapSplitsWithOneSetPtesThatContpteWritesContiguous) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 2M addr=0x4000000000\n"
      "write A 4K\n"
      "munmap A+0x10000 64K\n"
      "expect stat thp_split_pmd == 1\n"
      "expect pte A huge=0 present=1 write=1 dirty=1\n"
      "expect pte A+0x10000 present=0\n"
      "expect cont A 64K\n"           // set_ptes wrote whole aligned blocks CONT
      "expect cont A+0x20000 1920K\n"
      "expect stat folds == 0\n"
      "expect stat folios_freed == 0\n"  // the folio stays large, partly mapped
      "expect stat rss_bytes == 1984K\n"
      "munmap A+0x21000 4K\n"         // inside a block: unfolds only it
      "expect nocont A+0x20000 64K\n"
      "expect cont A+0x30000 64K\n"
      "munmap A 2M\n"
      "expect stat folios_freed == 1\n"
      "expect stat rss_bytes == 0\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpSplit, WithoutContpteTheSplitPtesStayPlain) {
  RunResult r = run(
      "thp 2M=always\n"
      "contpte off\n"
      "mmap A 2M addr=0x4000000000\n"
      "write A 4K\n"
      "madvise A+0x1000 4K dontneed\n"
      "expect stat thp_split_pmd == 1\n"
      "expect nocont A 2M\n"
      "expect pte A+0x1000 present=0\n"
      "expect pte A+0x2000 present=1 huge=0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpSplit, WholePmdMunmapOrDontneedZapsTheBlockWithoutSplitting) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 4M addr=0x4000000000\n"
      "write A 4M stride=2M\n"
      "madvise A 2M dontneed\n"
      "expect pte A present=0\n"
      "expect pte A+0x200000 huge=1\n"
      "munmap A+0x200000 2M\n"
      "expect stat thp_split_pmd == 0\n"
      "expect stat folios_freed == 2\n"
      "expect stat rss_bytes == 0\n"
      "write A 4K\n"                   // the PMD is empty again: a new THP
      "expect pte A huge=1\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpMprotect, WholePmdStaysHugeAndAPartSplits) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 2M addr=0x4000000000\n"
      "write A 4K\n"
      "mprotect A 2M r\n"
      "expect pte A huge=1 write=0 dirty=1\n"
      "mprotect A 2M rw\n"             // exclusive: writable again at once
      "expect pte A huge=1 write=1\n"
      "expect stat thp_split_pmd == 0\n"
      "mprotect A+0x100000 1M r\n"
      "expect stat thp_split_pmd == 1\n"
      "expect pte A write=1 huge=0\n"
      "expect pte A+0x100000 write=0 huge=0\n"
      "expect cont A 2M\n"             // batched rewrite keeps whole blocks
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpMadvise, NohugepageOnPartOfAVmaSplitsThePmd) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 2M addr=0x4000000000\n"
      "write A 4K\n"
      "madvise A 1M nohugepage\n"      // vma_adjust_trans_huge
      "expect stat thp_split_pmd == 1\n"
      "expect pte A+0x100000 huge=0 present=1\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpFork, ChildWriteSplitsItsPmdAndCopiesOnePageParentReusesAfterExit) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 2M addr=0x4000000000\n"
      "write A 2M stride=64K\n"
      "fork\n"
      "expect pte A huge=1 write=0 dirty=1\n"
      "process 1\n"
      "expect pte A huge=1 write=0 young=0\n"
      "write A+0x3000 4K\n"            // shared THP: split, then wp_page_copy
      "expect stat thp_split_pmd == 1\n"
      "expect stat faults_cow == 1\n"
      "expect stat bytes_copied == 4K\n"
      "expect pte A+0x3000 write=1 huge=0\n"
      "expect pte A+0x4000 write=0 huge=0\n"
      "expect nocont A 64K\n"          // the copy unfolded that block only
      "expect cont A+0x10000 1984K\n"
      "process 0\n"
      "expect pte A huge=1 write=0\n"  // the parent's PMD is untouched
      "exit 1\n"
      "write A 4K\n"                   // exclusive again: reused whole
      "expect pte A huge=1 write=1\n"
      "expect stat faults_reuse == 1\n"
      "expect stat thp_split_pmd == 1\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpFork, TheHugeZeroPmdIsSharedByFork) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 2M addr=0x4000000000\n"
      "read A 4K\n"
      "fork\n"
      "process 1\n"
      "expect pte A huge=1 write=0\n"
      "write A 4K\n"
      "expect pte A huge=1 write=1\n"
      "expect stat thp_zero_page_alloc == 1\n"
      "expect stat thp_fault_alloc == 1\n"
      "process 0\n"
      "expect pte A huge=1 write=0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpAging, ReclaimClearsTheYoungBitOfTheBlock) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 2M addr=0x4000000000\n"
      "write A 4K\n"
      "reclaim\n"
      "expect pte A huge=1 young=0\n"
      "read A 4K\n"                    // the flush made the walker set AF again
      "expect pte A huge=1 young=1\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpAccessFlags, WithoutHardwareUpdatesTheFaultSetsThem) {
  RunResult r = run(
      "thp 2M=always\n"
      "hafdbs off\n"
      "mmap A 2M addr=0x4000000000\n"
      "write A 4K\n"
      "reclaim\n"
      "read A 4K\n"                    // an access-flag fault on the block
      "expect pte A huge=1 young=1\n"
      "expect stat faults_access == 1\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpPopulate, PopulateWriteMapsWholePmds) {
  RunResult r = run(
      "thp 2M=always\n"
      "mmap A 4M addr=0x4000000000\n"
      "madvise A+0x1000 4092K populate_write\n"
      "expect stat thp_fault_alloc == 2\n"
      "expect stat mm_faults == 2\n"
      "expect pte A huge=1 write=1\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(ThpGranules, PmdSizeFollowsTheGranule) {
  RunResult g16 = run(
      "granule 16K\n"
      "thp 32M=always\n"
      "mmap A 32M addr=0x4000000000\n"
      "write A 16K\n"
      "expect pte A+0x1ffc000 huge=1\n"
      "expect stat anon_fault_alloc_32M == 1\n"
      "expect stat rss_bytes == 32M\n"
      "munmap A+0x1000000 16M\n"
      "expect stat thp_split_pmd == 1\n"
      "expect cont A 16M\n");          // 2M contiguous blocks at 16K
  EXPECT_TRUE(ran_ok(g16));
  RunResult g64 = run(
      "granule 64K\n"
      "thp 512M=always\n"
      "mmap A 512M addr=0x4000000000\n"
      "write A 64K\n"
      "expect pte A+0x1fff0000 huge=1\n"
      "expect stat anon_fault_alloc_512M == 1\n"
      "expect stat rss_bytes == 512M\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(g64));
}

}  // namespace
