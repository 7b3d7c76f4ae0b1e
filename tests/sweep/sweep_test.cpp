// The sweep layer: keys, plans, shards, the results file, resuming, merging.
// The central promise (docs/sweep.md): a run is a pure function of its key,
// so results do not depend on threads, shards or order.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "sweep/merge.h"
#include "sweep/plan.h"
#include "sweep/results.h"
#include "sweep/sha256.h"
#include "sweep/sweep.h"

namespace fs = std::filesystem;
using namespace contpte::sweep;

namespace {

fs::path source_dir() { return fs::path(CONTPTE_SOURCE_DIR); }

// A fresh temporary folder per test.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("contpte-sweep-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "-" +
             std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  std::string operator/(const std::string& n) const { return (path_ / n).string(); }

 private:
  fs::path path_;
};

std::string read(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const std::string& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// Small inputs that run in milliseconds: examples (one with a seeded
// parallel block) under two configurations, two seeds.
Plan small_plan(const std::string& version = "test") {
  SweepRequest req;
  req.inputs = {(source_dir() / "examples/02-fold-on-last-pte.cpt").string(),
                (source_dir() / "examples/10-one-walk-per-block.cpt").string(),
                (source_dir() / "examples/races/upstream-fold-vs-hw-write.cpt").string()};
  req.configs = {"contpte-64k", "base-4k"};
  req.seeds = "1..2";
  return resolve_plan(req, source_dir() / "examples/workloads", version);
}

SweepOptions threads(unsigned n) {
  SweepOptions o;
  o.threads = n;
  return o;
}

// Every run line of the files, without wall_s, by key id.
std::map<std::string, nlohmann::json> lines_by_key(const std::vector<std::string>& files) {
  std::map<std::string, nlohmann::json> out;
  for (const auto& f : files)
    for (const auto& r : read_results_file(f).runs) out.emplace(r.id, comparable(r.value));
  return out;
}

TEST(Sha256, MatchesFips180Examples) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // Across a block boundary with the length in the next block (55, 56, 64 bytes).
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Seeds, NMeansOneToNAndRangesAreInclusive) {
  EXPECT_EQ(parse_seeds("3", "x"), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(parse_seeds("5..7", "x"), (std::vector<std::uint64_t>{5, 6, 7}));
  EXPECT_EQ(parse_seeds("0..0", "x"), (std::vector<std::uint64_t>{0}));
  for (const char* bad : {"0", "7..5", "x", "1..", "..3", "-1", "1..2..3"})
    EXPECT_THROW(parse_seeds(bad, "x"), SweepError) << bad;
}

TEST(Shards, ParseAndSlurmEnvironment) {
  EXPECT_EQ(parse_shard("1/4").index, 1u);
  EXPECT_EQ(parse_shard("1/4").count, 4u);
  for (const char* bad : {"4/4", "1", "a/2", "1/0", "-1/2", "1/2x"}) EXPECT_THROW(parse_shard(bad), SweepError) << bad;

  std::map<std::string, std::string> env;
  const auto get = [&](const char* v) -> const char* {
    auto it = env.find(v);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  EXPECT_FALSE(shard_from_slurm(get));
  env = {{"SLURM_ARRAY_TASK_ID", "12"}, {"SLURM_ARRAY_TASK_MIN", "10"}, {"SLURM_ARRAY_TASK_MAX", "13"},
         {"SLURM_ARRAY_TASK_COUNT", "4"}};
  const auto s = shard_from_slurm(get);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->index, 2u);
  EXPECT_EQ(s->count, 4u);
  // --array=0,2,4: three tasks spread over 0..4.
  env = {{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_MIN", "0"}, {"SLURM_ARRAY_TASK_MAX", "4"},
         {"SLURM_ARRAY_TASK_COUNT", "3"}};
  EXPECT_THROW(shard_from_slurm(get), SweepError);
  env = {{"SLURM_ARRAY_TASK_ID", "0"}, {"SLURM_ARRAY_TASK_MIN", "0"}, {"SLURM_ARRAY_TASK_MAX", "4"},
         {"SLURM_ARRAY_TASK_COUNT", "3"}, {"SLURM_ARRAY_TASK_STEP", "2"}};
  EXPECT_THROW(shard_from_slurm(get), SweepError);
  env = {{"SLURM_ARRAY_TASK_ID", "0"}};
  EXPECT_THROW(shard_from_slurm(get), SweepError);
}

// Property: for any shard count, the shards are disjoint, cover the plan,
// agree between calls, and their expected costs differ by at most one run's.
TEST(Shards, PartitionThePlanAndBalanceCost) {
  Plan p;
  p.version = "t";
  for (int i = 0; i < 7; ++i) p.inputs.push_back({"in" + std::to_string(i), {}, InputKind::Scenario, "h", 100u + 37u * i * i});
  p.configs = {"a", "b", "c"};
  p.cores = {{"default", ""}};
  p.seeds = {1, 2, 3};
  for (unsigned n = 1; n <= 6; ++n) {
    std::vector<int> seen(p.size(), 0);
    std::vector<std::uint64_t> load;
    for (unsigned i = 0; i < n; ++i) {
      const auto mine = shard_runs(p, {i, n});
      EXPECT_EQ(mine, shard_runs(p, {i, n}));
      std::uint64_t l = 0;
      for (auto r : mine) ++seen[r], l += p.inputs[p.input_of(r)].bytes;
      load.push_back(l);
    }
    for (int c : seen) EXPECT_EQ(c, 1) << n << " shards";
    const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
    EXPECT_LE(*hi - *lo, 100u + 37u * 36u) << n << " shards";
  }
}

TEST(Plan, KeysCoverTheCrossProductAndSurviveTheHeader) {
  const Plan p = small_plan();
  ASSERT_EQ(p.size(), 3u * 2u * 1u * 2u);
  std::set<std::string> ids;
  for (std::size_t i = 0; i < p.size(); ++i) ids.insert(p.key(i).id());
  EXPECT_EQ(ids.size(), p.size());
  EXPECT_EQ(p.key(0).input_sha256, sha256_file(p.inputs[0].path));
  EXPECT_EQ(p.key(1).seed, 2u);
  EXPECT_EQ(p.key(2).config, "base-4k");
  const Plan back = Plan::from_json(p.to_json(), p.version, "h");
  for (std::size_t i = 0; i < p.size(); ++i) EXPECT_EQ(back.key(i).id(), p.key(i).id());
}

TEST(Plan, SpecFileFieldsAndPathsRelativeToIt) {
  TempDir d;
  fs::create_directories(d.path() / "in" / "sub");
  fs::copy_file(source_dir() / "examples/02-fold-on-last-pte.cpt", d.path() / "in/sub/a.cpt");
  fs::copy_file(source_dir() / "examples/cores/my-core.json", d.path() / "core.json");
  write(d / "in/readme.txt", "not an input\n");
  write(d / "spec.json", R"({"inputs": ["in", "in/sub/a.cpt"], "configs": "gran-16k", "cores": ["core.json", "default"],
                             "seeds": "3..4", "scale": 2})");
  const Plan p = resolve_plan(read_spec_file(d / "spec.json"), source_dir() / "examples/workloads", "v");
  ASSERT_EQ(p.inputs.size(), 1u);  // the folder and the file name the same input once
  EXPECT_EQ(p.inputs[0].name, d / "in/sub/a.cpt");
  EXPECT_EQ(p.configs, std::vector<std::string>{"gran-16k"});
  ASSERT_EQ(p.cores.size(), 2u);
  EXPECT_EQ(p.cores[0].sha256, sha256_file(d / "core.json"));
  EXPECT_TRUE(p.cores[1].sha256.empty());
  EXPECT_EQ(p.seeds, (std::vector<std::uint64_t>{3, 4}));
  EXPECT_EQ(p.scale, 2u);
}

TEST(Plan, BadSpecsAreErrorsNamingWhere) {
  TempDir d;
  const auto msg = [&](const std::string& spec) {
    write(d / "s.json", spec);
    try {
      resolve_plan(read_spec_file(d / "s.json"), source_dir() / "examples/workloads", "v");
    } catch (const SweepError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(msg("{\"inputs\": [\n  \"builtin\",,\n]}").rfind(d / "s.json:2:13: error: not valid JSON", 0), 0u)
      << msg("{\"inputs\": [\n  \"builtin\",,\n]}");
  EXPECT_EQ(msg(R"({"input": ["builtin"]})"),
            d / "s.json: error: unknown field 'input'; expected inputs, configs, cores, seeds, scale");
  EXPECT_EQ(msg(R"({"inputs": "builtin", "configs": ["thp-2m"]})"),
            "contpte sweep: error: unknown configuration 'thp-2m'; expected one of: base-4k, thp-4k, mthp-64k, "
            "contpte-64k, gran-16k, gran-64k, base-16k, base-64k");
  EXPECT_EQ(msg(R"({"inputs": ["nope.cpt"]})"), d / "nope.cpt: error: no such file or directory");
  EXPECT_NE(msg(R"({"inputs": "builtin", "cores": ["neoverse-n9"]})").find("neither a TLB preset"), std::string::npos);
  EXPECT_NE(msg(R"({"inputs": "builtin", "seeds": 0})").find("seeds"), std::string::npos) << msg(R"({"inputs": "builtin", "seeds": 0})");
  EXPECT_NE(msg(R"({"inputs": "builtin", "scale": 0})").find("field 'scale'"), std::string::npos);
  EXPECT_EQ(msg(R"({"seeds": 2})"), "contpte sweep: error: no inputs: give --inputs FILE|DIR|builtin or a spec file with \"inputs\"");
}

TEST(Plan, ScenarioErrorsUnderAConfigurationComeBeforeAnyRun) {
  TempDir d;
  write(d / "bad.cpt", "granule 4K\nalloc F order=4\nset_ptes 0x40000000 G nr=16 prot=rw\n");
  SweepRequest req;
  req.inputs = {d / "bad.cpt"};
  const Plan p = resolve_plan(req, source_dir() / "examples/workloads", "v");
  try {
    run_sweep(p, {}, d / "out.jsonl", {});
    FAIL() << "no error";
  } catch (const SweepError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(d / "bad.cpt:3:", 0), 0u) << e.what();
  }
  EXPECT_FALSE(fs::exists(d / "out.jsonl"));
}

TEST(Sweep, ResultsAreIndependentOfThreadsShardsAndOrder) {
  TempDir d;
  const Plan p = small_plan();
  const auto one = run_sweep(p, {}, d / "one.jsonl", threads(1));
  EXPECT_EQ(one.ran, p.size());
  run_sweep(p, {}, d / "three.jsonl", threads(3));
  // Shards in reverse order, each on two threads.
  for (unsigned i = 3; i-- > 0;) run_sweep(p, {i, 3}, d / ("s" + std::to_string(i) + ".jsonl"), threads(2));
  const auto a = lines_by_key({d / "one.jsonl"});
  ASSERT_EQ(a.size(), p.size());
  EXPECT_EQ(a, lines_by_key({d / "three.jsonl"}));
  EXPECT_EQ(a, lines_by_key({d / "s0.jsonl", d / "s1.jsonl", d / "s2.jsonl"}));
  // And each is what a lone run of the key gives.
  for (std::size_t i = 0; i < p.size(); ++i) EXPECT_EQ(a.at(p.key(i).id()), comparable(run_one(p, i)));
  // The stats are real runs: the two configurations differ in folds.
  const auto folds = [&](std::size_t i) { return a.at(p.key(i).id())["stats"]["folds"].get<int>(); };
  EXPECT_GT(folds(0), 0);
  EXPECT_EQ(folds(2), 0);
}

TEST(Sweep, TheSeedReplacesTheScenarios) {
  TempDir d;
  // The same scenario with two different `seed` lines: under one sweep seed
  // the runs agree (the sweep's seed wins).
  const std::string race = read((source_dir() / "examples/races/upstream-three-cpus-16-ptes.cpt").string());
  write(d / "a.cpt", "seed 7\n" + race);
  write(d / "b.cpt", "seed 8\n" + race);
  SweepRequest req;
  req.inputs = {d / "a.cpt", d / "b.cpt"};
  req.configs = {"contpte-64k"};
  req.seeds = "5..5";
  const Plan p = resolve_plan(req, source_dir() / "examples/workloads", "v");
  auto ra = comparable(run_one(p, 0)), rb = comparable(run_one(p, 1));
  EXPECT_EQ(ra["stats"], rb["stats"]);
}

TEST(Sweep, ResumesSkippingDoneRunsAndRedoingAPartlyWrittenLine) {
  TempDir d;
  const Plan p = small_plan();
  const std::string out = d / "r.jsonl";
  run_sweep(p, {}, out, threads(2));
  const auto full = lines_by_key({out});
  // Killed while writing the last line: half of it is there, no newline.
  std::string text = read(out);
  text.resize(text.size() - 40);
  write(out, text);
  const auto again = run_sweep(p, {}, out, threads(2));
  EXPECT_TRUE(again.redone_partial);
  EXPECT_EQ(again.present, p.size() - 1);
  EXPECT_EQ(again.ran, 1u);
  EXPECT_EQ(lines_by_key({out}), full);
  EXPECT_EQ(read(out).back(), '\n');
  // Nothing left: a third run runs nothing.
  EXPECT_EQ(run_sweep(p, {}, out, {}).ran, 0u);
  const std::string final_text = read(out);
  EXPECT_EQ(std::count(final_text.begin(), final_text.end(), '\n'), static_cast<long>(p.size() + 1));
  // Another sweep's file is not appended to.
  EXPECT_THROW(run_sweep(small_plan("other-version"), {}, out, {}), SweepError);
  EXPECT_THROW(run_sweep(p, {0, 2}, out, {}), SweepError);
}

TEST(Results, BadLinesNameFileAndLine) {
  TempDir d;
  const Plan p = small_plan();
  const std::string out = d / "r.jsonl";
  run_sweep(p, {}, out, {});
  std::string text = read(out);
  const auto third = text.find('\n', text.find('\n') + 1) + 1;
  const auto msg = [&](const std::string& t) {
    write(d / "x.jsonl", t);
    try {
      read_results_file(d / "x.jsonl");
    } catch (const SweepError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(msg(text.substr(0, third) + "{\"key\": 1\n" + text.substr(third)), d / "x.jsonl:3: error: not a JSON line");
  EXPECT_EQ(msg(text.substr(0, third) + "[1, 2]\n"), d / "x.jsonl:3: error: not a run line (expected key, stats and exit)");
  std::string foreign = text.substr(third, text.find('\n', third) - third);
  foreign.replace(foreign.find("\"seed\":"), 8, "\"seed\":9");
  EXPECT_EQ(msg(text.substr(0, third) + foreign + "\n"),
            d / "x.jsonl:3: error: a run that is not in this file's sweep (its key is outside the header's spec)");
  EXPECT_EQ(msg("{\"runs\": []}\n"), d / "x.jsonl:1: error: not a contpte sweep results file (no header line)");
  EXPECT_EQ(msg(text.substr(0, text.size() - 5)), "no error");  // a partly written last line is not an error
}

TEST(Merge, ShardsMissingRunsConflictsAndHeaders) {
  TempDir d;
  const Plan p = small_plan();
  run_sweep(p, {0, 2}, d / "s0.jsonl", {});
  run_sweep(p, {1, 2}, d / "s1.jsonl", {});
  Merged m = merge_results({d / "s0.jsonl", d / "s1.jsonl"});
  EXPECT_TRUE(m.complete());
  EXPECT_EQ(m.runs.size(), p.size());
  // A duplicate that agrees (but for wall_s) is no conflict.
  run_sweep(p, {}, d / "all.jsonl", {});
  EXPECT_TRUE(merge_results({d / "s0.jsonl", d / "s1.jsonl", d / "all.jsonl"}).complete());

  // One shard alone: the other's runs are missing, and listed in plan order.
  m = merge_results({d / "s0.jsonl"});
  EXPECT_FALSE(m.complete());
  EXPECT_EQ(m.missing.size(), shard_runs(p, {1, 2}).size());
  // A partly written last line counts as missing, with a note.
  std::string s1 = read(d / "s1.jsonl");
  write(d / "cut.jsonl", s1.substr(0, s1.size() - 3));
  m = merge_results({d / "s0.jsonl", d / "cut.jsonl"});
  EXPECT_EQ(m.missing.size(), 1u);
  ASSERT_EQ(m.notes.size(), 1u);
  EXPECT_NE(m.notes[0].find("cut.jsonl:"), std::string::npos);

  // A duplicate with other stats conflicts, naming both lines.
  std::string changed = s1;
  const auto at = changed.find("\"folds\":");
  changed.replace(at, 9, "\"folds\":7");
  write(d / "changed.jsonl", changed);
  m = merge_results({d / "s1.jsonl", d / "changed.jsonl"});
  ASSERT_EQ(m.conflicts.size(), 1u);
  EXPECT_EQ(m.conflicts[0].first.rfind(d / "s1.jsonl:", 0), 0u);
  EXPECT_EQ(m.conflicts[0].second.rfind(d / "changed.jsonl:", 0), 0u);
  EXPECT_FALSE(m.complete());

  // Shards of another sweep do not merge.
  run_sweep(small_plan("v2"), {}, d / "v2.jsonl", {});
  try {
    merge_results({d / "s0.jsonl", d / "v2.jsonl"});
    FAIL() << "no error";
  } catch (const SweepError& e) {
    EXPECT_EQ(std::string(e.what()), d / "v2.jsonl:1: error: its header's version differs from " + d / "s0.jsonl" +
                                         "'s: not shards of one sweep");
  }
}

TEST(Merge, SpreadOverSeeds) {
  EXPECT_EQ(spread({3, 1, 2}).median, 2);
  EXPECT_EQ(spread({4, 1, 2, 3}).median, 2.5);
  EXPECT_EQ(spread({4, 1, 2, 3}).min, 1);
  EXPECT_EQ(spread({4, 1, 2, 3}).max, 4);
  EXPECT_EQ(spread({}).n, 0u);

  TempDir d;
  const Plan p = small_plan();
  run_sweep(p, {}, d / "r.jsonl", {});
  const Merged m = merge_results({d / "r.jsonl"});
  const nlohmann::json j = merged_json(m);
  ASSERT_EQ(j["groups"].size(), 3u * 2u);
  EXPECT_EQ(j["groups"][0]["seeds"], 2);
  EXPECT_EQ(j["complete"], true);
  std::ostringstream table;
  print_merged(table, m);
  EXPECT_NE(table.str().find("12 of 12 planned runs present; 0 missing, 0 conflicting duplicates"), std::string::npos)
      << table.str();
  EXPECT_NE(merged_svg(m).find("<svg"), std::string::npos);
}

TEST(Results, FlatRecordsForDataFrames) {
  TempDir d;
  const Plan p = small_plan();
  run_sweep(p, {}, d / "r.jsonl", {});
  const auto recs = flat_records(read_results_file(d / "r.jsonl"));
  ASSERT_EQ(recs.size(), p.size());
  for (const auto& r : recs) {
    EXPECT_TRUE(r.contains("input") && r.contains("seed") && r.contains("folds") && r.contains("exit"));
    for (const auto& [k, v] : r.items()) EXPECT_FALSE(v.is_object()) << k;
  }
}

}  // namespace
