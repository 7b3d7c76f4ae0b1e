// bench/engine_bench.cpp — ns/op of every contpte API call, on a folded
// contiguous block and on plain PTEs, for every variant and granule, with
// baselines measured in the same run.
//
// The Env here is a plain array (ArrayEnv): one page-table page as an
// aligned array of words, READ_ONCE/WRITE_ONCE as relaxed atomic loads and
// stores, xchg/cmpxchg as relaxed atomic RMWs (what Linux's xchg_relaxed /
// cmpxchg_relaxed compile to), TLB flushes as no-ops (the engine still counts
// them), folio_of from a two-entry table, no observers. So the numbers measure
// the engine's own work, not the simulator.
//
// Names: <call>/<granule>/<variant>/<cont|plain>
//   cont  — the call's target is a folded block (CONT_PTES entries of one
//           folio, written with PTE_CONT by set_ptes; under `off` the same
//           mapping without CONT);
//   plain — the target is a block of one folio mapped one frame off its
//           alignment, so it never gets PTE_CONT in any variant.
// baseline/<what>/<granule>: the plain-array loops the targets compare with.
// ratio/<what>/<granule>: engine and baseline interleaved in one loop; the
//   `ratio` counter is the number each target names (see bottom of file).
//
// Method for calls that change state (set, clear, wrprotect, aging, access
// flags, modify_prot): every timed repetition is "call + restore", where
// restore writes back the words the call may have changed (the whole block
// when a block is involved, the one word otherwise) with plain stores from a
// snapshot; restore alone is timed right after, in the same iteration, and
// subtracted: the counter `net_ns` is the call alone (the Time column of a
// mutating call is one iteration: kReps x (call + restore) + kReps x restore).
// Calls that only read are timed directly: their Time column is the call.
// Ratio benchmarks likewise report per-op counters (engine_ns, baseline_ns).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "engine/pgtable.h"

namespace contpte {
namespace {

// ---- the plain-array Env ---------------------------------------------------
inline std::uint64_t load_word(const Pte* p) {
  return std::atomic_ref<std::uint64_t>(const_cast<Pte*>(p)->val).load(std::memory_order_relaxed);
}
inline void store_word(Pte* p, std::uint64_t v) {
  std::atomic_ref<std::uint64_t>(p->val).store(v, std::memory_order_relaxed);
}

class ArrayEnv {
 public:
  ArrayEnv(Granule g, Variant v) : geo_(&contpte::geometry(g)) {
    features_.variant = v;
    features_.bbml2_noabort = v == Variant::Bbml2;
    // A page-table page is aligned to its size, so PteSlot::align_down finds
    // a block the way contpte_align_down does.
    void* mem = std::aligned_alloc(geo_->page_size(), geo_->page_size());
    if (!mem) throw std::bad_alloc();
    std::memset(mem, 0, geo_->page_size());
    table_.reset(static_cast<Pte*>(mem));
  }

  // ---- Env ----
  Pte read(PteSlot s) { return Pte{load_word(s.ptr())}; }
  void write(PteSlot s, Pte v) { store_word(s.ptr(), v.val); }
  Pte xchg(PteSlot s, Pte v) {
    return Pte{std::atomic_ref<std::uint64_t>(s.ptr()->val).exchange(v.val, std::memory_order_relaxed)};
  }
  Pte cmpxchg(PteSlot s, Pte old, Pte v) {
    std::uint64_t expected = old.val;
    std::atomic_ref<std::uint64_t>(s.ptr()->val)
        .compare_exchange_strong(expected, v.val, std::memory_order_relaxed, std::memory_order_relaxed);
    return Pte{expected};
  }
  void flush_tlb_range(TlbFlush) {}
  void flush_tlb_page(VirtAddr, bool) {}
  void flush_tlb_mm() {}
  FolioInfo folio_of(Pfn pfn) const {
    for (const auto& f : folios_)
      if (pfn.val >= f.head.val && pfn.val < f.head.val + f.nr_pages) return f;
    return {};
  }
  const Features& features() const { return features_; }
  const Geometry& geometry() const { return *geo_; }
  bool mm_is_user() const { return true; }
  EngineCounters& counters() { return counters_; }

  // ---- bench side ----
  void add_folio(Pfn head, unsigned order) { folios_.push_back({true, head, std::uint64_t{1} << order}); }
  PteSlot slot(unsigned i) { return PteSlot{table_.get() + i}; }
  VirtAddr va(unsigned i) const { return VirtAddr{kBase + (std::uint64_t{i} << geo_->page_shift)}; }

