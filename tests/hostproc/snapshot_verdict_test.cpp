// `contpte snapshot`'s verdict (issue 25 point 5): what 64K and 2M blocks
// could cover given the resident layout, the host's THP settings (recorded
// sysfs trees in tests/data/snapshot/thp-sysfs, so this runs anywhere), and
// which setting would change the answer; the default table's top VMAs.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "report/snapshot_report.h"
#include "hostproc/snapshot.h"

using namespace contpte;

namespace {

namespace fs = std::filesystem;
constexpr std::uint64_t K = 1024, M = 1024 * 1024;

std::string sysfs(const char* name) {
  return (fs::path(CONTPTE_SOURCE_DIR) / "tests" / "data" / "snapshot" / "thp-sysfs" / name).string();
}
std::string fixture(const char* name) {
  return (fs::path(CONTPTE_SOURCE_DIR) / "tests" / "data" / "snapshot" / name).string();
}

// Memory with `cont` of its `room` bytes of fully resident, aligned blocks
// already mapped as blocks, per size.
SnapshotStats stats(std::uint64_t rss, std::uint64_t room64, std::uint64_t cont64, std::uint64_t room2m,
                    std::uint64_t cont2m) {
  SnapshotStats s;
  s.resident_bytes = rss;
  s.resident_block_bytes = {{64 * K, room64}, {2 * M, room2m}};
  s.cont_bytes = {{64 * K, cont64}, {2 * M, cont2m}};
  return s;
}

}  // namespace

TEST(ThpHostSettings, ReadsTheBracketedChoiceOfEveryFile) {
  const ThpHostSettings t = read_thp_settings(sysfs("host-6.x"));
  EXPECT_TRUE(t.present);
  EXPECT_EQ(t.enabled, "madvise");
  EXPECT_EQ(t.defrag, "madvise");
  const std::map<std::uint64_t, std::string> sizes{{16 * K, "never"}, {64 * K, "never"}, {2 * M, "inherit"}};
  EXPECT_EQ(t.sizes, sizes);
  EXPECT_EQ(t.effective(64 * K), "never");
  EXPECT_EQ(t.effective(2 * M), "madvise");  // inherit: the top-level setting
  EXPECT_EQ(t.effective(32 * K), "");        // not offered
  const ThpHostSettings old = read_thp_settings(sysfs("no-mthp"));
  EXPECT_TRUE(old.present);
  EXPECT_EQ(old.enabled, "always");
  EXPECT_TRUE(old.sizes.empty());
  EXPECT_FALSE(read_thp_settings(sysfs("does-not-exist")).present);
}

TEST(ThpHostSettings, AFileWithoutOneBracketedChoiceIsALocatedError) {
  try {
    read_thp_settings(sysfs("bad"));
    FAIL() << "no error";
  } catch (const SnapshotError& e) {
    EXPECT_EQ(std::string(e.what()), sysfs("bad") +
                                         "/enabled:1: expected one bracketed choice such as 'always [madvise] "
                                         "never', found 'always madvise never'");
  }
}

TEST(SnapshotVerdict, NamesTheSettingThatWouldChangeTheAnswer) {
  const ThpHostSettings host = read_thp_settings(sysfs("host-6.x"));
  // 64K mTHP off, 2M THP madvise-only: both could cover more.
  const auto v = snapshot_verdict(stats(100 * M, 80 * M, 0, 64 * M, 16 * M), true, host);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0],
            "64K: contpte maps 0B (0.0% of RSS) with one TLB entry per 64K block; the resident layout has 80.0M "
            "(80.0%) in fully resident, 64K-aligned blocks, the most 64K folios could cover. 64K THP is off "
            "(hugepages-64kB/enabled = never): setting hugepages-64kB/enabled to always (or madvise, with "
            "MADV_HUGEPAGE on the ranges) would let new anonymous faults get 64K folios");
  EXPECT_EQ(v[1],
            "2M: contpte maps 16.0M (16.0% of RSS) with one TLB entry per 2M block; the resident layout has 64.0M "
            "(64.0%) in fully resident, 2M-aligned blocks, the most 2M folios could cover. 2M THP is "
            "madvise-only (hugepages-2048kB/enabled = inherit, enabled = madvise): ranges without MADV_HUGEPAGE "
            "get smaller folios; madvise(MADV_HUGEPAGE) them or set hugepages-2048kB/enabled to always");
}

