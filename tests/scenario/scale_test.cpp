// `contpte run --scale N` (scenario/scale.h): the scenario's address space
// zoomed N times around its lowest literal address — mappings, ranges,
// offsets and access counts grow N times, strides stay — and the extensive
// expectations (accesses, rss_bytes, pagecache_bytes) follow.
#include <gtest/gtest.h>

#include <string>

#include "scenario/runner.h"
#include "scenario/scale.h"
#include "scenario/scenario.h"

using namespace contpte;

namespace {

template <class T>
const T& op(const Scenario& sc, std::size_t i) {
  return std::get<T>(sc.statements.at(i).op);
}

TEST(Scale, ZoomsMappingsRangesAndCountsAroundTheLowestLiteralAddress) {
  const Scenario sc = parse_scenario(
      "memory 1G\n"
      "mmap A 1M addr=0x4000000000\n"
      "mmap B 2M addr=0x4000200000\n"
      "mmap C 64K\n"                                   // top-down: only its size grows
      "write A+0x10000 64K stride=256 count=7 pattern=random\n"
      "madvise B+0x100000 64K dontneed\n"
      "mprotect 0x4000200000 4K r\n"
      "reclaim pages=5\n"
      "expect cont A+0x20000 64K\n"
      "expect stat accesses == 7\n"
      "expect stat faults >= 2\n"
      "expect stat rss_bytes == 64K\n",
      "t.cpt");
  const Scenario x = scale_scenario(sc, 4);
  EXPECT_EQ(x.header.memory, std::uint64_t{4} << 30);
  EXPECT_EQ(op<Mmap>(x, 0).addr->val, 0x4000000000u);
  EXPECT_EQ(op<Mmap>(x, 0).size, 4u << 20);
  EXPECT_EQ(op<Mmap>(x, 1).addr->val, 0x4000800000u);  // 2M after A, now 8M after
  EXPECT_EQ(op<Mmap>(x, 1).size, 8u << 20);
  EXPECT_FALSE(op<Mmap>(x, 2).addr);
  EXPECT_EQ(op<Mmap>(x, 2).size, 256u << 10);
  const auto& w = op<Access>(x, 3);
  EXPECT_EQ(w.addr.offset, 0x40000u);
  EXPECT_EQ(w.len, 256u << 10);
  EXPECT_EQ(w.stride, 256u);  // the same density: stride stays, count grows
  EXPECT_EQ(w.count, 28u);
  EXPECT_EQ(op<Madvise>(x, 4).addr.offset, 0x400000u);
  EXPECT_EQ(op<Madvise>(x, 4).len, 256u << 10);
  EXPECT_EQ(op<Mprotect>(x, 5).addr.offset, 0x4000800000u);  // a literal address zooms too
  EXPECT_EQ(op<Mprotect>(x, 5).len, 16u << 10);
  EXPECT_EQ(*op<Reclaim>(x, 6).pages, 20u);
  EXPECT_EQ(op<ExpectCont>(x, 7).addr.offset, 0x80000u);
  EXPECT_EQ(op<ExpectCont>(x, 7).len, 256u << 10);
  EXPECT_EQ(op<ExpectStat>(x, 8).value, 28);  // extensive: x N
  EXPECT_EQ(op<ExpectStat>(x, 9).value, 2);   // not extensive: as written
  EXPECT_EQ(op<ExpectStat>(x, 10).value, 256 << 10);
  // Statement text and locations stay the file's, for messages.
  EXPECT_EQ(x.statements[3].loc, sc.statements[3].loc);
}

TEST(Scale, OneIsTheIdentity) {
  const Scenario sc = parse_scenario("mmap A 1M addr=0x4000000000\nwrite A 1M\n", "t.cpt");
  const Scenario x = scale_scenario(sc, 1);
  EXPECT_EQ(op<Mmap>(x, 0).size, 1u << 20);
  EXPECT_EQ(op<Access>(x, 1).count, 256u);
  EXPECT_EQ(x.header.memory, sc.header.memory);
}

TEST(Scale, MemoryGrowsUpToTheHeaderLimit) {
  const Scenario sc = parse_scenario("memory 512G\nmmap A 1M\n", "t.cpt");
  EXPECT_EQ(scale_scenario(sc, 4).header.memory, kMaxScenarioMemory);
}

// What a bigger heap changes: with the region N times larger and the same
// access density, the file's own expectations hold, the faults and RSS grow
// N times, and the block structure is the same.
TEST(Scale, AScaledRunGrowsTheMemoryNotThePasses) {
  const Scenario sc = parse_scenario(
      "mthp 64K\n"
      "mmap A 1M addr=0x4000000000\n"
      "write A 1M stride=4K\n"                      // 256 accesses, one pass
      "read A 1M stride=4K count=100 pattern=random\n"
      "expect cont A 1M\n"
      "expect stat accesses == 356\n"
      "expect stat rss_bytes == 1M\n",
      "t.cpt");
  RunOptions opts;
  const RunResult one = run_scenario(sc, opts);
  ASSERT_EQ(one.exit_status(), 0);
  EXPECT_EQ(one.stat("faults_anon"), 16);
  opts.scale = 3;
  const RunResult three = run_scenario(sc, opts);
  EXPECT_EQ(three.exit_status(), 0) << (three.failures.empty() ? "" : three.failures[0].message);
  EXPECT_EQ(three.stat("accesses"), 3 * 356);
  EXPECT_EQ(three.stat("rss_bytes"), 3 << 20);
  EXPECT_EQ(three.stat("faults_anon"), 3 * 16);  // 48 folios of 64K: new memory, not passes
  EXPECT_EQ(three.stat("folds"), 3 * one.stat("folds"));
}

TEST(Scale, PteLevelStatementsAreRejectedAtTheirLine) {
  const Scenario sc = parse_scenario("alloc F order=4\nset_ptes 0x40000000 F+0 nr=16 prot=rw\n", "t.cpt");
  try {
    (void)scale_scenario(sc, 2);
    FAIL() << "no error";
  } catch (const ScenarioError& e) {
    EXPECT_EQ(e.loc()->line, 1u);
    EXPECT_NE(std::string(e.what()).find("--scale 2 applies to memory-manager scenarios"), std::string::npos)
        << e.what();
  }
}

TEST(Scale, ParallelBlocksAreRejected) {
  const Scenario sc = parse_scenario(
      "mmap A 64K addr=0x4000000000\n"
      "write A 64K\n"
      "parallel\n"
      "  hw read 0x4000000000\n"
      "  hw write 0x4000001000\n"
      "end\n",
      "t.cpt");
  EXPECT_THROW((void)scale_scenario(sc, 2), ScenarioError);
}

TEST(Scale, AZoomPastTheUserAddressSpaceIsAnErrorAtTheMapping) {
  const Scenario sc = parse_scenario(
      "mmap A 1M addr=0x1000000000\n"
      "mmap B 1M addr=0xf00000000000\n",
      "t.cpt");
  try {
    (void)scale_scenario(sc, 2);
    FAIL() << "no error";
  } catch (const ScenarioError& e) {
    EXPECT_EQ(e.loc()->line, 2u);
    EXPECT_NE(std::string(e.what()).find("past the 48-bit user address space"), std::string::npos) << e.what();
  }
  // And through run_scenario: an input error, not a run result.
  RunOptions opts;
  opts.scale = 2;
  EXPECT_THROW((void)run_scenario(sc, opts), ScenarioError);
}

}  // namespace
