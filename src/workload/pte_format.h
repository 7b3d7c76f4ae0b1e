// workload/pte_format.h — PTE words as a kernel engineer reads them.
//
// Owns: the one textual form of a PTE used by `dump`, `--trace` and expect
// failure messages: the hex word, then PFN, protection and state flags.
// Must not know: report formats.
#pragma once

#include <string>

#include "arch/pte.h"
#include "explore/explorer.h"

namespace contpte {

// "0x00e8000040010fc3 pfn=0x40010 rw valid young dirty(hw) cont", or
// "0x0000000000000000 none" for an empty entry.
std::string format_pte(Pte pte, unsigned page_shift);

// One explorer step: "store      0x40005000  <before> -> <after>", "tlbi
// 0x40000000 +16 pages", "lock" (no note).
std::string format_step(const StepRecord& s, unsigned page_shift);

}  // namespace contpte
