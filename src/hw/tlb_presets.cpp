// hw/tlb_presets.cpp — the TLB hierarchies of real cores, a core described
// in a JSON file, and the listing `contpte presets` prints.
//
// Every number in the table is written beside its source. A source is a
// vendor document (TRM section), an inference from one (said so), a
// third-party measurement (said so), or "unknown" followed by the value we
// assume and why. Where the document could not be re-read while writing
// this table, the source says so. Nothing here is invented: where no public
// source gives a figure, the line starts with "unknown".
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "hw/tlb.h"
#include "arch/names.h"

namespace contpte {

namespace {

// ---- the preset table ---------------------------------------------------------------------

template <class T>
struct Cited {
  T value;
  std::string_view source;
};

struct StructureRow {
  Cited<unsigned> entries;
  Cited<unsigned> ways;          // == entries: fully associative
  Cited<Replacement> replacement;
  Cited<ContHolding> cont;
  Cited<unsigned> hit_cycles;    // extra latency of a hit at this level
};

// The time estimate's constants (CoreCosts), each with its source.
struct CostRow {
  Cited<double> clock_ghz, base_cpi, fault_ns, pte_ns, zero_bytes_per_ns, copy_bytes_per_ns, tlbi_ns,
      reclaim_page_ns;
};

struct PresetRow {
  std::string_view name;
  std::string_view summary;      // one line for the listing
  std::string_view description;
  StructureRow l1d, l1i, l2;
  Cited<unsigned> walk_cache_entries;
  Cited<unsigned> walk_access_cycles;
  Cited<bool> tlbi_range;        // FEAT_TLBIRANGE
  Cited<bool> hafdbs;            // FEAT_HAFDBS
  Cited<bool> bbml2_noabort;     // FEAT_BBML2_NOABORT
  Cited<bool> hafdbs_random_pte; // a stress switch, not a property of silicon
  CostRow costs;
};

// Sources, quoted once and reused.
constexpr std::string_view kA76L1d =
    "Cortex-A76 Core TRM (Arm 100798, r3p0) A5.2.2 'Data L1 TLB': 48-entry fully associative";
constexpr std::string_view kA76L1i =
    "Cortex-A76 Core TRM (Arm 100798, r3p0) A5.2.1 'Instruction L1 TLB': 48-entry fully "
    "associative";
constexpr std::string_view kA76L2 =
    "Cortex-A76 Core TRM (Arm 100798, r3p0) A5.2.3 Table A5-3: 5-way set associative, "
    "1280-entry";
constexpr std::string_view kLruAssumed =
    "unknown: no public document names the replacement policy; LRU assumed";
constexpr std::string_view kHafdbsSwitch =
    "not a property of a core: a stress switch (the Arm ARM lets hardware update any "
    "descriptor of a contiguous block); off, hardware updates the descriptor it walked";
constexpr std::string_view kV1Trm =
    "Neoverse V1 TRM (Arm 101427), MMU chapter 'TLB organization' (figure as recalled from the "
    "TRM; its text was not available to re-check here)";
constexpr std::string_view kQemuMmfr1 =
    "ID_AA64MMFR1_EL1 = 0x10212122 in QEMU's model of this core (target/arm/tcg/cpu64.c, "
    "values taken from the TRM): HAFDBS field [3:0] = 2, hardware updates of both the access "
    "flag and the dirty state";
constexpr std::string_view kBbml2AllowList =
    "Linux 6.17 turns FEAT_BBML2_NOABORT on only for the CPUs on its MIDR allow-list "
    "(arch/arm64/kernel/cpufeature.c, has_bbml2_noabort; BBML2 alone does not promise "
    "no-abort), which does not name this core";
constexpr std::string_view kM1Measured =
    "third-party microbenchmark figure commonly quoted for the M1/A14 Firestorm core; not "
    "Apple documentation, and not re-checked here";

// The kernel's costs, measured on the project's build machine by
// bench/kernel_costs (docs/estimate.md: how each constant is derived). No
// arm64 machine was at hand: these are an x86-64 host's figures, the same
// for every preset; a JSON core can give its own.
constexpr std::string_view kBaseCpi =
    "unknown: assumed 1.0 (one instruction per cycle). It sets only the user-work part, the "
    "same in every configuration, so it scales the relative changes, not their signs or order";
constexpr std::string_view kTlbi =
    "unknown: no public figure for a broadcast TLBI with its DSB ISH; assumed 100 ns (300 cycles "
    "at 3 GHz), a DSB waiting for every core of the inner-shareable domain to drop the entry";

constexpr CostRow host_costs(double clock, std::string_view clock_source) {
  return CostRow{
      {clock, clock_source},
      {1.0, kBaseCpi},
      // 3117 ns per 4K write fault (BM_AnonWriteFault) less 4096 bytes
      // zeroed at 16.5 bytes/ns (248 ns) and one PTE write (196 ns).
      {2673, "derived from bench/kernel_costs: BM_AnonWriteFault 3117 ns per 4K write fault, less 4096 "
             "bytes at zero_bytes_per_ns (248 ns) and one PTE (pte_ns, 196 ns); measured on the build "
             "machine (x86-64 VM, Linux 6.18), not on this core"},
      {196, "BM_MprotectPerPte 196 ns per PTE changed by mprotect (the per-call flush shared by 16384 "
            "PTEs); measured on the build machine (x86-64 VM, Linux 6.18), not on this core"},
      {16.5, "BM_ZeroBandwidth: memset of 64 MiB, 16.5 bytes/ns; measured on the build machine "
             "(x86-64 VM), not on this core"},
      {6.7, "BM_CopyBandwidth: memcpy of 64 MiB, 6.7 bytes/ns; measured on the build machine "
            "(x86-64 VM), not on this core"},
      {100, kTlbi},
      {163, "BM_ColdPerPage: MADV_COLD over young 4K pages, 163 ns per page (test-and-clear young "
            "and deactivation); measured on the build machine (x86-64 VM, Linux 6.18), not on this "
            "core"},
  };
}

// clang-format off
// Columns of a structure: entries, ways (== entries: fully associative), replacement,
// contiguous-block holding, hit cycles — each {value, source}.
constexpr PresetRow kNeoverseN1{
    "neoverse-n1",
    "Arm Neoverse N1 / Cortex-A76: Armv8.2-A, 4K pages, no TLB range instructions",
    "Arm Neoverse N1: 48-entry L1 TLBs, 1280-entry 5-way L2 TLB. N1 is built on the "
    "Cortex-A76 core and has its MMU; the figures are cited from the Cortex-A76 TRM",
    /* l1d */ {{48, kA76L1d}, {48, kA76L1d},
               {Replacement::Lru, kLruAssumed},
               {ContHolding::OneEntry,
                "inferred: A76 TRM A5.2.2 lists 64KB data L1 TLB entries, a size only the "
                "contiguous bit makes with 4K pages (16K/64K pages: contiguous = 2MB, also "
                "listed); A5.2: the L2 TLB breaks down sizes an L1 TLB cannot hold"},
               {1, "Cortex-A76 TRM A5.2.2: a data L1 TLB hit 'provides a single CLK cycle "
                   "access to the translation'"}},
    /* l1i */ {{48, kA76L1i}, {48, kA76L1i},
               {Replacement::Lru, kLruAssumed},
               {ContHolding::OneEntry,
                "inferred: A76 TRM A5.2.1 lists 64KB and 2MB instruction L1 TLB entries "
                "(the contiguous sizes of the 4K and 16K/64K granules)"},
               {1, "Cortex-A76 TRM A5.2.1: an instruction L1 TLB hit 'provides a single CLK "
                   "cycle access'"}},
    /* l2 */  {{1280, kA76L2}, {5, kA76L2},
               {Replacement::Lru, kLruAssumed},
               {ContHolding::OneEntry,
                "inferred: A76 TRM Table A5-3 lists 64KB and 32MB L2 TLB mappings, the "
                "contiguous PTE and PMD sizes of the 4K granule"},
               {3, "Cortex-A76 TRM A5.2.3: 'Access to the L2 TLB usually takes three cycles' "
                   "(longer when another page size is in use: not modelled)"}},
    {64, "unknown: A76 TRM A5.2.3 says the L2 TLB also stores intermediate PAs obtained "
         "during a walk, without a count; assumed 64, the size of the Cortex-A55's walk "
         "cache (its TRM's MMU table, as reproduced in Intel's Agilex 5 HPS TRM: 64 "
         "entries, 4-way)"},
    {9, "unknown: no Arm document gives the cost of one descriptor read; assumed 9, the "
        "fastest L2-cache load-to-use latency of the Cortex-A76 (WikiChip, Cortex-A76), "
        "i.e. descriptors found in the L2 cache"},
    {false, "Neoverse N1 is Armv8.2-A and FEAT_TLBIRANGE is an Armv8.4 feature; QEMU's "
            "neoverse-n1 model gives ID_AA64ISAR0_EL1 = 0x0000100010211120 (TLB field "
            "[59:56] = 0)"},
    {true, kQemuMmfr1},
    {false, kBbml2AllowList},
    {false, kHafdbsSwitch},
    host_costs(3.0, "Ampere Altra Q80-30, the machine of the published mTHP/contpte kernel-build "
                    "measurements, runs its Neoverse N1 cores at 3.0 GHz (Ampere Altra product brief)"),
};

constexpr PresetRow kNeoverseV1{
    "neoverse-v1",
    "Arm Neoverse V1 (e.g. AWS Graviton3): Armv8.4-A, 4K pages, TLB range instructions",
    "Arm Neoverse V1: 48-entry L1 TLBs, 2048-entry 8-way L2 TLB",
    /* l1d */ {{48, kV1Trm}, {48, kV1Trm},
               {Replacement::Lru, kLruAssumed},
               {ContHolding::OneEntry,
                "unknown: assumed one entry, as on the Cortex-A76/N1 MMU V1 descends from"},
               {1, "unknown: assumed as on Neoverse N1 (single cycle, A76 TRM A5.2.2)"}},
    /* l1i */ {{48, kV1Trm}, {48, kV1Trm},
               {Replacement::Lru, kLruAssumed},
               {ContHolding::OneEntry,
                "unknown: assumed one entry, as on the Cortex-A76/N1 MMU V1 descends from"},
               {1, "unknown: assumed as on Neoverse N1 (single cycle, A76 TRM A5.2.1)"}},
    /* l2 */  {{2048, kV1Trm}, {8, kV1Trm},
               {Replacement::Lru, kLruAssumed},
               {ContHolding::OneEntry,
                "unknown: assumed one entry, as on the Cortex-A76/N1 MMU V1 descends from"},
               {3, "unknown: assumed as on Neoverse N1 (A76 TRM A5.2.3: usually three "
                   "cycles)"}},
    {64, "unknown: assumed 64, as for neoverse-n1"},
    {9, "unknown: assumed 9, as for neoverse-n1, so that presets differ only in what is "
        "known"},
    {true, "Neoverse V1 implements Armv8.4-A, from which FEAT_TLBIRANGE is mandatory (Arm "
           "ARM); caveat: QEMU's neoverse-v1 model, which copies ID_AA64ISAR0_EL1 = "
           "0x1011111110212120 from the TRM, reads TLB = 0 there"},
    {true, kQemuMmfr1},
    {false, kBbml2AllowList},
    {false, kHafdbsSwitch},
    host_costs(2.6, "AWS Graviton3 (Neoverse V1) runs at 2.6 GHz (AWS EC2 C7g instance documentation)"),
};

constexpr PresetRow kAppleM1{
    "apple-m1",
    "Apple M1 Firestorm (P-core): 16K pages; public figures are third-party measurements",
    "Apple M1 Firestorm performance core, run with 16K pages (as Linux on Apple silicon "
    "does): 160-entry L1 data TLB, 3072-entry L2 TLB (third-party measurements)",
    /* l1d */ {{160, kM1Measured},
               {160, "unknown: assumed fully associative"},
               {Replacement::Lru, kLruAssumed},
               {ContHolding::OneEntry,
                "unknown: no public figure says whether Firestorm honours the contiguous "
                "hint; assumed one entry (a 2MB block with 16K pages)"},
               {1, "unknown: assumed single cycle, as on Arm's cores"}},
    /* l1i */ {{160, "unknown: assumed equal to the L1 data TLB"},
               {160, "unknown: assumed fully associative"},
               {Replacement::Lru, kLruAssumed},
               {ContHolding::OneEntry, "unknown: assumed one entry, as for l1d"},
               {1, "unknown: assumed single cycle, as on Arm's cores"}},
    /* l2 */  {{3072, kM1Measured},
               {12, "unknown: assumed 12-way (256 sets)"},
               {Replacement::Lru, kLruAssumed},
               {ContHolding::OneEntry, "unknown: assumed one entry, as for l1d"},
               {3, "unknown: assumed 3 cycles, as for neoverse-n1"}},
    {64, "unknown: assumed 64, as for neoverse-n1"},
    {9, "unknown: assumed 9, as for neoverse-n1, so that presets differ only in what is "
        "known"},
    {true, "unknown: ID_AA64ISAR0_EL1 not checked; assumed yes, since M1 is described as "
           "Armv8.4-A or later and FEAT_TLBIRANGE is mandatory from Armv8.4"},
    {true, "unknown: no document read here gives Firestorm's ID_AA64MMFR1_EL1.HAFDBS; assumed "
           "yes (hardware A/D), as on the Arm cores"},
    {false, kBbml2AllowList},
    {false, kHafdbsSwitch},
    host_costs(3.2, "Apple's published peak clock of the M1 performance cores, 3.2 GHz"),
};
// clang-format on

constexpr std::string_view kDefaultPreset = "neoverse-n1";

// Field names, as in the JSON format and the `sources` lines.
constexpr std::array<std::string_view, 5> kStructureFields{"entries", "ways", "replacement",
                                                           "cont", "hit_cycles"};
constexpr std::array<std::string_view, 14> kTopFields{
    "name", "description", "base", "l1d", "l1i", "l2", "walk_cache_entries",
    "walk_access_cycles", "tlbi_range", "hafdbs", "bbml2_noabort", "hafdbs_random_pte",
    "costs", "sources"};
constexpr std::array<std::string_view, 8> kCostFields{
    "clock_ghz", "base_cpi", "fault_ns", "pte_ns", "zero_bytes_per_ns", "copy_bytes_per_ns",
    "tlbi_ns", "reclaim_page_ns"};

// CoreCosts' fields by name, in kCostFields order.
std::array<double*, 8> cost_fields(CoreCosts& c) {
  return {&c.clock_ghz, &c.base_cpi, &c.fault_ns, &c.pte_ns, &c.zero_bytes_per_ns, &c.copy_bytes_per_ns,
          &c.tlbi_ns, &c.reclaim_page_ns};
}

TlbStructureConfig to_structure(std::string_view name, const StructureRow& r) {
  TlbStructureConfig s;
  s.name = std::string(name);
  s.entries = r.entries.value;
  s.ways = r.ways.value;
  s.replacement = r.replacement.value;
  s.cont = r.cont.value;
  s.hit_cycles = r.hit_cycles.value;
  return s;
}

void add_structure_sources(TlbConfig& c, std::string_view key, const StructureRow& r) {
  const std::string k(key);
  c.sources.emplace_back(k + ".entries", std::string(r.entries.source));
  c.sources.emplace_back(k + ".ways", std::string(r.ways.source));
  c.sources.emplace_back(k + ".replacement", std::string(r.replacement.source));
  c.sources.emplace_back(k + ".cont", std::string(r.cont.source));
  c.sources.emplace_back(k + ".hit_cycles", std::string(r.hit_cycles.source));
}

TlbConfig to_config(const PresetRow& p) {
  TlbConfig c;
  c.name = std::string(p.name);
  c.description = std::string(p.description);
  c.l1d = to_structure("L1D", p.l1d);
  c.l1i = to_structure("L1I", p.l1i);
  c.l2 = to_structure("L2", p.l2);
  c.walk_cache_entries = p.walk_cache_entries.value;
  c.walk_access_cycles = p.walk_access_cycles.value;
  c.tlbi_range = p.tlbi_range.value;
  c.hafdbs = p.hafdbs.value;
  c.bbml2_noabort = p.bbml2_noabort.value;
  c.hafdbs_random_pte = p.hafdbs_random_pte.value;
  add_structure_sources(c, "l1d", p.l1d);
  add_structure_sources(c, "l1i", p.l1i);
  add_structure_sources(c, "l2", p.l2);
  c.sources.emplace_back("walk_cache_entries", std::string(p.walk_cache_entries.source));
  c.sources.emplace_back("walk_access_cycles", std::string(p.walk_access_cycles.source));
  c.sources.emplace_back("tlbi_range", std::string(p.tlbi_range.source));
  c.sources.emplace_back("hafdbs", std::string(p.hafdbs.source));
  c.sources.emplace_back("bbml2_noabort", std::string(p.bbml2_noabort.source));
  c.sources.emplace_back("hafdbs_random_pte", std::string(p.hafdbs_random_pte.source));
  const std::array<const Cited<double>*, 8> costs{
      &p.costs.clock_ghz, &p.costs.base_cpi,          &p.costs.fault_ns, &p.costs.pte_ns,
      &p.costs.zero_bytes_per_ns, &p.costs.copy_bytes_per_ns, &p.costs.tlbi_ns, &p.costs.reclaim_page_ns};
  const auto fields = cost_fields(c.costs);
  for (std::size_t i = 0; i < costs.size(); ++i) {
    *fields[i] = costs[i]->value;
    c.sources.emplace_back("costs." + std::string(kCostFields[i]), std::string(costs[i]->source));
  }
  return c;
}

const TlbPreset* find_preset(std::string_view name) {
  if (name == "default") name = kDefaultPreset;
  for (const auto& p : tlb_presets())
    if (p.name == name) return &p;
  return nullptr;
}

std::string preset_names() {
  return fmt::format("{}", fmt::join(names_in(tlb_presets(), &TlbPreset::name), ", "));
}

// ---- JSON core descriptions (docs/tlb-json.md) ------------------------------------------

class JsonLoader {
 public:
  explicit JsonLoader(std::string_view file) : file_(file) {}

