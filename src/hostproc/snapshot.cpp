// hostproc/snapshot.cpp — live process analysis: folios, their sizes and
// cont_bytes from pagemap and kpageflags words (read by proc_text.cpp);
// see snapshot.h.
//
// Sources of truth (Documentation/admin-guide/mm/pagemap.rst):
//  - /proc/PID/pagemap: one u64 per virtual page; bit 63 present, 62
//    swapped, 61 file page or shared anon, 57 uffd-wp, bits 0-54 the PFN
//    (read as 0 without CAP_SYS_ADMIN).
//  - /proc/kpageflags: one u64 per PFN; ANON 12, COMPOUND_HEAD 15,
//    COMPOUND_TAIL 16, HUGE 17 (hugetlb), NOPAGE 20, THP 22 (any large
//    anon/file folio, not only PMD-sized), ZERO_PAGE 24.
//  - /proc/kpagecount: one u64 per PFN, how often the page is mapped.
// Folios are naturally aligned in physical memory (the buddy allocator hands
// out blocks of 2^order frames at multiples of 2^order), which is what lets
// us find a folio's head and size from a handful of kpageflags entries.

#include "hostproc/snapshot.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>
#include <utility>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <unistd.h>

#include "hostproc/proc_bits.h"

namespace contpte {

using namespace proc;

namespace {

// ---- the live /proc -------------------------------------------------------------

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

bool gone_errno(int e) { return e == ENOENT || e == ESRCH; }

// pread until `bytes` or end of file. Returns bytes read, -errno on error.
long long pread_full(int fd, void* buf, std::size_t bytes, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < bytes) {
    const ssize_t r = ::pread(fd, static_cast<char*>(buf) + done, bytes - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) break;
    done += static_cast<std::size_t>(r);
  }
  return static_cast<long long>(done);
}

// PAGEMAP_SCAN (Linux 6.7, include/uapi/linux/fs.h), declared here because
// the build host's headers may predate it. The kernel walks the page tables
// and skips empty ones, returning runs of pages by category.
struct PmScanArg {
  std::uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
      category_anyof_mask, return_mask;
};
struct PageRegion {
  std::uint64_t start, end, categories;
};
constexpr std::uint64_t kPageIsPresent = 1u << 3, kPageIsSwapped = 1u << 4;
constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);

class LiveProcSource final : public ProcSource {
 public:
  std::string read_text(int pid, std::string_view name) override {
    const std::string path = fmt::format("/proc/{}/{}", pid, name);
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) fail(pid, path, errno);
    std::string text;
    char buf[1 << 16];
    for (;;) {
      const ssize_t r = ::read(fd.get(), buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail(pid, path, errno);
      if (r == 0) break;
      text.append(buf, static_cast<std::size_t>(r));
    }
    return text;
  }

  void begin(int) override {
    pagemap_ = Fd();
    pagemap_pid_ = -1;
  }

  std::size_t read_pagemap(int pid, std::uint64_t first_vpn, std::span<std::uint64_t> out) override {
    open_pagemap(pid);
    const long long r = pread_full(pagemap_.get(), out.data(), out.size_bytes(), first_vpn * 8);
    if (r < 0) {
      pagemap_pid_ = -1;
      fail(pid, fmt::format("/proc/{}/pagemap", pid), static_cast<int>(-r));
    }
    return static_cast<std::size_t>(r) / 8;
  }

