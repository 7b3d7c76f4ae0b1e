// contpte — command-line front end. A thin layer: parse flags, load
// scenarios, run them, print and write the report. Exit status (docs/design.md):
// 0 every expect held; 1 an expect failed, an unclaimed violation or a run
// error; 2 bad input or usage (nothing is run, no report is written).

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "cli_messages.h"
#include "hw/tlb.h"
#include "diff/diff.h"
#include "kernel/build.h"
#include "report/explore_report.h"
#include "report/report.h"
#include "report/snapshot_report.h"
#include "report/trace_printer.h"
#include "sweep/version.h"
#include "sweep_cli.h"
#include "scenario/configs.h"
#include "trace/record.h"
#include "trace/replay.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"
#include "hostproc/snapshot.h"

namespace fs = std::filesystem;
using namespace contpte;

namespace {

constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;

// The built-in workloads: next to the sources in a build tree, or installed.
std::vector<fs::path> builtin_scenarios(const char* argv0) {
  std::vector<fs::path> dirs{fs::path(CONTPTE_EXAMPLES_DIR) / "workloads"};
  std::error_code ec;
  fs::path exe = fs::canonical(fs::path(argv0), ec);
  if (!ec) dirs.push_back(exe.parent_path().parent_path() / "share" / "contpte" / "examples" / "workloads");
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
  std::string svg;
  std::vector<std::string> configs;  // --config, repeatable
  std::string tlb;                   // --tlb NAME|FILE
  bool compare = false;
  std::string replay;
  unsigned threads = 0;
  bool trace = false;
  bool quiet = false;
  bool no_check = false;
  unsigned scale = 1;
  std::string kernel;
};

// `--kernel DIR`: the engines of one Linux tree, built (or found in the
// cache) on first use. Null with no --kernel; throws KernelError (exit 2).
std::unique_ptr<kernel::KernelEngines> kernel_engines(const std::string& dir, RunOptions& opts) {
  if (dir.empty()) return nullptr;
  auto k = std::make_unique<kernel::KernelEngines>(dir, &std::cerr);
  opts.kernel_engine = [p = k.get()](const Geometry& g, bool contpte) { return &p->get(g, contpte); };
  return k;
}

// Errors of a tree or of a statement it cannot serve: exit 2, no report.
template <class Fn>
int kernel_guarded(const char* command, Fn&& fn) {
  try {
    return fn();
  } catch (const kernel::KernelError& e) {
    std::cerr << fmt::format("contpte {}: error: {}\n", command, e.what());
  } catch (const ExternalEngineError& e) {
    std::cerr << fmt::format("contpte {}: error: {}\n", command, e.what());
  }
  return kExitUsage;
}

// A progress bar on stderr when it is a terminal.
void show_progress(std::size_t done, std::size_t total) {
  static const bool tty = isatty(STDERR_FILENO);
  if (!tty) return;
  const int width = 30;
  const int filled = static_cast<int>(width * done / std::max<std::size_t>(1, total));
  std::cerr << fmt::format("\r[{}{}] {}/{} runs", std::string(filled, '#'), std::string(width - filled, ' '),
                           done, total)
            << (done == total ? "\r\033[K" : "") << std::flush;
}

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

// --json and --svg; false (after saying why) when a file cannot be written.
bool write_reports(const RunArgs& args, const std::vector<RunResult>& results) {
  for (const auto& [path, text] : {std::pair{args.json, args.json.empty() ? "" : json_report(results).dump(2) + "\n"},
                                   std::pair{args.svg, args.svg.empty() ? "" : comparison_svg(results)}}) {
    if (path.empty()) continue;
    if (!write_file(path, text)) {
      std::cerr << fmt::format("contpte run: error: cannot write '{}'\n", path);
      return false;
    }
  }
  return true;
}

// Loads and validates every file first, so that every input error is
// reported before anything runs; nullopt (after printing them) if any.
std::optional<std::vector<Scenario>> load_all(const std::vector<std::string>& files,
                                              std::string_view forced_header) {
  std::vector<Scenario> scenarios;
  bool bad = false;
  for (const auto& p : files) {
    try {
      Scenario sc = load_scenario(p, forced_header);
      validate_for_run(sc);
      scenarios.push_back(std::move(sc));
    } catch (const ScenarioError& e) {
      std::cerr << e.what() << '\n';
      bad = true;
    }
  }
  if (bad) return std::nullopt;
  return scenarios;
}

unsigned threads_of(const RunArgs& args) {
  return args.threads ? args.threads : std::max(1u, std::thread::hardware_concurrency());
}

// The main job: every built-in workload under every built-in configuration.
int cmd_suite(const RunArgs& args, const std::vector<const BuiltinConfig*>& configs, const char* argv0,
              const RunOptions& opts) {
  const auto files = builtin_scenarios(argv0);
  if (files.empty()) {
    std::cerr << "contpte run: error: the built-in workloads were not found (looked in " CONTPTE_EXAMPLES_DIR
                 "/workloads)\n";
    return kExitUsage;
  }
  std::vector<SuiteJob> jobs;
  for (const auto& f : files)
    for (const auto& c : kBuiltinConfigs)
      if (configs.empty() || std::find(configs.begin(), configs.end(), &c) != configs.end())
        jobs.push_back({f, &c, args.tlb});
  std::vector<RunResult> results;
  if (opts.kernel_engine)  // build before the workers start: progress and errors in order
    for (const Geometry& g : kGeometries)
      for (bool contpte : {true, false}) opts.kernel_engine(g, contpte);
  try {
    results = run_jobs(jobs, opts, threads_of(args), show_progress);
  } catch (const ScenarioError& e) {
    std::cerr << e.what() << '\n';
    return kExitUsage;
  }
  int status = kExitOk;
  for (const auto& r : results) {
    status = std::max(status, r.exit_status());
    if (r.exit_status() != 0) print_summary(std::cout, r);
  }
  print_comparison(std::cout, results);
  return write_reports(args, results) ? status : kExitUsage;
}

// A byte-based bar for replays (the trace's compressed bytes read).
void show_replay_progress(std::uint64_t done, std::uint64_t total) {
  static const bool tty = isatty(STDERR_FILENO);
  if (!tty) return;
  const int width = 30;
  const int filled = static_cast<int>(double(width) * double(done) / double(std::max<std::uint64_t>(1, total)));
  std::cerr << fmt::format("\r[{}{}] replaying {:.0f}%", std::string(filled, '#'), std::string(width - filled, ' '),
                           100.0 * double(done) / double(std::max<std::uint64_t>(1, total)))
            << (done >= total ? "\r\033[K" : "") << std::flush;
}

// `run --replay FILE`: one configuration, or all of them compared.
int cmd_replay(const RunArgs& args, const BuiltinConfig* config) {
  ReplayOptions opts;
  opts.run.check = !args.no_check;
  opts.progress = show_replay_progress;
  std::vector<RunResult> results;
  try {
    if (config)
      results.push_back(replay_trace(args.replay, *config, opts));
    else
      results = replay_compare(args.replay, opts, threads_of(args));
  } catch (const TraceError& e) {
    if (isatty(STDERR_FILENO)) std::cerr << "\r\033[K";  // the progress bar
    std::cerr << e.what() << '\n';
    return kExitUsage;
  }
  int status = kExitOk;
  for (const auto& r : results) {
    status = std::max(status, r.exit_status());
    if (config || r.exit_status() != 0) print_summary(std::cout, r);
    if (const double n = r.stat("replay_unresolved_accesses"); n > 0)
      std::cout << fmt::format("note: {}: {} accesses fell outside the replayed mappings and were skipped\n",
                               r.config.name, n);
  }
  if (!config) print_comparison(std::cout, results);
  return write_reports(args, results) ? status : kExitUsage;
}

// `record -o FILE -- CMD ARGS...`: 0 recorded; 1 recorded, but the command
// failed (the trace holds what it did); 2 nothing could be recorded.
int cmd_record(const std::string& out, const std::vector<std::string>& command, const std::string& recorder,
               const std::string& sysroot) {
  RecordOptions opts;
  opts.sysroot = sysroot;
  if (recorder == "qemu") {
    opts.recorder = Recorder::Qemu;
  } else if (recorder == "valgrind") {
    opts.recorder = Recorder::Valgrind;
  } else if (recorder.empty()) {
    opts.recorder = Recorder::Auto;
  } else {
    std::cerr << fmt::format("contpte record: error: --recorder '{}': expected qemu or valgrind\n", recorder);
    return kExitUsage;
  }
  const bool qemu = opts.recorder == Recorder::Qemu ||
                    (opts.recorder == Recorder::Auto && qemu_unavailable(opts).empty());
  const bool tty = isatty(STDERR_FILENO);
  if (tty)
    opts.progress = [qemu](const RecordProgress& p) {
      std::cerr << fmt::format("\rrecording: {:.1f} M accesses, {} process(es), {:.0f} MB of {}",
                               double(p.accesses) / 1e6, p.streams, double(p.log_bytes) / 1e6,
                               qemu ? "plugin events" : "valgrind log")
                << std::flush;
    };
  RecordResult r;
  try {
    r = record_command(command, out, opts);
  } catch (const RecordError& e) {
    if (tty) std::cerr << "\r\033[K";
    std::cerr << fmt::format("contpte record: error: {}\n", e.what());
    return kExitUsage;
  }
  if (tty) std::cerr << "\r\033[K";
  // On stderr: stdout is the recorded command's.
  std::cerr << fmt::format("recorded {} accesses, {} records, {} process(es) into {} ({} bytes, {:.3f} bytes/access)\n",
                           r.totals.accesses, r.totals.records, r.streams, out, r.compressed_bytes,
                           r.totals.accesses ? double(r.compressed_bytes) / double(r.totals.accesses) : 0.0);
  if (r.unparsed_lines)
    std::cerr << fmt::format("contpte record: note: {} {} were not understood and skipped\n", r.unparsed_lines,
                             qemu ? "plugin events" : "valgrind log lines");
  if (r.exit_status != 0) {
    std::cerr << fmt::format("contpte record: note: the command exited with status {}\n", r.exit_status);
    return 1;
  }
  return kExitOk;
}

// Whether a scenario acts through the memory manager (mappings, processes):
// only those run unchanged under another granule (--compare).
bool uses_memory_manager(const Scenario& sc) {
  for (const Statement& st : sc.statements)
    if (std::holds_alternative<Mmap>(st.op) || std::holds_alternative<Brk>(st.op)) return true;
  return false;
}

// The user's files: each under its own header, under each --config, or
// (--compare) under every built-in configuration or those given; run in
// parallel, reported in input order.
int cmd_files(const RunArgs& args, const std::vector<const BuiltinConfig*>& given) {
  std::vector<const BuiltinConfig*> configs = given;
  if (args.compare && configs.empty())
    for (const auto& c : kBuiltinConfigs) configs.push_back(&c);
  if (configs.empty()) configs.push_back(nullptr);
  std::vector<SuiteJob> jobs;
  for (const auto& f : args.files)
    for (const BuiltinConfig* c : configs) jobs.push_back({f, c, args.tlb});

  // Every input error before anything runs, each said once.
  std::vector<Scenario> scenarios;
  std::vector<std::string> errors;
  for (const auto& j : jobs) {
    try {
      scenarios.push_back(load_job(j));
      if (args.compare && !uses_memory_manager(scenarios.back()))
        throw ScenarioError(SourceLoc{scenarios.back().file, 1, 1},
                            "--compare applies to memory-manager scenarios (mmap, brk, ...); a PTE-level "
                            "scenario chooses its own granule and addresses");
    } catch (const ScenarioError& e) {
      if (std::find(errors.begin(), errors.end(), e.what()) == errors.end()) errors.push_back(e.what());
    }
  }
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << e << '\n';
    return kExitUsage;
  }