  // The entry of a table of named choices (replacement policies, cont
  // holdings) called `name`; an unknown one is an error listing them all.
  template <class Table>
  const auto& find_named(const Table& table, const std::string& name, std::string_view field,
                         std::string_view what) const {
    const auto it = std::find_if(std::begin(table), std::end(table), [&](const auto& e) { return e.name == name; });
    if (it == std::end(table))
      fail(field, fmt::format("unknown {} '{}'; expected one of {}", what, name,
                              fmt::join(names_in(table, [](const auto& e) { return std::string_view(e.name); }), ", ")));
    return *it;
  }

  [[noreturn]] void fail(std::string_view field, const std::string& what) const {
    throw std::runtime_error(file_ + ": " + std::string(field) + ": " + what);
  }

  unsigned get_unsigned(const nlohmann::json& v, const std::string& field) const {
    if (!v.is_number_unsigned())
      fail(field, "expected a non-negative integer, got " + v.dump());
    const auto n = v.get<std::uint64_t>();
    if (n > 1'000'000'000u) fail(field, v.dump() + " is too large");
    return static_cast<unsigned>(n);
  }
  bool get_bool(const nlohmann::json& v, const std::string& field) const {
    if (!v.is_boolean()) fail(field, "expected true or false, got " + v.dump());
    return v.get<bool>();
  }
  double get_positive(const nlohmann::json& v, const std::string& field) const {
    if (!v.is_number()) fail(field, "expected a number, got " + v.dump());
    const double d = v.get<double>();
    if (!(d > 0) || d > 1e12) fail(field, v.dump() + " is out of range; expected a number above 0");
    return d;
  }
  std::string get_string(const nlohmann::json& v, const std::string& field) const {
    if (!v.is_string()) fail(field, "expected a string, got " + v.dump());
    return v.get<std::string>();
  }

  void set_source(TlbConfig& c, const std::string& field, std::string text) const {
    for (auto& [f, s] : c.sources)
      if (f == field) {
        s = std::move(text);
        return;
      }
    c.sources.emplace_back(field, std::move(text));
  }
  // A value the file sets without citing anything.
  void mark_given(TlbConfig& c, const std::string& field) const {
    set_source(c, field, "given by " + file_ + " (no source stated)");
  }

  // A structure that sets `entries` without `ways` keeps the base's
  // organisation when it stays valid: a fully associative one stays fully
  // associative, an N-way one stays N-way if N divides the new entries.
  void load_structure(const nlohmann::json& j, const std::string& key, TlbStructureConfig& s,
                      TlbConfig& c) const {
    if (!j.is_object()) fail(key, "expected an object, got " + j.dump());
    if (j.contains("entries") && !j.contains("ways")) {
      const TlbStructureConfig base = s;
      load_fields(j, key, s, c);
      if (s.entries == 0 || s.entries > (1u << 20)) return;  // check_structure says why
      if (base.ways == base.entries) s.ways = s.entries;
      else if (s.entries % base.ways != 0 || base.ways > s.entries)
        fail(key + ".ways", "the base's " + std::to_string(base.ways) + " ways do not divide entries " +
                                std::to_string(s.entries) + "; give ways");
      return;
    }
    load_fields(j, key, s, c);
  }

  void load_fields(const nlohmann::json& j, const std::string& key, TlbStructureConfig& s, TlbConfig& c) const {
    for (const auto& [k, v] : j.items()) {
      const std::string field = key + "." + k;
      if (k == "entries") {
        s.entries = get_unsigned(v, field);
      } else if (k == "ways") {
        s.ways = get_unsigned(v, field);
      } else if (k == "hit_cycles") {
        s.hit_cycles = get_unsigned(v, field);
      } else if (k == "replacement") {
        s.replacement = find_named(replacement_policies(), get_string(v, field), field, "policy").id;
      } else if (k == "cont") {
        s.cont = find_named(cont_holdings(), get_string(v, field), field, "holding").id;
      } else {
        fail(field, fmt::format("unknown field; expected one of {}", fmt::join(kStructureFields, ", ")));
      }
      mark_given(c, field);
    }
  }

  void load_costs(const nlohmann::json& j, TlbConfig& c) const {
    if (!j.is_object()) fail("costs", "expected an object, got " + j.dump());
    const auto fields = cost_fields(c.costs);
    for (const auto& [k, v] : j.items()) {
      const std::string field = "costs." + k;
      const auto it = std::find(kCostFields.begin(), kCostFields.end(), k);
      if (it == kCostFields.end())
        fail(field, fmt::format("unknown field; expected one of {}", fmt::join(kCostFields, ", ")));
      *fields[static_cast<std::size_t>(it - kCostFields.begin())] = get_positive(v, field);
      mark_given(c, field);
    }
  }

  void check_structure(const std::string& key, const TlbStructureConfig& s) const {
    if (s.entries == 0) fail(key + ".entries", "0 must be at least 1");
    if (s.entries > (1u << 20))
      fail(key + ".entries", std::to_string(s.entries) + " is more than 1048576");
    if (s.ways == 0) fail(key + ".ways", "0 must be at least 1");
    if (s.ways > s.entries)
      fail(key + ".ways", std::to_string(s.ways) + " exceeds entries " + std::to_string(s.entries));
    if (s.entries % s.ways != 0)
      fail(key + ".ways", std::to_string(s.ways) + " does not divide entries " +
                              std::to_string(s.entries));
  }

  TlbConfig load(std::string_view text) const {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text.begin(), text.end());
    } catch (const nlohmann::json::parse_error& e) {
      // nlohmann says "[json.exception.parse_error.101] parse error at line L,
      // column C: WHAT"; we say FILE:L:C: invalid JSON: WHAT.
      std::size_t line = 1, col = 1;
      for (std::size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
        if (text[i] == '\n') ++line, col = 1;
        else ++col;
      }
      std::string what = e.what();
      if (auto p = what.find(": ", what.find("parse error")); p != std::string::npos)
        what = what.substr(p + 2);
      throw std::runtime_error(file_ + ":" + std::to_string(line) + ":" + std::to_string(col) +
                               ": invalid JSON: " + what);
    }
    if (!j.is_object())
      throw std::runtime_error(file_ + ": expected a JSON object describing a core, got " +
                               std::string(j.type_name()));

