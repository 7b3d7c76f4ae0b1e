#include "trace/replay.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>

namespace contpte {
namespace {

using A = TraceAccessType;
constexpr std::uint32_t kRW = trace_prot::kRead | trace_prot::kWrite;
constexpr std::uint32_t kRX = trace_prot::kRead | trace_prot::kExec;

const BuiltinConfig& cfg(std::string_view name) { return *find_config(name); }

RunResult replay(const std::vector<TraceRecord>& recs, std::string_view config = "base-4k", bool check = true) {
  TraceContents t;
  t.records = recs;
  RunOptions o;
  o.check = check;
  return replay_records(t, cfg(config), o);
}

TraceMmap anon(std::uint64_t len, std::uint32_t prot = kRW) { return TraceMmap{len, prot, 0, std::nullopt, 0, std::nullopt, 0}; }

TEST(Replay, TouchingAnonymousMemoryFaultsItIn) {
  std::vector<TraceRecord> recs{anon(2 << 20)};
  for (std::uint64_t off = 0; off < (2 << 20); off += 4096) recs.push_back(TraceAccess{A::Store, 0, off, 8});
  for (std::uint64_t off = 0; off < (2 << 20); off += 4096) recs.push_back(TraceAccess{A::Load, 0, off, 8});
  const RunResult base = replay(recs);
  EXPECT_EQ(base.stat("accesses"), 1024);
  EXPECT_EQ(base.stat("faults_anon"), 512);
  EXPECT_EQ(base.stat("rss_bytes"), 2 << 20);
  EXPECT_EQ(base.stat("replay_unresolved_accesses"), 0);
  EXPECT_EQ(base.stat("violations"), 0);
  EXPECT_EQ(base.config.name, "base-4k");
  // Under 64K mTHP + contpte the same program gets 64K folios, folded.
  const RunResult cont = replay(recs, "contpte-64k");
  EXPECT_EQ(cont.stat("faults_anon"), 32);
  EXPECT_EQ(cont.stat("cont_coverage"), 1.0);
  EXPECT_LT(cont.stat("tlb_misses"), base.stat("tlb_misses"));
}

TEST(Replay, InstructionFetchesNeedAnExecutableMapping) {
  const std::vector<TraceRecord> recs{anon(0x10000, kRX), anon(0x10000, kRW), TraceAccess{A::Instr, 0, 0x40, 4},
                                      TraceAccess{A::Instr, 1, 0x40, 4}};
  // The fetch from the RW mapping is refused: fetches go through the
  // instruction side with execute permission checked.
  EXPECT_EQ(replay(recs).stat("replay_unresolved_accesses"), 1);
}

TEST(Replay, AnAccessStraddlingPagesTranslatesBothAndCountsOnce) {
  const RunResult r = replay({anon(0x10000), TraceAccess{A::Load, 0, 0xffc, 8}});
  EXPECT_EQ(r.stat("accesses"), 1);  // the program made one access
  EXPECT_EQ(r.stat("faults_zero"), 2);  // both pages were translated
}

// docs/workloads.md: each program access counts once, so the count is the
// same under every configuration, whichever page boundaries an access
// straddles (a 4K one inside a 64K page straddles nothing at 64K).
TEST(Replay, TheAccessCountIsTheSameUnderEveryConfiguration) {
  std::vector<TraceRecord> recs{anon(4 << 20)};
  std::mt19937_64 rng(25);
  for (int i = 0; i < 2000; ++i) {
    const std::uint64_t off = rng() % ((4 << 20) - 16);
    const std::uint64_t size = std::uint64_t{1} << (rng() % 4);  // 1 to 8 bytes
    recs.push_back(TraceAccess{rng() % 2 ? A::Store : A::Load, 0, off, static_cast<std::uint32_t>(size)});
  }
  // And some that straddle 4K, 16K, 64K and 2M boundaries for certain.
  for (std::uint64_t b : {0x1000u, 0x4000u, 0x10000u, 0x200000u})
    recs.push_back(TraceAccess{A::Load, 0, b - 4, 8});
  for (const auto& c : kBuiltinConfigs) {
    const RunResult r = replay(recs, c.name);
    EXPECT_EQ(r.stat("accesses"), 2004) << c.name;
    EXPECT_EQ(r.stat("replay_unresolved_accesses"), 0) << c.name;
  }
}

TEST(Replay, MunmapAndMprotectApplyToTheReplayedPlace) {
  const RunResult r = replay({anon(0x4000), TraceAccess{A::Store, 0, 0x3000, 8},
                              TraceMprotect{0, 0x2000, 0x2000, trace_prot::kRead},
                              TraceAccess{A::Store, 0, 0x3000, 8},  // now read-only: SIGSEGV
                              TraceAccess{A::Store, 0, 0x1000, 8},  // still writable
                              TraceMunmap{0, 0, 0x2000}, TraceAccess{A::Load, 0, 0x1000, 8},  // gone
                              TraceAccess{A::Load, 0, 0x3000, 8}});
  EXPECT_EQ(r.stat("replay_unresolved_accesses"), 2);
}

TEST(Replay, RangesRoundInsideLargerPages) {
  // A 4K mprotect inside a 64K page changes nothing under the 64K granule.
  const std::vector<TraceRecord> recs{anon(0x20000), TraceMprotect{0, 0x1000, 0x1000, trace_prot::kRead},
                                      TraceAccess{A::Store, 0, 0x1000, 8}};
  EXPECT_EQ(replay(recs, "gran-64k").stat("replay_unresolved_accesses"), 0);
  EXPECT_EQ(replay(recs, "base-4k").stat("replay_unresolved_accesses"), 1);
}

TEST(Replay, AGrantOnPartOfALargePageOpensThePage) {
  // glibc grows a thread arena by mprotect-ing 4K steps of a PROT_NONE
  // reservation: under 64K pages, the partly opened page must open.
  const std::vector<TraceRecord> recs{anon(0x40000, 0), TraceMprotect{0, 0, 0x21000, kRW},
                                      TraceAccess{A::Store, 0, 0x20ff8, 8},
                                      TraceMprotect{0, 0x21000, 0x1000, kRW},  // inside one page
                                      TraceAccess{A::Store, 0, 0x21ff8, 8},
                                      TraceAccess{A::Store, 0, 0x30000, 8}};  // never opened
  EXPECT_EQ(replay(recs, "gran-64k").stat("replay_unresolved_accesses"), 1);
  EXPECT_EQ(replay(recs, "base-4k").stat("replay_unresolved_accesses"), 1);
}

TEST(Replay, BrkGrowsAndShrinksTheHeap) {
  const RunResult r = replay({TraceMmap{0x1000, kRW, trace_map::kHeap, std::nullopt, 0, std::nullopt, 0},
                              TraceAccess{A::Store, 0, 0x0, 8}, TraceBrk{0, 0x21000},
                              TraceAccess{A::Store, 0, 0x20000, 8}, TraceBrk{0, 0x1000},
                              TraceAccess{A::Store, 0, 0x20000, 8}});
  EXPECT_EQ(r.stat("replay_unresolved_accesses"), 1);  // only the access after the shrink
  EXPECT_EQ(r.stat("faults_anon"), 2);
}

TEST(Replay, MremapMovesAndResizes) {
  const RunResult r = replay({anon(0x2000), TraceAccess{A::Store, 0, 0x1000, 8}, TraceMremap{0, 0x8000, true},
                              TraceAccess{A::Store, 1, 0x7000, 8}, TraceAccess{A::Load, 0, 0x1000, 8},
                              TraceMremap{1, 0x10000, false}, TraceAccess{A::Store, 1, 0xf000, 8}});
  EXPECT_EQ(r.stat("replay_unresolved_accesses"), 1);  // the old place is gone
  EXPECT_EQ(r.stat("replay_failed_mmaps"), 0);
}

TEST(Replay, MappingsInsideAReservationKeepTheirOffsets) {
  // The loader's pattern: reserve PROT_NONE, then map segments into it.
  const RunResult r = replay({anon(0x10000, 0), TraceMmap{0x2000, kRX, trace_map::kFixed, 0u, 0x0, std::nullopt, 0},
                              TraceMmap{0x1000, kRW, trace_map::kFixed, 0u, 0x4000, std::nullopt, 0},
                              TraceAccess{A::Instr, 1, 0x1000, 4}, TraceAccess{A::Store, 2, 0x0, 8},
                              TraceAccess{A::Load, 0, 0x4008, 8},   // the same page through the reservation
                              TraceAccess{A::Load, 0, 0x8000, 8}}); // still PROT_NONE
  EXPECT_EQ(r.stat("replay_unresolved_accesses"), 1);
  EXPECT_EQ(r.stat("faults_zero") + r.stat("faults_anon"), 2);
}

// File mappings replay as mappings of the page cache of their file (one
// per file, of its recorded size), shared by every process that maps it:
// the second program of an exec reads the cache the first one filled.
TEST(Replay, FileMappingsShareThePageCacheAcrossProcesses) {
  using namespace trace_map;
  const TraceMmap text{0x10000, kRX, kFile, std::nullopt, 0, 0u, 0x2000};
  std::vector<TraceRecord> recs{TraceFile{0x40000, "/usr/lib/libc.so.6"}, text,
                                TraceAccess{A::Load, 0, 0x100, 8}, TraceExec{{"again"}}, text,
                                TraceAccess{A::Load, 1, 0x100, 8}};
  const RunResult r = replay(recs);
  EXPECT_EQ(r.stat("replay_unresolved_accesses"), 0);
  EXPECT_EQ(r.stat("faults_file"), 2);  // both reads are page-cache faults
  const double once = replay({recs.begin(), recs.begin() + 3}).stat("pagecache_bytes");
  EXPECT_GT(once, 0);
  // Read once: the second process found the pages in the cache.
  EXPECT_EQ(r.stat("pagecache_bytes"), once);
  // Without the file (version 1 traces, implicit mappings): anonymous.
  const RunResult anon_r = replay({anon(0x10000), TraceAccess{A::Load, 0, 0x100, 8}});
  EXPECT_EQ(anon_r.stat("faults_file"), 0);
  EXPECT_EQ(anon_r.stat("pagecache_bytes"), 0);
}

// Two mappings of one file at different offsets (a library's text and
// data) map one page cache: the pages they have in common count once, and
// the cache is as large as the recorded file, not as its largest mapping.
TEST(Replay, MappingsOfOneFileAtDifferentOffsetsShareItsPages) {
  using namespace trace_map;
  const std::vector<TraceRecord> recs{TraceFile{0x40000, "/usr/lib/libc.so.6"},
                                      TraceMmap{0x10000, kRX, kFile, std::nullopt, 0, 0u, 0x0},
                                      TraceMmap{0x10000, kRW, kFile, std::nullopt, 0, 0u, 0x8000},
                                      TraceAccess{A::Load, 0, 0x100, 8}, TraceAccess{A::Load, 1, 0x100, 8}};
  for (const char* config : {"base-4k", "base-16k", "base-64k"}) {
    const RunResult r = replay(recs, config);
    EXPECT_EQ(r.stat("replay_unresolved_accesses"), 0) << config;
    // One readahead window (read_ahead_kb 128: 32 pages of 4K, 8 of 16K,
    // 2 of 64K) from file page 0 holds file byte 0x8100: the second read
    // is served from the cache (with a cache per offset it read 0x10000
    // to 0x20000 more).
    EXPECT_EQ(r.stat("pagecache_bytes"), 0x20000) << config;
  }
  // A mapping longer than the file: its pages past the file's end are
  // SIGBUS, as on Linux.
  const RunResult past = replay({TraceFile{0x3000, "small"}, TraceMmap{0x10000, kRX, kFile, std::nullopt, 0, 0u, 0},
                                 TraceAccess{A::Load, 0, 0x2ff8, 8}, TraceAccess{A::Load, 0, 0x3000, 8}});
  EXPECT_EQ(past.stat("replay_unresolved_accesses"), 1);
  EXPECT_EQ(past.stat("pagecache_bytes"), 0x3000);
}

// docs/trace.md, "Offsets in larger pages": a 4K trace's mapping at an
// address and offset not aligned to a 64K page is extended down in both
// to its page; every byte the program read stays inside the file (the
// naive rounding of the offset alone would put the last bytes one page
// further, past the file's end).
TEST(Replay, AnUnalignedOffsetUnderLargerPagesStaysInsideTheFile) {
  using namespace trace_map;
  const std::vector<TraceRecord> recs{
      TraceFile{0x20000, "/usr/lib/x.so"}, anon(0x40000, 0),
      TraceMmap{0x2000, kRW, kFile | kFixed, 0u, 0xf000, 0u, 0x1e000},
      TraceAccess{A::Load, 1, 0x1ff8, 8}, TraceAccess{A::Load, 1, 0x0, 8}};
  for (const char* config : {"base-4k", "base-16k", "base-64k"}) {
    const RunResult r = replay(recs, config);
    EXPECT_EQ(r.stat("replay_unresolved_accesses"), 0) << config;
    EXPECT_GT(r.stat("faults_file"), 0) << config;
  }
}

// mremap keeps a file mapping's file and offset: the moved mapping's
// pages are the page cache's again, not anonymous memory.
TEST(Replay, AMovedFileMappingStillMapsTheFile) {
  using namespace trace_map;
  const RunResult r = replay({TraceFile{0x40000, "/usr/lib/libc.so.6"},
                              TraceMmap{0x4000, trace_prot::kRead, kFile, std::nullopt, 0, 0u, 0x10000},
                              TraceAccess{A::Load, 0, 0x100, 8}, TraceMremap{0, 0x8000, true},
                              TraceAccess{A::Load, 1, 0x7000, 8}, TraceMremap{1, 0x10000, false},
                              TraceAccess{A::Load, 1, 0xf000, 8}});
  EXPECT_EQ(r.stat("replay_unresolved_accesses"), 0);
  EXPECT_EQ(r.stat("faults_zero"), 0);
  EXPECT_EQ(r.stat("faults_file"), 3);
  EXPECT_EQ(r.stat("pagecache_bytes"), 0x20000);  // one window around file page 0x10: nothing read twice
}

// Shared anonymous memory is shared with the children forked after it: a
// child's write is no copy-on-write fault.
TEST(Replay, SharedAnonymousMemoryStaysSharedAfterFork) {
  using namespace trace_map;
  const std::vector<TraceRecord> recs{TraceMmap{0x1000, kRW, kShared, std::nullopt, 0, std::nullopt, 0},
                                      TraceAccess{A::Store, 0, 0, 8}, TraceFork{1}, TraceStream{1},
                                      TraceAccess{A::Store, 0, 0, 8}};
  const RunResult r = replay(recs);
  EXPECT_EQ(r.stat("replay_unresolved_accesses"), 0);
  EXPECT_EQ(r.stat("faults_cow"), 0);
  const RunResult priv = replay({anon(0x1000), TraceAccess{A::Store, 0, 0, 8}, TraceFork{1}, TraceStream{1},
                                 TraceAccess{A::Store, 0, 0, 8}});
  EXPECT_EQ(priv.stat("faults_cow"), 1);
}

TEST(Replay, ForkGivesTheChildStreamACopyOnWriteAddressSpace) {
  const RunResult r = replay({anon(0x10000), TraceAccess{A::Store, 0, 0x0, 8}, TraceFork{1},
                              TraceAccess{A::Store, 0, 0x0, 8},  // parent writes: COW copy (shared after fork)
                              TraceExit{}, TraceStream{1}, TraceAccess{A::Store, 0, 0x0, 8},  // child: reuse
                              TraceExit{}});
  EXPECT_EQ(r.stat("faults_cow"), 1);
  EXPECT_EQ(r.stat("faults_reuse"), 1);
  EXPECT_EQ(r.stat("replay_unresolved_accesses"), 0);
  EXPECT_EQ(r.stat("rss_bytes"), 0);  // both exited
}

TEST(Replay, EachProcessKeepsItsOwnViewOfTheMappings) {
  // After the fork the parent moves mapping 0 and makes mapping 2; the
  // child still has mapping 0 where it was and never had mapping 2.
  const RunResult r = replay({anon(0x10000), TraceAccess{A::Store, 0, 0x0, 8}, TraceFork{1},
                              TraceMremap{0, 0x20000, true}, TraceAccess{A::Store, 1, 0x1f000, 8}, anon(0x1000),
                              TraceStream{1}, TraceAccess{A::Load, 0, 0x0, 8}, TraceAccess{A::Load, 2, 0x0, 8}});
  EXPECT_EQ(r.stat("replay_unresolved_accesses"), 1);  // only the child's access to mapping 2
}

// Property: random munmap / mprotect / access sequences over a few
// mappings against a reference set of mapped, writable pages: every access
// the reference permits resolves, every other is counted unresolved. (All
// mmaps come first: a later one may reuse an unmapped place, and accesses
// through the dead mapping would land in it, as in a real program.)
TEST(Replay, PropertyUnresolvedAccessesMatchAPageModel) {
  std::mt19937_64 rng(5);
  for (int iter = 0; iter < 20; ++iter) {
    std::vector<TraceRecord> recs;
    std::vector<std::uint64_t> lens;
    std::set<std::pair<std::uint32_t, std::uint64_t>> mapped, readonly;  // (map, page)
    std::uint64_t expect_unresolved = 0;
    const int nmaps = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < 400; ++i) {
      const unsigned what = i < nmaps ? 0 : 1 + static_cast<unsigned>(rng() % 9);
      if (what == 0) {
        const std::uint64_t pages = 1 + rng() % 40;
        recs.push_back(anon(pages << 12));
        for (std::uint64_t p = 0; p < pages; ++p) mapped.insert({std::uint32_t(lens.size()), p});
        lens.push_back(pages << 12);
        continue;
      }
      const auto map = static_cast<std::uint32_t>(rng() % lens.size());
      const std::uint64_t pages = lens[map] >> 12;
      const std::uint64_t first = rng() % pages, n = 1 + rng() % (pages - first);
      if (what == 1) {
        recs.push_back(TraceMunmap{map, first << 12, n << 12});
        for (std::uint64_t p = first; p < first + n; ++p) mapped.erase({map, p}), readonly.erase({map, p});
      } else if (what == 2) {
        recs.push_back(TraceMprotect{map, first << 12, n << 12, trace_prot::kRead});
        for (std::uint64_t p = first; p < first + n; ++p) readonly.insert({map, p});
      } else {
        const bool store = rng() % 2;
        recs.push_back(TraceAccess{store ? A::Store : A::Load, map, (first << 12) + 8 * (rng() % 512), 8});
        const bool ok = mapped.count({map, first}) && !(store && readonly.count({map, first}));
        expect_unresolved += !ok;
      }
    }
    const RunResult r = replay(recs, "base-4k", iter % 4 == 0);
    ASSERT_EQ(r.stat("replay_unresolved_accesses"), double(expect_unresolved)) << "iteration " << iter;
    EXPECT_EQ(r.stat("replay_failed_mmaps"), 0);
    EXPECT_EQ(r.stat("violations"), 0);
  }
}

TEST(Replay, FromAFileUnderEveryConfiguration) {
  const auto path = std::filesystem::temp_directory_path() / ("contpte_replay_test-" + std::to_string(::getpid()) + ".trace");
  {
    std::ofstream out(path, std::ios::binary);
    TraceWriter w(out, TraceHeader{kTraceVersion, {"prog"}});
    w.write(anon(4 << 20));
    for (std::uint64_t off = 0; off < (4 << 20); off += 512) w.access(TraceAccess{A::Store, 0, off, 8});
    w.finish();
  }
  std::uint64_t last_done = 0, last_total = 1;
  ReplayOptions o;
  o.progress = [&](std::uint64_t d, std::uint64_t t) { last_done = d, last_total = t; };
  const auto results = replay_compare(path.string(), o, 2);
  ASSERT_EQ(results.size(), kBuiltinConfigs.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].config.name, kBuiltinConfigs[i].name);
    EXPECT_EQ(results[i].stat("accesses"), 8192);
    EXPECT_EQ(results[i].stat("replay_unresolved_accesses"), 0);
    EXPECT_EQ(results[i].exit_status(), 0);
  }
  EXPECT_EQ(last_done, last_total);
  // A truncated copy: an error, no result.
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);
  EXPECT_THROW(replay_trace(path.string(), cfg("base-4k"), {}), TraceError);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace contpte