  std::optional<std::vector<std::pair<std::uint64_t, std::uint64_t>>> populated_ranges(
      int pid, std::uint64_t start, std::uint64_t end) override {
    if (!scan_supported_) return std::nullopt;
    open_pagemap(pid);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    std::array<PageRegion, 512> vec{};
    for (std::uint64_t at = start; at < end;) {
      PmScanArg arg{};
      arg.size = sizeof arg;
      arg.start = at;
      arg.end = end;
      arg.vec = reinterpret_cast<std::uint64_t>(vec.data());
      arg.vec_len = vec.size();
      arg.category_anyof_mask = kPageIsPresent | kPageIsSwapped;
      arg.return_mask = kPageIsPresent | kPageIsSwapped;
      const int n = ::ioctl(pagemap_.get(), kPagemapScan, &arg);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOTTY || errno == EINVAL || errno == EOPNOTSUPP) {
          scan_supported_ = false;  // an older kernel: read all of pagemap
          return std::nullopt;
        }
        fail(pid, fmt::format("/proc/{}/pagemap", pid), errno);
      }
      for (int i = 0; i < n; ++i) {
        if (!out.empty() && out.back().second == vec[i].start) out.back().second = vec[i].end;
        else out.emplace_back(vec[i].start, vec[i].end);
      }
      if (arg.walk_end <= at) break;  // no progress: the VMA went away under us
      at = arg.walk_end;
    }
    return out;
  }

  std::size_t read_kpageflags(std::uint64_t first_pfn, std::span<std::uint64_t> out) override {
    return read_frames(kpageflags_, "/proc/kpageflags", first_pfn, out);
  }
  std::size_t read_kpagecount(std::uint64_t first_pfn, std::span<std::uint64_t> out) override {
    return read_frames(kpagecount_, "/proc/kpagecount", first_pfn, out);
  }

  bool pfns_readable() override {
    open_frames(kpageflags_, "/proc/kpageflags");
    return kpageflags_.get() >= 0;
  }
  // Asked after a short pagemap read. An exiting process drops its mm
  // (its pagemap then reads empty) before it turns zombie, so a process
  // whose maps are empty counts as gone too; a live user process always
  // has a VMA (its stack, the vDSO).
  bool alive(int pid) override {
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    std::string stat;
    if (!std::getline(in, stat)) return false;
    const auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) return false;
    const char state = stat[close + 2];
    if (state == 'Z' || state == 'X') return false;
    try {
      return !read_text(pid, "maps").empty();
    } catch (const std::exception&) {
      return false;
    }
  }
  std::uint64_t page_size() const override { return static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)); }

 private:
  void open_pagemap(int pid) {
    if (pid == pagemap_pid_) return;
    const std::string path = fmt::format("/proc/{}/pagemap", pid);
    pagemap_ = Fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (pagemap_.get() < 0) fail(pid, path, errno);
    pagemap_pid_ = pid;
  }

  [[noreturn]] static void fail(int pid, const std::string& path, int err) {
    if (gone_errno(err) || (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH))
      throw ProcessGone(fmt::format("{}: the process is gone", path));
    throw SnapshotError(fmt::format("{}: cannot read: {}", path, std::strerror(err)));
  }
  static void open_frames(Fd& fd, const char* path) {
    if (fd.get() < 0) fd = Fd(::open(path, O_RDONLY | O_CLOEXEC));
  }
  static std::size_t read_frames(Fd& fd, const char* path, std::uint64_t first, std::span<std::uint64_t> out) {
    open_frames(fd, path);
    if (fd.get() < 0) fail(0, path, errno);
    const long long r = pread_full(fd.get(), out.data(), out.size_bytes(), first * 8);
    // Past the last PFN the kernel returns 0 bytes or EINVAL, not an error for us.
    if (r < 0) return 0;
    return static_cast<std::size_t>(r) / 8;
  }

  Fd pagemap_;
  int pagemap_pid_ = -1;
  Fd kpageflags_, kpagecount_;
  bool scan_supported_ = true;
};

// ---- the analysis -------------------------------------------------------------------

[[noreturn]] void pfns_hidden(const std::string& why) {
  throw SnapshotError(fmt::format(
      "PFNs are hidden: {}; reading page frame numbers needs root (CAP_SYS_ADMIN). "
      "`--no-pfn` shows what can be told without them (resident bytes, virtually aligned resident blocks)",
      why));
}

// kpageflags lookups outside the batch read for a chunk: folio heads and
// sizes of folios only partly in view. Cached per process.
class FrameProbe {
 public:
  explicit FrameProbe(ProcSource& src) : src_(src) {}

  std::uint64_t flags(std::uint64_t pfn) {
    if (auto it = cache_.find(pfn); it != cache_.end()) return it->second;
    std::uint64_t f = 0;
    if (src_.read_kpageflags(pfn, std::span(&f, 1)) != 1) f = kKpfBeyond;
    cache_.emplace(pfn, f);
    return f;
  }

