// hw/tlb.h — translation lookaside buffers with entries of mixed sizes.
//
// Owns: one TLB structure (fully or set associative), its replacement policy
// and how it holds a contiguous block (one entry, or one entry per page),
// plus the description of a whole core's TLB hierarchy (TlbConfig) and the
// preset table of real cores, each number with its source.
// Must not know: page tables, the walker, the checker, the engine.
//
// An entry caches one leaf descriptor for a naturally aligned VA range of
// 2^size_shift bytes: a page, a contiguous block of pages (PTE_CONT at level
// 3), a level-2 block, or a contiguous block of those. Lookups are by
// (ASID, VA); an entry matches when the VA falls in its range.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "arch/pte.h"

namespace contpte {

struct TlbEntry {
  std::uint16_t asid = 0;
  std::uint64_t va = 0;         // first VA covered, aligned to 1 << size_shift
  std::uint8_t size_shift = 0;  // log2 of the bytes covered
  std::uint8_t level = 3;       // level of the leaf descriptor (2 or 3)
  bool cont = false;            // built from a descriptor with PTE_CONT
  std::uint64_t pa = 0;         // output address of `va`
  Pte desc{};                   // the leaf descriptor as it was when cached
                                // (attributes, AF, DBM/RDONLY at fill time)
  std::uint8_t page_shift = 0;  // log2 of the granule's page size (12/14/16);
                                // 0: unknown, and then a SplitPages structure
                                // stores `e` as given (the caller split it)
  std::uint64_t size() const { return std::uint64_t{1} << size_shift; }
  bool covers(std::uint16_t a, std::uint64_t v) const {
    return a == asid && v - va < size();
  }
  bool overlaps(const TlbEntry& o) const {
    return asid == o.asid && va < o.va + o.size() && o.va < va + size();
  }
};

// How a structure holds an entry built from a contiguous block.
enum class ContHolding : std::uint8_t {
  OneEntry,    // the whole block in one entry (what contpte is for)
  SplitPages,  // one entry per page: the core ignores the hint here
};

enum class Replacement : std::uint8_t { Lru, Fifo, Random };

// The named, swappable components (names as in a core's JSON file).
struct ReplacementInfo {
  std::string_view name;
  Replacement id;
  std::string_view what;
};
struct ContHoldingInfo {
  std::string_view name;
  ContHolding id;
  std::string_view what;
};
const std::vector<ReplacementInfo>& replacement_policies();
const std::vector<ContHoldingInfo>& cont_holdings();
std::string_view replacement_name(Replacement r);
std::string_view cont_holding_name(ContHolding c);

struct TlbStructureConfig {
  std::string name;          // "L1D", "L1I", "L2"
  unsigned entries = 48;
  unsigned ways = 48;        // == entries: fully associative
  Replacement replacement = Replacement::Lru;
  ContHolding cont = ContHolding::OneEntry;
  unsigned hit_cycles = 0;   // extra latency of a hit at this level
};

// What the time estimate (docs/estimate.md) charges for work that is not
// translation: the core's clock and base CPI for user instructions, and the
// kernel's costs for faults, PTE writes, zeroing, copying, TLB maintenance
// and reclaim. Each has a source line in TlbConfig::sources ("costs.NAME").
struct CoreCosts {
  double clock_ghz = 3.0;          // core clock: cycles per nanosecond
  double base_cpi = 1.0;           // cycles per user instruction, translation apart
  double fault_ns = 2700;          // one page fault: entry, exit, handle_mm_fault, its folio
  double pte_ns = 200;             // one PTE written (set, cleared or changed)
  double zero_bytes_per_ns = 16;   // clear_page bandwidth
  double copy_bytes_per_ns = 6.7;  // copy_user_highpage bandwidth
  double tlbi_ns = 100;            // one TLBI instruction with its DSB
  double reclaim_page_ns = 160;    // one page aged (and deactivated) by reclaim
};

// A core's TLB hierarchy: L1 data, L1 instruction, unified L2, walk cache.
struct TlbConfig {
  std::string name;          // preset name, or the JSON file's "name"
  std::string description;
  TlbStructureConfig l1d, l1i, l2;
  unsigned walk_cache_entries = 0;  // non-leaf descriptors cached (0: none)
  unsigned walk_access_cycles = 0;  // cost of one descriptor read by the walker
  // The CPU features the kernel asks about (cpus_have_final_cap,
  // system_supports_*): properties of the core, each cited in the presets.
  // The machine turns them, with the scenario's overrides (`hafdbs on|off`;
  // `contpte bbml2` turns bbml2_noabort on), into the engine's Features.
  bool tlbi_range = false;          // FEAT_TLBIRANGE: range TLBI instructions
  bool hafdbs = true;               // FEAT_HAFDBS: hardware updates AF and dirty
  bool bbml2_noabort = false;       // FEAT_BBML2_NOABORT: block-size changes without aborts
  bool hafdbs_random_pte = false;   // HW sets AF/dirty in a random PTE of a block
  CoreCosts costs;                  // the time estimate's constants
  // Where each number comes from: "field: source" lines, "unknown" allowed.
  std::vector<std::pair<std::string, std::string>> sources;
};

// One TLB structure.
class Tlb {
 public:
  explicit Tlb(const TlbStructureConfig& cfg, std::uint64_t seed = 1);
  ~Tlb();
  Tlb(Tlb&&) noexcept;
  Tlb& operator=(Tlb&&) noexcept;

