// tests/mm/file_pgoff_test.cpp — file mappings at a file offset, as Linux
// keeps them (docs/mm.md, "File offsets"): one page cache per file
// (struct address_space) whatever the offsets it is mapped at; a fault at
// va maps file page vm_pgoff + (va - vm_start) / PAGE_SIZE; a VMA split
// (mprotect) or a partial munmap of a VMA's front keeps every page's file
// index (the upper part's vm_pgoff moves up); fault-around stays inside the
// VMA, the PTE page and the file (filemap_map_pages: nothing past i_size);
// a large page-cache folio, naturally aligned in the file, is mapped with
// PTE_CONT only where the address is congruent to its file index modulo
// the block.
//
// Property: random mmaps of one file (random offsets, places and lengths),
// munmaps, mprotects and read faults against a reference model holding,
// for every page of an arena, which file page it maps (or none). After
// each operation every present PTE of the arena maps the page cache's page
// of the reference's file index, and a read of a page succeeds exactly when
// it is mapped and inside the file. CONTPTE_SEED=N runs only seed N.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/pgtable.h"
#include "hw/tlb.h"
#include "sim/machine.h"
#include "support/scenario_run.h"

using namespace contpte;

namespace {

using contpte::testing::describe;
using contpte::testing::ran_ok;
using contpte::testing::run;

constexpr std::uint64_t kBase = 0x40'0000'0000;

MachineSpec spec(Granule g) {
  MachineSpec s;
  s.granule = g;
  s.memory = std::uint64_t{256} << 20;
  s.core = resolve_tlb_config("default");
  return s;
}

// The machine, one process, and a file "lib" of `nr_pages` pages.
struct FileWorld {
  explicit FileWorld(std::uint64_t nr_pages, Granule g = Granule::k4K) : m(spec(g)), pages(nr_pages) {
    page = m.geometry().page_size();
  }
  Machine m;
  std::uint64_t pages;
  std::uint64_t page = 0;