 private:
  struct Free {
    void operator()(Pte* p) const { std::free(p); }
  };
  static constexpr std::uint64_t kBase = 0x4000'0000;  // PMD-aligned for every granule
  const Geometry* geo_;
  Features features_;
  EngineCounters counters_;
  std::unique_ptr<Pte, Free> table_;
  std::vector<FolioInfo> folios_;
};
static_assert(Env<ArrayEnv>);

// ---- fixture: one block, folded (cont) or never foldable (plain) -----------
class Fixture {
 public:
  Fixture(Granule g, Variant v, bool cont) : env_(g, v), cont_(geometry(g).cont_ptes), is_cont_(cont) {
    unsigned order = 0;
    while ((1u << order) < cont_) ++order;
    // Folios far apart; the plain one is mapped one frame in, so its PFNs
    // never start a block-aligned run.
    base_pfn_ = cont ? Pfn{std::uint64_t{1} << 20} : Pfn{(std::uint64_t{1} << 21) + 1};
    env_.add_folio(Pfn{std::uint64_t{1} << 20}, order);
    env_.add_folio(Pfn{std::uint64_t{1} << 21}, order + 1);
  }

  ArrayEnv& env() { return env_; }
  unsigned cont() const { return cont_; }
  bool is_cont() const { return is_cont_; }
  // The block is pages [0, cont); single-PTE calls target the middle one.
  unsigned target() const { return cont_ / 2; }
  PteSlot slot(unsigned i) { return env_.slot(i); }
  VirtAddr va(unsigned i) { return env_.va(i); }
  // pfn_pte(base + k, PAGE_SHARED), old and clean.
  Pte pte(unsigned k) const {
    return pte_mkold(pfn_pte(base_pfn_ + k, prot::kPageShared, env_.geometry().page_shift));
  }
  // Maps the whole block with one set_ptes (CONT in the cont case, except `off`).
  void map_block() { contpte::set_ptes(env_, va(0), slot(0), pte(0), cont_); }
  // Sets AF (and, for a write, clears RDONLY) in one entry, as the MMU would.
  void hw_touch(unsigned i, bool write) {
    Pte v = env_.read(slot(i));
    v = pte_mkyoung(v);
    if (write) v = clear_pte_bit(v, bits::kRdonly);
    env_.write(slot(i), v);
  }

 private:
  ArrayEnv env_;
  unsigned cont_;
  bool is_cont_;
  Pfn base_pfn_;
};

// Words [first, first + n) as they are now, and a restore that writes them back.
class Snapshot {
 public:
  Snapshot(Fixture& f, unsigned first, unsigned n) : base_(f.slot(first).ptr()), words_(n) {
    for (unsigned k = 0; k < n; ++k) words_[k] = load_word(base_ + k);
  }
  void restore() const {
    for (std::size_t k = 0; k < words_.size(); ++k) store_word(base_ + k, words_[k]);
  }

