// tests/hostproc/snapshot_test.cpp — `contpte snapshot` (hostproc/snapshot.h).
//
// Three kinds of test: recorded /proc files (tests/data/snapshot/, any
// host), fuzzed /proc input (must give a located SnapshotError, never a
// crash), and live child processes checked against a naive reading of
// pagemap + kpageflags and against smaps (root and /proc/kpageflags needed;
// skipped with the reason otherwise).

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report/snapshot_report.h"
#include "hostproc/snapshot.h"

namespace fs = std::filesystem;
using namespace contpte;

namespace {

constexpr std::uint64_t K = 1024, M = 1024 * 1024;

fs::path data_dir(const char* name) { return fs::path(CONTPTE_SOURCE_DIR) / "tests" / "data" / "snapshot" / name; }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::uint64_t at_or_0(const std::map<std::uint64_t, std::uint64_t>& m, std::uint64_t k) {
  const auto it = m.find(k);
  return it == m.end() ? 0 : it->second;
}

const VmaSnapshot& vma_at(const ProcessSnapshot& p, std::uint64_t addr) {
  for (const auto& v : p.vmas)
    if (v.vma.start <= addr && addr < v.vma.end) return v;
  throw std::runtime_error(fmt::format("no VMA at {:#x}", addr));
}

// A scratch directory holding a copy of a fixture, so a test may corrupt it.
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const char* fixture) {
    path = fs::temp_directory_path() / fmt::format("contpte-snap-{}-{}", ::getpid(), counter()++);
    fs::create_directories(path);
    for (const auto& e : fs::directory_iterator(data_dir(fixture))) fs::copy_file(e.path(), path / e.path().filename());
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const char* name, const std::string& text) const { std::ofstream(path / name, std::ios::binary) << text; }
  static int& counter() {
    static int n = 0;  // test-local naming only
    return n;
  }
};

SnapshotError snapshot_error(const fs::path& dir, SnapshotOptions opts = {}) {
  try {
    auto src = make_recorded_proc_source(dir.string());
    snapshot_process(*src, 42, opts);
  } catch (const SnapshotError& e) {
    return e;
  }
  ADD_FAILURE() << "no SnapshotError";
  return SnapshotError("");
}

}  // namespace

// ---- recorded files ------------------------------------------------------------

// DESIGN: cont_bytes[B] is the resident memory in blocks of size B that are fully resident,
// virtually and physically aligned, physically contiguous, in one folio, with one protection.
TEST(SnapshotRecorded, BasicFixtureFolioSizesAndContBytes) {
  auto src = make_recorded_proc_source(data_dir("basic").string());
  const ProcessSnapshot p = snapshot_process(*src, 42, {});
  EXPECT_EQ(p.comm, "example");
  ASSERT_EQ(p.vmas.size(), 3u);
  const SnapshotStats& a = vma_at(p, 0x200000).stats;
  EXPECT_EQ(a.resident_bytes, 569 * 4 * K);  // 512 + 16 + 16 + 8 + 1 + 16 pages; the zero page apart
  EXPECT_EQ(a.resident_bytes, a.smaps_rss_bytes);
  EXPECT_EQ(a.zero_page_bytes, 4 * K);
  EXPECT_EQ(a.swapped_bytes, 4 * K);
  EXPECT_EQ(a.anon_bytes, a.resident_bytes);
  EXPECT_EQ(a.anon_folios.at(2 * M).aligned, 2 * M);
  EXPECT_EQ(a.anon_folios.at(64 * K).aligned, 64 * K);
  EXPECT_EQ(a.anon_folios.at(64 * K).unaligned, 64 * K);
  EXPECT_EQ(a.anon_folios.at(64 * K).partial, 32 * K);  // half of the folio at PFN 0x20030
  EXPECT_EQ(a.anon_folios.at(4 * K).aligned, 17 * 4 * K);
  EXPECT_TRUE(a.file_folios.empty());
  // The 2M THP folds into 32 64K blocks and one 2M block; the aligned 64K folio into one.
  // Not counted: the unaligned folio, the partial one, and 16 consecutive 4K folios.
  EXPECT_EQ(a.cont_bytes.at(64 * K), 2 * M + 64 * K);
  EXPECT_EQ(a.cont_bytes.at(2 * M), 2 * M);
  // Without PFNs: all fully resident VA-aligned blocks, the 4K run included.
  EXPECT_EQ(a.resident_block_bytes.at(64 * K), 34 * 64 * K);
  EXPECT_EQ(a.pmd_mapped_bytes, 2 * M);
  EXPECT_EQ(a.pte_mapped_bytes(), a.resident_bytes - 2 * M);
  EXPECT_EQ(a.folio_bytes().at(64 * K), 160 * K);

  const SnapshotStats& f = vma_at(p, 0x7f0000000000).stats;
  EXPECT_EQ(f.file_bytes, 68 * K);
  EXPECT_EQ(f.file_folios.at(64 * K).aligned, 64 * K);
  EXPECT_EQ(f.file_folios.at(4 * K).aligned, 4 * K);
  EXPECT_EQ(f.cont_bytes.at(64 * K), 64 * K);
  EXPECT_EQ(f.shared_bytes, 4 * K);  // kpagecount 2

  EXPECT_EQ(p.total.resident_bytes, a.resident_bytes + f.resident_bytes + 4 * K);
  EXPECT_EQ(p.total.cont_bytes.at(64 * K), 2 * M + 128 * K);
  EXPECT_TRUE(p.notes.empty());
}