    // Fields the file leaves out come from `base` (default: the default preset).
    const TlbPreset* base = find_preset(kDefaultPreset);
    if (auto it = j.find("base"); it != j.end()) {
      const std::string b = get_string(*it, "base");
      base = find_preset(b);
      if (!base) fail("base", "unknown preset '" + b + "'; expected one of " + preset_names());
    }
    TlbConfig c = base->make();
    c.name = std::filesystem::path(file_).stem().string();
    c.description = "core described by " + file_ + " (fields not given: " +
                    std::string(base->name) + ")";

    for (const auto& [k, v] : j.items()) {
      if (k == "base" || k == "sources") continue;
      if (k == "name") {
        c.name = get_string(v, k);
        if (c.name.empty()) fail(k, "must not be empty");
      } else if (k == "description") {
        c.description = get_string(v, k);
      } else if (k == "l1d") {
        load_structure(v, k, c.l1d, c);
      } else if (k == "l1i") {
        load_structure(v, k, c.l1i, c);
      } else if (k == "l2") {
        load_structure(v, k, c.l2, c);
      } else if (k == "walk_cache_entries") {
        c.walk_cache_entries = get_unsigned(v, k);
        mark_given(c, k);
      } else if (k == "walk_access_cycles") {
        c.walk_access_cycles = get_unsigned(v, k);
        mark_given(c, k);
      } else if (k == "tlbi_range") {
        c.tlbi_range = get_bool(v, k);
        mark_given(c, k);
      } else if (k == "hafdbs") {
        c.hafdbs = get_bool(v, k);
        mark_given(c, k);
      } else if (k == "bbml2_noabort") {
        c.bbml2_noabort = get_bool(v, k);
        mark_given(c, k);
      } else if (k == "hafdbs_random_pte") {
        c.hafdbs_random_pte = get_bool(v, k);
        mark_given(c, k);
      } else if (k == "costs") {
        load_costs(v, c);
      } else {
        fail(k, fmt::format("unknown field; expected one of {}", fmt::join(kTopFields, ", ")));
      }
    }
    check_structure("l1d", c.l1d);
    check_structure("l1i", c.l1i);
    check_structure("l2", c.l2);

