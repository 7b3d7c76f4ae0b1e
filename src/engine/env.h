// engine/env.h — the one seam between the contpte engine and the world.
//
// Owns: the Env concept (PTE memory operations, TLB invalidation, folio
// lookup, features), the variant table, the engine's counters.
// Must not know: how memory and TLBs are simulated, scheduled or traced.
//
// Each PTE or TLB access the engine makes is one Env call, and each call is
// one step the explorer may interleave with hardware updaters and lockless
// readers. The same engine code runs in the simulator, the explorer and the
// benchmarks; only the Env differs.
#pragma once

#include <array>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string_view>

#include "arch/pte.h"

namespace contpte {

// Address of one PTE word inside a page-table page. Page-table pages are
// allocated aligned to their size, so the block a slot belongs to is found
// by aligning the pointer down, as contpte_align_down does in Linux.
class PteSlot {
 public:
  constexpr PteSlot() = default;
  constexpr explicit PteSlot(Pte* p) : p_(p) {}
  constexpr Pte* ptr() const { return p_; }
  constexpr PteSlot operator+(std::ptrdiff_t n) const { return PteSlot{p_ + n}; }
  constexpr PteSlot& operator++() { ++p_; return *this; }
  constexpr std::ptrdiff_t operator-(PteSlot o) const { return p_ - o.p_; }
  friend constexpr bool operator==(PteSlot, PteSlot) = default;
  // Index of this slot inside its naturally aligned group of `n` slots.
  std::size_t index_in(unsigned n) const {
    return (reinterpret_cast<std::uintptr_t>(p_) / sizeof(Pte)) & (n - 1);
  }
  PteSlot align_down(unsigned n) const { return PteSlot{p_ - index_in(n)}; }

 private:
  Pte* p_ = nullptr;
};

// What page_folio() tells the engine about the folio holding a PFN.
struct FolioInfo {
  bool valid = false;       // false: no folio (not allocated / special)
  Pfn head{};               // first PFN of the folio
  std::uint64_t nr_pages = 0;
};

// ---- variants (docs/design.md "Semantics to respect") -------------------------
enum class Variant : std::uint8_t { Upstream, Nofold, Off, Naive, Bbml2 };

struct VariantInfo {
  std::string_view name;
  Variant id;
  std::string_view what;
};
inline constexpr std::array<VariantInfo, 5> kVariants{{
    {"upstream", Variant::Upstream, "Linux 6.12.117: CONT in set_ptes, fold on a block's last PTE"},
    {"nofold", Variant::Nofold, "upstream without the fold a single-PTE write may trigger"},
    {"off", Variant::Off, "never set PTE_CONT (CONFIG_ARM64_CONTPTE=n)"},
    {"naive", Variant::Naive, "convert reads and rewrites without clearing first (racy demo)"},
    {"bbml2", Variant::Bbml2, "Linux 6.17: no TLBI inside convert on a FEAT_BBML2_NOABORT core (turned on for the run)"},
}};
constexpr std::string_view variant_name(Variant v) {
  return kVariants[static_cast<std::size_t>(v)].name;
}
constexpr std::optional<Variant> variant_from_name(std::string_view s) {
  for (const auto& v : kVariants)
    if (v.name == s) return v.id;
  return std::nullopt;
}

struct ExternalEngine;  // engine/external.h

// What the engine may ask about the machine it runs on: the kernel's
// behaviour (`variant`) and the CPU's features (cpus_have_final_cap). The
// CPU features are properties of the core (TlbConfig in hw/tlb.h, cited in
// the presets); the machine copies them here once per run, with the
// scenario's overrides applied (`hafdbs on|off`; `contpte bbml2` turns
// bbml2_noabort on).
struct Features {
  Variant variant = Variant::Upstream;
  // FEAT_BBML2_NOABORT: the CPU tolerates TLB entries of different sizes
  // for one address, so convert may skip its invalidation (Linux 6.17).
  bool bbml2_noabort = false;
  bool hafdbs = true;  // FEAT_HAFDBS: hardware updates AF and dirty
  // The engine seam: non-null, every arch call of engine/pgtable.h runs the
  // code of a Linux tree (src/kernel) instead of this engine; `variant` is
  // then Upstream or Off, whichever configuration the tree was built in.
  const ExternalEngine* external = nullptr;
  // Test hook, no scenario or flag reaches it: contpte_ptep_set_access_flags'
  // no-op check as it was before "arm64: contpte: fix set_access_flags()
  // no-op check for SMMU/ATS faults" — the gathered ptep_get compared with
  // the new entry — so that tests show the fault_loop a device walker then
  // hits (tests/explore/explorer_test.cpp, ExploreDev).
  bool test_gathered_access_flags_check = false;
};

// Counters the engine keeps (JSON `stats` keys).
struct EngineCounters {
  std::uint64_t folds = 0;       // contpte_convert calls that set CONT
  std::uint64_t unfolds = 0;     // contpte_convert calls that clear CONT
  std::uint64_t pte_stores = 0;  // stores, exchanges and compare-exchanges that wrote
  std::uint64_t tlbi = 0;        // flush requests: one per page, range or mm call
  std::uint64_t tlbi_pages = 0;  // pages those requests covered (mm flush: 0)

