// sim/estimate.h — the estimated time of a run: user work,
// translation, and the kernel's work on page faults, PTEs, zeroing,
// copying, TLB maintenance and reclaim, each from the run's counters and
// the core's cost constants (CoreCosts, with their sources in the preset).
//
// Owns: the formulas of docs/estimate.md and the names of the `est_*_ns`
// stats. Must not know: how the counters were produced, report formats.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hw/tlb.h"

namespace contpte {

// The counters an estimate reads, by stat name (sim/stats.h).
using StatLookup = std::function<double(std::string_view)>;

// The `est_*_ns` stats, in report order: est_time_ns = est_user_ns +
// est_kernel_ns; est_user_ns = est_work_ns + est_translation_ns;
// est_kernel_ns = est_fault_ns + est_pte_ns + est_zero_ns + est_copy_ns +
// est_tlbi_ns + est_reclaim_ns. `page_size`: the granule's (a page-table
// page is zeroed when allocated).
std::vector<std::pair<std::string, double>> estimate_time(const TlbConfig& core, std::uint64_t page_size,
                                                          const StatLookup& stat);

// Their names, in the same order.
inline constexpr std::array<std::string_view, 11> kEstimateStats{
    "est_time_ns", "est_user_ns", "est_kernel_ns", "est_work_ns", "est_translation_ns", "est_fault_ns",
    "est_pte_ns",  "est_zero_ns", "est_copy_ns",   "est_tlbi_ns", "est_reclaim_ns"};
const std::vector<std::string>& estimate_stat_names();

}  // namespace contpte
