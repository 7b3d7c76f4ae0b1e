// Tests of scenario/scenario: every statement of docs/scenario.md parses into the
// AST it describes, every class of input error is reported with its exact
// text (FILE:LINE:COL and message), the Linux reference scenarios parse, and
// mutated input never does anything but parse or throw ScenarioError.

#include "scenario/scenario.h"

#include "hw/checker.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace contpte {
namespace {

namespace fs = std::filesystem;

Scenario parse(std::string_view text) { return parse_scenario(text, "t.cpt"); }

// The what() of the error `text` raises, or "(no error)".
std::string error_of(std::string_view text) {
  try {
    parse(text);
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "(no error)";
}

template <class T>
const T& op(const Scenario& s, std::size_t i) {
  return std::get<T>(s.statements.at(i).op);
}

// Reference data: the copy under tests/data first, ../shared as a fallback
// for a checkout that has it.
std::optional<fs::path> reference_dir(std::string_view sub) {
  for (const fs::path& base : {fs::path(CONTPTE_SOURCE_DIR) / "tests/data/linux-reference",
                              fs::path(CONTPTE_SOURCE_DIR) / "../shared/linux-reference"})
    if (fs::is_directory(base / sub)) return base / sub;
  return std::nullopt;
}

// ---- header ------------------------------------------------------------------

TEST(ScenarioHeader, DefaultsWhenNothingIsGiven) {
  const Scenario s = parse("# only a comment\n\n");
  EXPECT_EQ(s.file, "t.cpt");
  EXPECT_TRUE(s.statements.empty());
  const Header& h = s.header;
  EXPECT_EQ(h.granule, Granule::k4K);
  EXPECT_EQ(h.variant, "upstream");
  EXPECT_TRUE(h.thp.empty());
  EXPECT_EQ(h.thp_top, ThpPolicy::Never);
  EXPECT_EQ(h.tlb, "default");
  EXPECT_EQ(h.seed, 1u);
  EXPECT_EQ(h.memory, std::uint64_t{8} << 30);
  EXPECT_EQ(h.fragment, 0.0);
  EXPECT_FALSE(h.hafdbs.has_value()) << "unset: the core's FEAT_HAFDBS";
  EXPECT_FALSE(h.given.granule || h.given.contpte || h.given.mthp || h.given.thp || h.given.tlb ||
               h.given.seed || h.given.memory || h.given.fragment || h.given.hafdbs);
}

TEST(ScenarioHeader, EveryKey) {
  const Scenario s = parse(
      "granule 16K\n"
      "contpte bbml2   # trailing comment\n"
      "mthp 64K 2M\n"
      "tlb neoverse-n1\n"
      "seed 0x2a\n"
      "memory 4G\n"
      "fragment 0.3\n"
      "hafdbs off\n");
  const Header& h = s.header;
  EXPECT_EQ(h.granule, Granule::k16K);
  EXPECT_EQ(h.variant, "bbml2");
  EXPECT_EQ(h.thp, (std::map<std::uint64_t, ThpPolicy>{{64 << 10, ThpPolicy::Always},
                                                       {2 << 20, ThpPolicy::Always}}));
  EXPECT_EQ(h.thp_policy(64 << 10), ThpPolicy::Always);
  EXPECT_EQ(h.thp_policy(128 << 10), ThpPolicy::Never);
  EXPECT_EQ(h.thp_top, ThpPolicy::Never);
  EXPECT_EQ(h.tlb, "neoverse-n1");
  EXPECT_EQ(h.seed, 42u);
  EXPECT_EQ(h.memory, std::uint64_t{4} << 30);
  EXPECT_DOUBLE_EQ(h.fragment, 0.3);
  EXPECT_EQ(h.hafdbs, std::optional<bool>(false));
  ASSERT_TRUE(h.given.contpte);
  EXPECT_EQ(*h.given.contpte, (SourceLoc{"t.cpt", 2, 1}));
  EXPECT_TRUE(h.given.mthp && h.given.tlb && h.given.seed && h.given.memory && h.given.fragment &&
              h.given.hafdbs && h.given.granule);
  EXPECT_FALSE(h.given.thp);
}

TEST(ScenarioHeader, ThpPerSizePolicies) {
  const Header h = parse("thp 64K=always 2M=madvise 16K=inherit top=madvise\n").header;
  EXPECT_EQ(h.thp, (std::map<std::uint64_t, ThpPolicy>{{16 << 10, ThpPolicy::Inherit},
                                                       {64 << 10, ThpPolicy::Always},
                                                       {2 << 20, ThpPolicy::Madvise}}));
  EXPECT_EQ(h.thp_top, ThpPolicy::Madvise);
  EXPECT_TRUE(h.given.thp);
}

TEST(ScenarioHeader, MthpNone) {
  const Header h = parse("mthp none\n").header;
  EXPECT_TRUE(h.thp.empty());
  EXPECT_TRUE(h.given.mthp);
}

TEST(ScenarioHeader, GranuleAfterMthpDecidesWhichSizesAreValid) {
  // 32M is only a folio size with 16K pages; the granule comes later.
  EXPECT_EQ(parse("mthp 32M\ngranule 16K\n").header.thp_policy(32 << 20), ThpPolicy::Always);
  EXPECT_EQ(error_of("mthp 64K 32M\ngranule 4K\nalloc F order=0\n"),
            "t.cpt:1:10: error: invalid folio size 32M for the 4K granule; expected a power of two from 8K to 2M");
}

// ---- PTE-level statements ------------------------------------------------------

TEST(ScenarioStatements, AllocAndSetPtes) {
  const Scenario s = parse(
      "alloc F order=4\n"
      "  set_ptes 0x40000000 F+3 nr=13 prot=rw young dirty\n"
      "set_ptes 0x40100000 F prot=r nr=1\n");
  ASSERT_EQ(s.statements.size(), 3u);
  EXPECT_EQ(op<Alloc>(s, 0).name, "F");
  EXPECT_EQ(op<Alloc>(s, 0).order, 4u);

  const SetPtes& a = op<SetPtes>(s, 1);
  EXPECT_EQ(a.addr, VirtAddr{0x40000000});
  EXPECT_EQ(a.folio.folio, "F");
  EXPECT_EQ(a.folio.index, 3u);
  EXPECT_EQ(a.folio.loc, (SourceLoc{"t.cpt", 2, 23}));
  EXPECT_EQ(a.nr, 13u);
  EXPECT_EQ(a.prot, Prot::RW);
  EXPECT_TRUE(a.young);
  EXPECT_TRUE(a.dirty);
  EXPECT_EQ(s.statements[1].loc, (SourceLoc{"t.cpt", 2, 3}));
  EXPECT_EQ(s.statements[1].text, "set_ptes 0x40000000 F+3 nr=13 prot=rw young dirty");

  const SetPtes& b = op<SetPtes>(s, 2);
  EXPECT_EQ(b.folio.index, 0u);
  EXPECT_EQ(b.nr, 1u);
  EXPECT_EQ(b.prot, Prot::R);
  EXPECT_FALSE(b.young || b.dirty);
}

TEST(ScenarioStatements, SingleAddressOps) {
  const Scenario s = parse(
      "pte_clear 0x1000\n"
      "ptep_get_and_clear 0x2000\n"
      "ptep_set_wrprotect 0x3000\n"
      "ptep_test_and_clear_young 0x4000\n"
      "ptep_clear_flush_young 0x5000\n");
  const PteOpKind kinds[] = {PteOpKind::PteClear, PteOpKind::PtepGetAndClear, PteOpKind::PtepSetWrprotect,
                             PteOpKind::PtepTestAndClearYoung, PteOpKind::PtepClearFlushYoung};
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(op<PteOp>(s, i).kind, kinds[i]);
    EXPECT_EQ(op<PteOp>(s, i).addr, VirtAddr{0x1000 * (i + 1)});
    EXPECT_EQ(name(kinds[i]), s.statements[i].text.substr(0, s.statements[i].text.find(' ')));
  }
}

TEST(ScenarioStatements, BatchedOps) {
  const Scenario s = parse(
      "get_and_clear_full_ptes 0x10000 nr=16 full\n"
      "clear_full_ptes 0x10000 nr=2\n"
      "wrprotect_ptes 0x10000 nr=496\n"
      "clear_young_dirty_ptes 0x10000 dirty nr=3 young\n"
      "modify_prot 0x10000 nr=4 prot=rx\n"
      "ptep_set_access_flags 0x10000 prot=rwx dirty\n");
  const PteBatch& g = op<PteBatch>(s, 0);
  EXPECT_EQ(g.kind, PteBatchKind::GetAndClearFullPtes);
  EXPECT_EQ(g.addr, VirtAddr{0x10000});
  EXPECT_EQ(g.nr, 16u);
  EXPECT_TRUE(g.full);
  EXPECT_EQ(op<PteBatch>(s, 1).kind, PteBatchKind::ClearFullPtes);
  EXPECT_FALSE(op<PteBatch>(s, 1).full);
  EXPECT_EQ(op<PteBatch>(s, 2).kind, PteBatchKind::WrprotectPtes);
  EXPECT_EQ(op<PteBatch>(s, 2).nr, 496u);  // slot 16 to the end of the table
  const PteBatch& y = op<PteBatch>(s, 3);
  EXPECT_EQ(y.kind, PteBatchKind::ClearYoungDirtyPtes);
  EXPECT_TRUE(y.young && y.dirty);
  EXPECT_EQ(y.nr, 3u);
  EXPECT_EQ(op<ModifyProt>(s, 4).nr, 4u);
  EXPECT_EQ(op<ModifyProt>(s, 4).prot, Prot::RX);
  const SetAccessFlags& f = op<SetAccessFlags>(s, 5);
  EXPECT_EQ(f.prot, Prot::RWX);
  EXPECT_TRUE(f.dirty);
  EXPECT_FALSE(f.young);
}

TEST(ScenarioStatements, RawSetAndDump) {
  const Scenario s = parse(
      "alloc G order=0\n"
      "raw_set 0x7000 pfn=G+0 prot=none cont young\n"
      "dump 0x7000\n"
      "dump A+64K 128K\n");
  const RawSet& r = op<RawSet>(s, 1);
  EXPECT_EQ(r.addr, VirtAddr{0x7000});
  EXPECT_EQ(r.pfn.folio, "G");
  EXPECT_EQ(r.pfn.index, 0u);
  EXPECT_EQ(r.pfn.loc.col, 20u);  // the value of pfn=
  EXPECT_EQ(r.prot, Prot::None);
  EXPECT_TRUE(r.cont && r.young);
  EXPECT_FALSE(r.dirty);
  EXPECT_FALSE(op<Dump>(s, 2).addr.mapping);
  EXPECT_EQ(op<Dump>(s, 2).addr.offset, 0x7000u);
  EXPECT_EQ(op<Dump>(s, 2).len, 4096u);
  EXPECT_EQ(op<Dump>(s, 3).addr.mapping, "A");
  EXPECT_EQ(op<Dump>(s, 3).addr.offset, 64u << 10);
  EXPECT_EQ(op<Dump>(s, 3).len, 128u << 10);
}

// ---- mm statements ---------------------------------------------------------------

TEST(ScenarioStatements, Mmap) {
  const Scenario s = parse(
      "mmap A 4M\n"
      "mmap B 2M prot=r shared file=libc.so addr=0x4000000000 align=2M\n");
  const Mmap& a = op<Mmap>(s, 0);
  EXPECT_EQ(a.name, "A");
  EXPECT_EQ(a.name_loc, (SourceLoc{"t.cpt", 1, 6}));
  EXPECT_EQ(a.size, 4u << 20);
  EXPECT_EQ(a.prot, Prot::RW);
  EXPECT_FALSE(a.shared);
  EXPECT_FALSE(a.file || a.addr || a.align);
  const Mmap& b = op<Mmap>(s, 1);
  EXPECT_EQ(b.prot, Prot::R);
  EXPECT_TRUE(b.shared);
  EXPECT_EQ(b.file, "libc.so");
  EXPECT_EQ(b.addr, VirtAddr{0x4000000000});
  EXPECT_EQ(b.align, std::uint64_t{2} << 20);
  EXPECT_EQ(b.offset, 0u);
  EXPECT_FALSE(b.file_size);
  const Scenario s2 = parse("mmap C 64K file=lib offset=128K filesize=100000\n");
  const Mmap& c = op<Mmap>(s2, 0);
  EXPECT_EQ(c.offset, 128u << 10);
  EXPECT_EQ(c.file_size, 100000u);
}

// mmap(2) takes a file offset in whole pages (EINVAL otherwise), and only
// a file has one.
TEST(ScenarioStatements, MmapOffsetErrors) {
  EXPECT_EQ(error_of("mmap F 64K file=data offset=1K\n"),
            "t.cpt:1:29: error: offset=1K is not a multiple of the 4K page size");
  EXPECT_EQ(error_of("granule 64K\nmmap F 64K file=data offset=16K\n"),
            "t.cpt:2:29: error: offset=16K is not a multiple of the 64K page size");
  EXPECT_EQ(error_of("mmap F 64K offset=4K\n"), "t.cpt:1:19: error: offset= needs file=: only a file has an offset and a size");
  EXPECT_EQ(error_of("mmap F 64K filesize=4K\n"),
            "t.cpt:1:21: error: filesize= needs file=: only a file has an offset and a size");
  EXPECT_EQ(error_of("mmap F 64K file=data offset=512T\n"),
            "t.cpt:1:29: error: offset=512T is past the largest file this model takes (0x1000000000000)");
}

TEST(ScenarioStatements, MunmapMprotectMadvise) {
  const Scenario s = parse(
      "munmap A+0x10000 64K\n"
      "mprotect A 64K r\n"
      "madvise A+1M 2M populate_write\n"
      "madvise 0x4000000000 4K dontneed\n");
  EXPECT_EQ(op<Munmap>(s, 0).addr.mapping, "A");
  EXPECT_EQ(op<Munmap>(s, 0).addr.offset, 0x10000u);
  EXPECT_EQ(op<Munmap>(s, 0).addr.loc, (SourceLoc{"t.cpt", 1, 8}));
  EXPECT_EQ(op<Munmap>(s, 0).len, 64u << 10);
  EXPECT_EQ(op<Mprotect>(s, 1).prot, Prot::R);
  EXPECT_EQ(op<Mprotect>(s, 1).addr.offset, 0u);
  EXPECT_EQ(op<Madvise>(s, 2).advice, Advice::PopulateWrite);
  EXPECT_EQ(op<Madvise>(s, 2).addr.offset, 1u << 20);
  EXPECT_EQ(op<Madvise>(s, 3).advice, Advice::DontNeed);
  EXPECT_FALSE(op<Madvise>(s, 3).addr.mapping);
}

TEST(ScenarioStatements, ProcessesAndReclaim) {
  const Scenario s = parse(
      "fork\n"
      "fork\n"
      "process 2\n"
      "exit 1\n"
      "process 0\n"
      "exit 2\n"
      "reclaim\n"
      "reclaim pages=100\n");
  EXPECT_TRUE(std::holds_alternative<Fork>(s.statements[0].op));
  EXPECT_EQ(op<Process>(s, 2).id, 2u);
  EXPECT_EQ(op<Exit>(s, 3).id, 1u);
  EXPECT_EQ(op<Exit>(s, 5).id, 2u);
  EXPECT_FALSE(op<Reclaim>(s, 6).pages);
  EXPECT_EQ(op<Reclaim>(s, 7).pages, 100u);
}

// ---- hardware accesses -------------------------------------------------------------

TEST(ScenarioStatements, AccessesResolveTheirDefaults) {
  const Scenario s = parse(
      "granule 64K\n"
      "read A 1M\n"
      "write A+0x20000 64K stride=4K\n"
      "exec 0x40000000 2M stride=8192 count=7 pattern=zipf\n");
  const Access& r = op<Access>(s, 0);
  EXPECT_EQ(r.kind, AccessKind::Read);
  EXPECT_EQ(r.len, 1u << 20);
  EXPECT_EQ(r.stride, 64u << 10);  // the page size
  EXPECT_EQ(r.count, 16u);         // one pass
  EXPECT_EQ(r.pattern, Pattern::Seq);
  const Access& w = op<Access>(s, 1);
  EXPECT_EQ(w.kind, AccessKind::Write);
  EXPECT_EQ(w.stride, 4096u);
  EXPECT_EQ(w.count, 16u);
  const Access& x = op<Access>(s, 2);
  EXPECT_EQ(x.kind, AccessKind::Exec);
  EXPECT_EQ(x.addr.offset, 0x40000000u);
  EXPECT_EQ(x.stride, 8192u);
  EXPECT_EQ(x.count, 7u);
  EXPECT_EQ(x.pattern, Pattern::Zipf);
}

// ---- parallel blocks ----------------------------------------------------------------

TEST(ScenarioStatements, ParallelBranches) {
  const Scenario s = parse(
      "alloc F order=4\n"
      "parallel   # a race\n"
      "  engine set_ptes 0x200000 F nr=16 prot=rw\n"
      "\n"
      "  hw write 0x20f000\n"
      "  reader ptep_get_lockless X+4K\n"
      "  engine mprotect X 64K r\n"
      "end\n"
      "expect violations 0\n");
  ASSERT_EQ(s.statements.size(), 3u);
  EXPECT_EQ(s.statements[1].loc, (SourceLoc{"t.cpt", 2, 1}));
  EXPECT_EQ(s.statements[1].text, "parallel");
  const Parallel& p = op<Parallel>(s, 1);
  ASSERT_EQ(p.branches.size(), 4u);

  EXPECT_EQ(p.branches[0].kind(), BranchKind::Engine);
  EXPECT_EQ(p.branches[0].loc, (SourceLoc{"t.cpt", 3, 3}));
  EXPECT_EQ(p.branches[0].text, "engine set_ptes 0x200000 F nr=16 prot=rw");
  const auto& e = std::get<EngineOp>(p.branches[0].op);
  EXPECT_EQ(std::get<SetPtes>(e).nr, 16u);

  EXPECT_EQ(p.branches[1].kind(), BranchKind::Hw);
  const auto& hw = std::get<HwAccess>(p.branches[1].op);
  EXPECT_EQ(hw.kind, AccessKind::Write);
  EXPECT_EQ(hw.addr.offset, 0x20f000u);

  EXPECT_EQ(p.branches[2].kind(), BranchKind::Reader);
  EXPECT_EQ(std::get<LocklessRead>(p.branches[2].op).addr.mapping, "X");

  EXPECT_EQ(std::get<Mprotect>(std::get<EngineOp>(p.branches[3].op)).prot, Prot::R);
  EXPECT_EQ(op<ExpectViolations>(s, 2).count, 0u);
}

// docs/scenario.md: `dev read|write ADDR`, at top level and as a branch.
TEST(ScenarioStatements, DevAccesses) {
  const Scenario s = parse(
      "dev write 0x40003000\n"
      "parallel\n"
      "  engine ptep_clear_flush_young 0x40000000\n"
      "  dev read X+8K\n"
      "end\n");
  ASSERT_EQ(s.statements.size(), 2u);
  const DevAccess& top = op<DevAccess>(s, 0);
  EXPECT_EQ(top.kind, AccessKind::Write);
  EXPECT_EQ(top.addr.offset, 0x40003000u);
  EXPECT_FALSE(top.addr.mapping);
  const Parallel& p = op<Parallel>(s, 1);
  ASSERT_EQ(p.branches.size(), 2u);
  EXPECT_EQ(p.branches[1].kind(), BranchKind::Dev);
  EXPECT_EQ(p.branches[1].text, "dev read X+8K");
  const auto& d = std::get<DevAccess>(p.branches[1].op);
  EXPECT_EQ(d.kind, AccessKind::Read);
  EXPECT_EQ(d.addr.mapping, "X");
  EXPECT_EQ(d.addr.offset, 0x2000u);
}

TEST(ScenarioErrors, DevAccesses) {
  EXPECT_EQ(error_of("dev exec 0x40000000\n"),
            "t.cpt:1:5: error: unknown device access 'exec'; expected read or write");
  EXPECT_EQ(error_of("parallel\n  dev exec 0x40000000\nend\n"),
            "t.cpt:2:7: error: unknown device access 'exec'; expected read or write");
  EXPECT_EQ(error_of("dev write\n"), "t.cpt:1:10: error: expected an address, NAME or NAME+OFFSET after 'write', found end of line");
  EXPECT_EQ(error_of("dev read 0x40000000 4K\n"), "t.cpt:1:21: error: unexpected '4K'; expected: dev read|write ADDR");
  EXPECT_EQ(error_of("dev read 0x40000010\n"), "t.cpt:1:10: error: address 0x40000010 is not aligned to the 4K page size");
  EXPECT_EQ(error_of("parallel\nengine dev read 0x1000\nend\n"),
            "t.cpt:2:8: error: 'dev' cannot be an engine branch; expected a PTE-level or mm statement");
}

// Every rule of docs/design.md can be claimed: the scenario's names are the
// checker's, in its order.
TEST(ScenarioStatements, ExpectViolationTakesEveryRule) {
  ASSERT_EQ(kRuleNames.size(), kRules.size());
  for (std::size_t i = 0; i < kRules.size(); ++i) EXPECT_EQ(kRuleNames[i], kRules[i]);
  for (std::string_view rule : kRuleNames) {
    const Scenario s = parse(fmt::format("expect violation {}\n", rule));
    EXPECT_EQ(op<ExpectViolation>(s, 0).rule, rule);
  }
}

TEST(ScenarioStatements, EngineBranchMayForkOnce) {
  const Scenario s = parse("parallel\nengine fork\nhw read 0x1000\nend\nprocess 1\n");
  EXPECT_EQ(op<Process>(s, 1).id, 1u);
}

// ---- expectations ---------------------------------------------------------------------

TEST(ScenarioStatements, Expectations) {
  const Scenario s = parse(
      "alloc F3 order=4\n"
      "expect cont A 64K\n"
      "expect nocont 0x40000000\n"
      "expect pte A+0x1000 present=1 pfn=F3+9 write=0 dirty=1 young=0 cont=1\n"
      "expect raw 0x40000000 present=0\n"
      "expect raw 0x40000000 pfn=0x8000\n"
      "expect stat folds == 2\n"
      "expect stat cont_coverage >= 0.5\n"
      "expect stat rss_bytes < 64M\n"
      "expect violations 3\n"
      "expect violation lost_dirty\n"
      "expect violation tlb_conflict 2\n");
  const ExpectCont& c = op<ExpectCont>(s, 1);
  EXPECT_TRUE(c.cont);
  EXPECT_EQ(c.addr.mapping, "A");
  EXPECT_EQ(c.len, 64u << 10);
  const ExpectCont& n = op<ExpectCont>(s, 2);
  EXPECT_FALSE(n.cont);
  EXPECT_EQ(n.len, 4096u);

  const ExpectPte& p = op<ExpectPte>(s, 3);
  EXPECT_FALSE(p.raw);
  EXPECT_EQ(p.addr.offset, 0x1000u);
  EXPECT_EQ(p.want.present, true);
  EXPECT_EQ(p.want.write, false);
  EXPECT_EQ(p.want.dirty, true);
  EXPECT_EQ(p.want.young, false);
  EXPECT_EQ(p.want.cont, true);
  ASSERT_TRUE(p.want.pfn);
  const auto& ref = std::get<FolioRef>(*p.want.pfn);
  EXPECT_EQ(ref.folio, "F3");
  EXPECT_EQ(ref.index, 9u);

  const ExpectPte& r = op<ExpectPte>(s, 4);
  EXPECT_TRUE(r.raw);
  EXPECT_EQ(r.want.present, false);
  EXPECT_FALSE(r.want.pfn || r.want.write || r.want.dirty || r.want.young || r.want.cont);
  EXPECT_EQ(std::get<Pfn>(*op<ExpectPte>(s, 5).want.pfn), Pfn{0x8000});

  EXPECT_EQ(op<ExpectStat>(s, 6).name, "folds");
  EXPECT_EQ(op<ExpectStat>(s, 6).op, CmpOp::Eq);
  EXPECT_EQ(op<ExpectStat>(s, 6).value, 2.0);
  EXPECT_EQ(op<ExpectStat>(s, 6).name_loc.col, 13u);
  EXPECT_EQ(op<ExpectStat>(s, 7).op, CmpOp::Ge);
  EXPECT_EQ(op<ExpectStat>(s, 7).value, 0.5);
  EXPECT_EQ(op<ExpectStat>(s, 8).op, CmpOp::Lt);
  EXPECT_EQ(op<ExpectStat>(s, 8).value, 64.0 * 1024 * 1024);
  EXPECT_EQ(op<ExpectViolations>(s, 9).count, 3u);
  EXPECT_EQ(op<ExpectViolation>(s, 10).rule, "lost_dirty");
  EXPECT_FALSE(op<ExpectViolation>(s, 10).count);
  EXPECT_EQ(op<ExpectViolation>(s, 11).count, 2u);
}

// ---- lexical details ----------------------------------------------------------------------

TEST(ScenarioLexing, BlanksCommentsCrlfAndBom) {
  const Scenario s = parse("\xEF\xBB\xBF# BOM, then CRLF lines\r\n\tpte_clear\t0x1000 # gone\r\nfork\r\n");
  ASSERT_EQ(s.statements.size(), 2u);
  EXPECT_EQ(s.statements[0].loc, (SourceLoc{"t.cpt", 2, 2}));
  EXPECT_EQ(s.statements[0].text, "pte_clear\t0x1000");
  EXPECT_EQ(s.statements[1].loc, (SourceLoc{"t.cpt", 3, 1}));
}

TEST(ScenarioLexing, ColumnsCountCodePoints) {
  // "é" is two bytes but one column.
  EXPECT_EQ(error_of("# é\nfork é\n"), "t.cpt:2:6: error: unexpected 'é'; expected: fork");
  EXPECT_EQ(error_of("expect stat é == 1 # ü\n"),
            "t.cpt:1:13: error: bad stat name 'é'; expected a key of \"stats\" in the report");
}

TEST(ScenarioLexing, NumbersAndSizes) {
  const Scenario s = parse(
      "mmap A 0x200000\n"
      "mmap B 2048K\n"
      "mmap C 1G addr=0X7f0000000000\n"
      "mmap D 1T\n"
      "write A 4K stride=0x40 count=010\n");
  EXPECT_EQ(op<Mmap>(s, 0).size, 2u << 20);
  EXPECT_EQ(op<Mmap>(s, 1).size, 2u << 20);
  EXPECT_EQ(op<Mmap>(s, 2).addr, VirtAddr{0x7f0000000000});
  EXPECT_EQ(op<Mmap>(s, 3).size, std::uint64_t{1} << 40);
  EXPECT_EQ(op<Access>(s, 4).stride, 64u);
  EXPECT_EQ(op<Access>(s, 4).count, 10u);  // decimal, not octal
}

TEST(ScenarioLexing, FormatSize) {
  EXPECT_EQ(format_size(4096), "4K");
  EXPECT_EQ(format_size(2 << 20), "2M");
  EXPECT_EQ(format_size(std::uint64_t{3} << 40), "3T");
  EXPECT_EQ(format_size(1536), "1536");
  EXPECT_EQ(format_size(0), "0");
}

// ---- errors: one test per class, exact text ----------------------------------------------

TEST(ScenarioErrors, UnknownStatement) {
  EXPECT_EQ(error_of("set_pte 0x1000 F nr=1 prot=r\n"),
            "t.cpt:1:1: error: unknown statement 'set_pte'; did you mean 'set_ptes'?");
  EXPECT_EQ(error_of("\n  frobnicate\n"),
            "t.cpt:2:3: error: unknown statement 'frobnicate'; expected a header, PTE-level, mm, access, parallel "
            "or expect statement");
  EXPECT_EQ(error_of("expect contt A\n"),
            "t.cpt:1:8: error: unknown expectation 'contt'; expected one of: cont, nocont, pte, raw, stat, "
            "violations, violation");
}

TEST(ScenarioErrors, UnknownVariantGranuleAndHeaderValues) {
  EXPECT_EQ(error_of("granule 4K\n contpte upstrem\n"),
            "t.cpt:2:10: error: unknown contpte variant 'upstrem'; expected one of: upstream, nofold, off, naive, "
            "bbml2");
  EXPECT_EQ(error_of("granule 8K\n"), "t.cpt:1:9: error: unknown granule '8K'; expected one of: 4K, 16K, 64K");
  EXPECT_EQ(error_of("hafdbs yes\n"), "t.cpt:1:8: error: bad value 'yes' for hafdbs; expected on or off");
  EXPECT_EQ(error_of("fragment 1.5\n"),
            "t.cpt:1:10: error: fragment 1.5 is out of range; expected a fraction from 0 to 1");
  EXPECT_EQ(error_of("fragment -0.1\n"),
            "t.cpt:1:10: error: fragment -0.1 is out of range; expected a fraction from 0 to 1");
  EXPECT_EQ(error_of("fragment nan\n"),
            "t.cpt:1:10: error: bad fragment 'nan'; expected a decimal fraction from 0 to 1");
  EXPECT_EQ(error_of("seed -1\n"), "t.cpt:1:6: error: bad seed '-1'; expected a decimal or 0x hex number");
  EXPECT_EQ(error_of("thp 64K=sometimes\n"),
            "t.cpt:1:9: error: unknown policy 'sometimes'; expected one of: always, inherit, madvise, never");
  EXPECT_EQ(error_of("thp top=inherit\n"),
            "t.cpt:1:9: error: unknown policy 'inherit' for top; expected one of: always, madvise, never");
  EXPECT_EQ(error_of("thp 64K\n"), "t.cpt:1:5: error: expected SIZE=POLICY or top=POLICY, found '64K'");
  EXPECT_EQ(error_of("thp\n"), "t.cpt:1:4: error: expected SIZE=POLICY or top=POLICY after 'thp', found end of line");
  EXPECT_EQ(error_of("mthp\n"), "t.cpt:1:5: error: expected folio sizes or 'none' after 'mthp', found end of line");
  EXPECT_EQ(error_of("mthp none 64K\n"), "t.cpt:1:11: error: unexpected '64K'; expected: mthp none");
  EXPECT_EQ(error_of("tlb a b\n"), "t.cpt:1:7: error: unexpected 'b'; expected: tlb NAME");
}

TEST(ScenarioErrors, FolioSizesDependOnTheGranule) {
  EXPECT_EQ(error_of("mthp 4K\n"),
            "t.cpt:1:6: error: invalid folio size 4K for the 4K granule; expected a power of two from 8K to 2M");
  EXPECT_EQ(error_of("granule 64K\nmthp 2M 1G\n"),
            "t.cpt:2:9: error: invalid folio size 1G for the 64K granule; expected a power of two from 128K to "
            "512M");
  EXPECT_EQ(error_of("thp 96K=always\n"),
            "t.cpt:1:5: error: invalid folio size 96K for the 4K granule; expected a power of two from 8K to 2M");
  EXPECT_EQ(error_of("mthp 64K 0x10000\n"), "t.cpt:1:10: error: duplicate folio size 64K");
  EXPECT_EQ(error_of("thp 64K=always 65536=never\n"), "t.cpt:1:16: error: duplicate key '65536'");
  EXPECT_EQ(error_of("thp top=never top=always\n"), "t.cpt:1:15: error: duplicate key 'top'");
}

TEST(ScenarioErrors, Memory) {
  EXPECT_EQ(error_of("memory 3M\n"),
            "t.cpt:1:8: error: memory 3M is not a multiple of the PMD size (2M with the 4K granule)");
  EXPECT_EQ(error_of("memory 256M\ngranule 64K\n"),
            "t.cpt:1:8: error: memory 256M is less than one PMD; expected at least 512M with the 64K granule");
  EXPECT_EQ(error_of("memory 2T\n"), "t.cpt:1:8: error: memory 2T is too large; expected at most 1T");
  EXPECT_EQ(error_of("memory 0\n"),
            "t.cpt:1:8: error: memory 0 is less than one PMD; expected at least 2M with the 4K granule");
}

TEST(ScenarioErrors, HeaderOrderAndDuplicates) {
  EXPECT_EQ(error_of("granule 4K\nfork\ngranule 16K\n"),
            "t.cpt:3:1: error: 'granule' is a header statement and must come before the first operation (line 2)");
  EXPECT_EQ(error_of("seed 1\nseed 2\n"), "t.cpt:2:1: error: duplicate 'seed'; already given at line 1");
  EXPECT_EQ(error_of("mthp 64K\nthp 2M=always\n"),
            "t.cpt:2:1: error: 'thp' conflicts with 'mthp' at line 1; give the THP policy one way");
  EXPECT_EQ(error_of("thp 2M=always\nmthp 64K\n"),
            "t.cpt:2:1: error: 'mthp' conflicts with 'thp' at line 1; give the THP policy one way");
}

TEST(ScenarioErrors, BadNumbers) {
  EXPECT_EQ(error_of("pte_clear 0x10g0\n"),
            "t.cpt:1:11: error: bad address '0x10g0'; expected a decimal or 0x hex number");
  EXPECT_EQ(error_of("pte_clear 0x\n"), "t.cpt:1:11: error: bad address '0x'; expected a decimal or 0x hex number");
  EXPECT_EQ(error_of("pte_clear 0x10000000000000000\n"),
            "t.cpt:1:11: error: address '0x10000000000000000' does not fit in 64 bits");
  EXPECT_EQ(error_of("mmap A 4k\n"),
            "t.cpt:1:8: error: bad size '4k'; expected a number with an optional K, M, G or T suffix");
  EXPECT_EQ(error_of("mmap A 16777216T\n"), "t.cpt:1:8: error: size '16777216T' does not fit in 64 bits");
  EXPECT_EQ(error_of("alloc F order=4K\n"),
            "t.cpt:1:15: error: bad order '4K'; expected a decimal or 0x hex number");
  EXPECT_EQ(error_of("write A 64K count=1.5\n"),
            "t.cpt:1:19: error: bad count '1.5'; expected a decimal or 0x hex number");
  EXPECT_EQ(error_of("expect stat folds == lots\n"),
            "t.cpt:1:22: error: bad value 'lots'; expected a decimal number, 0x hex or a size");
}

TEST(ScenarioErrors, UnknownAndDuplicateOptions) {
  EXPECT_EQ(error_of("alloc F order=0\nset_ptes 0x1000 F nr=1 prot=r yuong\n"),
            "t.cpt:2:31: error: unknown option 'yuong' for set_ptes; expected one of: nr=, prot=, young, dirty");
  EXPECT_EQ(error_of("alloc F order=0\nset_ptes 0x1000 F nr=1 nr=1 prot=r\n"),
            "t.cpt:2:24: error: duplicate option 'nr'; already given at column 19");
  EXPECT_EQ(error_of("wrprotect_ptes 0x1000 nr=1 full\n"),
            "t.cpt:1:28: error: unknown option 'full' for wrprotect_ptes; expected one of: nr=");
  EXPECT_EQ(error_of("alloc F order=0\nset_ptes 0x1000 F nr=1 prot=r young=1\n"),
            "t.cpt:2:31: error: 'young' is a flag and takes no value");
  EXPECT_EQ(error_of("alloc F order=0\nset_ptes 0x1000 F nr prot=r\n"),
            "t.cpt:2:19: error: option 'nr' needs a value: nr=...");
  EXPECT_EQ(error_of("alloc F order=0\nset_ptes 0x1000 F nr= prot=r\n"),
            "t.cpt:2:22: error: expected a value after 'nr='");
  EXPECT_EQ(error_of("pte_clear 0x1000 nr=1\n"), "t.cpt:1:18: error: unexpected 'nr=1'; expected: pte_clear ADDR");
  EXPECT_EQ(error_of("reclaim all\n"), "t.cpt:1:9: error: unknown option 'all' for reclaim; expected one of: pages=");
  EXPECT_EQ(error_of("expect raw 0x1000 dirty=1 rdonly=1\n"),
            "t.cpt:1:27: error: unknown option 'rdonly' for expect raw; expected one of: present=, pfn=, write=, "
            "dirty=, young=, cont=, huge=");
  EXPECT_EQ(error_of("mmap A 4K private shared\n"), "t.cpt:1:19: error: 'shared' conflicts with 'private'");
  EXPECT_EQ(error_of("mmap A 4K file=x anon\n"), "t.cpt:1:18: error: 'anon' conflicts with 'file=x'");
}

TEST(ScenarioErrors, MissingOperands) {
  EXPECT_EQ(error_of("alloc F order=0\nset_ptes 0x1000 F prot=r\n"),
            "t.cpt:2:25: error: missing nr=N in set_ptes");
  EXPECT_EQ(error_of("alloc F order=0\nset_ptes 0x1000 F nr=1\n"), "t.cpt:2:23: error: missing prot=P in set_ptes");
  EXPECT_EQ(error_of("alloc F\n"), "t.cpt:1:8: error: missing order=N in alloc");
  EXPECT_EQ(error_of("raw_set 0x1000 prot=r\n"), "t.cpt:1:22: error: missing pfn=F+I in raw_set");
  EXPECT_EQ(error_of("pte_clear\n"), "t.cpt:1:10: error: expected an address after 'pte_clear', found end of line");
  EXPECT_EQ(error_of("munmap A  # no length\n"),
            "t.cpt:1:9: error: expected a length after 'A', found end of line");
  EXPECT_EQ(error_of("expect pte 0x1000\n"),
            "t.cpt:1:18: error: expect pte needs at least one of: present=, pfn=, write=, dirty=, young=, cont=, "
            "huge=");
  EXPECT_EQ(error_of("expect\n"),
            "t.cpt:1:7: error: expected one of: cont, nocont, pte, raw, stat, violations, violation after "
            "'expect', found end of line");
}

TEST(ScenarioErrors, BadValues) {
  EXPECT_EQ(error_of("modify_prot 0x1000 nr=1 prot=wr\n"),
            "t.cpt:1:30: error: unknown protection 'wr'; expected one of: r, rw, rx, rwx, x, none");
  EXPECT_EQ(error_of("mprotect A 64K rw-\n"),
            "t.cpt:1:16: error: unknown protection 'rw-'; expected one of: r, rw, rx, rwx, x, none");
  EXPECT_EQ(error_of("madvise A 64K willneed\n"),
            "t.cpt:1:15: error: unknown advice 'willneed'; expected one of: dontneed, free, cold, pageout, "
            "hugepage, nohugepage, populate_write");
  EXPECT_EQ(error_of("read A 64K pattern=linear\n"),
            "t.cpt:1:20: error: unknown pattern 'linear'; expected one of: seq, random, zipf");
  EXPECT_EQ(error_of("expect raw 0x1000 young=2\n"), "t.cpt:1:25: error: bad value '2' for young; expected 0 or 1");
  EXPECT_EQ(error_of("expect stat folds = 1\n"),
            "t.cpt:1:19: error: unknown comparison '='; expected one of: ==, !=, <, <=, >, >=");
  EXPECT_EQ(error_of("expect violation lost_access\n"),
            "t.cpt:1:18: error: unknown rule 'lost_access'; expected one of: misprogrammed, tlb_conflict, "
            "stale_translation, lost_dirty, lost_young, kernel_warning, out_of_range, wild_write, fault_loop");
  EXPECT_EQ(error_of("expect violation lost_dirty 0\n"), "t.cpt:1:29: error: count must be at least 1, found 0");
  EXPECT_EQ(error_of("reclaim pages=0\n"), "t.cpt:1:15: error: pages must be at least 1, found 0");
  EXPECT_EQ(error_of("read A 64K count=0\n"), "t.cpt:1:18: error: count must be at least 1, found 0");
  EXPECT_EQ(error_of("write A 4K stride=64K\n"),
            "t.cpt:1:19: error: length 4K is shorter than the stride 64K: no access would be made");
  EXPECT_EQ(error_of("write A 100\n"),
            "t.cpt:1:9: error: length 100 is shorter than the stride 4K: no access would be made");
  EXPECT_EQ(error_of("read A 0\n"), "t.cpt:1:8: error: length must not be zero");
  EXPECT_EQ(error_of("hw read A\n"), "t.cpt:1:1: error: 'hw' branch outside a parallel block; expected it between "
                                     "'parallel' and 'end'");
  EXPECT_EQ(error_of("mmap 9A 4K\n"),
            "t.cpt:1:6: error: bad mapping name '9A'; expected a letter or '_' followed by letters, digits or '_'");
  EXPECT_EQ(error_of("mmap A 4K align=12K\n"),
            "t.cpt:1:17: error: align=12K is not a power of two of at least the 4K page size");
  EXPECT_EQ(error_of("mmap A 4K addr=0x201000 align=2M\n"),
            "t.cpt:1:16: error: addr=0x201000 is not aligned to align=2M");
}

TEST(ScenarioErrors, Addresses) {
  EXPECT_EQ(error_of("pte_clear 0x1800\n"),
            "t.cpt:1:11: error: address 0x1800 is not aligned to the 4K page size");
  EXPECT_EQ(error_of("granule 64K\npte_clear 0x1000\n"),
            "t.cpt:2:11: error: address 0x1000 is not aligned to the 64K page size");
  EXPECT_EQ(error_of("pte_clear 0x1000000000000\n"),
            "t.cpt:1:11: error: address 0x1000000000000 is out of range; expected a user address from 0x1000 to "
            "0xfffffffff000");
  EXPECT_EQ(error_of("pte_clear 0\n"),
            "t.cpt:1:11: error: address 0x0 is out of range; expected a user address from 0x1000 to "
            "0xfffffffff000");
  EXPECT_EQ(error_of("pte_clear A\n"),
            "t.cpt:1:11: error: pte_clear takes a numeric address, found 'A'; PTE-level statements act outside "
            "mappings");
  EXPECT_EQ(error_of("munmap A+0x800 4K\n"), "t.cpt:1:10: error: offset 0x800 is not aligned to the 4K page size");
  EXPECT_EQ(error_of("munmap A+ 4K\n"),
            "t.cpt:1:10: error: bad offset ''; expected a number with an optional K, M, G or T suffix");
  EXPECT_EQ(error_of("dump -A\n"), "t.cpt:1:6: error: bad address '-A'; expected a number, NAME or NAME+OFFSET");
  EXPECT_EQ(error_of("munmap A 6K\n"), "t.cpt:1:10: error: length 6K is not a multiple of the 4K page size");
  EXPECT_EQ(error_of("expect cont 0xffffffff0000 1T\n"),
            "t.cpt:1:28: error: range 0xffffffff0000 + 1T ends past the 48-bit user address space "
            "(0x1000000000000)");
  EXPECT_EQ(error_of("expect pte A+256T present=1\n"),
            "t.cpt:1:12: error: range A+0x1000000000000 + 4K ends past the 48-bit user address space "
            "(0x1000000000000)");
  EXPECT_EQ(error_of("mmap A 2M addr=0xfffffff00000\n"),
            "t.cpt:1:16: error: mapping 0xfffffff00000 + 2M ends past the 48-bit user address space "
            "(0x1000000000000)");
}

TEST(ScenarioErrors, Folios) {
  EXPECT_EQ(error_of("alloc F order=0\nset_ptes 0x1000 G nr=1 prot=r\n"),
            "t.cpt:2:17: error: unknown folio 'G'; expected a folio allocated by an earlier 'alloc'");
  EXPECT_EQ(error_of("alloc F order=4\nexpect raw 0x1000 pfn=F+16\n"),
            "t.cpt:2:25: error: page index 16 is past the end of folio F (order 4: pages 0 to 15)");
  EXPECT_EQ(error_of("alloc F order=4\nset_ptes 0x1000 F+12 nr=5 prot=r\n"),
            "t.cpt:2:25: error: nr=5 from F+12 runs past the end of folio F (16 pages)");
  EXPECT_EQ(error_of("alloc F order=1\nalloc F order=2\n"),
            "t.cpt:2:7: error: folio 'F' is already allocated (line 1)");
  EXPECT_EQ(error_of("alloc F order=1\nraw_set 0x1000 pfn=0x8000 prot=r\n"),
            "t.cpt:2:20: error: bad folio page '0x8000'; expected F or F+I, F a folio from 'alloc'");
  EXPECT_EQ(error_of("alloc F order=10\n"),
            "t.cpt:1:15: error: order 10 is too large; expected at most 9 (a 2M folio with the 4K granule)");
  EXPECT_EQ(error_of("granule 64K\nalloc F order=13\nalloc G order=14\n"),
            "t.cpt:3:15: error: order 14 is too large; expected at most 13 (a 512M folio with the 64K granule)");
  EXPECT_EQ(error_of("memory 4M\nalloc A order=9\nalloc B order=9\nalloc C order=0\n"),
            "t.cpt:4:15: error: folio C (4K) does not fit: earlier allocs take 4M of the 4M memory");
}

TEST(ScenarioErrors, PteRangesStayInOnePageTable) {
  EXPECT_EQ(error_of("wrprotect_ptes 0x401ff000 nr=2\n"),
            "t.cpt:1:30: error: nr=2 from 0x401ff000 crosses the page-table page boundary at 0x40200000; a "
            "PTE-level range must stay inside one page table (2M with the 4K granule)");
  EXPECT_EQ(error_of("granule 16K\nmodify_prot 0x40000000 nr=2049 prot=r\n"),
            "t.cpt:2:27: error: nr=2049 from 0x40000000 crosses the page-table page boundary at 0x42000000; a "
            "PTE-level range must stay inside one page table (32M with the 16K granule)");
  EXPECT_EQ(error_of("clear_full_ptes 0x1000 nr=0\n"), "t.cpt:1:27: error: nr must be at least 1, found 0");
  EXPECT_EQ(error_of("clear_full_ptes 0x1000 nr=99999999999999999999\n"),
            "t.cpt:1:27: error: nr '99999999999999999999' does not fit in 64 bits");
  // The last slot of a table is fine; 511 PTEs from slot 1 exactly fill it.
  EXPECT_EQ(error_of("wrprotect_ptes 0x401ff000 nr=1\nwrprotect_ptes 0x1000 nr=511\n"), "(no error)");
}

TEST(ScenarioErrors, Processes) {
  EXPECT_EQ(error_of("process 1\n"), "t.cpt:1:9: error: no process 1; processes so far are 0 to 0 ('fork' creates "
                                     "the next)");
  EXPECT_EQ(error_of("fork\nexit 0\n"),
            "t.cpt:2:6: error: cannot exit process 0: it is the current process; switch with 'process ID' first");
  EXPECT_EQ(error_of("fork\nexit 1\nprocess 1\n"), "t.cpt:3:9: error: process 1 exited at line 2");
  EXPECT_EQ(error_of("fork\nexit 1\nexit 1\n"), "t.cpt:3:6: error: process 1 exited at line 2");
  EXPECT_EQ(error_of("process x\n"), "t.cpt:1:9: error: bad process id 'x'; expected a decimal or 0x hex number");
}

TEST(ScenarioErrors, ParallelBlocks) {
  EXPECT_EQ(error_of("parallel\nengine fork\n"),
            "t.cpt:1:1: error: parallel block has no matching 'end'; expected 'end' before the end of the file");
  EXPECT_EQ(error_of("parallel\n  parallel\nend\n"),
            "t.cpt:2:3: error: parallel blocks cannot nest (the enclosing block opened at line 1)");
  EXPECT_EQ(error_of("parallel\nengine parallel\nend\n"),
            "t.cpt:2:8: error: parallel blocks cannot nest (the enclosing block opened at line 1)");
  EXPECT_EQ(error_of("end\n"), "t.cpt:1:1: error: 'end' without an open 'parallel' block");
  EXPECT_EQ(error_of("parallel # nothing\n\nend\n"),
            "t.cpt:3:1: error: empty parallel block (opened at line 1); expected an engine, hw, reader or dev branch "
            "before 'end'");
  EXPECT_EQ(error_of("parallel\npte_clear 0x1000\nend\n"),
            "t.cpt:2:1: error: expected a branch (engine, hw, reader, dev) or 'end' in the parallel block opened at line "
            "1, found 'pte_clear'");
  EXPECT_EQ(error_of("parallel now\n"), "t.cpt:1:10: error: unexpected 'now'; expected: parallel");
  EXPECT_EQ(error_of("parallel\nengine fork\nend please\n"), "t.cpt:3:5: error: unexpected 'please'; expected: end");
  EXPECT_EQ(error_of("parallel\nengine expect violations 0\nend\n"),
            "t.cpt:2:8: error: 'expect' cannot be an engine branch; expected a PTE-level or mm statement");
  EXPECT_EQ(error_of("parallel\nengine process 0\nend\n"),
            "t.cpt:2:8: error: 'process' cannot be an engine branch; expected a PTE-level or mm statement");
  EXPECT_EQ(error_of("parallel\nengine granule 4K\nend\n"),
            "t.cpt:2:8: error: 'granule' cannot be an engine branch; expected a PTE-level or mm statement");
  EXPECT_EQ(error_of("parallel\nengine\nend\n"),
            "t.cpt:2:7: error: expected a PTE-level or mm statement after 'engine', found end of line");
  EXPECT_EQ(error_of("parallel\nengine pte_clr 0x1000\nend\n"),
            "t.cpt:2:8: error: unknown statement 'pte_clr'; did you mean 'pte_clear'?");
  EXPECT_EQ(error_of("parallel\nengine fork\nengine fork\nend\n"),
            "t.cpt:3:8: error: a parallel block may fork only once: process ids would depend on the interleaving");
  EXPECT_EQ(error_of("parallel\nhw fetch 0x1000\nend\n"),
            "t.cpt:2:4: error: unknown access 'fetch'; expected one of: read, write, exec");
  EXPECT_EQ(error_of("parallel\nhw read 0x1000 4K\nend\n"),
            "t.cpt:2:16: error: unexpected '4K'; expected: hw read|write|exec ADDR");
  EXPECT_EQ(error_of("parallel\nreader ptep_get 0x1000\nend\n"),
            "t.cpt:2:8: error: unknown reader operation 'ptep_get'; expected ptep_get_lockless");
}

TEST(ScenarioErrors, Encoding) {
  using namespace std::string_literals;
  EXPECT_EQ(error_of("fork\nfo\0rk\n"s), "t.cpt:2:3: error: NUL byte in the input; expected UTF-8 text");
  EXPECT_EQ(error_of("fork # caf\xe9\n"), "t.cpt:1:11: error: invalid UTF-8 byte 0xe9; expected UTF-8 text");
  EXPECT_EQ(error_of("fork \xc0\xaf\n"), "t.cpt:1:6: error: invalid UTF-8 byte 0xc0; expected UTF-8 text");
  EXPECT_EQ(error_of("\xed\xa0\x80\n"), "t.cpt:1:1: error: invalid UTF-8 byte 0xed; expected UTF-8 text");
  EXPECT_EQ(error_of("fork\x1b[0m\n"), "t.cpt:1:5: error: control character U+001B in the input; expected UTF-8 text");
}

TEST(ScenarioErrors, ErrorCarriesItsLocation) {
  try {
    parse_scenario("\n\nfork 1\n", "dir/x.cpt");
    FAIL() << "no error";
  } catch (const ScenarioError& e) {
    ASSERT_TRUE(e.loc());
    EXPECT_EQ(*e.loc(), (SourceLoc{"dir/x.cpt", 3, 6}));
    EXPECT_EQ(e.message(), "unexpected '1'; expected: fork");
    EXPECT_STREQ(e.what(), "dir/x.cpt:3:6: error: unexpected '1'; expected: fork");
  }
}

// ---- files ---------------------------------------------------------------------------------

TEST(ScenarioFiles, UnreadableFile) {
  const fs::path missing = fs::path(testing::TempDir()) / "no-such-scenario.cpt";
  try {
    load_scenario(missing);
    FAIL() << "no error";
  } catch (const ScenarioError& e) {
    EXPECT_EQ(std::string(e.what()), missing.string() + ": error: cannot read: No such file or directory");
    EXPECT_FALSE(e.loc());
  }
  try {
    load_scenario(testing::TempDir());
    FAIL() << "no error";
  } catch (const ScenarioError& e) {
    EXPECT_EQ(std::string(e.what()), testing::TempDir() + ": error: cannot read: Is a directory");
  }
}

TEST(ScenarioFiles, LoadUsesThePathInLocations) {
  const fs::path file = fs::path(testing::TempDir()) / "scenario_parser_test_load.cpt";
  {
    std::ofstream(file) << "granule 16K\nforkk\n";
  }
  try {
    load_scenario(file);
    FAIL() << "no error";
  } catch (const ScenarioError& e) {
    EXPECT_EQ(std::string(e.what()), file.string() + ":2:1: error: unknown statement 'forkk'; did you mean 'fork'?");
  }
  fs::remove(file);
}

// Linux's own results (tests/data/linux-reference/README.md): the runner must
// pass these unchanged, so the parser must take every line of them.
TEST(ScenarioFiles, LinuxReferenceScenariosParse) {
  for (std::string_view sub : {"engine", "live"}) {
    const auto dir = reference_dir(sub);
    if (!dir) GTEST_SKIP() << "no linux-reference/" << sub << " in tests/data or ../shared";
    std::size_t files = 0;
    for (const auto& entry : fs::directory_iterator(*dir)) {
      if (entry.path().extension() != ".cpt") continue;
      ++files;
      SCOPED_TRACE(entry.path().string());
      Scenario s;
      ASSERT_NO_THROW(s = load_scenario(entry.path()));
      EXPECT_FALSE(s.statements.empty());
      EXPECT_TRUE(s.header.given.granule);
    }
    EXPECT_GT(files, 0u);
  }
}

TEST(ScenarioFiles, ReferenceHeadersAreRead) {
  const auto dir = reference_dir("engine");
  if (!dir) GTEST_SKIP() << "no linux-reference/engine in tests/data or ../shared";
  const Scenario s = load_scenario(*dir / "random-64k-upstream-506.cpt");
  EXPECT_EQ(s.header.granule, Granule::k64K);
  EXPECT_EQ(s.header.variant, "upstream");
}

// ---- robustness ------------------------------------------------------------------------------

// Random byte edits of a scenario that uses every construct: each result
// must parse or throw ScenarioError; anything else (another exception, a
// crash, a sanitizer report, a hang) fails the test.
TEST(ScenarioFuzz, MutationsParseOrThrowScenarioError) {
  const std::string seed_text =
      "granule 4K\ncontpte upstream\nmthp 64K 2M\nseed 7\nmemory 1G\nfragment 0.25\nhafdbs on\n"
      "alloc F order=4\nalloc G order=0\n"
      "set_ptes 0x40000000 F+0 nr=16 prot=rw young dirty\n"
      "ptep_set_access_flags 0x40000000 prot=rw young\n"
      "modify_prot 0x40000000 nr=16 prot=r\n"
      "clear_young_dirty_ptes 0x40000000 nr=16 young dirty\n"
      "raw_set 0x50000000 pfn=G prot=rw cont\n"
      "dump 0x40000000 64K\n"
      "mmap A 4M prot=rw private anon addr=0x4000000000 align=2M\n"
      "write A 4M stride=4K count=100 pattern=random\n"
      "mprotect A+64K 64K r\nmadvise A 2M free\nfork\nprocess 1\nmunmap A 64K\nprocess 0\nexit 1\nreclaim pages=8\n"
      "parallel\n  engine wrprotect_ptes 0x40000000 nr=16\n  hw write 0x40001000\n"
      "  reader ptep_get_lockless 0x40000000\nend\n"
      "expect pte 0x40000000 present=1 pfn=F+0 write=0 dirty=1 young=1 cont=1\n"
      "expect raw A+0x1000 present=1\nexpect cont A 64K\nexpect nocont 0x50000000\n"
      "expect stat folds >= 1\nexpect violations 0\nexpect violation lost_dirty 1\n";
  ASSERT_EQ(error_of(seed_text), "(no error)");

  // Bytes that matter to the grammar are drawn more often than noise.
  const std::string interesting = " \n\t#=+0123456789xKMGTabcdefFnr_-.\r\x80\xc3\xff";
  std::mt19937_64 rng(20240611);
  std::size_t parsed = 0, rejected = 0;
  for (int iteration = 0; iteration < 4000; ++iteration) {
    std::string text = seed_text;
    const int edits = 1 + static_cast<int>(rng() % 2);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = text.empty() ? 0 : rng() % text.size();
      const char byte = rng() % 3 ? interesting[rng() % interesting.size()] : static_cast<char>(rng() % 256);
      switch (rng() % 4) {
        case 0: if (!text.empty()) text[at] = byte; break;
        case 1: text.insert(at, 1, byte); break;
        case 2: if (!text.empty()) text.erase(at, 1 + rng() % 8); break;
        case 3: text.insert(at, text.substr(rng() % text.size(), rng() % 40)); break;  // duplicate a slice
      }
    }
    try {
      parse_scenario(text, "fuzz.cpt");
      ++parsed;
    } catch (const ScenarioError& e) {
      // Every message is located in the input.
      ASSERT_EQ(std::string_view(e.what()).substr(0, 9), "fuzz.cpt:") << e.what();
      ++rejected;
    }
  }
  // Both outcomes must occur, or the mutations test nothing.
  EXPECT_GT(parsed, 100u) << rejected;
  EXPECT_GT(rejected, 100u);
}

}  // namespace
}  // namespace contpte