  std::optional<VirtAddr> map(std::uint64_t at, std::uint64_t npages, std::uint64_t pgoff, Prot prot = Prot::R) {
    const FileMap f{"lib", pages, pgoff, false};
    return m.mm(0).mmap(npages * page, prot, false, VirtAddr{at}, 0, &f);
  }
  bool read(std::uint64_t va) { return !m.access(0, VirtAddr{va}, MemAccess::Read).has_value(); }
  int file() { return m.system().file_id("lib", 0); }
  // The frame of the page cache's page `index`, if cached.
  std::optional<std::uint64_t> cached(std::uint64_t index) {
    auto hit = m.system().find_cached(file(), index);
    if (!hit) return std::nullopt;
    return hit->first.val + (index - hit->second);
  }
  // The frame the PTE of `va` maps, if present.
  std::optional<std::uint64_t> mapped(std::uint64_t va) {
    const Pte p = m.mm(0).leaf_pte(VirtAddr{va}, true);
    if (!pte_present(p)) return std::nullopt;
    return pte_pfn(p, m.geometry().page_shift).val;
  }
};

TEST(FilePgoff, TwoMappingsAtDifferentOffsetsShareTheFilesPages) {
  // A library's text at file page 0 and its data at file page 8, as the
  // loader maps them: one file, one page cache.
  FileWorld w(256);
  ASSERT_TRUE(w.map(kBase, 16, 0));
  ASSERT_TRUE(w.map(kBase + 0x100000, 16, 8));
  ASSERT_TRUE(w.read(kBase + 8 * w.page));  // readahead: file pages [0, 32)
  const std::uint64_t once = w.m.system().stats().pagecache_bytes;
  EXPECT_EQ(once, 32 * w.page);
  ASSERT_TRUE(w.read(kBase + 0x100000));  // file page 8 again, through the other mapping
  EXPECT_EQ(w.m.system().stats().pagecache_bytes, once) << "the second mapping read its pages again";
  EXPECT_EQ(w.mapped(kBase + 0x100000), w.mapped(kBase + 8 * w.page));
  EXPECT_EQ(w.mapped(kBase + 0x100000), w.cached(8));
}

TEST(FilePgoff, AFaultMapsThePageAtPgoffPlusTheIndexInTheVma) {
  FileWorld w(1024);
  ASSERT_TRUE(w.map(kBase, 64, 100));
  for (std::uint64_t i : {0u, 1u, 17u, 40u, 63u}) {
    ASSERT_TRUE(w.read(kBase + i * w.page)) << i;
    ASSERT_TRUE(w.cached(100 + i)) << i;
    EXPECT_EQ(w.mapped(kBase + i * w.page), w.cached(100 + i)) << "page " << i;
  }
  // Nothing below the offset was wanted: readahead is around file page 100.
  EXPECT_FALSE(w.cached(0));
}

TEST(FilePgoff, SplitAndPartialMunmapKeepEachPagesFileIndex) {
  FileWorld w(1024);
  ASSERT_TRUE(w.map(kBase, 32, 3, Prot::RW));
  w.m.mm(0).mprotect(VirtAddr{kBase + 8 * w.page}, 8 * w.page, Prot::R);  // three VMAs
  w.m.mm(0).munmap(VirtAddr{kBase}, 4 * w.page);                          // the front of the first
  const Vma* v = w.m.mm(0).find_vma(VirtAddr{kBase + 4 * w.page});
  ASSERT_TRUE(v);
  EXPECT_EQ(v->start.val, kBase + 4 * w.page);
  EXPECT_EQ(v->pgoff, 7u);
  v = w.m.mm(0).find_vma(VirtAddr{kBase + 8 * w.page});
  ASSERT_TRUE(v);
  EXPECT_EQ(v->pgoff, 11u);
  v = w.m.mm(0).find_vma(VirtAddr{kBase + 16 * w.page});
  ASSERT_TRUE(v);
  EXPECT_EQ(v->pgoff, 19u);
  for (std::uint64_t i : {4u, 7u, 8u, 15u, 16u, 31u}) {
    ASSERT_TRUE(w.read(kBase + i * w.page)) << i;
    EXPECT_EQ(w.mapped(kBase + i * w.page), w.cached(3 + i)) << "page " << i;
  }
  EXPECT_FALSE(w.read(kBase)) << "the unmapped front still maps";
  // mprotect back: the parts are at consecutive file pages, so they merge.
  w.m.mm(0).mprotect(VirtAddr{kBase + 8 * w.page}, 8 * w.page, Prot::RW);
  v = w.m.mm(0).find_vma(VirtAddr{kBase + 20 * w.page});
  ASSERT_TRUE(v);
  EXPECT_EQ(v->start.val, kBase + 4 * w.page);
  EXPECT_EQ(v->pgoff, 7u);
}

TEST(FilePgoff, MappingsAtNonConsecutiveFilePagesDoNotMerge) {
  FileWorld w(1024);
  ASSERT_TRUE(w.map(kBase, 8, 0));
  ASSERT_TRUE(w.map(kBase + 8 * w.page, 8, 100));  // adjacent in memory, not in the file
  const Vma* v = w.m.mm(0).find_vma(VirtAddr{kBase + 8 * w.page});
  ASSERT_TRUE(v);
  EXPECT_EQ(v->start.val, kBase + 8 * w.page);
  EXPECT_EQ(v->pgoff, 100u);
}

TEST(FilePgoff, FaultAroundStaysInsideTheFile) {
  // A file of 5 pages mapped by 16: fault-around maps pages 0-4 and none
  // past i_size; a read there is SIGBUS.
  FileWorld w(5);
  ASSERT_TRUE(w.map(kBase, 16, 0));
  ASSERT_TRUE(w.read(kBase));
  ASSERT_TRUE(w.read(kBase + w.page));  // now cached: fault-around
  // Pages 0-3; page 4 holds the PG_readahead mark (the window's last
  // quarter starts there), left for its own fault.
  for (std::uint64_t i = 0; i < 4; ++i) EXPECT_TRUE(w.mapped(kBase + i * w.page)) << i;
  ASSERT_TRUE(w.read(kBase + 4 * w.page));
  for (std::uint64_t i = 5; i < 16; ++i) EXPECT_FALSE(w.mapped(kBase + i * w.page)) << i;
  EXPECT_EQ(w.m.system().stats().pagecache_bytes, 5 * w.page);
  EXPECT_FALSE(w.read(kBase + 5 * w.page));
  EXPECT_FALSE(w.read(kBase + 15 * w.page));
}

TEST(FilePgoff, FaultAroundStaysInsideTheVma) {
  // A 4-page window of a large file between two anonymous neighbours:
  // the file's pages are cached on both sides, but fault-around maps only
  // the VMA's own pages.
  FileWorld w(1024);
  ASSERT_TRUE(w.map(kBase + 0x100000, 64, 0));  // fills the cache with pages 0-31 and more
  ASSERT_TRUE(w.read(kBase + 0x100000 + 20 * w.page));
  ASSERT_TRUE(w.m.mm(0).mmap(6 * w.page, Prot::R, false, VirtAddr{kBase}, 0));
  ASSERT_TRUE(w.map(kBase + 6 * w.page, 4, 10));
  ASSERT_TRUE(w.m.mm(0).mmap(6 * w.page, Prot::R, false, VirtAddr{kBase + 10 * w.page}, 0));
  ASSERT_TRUE(w.read(kBase + 7 * w.page));
  for (std::uint64_t i = 6; i < 10; ++i) {
    ASSERT_TRUE(w.cached(4 + i)) << i;
    EXPECT_EQ(w.mapped(kBase + i * w.page), w.cached(4 + i)) << "page " << i;
  }
  for (std::uint64_t i : {0u, 5u, 10u, 15u}) EXPECT_FALSE(w.mapped(kBase + i * w.page)) << i;
  EXPECT_EQ(w.m.system().stats().faultaround_pages, 3u);
}

// A large folio of the page cache starts at a file index that is a multiple
// of its size; it maps with PTE_CONT only where the mapping puts that index
// at an address aligned to the block. offset=4K shifts every folio by a
// page against the address: no block can fold. offset=64K keeps them
// congruent.
TEST(FilePgoff, ContiguousBlocksNeedTheAddressCongruentToTheFileIndex) {
  for (const char* off : {"0", "64K"}) {
    RunResult r = run(std::string("mmap F 4M prot=r file=data offset=") + off +
                      " filesize=8M addr=0x4000000000\n"
                      "read F 4M stride=4K\n"
                      "expect stat cont_coverage > 0.4\n"
                      "expect violations 0\n");
    EXPECT_TRUE(ran_ok(r)) << off << ": " << describe(r);
  }
  RunResult shifted = run(
      "mmap F 4M prot=r file=data offset=4K filesize=8M addr=0x4000000000\n"
      "read F 4M stride=4K\n"
      "expect stat pagecache_alloc_64K > 0\n"  // the cache has large folios ...
      "expect nocont F 4M\n"                   // ... but no block maps one aligned
      "expect violations 0\n");
  EXPECT_TRUE(ran_ok(shifted)) << describe(shifted);
}

// thp_get_unmapped_area for a regular file: a mapping that holds a whole
// PMD of the file is placed at an address congruent to its offset modulo
// the PMD size.
TEST(FilePgoff, ALargeFileMappingIsPlacedCongruentToItsOffset) {
  FileWorld w(4096);
  for (std::uint64_t pgoff : {0u, 1u, 100u, 513u}) {
    const FileMap f{"lib", 4096, pgoff, false};
    auto at = w.m.mm(0).mmap(5 << 20, Prot::R, false, std::nullopt, 0, &f);
    ASSERT_TRUE(at);
    EXPECT_EQ((at->val - pgoff * w.page) % (2 << 20), 0u) << "pgoff " << pgoff;
  }
  // Too short to hold a PMD-aligned 2M of the file (file pages 1 to 512):
  // no alignment asked.
  // Top-down from the (PMD-aligned) mmap base, in a fresh address space:
  // the address is then the base minus 2M, not congruent to file page 1.
  FileWorld fresh(4096);
  const FileMap small{"lib", 4096, 1, false};
  auto at = fresh.m.mm(0).mmap(2 << 20, Prot::R, false, std::nullopt, 0, &small);
  ASSERT_TRUE(at);
  EXPECT_EQ(at->val % (2 << 20), 0u);
}

// ---- property: random mappings of one file against a reference ----------------

class PgoffWorld {
 public:
  PgoffWorld(Granule g, std::uint64_t seed) : w_(kFilePages, g), rng_(seed) {
    ref_.assign(kArena, std::nullopt);
  }

