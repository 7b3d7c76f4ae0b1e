// bench/mmu_bench.cpp — accesses per second through the simulated MMU
// (TLBs, walker, hardware A/D), with and without the conformance checker,
// against a loop over the same address stream without the model, measured
// in the same run.
//
// Workloads (4K granule, Neoverse N1 preset):
//   l1hit  — sequential reads over 16 folded 64K blocks: 16 TLB entries, all
//            L1 hits after the first pass.
//   random — uniformly random reads over 64 MiB or 1 GiB mapped with 4K PTEs
//            (`off`): the N1's L2 TLB reaches 5 MiB, so almost every access
//            misses both TLB levels and walks. At 64 MiB the page tables
//            (128 KiB) stay in the host's caches; at 1 GiB (2 MiB of PTEs)
//            the walks also miss the host's caches.
// Counters: `accesses/s` (items_per_second) and `x_baseline`, the time per
// access divided by that of the plain loop over the same precomputed stream.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <random>
#include <vector>

#include "engine/pgtable.h"
#include "hw/checker.h"
#include "hw/mmu.h"
#include "hw/page_table.h"
#include "hw/sim_env.h"
#include "mm/buddy.h"

namespace contpte {
namespace {

constexpr std::uint64_t kBase = 0x40000000;

struct Machine {
  PhysMem mem;
  PageTable pt;
  BuddyAllocator buddy;
  SimEnv env;
  Checker checker;
  Mmu mmu;

  Machine(Variant v, std::uint64_t bytes, bool check)
      : mem(Granule::k4K, std::uint64_t{16} << 30),
        pt(mem),
        buddy(mem),
        env(mem, pt, Features{v, false, true}),
        checker(mem.geometry(), false),
        mmu(mem, resolve_tlb_config("neoverse-n1"), true, check ? &checker : nullptr, 1) {
    const unsigned shift = mem.geometry().page_shift;
    // Map in 2M chunks (one page-table page each) of order-9 folios.
    for (std::uint64_t off = 0; off < bytes; off += 2u << 20) {
      const Pfn pfn = *buddy.alloc_folio(9);
      const VirtAddr va{kBase + off};
      set_ptes(env, va, *pt.pte_slot(va, true), pte_mkyoung(pfn_pte(pfn, prot::kPageShared, shift)),
               512);
    }
  }
};

std::vector<std::uint64_t> stream(bool random, std::uint64_t bytes, std::size_t n) {
  std::vector<std::uint64_t> out(n);
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<std::uint64_t> page(0, bytes / 4096 - 1);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = kBase + (random ? page(rng) * 4096 : (i * 4096) % bytes);
  return out;
}

// The baseline: the same stream, consumed without the model.
double baseline_ns_per_access(const std::vector<std::uint64_t>& s) {
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t sum = 0;
  for (int rep = 0; rep < 8; ++rep)
    for (std::uint64_t va : s) {
      sum += va;
      benchmark::DoNotOptimize(sum);
    }
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (8.0 * double(s.size()));
}

void run(benchmark::State& state, bool random, bool check) {
  const std::uint64_t bytes = random ? std::uint64_t(state.range(0)) << 20 : (std::uint64_t{1} << 20);
  Machine m(random ? Variant::Off : Variant::Upstream, bytes, check);
  const auto s = stream(random, bytes, 1u << 16);
  // Warm the TLBs.
  for (std::uint64_t va : s) m.mmu.access(m.pt, 1, VirtAddr{va}, MemAccess::Read);
  std::size_t i = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto r = m.mmu.access(m.pt, 1, VirtAddr{s[i]}, MemAccess::Read);
    benchmark::DoNotOptimize(r);
    if (++i == s.size()) i = 0;
  }
  const auto t1 = std::chrono::steady_clock::now();
  const double model_ns =
      std::chrono::duration<double, std::nano>(t1 - t0).count() / double(state.iterations());
  state.SetItemsProcessed(state.iterations());
  state.counters["x_baseline"] = model_ns / baseline_ns_per_access(s);
  state.counters["l1_hit_rate"] =
      double(m.mmu.stats().l1_hits) / double(std::max<std::uint64_t>(1, m.mmu.stats().accesses));
}

void BM_Access_L1Hit(benchmark::State& s) { run(s, false, false); }
void BM_Access_L1Hit_Checked(benchmark::State& s) { run(s, false, true); }
void BM_Access_RandomMiss(benchmark::State& s) { run(s, true, false); }
void BM_Access_RandomMiss_Checked(benchmark::State& s) { run(s, true, true); }
BENCHMARK(BM_Access_L1Hit);
BENCHMARK(BM_Access_L1Hit_Checked);
BENCHMARK(BM_Access_RandomMiss)->Arg(64)->Arg(1024);
BENCHMARK(BM_Access_RandomMiss_Checked)->Arg(64)->Arg(1024);

}  // namespace
}  // namespace contpte
