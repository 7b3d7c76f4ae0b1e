#include "sim/estimate.h"

namespace contpte {

const std::vector<std::string>& estimate_stat_names() {
  static const std::vector<std::string> names(kEstimateStats.begin(), kEstimateStats.end());
  return names;
}

std::vector<std::pair<std::string, double>> estimate_time(const TlbConfig& core, std::uint64_t page_size,
                                                          const StatLookup& stat) {
  const CoreCosts& c = core.costs;
  // User mode: the instructions at the core's base CPI, plus what
  // translation adds beyond an L1 TLB hit (which the base CPI already
  // holds): L2 TLB hits and walks.
  const double work = stat("instructions") * c.base_cpi / c.clock_ghz;
  const double translation =
      (stat("walk_cycles") + stat("tlb_hits_l2") * double(core.l2.hit_cycles)) / c.clock_ghz;
  // Kernel mode.
  const double fault = stat("mm_faults") * c.fault_ns;
  const double pte = stat("pte_stores") * c.pte_ns;
  const double zero = (stat("bytes_zeroed") + stat("pgtable_allocs") * double(page_size)) / c.zero_bytes_per_ns;
  const double copy = stat("bytes_copied") / c.copy_bytes_per_ns;
  const double tlbi = stat("tlbi_instructions") * c.tlbi_ns;
  const double reclaim = stat("reclaim_entries") * c.reclaim_page_ns;
  const double user = work + translation;
  const double kernel = fault + pte + zero + copy + tlbi + reclaim;
  const std::array<double, kEstimateStats.size()> values{user + kernel, user,  kernel, work, translation, fault,
                                                          pte,           zero, copy,   tlbi, reclaim};
  std::vector<std::pair<std::string, double>> out;
  for (std::size_t i = 0; i < values.size(); ++i) out.emplace_back(kEstimateStats[i], values[i]);
  return out;
}

}  // namespace contpte