  std::string step() {
    const std::uint64_t page = w_.page;
    const std::uint64_t a = rng_() % kArena;
    const std::uint64_t n = 1 + rng_() % std::min<std::uint64_t>(24, kArena - a);
    const std::uint64_t va = kBase + a * page;
    switch (rng_() % 6) {
      case 0:
      case 1: {  // mmap at a free place, at a random file page (some past the file's end)
        for (std::uint64_t i = a; i < a + n; ++i)
          if (ref_[i]) return "";
        const std::uint64_t pgoff = rng_() % (kFilePages + 8);
        if (!w_.map(va, n, pgoff)) return fmt::format("mmap refused a free range at page {}", a);
        for (std::uint64_t i = 0; i < n; ++i) ref_[a + i] = pgoff + i;
        return "";
      }
      case 2:
        w_.m.mm(0).munmap(VirtAddr{va}, n * page);
        for (std::uint64_t i = a; i < a + n; ++i) ref_[i].reset();
        return "";
      case 3: {  // split (and maybe merge again) without moving anything
        const Prot p = rng_() % 2 ? Prot::R : Prot::RX;
        w_.m.mm(0).mprotect(VirtAddr{va}, n * page, p);
        return "";
      }
      default: {
        const bool want = ref_[a] && *ref_[a] < kFilePages;
        if (w_.read(va) != want) return fmt::format("read of page {} (file page {}) {}", a, ref_[a] ? *ref_[a] : ~0ull,
                                            want ? "failed" : "succeeded");
        return "";
      }
    }
  }

