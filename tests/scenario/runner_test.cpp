// The scenario runner end to end: Linux's own results (tests/data/
// linux-reference/engine) and the shipped examples must pass unchanged; a
// wrong expect fails naming its line; bad input is an error before running.

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "report/trace_printer.h"
#include "scenario/configs.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

namespace fs = std::filesystem;
using namespace contpte;

namespace {

fs::path source_dir() { return fs::path(CONTPTE_SOURCE_DIR); }

std::vector<fs::path> cpt_files(const fs::path& dir) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".cpt") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

RunResult run_text(std::string_view text, RunOptions opts = {}) {
  return run_scenario(parse_scenario(text, "t.cpt"), opts);
}

std::string describe(const RunResult& r) {
  std::string s;
  for (const auto& f : r.failures) s += std::to_string(f.loc.line) + ": " + f.message + "\n";
  if (r.error) s += *r.error + "\n";
  return s;
}

TEST(LinuxReference, EveryEngineScenarioPassesUnchanged) {
  auto files = cpt_files(source_dir() / "tests/data/linux-reference/engine");
  if (files.empty()) files = cpt_files(source_dir() / "../shared/linux-reference/engine");
  if (files.empty()) GTEST_SKIP() << "no linux-reference/engine scenarios found";
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    RunResult r = run_scenario(load_scenario(f));
    EXPECT_EQ(r.exit_status(), 0) << describe(r);
    EXPECT_EQ(r.expects_failed, 0u);
    // The files check every touched PTE after every statement.
    EXPECT_GT(r.expects_passed, 500u);
  }
}

// The memory manager against a live Linux 6.18 kernel's folio layout: every
// 64K block's contpte eligibility after each step (linux-reference/live).
TEST(LinuxReference, EveryLiveMmScenarioPassesUnchanged) {
  auto files = cpt_files(source_dir() / "tests/data/linux-reference/live");
  if (files.empty()) files = cpt_files(source_dir() / "../shared/linux-reference/live");
  if (files.empty()) GTEST_SKIP() << "no linux-reference/live scenarios found";
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    RunResult r = run_scenario(load_scenario(f));
    EXPECT_EQ(r.exit_status(), 0) << describe(r);
    EXPECT_EQ(r.expects_failed, 0u);
    EXPECT_TRUE(r.violations.empty());
    EXPECT_GT(r.expects_passed, 100u);
  }
}

// More of the same, recorded on this project's own Linux 6.18.44 host by
// scripts/live-reference.py (tests/data/live-6.18/README.md): mprotect,
// madvise, munmap, unaligned and merging mappings, several mTHP sizes, fork
// with reuse, anon_vma rules, and random mm sequences. Each file's inputs are
// in tests/data/live-6.18/in.
TEST(LiveReference, EveryRecordedScenarioPassesUnchanged) {
  const auto files = cpt_files(source_dir() / "tests/data/live-6.18");
  ASSERT_GE(files.size(), 8u);
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    RunResult r = run_scenario(load_scenario(f));
    EXPECT_EQ(r.exit_status(), 0) << describe(r);
    EXPECT_GT(r.expects_passed, 10u);
  }
}

TEST(Examples, EveryShippedExamplePasses) {
  auto files = cpt_files(source_dir() / "examples");
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    RunResult r = run_scenario(load_scenario(f));
    EXPECT_EQ(r.exit_status(), 0) << describe(r);
    EXPECT_GT(r.expects_passed, 0u);
  }
}

TEST(Runner, WrongExpectFailsNamingItsLineAndTheRunGoesOn) {
  RunResult r = run_text(
      "alloc F order=4\n"
      "set_ptes 0x40000000 F nr=16 prot=rw\n"
      "expect raw 0x40000000 young=1\n"
      "expect stat folds == 1\n"
      "expect cont 0x40000000 64K\n");
  EXPECT_EQ(r.exit_status(), 1);
  EXPECT_EQ(r.expects_failed, 2u);
  EXPECT_EQ(r.expects_passed, 1u);
  ASSERT_EQ(r.failures.size(), 2u);
  EXPECT_EQ(r.failures[0].loc.line, 3u);
  EXPECT_NE(r.failures[0].message.find("young=0 (expected 1)"), std::string::npos);
  EXPECT_EQ(r.failures[1].loc.line, 4u);
  EXPECT_EQ(r.failures[1].message, "expect stat folds == 1: found 0");
}

