// scenario/configs.h — the built-in configurations the main job compares,
// and the built-in workload suite.
//
// Owns: each configuration's name and the header lines it imposes on a
// scenario (granule, contpte variant, THP policy); running a set of
// scenarios under a set of configurations on several threads.
// Must not know: report formats.
#pragma once

#include <array>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "scenario/runner.h"

namespace contpte {

struct BuiltinConfig {
  std::string_view name;
  std::string_view header;  // header lines, one per line
  std::string_view what;
};

inline constexpr std::array<BuiltinConfig, 8> kBuiltinConfigs{{
    {"base-4k", "granule 4K\ncontpte off\nmthp none", "4K pages, no THP of any size, contpte off"},
    {"thp-4k", "granule 4K\ncontpte off\nthp 2M=always", "4K pages + PMD-sized (2M) THP always, contpte off: the classic setting"},
    {"mthp-64k", "granule 4K\ncontpte off\nmthp 64K", "4K pages + 64K mTHP, contpte off"},
    {"contpte-64k", "granule 4K\ncontpte upstream\nmthp 64K", "4K pages + 64K mTHP + contpte (upstream)"},
    {"gran-16k", "granule 16K\ncontpte upstream\nmthp 2M", "16K pages + 2M mTHP + contpte"},
    {"gran-64k", "granule 64K\ncontpte upstream\nmthp 2M", "64K pages + 2M mTHP + contpte"},
    // The 16K and 64K kernels as the 2023 kernel-build measurements ran
    // them: no mTHP, no contpte for user mappings (docs/results.md).
    {"base-16k", "granule 16K\ncontpte off\nmthp none", "16K pages, no THP of any size, contpte off"},
    {"base-64k", "granule 64K\ncontpte off\nmthp none", "64K pages, no THP of any size, contpte off"},
}};

const BuiltinConfig* find_config(std::string_view name);
// The configurations' names, comma separated, for an error's "expected one of".
std::string config_names();

// One scenario file under one configuration (none: its own header), and
// optionally on another TLB core (`--tlb`: a preset or an absolute path).
struct SuiteJob {
  std::filesystem::path file;
  const BuiltinConfig* config = nullptr;
  std::string tlb = {};
  // The header lines that replace the file's: the configuration's, then `tlb`.
  std::string forced_header() const;
};

// Loads and validates the job's scenario; throws ScenarioError.
Scenario load_job(const SuiteJob& job);

// Calls fn(0) ... fn(n - 1) on up to `threads` threads (the caller's among
// them); the first exception any call threw is rethrown after all finish.
void parallel_for(std::size_t n, unsigned threads, const std::function<void(std::size_t)>& fn);

// Loads every job's scenario first (throws ScenarioError on the first bad
// one: nothing runs), then runs them on `threads` threads. Results come back
// in job order. `progress(done, total)` is called after each run, from the
// calling thread's point of view serialized.
std::vector<RunResult> run_jobs(const std::vector<SuiteJob>& jobs, const RunOptions& opts, unsigned threads,
                                const std::function<void(std::size_t, std::size_t)>& progress = {});
// The same for scenarios already loaded (scenarios[i] is jobs[i]'s).
std::vector<RunResult> run_loaded(const std::vector<Scenario>& scenarios, const std::vector<SuiteJob>& jobs,
                                  const RunOptions& opts, unsigned threads,
                                  const std::function<void(std::size_t, std::size_t)>& progress = {});

}  // namespace contpte