  // Every present PTE maps its reference file page's frame.
  std::string check() {
    for (std::uint64_t i = 0; i < kArena; ++i) {
      const auto got = w_.mapped(kBase + i * w_.page);
      if (!got) continue;
      if (!ref_[i]) return fmt::format("page {} is mapped but unmapped in the reference", i);
      const auto want = w_.cached(*ref_[i]);
      if (got != want) return fmt::format("page {} maps frame {}, file page {} is frame {}", i, *got, *ref_[i],
                                  want ? *want : ~0ull);
    }
    return "";
  }

 private:
  static constexpr std::uint64_t kArena = 256;     // pages
  static constexpr std::uint64_t kFilePages = 160;
  FileWorld w_;
  std::mt19937_64 rng_;
  std::vector<std::optional<std::uint64_t>> ref_;  // page of the arena -> file page
};

TEST(FilePgoff, PropertyRandomMappingsOfOneFileMapTheReferencesFilePages) {
  std::vector<std::uint64_t> seeds;
  if (const char* s = std::getenv("CONTPTE_SEED"))
    seeds.push_back(std::strtoull(s, nullptr, 10));
  else
    for (std::uint64_t s = 1; s <= 8; ++s) seeds.push_back(s);
  for (Granule g : {Granule::k4K, Granule::k64K})
    for (std::uint64_t seed : seeds) {
      PgoffWorld w(g, seed);
      for (int i = 0; i < 400; ++i) {
        std::string err = w.step();
        if (err.empty()) err = w.check();
        ASSERT_TRUE(err.empty()) << "granule " << geometry(g).name << " seed " << seed << " step " << i << ": "
                                 << err;
      }
    }
}

}  // namespace
