// The explorer's cost: exhausting a shipped race against running the same
// scenario once in one seeded interleaving (the baseline, same run). The
// ratio is roughly the number of classes explored times the cost of
// restarting each one; classes per second are reported as a counter.
//
// BM_Shape: issue 22's shapes — one engine branch over one contpte block
// (each of the nine engine calls), three hardware branches on distinct
// pages of it and one or two lockless readers, on every granule. Each must
// be exhausted (the counter `exhausted` is 1); the targets are < 5 s on 4K
// and < 60 s on 16K / 64K (Release, one core). BM_DevShape: one CPU's
// write, a device's write (`dev`, no hardware A/D updates: it faults on the
// clean block and its handler runs ptep_set_access_flags under the
// page-table lock, writing every entry of the block) and one reader, 4K.
// (With a second CPU's write the handler's sixteen compare-exchanges race
// with both CPUs' updates: 154 106 classes in 4.5 s for ptep_set_wrprotect
// without a reader, not exhausted in 100 s with one.) `failed` is 1 for
// wrprotect_ptes and get_and_clear_full_ptes by design: where they come
// first the device's write finds its PTE read-only or cleared (`unmapped`).

#include <benchmark/benchmark.h>

#include <array>
#include <string>

#include <fmt/format.h>

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
  st.counters["classes/s"] = benchmark::Counter(double(interleavings), benchmark::Counter::kIsRate);
  st.SetLabel(kRaces[st.range(0)]);
}

// ---- issue 22's shapes -----------------------------------------------------

struct GranuleShape {
  const char* name;
  std::uint64_t page;
  unsigned ptes, order;
};
constexpr std::array<GranuleShape, 3> kGranules{{{"4K", 0x1000, 16, 4}, {"16K", 0x4000, 128, 7}, {"64K", 0x10000, 32, 5}}};
constexpr std::array<const char*, 9> kOps{"fold",
                                          "ptep_set_wrprotect",
                                          "modify_prot",
                                          "ptep_set_access_flags",
                                          "ptep_clear_flush_young",
                                          "ptep_get_and_clear",
                                          "clear_young_dirty_ptes",
                                          "wrprotect_ptes",
                                          "get_and_clear_full_ptes"};

// The block at 0x40000000, folded (or one PTE short of it, for the fold);
// the engine call; hardware writes to pages 3 and n-4, a read of page n/2-2
// (with `hw` = 3; with `dev` the last of the `hw` branches is a device's
// write instead); readers of page n/2 (and n/2+1).
std::string shape(unsigned op, const GranuleShape& g, unsigned hw, unsigned readers, const char* variant,
                  bool dev = false) {
  const std::uint64_t base = 0x40000000, n = g.ptes;
  auto page = [&](std::uint64_t i) { return fmt::format("{:#x}", base + i * g.page); };
  std::string s = fmt::format("granule {}\ncontpte {}\nalloc F order={}\n", g.name, variant, g.order);
  s += fmt::format("set_ptes {} F nr={} prot=rw young\n", page(0), op == 0 ? n - 1 : n);
  s += "parallel\n";
  switch (op) {
    case 0: s += fmt::format("  engine set_ptes {} F+{} nr=1 prot=rw young\n", page(n - 1), n - 1); break;
    case 1: s += fmt::format("  engine ptep_set_wrprotect {}\n", page(0)); break;
    case 2: s += fmt::format("  engine modify_prot {} nr=1 prot=r\n", page(0)); break;
    case 3: s += fmt::format("  engine ptep_set_access_flags {} prot=rw young dirty\n", page(0)); break;
    case 4: s += fmt::format("  engine ptep_clear_flush_young {}\n", page(0)); break;
    case 5: s += fmt::format("  engine ptep_get_and_clear {}\n", page(0)); break;
    case 6: s += fmt::format("  engine clear_young_dirty_ptes {} nr={} young dirty\n", page(0), n); break;
    case 7: s += fmt::format("  engine wrprotect_ptes {} nr={}\n", page(0), n); break;
    case 8: s += fmt::format("  engine get_and_clear_full_ptes {} nr={} full\n", page(0), n); break;
  }
  const std::uint64_t hw_pages[] = {3, n - 4, n / 2 - 2};
  for (unsigned i = 0; i < hw; ++i)
    s += dev && i + 1 == hw ? fmt::format("  dev write {}\n", page(hw_pages[i]))
                       : fmt::format("  hw {} {}\n", i < 2 ? "write" : "read", page(hw_pages[i]));
  for (unsigned i = 0; i < readers; ++i) s += fmt::format("  reader ptep_get_lockless {}\n", page(n / 2 + i));
  s += "end\n";
  return s;
}

