// hostproc/proc_text.cpp — the text of /proc files (maps, smaps,
// cgroup.procs) and a recorded copy of a process's /proc (tests,
// docs/snapshot.md); see snapshot.h. The live files are read in
// snapshot.cpp.

#include "hostproc/snapshot.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
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

// ---- small text parsing ---------------------------------------------------------

// A cursor over the characters of one /proc line (hex and decimal fields,
// blanks) that reports FILE:LINE:COL. Not scenario/parse_text.h's
// LineCursor, which walks the tokens of a .cpt line: hostproc/ stands
// apart from the simulator's layers and shares no code with them.
class ProcLineCursor {
 public:
  ProcLineCursor(std::string_view line, const std::string& file, unsigned lineno)
      : line_(line), file_(file), lineno_(lineno) {}

  [[noreturn]] void error(std::size_t col0, const std::string& what) const {
    throw SnapshotError(fmt::format("{}:{}:{}: error: {}", file_, lineno_, col0 + 1, what));
  }
  std::string_view found(std::size_t at) const {
    std::string_view rest = line_.substr(std::min(at, line_.size()));
    const auto sp = rest.find_first_of(" \t");
    rest = rest.substr(0, sp);
    return rest;
  }
  std::string shown(std::size_t at) const {
    const auto f = found(at);
    return f.empty() ? std::string("end of line") : fmt::format("'{}'", f);
  }

  std::uint64_t hex(const char* what) {
    std::uint64_t v = 0;
    const char* b = line_.data() + pos_;
    const char* e = line_.data() + line_.size();
    const auto [p, ec] = std::from_chars(b, e, v, 16);
    if (ec != std::errc() || p == b) error(pos_, fmt::format("expected {} (hex), found {}", what, shown(pos_)));
    pos_ += static_cast<std::size_t>(p - b);
    return v;
  }
  std::uint64_t dec(const char* what) {
    std::uint64_t v = 0;
    const char* b = line_.data() + pos_;
    const char* e = line_.data() + line_.size();
    const auto [p, ec] = std::from_chars(b, e, v, 10);
    if (ec != std::errc() || p == b) error(pos_, fmt::format("expected {} (decimal), found {}", what, shown(pos_)));
    pos_ += static_cast<std::size_t>(p - b);
    return v;
  }
  void expect(char c, const char* what) {
    if (pos_ >= line_.size() || line_[pos_] != c) error(pos_, fmt::format("expected {}, found {}", what, shown(pos_)));
    ++pos_;
  }
  // At least one blank.
  void blanks(const char* before) {
    if (pos_ >= line_.size() || (line_[pos_] != ' ' && line_[pos_] != '\t'))
      error(pos_, fmt::format("expected a blank before {}, found {}", before, shown(pos_)));
    skip_blanks();
  }
  void skip_blanks() {
    while (pos_ < line_.size() && (line_[pos_] == ' ' || line_[pos_] == '\t')) ++pos_;
  }
  std::string_view word() {
    const std::size_t b = pos_;
    while (pos_ < line_.size() && line_[pos_] != ' ' && line_[pos_] != '\t') ++pos_;
    return line_.substr(b, pos_ - b);
  }
  std::string_view rest() {
    auto r = line_.substr(std::min(pos_, line_.size()));
    pos_ = line_.size();
    return r;
  }
  bool at_end() const { return pos_ >= line_.size(); }
  std::size_t pos() const { return pos_; }

 private:
  std::string_view line_;
  const std::string& file_;
  unsigned lineno_;
  std::size_t pos_ = 0;
};

template <class F>
void for_each_line(std::string_view text, F&& f) {
  unsigned lineno = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++lineno;
    f(line, lineno);
  }
}

bool perms_ok(std::string_view p) {
  return p.size() == 4 && (p[0] == 'r' || p[0] == '-') && (p[1] == 'w' || p[1] == '-') &&
         (p[2] == 'x' || p[2] == '-') && (p[3] == 'p' || p[3] == 's');
}

