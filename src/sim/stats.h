// sim/stats.h — the report's stats: one table of every stat a run reports,
// with what it counts and how to read it, and the value each takes from
// the machine.
//
// Owns: the names `expect stat` accepts, the keys and their order in the
// JSON report and the summary, and docs/stats.md (generated from the table
// by stats_markdown(); tests/sim/stats_test.cpp checks the file matches).
// Must not know: output formats beyond the markdown of docs/stats.md.
//
// Adding a stat is a one-line change: a row in kStats (stats.cpp) — name,
// what it counts, how to read it, and its value as a function of the
// machine (a StatReader). A per-size family (`anon_fault_alloc_64K`) is a
// row in kStatFamilies with the per-order counts it reads. Then regenerate
// the page: CONTPTE_UPDATE_DOCS=1 build/tests/contpte_tests
// --gtest_filter='StatsDoc.*'.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "arch/granule.h"
#include "engine/env.h"
#include "hw/mmu.h"
#include "mm/mm.h"

namespace contpte {

class Machine;

// What a stat's value is computed from: the machine, and what is costly to
// work out (the page-table scan) worked out once, when first asked for.
class StatReader {
 public:
  explicit StatReader(Machine& m);

  Machine& machine() { return m_; }
  const Geometry& geometry() const;
  const MmuStats& mmu() const { return mmu_; }
  const MmStats& mm() const;
  const EngineCounters& engine() const { return engine_; }
  // Present PTEs (level 3) of every live process, how many have PTE_CONT,
  // and pages mapped by huge PMDs.
  struct Coverage {
    std::uint64_t present = 0, cont = 0;
    std::uint64_t pmd_pages = 0;  // in rss, not PTEs
  };
  const Coverage& coverage();
  // Part `i` of the time estimate (sim/estimate.h: kEstimateStats[i]),
  // worked out from the other stats once, when first asked for.
  double estimate(std::size_t i);

 private:
  Machine& m_;
  MmuStats mmu_;
  EngineCounters engine_;
  std::optional<Coverage> coverage_;
  std::vector<double> estimate_;
};

struct StatDef {
  std::string_view name;
  std::string_view counts;   // what it counts
  std::string_view reading;  // how to read it (units, what good looks like, caveats)
  // Its value; null: set by the command that reports it (trace replay), not
  // a scenario's (`expect stat` does not know it).
  double (*value)(StatReader&);
};

// `<prefix><size>` per folio size of the granule, reported for the sizes
// that occurred, as /sys/kernel/mm/transparent_hugepage/hugepages-<size>/
// stats names them.
struct StatFamily {
  std::string_view prefix;  // "anon_fault_alloc_"
  std::string_view counts, reading;
  unsigned min_order;  // the smallest folio order the family has (1: mTHP sizes, 0: from one page)
  const std::map<unsigned, std::uint64_t>& (*per_order)(const MmStats&);
};

std::span<const StatDef> stat_table();
std::span<const StatFamily> stat_families();

// The value of `name` (a row or a family member); nullopt when no stat of a
// scenario run is called that under `g`.
std::optional<double> stat_value(StatReader& r, std::string_view name);
// Whether `expect stat NAME` may name it under granule `g`.
bool is_scenario_stat(std::string_view name, const Geometry& g);
// Every stat a scenario run may name under `g`, in report order (families
// spelled out per size), for error messages.
std::vector<std::string> scenario_stat_names(const Geometry& g);
// The report's stats at the end of a run, in report order: every row, then
// each family's sizes that occurred.
std::vector<std::pair<std::string, double>> collect_stats(Machine& m);
// docs/stats.md.
std::string stats_markdown();

}  // namespace contpte
