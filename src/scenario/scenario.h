// scenario/scenario.h — the scenario language (.cpt, docs/scenario.md): typed AST
// and parser.
//
// Owns: the syntax of a scenario, the names of its words (statements, keys,
// protections, variants, rules, policies), and every check that can be made
// before anything runs: numbers, alignment, ranges, declared folios, process
// ids, block structure. All of them fail with `FILE:LINE:COL: error: ...`.
// Must not know: how a statement executes (engine, hw, mm), the TLB presets,
// the stat names of the report. Whatever depends on run-time state (a mapping
// name not mapped in the current process, a PTE-level statement inside a VMA,
// a NAME+OFF range crossing a page-table page) is the runner's check; it
// reports through ScenarioError at the SourceLoc kept here.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "arch/granule.h"
#include "arch/pte.h"
#include "arch/pte_format.h"

namespace contpte {

// ---- locations and errors --------------------------------------------------

// Where a statement or token starts. `col` is 1-based and counts code points,
// so it matches what an editor shows even after non-ASCII text.
struct SourceLoc {
  std::string file;
  unsigned line = 0;
  unsigned col = 0;
  friend bool operator==(const SourceLoc&, const SourceLoc&) = default;
};

// An input error: what() is exactly `FILE:LINE:COL: error: MESSAGE`, or
// `FILE: error: MESSAGE` when the error has no position (unreadable file).
// The runner throws it too, for input errors only visible while running, so
// that every input error reads the same and maps to exit status 2.
class ScenarioError : public std::runtime_error {
 public:
  ScenarioError(const SourceLoc& loc, std::string_view message);
  ScenarioError(std::string_view file, std::string_view message);

  const std::optional<SourceLoc>& loc() const { return loc_; }
  const std::string& message() const { return message_; }