TEST(Runner, ExpectPteGathersButExpectRawDoesNot) {
  RunResult r = run_text(
      "alloc F order=4\n"
      "set_ptes 0x40000000 F nr=16 prot=rw\n"
      "raw_set 0x40005000 pfn=F+5 prot=rw cont young dirty\n"
      "expect pte 0x40000000 young=1 dirty=1\n"
      "expect raw 0x40000000 young=0 dirty=0\n");
  EXPECT_EQ(r.exit_status(), 0) << describe(r);
}

TEST(Runner, StatsAreReportedWithStableKeys) {
  RunResult r = run_text(
      "alloc F order=4\n"
      "set_ptes 0x40000000 F nr=16 prot=rw\n"
      "pte_clear 0x40000000\n");
  for (const char* k : {"accesses", "tlb_misses", "walks", "walk_cycles", "faults", "folds", "unfolds",
                        "tlbi", "cont_coverage", "rss_bytes", "pte_stores", "tlbi_pages"}) {
    bool found = false;
    for (const auto& [name, v] : r.stats) found |= name == k;
    EXPECT_TRUE(found) << k;
  }
  EXPECT_EQ(r.stat("unfolds"), 1);
  EXPECT_EQ(r.stat("tlbi"), 1);
  EXPECT_EQ(r.stat("tlbi_pages"), 16);
  EXPECT_EQ(r.stat("rss_bytes"), 15 * 4096);
  EXPECT_EQ(r.stat("cont_coverage"), 0.0);
  // 16 set_ptes stores, 16 xchg + 16 stores in the unfold, 1 clear.
  EXPECT_EQ(r.stat("pte_stores"), 49);
}

TEST(Runner, ContCoverageIsTheFractionOfPresentPtesWithCont) {
  RunResult r = run_text(
      "alloc F order=4\nalloc G order=4\n"
      "set_ptes 0x40000000 F nr=16 prot=rw\n"
      "set_ptes 0x40010000 G+1 nr=15 prot=rw\n"
      "set_ptes 0x4001f000 G nr=1 prot=rw\n");
  EXPECT_DOUBLE_EQ(r.stat("cont_coverage"), 0.5);
}

TEST(Runner, TraceShowsEveryPteAccessAndTlbiWithItsLine) {
  std::ostringstream trace;
  TracePrinter printer(trace);
  RunOptions opts;
  opts.trace = &printer;
  run_text(
      "alloc F order=4\n"
      "set_ptes 0x40000000 F nr=16 prot=rw\n"
      "pte_clear 0x40003000\n",
      opts);
  const std::string t = trace.str();
  EXPECT_NE(t.find("t.cpt:3: pte_clear 0x40003000"), std::string::npos) << t;
  EXPECT_NE(t.find("t.cpt:3: xchg    0x40000000"), std::string::npos) << t;
  EXPECT_NE(t.find("t.cpt:3: tlbi    range 0x40000000 pages=16"), std::string::npos) << t;
  // Break-before-make: the TLBI comes after the last clear and before the
  // first rewrite.
  const auto last_xchg = t.rfind("xchg    0x4000f000");
  const auto tlbi = t.find("tlbi    range");
  const auto first_store_after = t.find("store   0x40000000", tlbi);
  EXPECT_LT(last_xchg, tlbi);
  EXPECT_NE(first_store_after, std::string::npos);
}