  // The head of the folio holding `pfn` (whose flags are `f`): the folio is
  // naturally aligned, so its head is `pfn` rounded down to the folio size —
  // the first aligned-down candidate that is a head. nullopt if the layout
  // is not a folio's (it changed under us).
  std::optional<std::uint64_t> find_head(std::uint64_t pfn, std::uint64_t f) {
    if (f & kKpfHead) return pfn;
    for (unsigned k = 1; k <= kMaxFolioOrder; ++k) {
      const std::uint64_t cand = pfn & ~((1ull << k) - 1);
      if (cand == pfn) continue;
      const std::uint64_t cf = flags(cand);
      if (cf & kKpfHead && !(cf & kKpfBeyond)) return cand;
      if (!is_tail(cf)) return std::nullopt;
    }
    return std::nullopt;
  }

  // Pages in the folio headed at `head`: the least 2^k (k >= 1) whose page
  // after the folio is no tail — a tail after it would belong to this folio.
  std::optional<std::uint64_t> folio_pages(std::uint64_t head) {
    if (auto it = sizes_.find(head); it != sizes_.end()) return it->second;
    std::optional<std::uint64_t> n;
    if (is_tail(flags(head + 1)))
      for (unsigned k = 1; k <= kMaxFolioOrder && !n; ++k)
        if (!is_tail(flags(head + (1ull << k)))) n = 1ull << k;
    sizes_.emplace(head, n);
    return n;
  }

  void forget() {
    cache_.clear();
    sizes_.clear();
  }

 private:
  ProcSource& src_;
  std::unordered_map<std::uint64_t, std::uint64_t> cache_;
  std::unordered_map<std::uint64_t, std::optional<std::uint64_t>> sizes_;
};

// A large folio seen only in part so far in this VMA.
struct FolioUse {
  std::uint64_t pages = 0;      // folio size in pages
  std::uint64_t mapped = 0;     // pages of it mapped in this VMA
  bool anon = false;
  bool in_order = true;         // every mapped page at head_va + index * page
  std::optional<std::uint64_t> head_va;
  std::uint64_t some_va = 0, some_index = 0;  // one mapped page, to check in_order
};

class VmaScanner {
 public:
  VmaScanner(ProcSource& src, int pid, const SnapshotOptions& opts, FrameProbe& probe)
      : src_(src), pid_(pid), opts_(opts), probe_(probe), page_(src.page_size()) {
    std::uint64_t max_block = 1;
    for (auto b : opts.cont_sizes) max_block = std::max(max_block, b / page_);
    chunk_ = std::max<std::uint64_t>(opts.pagemap_chunk, max_block);
    chunk_ = (chunk_ + max_block - 1) / max_block * max_block;  // blocks never straddle chunks
    entries_.resize(chunk_);
    flags_.resize(chunk_);
    counts_.resize(chunk_);
  }

  SnapshotStats scan(const Vma& vma) {
    stats_ = SnapshotStats{};
    partial_.clear();
    stats_.smaps_rss_bytes = vma.smaps_rss;
    stats_.pmd_mapped_bytes = vma.smaps_pmd_mapped;
    for (auto b : opts_.cont_sizes) {
      stats_.cont_bytes[b] = 0;
      stats_.resident_block_bytes[b] = 0;
    }
    const std::uint64_t first = vma.start / page_, last = vma.end / page_;
    // Only the populated parts, when the source can tell: a page outside
    // them is neither present nor swapped, so a block crossing their edge
    // is not fully resident either way.
    auto ranges = src_.populated_ranges(pid_, vma.start, vma.end);
    if (!ranges) ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>{{vma.start, vma.end}};
    for (const auto& [rs, re] : *ranges) {
      const std::uint64_t rlast = std::min(last, re / page_);
      for (std::uint64_t cs = std::max(first, rs / page_); cs < rlast;) {
        const std::uint64_t ce = std::min(rlast, (cs / chunk_ + 1) * chunk_);
        scan_chunk(first, last, cs, ce);
        cs = ce;
      }
    }
    settle_partial();
    return stats_;
  }

 private:
  void scan_chunk(std::uint64_t vma_first, std::uint64_t vma_last, std::uint64_t cs, std::uint64_t ce) {
    const std::size_t n = static_cast<std::size_t>(ce - cs);
    const std::span<std::uint64_t> pm(entries_.data(), n);
    const std::size_t got = src_.read_pagemap(pid_, cs, pm);
    if (got < n) {
      if (!src_.alive(pid_)) throw ProcessGone(fmt::format("/proc/{}/pagemap: the process is gone", pid_));
      throw SnapshotError(fmt::format("/proc/{}/pagemap: offset {:#x}: short read: {} of {} entries", pid_,
                                      (cs + got) * 8, got, n));
    }
    if (!opts_.no_pfn) read_frames(n);
    for (std::size_t i = 0; i < n;) i = account_page(cs, i, n);
    blocks(vma_first, vma_last, cs, n);
  }