  RunOptions opts;
  TracePrinter trace(std::cout);
  if (args.trace) opts.trace = &trace;
  opts.check = !args.no_check;
  opts.scale = args.scale;
  const auto engines = kernel_engines(args.kernel, opts);
  std::vector<RunResult> results;
  try {
    // --trace prints as the runs go: one at a time.
    results = run_loaded(scenarios, jobs, opts, args.trace ? 1 : threads_of(args),
                         jobs.size() > 1 ? show_progress : std::function<void(std::size_t, std::size_t)>{});
  } catch (const ScenarioError& e) {
    // An input error only visible while running: still exit 2, no report.
    if (isatty(STDERR_FILENO)) std::cerr << "\r\033[K";
    std::cerr << e.what() << '\n';
    return kExitUsage;
  }
  int status = kExitOk;
  for (const auto& r : results) {
    status = std::max(status, r.exit_status());
    if (r.exit_status() != 0 || (!args.quiet && !args.compare)) print_summary(std::cout, r);
  }
  if (args.compare)
    print_comparison(std::cout, results);
  else if (results.size() > 1)
    print_totals(std::cout, results);
  return write_reports(args, results) ? status : kExitUsage;
}

int cmd_run(RunArgs args, const char* argv0) {
  if (!args.tlb.empty()) {
    // A file named on the command line is relative to the current directory
    // (a scenario's own `tlb` line is relative to the scenario).
    if (tlb_names_file(args.tlb)) args.tlb = fs::absolute(args.tlb).lexically_normal().string();
    try {
      resolve_tlb_config(args.tlb);
    } catch (const std::exception& e) {
      std::cerr << fmt::format("contpte run: error: --tlb: {}\n", e.what());
      return kExitUsage;
    }
  }
  std::vector<const BuiltinConfig*> configs;
  for (const auto& name : args.configs) {
    const BuiltinConfig* config = find_config(name);
    if (!config) {
      std::cerr << fmt::format("contpte run: error: unknown configuration '{}'; expected one of: {}\n", name,
                               config_names());
      return kExitUsage;
    }
    if (std::find(configs.begin(), configs.end(), config) == configs.end()) configs.push_back(config);
  }
  if (!args.replay.empty()) {
    if (!args.kernel.empty()) {
      std::cerr << "contpte run: error: --kernel does not apply to --replay yet (docs/kernel.md, limits)\n";
      return kExitUsage;
    }
    if (!args.files.empty()) {
      std::cerr << "contpte run: error: --replay takes no scenario files\n";
      return kExitUsage;
    }
    if (args.scale > 1) {
      std::cerr << "contpte run: error: --scale does not apply to --replay (a trace has fixed addresses)\n";
      return kExitUsage;
    }
    if (configs.size() > 1) {
      std::cerr << "contpte run: error: --replay takes one --config (without it, every built-in configuration is "
                   "compared)\n";
      return kExitUsage;
    }
    if (!args.tlb.empty()) {
      std::cerr << "contpte run: error: --tlb does not apply to --replay yet (replays run on the default core)\n";
      return kExitUsage;
    }
    return cmd_replay(args, configs.empty() ? nullptr : configs.front());
  }
  if (args.files.empty()) {
    if (args.compare) {
      std::cerr << "contpte run: error: --compare takes scenario files (without files, the main job already "
                   "compares every built-in configuration)\n";
      return kExitUsage;
    }
    RunOptions opts;
    opts.check = !args.no_check;
    opts.scale = args.scale;
    const auto engines = kernel_engines(args.kernel, opts);
    return cmd_suite(args, configs, argv0, opts);
  }
  return cmd_files(args, configs);
}