    // Sources the file states replace the "no source stated" lines.
    if (auto it = j.find("sources"); it != j.end()) {
      if (!it->is_object()) fail("sources", "expected an object, got " + it->dump());
      for (const auto& [k, v] : it->items()) {
        const std::string field = "sources." + k;
        bool known = false;
        for (const auto& [f, s] : c.sources) known = known || f == k;
        if (!known)
          fail(field, "not a field of the core; expected a name such as l2.entries or tlbi_range");
        std::string text = get_string(v, field);
        if (text.empty())
          fail(field, "must not be empty (write \"unknown\" if no source gives it)");
        set_source(c, k, std::move(text));
      }
    }
    return c;
  }

 private:
  std::string file_;
};

}  // namespace

const std::vector<TlbPreset>& tlb_presets() {
  static const std::vector<TlbPreset> k{
      {kNeoverseN1.name, kNeoverseN1.summary, [] { return to_config(kNeoverseN1); }},
      {kNeoverseV1.name, kNeoverseV1.summary, [] { return to_config(kNeoverseV1); }},
      {kAppleM1.name, kAppleM1.summary, [] { return to_config(kAppleM1); }},
  };
  return k;
}

std::string_view default_tlb_preset() { return kDefaultPreset; }

TlbConfig parse_tlb_config_json(std::string_view text, std::string_view file) {
  return JsonLoader(file).load(text);
}