 private:
  Pte* base_;
  std::vector<std::uint64_t> words_;
};

using Clock = std::chrono::steady_clock;
constexpr unsigned kReps = 256;

// Times kReps x (op + restore) and kReps x restore per benchmark iteration.
// The Time column is that whole iteration; the counter `net_ns` is the call
// alone per call (pair minus restore), `restore_ns` what was subtracted.
template <class Op>
void run_mutating(benchmark::State& state, const Snapshot& snap, Op&& op) {
  double pair_total = 0, alone_total = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    for (unsigned i = 0; i < kReps; ++i) {
      benchmark::DoNotOptimize(op());
      snap.restore();
    }
    benchmark::ClobberMemory();
    const auto t1 = Clock::now();
    for (unsigned i = 0; i < kReps; ++i) {
      snap.restore();
      benchmark::ClobberMemory();
    }
    const auto t2 = Clock::now();
    const double pair = std::chrono::duration<double>(t1 - t0).count();
    pair_total += pair;
    alone_total += std::chrono::duration<double>(t2 - t1).count();
  }
  const double n = static_cast<double>(state.iterations()) * kReps;
  state.counters["net_ns"] = std::max(pair_total - alone_total, 0.0) / n * 1e9;
  state.counters["restore_ns"] = alone_total / n * 1e9;
}

template <class Op>
void run_reading(benchmark::State& state, Op&& op) {
  for (auto _ : state) benchmark::DoNotOptimize(op());
}

// ---- the calls ----------------------------------------------------------------
struct Call {
  const char* name;
  bool mutates;
  // Runs the benchmark on a fresh fixture.
  std::function<void(benchmark::State&, Fixture&)> body;
};

// The snapshot a mutating call on a single PTE needs: the whole block if it
// may convert it (cont case), else just the target word.
Snapshot single_span(Fixture& f) {
  return f.is_cont() ? Snapshot(f, 0, f.cont()) : Snapshot(f, f.target(), 1);
}

std::vector<Call> calls() {
  return {
      {"ptep_get", false,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         f.hw_touch(1, true);  // some A/D to gather
         const PteSlot p = f.slot(f.target());
         run_reading(s, [&] { return contpte::ptep_get(f.env(), p); });
       }},
      {"ptep_get_lockless", false,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         f.hw_touch(1, true);
         const PteSlot p = f.slot(f.target());
         run_reading(s, [&] { return contpte::ptep_get_lockless(f.env(), p); });
       }},
      {"pte_batch_hint", false,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         const PteSlot p = f.slot(f.target());
         run_reading(s, [&] { return contpte::pte_batch_hint(f.env(), p, f.env().read(p)); });
       }},
      {"set_ptes(block)", true,
       [](benchmark::State& s, Fixture& f) {
         // Targets are empty (set_ptes' contract): restore = CONT_PTES zero stores.
         const Snapshot empty(f, 0, f.cont());
         run_mutating(s, empty, [&] {
           contpte::set_ptes(f.env(), f.va(0), f.slot(0), f.pte(0), f.cont());
           return 0;
         });
       }},
      {"set_pte_at(last)", true,
       [](benchmark::State& s, Fixture& f) {
         // All but the last slot mapped one by one; writing the last one
         // folds the block (cont case, folding variants) or just stores.
         for (unsigned k = 0; k + 1 < f.cont(); ++k)
           contpte::set_pte_at(f.env(), f.va(k), f.slot(k), f.pte(k));
         const Snapshot before(f, 0, f.cont());
         const unsigned last = f.cont() - 1;
         run_mutating(s, before, [&] {
           contpte::set_pte_at(f.env(), f.va(last), f.slot(last), f.pte(last));
           return 0;
         });
       }},
      {"pte_clear", true,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         const Snapshot snap = single_span(f);
         const unsigned t = f.target();
         run_mutating(s, snap, [&] {
           contpte::pte_clear(f.env(), f.va(t), f.slot(t));
           return 0;
         });
       }},
      {"ptep_get_and_clear", true,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         const Snapshot snap = single_span(f);
         const unsigned t = f.target();
         run_mutating(s, snap, [&] { return contpte::ptep_get_and_clear(f.env(), f.va(t), f.slot(t)); });
       }},
      {"clear_full_ptes(block)", true,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         const Snapshot snap(f, 0, f.cont());
         run_mutating(s, snap, [&] {
           contpte::clear_full_ptes(f.env(), f.va(0), f.slot(0), f.cont(), true);
           return 0;
         });
       }},
      {"get_and_clear_full_ptes(block)", true,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         const Snapshot snap(f, 0, f.cont());
         run_mutating(s, snap,
                      [&] { return contpte::get_and_clear_full_ptes(f.env(), f.va(0), f.slot(0), f.cont(), true); });
       }},
      {"ptep_test_and_clear_young", true,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         f.hw_touch(f.target(), false);  // something to age
         const Snapshot snap = single_span(f);
         const unsigned t = f.target();
         run_mutating(s, snap, [&] { return contpte::ptep_test_and_clear_young(f.env(), f.va(t), f.slot(t)); });
       }},
      {"ptep_clear_flush_young", true,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         f.hw_touch(f.target(), false);
         const Snapshot snap = single_span(f);
         const unsigned t = f.target();
         run_mutating(s, snap, [&] { return contpte::ptep_clear_flush_young(f.env(), f.va(t), f.slot(t)); });
       }},
      {"ptep_set_wrprotect", true,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         const Snapshot snap = single_span(f);
         const unsigned t = f.target();
         run_mutating(s, snap, [&] {
           contpte::ptep_set_wrprotect(f.env(), f.va(t), f.slot(t));
           return 0;
         });
       }},
      {"wrprotect_ptes(block)", true,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         const Snapshot snap(f, 0, f.cont());
         run_mutating(s, snap, [&] {
           contpte::wrprotect_ptes(f.env(), f.va(0), f.slot(0), f.cont());
           return 0;
         });
       }},
      {"clear_young_dirty_ptes", true,
       [](benchmark::State& s, Fixture& f) {
         f.map_block();
         for (unsigned k = 0; k < f.cont(); ++k) f.hw_touch(k, true);
         const Snapshot snap = single_span(f);
         const unsigned t = f.target();
         run_mutating(s, snap, [&] {
           contpte::clear_young_dirty_ptes(f.env(), f.va(t), f.slot(t), 1, CYDP_CLEAR_YOUNG | CYDP_CLEAR_DIRTY);
           return 0;
         });
       }},
      {"ptep_set_access_flags", true,
       [](benchmark::State& s, Fixture& f) {
         // A write fault on an old, clean, writable page.
         f.map_block();
         const Snapshot snap = single_span(f);
         const unsigned t = f.target();
         const Pte entry = pte_mkdirty(pte_mkyoung(f.pte(t)));
         run_mutating(s, snap,
                      [&] { return contpte::ptep_set_access_flags(f.env(), f.va(t), f.slot(t), entry, true); });
       }},
      {"modify_prot(block)", true,
       [](benchmark::State& s, Fixture& f) {
         // mprotect's per-PTE transaction over the whole block (unfold, then
         // refold on the last commit in the cont case).
         f.map_block();
         const Snapshot snap(f, 0, f.cont());
         run_mutating(s, snap, [&] {
           for (unsigned k = 0; k < f.cont(); ++k) {
             const Pte old = contpte::ptep_modify_prot_start(f.env(), f.va(k), f.slot(k));
             contpte::ptep_modify_prot_commit(f.env(), f.va(k), f.slot(k), old,
                                              pte_modify(old, prot::kPageReadonly));
           }
           return 0;
         });
       }},
  };
}

