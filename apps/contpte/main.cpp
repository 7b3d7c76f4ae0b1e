// contpte — command-line front end. A thin layer: parse flags, load
// scenarios, run them, print and write the report. Exit status (DESIGN.md):
// 0 every expect held; 1 an expect failed, an unclaimed violation or a run
// error; 2 bad input or usage (nothing is run, no report is written).

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "hw/tlb.h"
#include "report/report.h"
#include "workload/runner.h"
#include "workload/scenario.h"

namespace fs = std::filesystem;
using namespace contpte;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;

// The shipped examples: next to the sources in a build tree, or installed.
std::vector<fs::path> builtin_scenarios(const char* argv0) {
  std::vector<fs::path> dirs{fs::path(CONTPTE_EXAMPLES_DIR)};
  std::error_code ec;
  fs::path exe = fs::canonical(fs::path(argv0), ec);
  if (!ec) dirs.push_back(exe.parent_path().parent_path() / "share" / "contpte" / "examples");
  for (const auto& d : dirs) {
    if (!fs::is_directory(d, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(d, ec))
      if (e.is_regular_file() && e.path().extension() == ".cpt") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (!files.empty()) return files;
  }
  return {};
}

struct RunArgs {
  std::vector<std::string> files;
  std::string json;
  bool trace = false;
  bool quiet = false;
  bool no_check = false;
};

int cmd_run(const RunArgs& args, const char* argv0) {
  std::vector<fs::path> paths(args.files.begin(), args.files.end());
  if (paths.empty()) {
    paths = builtin_scenarios(argv0);
    if (paths.empty()) {
      std::cerr << "contpte run: error: no scenario given and the built-in examples were not found "
                   "(looked in " CONTPTE_EXAMPLES_DIR ")\n";
      return kExitUsage;
    }
  }

  // Every input error is found before anything runs.
  std::vector<Scenario> scenarios;
  bool bad = false;
  for (const auto& p : paths) {
    try {
      Scenario sc = load_scenario(p);
      validate_for_run(sc);
      scenarios.push_back(std::move(sc));
    } catch (const ScenarioError& e) {
      std::cerr << e.what() << '\n';
      bad = true;
    }
  }
  if (bad) return kExitUsage;

  RunOptions opts;
  if (args.trace) opts.trace = &std::cout;
  opts.check = !args.no_check;
  std::vector<RunResult> results;
  int status = kExitOk;
  for (const auto& sc : scenarios) {
    try {
      results.push_back(run_scenario(sc, opts));
    } catch (const ScenarioError& e) {
      // An input error only visible while running: still exit 2, no report.
      std::cerr << e.what() << '\n';
      return kExitUsage;
    }
    status = std::max(status, results.back().exit_status());
    if (!args.quiet || results.back().exit_status() != 0) print_summary(std::cout, results.back());
  }
  if (results.size() > 1) print_totals(std::cout, results);

  if (!args.json.empty()) {
    std::ofstream out(args.json);
    out << json_report(results).dump(2) << '\n';
    if (!out) {
      std::cerr << fmt::format("contpte run: error: cannot write '{}'\n", args.json);
      return kExitUsage;
    }
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"contpte — the arm64 transparent contiguous-PTE layer, simulated and checked"};
  app.require_subcommand(1);

  RunArgs run_args;
  CLI::App* run = app.add_subcommand("run", "run scenarios (default: the built-in examples)");
  run->add_option("files", run_args.files, "scenario files (.cpt)");
  run->add_option("--json", run_args.json, "write the machine-readable report to FILE");
  run->add_flag("--trace", run_args.trace,
                "print every PTE load, store, exchange and TLB invalidation the engine makes");
  run->add_flag("-q,--quiet", run_args.quiet, "print only failing runs");
  run->add_flag("--no-check", run_args.no_check,
                "do not run the conformance checker (faster; no violations are found)");

  CLI::App* presets = app.add_subcommand("presets", "list the TLB presets and their sources");

  for (const char* later : {"explore", "snapshot", "record"}) {
    CLI::App* sub = app.add_subcommand(later, "not supported yet");
    sub->allow_extras();
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "contpte: error: " << e.what() << "\n";
    return kExitUsage;
  }

  if (run->parsed()) return cmd_run(run_args, argv[0]);
  if (presets->parsed()) {
    std::cout << format_presets();
    return kExitOk;
  }
  for (CLI::App* sub : app.get_subcommands()) {
    std::cerr << fmt::format("contpte {}: error: not supported yet in this build\n", sub->get_name());
    return kExitUsage;
  }
  return kExitUsage;
}