struct ExploreArgs {
  std::vector<std::string> files;
  std::uint64_t max = 1'000'000;
  std::string json;
  bool no_check = false;
  bool verbose = false;
  std::string kernel;
};

// Several files: a counterexample (1) outranks a bound reached without one
// (3), which outranks a proof (0).
int worse_explore_status(int a, int b) {
  auto rank = [](int s) { return s == 0 ? 0 : s == 3 ? 1 : s == 1 ? 2 : 3; };
  return rank(a) >= rank(b) ? a : b;
}

// `contpte explore`: each parallel block exhaustively (or up to --max), then
// the rest of the scenario from the block's seeded interleaving.
int cmd_explore(const ExploreArgs& args) {
  const auto scenarios = load_all(args.files, {});
  if (!scenarios) return kExitUsage;
  RunOptions opts;
  opts.check = !args.no_check;
  opts.explore_max = args.max;
  const auto engines = kernel_engines(args.kernel, opts);
  const bool tty = isatty(STDERR_FILENO);
  bool progress_shown = false;
  if (tty)
    opts.explore_progress = [&progress_shown](const std::string& where, std::uint64_t n, double seconds) {
      std::cerr << fmt::format("\rexploring {}: {} executions, {:.0f}/s\033[K", where, n,
                               seconds > 0 ? double(n) / seconds : 0.0)
                << std::flush;
      progress_shown = true;
    };
  std::vector<RunResult> results;
  int status = kExitOk;
  for (const auto& sc : *scenarios) {
    try {
      results.push_back(run_scenario(sc, opts));
    } catch (const ScenarioError& e) {
      if (progress_shown) std::cerr << "\r\033[K";
      std::cerr << e.what() << '\n';
      return kExitUsage;
    }
    if (progress_shown) std::cerr << "\r\033[K" << std::flush;
    progress_shown = false;
    // The seeded run's summary first, the explorations, and the file's
    // verdict last: what a reader sees at the end is the answer.
    const RunResult& r = results.back();
    print_summary(std::cout, r);
    print_explorations(std::cout, r, args.verbose);
    print_explore_verdict(std::cout, r);
    status = worse_explore_status(status, r.exit_status());
  }
  if (!args.json.empty() && !write_file(args.json, json_report(results).dump(2) + "\n")) {
    std::cerr << fmt::format("contpte explore: error: cannot write '{}'\n", args.json);
    return kExitUsage;
  }
  return status;
}