// range(0): engine op, range(1): granule, range(2): hw branches, range(3): readers.
void BM_Shape(benchmark::State& st) {
  const unsigned op = static_cast<unsigned>(st.range(0));
  const GranuleShape& g = kGranules[static_cast<std::size_t>(st.range(1))];
  const Scenario sc = parse_scenario(
      shape(op, g, static_cast<unsigned>(st.range(2)), static_cast<unsigned>(st.range(3)), "upstream"), "shape.cpt");
  RunOptions opts;
  opts.explore_max = 100'000'000;
  ExploreResult last;
  for (auto _ : st) last = run_scenario(sc, opts).explorations.at(0).result;
  st.counters["classes"] = double(last.executions);
  st.counters["exhausted"] = last.exhausted ? 1 : 0;
  st.counters["reader_states"] = double(last.reader_states);
  st.SetLabel(fmt::format("{} {} hw={} readers={}", kOps[op], g.name, st.range(2), st.range(3)));
}

// range(0): engine op, range(1): granule, range(2): hardware branches, the
// last of them a dev write (2: a CPU's write and a device's; 3: two CPUs'
// writes and a device's); one reader.
void BM_DevShape(benchmark::State& st) {
  const unsigned op = static_cast<unsigned>(st.range(0));
  const GranuleShape& g = kGranules[static_cast<std::size_t>(st.range(1))];
  const auto hw = static_cast<unsigned>(st.range(2));
  const Scenario sc = parse_scenario(shape(op, g, hw, 1, "upstream", /*dev=*/true), "dev-shape.cpt");
  RunOptions opts;
  opts.explore_max = 100'000'000;
  ExploreResult last;
  for (auto _ : st) last = run_scenario(sc, opts).explorations.at(0).result;
  st.counters["classes"] = double(last.executions);
  st.counters["exhausted"] = last.exhausted ? 1 : 0;
  st.counters["failed"] = last.failed() ? 1 : 0;
  st.SetLabel(fmt::format("{} {} hw={} dev=1 readers=1", kOps[op], g.name, hw - 1));
}

// The naive fold with one hardware write and one reader: the counterexample
// must be found (and the exploration finish) within 5 s.
void BM_NaiveShape(benchmark::State& st) {
  const GranuleShape& g = kGranules[static_cast<std::size_t>(st.range(0))];
  const Scenario sc = parse_scenario(shape(0, g, 1, 1, "naive"), "naive.cpt");
  RunOptions opts;
  opts.explore_max = 100'000'000;
  ExploreResult last;
  for (auto _ : st) last = run_scenario(sc, opts).explorations.at(0).result;
  st.counters["classes"] = double(last.executions);
  st.counters["failed"] = last.failed() ? 1 : 0;
  st.SetLabel(fmt::format("naive fold {} hw=1 readers=1", g.name));
}

BENCHMARK(BM_SeededRun_Baseline)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Explore)->DenseRange(0, 2)->Unit(benchmark::kMillisecond);
// Every engine call, 4K: three hw branches and one reader.
BENCHMARK(BM_Shape)
    ->ArgsProduct({benchmark::CreateDenseRange(0, 8, 1), {0}, {3}, {1}})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
// 16K and 64K: the same.
BENCHMARK(BM_Shape)
    ->ArgsProduct({benchmark::CreateDenseRange(0, 8, 1), {1, 2}, {3}, {1}})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
// Two readers, one hardware branch, 4K.
BENCHMARK(BM_Shape)
    ->ArgsProduct({benchmark::CreateDenseRange(0, 8, 1), {0}, {1}, {2}})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
// One or two CPUs' writes, a device's write and a reader, 4K.
BENCHMARK(BM_DevShape)
    ->ArgsProduct({benchmark::CreateDenseRange(0, 8, 1), {0}, {2, 3}})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
// The slowest of them (the fold, ptep_clear_flush_young,
// clear_young_dirty_ptes with two CPUs) on 16K and 64K: target < 60 s.
BENCHMARK(BM_DevShape)->ArgsProduct({{0, 4, 6}, {1, 2}, {3}})->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_NaiveShape)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
