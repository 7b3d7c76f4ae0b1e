// The stats table (sim/stats.h): docs/stats.md is generated from it, every
// stat it names reaches the report in table order and is accepted by
// `expect stat`, per-size names follow the granule, and an unknown name's
// error lists the valid ones.

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "scenario/runner.h"
#include "scenario/scenario.h"
#include "sim/stats.h"

using namespace contpte;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Set CONTPTE_UPDATE_DOCS=1 to rewrite docs/stats.md from the table.
TEST(StatsDoc, DocsStatsMdIsGeneratedFromTheTable) {
  const std::string path = std::string(CONTPTE_SOURCE_DIR) + "/docs/stats.md";
  const std::string want = stats_markdown();
  if (const char* u = std::getenv("CONTPTE_UPDATE_DOCS"); u && std::string(u) == "1") {
    std::ofstream(path) << want;
  }
  EXPECT_EQ(read_file(path), want) << "docs/stats.md is out of date; regenerate it with\n"
                                      "  CONTPTE_UPDATE_DOCS=1 build/tests/contpte_tests --gtest_filter='StatsDoc.*'";
}

TEST(StatsDoc, EveryRowAndFamilyIsDescribed) {
  for (const StatDef& d : stat_table()) {
    EXPECT_FALSE(d.counts.empty()) << d.name;
    EXPECT_NE(stats_markdown().find(fmt::format("| `{}` |", d.name)), std::string::npos) << d.name;
  }
  for (const StatFamily& f : stat_families()) EXPECT_FALSE(f.counts.empty()) << f.prefix;
}

RunResult run_text(const std::string& text) {
  return run_scenario(parse_scenario(text, "t.cpt"));
}

TEST(Stats, TheReportHasEveryScenarioRowInTableOrderThenTheSizesThatOccurred) {
  const RunResult r = run_text("mthp 64K\nmmap A 256K addr=0x4000000000\nwrite A 256K\n");
  std::size_t i = 0;
  for (const StatDef& d : stat_table()) {
    if (!d.value) continue;
    ASSERT_LT(i, r.stats.size());
    EXPECT_EQ(r.stats[i].first, d.name);
    ++i;
  }
  ASSERT_EQ(r.stats.size(), i + 1) << "one family member: anon_fault_alloc_64K";
  EXPECT_EQ(r.stats[i].first, "anon_fault_alloc_64K");
  EXPECT_EQ(r.stats[i].second, 4.0);
}

TEST(Stats, ExpectStatAcceptsEveryScenarioStatOfTheGranule) {
  for (const Granule gr : {Granule::k4K, Granule::k16K, Granule::k64K}) {
    const Geometry& g = geometry(gr);
    std::string text = fmt::format("granule {}\n", g.name);
    for (const std::string& n : scenario_stat_names(g)) text += fmt::format("expect stat {} >= 0\n", n);
    const RunResult r = run_text(text);
    EXPECT_EQ(r.exit_status(), 0) << g.name;
    EXPECT_EQ(r.expects_failed, 0u);
  }
}

TEST(Stats, PerSizeNamesFollowTheGranule) {
  const Geometry& g16 = geometry(Granule::k16K);
  EXPECT_TRUE(is_scenario_stat("anon_fault_alloc_32K", g16));
  EXPECT_TRUE(is_scenario_stat("anon_fault_alloc_32M", g16));  // the PMD size
  EXPECT_FALSE(is_scenario_stat("anon_fault_alloc_16K", g16));  // order 0: not an mTHP size
  EXPECT_TRUE(is_scenario_stat("pagecache_alloc_16K", g16));    // readahead starts at one page
  EXPECT_FALSE(is_scenario_stat("anon_fault_alloc_64M", g16));
  EXPECT_FALSE(is_scenario_stat("replay_failed_mmaps", g16));   // set by `run --replay` only
}

TEST(Stats, AnUnknownNameIsAnInputErrorListingTheValidOnes) {
  try {
    run_text("mthp 64K\nexpect stat foldz == 1\n");
    FAIL() << "no error";
  } catch (const ScenarioError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("t.cpt:2:13: error: unknown stat 'foldz'; expected one of: accesses, tlb_misses"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("folds"), std::string::npos) << m;
    EXPECT_NE(m.find("anon_fault_alloc_64K"), std::string::npos) << m;
    EXPECT_EQ(m.find("replay_"), std::string::npos) << m;
  }
}

}  // namespace
