// hostproc/proc_bits.h — what the words of /proc/PID/pagemap and
// /proc/kpageflags mean (Documentation/admin-guide/mm/pagemap.rst), for the
// /proc readers (proc_text.cpp) and the analysis (snapshot.cpp).
#pragma once

#include <cstdint>

namespace contpte::proc {

constexpr std::uint64_t kPmPresent = 1ull << 63;
constexpr std::uint64_t kPmSwapped = 1ull << 62;
constexpr std::uint64_t kPmFile = 1ull << 61;
constexpr std::uint64_t kPmUffdWp = 1ull << 57;
constexpr std::uint64_t kPmPfnMask = (1ull << 55) - 1;

constexpr std::uint64_t kpf(unsigned bit) { return 1ull << bit; }
constexpr std::uint64_t kKpfAnon = kpf(12);
constexpr std::uint64_t kKpfHead = kpf(15);
constexpr std::uint64_t kKpfTail = kpf(16);
constexpr std::uint64_t kKpfNoPage = kpf(20);
constexpr std::uint64_t kKpfZero = kpf(24);
// Our own marker for a PFN past the end of /proc/kpageflags (a PFN map of
// device memory): bit 63 is not a kernel flag.
constexpr std::uint64_t kKpfBeyond = 1ull << 63;

// Largest folio we look for: 2^18 pages = 1G with 4K pages (hugetlb gigantic
// pages); THP/mTHP stop at PMD order.
constexpr unsigned kMaxFolioOrder = 18;

inline bool is_tail(std::uint64_t f) { return (f & kKpfTail) && !(f & kKpfBeyond); }
inline bool is_compound(std::uint64_t f) { return (f & (kKpfHead | kKpfTail)) && !(f & kKpfBeyond); }
inline bool no_struct_page(std::uint64_t f) { return f & (kKpfNoPage | kKpfBeyond); }

}  // namespace contpte::proc
