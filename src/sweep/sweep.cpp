#include "sweep/sweep.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>

#include "report/report.h"
#include "sweep/results.h"
#include "scenario/configs.h"
#include "trace/replay.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"
#include "trace/trace.h"

namespace contpte::sweep {

namespace {

// The header lines a run imposes on its input: the configuration's, then
// the core and the seed (a scenario's own `tlb` and `seed` are replaced).
std::string forced_header(const RunKey& k) {
  return fmt::format("{}\ntlb {}\nseed {}", find_config(k.config)->header, k.core, k.seed);
}

}  // namespace

void check_plan(const Plan& plan) {
  for (const auto& in : plan.inputs) {
    if (in.kind != InputKind::Scenario) continue;
    for (const auto& config : plan.configs)
      for (const auto& core : plan.cores) {
        const RunKey k{in.name, in.sha256, config, core.name, core.sha256, plan.seeds.front(), plan.scale, plan.version};
        try {
          validate_for_run(load_scenario(in.path, forced_header(k)));
        } catch (const ScenarioError& e) {
          throw SweepError(fmt::format("{} (under configuration {}, core {})", e.what(), config, core.name));
        }
      }
  }
}

nlohmann::json run_one(const Plan& plan, std::size_t i) {
  const RunKey k = plan.key(i);
  const PlanInput& in = plan.inputs[plan.input_of(i)];
  const std::string header = forced_header(k);
  RunOptions opts;
  opts.scale = plan.scale;
  const auto t0 = std::chrono::steady_clock::now();
  RunResult r;
  std::optional<std::string> input_error;
  try {
    if (in.kind == InputKind::Trace) {
      ReplayOptions ro;
      ro.run = opts;
      r = replay_trace(in.path.string(), BuiltinConfig{k.config, header, ""}, ro);
    } else {
      r = run_scenario(load_scenario(in.path, header), opts);
    }
  } catch (const ScenarioError& e) {
    input_error = e.what();
  } catch (const TraceError& e) {
    input_error = e.what();
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (input_error)
    return {{"key", k.to_json()}, {"stats", nlohmann::json::object()}, {"exit", 2}, {"error", *input_error}, {"wall_s", wall}};
  const nlohmann::json rj = run_json(r);
  nlohmann::json line{{"key", k.to_json()},
                      {"stats", rj["stats"]},
                      {"expects", rj["expects"]},
                      {"expect_failures", rj["expect_failures"]},
                      {"violations", rj["violations"]},
                      {"exit", r.exit_status()},
                      {"wall_s", wall}};
  if (r.error) line["error"] = *r.error;
  return line;
}

SweepOutcome run_sweep(const Plan& plan, Shard shard, const std::string& out_path, const SweepOptions& opts) {
  check_plan(plan);
  SweepOutcome out;
  const std::vector<std::size_t> mine = shard_runs(plan, shard);
  out.shard_runs = mine.size();
  const nlohmann::json header = results_header(plan, shard, mine.size());

  std::set<std::string> done;
  bool write_header = true;
  std::error_code ec;
  if (std::filesystem::exists(out_path, ec)) {
    ResultsFile f = read_results_file(out_path);
    if (!f.header.is_null()) {
      if (f.header != header)
        throw SweepError(fmt::format(
            "{}:1: error: the file holds results of another sweep (its spec, version or shard differs); "
            "give another -o or remove the file",
            out_path));
      write_header = false;
      for (const auto& r : f.runs) done.insert(r.id);
    }
    if (f.partial_tail) {
      out.redone_partial = !f.header.is_null();
      std::filesystem::resize_file(out_path, f.header.is_null() ? 0 : f.complete_bytes, ec);
      if (ec) throw SweepError(fmt::format("{}: error: cannot cut its partly written last line: {}", out_path, ec.message()));
    }
  }
  std::vector<std::size_t> todo;
  for (const std::size_t i : mine)
    if (!done.count(plan.key(i).id())) todo.push_back(i);
  out.present = mine.size() - todo.size();

  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(out_path.c_str(), write_header ? "wb" : "ab"),
                                                        &std::fclose);
  if (!file) throw SweepError(fmt::format("{}: error: cannot write the results file", out_path));
  std::mutex m;
  // One fwrite + fflush per line: a process killed between lines leaves
  // whole lines; killed inside one, a tail without its newline.
  const auto append = [&](const nlohmann::json& line) {
    const std::string text = line.dump() + "\n";
    if (std::fwrite(text.data(), 1, text.size(), file.get()) != text.size() || std::fflush(file.get()) != 0)
      throw SweepError(fmt::format("{}: error: cannot write the results file", out_path));
  };
  if (write_header) append(header);
  std::size_t finished = 0;
  parallel_for(todo.size(), opts.threads, [&](std::size_t n) {
    const nlohmann::json line = run_one(plan, todo[n]);
    std::lock_guard lock(m);
    append(line);
    out.status = std::max(out.status, line["exit"].get<int>());
    ++finished;
    if (opts.progress) opts.progress(finished, todo.size());
  });
  out.ran = todo.size();
  return out;
}

}  // namespace contpte::sweep