// ---- baselines: a plain array of PTEs, no engine -------------------------------
// one load; CONT_PTES loads (OR-ed, as a gather would); CONT_PTES single
// stores of consecutive PFNs (as __set_ptes does), with the same restore.
struct Baselines {
  static std::uint64_t one_load(Fixture& f) { return load_word(f.slot(f.target()).ptr()); }
  static std::uint64_t cont_loads(Fixture& f) {
    const Pte* p = f.slot(0).ptr();
    std::uint64_t acc = 0;
    for (unsigned k = 0; k < f.cont(); ++k) acc |= load_word(p + k);
    return acc;
  }
  static int cont_stores(Fixture& f) {
    Pte* p = f.slot(0).ptr();
    const std::uint64_t v = f.pte(0).val;
    const unsigned shift = f.env().geometry().page_shift;
    for (unsigned k = 0; k < f.cont(); ++k) store_word(p + k, v + (std::uint64_t{k} << shift));
    return 0;
  }
};

// Engine and baseline, interleaved kReps at a time, in one benchmark: the
// `ratio` counter is engine / baseline (per op, restore subtracted for stores).
enum class RatioKind { GetPlainVsOneLoad, GetContVsContLoads, SetPtesVsContStores };

void ratio_bench(benchmark::State& state, Granule g, RatioKind kind) {
  Fixture f(g, Variant::Upstream, kind != RatioKind::GetPlainVsOneLoad);
  double eng = 0, base = 0;
  auto secs = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  if (kind == RatioKind::SetPtesVsContStores) {
    const Snapshot empty(f, 0, f.cont());
    for (auto _ : state) {
      const auto t0 = Clock::now();
      for (unsigned i = 0; i < kReps; ++i) {
        contpte::set_ptes(f.env(), f.va(0), f.slot(0), f.pte(0), f.cont());
        empty.restore();
      }
      benchmark::ClobberMemory();
      const auto t1 = Clock::now();
      for (unsigned i = 0; i < kReps; ++i) {
        benchmark::DoNotOptimize(Baselines::cont_stores(f));
        empty.restore();
      }
      benchmark::ClobberMemory();
      const auto t2 = Clock::now();
      for (unsigned i = 0; i < kReps; ++i) {
        empty.restore();
        benchmark::ClobberMemory();
      }
      const auto t3 = Clock::now();
      const double r = secs(t2, t3);
      eng += secs(t0, t1) - r;
      base += secs(t1, t2) - r;
    }
  } else {
    f.map_block();
    f.hw_touch(1, true);
    const PteSlot p = f.slot(f.target());
    for (auto _ : state) {
      const auto t0 = Clock::now();
      for (unsigned i = 0; i < kReps; ++i) benchmark::DoNotOptimize(contpte::ptep_get(f.env(), p));
      const auto t1 = Clock::now();
      if (kind == RatioKind::GetPlainVsOneLoad) {
        for (unsigned i = 0; i < kReps; ++i) benchmark::DoNotOptimize(Baselines::one_load(f));
      } else {
        for (unsigned i = 0; i < kReps; ++i) benchmark::DoNotOptimize(Baselines::cont_loads(f));
      }
      const auto t2 = Clock::now();
      eng += secs(t0, t1);
      base += secs(t1, t2);
    }
  }
  const double n = static_cast<double>(state.iterations()) * kReps;
  state.counters["engine_ns"] = std::max(eng, 0.0) / n * 1e9;
  state.counters["baseline_ns"] = std::max(base, 0.0) / n * 1e9;
  state.counters["ratio"] = base > 0 ? std::max(eng, 0.0) / base : 0;
  switch (kind) {
    case RatioKind::GetPlainVsOneLoad: state.counters["target_max"] = 1.0; break;  // "about 1x"
    case RatioKind::GetContVsContLoads: state.counters["target_max"] = 2.0; break;
    case RatioKind::SetPtesVsContStores: state.counters["target_max"] = 1.5; break;
  }
}