TEST(Runner, DumpPrintsStoredWordsAndChangesNothing) {
  std::ostringstream out;
  RunOptions opts;
  opts.dump = &out;
  RunResult r = run_text(
      "alloc F order=4\n"
      "set_ptes 0x40000000 F nr=16 prot=rw young\n"
      "dump 0x40000000 8K\n"
      "expect stat pte_stores == 16\n",
      opts);
  EXPECT_EQ(r.exit_status(), 0) << describe(r);
  EXPECT_NE(out.str().find("0x000040000000  0x0078"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("rw valid young clean cont"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("0x000040001000"), std::string::npos) << out.str();
}

TEST(Runner, StatementsOfLaterLayersAreRejectedBeforeRunning) {
  try {
    run_text("mmap A 64K prot=rw\nparallel\n  engine munmap A 64K\n  hw read 0x40000000\nend\n");
    FAIL() << "expected ScenarioError";
  } catch (const ScenarioError& e) {
    EXPECT_STREQ(e.what(),
                 "t.cpt:2:1: error: memory-manager statements inside 'parallel' blocks not supported yet "
                 "(branches may be PTE-level statements, hw accesses and lockless readers)");
  }
}

TEST(Runner, UnknownStatNameIsAnInputError) {
  try {
    run_text("expect stat foldz == 1\n");
    FAIL() << "expected ScenarioError";
  } catch (const ScenarioError& e) {
    EXPECT_NE(std::string(e.what()).find("t.cpt:1:13: error: unknown stat 'foldz'"), std::string::npos)
        << e.what();
  }
}

TEST(Runner, ExpectViolationFailsWhenNothingWasFound) {
  RunResult r = run_text("expect violation lost_dirty\nexpect violations 0\n");
  EXPECT_EQ(r.expects_failed, 1u);
  EXPECT_EQ(r.expects_passed, 1u);
  EXPECT_EQ(r.exit_status(), 1);
}

}  // namespace

namespace {

// `contpte run FILE --config NAME`: the configuration's header lines replace
// the file's own for the same keys; the file's other lines stay.
TEST(Configs, ForcedHeaderReplacesTheFilesLines) {
  const char* text =
      "granule 4K\ncontpte off\nmthp none\nseed 7\n"
      "mmap A 4M addr=0x4000000000\nwrite A 4M stride=64K\n";
  const BuiltinConfig* c = find_config("gran-64k");
  ASSERT_NE(c, nullptr);
  Scenario sc = parse_scenario(text, "t.cpt", c->header);
  EXPECT_EQ(sc.header.granule, Granule::k64K);
  EXPECT_EQ(sc.header.variant, "upstream");
  EXPECT_EQ(sc.header.seed, 7u);
  EXPECT_EQ(sc.header.thp_policy(2u << 20), ThpPolicy::Always);
  RunResult r = run_scenario(sc);
  EXPECT_EQ(r.exit_status(), 0) << describe(r);
  EXPECT_DOUBLE_EQ(r.stat("cont_coverage"), 1.0);
}

TEST(Configs, EveryBuiltinConfigurationParsesAndIsNamedUniquely) {
  std::set<std::string_view> names;
  for (const auto& c : kBuiltinConfigs) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
    EXPECT_NO_THROW(parse_scenario("mmap A 2M addr=0x4000000000\n", "t.cpt", c.header)) << c.name;
  }
  EXPECT_EQ(find_config("nope"), nullptr);
}

TEST(Configs, RunJobsRunsEveryFileUnderEveryConfigurationInOrder) {
  const auto dir = fs::temp_directory_path() / ("contpte-configs-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream(dir / "seq.cpt") << "mmap A 8M addr=0x4000000000\nwrite A 8M stride=16K\nread A 8M stride=16K\n";
  }
  std::vector<SuiteJob> jobs;
  for (const auto& c : kBuiltinConfigs) jobs.push_back({dir / "seq.cpt", &c});
  std::size_t last = 0;
  auto results = run_jobs(jobs, {}, 2, [&](std::size_t done, std::size_t total) {
    EXPECT_EQ(total, jobs.size());
    last = done;
  });
  EXPECT_EQ(last, jobs.size());
  ASSERT_EQ(results.size(), jobs.size());
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(results[i].config.name, kBuiltinConfigs[i].name);
    EXPECT_EQ(results[i].exit_status(), 0) << describe(results[i]);
  }
  // The direction the published results give: bigger translation units
  // mean fewer walks.
  auto walks = [&](std::string_view name) {
    for (std::size_t i = 0; i < jobs.size(); ++i)
      if (results[i].config.name == name) return results[i].stat("walks");
    ADD_FAILURE() << "no run of " << name;
    return 0.0;
  };
  EXPECT_GT(walks("base-4k"), walks("contpte-64k"));
  EXPECT_GT(walks("base-4k"), walks("thp-4k"));        // 2M blocks from PMD THP
  EXPECT_GE(walks("mthp-64k"), walks("contpte-64k"));  // mthp without contpte vs with
  EXPECT_GT(walks("contpte-64k"), walks("gran-64k"));
  fs::remove_all(dir);
}

}  // namespace
