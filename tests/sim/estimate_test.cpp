// tests/sim/estimate_test.cpp — the time estimate (docs/estimate.md):
// each part is its counter times the core's constant, the parts add up,
// scenarios count insns_per_access per access and replays their
// instruction fetches; peak memory is a peak (a replay whose process has
// exited still shows it) and costs what the page size makes it cost: a
// page-cache page per granule page, a whole page per sparse touch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "support/scenario_run.h"
#include "sim/estimate.h"
#include "trace/replay.h"

namespace contpte {
namespace {

using contpte::testing::describe;
using contpte::testing::ran_ok;
using contpte::testing::run;

constexpr std::uint64_t K = 1024;

// A core whose costs are round numbers, so each part can be checked by hand.
std::string round_core() {
  const auto path = std::filesystem::temp_directory_path() / ("estimate-test-core-" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << R"({"costs": {"clock_ghz": 2, "base_cpi": 1.5, "fault_ns": 1000, "pte_ns": 10,
      "zero_bytes_per_ns": 4, "copy_bytes_per_ns": 2, "tlbi_ns": 50, "reclaim_page_ns": 7}})";
  return path.string();
}

TEST(Estimate, EachPartIsItsCounterTimesTheCoresCost) {
  const RunResult r = run("granule 4K\ncontpte off\nmthp none\ntlb " + round_core() +
                          "\ninsns_per_access 4\n"
                          "mmap A 64K addr=0x4000000000\nwrite A 64K\nread A 64K\nfork\nprocess 1\nwrite A 4K\n"
                          "reclaim\nmunmap A 64K\n");
  ASSERT_TRUE(ran_ok(r));
  EXPECT_EQ(r.stat("instructions"), r.stat("accesses") * 4);
  EXPECT_DOUBLE_EQ(r.stat("est_work_ns"), r.stat("accesses") * 4 * 1.5 / 2);
  // neoverse-n1's L2 hit costs 3 cycles (the JSON core's base).
  EXPECT_DOUBLE_EQ(r.stat("est_translation_ns"), (r.stat("walk_cycles") + 3 * r.stat("tlb_hits_l2")) / 2);
  EXPECT_EQ(r.stat("mm_faults"), 16 + 1);  // 16 write faults, one COW copy
  EXPECT_DOUBLE_EQ(r.stat("est_fault_ns"), 1000 * r.stat("mm_faults"));
  EXPECT_DOUBLE_EQ(r.stat("est_pte_ns"), 10 * r.stat("pte_stores"));
  EXPECT_GT(r.stat("pgtable_allocs"), 0);
  EXPECT_DOUBLE_EQ(r.stat("est_zero_ns"), (r.stat("bytes_zeroed") + 4096 * r.stat("pgtable_allocs")) / 4);
  EXPECT_EQ(r.stat("bytes_copied"), 4096);
  EXPECT_DOUBLE_EQ(r.stat("est_copy_ns"), 4096 / 2);
  EXPECT_DOUBLE_EQ(r.stat("est_tlbi_ns"), 50 * r.stat("tlbi_instructions"));
  EXPECT_GT(r.stat("reclaim_entries"), 0);
  EXPECT_DOUBLE_EQ(r.stat("est_reclaim_ns"), 7 * r.stat("reclaim_entries"));
  // The parts add up.
  EXPECT_DOUBLE_EQ(r.stat("est_user_ns"), r.stat("est_work_ns") + r.stat("est_translation_ns"));
  EXPECT_DOUBLE_EQ(r.stat("est_kernel_ns"), r.stat("est_fault_ns") + r.stat("est_pte_ns") + r.stat("est_zero_ns") +
                                                r.stat("est_copy_ns") + r.stat("est_tlbi_ns") +
                                                r.stat("est_reclaim_ns"));
  EXPECT_DOUBLE_EQ(r.stat("est_time_ns"), r.stat("est_user_ns") + r.stat("est_kernel_ns"));
}

TEST(Estimate, ExpectStatSeesTheEstimate) {
  const RunResult r = run("tlb " + round_core() + "\ninsns_per_access 2\nmmap A 64K addr=0x4000000000\nwrite A 64K\n"
                          "expect stat est_work_ns == 24\nexpect stat est_fault_ns == 16000\n"
                          "expect stat est_time_ns > 16024\n");
  EXPECT_TRUE(ran_ok(r)) << describe(r);
}

TEST(Estimate, DefaultInsnsPerAccessIsThree) {
  const RunResult r = run("mmap A 64K addr=0x4000000000\nwrite A 64K\n");
  EXPECT_EQ(r.stat("instructions"), 3 * r.stat("accesses"));
}

