// arch/pte_format.h — PTE words as a kernel engineer reads them.
//
// Owns: the one textual form of a PTE used by `dump`, `--trace`, expect
// failure messages and the explorer's counterexamples: the hex word, then
// PFN, protection and state flags. It lives in arch/ (not report/) because
// the scenario language itself prints PTEs (`dump`, `expect pte`), and the
// text needs nothing but the descriptor's bits.
// Must not know: report formats.
#pragma once

#include <cstdint>
#include <string>

#include "arch/pte.h"

namespace contpte {

// "0x00e8000040010fc3 pfn=0x40010 rw valid young dirty(hw) cont", or
// "0x0000000000000000 none" for an empty entry.
std::string format_pte(Pte pte, unsigned page_shift);

// "64K", "2M", "1T" (as sysfs and the scenario language spell sizes);
// bytes that are no whole K print as a plain number.
std::string format_size(std::uint64_t bytes);

}  // namespace contpte
