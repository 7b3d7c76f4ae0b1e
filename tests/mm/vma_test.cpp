// VMA life cycle: brk-like heap growth (`brk NAME SIZE`, Mm::brk as
// do_brk_flags: the new area joins the heap's VMA when compatible, so a
// fault may get a folio straddling the old break; an incompatible tail keeps
// them apart; shrinking unmaps the tail; misuse is an input error), anon_vma
// rules (what fork copies, what merges), and page-table freeing on munmap
// and exit (free_pgtables, and the flush that reaches the walk caches).
#include <gtest/gtest.h>

#include <string>

#include "support/scenario_run.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

using namespace contpte;

namespace {

using contpte::testing::ran_ok;
using contpte::testing::run;

TEST(MmBrk, GrowthMergesSoAFaultMayGetAFolioAcrossTheOldBreak) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap heap 32K addr=0x4000000000\n"
      "brk heap 64K\n"
      "write heap+0x8000 4K\n"  // in the grown part: the 64K folio covers both
      "expect cont heap 64K\n"
      "expect pte heap write=1 present=1\n"
      "expect stat faults_anon == 1\n"
      "expect stat rss_bytes == 64K\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmBrk, WithoutTheBrkTheSameFaultGetsOnlySmallFolios) {
  // The control for the test above: a 32K heap cannot hold a 64K folio.
  RunResult r = run(
      "mthp 64K\n"
      "mmap heap 32K addr=0x4000000000\n"
      "write heap 32K\n"
      "expect nocont heap\n"
      "expect stat faults_anon == 8\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmBrk, AnIncompatibleTailKeepsTheNewAreaApart) {
  // The heap's tail was made read-only: brk's new area is read-write, so it
  // is a VMA of its own and no folio spans the old break.
  RunResult r = run(
      "mthp 64K\n"
      "mmap heap 32K addr=0x4000000000\n"
      "mprotect heap 32K r\n"
      "brk heap 64K\n"
      "write heap+0x8000 32K\n"
      "expect nocont heap+0x8000\n"
      "expect pte heap present=0\n"
      "expect stat faults_anon == 8\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmBrk, ShrinkingUnmapsTheTail) {
  RunResult r = run(
      "mthp 64K\n"
      "mmap heap 128K addr=0x4000000000\n"
      "write heap 128K\n"
      "brk heap 64K\n"
      "expect cont heap 64K\n"
      "expect pte 0x4000010000 present=0\n"  // past the break: no longer heap+64K
      "expect stat rss_bytes == 64K\n"
      "brk heap 128K\n"  // grows again: fresh memory, faults anew
      "write heap+0x10000 64K\n"
      "expect cont heap 128K\n"
      "expect stat faults_anon == 3\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(MmBrk, GrowingIntoAnotherMappingFailsAndKeepsTheBreak) {
  RunResult r = run(
      "mmap heap 64K addr=0x4000000000\n"
      "mmap other 64K addr=0x4000010000\n"
      "brk heap 128K\n");
  ASSERT_TRUE(r.error.has_value());
  EXPECT_EQ(*r.error, "t.cpt:3: brk heap: the range after the heap is already mapped");
}

TEST(MmBrk, OffsetsPastTheOldBreakResolveAfterGrowth) {
  // Before the brk, heap+64K is past the end of 'heap': an input error.
  try {
    run("mmap heap 64K addr=0x4000000000\nwrite heap+0x10000 4K\n");
    FAIL();
  } catch (const ScenarioError& e) {
    EXPECT_NE(std::string(e.what()).find("past the end of 'heap'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(ran_ok(run("mmap heap 64K addr=0x4000000000\nbrk heap 128K\nwrite heap+0x10000 4K\n")));
}

TEST(MmBrk, OnlyAPrivateAnonymousHeapHasABreak) {
  for (const char* text : {"mmap f 64K prot=rw file=data addr=0x4000000000\nbrk f 128K\n",
                           "mmap s 64K shared addr=0x4000000000\nbrk s 128K\n"}) {
    try {
      run(text);
      FAIL() << text;
    } catch (const ScenarioError& e) {
      EXPECT_NE(std::string(e.what()).find("t.cpt:2:5: error: brk moves the break of a private anonymous heap"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(MmBrk, ParserChecksTheSize) {
  EXPECT_THROW(parse_scenario("mmap h 64K\nbrk h 1000\n", "t.cpt"), ScenarioError);
  EXPECT_THROW(parse_scenario("mmap h 64K\nbrk h 0\n", "t.cpt"), ScenarioError);
  EXPECT_THROW(parse_scenario("mmap h 64K\nbrk h\n", "t.cpt"), ScenarioError);
  EXPECT_THROW(parse_scenario("mmap h 64K\nbrk h 64K extra\n", "t.cpt"), ScenarioError);
  EXPECT_THROW(parse_scenario("mmap h 64K\nparallel\n  engine brk h 128K\n  hw read 0x4000\nend\n", "t.cpt"),
               ScenarioError);
}


// anon_vma (checked against Linux 6.18: tests/data/live-6.18/anon-vma.cpt).
TEST(MmAnonVma, ForkDoesNotCopyAVmaThatNeverHadAnonymousMemory) {
  // The parent only read B: zero-page PTEs, no anon_vma. vma_needs_copy
  // skips B, so the child's PTEs are empty and its first write gets a 64K
  // folio; A was written, so it is copied (write-protected, still mapped).
  EXPECT_TRUE(ran_ok(run(
      "mthp 64K\n"
      "mmap A 64K addr=0x4000000000\n"
      "mmap B 64K addr=0x4000100000\n"
      "write A 64K\n"
      "read B 64K\n"
      "fork\n"
      "process 1\n"
      "expect pte A present=1 write=0\n"
      "expect pte B present=0\n"
      "write B 4K\n"
      "expect cont B 64K\n"
      "process 0\n"
      "expect pte B present=1 write=0\n")));
}

TEST(MmAnonVma, AChildsVmasWithDifferentAnonVmasDoNotMerge) {
  // In the parent the two halves of A share one anon_vma and merge back
  // when their protections match again; in the child each got its own at
  // fork, so they stay two VMAs and no 64K folio fits in either.
  EXPECT_TRUE(ran_ok(run(
      "mthp 64K\n"
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "mprotect A+0x8000 32K r\n"
      "fork\n"
      "process 1\n"
      "madvise A 64K dontneed\n"
      "mprotect A+0x8000 32K rw\n"
      "write A 64K\n"
      "expect nocont A\n"
      "process 0\n"
      "madvise A 64K dontneed\n"
      "mprotect A+0x8000 32K rw\n"
      "write A 64K\n"
      "expect cont A 64K\n")));
}

TEST(MmAnonVma, APartlyMappedExclusiveFolioIsSplitByMadvise) {
  // munmap leaves 15 of the folio's 16 pages mapped; MADV_COLD over them
  // splits it (only this process maps it), so no block can refold.
  EXPECT_TRUE(ran_ok(run(
      "mthp 64K\n"
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "munmap A+0xf000 4K\n"
      "madvise A 60K cold\n"
      "expect stat folio_splits == 1\n"
      "expect pte A present=1 cont=0\n")));
}


// free_pgtables (unmap_region): page tables no neighbour shares go with
// the mapping, and the flush that precedes their reuse reaches the walk
// caches.
TEST(MmFreePgtables, MunmapFreesTablesNoNeighbourShares) {
  // Alone in its 512G: the PTE, PMD and PUD tables go (the root stays).
  EXPECT_TRUE(ran_ok(run(
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "munmap A 64K\n"
      "expect stat pgtables_freed == 3\n")));
  // A neighbour in the same PMD range keeps the PTE table, and so the
  // tables above it.
  EXPECT_TRUE(ran_ok(run(
      "mmap A 64K addr=0x4000000000\n"
      "mmap B 64K addr=0x4000100000 prot=r\n"
      "write A 64K\n"
      "munmap A 64K\n"
      "expect stat pgtables_freed == 0\n"
      "munmap B 64K\n"
      "expect stat pgtables_freed == 3\n")));
  // A neighbour in the next PMD range of the same 1G keeps the PMD table.
  EXPECT_TRUE(ran_ok(run(
      "mmap A 64K addr=0x4000000000\n"
      "mmap B 64K addr=0x4000200000 prot=r\n"
      "write A 64K\n"
      "read B 4K\n"
      "munmap A 64K\n"
      "expect stat pgtables_freed == 1\n")));
  // madvise(DONTNEED) frees no table; exit frees them all.
  EXPECT_TRUE(ran_ok(run(
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "madvise A 64K dontneed\n"
      "expect stat pgtables_freed == 0\n"
      "fork\n"
      "exit 1\n"
      "expect stat pgtables_freed == 3\n")));
}

TEST(MmFreePgtables, AFreedTableIsNotReachedThroughAStaleWalkCacheEntry) {
  // A's PTE table is cached by the walk cache, freed by munmap and reused
  // as B's PTE table (the pool reuses the last freed page first). A
  // non-last-level flush must have dropped the walk-cache entry: else the
  // read of A2 would translate through B's table to B's page, no fault.
  // C keeps the upper tables, so only A's PTE table goes and the flush is
  // a 16-page range (a freed upper table widens it to the whole ASID).
  EXPECT_TRUE(ran_ok(run(
      "mthp 64K\n"
      "mmap C 64K addr=0x4000800000\n"
      "write C 4K\n"
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "munmap A 64K\n"
      "expect stat pgtables_freed == 1\n"
      "expect stat tlbi_instructions_asid == 0\n"
      "mmap B 64K addr=0x4000400000\n"
      "write B 64K\n"
      "mmap A2 64K addr=0x4000000000\n"
      "read A2 4K\n"
      "expect stat faults_zero == 1\n"
      "expect pte A2 present=1\n"
      "expect violations 0\n")));
}

}  // namespace