// One maps-format line: "start-end perms offset dev inode   name".
Vma parse_vma_line(ProcLineCursor& c) {
  Vma v;
  v.start = c.hex("a start address");
  c.expect('-', "'-' between start and end address");
  const std::size_t end_col = c.pos();
  v.end = c.hex("an end address");
  if (v.end <= v.start) c.error(end_col, fmt::format("end address {:#x} is not above start {:#x}", v.end, v.start));
  c.blanks("the permissions");
  const std::size_t perm_col = c.pos();
  v.perms = std::string(c.word());
  if (!perms_ok(v.perms))
    c.error(perm_col, fmt::format("expected permissions like 'rw-p', found '{}'", v.perms));
  c.blanks("the offset");
  v.offset = c.hex("a file offset");
  c.blanks("the device");
  c.hex("a device major number");
  c.expect(':', "':' in the device number");
  c.hex("a device minor number");
  c.blanks("the inode");
  c.dec("an inode number");
  c.skip_blanks();
  v.name = std::string(c.rest());
  return v;
}

// "start-end " at the start of a line marks an smaps header.
bool looks_like_vma_header(std::string_view line) {
  const auto dash = line.find('-');
  if (dash == 0 || dash == std::string_view::npos) return false;
  return std::all_of(line.begin(), line.begin() + static_cast<std::ptrdiff_t>(dash),
                     [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)); });
}

// ---- recorded /proc ----------------------------------------------------------------

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SnapshotError(fmt::format("{}: cannot read", path));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// "HEX HEX [xN]" lines into a map; returns the `end VADDR` limit if one is given.
std::optional<std::uint64_t> parse_pairs(std::string_view text, const std::string& file,
                                         std::map<std::uint64_t, std::uint64_t>& out, bool allow_end) {
  std::optional<std::uint64_t> end;
  for_each_line(text, [&](std::string_view line, unsigned lineno) {
    ProcLineCursor c(line, file, lineno);
    c.skip_blanks();
    if (c.at_end() || line[c.pos()] == '#') return;
    if (allow_end && line.substr(c.pos()).starts_with("end")) {
      c.word();
      c.blanks("the end address");
      end = c.hex("an end address");
    } else {
      const std::uint64_t k = c.hex("an address or PFN");
      c.blanks("the value");
      const std::uint64_t v = c.hex("a 64-bit value");
      std::uint64_t n = 1;
      c.skip_blanks();
      if (!c.at_end() && line[c.pos()] == 'x') {
        c.expect('x', "'x' before a repeat count");
        const std::size_t col = c.pos();
        n = c.dec("a repeat count");
        if (n == 0 || n > (1u << 20)) c.error(col, fmt::format("repeat count {} is not in 1..1048576", n));
      }
      // A run: `pagemap` steps the address a page and, for a present entry,
      // the PFN by one; frame files step the PFN and repeat the value.
      const bool step_pfn = allow_end && (v & kPmPresent);
      for (std::uint64_t j = 0; j < n; ++j) out[k + j * (allow_end ? 4096 : 1)] = step_pfn ? v + j : v;
    }
    c.skip_blanks();
    if (!c.at_end()) c.error(c.pos(), fmt::format("expected end of line, found {}", c.shown(c.pos())));
  });
  return end;
}

class RecordedProcSource final : public ProcSource {
 public:
  explicit RecordedProcSource(std::string dir) : dir_(std::move(dir)) {
    const std::string pm = dir_ + "/pagemap";
    std::map<std::uint64_t, std::uint64_t> by_addr;
    pagemap_end_ = parse_pairs(read_whole(pm), pm, by_addr, true);
    for (const auto& [addr, e] : by_addr) pagemap_[addr / 4096] = e;
    for (const auto& [name, m] : {std::pair{"kpageflags", &kpageflags_}, std::pair{"kpagecount", &kpagecount_}}) {
      const std::string path = dir_ + "/" + name;
      if (std::ifstream(path)) parse_pairs(read_whole(path), path, *m, false);
      else has_frames_ = false;
    }
  }

  std::string read_text(int, std::string_view name) override { return read_whole(dir_ + "/" + std::string(name)); }
  std::size_t read_pagemap(int, std::uint64_t first_vpn, std::span<std::uint64_t> out) override {
    std::size_t n = out.size();
    if (pagemap_end_) {
      const std::uint64_t end_vpn = *pagemap_end_ / 4096;
      n = first_vpn >= end_vpn ? 0 : static_cast<std::size_t>(std::min<std::uint64_t>(n, end_vpn - first_vpn));
    }
    read_sparse_words(pagemap_, first_vpn, out.first(n));
    return n;
  }
  std::size_t read_kpageflags(std::uint64_t first, std::span<std::uint64_t> out) override {
    return read_sparse_words(kpageflags_, first, out);
  }
  std::size_t read_kpagecount(std::uint64_t first, std::span<std::uint64_t> out) override {
    return read_sparse_words(kpagecount_, first, out);
  }
  bool pfns_readable() override { return has_frames_; }
  bool alive(int) override { return true; }
  std::uint64_t page_size() const override { return 4096; }

