// `contpte sweep`: parse flags over the spec, resolve the plan, pick the
// shard (flag, else Slurm array), run; `contpte sweep report`: merge and
// summarise. Every input error is exit 2 before anything runs.

#include "sweep_cli.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <sched.h>
#include <unistd.h>

#include "sweep/merge.h"
#include "sweep/plan.h"
#include "sweep/sweep.h"
#include "sweep/version.h"

namespace fs = std::filesystem;

namespace contpte {

namespace {

constexpr int kExitUsage = 2;

// The built-in workloads: next to the sources in a build tree, or installed
// (the same two places `contpte run` looks).
fs::path builtin_workloads_dir(const char* argv0) {
  std::error_code ec;
  const fs::path source = fs::path(CONTPTE_EXAMPLES_DIR) / "workloads";
  if (fs::is_directory(source, ec)) return source;
  const fs::path exe = fs::canonical(fs::path(argv0), ec);
  if (!ec) return exe.parent_path().parent_path() / "share" / "contpte" / "examples" / "workloads";
  return source;
}

// The CPUs this process may run on: under Slurm, its allocation.
unsigned allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  return static_cast<unsigned>(std::max(1, CPU_COUNT(&set)));
}

class Sweep final : public SweepCommand {
 public:
  explicit Sweep(CLI::App& app) {
    cmd_ = app.add_subcommand("sweep",
                              "run inputs x configurations x cores x seeds into a JSON Lines results file, resumable "
                              "and shardable (docs/sweep.md)");
    cmd_->add_option("spec", spec_, "a spec file (JSON: inputs, configs, cores, seeds, scale); flags override it");
    cmd_->add_option("--inputs", inputs_, "scenario files, trace files, DIRs (searched recursively) or `builtin`");
    cmd_->add_option("--configs", configs_, "built-in configurations (default: all; see `contpte configs`)");
    cmd_->add_option("--cores", cores_, "TLB presets or core JSON files (default: the default preset)");
    cmd_->add_option("--seeds", seeds_, "N (seeds 1..N) or A..B (inclusive); replaces each scenario's seed");
    cmd_->add_option("--scale", scale_, "run each input N times larger (as `run --scale`)")->check(CLI::Range(1u, 1000u));
    cmd_->add_option("--shard", shard_, "run only shard I of N (0-based); default under a Slurm job array: its task");
    cmd_->add_option("--threads", threads_, "runs in parallel (default: the CPUs this process may use)")
        ->check(CLI::Range(1u, 1024u));
    cmd_->add_flag("--dry-run", dry_run_, "check the spec and every combination, print the plan's size; run nothing");
    cmd_->add_option("-o,--output", out_, "the results file (default sweep.jsonl); existing runs are kept and skipped");

    report_ = cmd_->add_subcommand("report", "merge results files, list missing runs and conflicts, summarise over seeds");
    report_->add_option("files", files_, "results files (.jsonl), e.g. one per shard")->required();
    report_->add_option("--json", json_, "write the summary as JSON to FILE");
    report_->add_option("--svg", svg_, "write a chart of the medians and their spread to FILE");
  }

  bool parsed() const override { return cmd_->parsed(); }

  int run(const char* argv0) override {
    try {
      return report_->parsed() ? report() : sweep(argv0);
    } catch (const sweep::SweepError& e) {
      if (isatty(STDERR_FILENO)) std::cerr << "\r\033[K";
      std::cerr << e.what() << '\n';
      return kExitUsage;
    }
  }

 private:
  int sweep(const char* argv0) {
    sweep::SweepRequest req;
    if (!spec_.empty()) req = sweep::read_spec_file(spec_);
    // A flag replaces the spec's field; its paths are the working directory's.
    if (!inputs_.empty()) req.inputs = inputs_, req.input_base.clear();
    if (!configs_.empty()) req.configs = configs_;
    if (!cores_.empty()) req.cores = cores_, req.core_base.clear();
    if (!seeds_.empty()) req.seeds = seeds_;
    if (scale_) req.scale = scale_;
    const sweep::Plan plan = sweep::resolve_plan(req, builtin_workloads_dir(argv0), sweep::version_string());

    sweep::Shard shard;
    if (!shard_.empty())
      shard = sweep::parse_shard(shard_);
    else if (auto s = sweep::shard_from_slurm([](const char* v) { return std::getenv(v); }))
      shard = *s;

    if (dry_run_) {
      sweep::check_plan(plan);
      std::cout << fmt::format("{} inputs x {} configurations x {} cores x {} seeds = {} runs; shard {}/{} gets {}\n",
                               plan.inputs.size(), plan.configs.size(), plan.cores.size(), plan.seeds.size(),
                               plan.size(), shard.index, shard.count, sweep::shard_runs(plan, shard).size());
      return 0;
    }
    sweep::SweepOptions opts;
    opts.threads = threads_ ? threads_ : allowed_cpus();
    if (isatty(STDERR_FILENO))
      opts.progress = [&](std::size_t done, std::size_t total) {
        const int width = 30;
        const int filled = static_cast<int>(width * done / std::max<std::size_t>(1, total));
        std::cerr << fmt::format("\r[{}{}] {}/{} runs (shard {}/{})", std::string(filled, '#'),
                                 std::string(width - filled, ' '), done, total, shard.index, shard.count)
                  << (done == total ? "\r\033[K" : "") << std::flush;
      };
    const sweep::SweepOutcome o = sweep::run_sweep(plan, shard, out_, opts);
    if (o.redone_partial) std::cerr << fmt::format("note: {}: its partly written last line was dropped and redone\n", out_);
    std::cout << fmt::format("sweep shard {}/{}: {} of {} planned runs; {} already present, {} run now -> {}\n",
                             shard.index, shard.count, o.shard_runs, plan.size(), o.present, o.ran, out_);
    if (o.status == 1) std::cout << "note: some runs exited 1 (failed expects, violations or run errors): see their lines\n";
    return o.status;
  }

  int report() {
    const sweep::Merged m = sweep::merge_results(files_);
    sweep::print_merged(std::cout, m);
    for (const auto& [path, text] : {std::pair{json_, json_.empty() ? "" : sweep::merged_json(m).dump(2) + "\n"},
                                     std::pair{svg_, svg_.empty() ? "" : sweep::merged_svg(m)}}) {
      if (path.empty()) continue;
      std::ofstream out(path);
      out << text;
      if (!out) {
        std::cerr << fmt::format("contpte sweep report: error: cannot write '{}'\n", path);
        return kExitUsage;
      }
    }
    return m.complete() ? 0 : 1;
  }

  CLI::App* cmd_ = nullptr;
  CLI::App* report_ = nullptr;
  std::string spec_;
  std::vector<std::string> inputs_, configs_, cores_;
  std::string seeds_, shard_;
  unsigned scale_ = 0, threads_ = 0;
  bool dry_run_ = false;
  std::string out_ = "sweep.jsonl";
  std::vector<std::string> files_;
  std::string json_, svg_;
};

}  // namespace

std::unique_ptr<SweepCommand> add_sweep_command(CLI::App& app) { return std::make_unique<Sweep>(app); }

}  // namespace contpte
