#include "scenario/configs.h"
#include "arch/names.h"

#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace contpte {

const BuiltinConfig* find_config(std::string_view name) {
  for (const auto& c : kBuiltinConfigs)
    if (c.name == name) return &c;
  return nullptr;
}

std::string config_names() {
  return fmt::format("{}", fmt::join(names_in(kBuiltinConfigs, &BuiltinConfig::name), ", "));
}

void parallel_for(std::size_t n, unsigned threads, const std::function<void(std::size_t)>& fn) {
  std::vector<std::exception_ptr> errors(n);
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i; (i = next++) < n;) {
      try {
        fn(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::min<std::size_t>(std::max(1u, threads), std::max<std::size_t>(n, 1)); ++t)
    pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

std::string SuiteJob::forced_header() const {
  std::string h = config ? std::string(config->header) : std::string();
  if (!tlb.empty()) {
    if (!h.empty()) h.push_back('\n');
    h.append("tlb ").append(tlb);
  }
  return h;
}

Scenario load_job(const SuiteJob& job) {
  Scenario sc = load_scenario(job.file, job.forced_header());
  validate_for_run(sc);
  return sc;
}

std::vector<RunResult> run_jobs(const std::vector<SuiteJob>& jobs, const RunOptions& opts, unsigned threads,
                                const std::function<void(std::size_t, std::size_t)>& progress) {
  // All input errors before anything runs.
  std::vector<Scenario> scenarios;
  scenarios.reserve(jobs.size());
  for (const auto& j : jobs) scenarios.push_back(load_job(j));
  return run_loaded(scenarios, jobs, opts, threads, progress);
}

std::vector<RunResult> run_loaded(const std::vector<Scenario>& scenarios, const std::vector<SuiteJob>& jobs,
                                  const RunOptions& opts, unsigned threads,
                                  const std::function<void(std::size_t, std::size_t)>& progress) {
  std::vector<RunResult> results(jobs.size());
  std::mutex m;
  std::size_t done = 0;
  // Runs share nothing (each has its own memory, page tables, TLBs), so
  // they run in parallel; results land in job order.
  parallel_for(jobs.size(), threads, [&](std::size_t i) {
    results[i] = run_scenario(scenarios[i], opts);
    if (jobs[i].config) results[i].config.name = std::string(jobs[i].config->name);
    std::lock_guard lock(m);
    ++done;
    if (progress) progress(done, jobs.size());
  });
  return results;
}

}  // namespace contpte
