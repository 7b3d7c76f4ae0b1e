// sweep/merge.h — `contpte sweep report`: merging results files and
// summarising the spread over seeds.
//
// Owns: the merge of shards (their headers must agree: format, version,
// spec), the runs missing from the merge (a partly written last line counts
// as missing) and the conflicting duplicates (one key, two different
// results apart from wall_s), and the per-(input, configuration, core)
// median and min–max over seeds of the main figures: table, JSON, SVG.
// Must not know: how runs execute.
#pragma once

#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sweep/plan.h"

namespace contpte::sweep {

struct Merged {
  nlohmann::json header;  // the first file's (all agree but for the shard)
  Plan plan;              // enumerates the keys (no paths)
  std::map<std::string, nlohmann::json> runs;  // by key id
  std::vector<RunKey> missing;                 // in plan order
  struct Conflict {
    RunKey key;
    std::string first, second;  // "FILE:LINE" of two disagreeing lines
  };
  std::vector<Conflict> conflicts;
  std::vector<std::string> notes;  // partly written last lines
  bool complete() const { return missing.empty() && conflicts.empty(); }
};

// Reads and merges results files; throws SweepError (`FILE:LINE: error:`)
// for a bad or foreign line, a file that is not a results file, or headers
// that disagree.
Merged merge_results(const std::vector<std::string>& files);

// The figures the table and chart show, in order.
const std::vector<std::string>& main_figures();

struct Spread {
  double median = 0, min = 0, max = 0;
  std::size_t n = 0;
};
// Median (the mean of the middle two for an even count), min and max.
Spread spread(std::vector<double> values);

// The report as JSON: {"complete", "planned", "present", "missing": [keys],
// "conflicts": [...], "groups": [{"input", "config", "core", "seeds",
// "failed_runs", "stats": {NAME: {"median", "min", "max"}}}]}.
nlohmann::json merged_json(const Merged& m);

// Missing runs, conflicts, then one row per (input, configuration, core):
// median [min–max] over seeds of main_figures().
void print_merged(std::ostream& out, const Merged& m);

// Per input, one bar per (configuration, core): the median translation
// cycles (walk cycles) with a min–max whisker.
std::string merged_svg(const Merged& m);

}  // namespace contpte::sweep