struct DiffArgs {
  std::string kernel;
  std::string granule = "all";
  unsigned runs = 400;
  unsigned ops = 1000;
  std::uint64_t seed = 1;
  std::string out;
};

// `contpte diff --kernel DIR` (docs/kernel.md): 0 no divergence, 1 one
// (its reproducer to -o FILE or stdout), 2 bad input. The last line is
// always the count line.
int cmd_diff(const DiffArgs& args) {
  DiffOptions opts;
  opts.runs = args.runs;
  opts.ops = args.ops;
  opts.seed = args.seed;
  if (args.granule != "all") {
    auto g = granule_from_name(args.granule);
    if (!g) {
      std::cerr << fmt::format("contpte diff: error: unknown granule '{}'; expected 4K, 16K, 64K or all\n", args.granule);
      std::cout << "diff: 0 runs, 0 statements, 0 PTEs compared, 0 divergences\n";
      return kExitUsage;
    }
    opts.granules = {*g};
  }
  DiffResult r;
  try {
    kernel::KernelEngines engines(args.kernel, &std::cerr);
    for (Granule g : opts.granules) engines.get(geometry(g), true);  // build first: errors before any run
    r = run_diff(opts, [&](const Geometry& g) -> const ExternalEngine& { return engines.get(g, true); },
                 [](std::uint64_t done, std::uint64_t total) { show_progress(done, total); });
  } catch (const kernel::KernelError& e) {
    std::cerr << fmt::format("contpte diff: error: {}\n", e.what());
    std::cout << "diff: 0 runs, 0 statements, 0 PTEs compared, 0 divergences\n";
    return kExitUsage;
  }
  if (isatty(STDERR_FILENO)) std::cerr << "\r\033[K";
  int status = kExitOk;
  if (r.divergences) {
    status = 1;
    std::cout << "divergence: " << r.first << '\n';
    if (args.out.empty()) {
      std::cout << r.reproducer;
    } else if (!write_file(args.out, r.reproducer)) {
      std::cerr << fmt::format("contpte diff: error: cannot write '{}'\n", args.out);
      status = kExitUsage;
    } else {
      std::cout << "reproducer written to " << args.out << '\n';
    }
  }
  if (!r.divergences) std::cout << fmt::format("engines folded {} and unfolded {} blocks\n", r.folds, r.unfolds);
  std::cout << fmt::format("diff: {} runs, {} statements, {} PTEs compared, {} divergences\n", r.runs, r.statements,
                           r.ptes_compared, r.divergences);
  return status;
}

