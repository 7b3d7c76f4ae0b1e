// bench/snapshot_bench.cpp — snapshot_process on a sparse process.
//
// Issue 13 asks for >= 4 GiB of mapped address space read per second,
// measured on a sparse process with 64 GiB mapped. The process is this one:
// a 64 GiB PROT_READ|PROT_WRITE MAP_NORESERVE mapping with one page touched
// every 64 MiB (and a 2 MiB THP-eligible run at the start). Baseline, in the
// same run: reading the same pagemap range raw, in the same chunk size —
// the kernel's own cost, which no reader can beat. Reported: bytes of
// address space per second (bytes_per_second) and `vs_raw_pagemap`, the
// snapshot's time over the raw read's. Needs root for PFNs; without it the
// --no-pfn variant still runs.

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hostproc/snapshot.h"

namespace {

constexpr std::uint64_t kMapped = 64ull << 30;
constexpr std::uint64_t kStride = 64ull << 20;

class SparseProcess : public benchmark::Fixture {
 public:
  void SetUp(const benchmark::State&) override {
    void* p = ::mmap(nullptr, kMapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    base_ = p == MAP_FAILED ? nullptr : static_cast<char*>(p);
    if (!base_) return;
    ::madvise(base_, 4u << 20, MADV_HUGEPAGE);
    for (std::uint64_t o = 0; o < (2u << 20); o += 4096) base_[o] = 1;
    for (std::uint64_t o = 0; o < kMapped; o += kStride) base_[o] = 1;
  }
  void TearDown(const benchmark::State&) override {
    if (base_) ::munmap(base_, kMapped);
  }

  // Seconds to read the pagemap of the 64 GiB range raw, in 64K-entry chunks.
  double raw_pagemap_seconds() const {
    const int fd = ::open("/proc/self/pagemap", O_RDONLY);
    std::vector<std::uint64_t> buf(1 << 16);
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t first = reinterpret_cast<std::uint64_t>(base_) / 4096, pages = kMapped / 4096;
    for (std::uint64_t v = first; v < first + pages; v += buf.size())
      benchmark::DoNotOptimize(::pread(fd, buf.data(), buf.size() * 8, static_cast<off_t>(v * 8)));
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ::close(fd);
    return s;
  }

  void run(benchmark::State& state, bool no_pfn) {
    if (!base_) {
      state.SkipWithError("cannot map 64 GiB with MAP_NORESERVE");
      return;
    }
    auto src = contpte::make_live_proc_source();
    if (!no_pfn && !src->pfns_readable()) {
      state.SkipWithError("needs root: /proc/kpageflags is not readable");
      return;
    }
    contpte::SnapshotOptions opts;
    opts.no_pfn = no_pfn;
    std::uint64_t mapped = 0;
    double seconds = 0;
    for (auto _ : state) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto p = contpte::snapshot_process(*src, ::getpid(), opts);
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      mapped = 0;
      for (const auto& v : p.vmas) mapped += v.vma.end - v.vma.start;
      benchmark::DoNotOptimize(p.total.resident_bytes);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(mapped * state.iterations()));
    const double raw = raw_pagemap_seconds();
    state.counters["vs_raw_pagemap"] = seconds / static_cast<double>(state.iterations()) / raw;
    state.counters["GiB_mapped"] = static_cast<double>(mapped) / (1ull << 30);
  }

 private:
  char* base_ = nullptr;
};

BENCHMARK_DEFINE_F(SparseProcess, BM_snapshot_process)(benchmark::State& state) { run(state, state.range(0) != 0); }
BENCHMARK_REGISTER_F(SparseProcess, BM_snapshot_process)
    ->ArgName("no_pfn")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
