// The explorer's cost: exhausting a shipped race against running the same
// scenario once in one seeded interleaving (the baseline, same run). The
// ratio is roughly the number of interleavings explored times the cost of
// restarting each one; interleavings per second are reported as a counter.

#include <benchmark/benchmark.h>

#include <string>

#include "scenario/runner.h"
#include "scenario/scenario.h"

namespace {

using namespace contpte;

const char* const kRaces[] = {"upstream-three-cpus-16-ptes.cpt", "lockless-reader-vs-unfold.cpt",
                              "upstream-unfold-vs-hw-write.cpt"};

Scenario load(int i) { return load_scenario(std::string(CONTPTE_SOURCE_DIR "/examples/races/") + kRaces[i]); }

void BM_SeededRun_Baseline(benchmark::State& st) {
  const Scenario sc = load(static_cast<int>(st.range(0)));
  for (auto _ : st) benchmark::DoNotOptimize(run_scenario(sc).statements);
  st.SetLabel(kRaces[st.range(0)]);
}

void BM_Explore(benchmark::State& st) {
  const Scenario sc = load(static_cast<int>(st.range(0)));
  RunOptions opts;
  opts.explore_max = 1'000'000;
  std::uint64_t interleavings = 0;
  for (auto _ : st) {
    const RunResult r = run_scenario(sc, opts);
    interleavings += r.explorations.at(0).result.executions;
  }
  st.counters["interleavings/s"] = benchmark::Counter(double(interleavings), benchmark::Counter::kIsRate);
  st.SetLabel(kRaces[st.range(0)]);
}

BENCHMARK(BM_SeededRun_Baseline)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Explore)->DenseRange(0, 2)->Unit(benchmark::kMillisecond);

}  // namespace