struct SnapshotArgs {
  std::vector<int> pids;
  std::string cgroup;
  std::string json;
  std::vector<std::string> cont;
  unsigned periodic_ms = 0;
  unsigned samples = 10;
  bool rollup = false;
  bool all_vmas = false;
  std::size_t top = 10;
  bool no_pfn = false;
};

// contpte snapshot (docs/snapshot.md): exit 0, or 2 for bad input (bad
// flag, no such process, PFNs hidden, unreadable or malformed /proc).
int cmd_snapshot(const SnapshotArgs& args) {
  SnapshotOptions opts;
  opts.no_pfn = args.no_pfn;
  std::vector<int> pids = args.pids;
  try {
    for (const auto& c : args.cont) {
      const std::uint64_t b = parse_size(c, "--cont");
      if (std::find(opts.cont_sizes.begin(), opts.cont_sizes.end(), b) == opts.cont_sizes.end())
        opts.cont_sizes.push_back(b);
    }
    std::sort(opts.cont_sizes.begin(), opts.cont_sizes.end());
    if (!args.cgroup.empty())
      for (int pid : cgroup_pids(args.cgroup)) pids.push_back(pid);
  } catch (const SnapshotError& e) {
    std::cerr << "contpte snapshot: error: " << e.what() << '\n';
    return kExitUsage;
  }
  if (pids.empty()) {
    std::cerr << (args.cgroup.empty() ? "contpte snapshot: error: give at least one PID or --cgroup PATH\n"
                                      : "contpte snapshot: error: the cgroup has no processes\n");
    return kExitUsage;
  }
  for (int pid : args.pids)
    if (!fs::exists(fmt::format("/proc/{}", pid))) {
      std::cerr << fmt::format("contpte snapshot: error: pid {}: no such process\n", pid);
      return kExitUsage;
    }
  ThpHostSettings thp;
  try {
    thp = read_thp_settings();
  } catch (const SnapshotError& e) {
    std::cerr << "contpte snapshot: error: " << e.what() << '\n';
    return kExitUsage;
  }
  const auto src = make_live_proc_source();
  const unsigned samples = args.periodic_ms ? args.samples : 1;
  nlohmann::json series = nlohmann::json::array();
  nlohmann::json single;
  const auto t0 = std::chrono::steady_clock::now();
  for (unsigned n = 0; n < samples; ++n) {
    if (n) std::this_thread::sleep_for(std::chrono::milliseconds(args.periodic_ms));
    const double t_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    SnapshotSet set;
    try {
      set = snapshot_processes(*src, pids, opts);
    } catch (const SnapshotError& e) {
      std::cerr << "contpte snapshot: error: " << e.what() << '\n';
      return kExitUsage;
    }
    if (set.processes.empty()) {
      for (const auto& note : set.notes) std::cerr << "note: " << note << '\n';
      if (n == 0) {
        std::cerr << "contpte snapshot: error: none of the processes could be read (all exited)\n";
        return kExitUsage;
      }
      std::cout << "note: every process has exited; sampling stops\n";
      break;
    }
    if (args.periodic_ms) {
      print_sample_line(std::cout, set, t_ms);
      series.push_back(snapshot_sample_json(set, t_ms, args.rollup));
    } else {
      print_snapshot(std::cout, set, SnapshotPrint{args.rollup, args.all_vmas ? 0 : args.top, &thp});
      single = snapshot_json(set, args.rollup);
      single["verdict"] = snapshot_verdict(set.total, std::all_of(set.processes.begin(), set.processes.end(),
                                                                  [](const auto& p) { return p.pfns; }),
                                           thp);
      single["host_thp"] = thp_settings_json(thp);
    }
  }
  if (!args.json.empty()) {
    const nlohmann::json doc =
        args.periodic_ms ? nlohmann::json{{"version", 1}, {"samples", std::move(series)}} : std::move(single);
    if (!write_file(args.json, doc.dump(2) + "\n")) {
      std::cerr << fmt::format("contpte snapshot: error: cannot write '{}'\n", args.json);
      return kExitUsage;
    }
  }
  return kExitOk;
}

}  // namespace

