// tests/kernel/kernel_findings_test.cpp — `--kernel DIR` end to end, on
// copies of Debian's linux-source-6.12 with one old behaviour restored:
// Linux 6.10-rc's bytes-for-pages contpte_clear_young_dirty_ptes is caught
// as out_of_range, a contpte_convert that reads instead of clearing is
// caught by the explorer as lost_dirty, and the unmodified tree holds. Bad
// trees are errors naming what is wrong.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "diff/diff.h"
#include "kernel/build.h"
#include "support/linux_tree.h"
#include "support/scenario_run.h"

namespace contpte::test {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A partial copy of `tree` (the files --kernel reads) in a fresh directory,
// with `from` replaced by `to` in contpte.c (must occur).
fs::path mutated(const std::string& tree, const std::string& name, const std::string& from,
                 const std::string& to) {
  // Per process: suites of several checkouts may run at once.
  const fs::path dst =
      fs::temp_directory_path() / ("contpte-kernel-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dst);
  for (const auto& rel : kernel::tree_file_names()) {
    fs::create_directories((dst / rel).parent_path());
    fs::copy_file(fs::path(tree) / rel, dst / rel);
  }
  const fs::path c = dst / "arch/arm64/mm/contpte.c";
  std::string text = slurp(c);
  if (!from.empty()) {
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
  }
  std::ofstream(c, std::ios::trunc) << text;
  return dst;
}

RunResult run_file(const std::string& file, const std::string& tree, bool explore = false) {
  kernel::KernelEngines engines(tree, nullptr);
  RunOptions opts;
  opts.kernel_engine = [&](const Geometry& g, bool on) { return &engines.get(g, on); };
  if (explore) opts.explore_max = 1'000'000;
  return run_scenario(load_scenario(std::string(CONTPTE_SOURCE_DIR) + "/" + file), opts);
}

bool has(const RunResult& r, std::string_view rule) {
  for (const auto& v : r.violations)
    if (rule_name(v.rule) == rule) return true;
  return false;
}

TEST(KernelFindings, BytesForPagesInClearYoungDirtyIsOutOfRange) {
  CONTPTE_NEED_LINUX_TREE(tree);
  const RunResult clean = run_file("examples/05-clear-young-dirty-widens.cpt", tree);
  EXPECT_EQ(clean.exit_status(), 0) << testing::describe(clean);
  const fs::path bad = mutated(tree, "bytes", "(end - start) / PAGE_SIZE, flags);", "(end - start), flags);");
  const RunResult r = run_file("examples/05-clear-young-dirty-widens.cpt", bad.string());
  EXPECT_EQ(r.exit_status(), 1);
  EXPECT_TRUE(has(r, "out_of_range")) << testing::describe(r);
  fs::remove_all(bad);
}

// mprotect on a 6.12 tree: the 6.17 batched modify_prot_start_ptes /
// modify_prot_commit_ptes are not in it, so their generic core-mm versions
// run and the run says so (the main job's jit workload differs from the
// built-in engine's stats for this reason, docs/kernel.md "Fallbacks").
TEST(KernelFindings, ARunReportsTheCoreMmFallbacksItUsed) {
  CONTPTE_NEED_LINUX_TREE(tree);
  kernel::KernelEngines engines(tree, nullptr);
  RunOptions opts;
  opts.kernel_engine = [&](const Geometry& g, bool on) { return &engines.get(g, on); };
  const std::string head = "granule 4K\ncontpte upstream\nmthp 64K\nmmap code 256K\nwrite code 256K\n";
  const RunResult with = run_scenario(parse_scenario(head + "mprotect code 256K rx\n", "mprotect.cpt"), opts);
  EXPECT_EQ(with.exit_status(), 0) << testing::describe(with);
  EXPECT_EQ(with.kernel_fallbacks, (std::vector<std::string>{"modify_prot_commit_ptes", "modify_prot_start_ptes"}));
  EXPECT_GT(with.stat("unfolds"), 0) << "the generic versions unfold each block PTE by PTE";
  const RunResult without = run_scenario(parse_scenario(head, "touch.cpt"), opts);
  EXPECT_TRUE(without.kernel_fallbacks.empty());
  const RunResult builtin = run_scenario(parse_scenario(head + "mprotect code 256K rx\n", "mprotect.cpt"));
  EXPECT_TRUE(builtin.kernel_fallbacks.empty());
  EXPECT_EQ(builtin.stat("unfolds"), 0) << "6.17's batched versions rewrite each block whole";
}

TEST(KernelFindings, ConvertReadingInsteadOfClearingLosesDirtyUnderExplore) {
  CONTPTE_NEED_LINUX_TREE(tree);
  const std::string race = "examples/races/upstream-fold-vs-hw-write.cpt";
  const RunResult clean = run_file(race, tree, true);
  EXPECT_EQ(clean.exit_status(), 0) << testing::describe(clean);
  const fs::path bad = mutated(tree, "naive", "__ptep_get_and_clear(mm, addr, ptep);", "__ptep_get(ptep);");
  const RunResult r = run_file(race, bad.string(), true);
  EXPECT_EQ(r.exit_status(), 1);
  bool lost = false;
  for (const auto& b : r.explorations)
    for (const auto& f : b.result.failures) lost |= f.rule == "lost_dirty";
  EXPECT_TRUE(lost || has(r, "lost_dirty")) << testing::describe(r);
  fs::remove_all(bad);
}

// "arm64: contpte: fix set_access_flags() no-op check for SMMU/ATS
// faults" undone: the gathered ptep_get compared with the new entry. A
// device writing a page whose sibling another CPU dirtied faults forever,
// in `explore` and in `run`; the unmodified tree completes the write.
TEST(KernelFindings, GatheredAccessFlagsCheckIsAFaultLoopForADevice) {
  CONTPTE_NEED_LINUX_TREE(tree);
  const std::string race = "examples/races/upstream-dev-write-vs-hw-write.cpt";
  const RunResult clean = run_file(race, tree, true);
  EXPECT_EQ(clean.exit_status(), 0) << testing::describe(clean);
  const fs::path bad = mutated(tree, "gathered", "if (contpte_all_subptes_match_access_flags(ptep, entry))",
                               "if (pte_val(pte_mknoncont(ptep_get(ptep))) == pte_val(entry))");
  const RunResult r = run_file(race, bad.string(), true);
  EXPECT_EQ(r.exit_status(), 1);
  ASSERT_EQ(r.explorations.size(), 1u);
  ASSERT_TRUE(r.explorations[0].result.failed());
  EXPECT_EQ(r.explorations[0].result.failures[0].rule, "fault_loop") << testing::describe(r);
  // Top level: the block's sibling dirtied before the device writes.
  const RunResult top = run_file("examples/17-device-walker.cpt", bad.string());
  EXPECT_TRUE(has(top, "fault_loop")) << testing::describe(top);
  EXPECT_EQ(top.exit_status(), 1);
  EXPECT_EQ(run_file("examples/17-device-walker.cpt", tree).exit_status(), 0);
  // Inside a mapping (the memory manager's fault path), and a CPU without
  // hardware A/D updates (`hafdbs off`): the same loop.
  for (const char* f : {"examples/races/upstream-dev-write-in-mapping-vs-hw-write.cpt",
                        "examples/races/upstream-nohafdbs-cpu-write-vs-dev-read.cpt"}) {
    SCOPED_TRACE(f);
    EXPECT_EQ(run_file(f, tree, true).exit_status(), 0);
    const RunResult m = run_file(f, bad.string(), true);
    EXPECT_EQ(m.exit_status(), 1);
    ASSERT_EQ(m.explorations.size(), 1u);
    ASSERT_TRUE(m.explorations[0].result.failed());
    EXPECT_EQ(m.explorations[0].result.failures[0].rule, "fault_loop") << testing::describe(m);
  }
  fs::remove_all(bad);
}

TEST(KernelFindings, OwnVariantsAreNotABuildOfTheTree) {
  CONTPTE_NEED_LINUX_TREE(tree);
  EXPECT_THROW(run_file("examples/07-variants.cpt", tree), ScenarioError);
}

TEST(KernelFindings, AMissingFileIsNamed) {
  CONTPTE_NEED_LINUX_TREE(tree);
  const fs::path t = mutated(tree, "missing", "", "");
  fs::remove(t / "arch/arm64/mm/fault.c");
  try {
    kernel::KernelEngines e(t.string(), nullptr);
    ADD_FAILURE() << "no error";
  } catch (const kernel::KernelError& e) {
    EXPECT_NE(std::string(e.what()).find("arch/arm64/mm/fault.c"), std::string::npos) << e.what();
  }
  fs::remove_all(t);
}

TEST(KernelFindings, CodeThatDoesNotCompileShowsTheErrorsAndTheSource) {
  CONTPTE_NEED_LINUX_TREE(tree);
  const fs::path t = mutated(tree, "broken", "pte = pte_mkcont(pte);", "pte = pte_mkcont(pte) +;");
  kernel::KernelEngines e(t.string(), nullptr);
  try {
    e.get(geometry(Granule::k4K), true);
    ADD_FAILURE() << "no error";
  } catch (const kernel::KernelError& err) {
    const std::string m = err.what();
    EXPECT_NE(m.find("engine.c"), std::string::npos) << m;
    EXPECT_NE(m.find("arch/arm64/mm/contpte.c:"), std::string::npos) << m;
  }
  fs::remove_all(t);
}

}  // namespace
}  // namespace contpte::test