  // Totals over several Envs (processes, explorer branches).
  EngineCounters& operator+=(const EngineCounters& o) {
    folds += o.folds, unfolds += o.unfolds, pte_stores += o.pte_stores;
    tlbi += o.tlbi, tlbi_pages += o.tlbi_pages;
    return *this;
  }
};

// Flush flavours, after Linux's __flush_tlb_range / flush_tlb_page. `sync`
// false is the *_nosync form whose trailing DSB is elided (aging paths).
struct TlbFlush {
  VirtAddr start;
  std::uint64_t nr_pages;
  bool sync;
};

// Where the engine is, for the explorer's counterexamples: an Env with
// enter_function / leave_function is told the Linux function each step
// belongs to (contpte_convert, __set_ptes, ...). The scope costs nothing on
// an Env without them (the simulator's, the benchmarks'): the primary
// template below is empty and its constructor does nothing.
struct EngineWhere {
  std::string_view function;  // innermost engine function
  std::string_view within;    // the one that called it, if any
};

template <class E>
concept TracksEngineFunctions = requires(E& e, std::string_view fn, EngineWhere w) {
  { e.enter_function(fn) } -> std::same_as<EngineWhere>;
  e.leave_function(w);
};

template <class E>
class EngineScope {
 public:
  constexpr EngineScope(E&, std::string_view) {}
};

template <class E>
  requires TracksEngineFunctions<E>
class EngineScope<E> {
 public:
  EngineScope(E& env, std::string_view fn) : env_(env), prev_(env.enter_function(fn)) {}
  ~EngineScope() { env_.leave_function(prev_); }
  EngineScope(const EngineScope&) = delete;
  EngineScope& operator=(const EngineScope&) = delete;

 private:
  E& env_;
  EngineWhere prev_;
};

template <class E>
concept Env = requires(E& e, const E& ce, PteSlot s, Pte v, Pte old, VirtAddr a, Pfn pfn,
                       TlbFlush f) {
  { e.read(s) } -> std::same_as<Pte>;             // READ_ONCE (__ptep_get)
  { e.write(s, v) } -> std::same_as<void>;        // WRITE_ONCE (__set_pte)
  { e.xchg(s, v) } -> std::same_as<Pte>;          // xchg_relaxed (get-and-clear)
  { e.cmpxchg(s, old, v) } -> std::same_as<Pte>;  // cmpxchg_relaxed: returns the old word
  { e.flush_tlb_range(f) } -> std::same_as<void>; // __flush_tlb_range[_nosync], last level
  { e.flush_tlb_page(a, true) } -> std::same_as<void>;  // flush_tlb_page[_nosync]
  { e.flush_tlb_mm() } -> std::same_as<void>;     // flush_tlb_mm
  { ce.folio_of(pfn) } -> std::same_as<FolioInfo>;  // page_folio(pfn_to_page(pfn))
  { ce.features() } -> std::same_as<const Features&>;
  { ce.geometry() } -> std::same_as<const Geometry&>;
  { ce.mm_is_user() } -> std::same_as<bool>;      // never CONT on kernel mappings
  { e.counters() } -> std::same_as<EngineCounters&>;
};

}  // namespace contpte