 private:
  std::string dir_;
  std::map<std::uint64_t, std::uint64_t> pagemap_, kpageflags_, kpagecount_;
  std::optional<std::uint64_t> pagemap_end_;
  bool has_frames_ = true;
};

}  // namespace


std::size_t read_sparse_words(const std::map<std::uint64_t, std::uint64_t>& words, std::uint64_t first,
                              std::span<std::uint64_t> out) {
  std::fill(out.begin(), out.end(), 0);
  for (auto it = words.lower_bound(first); it != words.end() && it->first - first < out.size(); ++it)
    out[it->first - first] = it->second;
  return out.size();
}

std::unique_ptr<ProcSource> make_recorded_proc_source(const std::string& dir) {
  return std::make_unique<RecordedProcSource>(dir);
}

std::vector<Vma> parse_maps(std::string_view text, const std::string& file) {
  std::vector<Vma> vmas;
  for_each_line(text, [&](std::string_view line, unsigned lineno) {
    if (line.empty()) return;
    ProcLineCursor c(line, file, lineno);
    Vma v = parse_vma_line(c);
    if (!vmas.empty() && v.start < vmas.back().end)
      c.error(0, fmt::format("VMA {:#x} starts below the end {:#x} of the one before", v.start, vmas.back().end));
    vmas.push_back(std::move(v));
  });
  return vmas;
}

std::size_t apply_smaps(std::string_view text, const std::string& file, std::vector<Vma>& vmas) {
  Vma* cur = nullptr;
  bool in_entry = false;
  std::size_t unmatched = 0;
  for_each_line(text, [&](std::string_view line, unsigned lineno) {
    if (line.empty()) return;
    ProcLineCursor c(line, file, lineno);
    if (looks_like_vma_header(line)) {
      const Vma h = parse_vma_line(c);
      auto it = std::lower_bound(vmas.begin(), vmas.end(), h.start,
                                 [](const Vma& v, std::uint64_t s) { return v.start < s; });
      cur = it != vmas.end() && it->start == h.start && it->end == h.end ? &*it : nullptr;
      if (cur) cur->in_smaps = true;
      else ++unmatched;
      in_entry = true;
      return;
    }
    if (!in_entry) c.error(0, fmt::format("expected a VMA line 'start-end perms ...', found {}", c.shown(0)));
    const std::string_view key = c.word();
    if (key.size() < 2 || key.back() != ':')
      c.error(0, fmt::format("expected 'Key:' or a VMA line, found {}", c.shown(0)));
    const std::string_view name = key.substr(0, key.size() - 1);
    const bool rss = name == "Rss";
    const bool pmd = name == "AnonHugePages" || name == "ShmemPmdMapped" || name == "FilePmdMapped";
    if (!rss && !pmd) return;  // other keys (VmFlags, THPeligible, ...) are not used
    c.blanks("the value");
    const std::uint64_t kb = c.dec("a size in kB");
    c.skip_blanks();
    const std::size_t unit_col = c.pos();
    if (c.rest() != "kB") c.error(unit_col, fmt::format("expected 'kB' after the {} size", name));
    if (!cur) return;
    if (rss) cur->smaps_rss = kb * 1024;
    else cur->smaps_pmd_mapped += kb * 1024;
  });
  return unmatched;
}

std::vector<int> cgroup_pids(const std::string& path) {
  std::string dir = path;
  if (dir.empty() || dir[0] != '/') dir = "/sys/fs/cgroup/" + dir;
  const std::string file = dir + "/cgroup.procs";
  std::ifstream in(file);
  if (!in) throw SnapshotError(fmt::format("--cgroup: cannot read '{}' (a cgroup v2 directory was expected)", file));
  std::ostringstream s;
  s << in.rdbuf();
  std::vector<int> pids;
  for_each_line(s.str(), [&](std::string_view line, unsigned lineno) {
    if (line.empty()) return;
    ProcLineCursor c(line, file, lineno);
    const std::uint64_t pid = c.dec("a PID");
    if (!c.at_end() || pid == 0 || pid > 0x7fffffff) c.error(0, fmt::format("expected a PID, found '{}'", line));
    pids.push_back(static_cast<int>(pid));
  });
  return pids;
}

}  // namespace contpte