 private:
  std::optional<SourceLoc> loc_;
  std::string message_;
};

// ---- vocabulary --------------------------------------------------------------
// Each enum has a name table in enum order (checked below), so the parser
// looks words up in the same table the runner and reports print from.

template <class E>
struct Named {
  std::string_view name;
  E value;
};

// The `contpte` variants. The engine owns their meaning; the scenario only
// names one, so it is kept as the validated name.
inline constexpr std::array<std::string_view, 5> kVariantNames{"upstream", "nofold", "off",
                                                               "naive", "bbml2"};
// The conformance rules of docs/design.md, as `expect violation RULE` names them.
inline constexpr std::array<std::string_view, 9> kRuleNames{
    "misprogrammed", "tlb_conflict", "stale_translation", "lost_dirty", "lost_young",
    "kernel_warning", "out_of_range", "wild_write", "fault_loop"};

enum class ThpPolicy : std::uint8_t { Always, Inherit, Madvise, Never };
inline constexpr std::array<Named<ThpPolicy>, 4> kThpPolicies{{
    {"always", ThpPolicy::Always},
    {"inherit", ThpPolicy::Inherit},
    {"madvise", ThpPolicy::Madvise},
    {"never", ThpPolicy::Never},
}};

// The single-address PTE-level statements.
enum class PteOpKind : std::uint8_t {
  PteClear,
  PtepGetAndClear,
  PtepSetWrprotect,
  PtepTestAndClearYoung,
  PtepClearFlushYoung,
};
inline constexpr std::array<Named<PteOpKind>, 5> kPteOps{{
    {"pte_clear", PteOpKind::PteClear},
    {"ptep_get_and_clear", PteOpKind::PtepGetAndClear},
    {"ptep_set_wrprotect", PteOpKind::PtepSetWrprotect},
    {"ptep_test_and_clear_young", PteOpKind::PtepTestAndClearYoung},
    {"ptep_clear_flush_young", PteOpKind::PtepClearFlushYoung},
}};

// The batched PTE-level statements taking `nr=` (modify_prot apart: it also
// takes a protection).
enum class PteBatchKind : std::uint8_t {
  GetAndClearFullPtes,  // [full]
  ClearFullPtes,        // [full]
  WrprotectPtes,
  ClearYoungDirtyPtes,  // [young] [dirty]
};
inline constexpr std::array<Named<PteBatchKind>, 4> kPteBatchOps{{
    {"get_and_clear_full_ptes", PteBatchKind::GetAndClearFullPtes},
    {"clear_full_ptes", PteBatchKind::ClearFullPtes},
    {"wrprotect_ptes", PteBatchKind::WrprotectPtes},
    {"clear_young_dirty_ptes", PteBatchKind::ClearYoungDirtyPtes},
}};

enum class Advice : std::uint8_t { DontNeed, Free, Cold, Pageout, Hugepage, NoHugepage, PopulateWrite };
inline constexpr std::array<Named<Advice>, 7> kAdvices{{
    {"dontneed", Advice::DontNeed},
    {"free", Advice::Free},
    {"cold", Advice::Cold},
    {"pageout", Advice::Pageout},
    {"hugepage", Advice::Hugepage},
    {"nohugepage", Advice::NoHugepage},
    {"populate_write", Advice::PopulateWrite},
}};

enum class AccessKind : std::uint8_t { Read, Write, Exec };
inline constexpr std::array<Named<AccessKind>, 3> kAccessKinds{{
    {"read", AccessKind::Read},
    {"write", AccessKind::Write},
    {"exec", AccessKind::Exec},
}};

enum class Pattern : std::uint8_t { Seq, Random, Zipf };
inline constexpr std::array<Named<Pattern>, 3> kPatterns{{
    {"seq", Pattern::Seq},
    {"random", Pattern::Random},
    {"zipf", Pattern::Zipf},
}};

enum class CmpOp : std::uint8_t { Eq, Ne, Lt, Le, Gt, Ge };
inline constexpr std::array<Named<CmpOp>, 6> kCmpOps{{
    {"==", CmpOp::Eq},
    {"!=", CmpOp::Ne},
    {"<", CmpOp::Lt},
    {"<=", CmpOp::Le},
    {">", CmpOp::Gt},
    {">=", CmpOp::Ge},
}};

template <class E, std::size_t N>
constexpr bool in_enum_order(const std::array<Named<E>, N>& table) {
  for (std::size_t i = 0; i < N; ++i)
    if (static_cast<std::size_t>(table[i].value) != i) return false;
  return true;
}
static_assert(in_enum_order(kThpPolicies) && in_enum_order(kPteOps) &&
              in_enum_order(kPteBatchOps) && in_enum_order(kAdvices) &&
              in_enum_order(kAccessKinds) && in_enum_order(kPatterns) && in_enum_order(kCmpOps));

constexpr std::string_view name(ThpPolicy v) { return kThpPolicies[static_cast<std::size_t>(v)].name; }
constexpr std::string_view name(PteOpKind v) { return kPteOps[static_cast<std::size_t>(v)].name; }
constexpr std::string_view name(PteBatchKind v) { return kPteBatchOps[static_cast<std::size_t>(v)].name; }
constexpr std::string_view name(Advice v) { return kAdvices[static_cast<std::size_t>(v)].name; }
constexpr std::string_view name(AccessKind v) { return kAccessKinds[static_cast<std::size_t>(v)].name; }
constexpr std::string_view name(Pattern v) { return kPatterns[static_cast<std::size_t>(v)].name; }
constexpr std::string_view name(CmpOp v) { return kCmpOps[static_cast<std::size_t>(v)].name; }



// ---- header --------------------------------------------------------------------

// The largest `memory` a header may give (docs/scenario.md "Header").
inline constexpr std::uint64_t kMaxScenarioMemory = std::uint64_t{1} << 40;  // 1T

struct Header {
  Granule granule = Granule::k4K;
  std::string variant = "upstream";  // one of kVariantNames
  // THP policy per folio size in bytes, as `thp` gave it or `mthp` expanded
  // it (`mthp 64K` = {64K: always}). A size not in the map is `never`, and so
  // is `top` unless given: the default is `mthp none`.
  std::map<std::uint64_t, ThpPolicy> thp;
  ThpPolicy thp_top = ThpPolicy::Never;
  std::string tlb = "default";  // a preset name or a JSON file: the runner resolves it
  std::uint64_t seed = 1;
  std::uint64_t memory = std::uint64_t{8} << 30;  // bytes
  double fragment = 0.0;                          // in [0, 1]
  std::optional<bool> hafdbs;  // `hafdbs on|off`; unset: the core's (TlbConfig::hafdbs)
  // User instructions per `read|write|exec` access, for the time estimate's
  // user work (a scenario has no instruction stream; docs/estimate.md).
  double insns_per_access = kDefaultInsnsPerAccess;
  static constexpr double kDefaultInsnsPerAccess = 3.0;

  // Where each header statement was given (its keyword); unset = default.
  struct Given {
    std::optional<SourceLoc> granule, contpte, mthp, thp, tlb, seed, memory, fragment, hafdbs,
        insns_per_access;
  } given;

