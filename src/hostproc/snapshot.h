// hostproc/snapshot.h — what contpte would cover in a live process
// (`contpte snapshot PID...`).
//
// Owns: reading a process's VMAs (/proc/PID/maps, smaps), its page-table
// view (/proc/PID/pagemap) and the kernel's per-frame view (/proc/kpageflags,
// /proc/kpagecount); identifying the folio behind every resident page; the
// per-VMA and per-process statistics: resident bytes, folio sizes split into
// aligned / unaligned / partially mapped for anon and file, PMD- vs
// PTE-mapped, and `cont_bytes` per block size (docs/design.md "Interfaces").
// All /proc access goes through ProcSource, so tests feed recorded files.
// Must not know: report formats (report/snapshot_report.h prints and writes).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace contpte {

// Bad /proc content (or a bad recorded file): the message names the file,
// the line and column (text) or the byte offset (binary) and what was
// expected. The CLI maps it to exit 2.
class SnapshotError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The process went away while it was being read. Not an input error: the
// snapshot notes it and carries on with the other processes.
class ProcessGone : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---- where /proc content comes from ----------------------------------------

// The files a snapshot reads. Binary files are arrays of 64-bit entries:
// pagemap indexed by virtual page number, kpageflags and kpagecount by PFN.
// A read returns how many entries it got: fewer than asked means the file
// ended there (kpageflags past the last PFN) or was cut short.
class ProcSource {
 public:
  virtual ~ProcSource() = default;
  // A new snapshot of `pid` starts: drop handles kept for an earlier one (a
  // pagemap stays bound to the mm it was opened on, and PIDs are reused).
  virtual void begin(int /*pid*/) {}
  // The whole text of /proc/PID/NAME (NAME = maps, smaps, comm).
  // Throws ProcessGone when the process does not exist (any more).
  virtual std::string read_text(int pid, std::string_view name) = 0;
  virtual std::size_t read_pagemap(int pid, std::uint64_t first_vpn, std::span<std::uint64_t> out) = 0;
  // The parts of [start, end) (byte addresses, page aligned) that hold
  // present or swapped pages, in order; nullopt when the source cannot tell
  // (then every page of a VMA is read). Lets a sparse VMA of terabytes
  // (sanitizer shadow, runtime reservations) cost what its pages cost.
  virtual std::optional<std::vector<std::pair<std::uint64_t, std::uint64_t>>> populated_ranges(
      int /*pid*/, std::uint64_t /*start*/, std::uint64_t /*end*/) {
    return std::nullopt;
  }
  virtual std::size_t read_kpageflags(std::uint64_t first_pfn, std::span<std::uint64_t> out) = 0;
  virtual std::size_t read_kpagecount(std::uint64_t first_pfn, std::span<std::uint64_t> out) = 0;
  // Whether the kernel lets us see page frame numbers at all (kpageflags
  // opens). Pagemap hides PFNs (reads them as 0) without CAP_SYS_ADMIN.
  virtual bool pfns_readable() = 0;
  virtual bool alive(int pid) = 0;
  virtual std::uint64_t page_size() const = 0;
};

// For sources that hold pagemap / kpageflags words sparsely (a recording,
// a test's model): out[i] = words[first + i], 0 where absent; returns
// out.size().
std::size_t read_sparse_words(const std::map<std::uint64_t, std::uint64_t>& words, std::uint64_t first,
                              std::span<std::uint64_t> out);

// The real /proc of this host. Keeps the pagemap of the last process and
// /proc/kpageflags, /proc/kpagecount open between reads.
std::unique_ptr<ProcSource> make_live_proc_source();

// A recorded process in a directory: `maps`, `smaps`, `comm` verbatim, and
// the binary files as text, one `HEX HEX [xN]` line each (`#` comments):
// `pagemap` = VADDR ENTRY, `kpageflags` / `kpagecount` = PFN VALUE; `xN`
// repeats the line for N pages (pagemap: next page, and next PFN if the
// entry is present; frame files: next PFN, same value); unlisted entries
// read as 0. `pagemap` may end with `end VADDR`: reads at or past it
// come back short, as a cut-short file would. Every recorded process answers
// to any PID. The page size is 4K.
std::unique_ptr<ProcSource> make_recorded_proc_source(const std::string& dir);

// ---- parsed /proc text ------------------------------------------------------

struct Vma {
  std::uint64_t start = 0, end = 0;  // [start, end)
  std::string perms;                 // "rw-p"
  std::uint64_t offset = 0;
  std::string name;                  // path, [heap], [stack], ... or "" (anonymous)
  // From smaps (0 when smaps has no entry for this VMA).
  std::uint64_t smaps_rss = 0;
  std::uint64_t smaps_pmd_mapped = 0;  // AnonHugePages + ShmemPmdMapped + FilePmdMapped
  bool in_smaps = false;
};

// /proc/PID/maps; `file` names the source in errors ("/proc/42/maps").
std::vector<Vma> parse_maps(std::string_view text, const std::string& file);
// Fills the smaps fields of `vmas` (matched by start address) from
// /proc/PID/smaps. Returns the number of smaps entries that match no VMA
// (the process changed between the two reads).
std::size_t apply_smaps(std::string_view text, const std::string& file, std::vector<Vma>& vmas);

// ---- statistics --------------------------------------------------------------