namespace contpte::test {
namespace {

DiffResult diff_of(const std::string& tree, unsigned runs) {
  kernel::KernelEngines engines(tree, nullptr);
  DiffOptions o;
  o.granules = {Granule::k4K};
  o.runs = runs;
  return run_diff(o, [&](const Geometry& g) -> const ExternalEngine& { return engines.get(g, true); });
}

TEST(KernelDiff, TheCleanTreeAgreesWithTheBuiltInEngine) {
  CONTPTE_NEED_LINUX_TREE(tree);
  const DiffResult r = diff_of(tree, 20);
  EXPECT_EQ(r.divergences, 0u) << r.first << "\n" << r.reproducer;
  EXPECT_EQ(r.statements, 20u * 1000u);
  EXPECT_GT(r.folds, 0u);  // the generator reaches folds
}

TEST(KernelDiff, ConvertDroppingTheGatheredYoungBitIsCaught) {
  CONTPTE_NEED_LINUX_TREE(tree);
  const fs::path bad = mutated(tree, "young", "if (pte_young(ptent))\n\t\t\tpte = pte_mkyoung(pte);", "");
  const DiffResult r = diff_of(bad.string(), 400);
  EXPECT_EQ(r.divergences, 1u);
  EXPECT_NE(r.reproducer.find("expect raw"), std::string::npos) << r.reproducer;
  // The reproducer is a scenario the tree's code passes.
  kernel::KernelEngines engines(bad.string(), nullptr);
  RunOptions opts;
  opts.kernel_engine = [&](const Geometry& g, bool on) { return &engines.get(g, on); };
  const RunResult run = run_scenario(parse_scenario(r.reproducer, "repro.cpt"), opts);
  EXPECT_EQ(run.failures.size(), 0u) << testing::describe(run);
  fs::remove_all(bad);
}

}  // namespace
}  // namespace contpte::test