  ThpPolicy thp_policy(std::uint64_t folio_bytes) const {
    auto it = thp.find(folio_bytes);
    return it == thp.end() ? ThpPolicy::Never : it->second;
  }
  const Geometry& geometry() const { return contpte::geometry(granule); }
};

// ---- operands --------------------------------------------------------------------

// An address in a statement that acts on mappings: a plain page-aligned
// address (no `mapping`), or NAME / NAME+OFFSET resolved by the runner in
// the current process. `loc` is the token's, for the runner's errors.
struct AddrExpr {
  std::optional<std::string> mapping;
  std::uint64_t offset = 0;  // the address itself when `mapping` is empty
  SourceLoc loc;
};

// `F+I`: page I of the folio that `alloc F` declared (checked: I < 2^order).
struct FolioRef {
  std::string folio;
  std::uint64_t index = 0;
  SourceLoc loc;
};

// ---- statements ------------------------------------------------------------------
// PTE-level addresses are plain numbers (these statements act outside any
// mapping); they are checked page-aligned, non-zero and below 2^48, and a
// range [addr, addr + nr pages) to stay inside one page-table page.

struct Alloc {
  std::string name;
  unsigned order = 0;
};
struct SetPtes {
  VirtAddr addr;
  FolioRef folio;  // first page; the range stays inside the folio (checked)
  unsigned nr = 0;
  Prot prot = Prot::R;
  bool young = false, dirty = false;
};
struct PteOp {
  PteOpKind kind;
  VirtAddr addr;
};
struct PteBatch {
  PteBatchKind kind;
  VirtAddr addr;
  unsigned nr = 0;
  bool full = false;                 // get_and_clear_full_ptes, clear_full_ptes
  bool young = false, dirty = false;  // clear_young_dirty_ptes: CYDP_CLEAR_YOUNG / _DIRTY
};
struct ModifyProt {
  VirtAddr addr;
  unsigned nr = 0;
  Prot prot = Prot::R;
};
struct SetAccessFlags {  // ptep_set_access_flags
  VirtAddr addr;
  Prot prot = Prot::R;
  bool young = false, dirty = false;
};
struct RawSet {
  VirtAddr addr;
  FolioRef pfn;
  Prot prot = Prot::R;
  bool cont = false, young = false, dirty = false;
};
struct Dump {
  AddrExpr addr;
  std::uint64_t len = 0;  // bytes, page multiple; default one page
};

// mm statements. Sizes and lengths are bytes, non-zero page multiples.
struct Mmap {
  std::string name;
  SourceLoc name_loc;
  std::uint64_t size = 0;
  Prot prot = Prot::RW;                   // default when prot= is absent
  bool shared = false;                    // `private` is the default
  std::optional<std::string> file;        // file=NAME; absent = anonymous
  std::uint64_t offset = 0;               // offset=: file offset, a multiple of the page size
  std::optional<std::uint64_t> file_size; // filesize=: the file's size; absent = offset + size
  std::optional<VirtAddr> addr;           // addr=; absent = top-down placement
  std::optional<std::uint64_t> align;     // align=: power of two >= page size
};
struct Munmap {
  AddrExpr addr;
  std::uint64_t len = 0;
};
// `brk NAME SIZE`: the program break of heap NAME moves so that the heap is
// SIZE bytes long (brk(start + SIZE)): it grows at its end, or its tail is
// unmapped.
struct Brk {
  std::string name;
  SourceLoc name_loc;
  std::uint64_t size = 0;
};
struct Mprotect {
  AddrExpr addr;
  std::uint64_t len = 0;
  Prot prot = Prot::R;
};
struct Madvise {
  AddrExpr addr;
  std::uint64_t len = 0;
  Advice advice = Advice::DontNeed;
};
struct Fork {};
struct Process {
  unsigned id = 0;  // an existing, live process (checked)
};
struct Exit {
  unsigned id = 0;  // an existing, live process other than the current one (checked)
};
struct Reclaim {
  std::optional<std::uint64_t> pages;
};

// Hardware accesses. Defaults are resolved here: `stride` = page size,
// `count` = len / stride (stride <= len is checked, so count >= 1).
struct Access {
  AccessKind kind = AccessKind::Read;
  AddrExpr addr;
  std::uint64_t len = 0;  // bytes, >= 1
  std::uint64_t stride = 0;
  std::uint64_t count = 0;
  Pattern pattern = Pattern::Seq;
};

// `dev read|write ADDR`: one access by a device walker without hardware
// access/dirty updates (an SMMU without HTTU). It reads the leaf descriptor
// alone, faults on AF=0 and, for a write, on a PTE_RDONLY entry; the OS
// handles the fault and the access retries (docs/explore.md, "Device
// walkers and `fault_loop`"). At top level and as a `parallel` branch.
struct DevAccess {
  AccessKind kind = AccessKind::Read;  // Read or Write (checked)
  AddrExpr addr;
};

// Expectations.
struct ExpectCont {  // `expect cont` (cont = true) / `expect nocont`
  AddrExpr addr;
  std::uint64_t len = 0;  // default one page
  bool cont = true;
};
// The keys of `expect pte|raw`; unset = not checked (at least one is set).
struct PteExpectation {
  std::optional<bool> present, write, dirty, young, cont;
  std::optional<bool> huge;  // mapped by a level-2 block (pmd_trans_huge)
  std::optional<std::variant<FolioRef, Pfn>> pfn;  // `F+I` or a raw number
};
struct ExpectPte {  // `expect pte` (through ptep_get) / `expect raw` (stored word)
  AddrExpr addr;
  bool raw = false;
  PteExpectation want;
};
struct ExpectStat {
  std::string name;  // a key of "stats" in the report; the runner checks it exists
  SourceLoc name_loc;
  CmpOp op = CmpOp::Eq;
  double value = 0;
};
struct ExpectViolations {
  std::uint64_t count = 0;
};
struct ExpectViolation {
  std::string rule;                     // one of kRuleNames
  std::optional<std::uint64_t> count;   // >= 1 when given
};

// ---- parallel blocks ---------------------------------------------------------------

// What an `engine` branch may run: a PTE-level or mm statement. The type is
// the rule: alloc, dump, accesses, expectations and `process` cannot be
// branches, and blocks cannot nest.
using EngineOp = std::variant<SetPtes, PteOp, PteBatch, ModifyProt, SetAccessFlags, RawSet, Mmap,
                              Munmap, Mprotect, Madvise, Fork, Exit, Reclaim>;
struct HwAccess {  // `hw read|write|exec ADDR`: one access on another CPU
  AccessKind kind = AccessKind::Read;
  AddrExpr addr;
};
struct LocklessRead {  // `reader ptep_get_lockless ADDR`
  AddrExpr addr;
};

enum class BranchKind : std::uint8_t { Engine, Hw, Reader, Dev };
struct Branch {
  SourceLoc loc;     // the branch keyword
  std::string text;  // the branch's source text, e.g. "engine pte_clear 0x1000"
  std::variant<EngineOp, HwAccess, LocklessRead, DevAccess> op;
  BranchKind kind() const { return static_cast<BranchKind>(op.index()); }
};
struct Parallel {
  std::vector<Branch> branches;  // at least one; at most one `fork` among them
};

// ---- scenario ----------------------------------------------------------------------

using Op = std::variant<Alloc, SetPtes, PteOp, PteBatch, ModifyProt, SetAccessFlags, RawSet, Dump,
                        Mmap, Munmap, Brk, Mprotect, Madvise, Fork, Process, Exit, Reclaim, Access,
                        DevAccess, Parallel, ExpectCont, ExpectPte, ExpectStat, ExpectViolations,
                        ExpectViolation>;

struct Statement {
  SourceLoc loc;     // its first token
  std::string text;  // the line without comment and surrounding blanks (traces, counterexamples)
  Op op;
};

struct Scenario {
  std::string file;
  Header header;
  std::vector<Statement> statements;  // header statements excluded
};

// The words the parser accepts, read from its own tables (so that docs and
// tests cannot drift from it): statements, header keys, the block words
// `parallel` / `end`, branch kinds and `expect` forms.
struct ScenarioVocabulary {
  std::vector<std::string_view> statements, header_keys, block_words, branch_kinds, expect_forms;
};
ScenarioVocabulary scenario_vocabulary();

// Parses and validates a whole scenario; `filename` is used in locations.
// Throws ScenarioError on the first error.
// `forced_header`: header lines (e.g. "granule 16K\ncontpte upstream\nmthp 2M")
// that replace the file's own lines for the same keys — a built-in
// configuration applied to a scenario.
Scenario parse_scenario(std::string_view text, std::string filename,
                        std::string_view forced_header = {});

// Reads and parses a file. A read failure is `FILE: error: cannot read: REASON`.
Scenario load_scenario(const std::filesystem::path& path, std::string_view forced_header = {});

}  // namespace contpte
