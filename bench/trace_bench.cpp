// Replay speed of a recorded-program trace against the baseline of merely
// decoding it (the same file, in the same run). Target (issue 13): replay
// >= 20 M accesses/s on one core. items_per_second is accesses per second.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "trace/replay.h"

namespace contpte {
namespace {

constexpr std::uint64_t kAccesses = 4'000'000;

// A program's shape: straight-line code with loops in a 256K text mapping,
// a stack, and a 64 MiB heap walked mostly sequentially with random probes.
const std::string& trace_path() {
  static const std::string path = [] {
    const auto p = std::filesystem::temp_directory_path() / "contpte_trace_bench.trace";
    std::ofstream out(p, std::ios::binary);
    TraceWriter w(out, TraceHeader{kTraceVersion, {"synthetic"}});
    const std::uint32_t rx = trace_prot::kRead | trace_prot::kExec, rw = trace_prot::kRead | trace_prot::kWrite;
    w.write(TraceMmap{256 << 10, rx, trace_map::kImplicit, std::nullopt, 0, std::nullopt, 0});
    w.write(TraceMmap{1 << 20, rw, trace_map::kImplicit | trace_map::kStack, std::nullopt, 0, std::nullopt, 0});
    w.write(TraceMmap{64 << 20, rw, 0, std::nullopt, 0, std::nullopt, 0});
    std::mt19937_64 rng(3);
    std::uint64_t pc = 0, heap = 0;
    for (std::uint64_t i = 0; i < kAccesses; ++i) {
      // Two fetches for each data access, half of them to the stack.
      if (i % 3 != 2) {
        w.access(TraceAccess{TraceAccessType::Instr, 0, pc, 4});
        pc = rng() % 16 == 0 ? (rng() % (256 << 10)) & ~3ull : (pc + 4) % (256 << 10);
      } else if (rng() % 2) {
        w.access(TraceAccess{TraceAccessType::Load, 1, (1 << 20) - 64 - 8 * (rng() % 32), 8});
      } else {
        heap = rng() % 64 == 0 ? rng() % ((64 << 20) - 8) : (heap + 8) % ((64 << 20) - 8);
        w.access(TraceAccess{rng() % 2 ? TraceAccessType::Store : TraceAccessType::Load, 2, heap, 8});
      }
    }
    w.finish();
    return p.string();
  }();
  return path;
}

void BM_DecodeOnly(benchmark::State& state) {
  const std::string& path = trace_path();
  std::uint64_t n = 0;
  for (auto _ : state) {
    std::ifstream in(path, std::ios::binary);
    TraceReader r(in, path);
    while (auto rec = r.next()) benchmark::DoNotOptimize(rec);
    n += r.totals().accesses;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
  state.counters["bytes_per_access"] =
      double(std::filesystem::file_size(path)) / double(kAccesses);
}
BENCHMARK(BM_DecodeOnly)->Unit(benchmark::kMillisecond);

void BM_Replay(benchmark::State& state, const char* config, bool check) {
  const std::string& path = trace_path();
  ReplayOptions o;
  o.run.check = check;
  std::uint64_t n = 0;
  for (auto _ : state) {
    const RunResult r = replay_trace(path, *find_config(config), o);
    n += static_cast<std::uint64_t>(r.stat("accesses"));
    if (r.stat("replay_unresolved_accesses") != 0) state.SkipWithError("unresolved accesses");
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n));
}
BENCHMARK_CAPTURE(BM_Replay, base_4k, "base-4k", false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, contpte_64k, "contpte-64k", false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, gran_64k, "gran-64k", false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Replay, contpte_64k_checked, "contpte-64k", true)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace contpte
