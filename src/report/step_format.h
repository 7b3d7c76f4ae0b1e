// report/step_format.h — one explorer step as text.
//
// Owns: the one form of a StepRecord shared by `--trace` of a parallel block
// and the explorer's counterexamples (PTEs as arch/pte_format.h writes them).
#pragma once

#include <string>

#include "explore/explorer.h"

namespace contpte {

// One explorer step: "store      0x40005000  <before> -> <after>", "tlbi
// 0x40000000 +16 pages", "lock" (no note).
std::string format_step(const StepRecord& s, unsigned page_shift);

}  // namespace contpte