// Input errors are found and reported (exit 2) inside each command; what
// escapes is a failure of the tool itself (out of host memory, a broken
// internal invariant): a message and status 1, never an abort.
template <class Fn>
int guarded(const char* command, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    std::cerr << fmt::format("contpte {}: internal error: {}\n", command, e.what());
    return 1;
  }
}

int main(int argc, char** argv) {
  CLI::App app{"contpte — the arm64 transparent contiguous-PTE layer, simulated and checked"};
  app.require_subcommand(1);
  app.set_version_flag("--version", sweep::version_string());
  const auto sweep_cmd = add_sweep_command(app);

  RunArgs run_args;
  CLI::App* run = app.add_subcommand(
      "run", "run scenarios (default: the built-in workloads under every built-in configuration)");
  run->add_option("files", run_args.files, "scenario files (.cpt)");
  run->add_option("--json", run_args.json, "write the machine-readable report to FILE");
  run->add_option("--svg", run_args.svg, "write a chart of speedup and memory cost to FILE");
  run->add_option("--config", run_args.configs,
                  "run under a built-in configuration (its header lines override the file's); "
                  "repeat for several; see `contpte configs`")
      ->allow_extra_args(false);
  run->add_option("--kernel", run_args.kernel,
                  "run the arm64 contpte code of the Linux tree DIR instead of the built-in engine "
                  "(docs/kernel.md)");
  run->add_flag("--compare", run_args.compare,
                "run each memory-manager scenario under every built-in configuration (or each --config) and "
                "print the main job's table per file");
  run->add_option("--tlb", run_args.tlb,
                  "run on this TLB core: a preset (`contpte presets`) or a JSON file (docs/tlb-json.md); "
                  "overrides the file's `tlb` line");
  run->add_option("--threads", run_args.threads, "runs in parallel (default: the number of cores)")
      ->check(cli::positive_integer(256));
  run->add_flag("--trace", run_args.trace,
                "print every PTE load, store, exchange and TLB invalidation the engine makes");
  run->add_option("--replay", run_args.replay,
                  "replay a trace recorded by `contpte record` (under --config, or every built-in "
                  "configuration compared)");
  run->add_flag("-q,--quiet", run_args.quiet, "print only failing runs");
  run->add_option("--scale", run_args.scale,
                  "run each workload N times larger: mappings, ranges and access counts grow N "
                  "times (docs/workloads.md)")
      ->check(cli::positive_integer(1000));
  run->add_flag("--no-check", run_args.no_check,
                "do not run the conformance checker (faster; no violations are found)");

  DiffArgs diff_args;
  CLI::App* diff = app.add_subcommand(
      "diff", "run random PTE-level scenarios on the built-in engine and a Linux tree's code in lock-step "
              "(exit 1: a divergence, with a reproducer)");
  diff->add_option("--kernel", diff_args.kernel, "the Linux tree (docs/kernel.md)")->required();
  diff->add_option("--granule", diff_args.granule, "4K, 16K, 64K or all (default all)");
  diff->add_option("--runs", diff_args.runs, "runs per granule (default 400)")->check(CLI::Range(1u, 100000000u));
  diff->add_option("--ops", diff_args.ops, "statements per run (default 1000)")->check(CLI::Range(1u, 100000000u));
  diff->add_option("--seed", diff_args.seed, "random seed (default 1)");
  diff->add_option("-o", diff_args.out, "write the reproducer scenario to FILE (only on a divergence)");
  CLI::App* presets = app.add_subcommand("presets", "list the TLB presets and their sources");
  CLI::App* configs = app.add_subcommand("configs", "list the built-in configurations and their header lines");

  ExploreArgs explore_args;
  CLI::App* explore = app.add_subcommand(
      "explore", "explore every interleaving of each parallel block of scenarios (exit 1: a counterexample)");
  explore->add_option("files", explore_args.files, "scenario files (.cpt)")->required();
  explore->add_option("--max", explore_args.max, "explore at most N interleavings per block (default 1000000)")
      ->check(cli::positive_integer());
  explore->add_option("--json", explore_args.json, "write the report, with each counterexample, to FILE");
  explore->add_flag("-v,--verbose", explore_args.verbose,
                    "list every step of every counterexample (default: runs of like steps collapsed, a "
                    "counterexample equal to one printed named, not repeated)");
  explore->add_option("--kernel", explore_args.kernel,
                      "run the arm64 contpte code of the Linux tree DIR instead of the built-in engine "
                      "(docs/kernel.md)");
  explore->add_flag("--no-check", explore_args.no_check,
                    "do not run the conformance checker in each state (expects and built-in properties only)");

  std::string record_out, record_recorder, record_sysroot;
  std::vector<std::string> record_cmd;
  CLI::App* record = app.add_subcommand(
      "record", "record a program's memory accesses and mm syscalls (docs/trace.md): record -o FILE -- CMD ARGS...");
  record->add_option("-o,--output", record_out, "the trace file to write")->required();
  record->add_option("--recorder", record_recorder,
                     "qemu (the default where qemu-user is installed) or valgrind");
  record->add_option("--sysroot", record_sysroot,
                     "where arm64 programs find their libraries (default: $CONTPTE_SYSROOT, else the one "
                     "scripts/arm64-sysroot.sh fills)");
  record->add_option("command", record_cmd, "the command and its arguments (after --)")->required();

  SnapshotArgs snap_args;
  CLI::App* snapshot = app.add_subcommand(
      "snapshot", "what contpte would cover in running processes: folio sizes and cont_bytes (docs/snapshot.md)");
  snapshot->add_option("pids", snap_args.pids, "process ids")->check(CLI::Range(1, 0x7fffffff));
  snapshot->add_option("--cgroup", snap_args.cgroup, "also every process of this cgroup (v2 directory)");
  snapshot->add_flag("--rollup", snap_args.rollup, "totals per process only, no row per VMA");
  snapshot->add_flag("--all-vmas", snap_args.all_vmas, "a row for every VMA with resident pages (default: the --top)");
  snapshot->add_option("--top", snap_args.top, "rows for the N VMAs with the most resident bytes (default 10)")
      ->check(cli::positive_integer(1000000));
  snapshot->add_option("--periodic", snap_args.periodic_ms, "repeat every MS milliseconds, one line per sample")
      ->check(cli::positive_integer(3600000));
  snapshot->add_option("--samples", snap_args.samples, "with --periodic: how many samples (default 10)")
      ->check(cli::positive_integer(1000000));
  snapshot->add_option("--json", snap_args.json, "write the machine-readable report to FILE");
  snapshot->add_option("--cont", snap_args.cont, "also count contiguous blocks of SIZE (e.g. 32K); 64K and 2M always");
  snapshot->add_flag("--no-pfn", snap_args.no_pfn,
                     "without root: only what pagemap shows without PFNs (resident, virtually aligned blocks)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << cli::parse_error_message(app, e) << "\n";
    return kExitUsage;
  }

  if (diff->parsed()) return guarded("diff", [&] { return cmd_diff(diff_args); });
  if (run->parsed())
    return guarded("run", [&] { return kernel_guarded("run", [&] { return cmd_run(run_args, argv[0]); }); });
  if (sweep_cmd->parsed()) return guarded("sweep", [&] { return sweep_cmd->run(argv[0]); });
  if (explore->parsed())
    return guarded("explore", [&] { return kernel_guarded("explore", [&] { return cmd_explore(explore_args); }); });
  if (record->parsed()) return guarded("record", [&] { return cmd_record(record_out, record_cmd, record_recorder, record_sysroot); });
  if (configs->parsed()) {
    for (const auto& c : kBuiltinConfigs) {
      std::cout << fmt::format("{} — {}\n", c.name, c.what);
      std::string_view h = c.header;
      while (!h.empty()) {
        const auto nl = h.find('\n');
        std::cout << "    " << h.substr(0, nl) << '\n';
        h = nl == std::string_view::npos ? std::string_view{} : h.substr(nl + 1);
      }
    }
    return kExitOk;
  }
  if (snapshot->parsed()) return guarded("snapshot", [&] { return cmd_snapshot(snap_args); });
  if (presets->parsed()) {
    std::cout << format_presets();
    return kExitOk;
  }
  return kExitUsage;  // require_subcommand(1): not reached
}