void baseline_bench(benchmark::State& state, Granule g, int which) {
  Fixture f(g, Variant::Off, true);
  f.map_block();
  if (which == 0) {
    run_reading(state, [&] { return Baselines::one_load(f); });
  } else if (which == 1) {
    run_reading(state, [&] { return Baselines::cont_loads(f); });
  } else {
    const Snapshot empty(f, 0, f.cont());
    for (unsigned k = 0; k < f.cont(); ++k) store_word(f.slot(k).ptr(), 0);
    run_mutating(state, empty, [&] { return Baselines::cont_stores(f); });
  }
}

// Registration from tables (names from data, as STYLE.md asks): every call x
// granule x variant x {cont, plain}, then the baselines and the ratios.
bool register_all() {
  const Granule granules[] = {Granule::k4K, Granule::k16K, Granule::k64K};
  for (const Call& c : calls()) {
    for (Granule g : granules) {
      for (const auto& vi : kVariants) {
        for (bool cont : {true, false}) {
          std::string name = std::string(c.name) + "/" + std::string(geometry(g).name) + "/" +
                             std::string(vi.name) + (cont ? "/cont" : "/plain");
          benchmark::RegisterBenchmark(name.c_str(), [c, g, v = vi.id, cont](benchmark::State& s) {
            Fixture f(g, v, cont);
            c.body(s, f);
          });
        }
      }
    }
  }
  for (Granule g : granules) {
    const std::string gn(geometry(g).name);
    benchmark::RegisterBenchmark(("baseline/1_load/" + gn).c_str(), baseline_bench, g, 0);
    benchmark::RegisterBenchmark(("baseline/cont_ptes_loads/" + gn).c_str(), baseline_bench, g, 1);
    benchmark::RegisterBenchmark(("baseline/cont_ptes_stores/" + gn).c_str(), baseline_bench, g, 2);
    benchmark::RegisterBenchmark(("ratio/ptep_get_plain_vs_1_load/" + gn).c_str(), ratio_bench, g,
                                 RatioKind::GetPlainVsOneLoad);
    benchmark::RegisterBenchmark(("ratio/ptep_get_cont_vs_cont_ptes_loads/" + gn).c_str(), ratio_bench,
                                 g, RatioKind::GetContVsContLoads);
    benchmark::RegisterBenchmark(("ratio/set_ptes_block_vs_cont_ptes_stores/" + gn).c_str(),
                                 ratio_bench, g, RatioKind::SetPtesVsContStores);
  }
  return true;
}

// Google Benchmark's own main (benchmark_main) runs what is registered here.
[[maybe_unused]] const bool kRegistered = register_all();

}  // namespace
}  // namespace contpte

// Targets (docs/design.md "Benchmarks report ratios against a baseline measured in
// the same run"; STYLE.md: a non-contiguous ptep_get should cost about one raw
// read):
//   ratio/ptep_get_plain_vs_1_load            ≈ 1x
//   ratio/ptep_get_cont_vs_cont_ptes_loads    ≤ 2x
//   ratio/set_ptes_block_vs_cont_ptes_stores  ≤ 1.5x
