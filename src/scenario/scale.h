// scenario/scale.h — `contpte run --scale N`: the same workload, N times
// larger.
//
// Owns: the rewrite of a parsed memory-manager scenario into one whose
// address space is zoomed by N around its lowest literal address: every
// mapping, range and length is N times longer, every offset and every
// literal address's distance from that lowest one is N times larger, and
// every access statement makes N times its accesses at the same stride (the
// access density per byte stays the same). The simulated machine's memory
// grows with it (up to the parser's 1T limit) so memory pressure stays
// comparable. Expectations follow: `expect stat` of the extensive quantities
// (accesses, rss_bytes, pagecache_bytes) is multiplied by N; other stat
// expectations and `expect pte|raw|cont` are checked as written, at the
// zoomed address. The number of processes and statements stays.
// Why a zoom and not N passes: a bigger heap is what changes TLB reach and
// folio sizes; repeating the same accesses over the same memory does not.
// Must not know: how statements run.
//
// Errors (ScenarioError at the statement, exit 2): PTE-level statements and
// `parallel` blocks (they name single PTEs at fixed addresses: there is no
// larger version of them), and a zoomed mapping or range past the 48-bit
// user address space.
#pragma once

#include <cstdint>

#include "scenario/scenario.h"

namespace contpte {

// The scaled copy of `sc`; `n` >= 1 (1 returns `sc` unchanged).
Scenario scale_scenario(const Scenario& sc, std::uint64_t n);

// Whether `expect stat NAME` is multiplied by N under scaling.
bool stat_scales_with_size(std::string_view name);

}  // namespace contpte
