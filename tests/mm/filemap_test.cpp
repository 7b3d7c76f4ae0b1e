// File mappings against Linux 6.18's mm/filemap.c, mm/readahead.c and
// do_fault: the page cache holds large folios that readahead grows on a
// sequential reader, fault-around maps the cached pages around a read
// fault with one set_ptes per run of a folio (so contpte writes whole
// blocks contiguous), private writes copy, shared writes dirty the cache.
#include <gtest/gtest.h>

#include "support/scenario_run.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

using namespace contpte;

namespace {

using contpte::testing::describe;
using contpte::testing::ran_ok;
using contpte::testing::run;

TEST(Filemap, FirstFaultReadsAroundAndMapsOnlyThePage) {
  // read_ahead_kb 128: 32 pages around the fault, order 0; fault-around has
  // nothing cached yet, so only the faulting page is mapped.
  RunResult r = run(
      "mmap F 1M prot=r file=data addr=0x4000000000\n"
      "read F+0x40000 4K\n"
      "expect stat pagecache_folios == 32\n"
      "expect stat pagecache_alloc_4K == 32\n"
      "expect stat faults_file == 1\n"
      "expect pte F+0x40000 present=1 write=0\n"
      "expect pte F+0x41000 present=0\n"
      "read F+0x41000 4K\n"               // now fault-around maps the cached 64K
      "expect pte F+0x4f000 present=1 young=0\n"
      "expect pte F+0x41000 young=1\n"
      // ... but for the PG_readahead page (window [48, 80), its last quarter
      // starts at 72): its own fault must start the async readahead.
      "expect pte F+0x48000 present=0\n"
      "expect stat faultaround_pages == 13\n"
      "expect stat mm_faults == 2\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(Filemap, SequentialReadsGrowTheFolioOrderAndFaultAroundMapsWholeBlocks) {
  RunResult r = run(
      "mmap F 4M prot=r file=data addr=0x4000000000\n"
      "read F 4M stride=4K\n"
      "expect stat pagecache_bytes == 4M\n"
      "expect stat pagecache_alloc_16K > 0\n"
      "expect stat pagecache_alloc_64K > 0\n"
      "expect stat pagecache_alloc_128K > 16\n"  // read_ahead_kb caps the order
      // Fault-around maps a 128K folio's second 64K with one set_ptes: a
      // whole block, written contiguous. Its first 64K holds the
      // PG_readahead page, mapped alone by its fault, the rest by a
      // 15-PTE set_ptes: no whole block, and set_ptes with nr > 1 never folds.
      "expect cont F+0x310000 64K\n"
      "expect nocont F+0x300000 64K\n"
      "expect stat cont_coverage > 0.4\n"
      "expect stat rss_bytes == 4M\n"
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
  RunResult off = run(
      "contpte off\n"
      "mmap F 4M prot=r file=data addr=0x4000000000\n"
      "read F 4M stride=4K\n"
      "expect nocont F 4M\n");
  EXPECT_TRUE(ran_ok(off));
}

TEST(Filemap, RandomReadsKeepOrderZero) {
  RunResult r = run(
      "mmap F 64M prot=r file=data addr=0x4000000000\n"
      "read F 64M stride=4K count=200 pattern=random\n"
      "expect stat pagecache_alloc_16K == 0\n"
      "expect stat pagecache_alloc_64K == 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(Filemap, PrivateWriteCopiesTheCachedPageAndSharedWriteDirtiesIt) {
  RunResult r = run(
      "mmap P 64K prot=rw file=data addr=0x4000000000\n"
      "mmap S 64K prot=rw shared file=data addr=0x4000100000\n"
      "read P 4K\n"
      "write P+0x1000 4K\n"               // do_wp_page on a cache page: copy
      "expect stat faults_cow == 1\n"
      "expect stat bytes_copied == 4K\n"
      "write P+0x8000 4K\n"               // do_cow_fault: empty PTE, private write
      "expect stat faults_cow == 2\n"
      "read S 4K\n"                        // the same cache page, read-only (write-notify)
      "expect pte S write=0 pfn=1\n"
      "expect pte P pfn=1\n"
      "write S 4K\n"                       // wp_page_shared: the cache page itself
      "expect pte S write=1 dirty=1 pfn=1\n"
      "expect stat faults_cow == 2\n"
      "munmap P 64K\n"
      "munmap S 64K\n"
      "expect stat folios_freed == 2\n"   // the two copies; the cache keeps its folios
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(r));
}

TEST(Filemap, ReadPastTheFileIsAnError) {
  // Two mappings of one file: the file is as large as the largest.
  RunResult r = run(
      "mmap F 64K prot=r file=data addr=0x4000000000\n"
      "read F 64K stride=4K\n"
      "expect stat pagecache_bytes == 64K\n");
  EXPECT_TRUE(ran_ok(r));
}

}  // namespace

namespace {

// Shared anonymous memory is a shmem object (shmem_zero_setup): every
// fault, read or write, allocates a zeroed 4K folio into it (no zero page,
// no readahead, shmem mTHP off by default), and a forked child maps the
// same pages: its writes copy nothing.
TEST(Shmem, SharedAnonymousFaultsAllocateZeroedPagesAndForkShares) {
  RunResult r = run(
      "mmap S 64K prot=rw shared\n"
      "read S 4K\n"
      "expect stat shmem_folios == 1\n"
      "expect stat bytes_zeroed == 4K\n"
      "expect stat faults_zero == 0\n"
      "write S 64K\n"
      "expect stat shmem_folios == 16\n"
      "expect pte S+0x1000 write=1 dirty=1\n"
      "fork\n"
      "process 1\n"
      "write S 64K\n"  // shared: no copy-on-write
      "expect stat bytes_copied == 0\n"
      "expect stat faults_cow == 0\n"
      "expect stat shmem_folios == 16\n"
      "expect pte S+0x1000 write=1 dirty=1\n");
  EXPECT_TRUE(ran_ok(r));
}

// Two shared anonymous mappings are two objects: the second's pages are its own.
TEST(Shmem, EachSharedAnonymousMappingIsItsOwnObject) {
  RunResult r = run(
      "mmap A 16K prot=rw shared\n"
      "mmap B 16K prot=rw shared\n"
      "write A 16K\n"
      "write B 16K\n"
      "expect stat shmem_folios == 8\n");
  EXPECT_TRUE(ran_ok(r));
}

}  // namespace
