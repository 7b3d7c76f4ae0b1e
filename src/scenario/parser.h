// scenario/parser.h — the .cpt parser's state and its statement readers
// (internal to the parser: scenario.cpp reads lines, the header and parallel
// blocks; parse_statements.cpp reads operands and statements).
//
// One pass over the lines. A line is checked for encoding, cut at `#`, split
// into blank-separated tokens, and dispatched on its first word through one
// table (statements) or another (header keys). Each statement is checked
// completely as it is read, so the first error in file order is the one
// reported. The only look-ahead is the header: the granule may follow `mthp`
// or `memory`, so sizes that depend on it are checked when the header ends.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "scenario/parse_text.h"
#include "scenario/scenario.h"

namespace contpte::cpt {

// ---- statement tables ---------------------------------------------------------------

template <class T, class V>
struct is_alternative : std::false_type {};
template <class T, class... Ts>
struct is_alternative<T, std::variant<Ts...>> : std::bool_constant<(std::is_same_v<T, Ts> || ...)> {};

template <class F>
struct member_result;
template <class R, class C, class... A>
struct member_result<R (C::*)(A...)> {
  using type = R;
};

constexpr std::array<std::string_view, 4> kBranchWords{"engine", "hw", "reader", "dev"};
// The forms of `expect` (Parser::parse_expect takes each).
constexpr std::array<std::string_view, 7> kExpectForms{"cont", "nocont", "pte", "raw", "stat", "violations",
                                                       "violation"};
static_assert(static_cast<std::size_t>(BranchKind::Engine) == 0 && static_cast<std::size_t>(BranchKind::Hw) == 1 &&
                  static_cast<std::size_t>(BranchKind::Reader) == 2 &&
                  static_cast<std::size_t>(BranchKind::Dev) == 3,
              "Branch::kind() is the index of Branch::op");

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) { processes_.emplace_back(); }

  // Header lines that override the file's own (`contpte run --config`):
  // parsed first, and the file's lines for the same keys are skipped.
  void force_header(std::string_view lines);
  Scenario parse(std::string_view text);

 private:
  // A statement's parser returns its own AST type; the table wraps it into
  // an Op, and into an EngineOp when the type is one, so what may be an
  // `engine` branch follows from the types alone.
  using ParseOp = Op (Parser::*)(LineCursor&, const Token&);
  using ParseEngineOp = EngineOp (Parser::*)(LineCursor&, const Token&);
  struct StatementInfo {
    std::string_view name;
    ParseOp parse;
    ParseEngineOp parse_engine;  // null: cannot be an engine branch
  };
  template <class V, auto Fn>
  V invoke(LineCursor& c, const Token& kw) {
    return V{(this->*Fn)(c, kw)};
  }
  template <auto Fn>
  static constexpr StatementInfo entry(std::string_view name) {
    using R = typename member_result<decltype(Fn)>::type;
    if constexpr (is_alternative<R, EngineOp>::value)
      return {name, &Parser::invoke<Op, Fn>, &Parser::invoke<EngineOp, Fn>};
    else
      return {name, &Parser::invoke<Op, Fn>, nullptr};
  }
  friend ScenarioVocabulary contpte::scenario_vocabulary();
  static std::span<const StatementInfo> statements();
  static const StatementInfo* find_statement(std::string_view word);

  struct HeaderInfo {
    std::string_view name;
    void (Parser::*parse)(LineCursor&, const Token&);
    std::optional<SourceLoc> Header::Given::*given;
  };
  static std::span<const HeaderInfo> header_keys();
  static const HeaderInfo* find_header(std::string_view word);

  // ---- lines ----

  void read_line(unsigned number, std::string_view raw);

  // Scenarios are UTF-8 text: a NUL or control byte or a broken sequence is
  // almost always a binary or mis-saved file, so say so where it starts.
  void check_encoding(unsigned number, std::string_view raw) const;
  void statement(const Line& line);
  [[noreturn]] void unknown_statement(const LineCursor& c, const Token& kw) const;

  // ---- parallel blocks ----

  void block_line(LineCursor& c, const Line& line, const Token& kw);
  EngineOp engine_branch(LineCursor& c);

  // ---- header ----

  void parse_granule(LineCursor& c, const Token&);
  void parse_contpte(LineCursor& c, const Token&);

  // `mthp S...` = `thp S=always ...`, every other size and `top` never.
  void parse_mthp(LineCursor& c, const Token&);
  void parse_thp(LineCursor& c, const Token&);

  // A folio size token; whether the granule allows it is checked when the
  // header ends, because `granule` may come later.
  std::uint64_t folio_size(const LineCursor& c, const Token& t);
  void parse_tlb(LineCursor& c, const Token&);
  void parse_seed(LineCursor& c, const Token&);
  void parse_memory(LineCursor& c, const Token&);
  void parse_fragment(LineCursor& c, const Token&);
  void parse_hafdbs(LineCursor& c, const Token&);
  void parse_insns_per_access(LineCursor& c, const Token&);

  // The header ends at the first operation (or the end of the file): from
  // here on the granule is fixed.
  void finish_header();

  // ---- operands ----

  std::uint64_t number(const LineCursor& c, const Token& t, std::string_view what) const;
  std::uint64_t size(const LineCursor& c, const Token& t, std::string_view what) const;

  // A count that must be at least one (nr, count, pages, ...).
  std::uint64_t positive(const LineCursor& c, const Token& t, std::string_view what) const;

  std::uint64_t page_size() const { return geo_->page_size(); }

  // A byte length of a range of pages (mm statements, expect, dump).
  std::uint64_t length(const LineCursor& c, const Token& t, std::string_view what = "length") const;

  // A plain user address: page aligned, not in the null page (Linux never
  // maps it, mmap_min_addr), below the 48-bit VA limit.
  void check_va(const LineCursor& c, const Token& t, std::uint64_t va) const;

  // ADDR, NAME or NAME+OFFSET (OFFSET a number or a size).
  AddrExpr addr_expr(LineCursor& c);
  static std::string describe(const AddrExpr& a);

  // No range ends past the user address space (for a mapping, whatever its
  // start: no mapping extends past it).
  static void check_range(const AddrExpr& a, std::uint64_t len, const SourceLoc& at);

  // The optional LEN of `dump` and `expect cont|nocont`: one page by default.
  std::uint64_t optional_length(LineCursor& c, const AddrExpr& a) const;

  // A PTE-level statement's address: a plain number, not a mapping name.
  VirtAddr pte_address(LineCursor& c, const Token& kw) const;

  // nr= of a PTE-level call: as in the kernel, the PTEs [addr, addr + nr)
  // must lie in one page-table page (one PMD's worth of VA).
  unsigned pte_count(const LineCursor& c, const Token& t, VirtAddr addr) const;
  Prot prot(const LineCursor& c, const Token& t) const;
  void check_name(const LineCursor& c, const Token& t, std::string_view what) const;

  // F or F+I, F declared by an earlier `alloc`, I inside it. Returns the
  // reference and the folio's page count.
  std::pair<FolioRef, std::uint64_t> folio_ref(const LineCursor& c, const Token& t) const;
  bool bit_value(const LineCursor& c, const Token& t, std::string_view key) const;

  // ---- statements ----

  Alloc parse_alloc(LineCursor& c, const Token&);
  SetPtes parse_set_ptes(LineCursor& c, const Token& kw);
  PteOp parse_pte_op(LineCursor& c, const Token& kw);
  PteBatch parse_pte_batch(LineCursor& c, const Token& kw);
  ModifyProt parse_modify_prot(LineCursor& c, const Token& kw);
  SetAccessFlags parse_set_access_flags(LineCursor& c, const Token& kw);
  RawSet parse_raw_set(LineCursor& c, const Token& kw);
  Dump parse_dump(LineCursor& c, const Token&);

  // The NAME of `mmap` and `brk`, and where it stands.
  std::pair<std::string, SourceLoc> mapping_name(LineCursor& c);
  Mmap parse_mmap(LineCursor& c, const Token&);

  // NAME[+OFF] LEN, common to munmap, mprotect, madvise.
  std::pair<AddrExpr, std::uint64_t> mm_range(LineCursor& c);
  Munmap parse_munmap(LineCursor& c, const Token&);
  Brk parse_brk(LineCursor& c, const Token&);
  Mprotect parse_mprotect(LineCursor& c, const Token&);
  Madvise parse_madvise(LineCursor& c, const Token&);
  Fork parse_fork(LineCursor& c, const Token&);

  // A process that exists and has not exited.
  unsigned process_id(const LineCursor& c, const Token& t) const;
  Process parse_process(LineCursor& c, const Token&);

  // Exiting the current process would leave later statements nowhere to
  // act; the scenario switches away first, as live-fork.cpt does.
  Exit parse_exit(LineCursor& c, const Token&);
  Reclaim parse_reclaim(LineCursor& c, const Token&);
  Access parse_access(LineCursor& c, const Token& kw);
  // `dev read|write ADDR` (top level and `parallel` branch alike).
  DevAccess parse_dev(LineCursor& c, const Token&);
  Op parse_expect(LineCursor& c, const Token&);
  ExpectPte expect_pte(LineCursor& c, bool raw);
  ExpectStat expect_stat(LineCursor& c);

  // ---- state ----

  struct FolioInfo {
    unsigned order = 0;
    unsigned line = 0;
  };
  struct ProcessInfo {
    std::optional<unsigned> exit_line;
  };
  struct PendingSize {
    std::uint64_t bytes;
    SourceLoc loc;
  };
  struct Block {
    Statement stmt;  // holds the Parallel being filled
    unsigned forks = 0;
  };
  std::string file_;
  Scenario out_;
  const Geometry* geo_ = nullptr;  // set when the header ends
  unsigned first_op_line_ = 0;
  std::vector<PendingSize> pending_sizes_;  // mthp/thp sizes, checked when the header ends
  std::optional<SourceLoc> memory_loc_;
  std::map<std::string, FolioInfo, std::less<>> folios_;
  std::uint64_t allocated_bytes_ = 0;
  std::vector<ProcessInfo> processes_;  // by id, in creation order
  unsigned current_ = 0;
  std::optional<Block> block_;
  std::set<std::string, std::less<>> forced_;
  bool forcing_ = false;
};

}  // namespace contpte::cpt