bool tlb_names_file(std::string_view name_or_path) {
  return name_or_path.find('/') != std::string_view::npos ||
         (name_or_path.size() > 5 && name_or_path.substr(name_or_path.size() - 5) == ".json");
}

TlbConfig resolve_tlb_config(std::string_view name_or_path) {
  if (const TlbPreset* p = find_preset(name_or_path)) return p->make();
  const std::string path(name_or_path);
  if (!tlb_names_file(path))
    throw std::runtime_error("unknown TLB preset '" + path + "'; expected one of " +
                             preset_names() + ", default, or a JSON file (NAME.json)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_tlb_config_json(text.str(), path);
}

namespace {

std::string describe_structure(const TlbStructureConfig& s) {
  std::ostringstream o;
  o << s.entries << " entries, ";
  if (s.ways == s.entries)
    o << "fully associative";
  else
    o << s.ways << "-way (" << s.entries / s.ways << " sets)";
  o << ", " << replacement_name(s.replacement) << ", contiguous block: "
    << cont_holding_name(s.cont) << ", hit +" << s.hit_cycles
    << (s.hit_cycles == 1 ? " cycle" : " cycles");
  return o.str();
}

}  // namespace

std::string format_presets() {
  std::ostringstream o;
  o << "TLB presets (choose one with the scenario header `tlb NAME`; `tlb default` is "
    << kDefaultPreset << "; describe another core in a JSON file: `tlb my-core.json`, see "
       "docs/tlb-json.md)\n";
  for (const auto& p : tlb_presets()) {
    const TlbConfig c = p.make();
    o << '\n' << p.name << (p.name == kDefaultPreset ? " (default)" : "") << " — " << p.summary
      << '\n';
    o << "  L1D  " << describe_structure(c.l1d) << '\n';
    o << "  L1I  " << describe_structure(c.l1i) << '\n';
    o << "  L2   " << describe_structure(c.l2) << '\n';
    o << "  walk cache " << c.walk_cache_entries << " entries, " << c.walk_access_cycles
      << " cycles per descriptor read; FEAT_TLBIRANGE " << (c.tlbi_range ? "yes" : "no")
      << "; HW A/D in a random PTE of a block " << (c.hafdbs_random_pte ? "on" : "off") << '\n';
    o << "  FEAT_HAFDBS " << (c.hafdbs ? "yes" : "no") << "; FEAT_BBML2_NOABORT "
      << (c.bbml2_noabort ? "yes" : "no") << '\n';
    o << "  costs: " << c.costs.clock_ghz << " GHz, CPI " << c.costs.base_cpi << ", fault "
      << c.costs.fault_ns << " ns, PTE " << c.costs.pte_ns << " ns, zero " << c.costs.zero_bytes_per_ns
      << " B/ns, copy " << c.costs.copy_bytes_per_ns << " B/ns, TLBI " << c.costs.tlbi_ns
      << " ns, reclaim " << c.costs.reclaim_page_ns << " ns/page\n";
    o << "  sources:\n";
    std::size_t width = 0;
    for (const auto& [f, s] : c.sources) width = std::max(width, f.size());
    for (const auto& [f, s] : c.sources)
      o << "    " << f << std::string(width - f.size() + 2, ' ') << s << '\n';
  }
  return o.str();
}

}  // namespace contpte