TEST(SnapshotRecorded, SmallChunksGiveTheSameAnswer) {
  // Folios crossing a pagemap read take the slow path; the figures must not change.
  auto src = make_recorded_proc_source(data_dir("basic").string());
  SnapshotOptions small;
  small.pagemap_chunk = 8;  // rounded up to the largest block (512 pages)
  SnapshotOptions big;
  const auto a = snapshot_json(SnapshotSet{{snapshot_process(*src, 42, small)}, {}, {}}, false);
  const auto b = snapshot_json(SnapshotSet{{snapshot_process(*src, 42, big)}, {}, {}}, false);
  EXPECT_EQ(a, b);
}

TEST(SnapshotRecorded, ExtraContSize) {
  auto src = make_recorded_proc_source(data_dir("basic").string());
  SnapshotOptions o;
  o.cont_sizes = {32 * K, 64 * K, 2 * M};
  const auto p = snapshot_process(*src, 42, o);
  // 32K blocks: 64 in the THP, 2 in the aligned 64K folio, 1 in the partial half, 2 in the file folio.
  EXPECT_EQ(p.total.cont_bytes.at(32 * K), (64 + 2 + 1 + 2) * 32 * K);
}

TEST(SnapshotRecorded, NoPfnShowsResidentAndAlignedBlocksOnly) {
  ScratchDir d("basic");
  fs::remove(d.path / "kpageflags");
  const SnapshotError e = snapshot_error(d.path);
  EXPECT_NE(std::string(e.what()).find("PFNs are hidden: /proc/kpageflags cannot be opened"), std::string::npos)
      << e.what();
  EXPECT_NE(std::string(e.what()).find("--no-pfn"), std::string::npos);
  auto src = make_recorded_proc_source(d.path.string());
  SnapshotOptions o;
  o.no_pfn = true;
  const auto p = snapshot_process(*src, 42, o);
  EXPECT_FALSE(p.pfns);
  // The zero page cannot be told apart without PFNs: it counts as resident.
  EXPECT_EQ(vma_at(p, 0x200000).stats.resident_bytes, 570 * 4 * K);
  EXPECT_EQ(vma_at(p, 0x7f0000000000).stats.file_bytes, 68 * K);
  EXPECT_EQ(vma_at(p, 0x200000).stats.resident_block_bytes.at(64 * K), 34 * 64 * K);
  EXPECT_EQ(p.total.cont_bytes.at(64 * K), 0u);
  const auto j = snapshot_json(SnapshotSet{{p}, {}, {}}, false);
  EXPECT_FALSE(j["processes"][0]["total"].contains("cont_bytes"));
}

TEST(SnapshotRecorded, PfnZeroMeansHidden) {
  ScratchDir d("basic");
  d.write("pagemap", "200000 8000000000000000 x16\n");
  const SnapshotError e = snapshot_error(d.path);
  EXPECT_STREQ(e.what(),
               "PFNs are hidden: /proc/42/pagemap reports PFN 0 for resident pages; reading page frame numbers "
               "needs root (CAP_SYS_ADMIN). `--no-pfn` shows what can be told without them (resident bytes, "
               "virtually aligned resident blocks)");
}

TEST(SnapshotRecorded, ShortPagemapIsALocatedError) {
  ScratchDir d("basic");
  d.write("pagemap", slurp(d.path / "pagemap") + "end 300000\n");
  const SnapshotError e = snapshot_error(d.path);
  // The VMA starts at VPN 0x200; the read of 0x400 entries stops after 0x100.
  EXPECT_STREQ(e.what(), "/proc/42/pagemap: offset 0x1800: short read: 256 of 1024 entries");
}

TEST(SnapshotRecorded, JsonHasTheDesignKeys) {
  auto src = make_recorded_proc_source(data_dir("basic").string());
  const auto j = snapshot_json(snapshot_processes(*src, {42}, {}), false);
  EXPECT_EQ(j["version"], 1);
  const auto& v = j["processes"][0]["vmas"][0];
  EXPECT_EQ(v["start"], "0x200000");
  EXPECT_EQ(v["end"], "0x600000");
  EXPECT_EQ(v["perms"], "rw-p");
  EXPECT_EQ(v["name"], "");
  EXPECT_EQ(v["resident_bytes"], 569 * 4 * K);
  EXPECT_EQ(v["folio_bytes"]["2M"], 2 * M);
  EXPECT_EQ(v["folio_bytes"]["64K"], 160 * K);
  EXPECT_EQ(v["cont_bytes"]["64K"], 2 * M + 64 * K);
  EXPECT_EQ(v["cont_bytes"]["2M"], 2 * M);
  EXPECT_EQ(v["folios"]["anon"]["64K"]["partial"], 32 * K);
  EXPECT_EQ(j["processes"][0]["total"]["cont_bytes"]["64K"], 2 * M + 128 * K);
  EXPECT_EQ(j["total"]["resident_bytes"], j["processes"][0]["total"]["resident_bytes"]);
  const auto r = snapshot_json(snapshot_processes(*src, {42}, {}), true);
  EXPECT_FALSE(r["processes"][0].contains("vmas"));
}