  static std::uint64_t pfn_of(std::uint64_t e) { return e & kPmPfnMask; }
  static bool present(std::uint64_t e) { return e & kPmPresent; }

  // kpageflags and kpagecount for the resident PFNs of the chunk only: runs
  // of physically consecutive pages, neighbouring runs merged into one read
  // when the gap is small (one pread instead of several).
  void read_frames(std::size_t n) {
    constexpr std::uint64_t kMergeGap = 64;
    std::size_t i = 0;
    while (i < n) {
      if (!present(entries_[i])) {
        ++i;
        continue;
      }
      if (pfn_of(entries_[i]) == 0) pfns_hidden(fmt::format("/proc/{}/pagemap reports PFN 0 for resident pages", pid_));
      // Extend a window [lo, hi) of PFNs over following runs while they ascend closely.
      const std::size_t first = i;
      const std::uint64_t lo = pfn_of(entries_[i]);
      std::uint64_t hi = lo + 1;
      std::size_t j = i + 1;
      while (j < n) {
        if (!present(entries_[j])) {
          // Holes in VA do not end a window; a later page may continue it.
          std::size_t k = j;
          while (k < n && !present(entries_[k]) && k - j < kMergeGap) ++k;
          if (k == n || !present(entries_[k])) break;
          j = k;
        }
        const std::uint64_t p = pfn_of(entries_[j]);
        if (p < hi || p > hi + kMergeGap || p - lo >= (1u << 16)) break;
        hi = p + 1;
        ++j;
      }
      window_.resize(hi - lo);
      window_count_.resize(hi - lo);
      const std::size_t fl = src_.read_kpageflags(lo, window_);
      std::fill(window_.begin() + static_cast<std::ptrdiff_t>(fl), window_.end(), kKpfBeyond);
      const std::size_t cn = src_.read_kpagecount(lo, window_count_);
      std::fill(window_count_.begin() + static_cast<std::ptrdiff_t>(cn), window_count_.end(), 0);
      for (std::size_t k = first; k < j; ++k) {
        if (!present(entries_[k])) continue;
        flags_[k] = window_[pfn_of(entries_[k]) - lo];
        counts_[k] = window_count_[pfn_of(entries_[k]) - lo];
      }
      i = j;
    }
  }

  // Accounts entry i (and, for a large folio mapped in order from its head,
  // the rest of that folio); returns the next entry to look at.
  std::size_t account_page(std::uint64_t cs, std::size_t i, std::size_t n) {
    const std::uint64_t e = entries_[i];
    if (!present(e)) {
      if (e & kPmSwapped) stats_.swapped_bytes += page_;
      return i + 1;
    }
    if (opts_.no_pfn) {
      stats_.resident_bytes += page_;
      (e & kPmFile ? stats_.file_bytes : stats_.anon_bytes) += page_;
      return i + 1;
    }
    const std::uint64_t f = flags_[i];
    if (f & kKpfZero) {
      stats_.zero_page_bytes += page_;
      return i + 1;
    }
    if (no_struct_page(f)) {
      stats_.special_bytes += page_;
      return i + 1;
    }
    const std::uint64_t va = (cs + i) * page_;
    if (!is_compound(f)) {
      count_resident(f, counts_[i], 1);
      folios_of(f)[page_].aligned += page_;
      return i + 1;
    }
    const std::uint64_t pfn = pfn_of(e);
    if (f & kKpfHead) {
      // Fast path: the folio mapped in order from its head, all in this chunk.
      std::size_t k = 1;
      while (i + k < n && present(entries_[i + k]) && pfn_of(entries_[i + k]) == pfn + k && is_tail(flags_[i + k]))
        ++k;
      const bool ends_here = i + k < n && present(entries_[i + k]) && pfn_of(entries_[i + k]) == pfn + k
                                 ? !is_tail(flags_[i + k])
                                 : !is_tail(probe_.flags(pfn + k));
      if (ends_here) {
        if (k < 2 || !std::has_single_bit(k) || pfn % k != 0) return inconsistent(i);
        // Anon-ness is the folio's: take it from the head (tails need not carry it).
        for (std::size_t j = 0; j < k; ++j) count_resident(f, counts_[i + j], 1);
        FolioSplit& s = folios_of(f)[k * page_];
        (va % (k * page_) == 0 ? s.aligned : s.unaligned) += k * page_;
        return i + k;
      }
    }
    // Slow path: a folio mapped only in part here, out of order, or across chunks.
    const auto head = probe_.find_head(pfn, f);
    const auto pages = head ? probe_.folio_pages(*head) : std::nullopt;
    if (!pages || pfn - *head >= *pages) return inconsistent(i);
    const std::uint64_t head_flags = probe_.flags(*head);
    count_resident(head_flags, counts_[i], 1);
    FolioUse& u = partial_[*head];
    const std::uint64_t index = pfn - *head;
    if (u.mapped == 0) {
      u.pages = *pages;
      u.anon = head_flags & kKpfAnon;
      u.some_va = va;
      u.some_index = index;
    } else if (va - u.some_va != (index - u.some_index) * page_) {
      u.in_order = false;
    }
    if (index == 0) u.head_va = va;
    ++u.mapped;
    return i + 1;
  }