  const TlbStructureConfig& config() const;

  // The entry covering (asid, va), marking it used; nullptr on a miss.
  // The pointer is valid until the next insert or invalidation.
  // Inline first check: the entry that hit or was filled last (a loop
  // touching one page or block); it is already the most recent of its set,
  // so a hit there changes nothing.
  const TlbEntry* lookup(std::uint16_t asid, std::uint64_t va) {
    if (mru_ && mru_->covers(asid, va)) [[likely]]
      return mru_;
    return lookup_slow(asid, va);
  }
  // The same without marking it used (for checks and tests).
  const TlbEntry* peek(std::uint16_t asid, std::uint64_t va) const;
  // Insert `e` (for a split structure, the page of `va` out of the block).
  // Returns the entry it evicted, if any. An entry with the same ASID, VA
  // and size is replaced in place (a refill after a permission miss);
  // entries that merely overlap `e` stay: the checker reports them.
  // Preconditions: `e` covers `va`; 6 <= e.size_shift < 64.
  std::optional<TlbEntry> insert(const TlbEntry& e, std::uint64_t va);
  // The same without returning the evicted entry: what a fill after a walk
  // needs, and cheaper.
  void fill(const TlbEntry& e, std::uint64_t va);

  // Invalidation: every entry that covers any VA of [start, start+len) for
  // `asid`; by ASID; everything. Return the number of entries dropped.
  unsigned invalidate_range(std::uint16_t asid, std::uint64_t start, std::uint64_t len);
  unsigned invalidate_asid(std::uint16_t asid);
  unsigned invalidate_all();

  // Every live entry (for the conformance checker).
  template <class Fn>
  void for_each(Fn&& fn) const {
    for_each_impl([&](const TlbEntry& e) { fn(e); });
  }
  std::size_t size() const;
  // Every live entry of `asid` that overlaps [start, start+len), without
  // scanning the whole structure (for the checker's conflict rule).
  template <class Fn>
  void for_each_overlapping(std::uint16_t asid, std::uint64_t start, std::uint64_t len,
                            Fn&& fn) const {
    for_each_overlapping_impl(asid, start, len, [&](const TlbEntry& e) { fn(e); });
  }
  struct Impl;

 private:
  void for_each_overlapping_impl(std::uint16_t asid, std::uint64_t start, std::uint64_t len,
                                 const std::function<void(const TlbEntry&)>& fn) const;
  const TlbEntry* lookup_slow(std::uint16_t asid, std::uint64_t va);
  [[gnu::noinline]] void fill_general(const TlbEntry& e, std::uint64_t va);
  // The MMU's fused miss path (Mmu::miss_fast) inlines the lookup of its
  // L2 and the fills of both levels: these two are defined in
  // hw/tlb_fill.h, which only tlb.cpp and mmu.cpp include.
  friend class Mmu;
  inline const TlbEntry* lookup_after_mru(std::uint16_t asid, std::uint64_t va);
  inline bool filtered_out(std::uint16_t asid, std::uint64_t va);
  [[gnu::always_inline]] inline void fill_absent_l1(const TlbEntry& e, std::uint64_t va);
  [[gnu::always_inline]] inline void fill_absent_l2(const TlbEntry& e, std::uint64_t va);
  [[gnu::noinline]] void fill_absent_other(const TlbEntry& e, std::uint64_t va);
  void for_each_impl(const std::function<void(const TlbEntry&)>& fn) const;
  std::unique_ptr<Impl> impl_;
  const TlbEntry* mru_ = nullptr;  // in impl_'s storage; null after any invalidation
};

// ---- presets ----------------------------------------------------------------
struct TlbPreset {
  std::string_view name;
  std::string_view summary;
  TlbConfig (*make)();
};
const std::vector<TlbPreset>& tlb_presets();
// The `default` preset's name.
std::string_view default_tlb_preset();
// Whether `tlb NAME` names a JSON file rather than a preset: it contains a
// '/' or ends in ".json" (docs/tlb-json.md).
bool tlb_names_file(std::string_view name_or_path);
// A preset by name, or a JSON file describing a core (see docs/tlb-json.md).
// Throws std::runtime_error with a message naming the file/field on error.
TlbConfig resolve_tlb_config(std::string_view name_or_path);
// The same for the text of a JSON file; `file` names it in messages.
TlbConfig parse_tlb_config_json(std::string_view text, std::string_view file);
// The listing `contpte presets` prints: each preset's geometry and sources.
std::string format_presets();

}  // namespace contpte