TEST(SnapshotVerdict, SaysWhenNoSettingCanHelp) {
  const ThpHostSettings host = read_thp_settings(sysfs("host-6.x"));
  // Nothing fully resident and aligned (sparse memory); everything already covered.
  const auto v = snapshot_verdict(stats(10 * M, 0, 0, 4 * M, 4 * M), true, host);
  EXPECT_EQ(v[0],
            "64K: contpte maps 0B (0.0% of RSS) with one TLB entry per 64K block; the resident layout has 0B "
            "(0.0%) in fully resident, 64K-aligned blocks, so no setting changes the answer: the mappings are "
            "too small or too sparsely touched for 64K blocks");
  EXPECT_EQ(v[1],
            "2M: contpte maps 4.0M (40.0% of RSS) with one TLB entry per 2M block; the resident layout has 4.0M "
            "(40.0%) in fully resident, 2M-aligned blocks, all of them already one folio each: no setting would "
            "add more");
}

TEST(SnapshotVerdict, KernelsWithoutTheSizeOrWithoutThp) {
  const auto s = stats(8 * M, 8 * M, 0, 8 * M, 2 * M);
  const auto old = snapshot_verdict(s, true, read_thp_settings(sysfs("no-mthp")));
  EXPECT_NE(old[0].find("this kernel offers no 64K THP size (no " + sysfs("no-mthp") +
                        "/hugepages-64kB): a kernel with mTHP (6.8+) for this page size would be needed"),
            std::string::npos)
      << old[0];
  const auto none = snapshot_verdict(s, true, read_thp_settings(sysfs("does-not-exist")));
  EXPECT_NE(none[1].find("this host has no THP (" + sysfs("does-not-exist") +
                         " is missing): the kernel was built without CONFIG_TRANSPARENT_HUGEPAGE"),
            std::string::npos)
      << none[1];
  ThpHostSettings on = read_thp_settings(sysfs("host-6.x"));
  on.sizes[64 * K] = "always";
  const auto always = snapshot_verdict(s, true, on);
  EXPECT_NE(always[0].find("64K THP is already on (hugepages-64kB/enabled = always): the rest was faulted before "
                           "the setting, is file or shmem memory"),
            std::string::npos)
      << always[0];
  EXPECT_NE(always[0].find("(fragmentation; defrag = madvise)"), std::string::npos) << always[0];
  // Without PFNs the covered share is unknown, the layout's bound is not.
  const auto nopfn = snapshot_verdict(s, false, on);
  EXPECT_TRUE(nopfn[0].starts_with(
      "64K: without PFNs contpte's share is unknown; the resident layout has 8.0M (100.0% of RSS) in fully "
      "resident, 64K-aligned"))
      << nopfn[0];
}

TEST(SnapshotVerdict, TheTableEndsWithItAndShowsTheTopVmas) {
  auto src = make_recorded_proc_source(fixture("basic"));
  const SnapshotSet set = snapshot_processes(*src, {42}, {});
  const ThpHostSettings host = read_thp_settings(sysfs("host-6.x"));
  std::ostringstream out;
  print_snapshot(out, set, SnapshotPrint{false, 1, &host});
  const std::string t = out.str();
  // The largest VMA only, and how many more there are.
  EXPECT_NE(t.find("  0000000000200000-0000000000600000 rw-p"), std::string::npos) << t;
  EXPECT_EQ(t.find("[stack]"), std::string::npos) << t;
  EXPECT_NE(t.find("  (2 more VMAs with resident pages, smaller; --all-vmas shows them)\n"), std::string::npos) << t;
  // The verdict is last: the resident layout leaves 64K blocks to cover, 2M
  // is all covered already.
  const auto verdict = t.find("verdict:\n  64K: contpte maps 2.1M (92.7% of RSS)");
  ASSERT_NE(verdict, std::string::npos) << t;
  EXPECT_NE(t.find("\n  2M: contpte maps 2.0M (87.2% of RSS) with one TLB entry per 2M block; the resident layout "
                   "has 2.0M (87.2%) in fully resident, 2M-aligned blocks, all of them already one folio each: no "
                   "setting would add more\n",
                   verdict),
            std::string::npos)
      << t;
  // --all-vmas: every resident VMA.
  std::ostringstream all;
  print_snapshot(all, set, SnapshotPrint{false, 0, &host});
  EXPECT_NE(all.str().find("[stack]"), std::string::npos);
  EXPECT_EQ(all.str().find("more VMAs"), std::string::npos);
}