  std::size_t inconsistent(std::size_t i) {
    // The folio changed between the pagemap and kpageflags reads (split,
    // freed, migrated): count the page as a 4K folio and say so.
    ++stats_.inconsistent_pages;
    count_resident(flags_[i], counts_[i], 1);
    folios_of(flags_[i])[page_].aligned += page_;
    return i + 1;
  }

  void count_resident(std::uint64_t f, std::uint64_t count, std::uint64_t pages) {
    stats_.resident_bytes += pages * page_;
    (f & kKpfAnon ? stats_.anon_bytes : stats_.file_bytes) += pages * page_;
    if (count > 1) stats_.shared_bytes += pages * page_;
  }

  std::map<std::uint64_t, FolioSplit>& folios_of(std::uint64_t f) {
    return f & kKpfAnon ? stats_.anon_folios : stats_.file_folios;
  }

  void settle_partial() {
    for (const auto& [head, u] : partial_) {
      FolioSplit& s = (u.anon ? stats_.anon_folios : stats_.file_folios)[u.pages * page_];
      const std::uint64_t bytes = std::min(u.mapped, u.pages) * page_;
      if (u.mapped < u.pages) s.partial += bytes;
      else if (u.in_order && u.head_va && *u.head_va % (u.pages * page_) == 0) s.aligned += bytes;
      else s.unaligned += bytes;
    }
  }

  // cont_bytes (docs/design.md): blocks of B bytes, B-aligned in VA, wholly in
  // the VMA (one VMA = one protection; the uffd-wp bit must agree too, it
  // is a PTE bit), every page present, PFNs consecutive from a B-aligned
  // PFN, all in one folio. Consecutive PFNs in one naturally aligned folio
  // reduce to: the first page is part of a large folio and every other is
  // a tail (a tail's head lies before it, inside the run or before it).
  void blocks(std::uint64_t vma_first, std::uint64_t vma_last, std::uint64_t cs, std::size_t n) {
    for (const std::uint64_t bytes : opts_.cont_sizes) {
      const std::uint64_t b = bytes / page_;
      if (b == 0) continue;
      for (std::uint64_t bs = (cs + b - 1) / b * b; bs + b <= cs + n; bs += b) {
        if (bs < vma_first || bs + b > vma_last) continue;
        const std::size_t i = static_cast<std::size_t>(bs - cs);
        if (!all_present(i, b)) continue;
        stats_.resident_block_bytes[bytes] += bytes;
        if (!opts_.no_pfn && contiguous_block(i, b)) stats_.cont_bytes[bytes] += bytes;
      }
    }
  }

  bool all_present(std::size_t i, std::uint64_t b) const {
    for (std::uint64_t j = 0; j < b; ++j)
      if (!present(entries_[i + j])) return false;
    return true;
  }