TEST(SnapshotRecorded, TableShowsContPercentOfRss) {
  auto src = make_recorded_proc_source(data_dir("basic").string());
  std::ostringstream out;
  print_snapshot(out, snapshot_processes(*src, {42}, {}), false);
  const std::string t = out.str();
  // 2M + 128K of (569 + 17 + 1) * 4K resident.
  EXPECT_NE(t.find("pid 42 (example): resident 2.3M (anon 2.2M, file 68.0K), smaps Rss 2.3M, PMD-mapped 2.0M"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("64K 2.1M (92.7% of RSS)  2M 2.0M (87.2% of RSS)"), std::string::npos) << t;
  EXPECT_NE(t.find("anon   64K    160.0K  aligned    64.0K  unaligned    64.0K  partial    32.0K"), std::string::npos)
      << t;
  EXPECT_NE(t.find("[stack]"), std::string::npos);
}

TEST(SnapshotRecorded, ProcessGoneBecomesANote) {
  // A source whose process vanishes once its pagemap is asked for.
  class Vanishing : public ProcSource {
   public:
    explicit Vanishing(std::unique_ptr<ProcSource> in) : in_(std::move(in)) {}
    std::string read_text(int pid, std::string_view name) override { return in_->read_text(pid, name); }
    std::size_t read_pagemap(int, std::uint64_t, std::span<std::uint64_t>) override {
      gone_ = true;
      return 0;
    }
    std::size_t read_kpageflags(std::uint64_t f, std::span<std::uint64_t> o) override {
      return in_->read_kpageflags(f, o);
    }
    std::size_t read_kpagecount(std::uint64_t f, std::span<std::uint64_t> o) override {
      return in_->read_kpagecount(f, o);
    }
    bool pfns_readable() override { return true; }
    bool alive(int) override { return !gone_; }
    std::uint64_t page_size() const override { return 4096; }

   private:
    std::unique_ptr<ProcSource> in_;
    bool gone_ = false;
  };
  Vanishing src(make_recorded_proc_source(data_dir("basic").string()));
  const SnapshotSet s = snapshot_processes(src, {42}, {});
  EXPECT_TRUE(s.processes.empty());
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NE(s.notes[0].find("pid 42: skipped, it exited before or while being read"), std::string::npos) << s.notes[0];
}

TEST(SnapshotRecorded, RealMapsAndSmapsParse) {
  const fs::path d = data_dir("real");
  const std::string maps = slurp(d / "maps"), smaps = slurp(d / "smaps");
  std::vector<Vma> vmas = parse_maps(maps, "maps");
  EXPECT_EQ(vmas.size(), static_cast<std::size_t>(std::count(maps.begin(), maps.end(), '\n')));
  EXPECT_EQ(apply_smaps(smaps, "smaps", vmas), 0u);
  // Independent sum of the Rss lines.
  std::uint64_t rss = 0;
  std::istringstream in(smaps);
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("Rss:")) rss += std::stoull(line.substr(4)) * 1024;
  std::uint64_t parsed = 0;
  for (const auto& v : vmas) {
    EXPECT_TRUE(v.in_smaps);
    parsed += v.smaps_rss;
  }
  EXPECT_EQ(parsed, rss);
  EXPECT_GT(rss, 0u);
  EXPECT_TRUE(std::any_of(vmas.begin(), vmas.end(), [](const Vma& v) { return v.name == "[stack]"; }));
  EXPECT_TRUE(std::any_of(vmas.begin(), vmas.end(), [](const Vma& v) { return v.name == "/usr/bin/sleep"; }));
}

// ---- located errors on bad /proc input ----------------------------------------------