// Property: whatever the workload, every part is non-negative and they add
// up; 64K mTHP never costs more kernel time than 4K pages on first-touch
// writes (one fault and one zeroing of the same bytes per 64K instead of 16).
TEST(Estimate, PartsAreNonNegativeAndLargeFoliosCutFaultTime) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 12; ++i) {
    const std::uint64_t len = (1 + rng() % 64) * 64 * K;
    const std::string body = "mmap A " + std::to_string(len) + " addr=0x4000000000\nwrite A " + std::to_string(len) +
                             " stride=" + std::to_string(4 * K << (rng() % 5)) + "\n";
    const RunResult base = run("granule 4K\ncontpte off\nmthp none\n" + body);
    const RunResult mthp = run("granule 4K\ncontpte off\nmthp 64K\n" + body);
    for (const RunResult* r : {&base, &mthp}) {
      ASSERT_TRUE(ran_ok(*r));
      for (const auto& n : estimate_stat_names()) EXPECT_GE(r->stat(n), 0) << n;
    }
    EXPECT_LE(mthp.stat("est_fault_ns"), base.stat("est_fault_ns")) << body;
    EXPECT_EQ(mthp.stat("est_work_ns"), base.stat("est_work_ns")) << body;
  }
}

// ---- peak memory ----

TEST(PeakMemory, PeakStaysAfterMemoryIsFreedWhileRssIsTheEnd) {
  const RunResult r = run("granule 4K\ncontpte off\nmthp none\nmmap A 1M addr=0x4000000000\nwrite A 1M\nmunmap A 1M\n");
  ASSERT_TRUE(ran_ok(r));
  EXPECT_EQ(r.stat("rss_bytes"), 0);
  EXPECT_EQ(r.stat("peak_rss_bytes"), 1 << 20);
  EXPECT_GE(r.stat("peak_pgtable_bytes"), r.stat("pgtable_bytes"));
  EXPECT_GT(r.stat("peak_pgtable_bytes"), 0);
}

TEST(PeakMemory, ReadFaultsOnTheZeroPageCostNothing) {
  const RunResult r = run("granule 4K\ncontpte off\nmthp none\nmmap A 1M addr=0x4000000000\nread A 1M\n");
  ASSERT_TRUE(ran_ok(r));
  EXPECT_EQ(r.stat("faults_zero"), 256);
  EXPECT_EQ(r.stat("peak_rss_bytes"), 0);
}

// A 5 KB file read through a mapping costs whole pages of the granule.
TEST(PeakMemory, PageCacheCostsWholePagesOfTheGranule) {
  for (const auto& [granule, page] : {std::pair{"4K", 4 * K}, {"16K", 16 * K}, {"64K", 64 * K}}) {
    const RunResult r = run(std::string("granule ") + granule +
                            "\ncontpte off\nmthp none\nmmap F 5K prot=r file=small.txt\nread F 1 stride=1\n");
    ASSERT_TRUE(ran_ok(r)) << granule;
    const std::uint64_t want = (5 * K + page - 1) / page * page;  // 8K, 16K, 64K
    EXPECT_EQ(r.stat("pagecache_bytes"), want) << granule;
    EXPECT_EQ(r.stat("peak_rss_bytes"), want) << granule;
  }
}

// Sparse anonymous use: one write per 64K costs one page per write with
// 4K pages, a whole 64K page with 64K pages or a 64K folio with 64K mTHP.
TEST(PeakMemory, SparseAnonymousUseCostsWholePages) {
  const std::string body = "mmap A 1M addr=0x4000000000\nwrite A 1M stride=64K\n";
  EXPECT_EQ(run("granule 4K\ncontpte off\nmthp none\n" + body).stat("peak_rss_bytes"), 16 * 4 * K);
  EXPECT_EQ(run("granule 4K\ncontpte off\nmthp 64K\n" + body).stat("peak_rss_bytes"), 1 << 20);
  EXPECT_EQ(run("granule 64K\ncontpte off\nmthp none\n" + body).stat("peak_rss_bytes"), 1 << 20);
}

// A replayed process that exited still reports what it used at its peak,
// and its instruction fetches are its instructions.
TEST(PeakMemory, ReplayReportsThePeakOfAnExitedProcess) {
  using A = TraceAccessType;
  constexpr std::uint32_t kRW = trace_prot::kRead | trace_prot::kWrite;
  constexpr std::uint32_t kRX = trace_prot::kRead | trace_prot::kExec;
  TraceContents t;
  t.records.push_back(TraceMmap{1 << 20, kRW, 0, std::nullopt, 0, std::nullopt, 0});
  t.records.push_back(TraceMmap{64 * K, kRX, 0, std::nullopt, 0, std::nullopt, 0});
  for (std::uint64_t off = 0; off < (1 << 20); off += 4 * K) {
    t.records.push_back(TraceAccess{A::Instr, 1, off % (64 * K), 4});
    t.records.push_back(TraceAccess{A::Store, 0, off, 8});
  }
  t.records.push_back(TraceExit{});
  const RunResult r = replay_records(t, *find_config("base-4k"), {});
  EXPECT_EQ(r.stat("rss_bytes"), 0);
  EXPECT_EQ(r.stat("peak_rss_bytes"), 1 << 20);  // the code pages are read: zero page
  EXPECT_EQ(r.stat("instructions"), 256);
  EXPECT_GT(r.stat("est_time_ns"), 0);
}

}  // namespace
}  // namespace contpte