  bool contiguous_block(std::size_t i, std::uint64_t b) const {
    const std::uint64_t pfn0 = pfn_of(entries_[i]);
    const std::uint64_t f0 = flags_[i];
    if (pfn0 % b != 0 || no_struct_page(f0) || (f0 & kKpfZero)) return false;
    if (b == 1) return true;
    if (!is_compound(f0)) return false;
    const std::uint64_t wp = entries_[i] & kPmUffdWp;
    for (std::uint64_t j = 1; j < b; ++j) {
      const std::uint64_t e = entries_[i + j];
      if (pfn_of(e) != pfn0 + j || !is_tail(flags_[i + j]) || (e & kPmUffdWp) != wp) return false;
    }
    return true;
  }

  ProcSource& src_;
  int pid_;
  const SnapshotOptions& opts_;
  FrameProbe& probe_;
  std::uint64_t page_;
  std::uint64_t chunk_ = 0;
  std::vector<std::uint64_t> entries_, flags_, counts_, window_, window_count_;
  std::unordered_map<std::uint64_t, FolioUse> partial_;
  SnapshotStats stats_;
};

std::string trim_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

// ---- public -------------------------------------------------------------------------

std::unique_ptr<ProcSource> make_live_proc_source() { return std::make_unique<LiveProcSource>(); }

FolioSplit& FolioSplit::operator+=(const FolioSplit& o) {
  aligned += o.aligned;
  unaligned += o.unaligned;
  partial += o.partial;
  return *this;
}

std::map<std::uint64_t, std::uint64_t> SnapshotStats::folio_bytes() const {
  std::map<std::uint64_t, std::uint64_t> out;
  for (const auto* m : {&anon_folios, &file_folios})
    for (const auto& [size, s] : *m) out[size] += s.total();
  return out;
}

SnapshotStats& SnapshotStats::operator+=(const SnapshotStats& o) {
  resident_bytes += o.resident_bytes;
  anon_bytes += o.anon_bytes;
  file_bytes += o.file_bytes;
  zero_page_bytes += o.zero_page_bytes;
  special_bytes += o.special_bytes;
  swapped_bytes += o.swapped_bytes;
  shared_bytes += o.shared_bytes;
  smaps_rss_bytes += o.smaps_rss_bytes;
  pmd_mapped_bytes += o.pmd_mapped_bytes;
  inconsistent_pages += o.inconsistent_pages;
  for (const auto& [k, v] : o.anon_folios) anon_folios[k] += v;
  for (const auto& [k, v] : o.file_folios) file_folios[k] += v;
  for (const auto& [k, v] : o.cont_bytes) cont_bytes[k] += v;
  for (const auto& [k, v] : o.resident_block_bytes) resident_block_bytes[k] += v;
  return *this;
}

ProcessSnapshot snapshot_process(ProcSource& src, int pid, const SnapshotOptions& opts) {
  if (!opts.no_pfn && !src.pfns_readable())
    pfns_hidden("/proc/kpageflags cannot be opened");
  src.begin(pid);
  ProcessSnapshot p;
  p.pid = pid;
  p.pfns = !opts.no_pfn;
  p.comm = trim_newline(src.read_text(pid, "comm"));
  const std::string maps_file = fmt::format("/proc/{}/maps", pid);
  std::vector<Vma> vmas = parse_maps(src.read_text(pid, "maps"), maps_file);
  const std::string smaps_file = fmt::format("/proc/{}/smaps", pid);
  const std::size_t unmatched = apply_smaps(src.read_text(pid, "smaps"), smaps_file, vmas);
  const auto missing = std::count_if(vmas.begin(), vmas.end(), [](const Vma& v) { return !v.in_smaps; });
  if (unmatched || missing)
    p.notes.push_back(fmt::format("pid {}: the VMAs changed between reading maps and smaps ({} VMAs without smaps "
                                  "figures, {} smaps entries without a VMA)",
                                  pid, missing, unmatched));

  FrameProbe probe(src);
  VmaScanner scanner(src, pid, opts, probe);
  for (auto& v : vmas) {
    // pagemap covers user addresses below the task size only; the x86
    // vsyscall page lies above it (and is no normal memory).
    if (v.name == "[vsyscall]") continue;
    VmaSnapshot vs{v, scanner.scan(v)};
    p.total += vs.stats;
    p.vmas.push_back(std::move(vs));
  }
  if (p.total.inconsistent_pages)
    p.notes.push_back(fmt::format("pid {}: {} pages changed while being read (folio split, freed or migrated); "
                                  "counted as 4K folios",
                                  pid, p.total.inconsistent_pages));
  return p;
}