TEST(SnapshotParse, MapsErrorsNameLineAndColumn) {
  auto err = [](std::string_view text) {
    try {
      parse_maps(text, "maps");
    } catch (const SnapshotError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(err("00200000-00600000 rw-p 00000000 00:00 0\nzz-1 r--p 0 0:0 0\n"),
            "maps:2:1: error: expected a start address (hex), found 'zz-1'");
  EXPECT_EQ(err("00200000-00100000 rw-p 00000000 00:00 0\n"),
            "maps:1:10: error: end address 0x100000 is not above start 0x200000");
  EXPECT_EQ(err("00200000-00600000 rwxq 00000000 00:00 0\n"),
            "maps:1:19: error: expected permissions like 'rw-p', found 'rwxq'");
  EXPECT_EQ(err("00200000-00600000 rw-p 00000000 00:00\n"), "maps:1:38: error: expected a blank before the inode, found end of line");
  EXPECT_EQ(err("00200000-00600000 rw-p 00000000 00:00 0\n00300000-00400000 rw-p 00000000 00:00 0\n"),
            "maps:2:1: error: VMA 0x300000 starts below the end 0x600000 of the one before");
}

TEST(SnapshotParse, SmapsErrorsNameLineAndColumn) {
  auto err = [](std::string_view text) {
    std::vector<Vma> vmas = parse_maps("00200000-00600000 rw-p 00000000 00:00 0\n", "maps");
    try {
      apply_smaps(text, "smaps", vmas);
    } catch (const SnapshotError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(err("Rss: 4 kB\n"), "smaps:1:1: error: expected a VMA line 'start-end perms ...', found 'Rss:'");
  EXPECT_EQ(err("00200000-00600000 rw-p 00000000 00:00 0\nRss:  x kB\n"),
            "smaps:2:7: error: expected a size in kB (decimal), found 'x'");
  EXPECT_EQ(err("00200000-00600000 rw-p 00000000 00:00 0\nRss:  4 MB\n"),
            "smaps:2:9: error: expected 'kB' after the Rss size");
  EXPECT_EQ(err("00200000-00600000 rw-p 00000000 00:00 0\nRss 4 kB\n"),
            "smaps:2:1: error: expected 'Key:' or a VMA line, found 'Rss'");
}

TEST(SnapshotParse, RecordedFrameFilesAreChecked) {
  ScratchDir d("basic");
  d.write("kpageflags", "10000 409020\n10001 410000 x0\n");
  EXPECT_EQ(std::string(snapshot_error(d.path).what()),
            (d.path / "kpageflags").string() + ":2:15: error: repeat count 0 is not in 1..1048576");
  d.write("kpageflags", "10000 409020 junk\n");
  EXPECT_EQ(std::string(snapshot_error(d.path).what()),
            (d.path / "kpageflags").string() + ":1:14: error: expected end of line, found 'junk'");
}

TEST(SnapshotParse, SizesAndNames) {
  EXPECT_EQ(parse_size("64K", "--cont"), 64 * K);
  EXPECT_EQ(parse_size("2M", "--cont"), 2 * M);
  EXPECT_EQ(parse_size("32KiB", "--cont"), 32 * K);
  EXPECT_THROW(parse_size("3K", "--cont"), SnapshotError);
  EXPECT_THROW(parse_size("64Q", "--cont"), SnapshotError);
  EXPECT_THROW(parse_size("", "--cont"), SnapshotError);
  EXPECT_THROW(parse_size("2K", "--cont"), SnapshotError);
  try {
    parse_size("64X", "--cont");
  } catch (const SnapshotError& e) {
    EXPECT_STREQ(e.what(), "--cont: expected a size like 64K or 2M, found '64X'");
  }
  EXPECT_EQ(size_name(4 * K), "4K");
  EXPECT_EQ(size_name(2 * M), "2M");
  EXPECT_EQ(size_name(1024 * M), "1G");
}

// Random corruption of every recorded file: a located SnapshotError or a
// result, never a crash, a hang or another exception.
TEST(SnapshotFuzz, CorruptedProcInputGivesLocatedErrors) {
  const std::regex located(R"(^(\S+:\d+:\d+: error: |/proc/42/pagemap: offset 0x[0-9a-f]+: |PFNs are hidden: ))");
  std::mt19937 rng(13);
  const char* files[] = {"maps", "smaps", "pagemap", "kpageflags", "kpagecount"};
  const std::string junk = "0123456789abcdefxz-: \n\t#kBRss";
  int errors = 0, ok = 0;
  for (int iter = 0; iter < 120; ++iter) {
    ScratchDir d("basic");
    const char* name = files[rng() % std::size(files)];
    std::string text = slurp(d.path / name);
    switch (rng() % 4) {
      case 0: text.resize(rng() % (text.size() + 1)); break;                      // truncated
      case 1: text[rng() % text.size()] = junk[rng() % junk.size()]; break;       // one bad character
      case 2: text.insert(rng() % text.size(), std::string(1 + rng() % 20, junk[rng() % junk.size()])); break;
      default: {                                                                   // a line removed
        const std::size_t at = rng() % text.size();
        const std::size_t b = text.rfind('\n', at), e = text.find('\n', at);
        text.erase(b == std::string::npos ? 0 : b, e == std::string::npos ? std::string::npos : e - (b == std::string::npos ? 0 : b));
      }
    }
    d.write(name, text);
    try {
      auto src = make_recorded_proc_source(d.path.string());
      snapshot_process(*src, 42, {});
      ++ok;
    } catch (const SnapshotError& e) {
      ++errors;
      EXPECT_TRUE(std::regex_search(e.what(), located)) << name << ": " << e.what();
    }
  }
  EXPECT_GT(errors, 20);  // the corruption reaches the parsers
  EXPECT_GT(ok, 5);       // and harmless changes still give a result
}

// ---- live child processes -----------------------------------------------------------------

namespace {

// Why the live tests cannot run here, or "" when they can.
std::string live_skip_reason() {
  if (::geteuid() != 0) return "needs root: pagemap hides PFNs from other users";
  if (::access("/proc/kpageflags", R_OK) != 0) return "/proc/kpageflags is not readable on this host";
  return "";
}

std::string sysfs(const char* path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

bool thp_mode_allows(const char* path) {
  const std::string s = sysfs(path);
  return !s.empty() && s.find("[never]") == std::string::npos;
}

// Sets a THP sysfs `enabled` file for one test and puts the old mode back:
// as root, a test that needs 64K mTHP need not depend on how the host was
// left. ok() is false when the file cannot be written (not root, absent).
class ThpModeForTest {
 public:
  ThpModeForTest(std::string path, const char* mode) : path_(std::move(path)) {
    // The lock scripts/live-reference.py takes: two changers at once would
    // each restore what the other had set.
    lock_ = ::open("/tmp/contpte-thp-settings.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0666);
    if (lock_ >= 0) ::flock(lock_, LOCK_EX);
    const std::string s = sysfs(path_.c_str());
    const auto open = s.find('['), close = s.find(']');
    if (open == std::string::npos || close == std::string::npos) return;
    old_ = s.substr(open + 1, close - open - 1);
    ok_ = write(mode);
  }
  ~ThpModeForTest() {
    if (ok_) write(old_.c_str());
    if (lock_ >= 0) ::close(lock_);  // releases the lock
  }
  ThpModeForTest(const ThpModeForTest&) = delete;
  ThpModeForTest& operator=(const ThpModeForTest&) = delete;
  bool ok() const { return ok_; }

 private:
  bool write(const char* mode) const {
    std::ofstream f(path_);
    f << mode;
    f.close();
    return static_cast<bool>(f);
  }
  std::string path_, old_;
  bool ok_ = false;
  int lock_ = -1;
};

// A child that maps and touches regions, then waits on a pipe until the
// parent is done reading it. The regions are chosen before the fork, so
// both sides know the addresses.
class Child {
 public:
  struct Region {
    Region(std::uint64_t a, std::uint64_t n, int adv, std::uint64_t unmap = 0)
        : addr(a), bytes(n), advice(adv), unmap_head(unmap) {}
    std::uint64_t addr, bytes;
    int advice;               // MADV_HUGEPAGE / MADV_NOHUGEPAGE
    std::uint64_t unmap_head;  // bytes unmapped from the start once touched
  };

  explicit Child(std::vector<Region> regions) : regions_(std::move(regions)) {
    int ready[2], go[2];
    if (::pipe(ready) != 0 || ::pipe(go) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ready[0]);
      ::close(go[1]);
      char ok = 1;
      for (const auto& r : regions_) {
        void* p = ::mmap(reinterpret_cast<void*>(r.addr), r.bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p != reinterpret_cast<void*>(r.addr) || ::madvise(p, r.bytes, r.advice) != 0) ok = 0;
        if (ok)
          for (std::uint64_t o = 0; o < r.bytes; o += 4096) static_cast<volatile char*>(p)[o] = 1;
        if (ok && r.unmap_head && ::munmap(p, r.unmap_head) != 0) ok = 0;
      }
      // Raw system calls: a sanitizer's read/write interceptors touch its
      // own data lazily, which would change the child while we read it.
      if (::syscall(SYS_write, ready[1], &ok, 1) != 1) ::_exit(1);
      char c;
      while (::syscall(SYS_read, go[0], &c, 1) < 0) {
      }
      ::_exit(0);
    }
    ::close(ready[1]);
    ::close(go[0]);
    go_ = go[1];
    char ok = 0;
    if (::read(ready[0], &ok, 1) != 1 || !ok) ok_ = false;
    ::close(ready[0]);
  }
  ~Child() {
    ::close(go_);
    int st;
    ::waitpid(pid_, &st, 0);
  }
  int pid() const { return pid_; }
  bool ok() const { return ok_; }

 private:
  std::vector<Region> regions_;
  int pid_ = -1, go_ = -1;
  bool ok_ = true;
};

// Addresses far from anything the loader or the sanitizers use.
constexpr std::uint64_t kThpAddr = 0x5a0000000000, kPlainAddr = 0x5b0000000000;

// The naive reference: every page's folio from single kpageflags reads,
// walking one frame at a time to the head and to the end.
struct NaiveFolio {
  std::uint64_t head, pages;
};
NaiveFolio naive_folio(int kpf, std::uint64_t pfn) {
  auto flags = [&](std::uint64_t p) {
    std::uint64_t f = 0;
    if (::pread(kpf, &f, 8, static_cast<off_t>(p * 8)) != 8) return std::uint64_t{0};
    return f;
  };
  constexpr std::uint64_t head_bit = 1ull << 15, tail_bit = 1ull << 16;
  std::uint64_t head = pfn;
  if (!(flags(pfn) & (head_bit | tail_bit))) return {pfn, 1};
  while (!(flags(head) & head_bit)) --head;
  std::uint64_t end = head + 1;
  while (flags(end) & tail_bit) ++end;
  return {head, end - head};
}

// folio_bytes and cont_bytes of [start, end) from pagemap + kpageflags, page by page.
struct Reference {
  std::map<std::uint64_t, std::uint64_t> folio_bytes, cont_bytes;
  std::uint64_t resident = 0;
};
Reference naive_reference(int pid, std::uint64_t start, std::uint64_t end) {
  const int pm = ::open(fmt::format("/proc/{}/pagemap", pid).c_str(), O_RDONLY);
  const int kpf = ::open("/proc/kpageflags", O_RDONLY);
  Reference r;
  std::vector<std::uint64_t> pfn, folio_head, folio_pages;
  std::map<std::uint64_t, std::uint64_t> seen;  // head -> pages
  for (std::uint64_t va = start; va < end; va += 4096) {
    std::uint64_t e = 0;
    if (::pread(pm, &e, 8, static_cast<off_t>(va / 4096 * 8)) != 8) e = 0;
    const bool present = e >> 63;
    pfn.push_back(present ? e & ((1ull << 55) - 1) : 0);
    if (!present) {
      folio_head.push_back(0);
      folio_pages.push_back(0);
      continue;
    }
    // Walking frame by frame is slow for 2M folios: remember each folio found.
    auto known = seen.upper_bound(pfn.back());
    NaiveFolio f{};
    if (known != seen.begin() && std::prev(known)->first + std::prev(known)->second > pfn.back()) {
      f = {std::prev(known)->first, std::prev(known)->second};
    } else {
      f = naive_folio(kpf, pfn.back());
      seen[f.head] = f.pages;
    }
    folio_head.push_back(f.head);
    folio_pages.push_back(f.pages);
    r.folio_bytes[f.pages * 4096] += 4096;
    r.resident += 4096;
  }
  for (std::uint64_t block : {64 * K, 2 * M}) {
    const std::uint64_t b = block / 4096;
    for (std::uint64_t i = 0; i + b <= pfn.size(); i += b) {
      bool ok = pfn[i] && pfn[i] % b == 0;
      for (std::uint64_t j = 1; ok && j < b; ++j)
        ok = pfn[i + j] == pfn[i] + j && folio_head[i + j] == folio_head[i] && folio_pages[i] >= b;
      if (ok && b > 1) r.cont_bytes[block] += block;
    }
  }
  ::close(pm);
  ::close(kpf);
  return r;
}

}  // namespace

TEST(SnapshotLive, ThpAndPlainRegionsMatchPagemapAndSmaps) {
  if (const auto why = live_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  Child child({{kThpAddr, 8 * M, MADV_HUGEPAGE}, {kPlainAddr, 1 * M, MADV_NOHUGEPAGE}});
  ASSERT_TRUE(child.ok()) << "the child could not map its regions";
  auto src = make_live_proc_source();
  const ProcessSnapshot p = snapshot_process(*src, child.pid(), {});

  for (const std::uint64_t addr : {kThpAddr, kPlainAddr}) {
    const VmaSnapshot& v = vma_at(p, addr);
    const Reference ref = naive_reference(child.pid(), v.vma.start, v.vma.end);
    EXPECT_EQ(v.stats.resident_bytes, ref.resident);
    EXPECT_EQ(v.stats.resident_bytes, v.stats.smaps_rss_bytes) << "pagemap and smaps disagree";
    EXPECT_EQ(v.stats.folio_bytes(), ref.folio_bytes);
    for (std::uint64_t block : {64 * K, 2 * M})
      EXPECT_EQ(v.stats.cont_bytes.at(block), at_or_0(ref.cont_bytes, block)) << size_name(block);
    EXPECT_EQ(v.stats.anon_bytes, v.stats.resident_bytes);
  }
  const VmaSnapshot& plain = vma_at(p, kPlainAddr);
  EXPECT_EQ(plain.stats.resident_bytes, 1 * M);
  EXPECT_EQ(plain.stats.cont_bytes.at(2 * M), 0u);

  const VmaSnapshot& thp = vma_at(p, kThpAddr);
  EXPECT_EQ(thp.stats.resident_bytes, 8 * M);
  if (!thp_mode_allows("/sys/kernel/mm/transparent_hugepage/enabled")) return;
  // THP on for madvise: the fault path gives PMD-mapped 2M folios (unless memory is short).
  if (thp.stats.pmd_mapped_bytes == 8 * M) {
    EXPECT_EQ(thp.stats.anon_folios.at(2 * M).aligned, 8 * M);
    EXPECT_EQ(thp.stats.cont_bytes.at(2 * M), 8 * M);
    EXPECT_EQ(thp.stats.cont_bytes.at(64 * K), 8 * M);
    EXPECT_EQ(thp.stats.pte_mapped_bytes(), 0u);
  }
}

TEST(SnapshotLive, PartlyUnmappedThpIsPartial) {
  if (const auto why = live_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  if (!thp_mode_allows("/sys/kernel/mm/transparent_hugepage/enabled"))
    GTEST_SKIP() << "THP is disabled on this host (transparent_hugepage/enabled = never)";
  // The child maps 4M and unmaps [0, 1M): the first 2M folio loses its first half.
  Child child({{kPlainAddr, 4 * M, MADV_HUGEPAGE, 1 * M}});
  ASSERT_TRUE(child.ok());
  auto src = make_live_proc_source();
  const ProcessSnapshot p = snapshot_process(*src, child.pid(), {});
  const VmaSnapshot& v = vma_at(p, kPlainAddr + 1 * M);
  EXPECT_EQ(v.stats.resident_bytes, 3 * M);
  EXPECT_EQ(v.stats.resident_bytes, v.stats.smaps_rss_bytes);
  const auto it = v.stats.anon_folios.find(2 * M);
  if (it == v.stats.anon_folios.end() || v.stats.pmd_mapped_bytes != 2 * M)
    GTEST_SKIP() << "the kernel did not back the region with 2M folios (memory pressure?)";
  // The kept half of the first folio is partial (a deferred split keeps the folio large).
  EXPECT_EQ(it->second.aligned, 2 * M);
  EXPECT_EQ(it->second.partial + (v.stats.anon_folios.contains(4 * K) ? v.stats.anon_folios.at(4 * K).aligned : 0), 1 * M);
  EXPECT_EQ(v.stats.cont_bytes.at(2 * M), 2 * M);
}

TEST(SnapshotLive, Mthp64KFoldsInto64KBlocks) {
  if (const auto why = live_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const char* const knob = "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled";
  // Off on the host: turned on for this test when we may (root).
  std::optional<ThpModeForTest> on;
  if (!thp_mode_allows(knob)) on.emplace(knob, "always");
  if (!thp_mode_allows(knob))
    GTEST_SKIP() << "64K mTHP is off on this host (hugepages-64kB/enabled = never or absent) "
                    "and cannot be turned on (not root?)";
  Child child({{kPlainAddr, 1 * M, MADV_HUGEPAGE}});
  ASSERT_TRUE(child.ok());
  auto src = make_live_proc_source();
  const ProcessSnapshot p = snapshot_process(*src, child.pid(), {});
  const VmaSnapshot& v = vma_at(p, kPlainAddr);
  const Reference ref = naive_reference(child.pid(), v.vma.start, v.vma.end);
  EXPECT_EQ(v.stats.folio_bytes(), ref.folio_bytes);
  EXPECT_EQ(v.stats.cont_bytes.at(64 * K), at_or_0(ref.cont_bytes, 64 * K));
  // The region is 1M-aligned: with 64K mTHP on, its faults allocate 64K folios.
  EXPECT_GT(at_or_0(v.stats.folio_bytes(), 64 * K), 0u) << "no 64K folio although 64K mTHP is enabled";
}

TEST(SnapshotLive, ExitedProcessIsANoteNotACrash) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  int st;
  ::waitpid(pid, &st, 0);
  auto src = make_live_proc_source();
  SnapshotOptions o;
  o.no_pfn = true;  // no root needed to see a process gone
  const SnapshotSet s = snapshot_processes(*src, {pid}, o);
  EXPECT_TRUE(s.processes.empty());
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NE(s.notes[0].find(fmt::format("pid {}: skipped", pid)), std::string::npos) << s.notes[0];
}

TEST(SnapshotLive, SelfSnapshotTotalsMatchSmaps) {
  if (const auto why = live_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  Child child({{kPlainAddr, 256 * K, MADV_NOHUGEPAGE}});
  ASSERT_TRUE(child.ok());
  auto src = make_live_proc_source();
  const ProcessSnapshot p = snapshot_process(*src, child.pid(), {});
  EXPECT_TRUE(p.notes.empty());
  for (const auto& v : p.vmas) {
    if (v.vma.name.empty() || v.vma.name[0] == '/' || v.vma.name == "[heap]" || v.vma.name == "[stack]") {
      EXPECT_EQ(v.stats.resident_bytes, v.stats.smaps_rss_bytes) << fmt::format("{:#x} {}", v.vma.start, v.vma.name);
    }
  }
}

// ---- property: random folio layouts against a reference built from the layout --------------

namespace {

// A process held in memory: one anon VMA, folios placed at naturally aligned
// PFNs, their pages mapped (whole or in part, in order or not) at random.
class ModelSource : public ProcSource {
 public:
  std::string maps, smaps;
  std::map<std::uint64_t, std::uint64_t> pagemap, kpageflags;

  std::string read_text(int, std::string_view name) override {
    return name == "maps" ? maps : name == "smaps" ? smaps : std::string("model\n");
  }
  std::size_t read_pagemap(int, std::uint64_t first, std::span<std::uint64_t> out) override {
    return read_sparse_words(pagemap, first, out);
  }
  std::size_t read_kpageflags(std::uint64_t first, std::span<std::uint64_t> out) override {
    return read_sparse_words(kpageflags, first, out);
  }
  std::size_t read_kpagecount(std::uint64_t, std::span<std::uint64_t> out) override {
    std::fill(out.begin(), out.end(), 1);
    return out.size();
  }
  bool pfns_readable() override { return true; }
  bool alive(int) override { return true; }
  std::uint64_t page_size() const override { return 4096; }
  // Half the rounds say where the pages are (as PAGEMAP_SCAN does), half not.
  bool tell_ranges = false;
  std::optional<std::vector<std::pair<std::uint64_t, std::uint64_t>>> populated_ranges(int, std::uint64_t start,
                                                                                       std::uint64_t end) override {
    if (!tell_ranges) return std::nullopt;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (auto it = pagemap.lower_bound(start / 4096); it != pagemap.end() && it->first < end / 4096; ++it) {
      const std::uint64_t va = it->first * 4096;
      if (!out.empty() && out.back().second == va) out.back().second += 4096;
      else out.emplace_back(va, va + 4096);
    }
    return out;
  }
};

}  // namespace

TEST(SnapshotProperty, RandomFolioLayoutsMatchTheLayout) {
  constexpr std::uint64_t kVmaStart = 0x10000000, kPages = 4096;  // a 16M VMA
  std::mt19937 rng(2026);
  for (int round = 0; round < 40; ++round) {
    ModelSource src;
    src.maps = fmt::format("{:x}-{:x} rw-p 00000000 00:00 0\n", kVmaStart, kVmaStart + kPages * 4096);
    struct Folio {
      std::uint64_t head, pages;
      std::vector<std::pair<std::uint64_t, std::uint64_t>> mapped;  // (vpn, index)
    };
    std::vector<Folio> folios;
    std::vector<int> owner(kPages, -1);  // VA page -> folio
    std::vector<std::uint64_t> index_at(kPages, 0);
    std::uint64_t next_pfn = 0x100000;
    const unsigned orders[] = {0, 1, 2, 4, 4, 4, 9};
    for (int n = 0; n < 60; ++n) {
      const unsigned order = orders[rng() % std::size(orders)];
      const std::uint64_t pages = 1ull << order;
      next_pfn = (next_pfn + pages - 1) / pages * pages;  // naturally aligned, as the buddy allocator gives
      Folio f{next_pfn, pages, {}};
      next_pfn += pages + (rng() % 3) * pages;
      // Map [a, b) of it from a random VA page, aligned half of the time; pages may be reversed.
      const std::uint64_t a = rng() % 4 == 0 ? rng() % pages : 0;
      const std::uint64_t b = rng() % 4 == 0 ? a + 1 + rng() % (pages - a) : pages;
      std::uint64_t vpn = rng() % kPages;
      if (rng() % 2) vpn = vpn / pages * pages + a;
      const bool reversed = pages > 1 && rng() % 8 == 0;
      if (vpn + (b - a) > kPages) continue;
      bool free = true;
      for (std::uint64_t i = 0; i < b - a; ++i) free = free && owner[vpn + i] < 0;
      if (!free) continue;
      for (std::uint64_t i = 0; i < b - a; ++i) {
        const std::uint64_t index = reversed ? b - 1 - i : a + i;
        owner[vpn + i] = static_cast<int>(folios.size());
        index_at[vpn + i] = index;
        f.mapped.push_back({vpn + i, index});
        src.pagemap[kVmaStart / 4096 + vpn + i] = (1ull << 63) | (f.head + index);
      }
      const std::uint64_t head_flags = pages == 1 ? 0x1020 : 0x409020, tail_flags = 0x410000;
      src.kpageflags[f.head] = head_flags;
      for (std::uint64_t i = 1; i < pages; ++i) src.kpageflags[f.head + i] = tail_flags;
      folios.push_back(std::move(f));
    }
    std::uint64_t rss = 0;
    for (int o : owner) rss += o >= 0 ? 4096 : 0;
    src.smaps = src.maps + fmt::format("Rss: {} kB\n", rss / 1024);

    // The reference, from the layout itself.
    std::map<std::uint64_t, FolioSplit> want;
    for (const Folio& f : folios) {
      const std::uint64_t bytes = f.mapped.size() * 4096;
      bool in_order = true;
      std::optional<std::uint64_t> head_vpn;
      for (const auto& [vpn, index] : f.mapped) {
        in_order = in_order && vpn - f.mapped[0].first == index - f.mapped[0].second;
        if (index == 0) head_vpn = vpn;
      }
      FolioSplit& s = want[f.pages * 4096];
      if (f.mapped.size() < f.pages) s.partial += bytes;
      else if (f.pages == 1 || (in_order && head_vpn && *head_vpn % f.pages == 0)) s.aligned += bytes;
      else s.unaligned += bytes;
    }
    std::map<std::uint64_t, std::uint64_t> want_cont;
    for (const std::uint64_t block : {64 * K, 2 * M}) {
      const std::uint64_t b = block / 4096;
      want_cont[block] = 0;
      for (std::uint64_t v = 0; v + b <= kPages; v += b) {
        const int o = owner[v];
        bool ok = o >= 0 && folios[o].pages >= b && (folios[o].head + index_at[v]) % b == 0;
        for (std::uint64_t j = 1; ok && j < b; ++j) ok = owner[v + j] == o && index_at[v + j] == index_at[v] + j;
        if (ok) want_cont[block] += block;
      }
    }

    src.tell_ranges = round % 2;
    SnapshotOptions opts;
    opts.pagemap_chunk = 512u << (rng() % 4);
    const ProcessSnapshot p = snapshot_process(src, 1, opts);
    ASSERT_EQ(p.vmas.size(), 1u);
    const SnapshotStats& s = p.vmas[0].stats;
    EXPECT_EQ(s.resident_bytes, rss) << "round " << round;
    EXPECT_EQ(s.inconsistent_pages, 0u);
    EXPECT_EQ(s.cont_bytes, want_cont) << "round " << round;
    for (const auto& [size, w] : want) {
      const FolioSplit got = s.anon_folios.contains(size) ? s.anon_folios.at(size) : FolioSplit{};
      EXPECT_EQ(got.aligned, w.aligned) << "round " << round << " size " << size_name(size);
      EXPECT_EQ(got.unaligned, w.unaligned) << "round " << round << " size " << size_name(size);
      EXPECT_EQ(got.partial, w.partial) << "round " << round << " size " << size_name(size);
    }
  }
}

TEST(SnapshotParse, CgroupProcs) {
  const fs::path d = fs::temp_directory_path() / fmt::format("contpte-cg-{}", ::getpid());
  fs::create_directories(d);
  std::ofstream(d / "cgroup.procs") << "12\n345\n";
  EXPECT_EQ(cgroup_pids(d.string()), (std::vector<int>{12, 345}));
  std::ofstream(d / "cgroup.procs") << "12\nabc\n";
  try {
    cgroup_pids(d.string());
    ADD_FAILURE() << "no error";
  } catch (const SnapshotError& e) {
    EXPECT_EQ(std::string(e.what()), (d / "cgroup.procs").string() + ":2:1: error: expected a PID (decimal), found 'abc'");
  }
  fs::remove_all(d);
  EXPECT_THROW(cgroup_pids(d.string()), SnapshotError);
}

// A child that keeps mapping, touching and unmapping THP-eligible memory
// while we read it: every snapshot must complete (notes allowed), none may
// throw — its /proc content is well-formed, only changing.
TEST(SnapshotLive, ChangingProcessNeverThrows) {
  if (const auto why = live_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (int i = 0; i < 4000; ++i) {
      void* p = ::mmap(nullptr, 4 * M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) ::_exit(1);
      ::madvise(p, 4 * M, MADV_HUGEPAGE);
      for (std::uint64_t o = 0; o < 4 * M; o += 64 * K) static_cast<volatile char*>(p)[o] = 1;
      ::munmap(static_cast<char*>(p) + 1 * M, 1 * M);
      ::munmap(p, 4 * M);
    }
    ::_exit(0);
  }
  auto src = make_live_proc_source();
  int reads = 0;
  for (int i = 0; i < 30; ++i) {
    EXPECT_NO_THROW({
      const SnapshotSet s = snapshot_processes(*src, {pid}, {});
      reads += static_cast<int>(s.processes.size());
    });
  }
  ::kill(pid, SIGKILL);
  int st;
  ::waitpid(pid, &st, 0);
  EXPECT_GT(reads, 0);
}
