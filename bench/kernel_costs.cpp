// bench/kernel_costs.cpp — measures, on the host's own kernel, the costs the
// time estimate (docs/estimate.md) charges for kernel work: bytes zeroed and
// copied per nanosecond, one anonymous page fault, one PTE changed, one page
// aged by MADV_COLD. The presets' cost constants (hw/tlb_presets.cpp) cite
// the figures this program printed on the project's build machine; rerun it
// to measure another machine:
//
//   build/bench/kernel_costs --benchmark_min_time=0.5 --benchmark_repetitions=5
//
// Every benchmark reports `ns_per_page` (or `bytes_per_ns`) as a counter.
// How a constant is derived from them is in docs/estimate.md.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr std::size_t kBytes = std::size_t{64} << 20;  // larger than any cache of the machines we run on
constexpr std::size_t kPage = 4096;

char* map_anon(std::size_t len) {
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  // Order-0 folios only: the costs are per 4K page.
  madvise(p, len, MADV_NOHUGEPAGE);
  return static_cast<char*>(p);
}

char* populated(std::size_t len) {
  char* p = map_anon(len);
  if (p) std::memset(p, 1, len);
  return p;
}

// clear_page's rate: memset of a buffer too large for the caches.
void BM_ZeroBandwidth(benchmark::State& state) {
  char* p = populated(kBytes);
  if (!p) return state.SkipWithError("mmap failed");
  for (auto _ : state) {
    std::memset(p, 0, kBytes);
    benchmark::ClobberMemory();
  }
  state.counters["bytes_per_ns"] = benchmark::Counter(
      double(kBytes) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  munmap(p, kBytes);
}
BENCHMARK(BM_ZeroBandwidth)->Unit(benchmark::kMillisecond);

// copy_user_highpage's rate (a COW copy): memcpy between two such buffers.
void BM_CopyBandwidth(benchmark::State& state) {
  char* a = populated(kBytes);
  char* b = populated(kBytes);
  if (!a || !b) return state.SkipWithError("mmap failed");
  for (auto _ : state) {
    std::memcpy(b, a, kBytes);
    benchmark::ClobberMemory();
  }
  state.counters["bytes_per_ns"] = benchmark::Counter(
      double(kBytes) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
  munmap(a, kBytes);
  munmap(b, kBytes);
}
BENCHMARK(BM_CopyBandwidth)->Unit(benchmark::kMillisecond);

// One write fault per 4K page of fresh anonymous memory: exception entry
// and exit, handle_mm_fault, a zeroed order-0 folio, one PTE. The time of
// the munmap that frees them is excluded.
void BM_AnonWriteFault(benchmark::State& state) {
  std::uint64_t pages = 0;
  for (auto _ : state) {
    state.PauseTiming();
    char* p = map_anon(kBytes);
    if (!p) return state.SkipWithError("mmap failed");
    state.ResumeTiming();
    for (std::size_t off = 0; off < kBytes; off += kPage) p[off] = 1;
    benchmark::ClobberMemory();
    state.PauseTiming();
    munmap(p, kBytes);
    state.ResumeTiming();
    pages += kBytes / kPage;
  }
  state.counters["ns_per_page"] =
      benchmark::Counter(double(pages) / 1e9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_AnonWriteFault)->Unit(benchmark::kMillisecond);

// One PTE changed in place: mprotect of populated memory, read-only and
// back (change_pte_range per PTE, one TLB flush per call).
void BM_MprotectPerPte(benchmark::State& state) {
  char* p = populated(kBytes);
  if (!p) return state.SkipWithError("mmap failed");
  std::uint64_t pages = 0;
  for (auto _ : state) {
    mprotect(p, kBytes, PROT_READ);
    mprotect(p, kBytes, PROT_READ | PROT_WRITE);
    pages += 2 * (kBytes / kPage);
  }
  state.counters["ns_per_page"] =
      benchmark::Counter(double(pages) / 1e9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  munmap(p, kBytes);
}
BENCHMARK(BM_MprotectPerPte)->Unit(benchmark::kMillisecond);

// One page aged by reclaim's test-and-clear of the young bit and
// deactivated: MADV_COLD over populated memory (madvise_cold_or_pageout_pte_range).
void BM_ColdPerPage(benchmark::State& state) {
  char* p = populated(kBytes);
  if (!p) return state.SkipWithError("mmap failed");
  std::uint64_t pages = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (std::size_t off = 0; off < kBytes; off += kPage) p[off] = 2;  // young again
    state.ResumeTiming();
    madvise(p, kBytes, MADV_COLD);
    pages += kBytes / kPage;
  }
  state.counters["ns_per_page"] =
      benchmark::Counter(double(pages) / 1e9, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  munmap(p, kBytes);
}
BENCHMARK(BM_ColdPerPage)->Unit(benchmark::kMillisecond);

}  // namespace