SnapshotSet snapshot_processes(ProcSource& src, const std::vector<int>& pids, const SnapshotOptions& opts) {
  SnapshotSet set;
  for (int pid : pids) {
    try {
      ProcessSnapshot p = snapshot_process(src, pid, opts);
      set.total += p.total;
      set.notes.insert(set.notes.end(), p.notes.begin(), p.notes.end());
      set.processes.push_back(std::move(p));
    } catch (const ProcessGone& e) {
      set.notes.push_back(fmt::format("pid {}: skipped, it exited before or while being read ({})", pid, e.what()));
    }
  }
  return set;
}

namespace {

// "always [madvise] never" -> "madvise".
std::string bracketed_choice(const std::string& file) {
  std::ifstream in(file);
  if (!in) throw SnapshotError(fmt::format("{}: cannot read: {}", file, std::strerror(errno)));
  std::string line;
  std::getline(in, line);
  const auto open = line.find('[');
  const auto close = line.find(']', open == std::string::npos ? 0 : open);
  if (open == std::string::npos || close == std::string::npos || close == open + 1 ||
      line.find('[', open + 1) < close || line.find('[', close) != std::string::npos)
    throw SnapshotError(
        fmt::format("{}:1: expected one bracketed choice such as 'always [madvise] never', found '{}'", file, line));
  return line.substr(open + 1, close - open - 1);
}

}  // namespace

std::string ThpHostSettings::effective(std::uint64_t bytes) const {
  const auto it = sizes.find(bytes);
  if (it == sizes.end()) return {};
  return it->second == "inherit" ? enabled : it->second;
}

ThpHostSettings read_thp_settings(const std::string& dir) {
  namespace fs = std::filesystem;
  ThpHostSettings t;
  t.dir = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return t;
  t.present = true;
  t.enabled = bracketed_choice(dir + "/enabled");
  if (fs::exists(dir + "/defrag", ec)) t.defrag = bracketed_choice(dir + "/defrag");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    unsigned kb = 0;
    if (name.rfind("hugepages-", 0) != 0 || !name.ends_with("kB")) continue;
    const std::string_view num = std::string_view(name).substr(10, name.size() - 12);
    const auto [p, err] = std::from_chars(num.data(), num.data() + num.size(), kb);
    if (err != std::errc() || p != num.data() + num.size() || kb == 0) continue;
    if (!fs::exists(e.path() / "enabled", ec)) continue;
    t.sizes[std::uint64_t{kb} << 10] = bracketed_choice((e.path() / "enabled").string());
  }
  return t;
}

std::uint64_t parse_size(std::string_view text, std::string_view what) {
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 10);
  std::string_view suffix = text.substr(static_cast<std::size_t>(p - text.data()));
  std::uint64_t mult = 1;
  if (!suffix.empty()) {
    switch (suffix[0]) {
      case 'K': case 'k': mult = 1ull << 10; break;
      case 'M': case 'm': mult = 1ull << 20; break;
      case 'G': case 'g': mult = 1ull << 30; break;
      default: mult = 0;
    }
    suffix.remove_prefix(1);
    if (suffix == "B" || suffix == "iB") suffix = {};
  }
  if (ec != std::errc() || p == text.data() || mult == 0 || !suffix.empty())
    throw SnapshotError(fmt::format("{}: expected a size like 64K or 2M, found '{}'", what, text));
  const std::uint64_t bytes = v * mult;
  if (v > (1ull << 40) || !std::has_single_bit(bytes) || bytes < 4096 || bytes > (1ull << 30))
    throw SnapshotError(fmt::format("{}: '{}' is not a power of two between 4K and 1G", what, text));
  return bytes;
}

std::string size_name(std::uint64_t bytes) {
  if (bytes >= (1ull << 30) && bytes % (1ull << 30) == 0) return fmt::format("{}G", bytes >> 30);
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) return fmt::format("{}M", bytes >> 20);
  if (bytes >= (1ull << 10) && bytes % (1ull << 10) == 0) return fmt::format("{}K", bytes >> 10);
  return fmt::format("{}B", bytes);
}

}  // namespace contpte