// Bytes of a folio size mapped in a VMA, by how the folio is mapped:
// aligned = the whole folio mapped here, in order, at a virtual address
// aligned to the folio size; unaligned = the whole folio mapped here but not
// so; partial = only part of the folio mapped in this VMA.
struct FolioSplit {
  std::uint64_t aligned = 0, unaligned = 0, partial = 0;
  std::uint64_t total() const { return aligned + unaligned + partial; }
  FolioSplit& operator+=(const FolioSplit& o);
};

struct SnapshotStats {
  std::uint64_t resident_bytes = 0;     // pagemap present, a normal page (not the zero page)
  std::uint64_t anon_bytes = 0, file_bytes = 0;
  std::uint64_t zero_page_bytes = 0;    // the shared zero page (smaps does not count it)
  std::uint64_t special_bytes = 0;      // present PTEs to frames without a struct page (PFN maps)
  std::uint64_t swapped_bytes = 0;
  std::uint64_t shared_bytes = 0;       // kpagecount > 1
  std::uint64_t smaps_rss_bytes = 0;
  std::uint64_t pmd_mapped_bytes = 0;   // from smaps
  std::uint64_t pte_mapped_bytes() const {
    return resident_bytes > pmd_mapped_bytes ? resident_bytes - pmd_mapped_bytes : 0;
  }
  std::uint64_t inconsistent_pages = 0; // folio layout changed while being read
  // Folio size in bytes -> split; anon and file apart.
  std::map<std::uint64_t, FolioSplit> anon_folios, file_folios;
  // Block size in bytes -> bytes in blocks contpte could map (docs/design.md cont_bytes).
  std::map<std::uint64_t, std::uint64_t> cont_bytes;
  // Block size -> bytes in blocks that are fully resident and virtually
  // aligned: all that can be said without PFNs, an upper bound of cont_bytes.
  std::map<std::uint64_t, std::uint64_t> resident_block_bytes;

  // folio_bytes of docs/design.md: size -> bytes, anon and file together.
  std::map<std::uint64_t, std::uint64_t> folio_bytes() const;
  SnapshotStats& operator+=(const SnapshotStats& o);
};

struct VmaSnapshot {
  Vma vma;
  SnapshotStats stats;
};

struct ProcessSnapshot {
  int pid = 0;
  std::string comm;
  std::vector<VmaSnapshot> vmas;
  SnapshotStats total;
  bool pfns = true;                 // false: --no-pfn (folio and cont figures absent)
  std::vector<std::string> notes;   // changes seen while reading
};

struct SnapshotOptions {
  std::vector<std::uint64_t> cont_sizes{64 * 1024, 2 * 1024 * 1024};  // bytes, powers of two
  bool no_pfn = false;              // do not read PFNs: resident and VA-only figures
  std::size_t pagemap_chunk = 1 << 16;  // pagemap entries per read (512 KiB)
};

// One process. Throws SnapshotError for bad /proc content, ProcessGone when
// the process is gone before anything could be read, and SnapshotError
// saying PFNs are hidden when they are and `no_pfn` is off.
ProcessSnapshot snapshot_process(ProcSource& src, int pid, const SnapshotOptions& opts);

// Several processes; a process that is gone becomes a note in `gone`
// instead of a snapshot.
struct SnapshotSet {
  std::vector<ProcessSnapshot> processes;
  std::vector<std::string> notes;
  SnapshotStats total;  // over all processes
};
SnapshotSet snapshot_processes(ProcSource& src, const std::vector<int>& pids, const SnapshotOptions& opts);

// The PIDs of a cgroup (v2 cgroup.procs under PATH; a relative PATH is taken
// under /sys/fs/cgroup). Throws SnapshotError naming the file.
std::vector<int> cgroup_pids(const std::string& path);

// ---- the host's THP settings -----------------------------------------------

// /sys/kernel/mm/transparent_hugepage as the snapshot's verdict needs it:
// the top-level `enabled` and `defrag`, and per mTHP size the
// hugepages-<N>kB/enabled policy (Linux 6.8+). Each value is the bracketed
// word of its file ("always [madvise] never" -> "madvise").
struct ThpHostSettings {
  bool present = false;  // the directory exists (THP built in)
  std::string dir;       // where it was read
  std::string enabled;   // always | madvise | never
  std::string defrag;    // always | defer | defer+madvise | madvise | never ("" when absent)
  std::map<std::uint64_t, std::string> sizes;  // folio bytes -> always | inherit | madvise | never
  // The policy anonymous faults apply to folios of `bytes`: `inherit`
  // resolved to `enabled`; "" when the kernel offers no such size.
  std::string effective(std::uint64_t bytes) const;
};

// Reads the settings under `dir`; a missing directory gives present=false.
// Throws SnapshotError naming the file when one holds no single bracketed
// choice.
ThpHostSettings read_thp_settings(const std::string& dir = "/sys/kernel/mm/transparent_hugepage");

// "64K" -> 65536; accepts B/K/M/G suffixes; a power of two, at least 4K.
// Throws SnapshotError("--cont: ...").
std::uint64_t parse_size(std::string_view text, std::string_view what);
// 65536 -> "64K", 2097152 -> "2M", 4096 -> "4K".
std::string size_name(std::uint64_t bytes);

}  // namespace contpte
