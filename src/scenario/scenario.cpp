// scenario/scenario.cpp — the .cpt parser: lines, the header, parallel
// blocks and the entry points (parser.h says how it reads a file; operands
// and statements are read in parse_statements.cpp).

#include "scenario/scenario.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>
#include <set>
#include <string>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "hw/tlb.h"
#include "scenario/parser.h"

namespace contpte {

ScenarioError::ScenarioError(const SourceLoc& loc, std::string_view message)
    : std::runtime_error(fmt::format("{}:{}:{}: error: {}", loc.file, loc.line, loc.col, message)),
      loc_(loc),
      message_(message) {}

ScenarioError::ScenarioError(std::string_view file, std::string_view message)
    : std::runtime_error(fmt::format("{}: error: {}", file, message)), message_(message) {}

namespace cpt {

void Parser::force_header(std::string_view lines) {
  forcing_ = true;
  while (!lines.empty()) {
    const std::size_t nl = lines.find('\n');
    const std::string_view one = lines.substr(0, nl);
    if (!one.empty()) {
      const std::string_view word = one.substr(0, one.find(' '));
      forced_.emplace(word);
      if (word == "mthp" || word == "thp") forced_.emplace(word == "mthp" ? "thp" : "mthp");
      read_line(0, one);
    }
    lines = nl == std::string_view::npos ? std::string_view{} : lines.substr(nl + 1);
  }
  forcing_ = false;
}

Scenario Parser::parse(std::string_view text) {
  out_.file = file_;
  // A byte-order mark is an editor's artefact, not part of the first token.
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  unsigned number = 0;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    read_line(++number, text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  if (block_)
    throw ScenarioError(block_->stmt.loc, "parallel block has no matching 'end'; expected 'end' before the end of the file");
  if (!geo_) finish_header();
  return std::move(out_);
}

auto Parser::statements() -> std::span<const StatementInfo> {
  static constexpr std::array kStatements{
      entry<&Parser::parse_alloc>("alloc"),
      entry<&Parser::parse_set_ptes>("set_ptes"),
      entry<&Parser::parse_pte_op>("pte_clear"),
      entry<&Parser::parse_pte_op>("ptep_get_and_clear"),
      entry<&Parser::parse_pte_op>("ptep_set_wrprotect"),
      entry<&Parser::parse_pte_op>("ptep_test_and_clear_young"),
      entry<&Parser::parse_pte_op>("ptep_clear_flush_young"),
      entry<&Parser::parse_pte_batch>("get_and_clear_full_ptes"),
      entry<&Parser::parse_pte_batch>("clear_full_ptes"),
      entry<&Parser::parse_pte_batch>("wrprotect_ptes"),
      entry<&Parser::parse_pte_batch>("clear_young_dirty_ptes"),
      entry<&Parser::parse_modify_prot>("modify_prot"),
      entry<&Parser::parse_set_access_flags>("ptep_set_access_flags"),
      entry<&Parser::parse_raw_set>("raw_set"),
      entry<&Parser::parse_dump>("dump"),
      entry<&Parser::parse_mmap>("mmap"),
      entry<&Parser::parse_munmap>("munmap"),
      entry<&Parser::parse_brk>("brk"),
      entry<&Parser::parse_mprotect>("mprotect"),
      entry<&Parser::parse_madvise>("madvise"),
      entry<&Parser::parse_fork>("fork"),
      entry<&Parser::parse_process>("process"),
      entry<&Parser::parse_exit>("exit"),
      entry<&Parser::parse_reclaim>("reclaim"),
      entry<&Parser::parse_access>("read"),
      entry<&Parser::parse_access>("write"),
      entry<&Parser::parse_access>("exec"),
      entry<&Parser::parse_dev>("dev"),
      entry<&Parser::parse_expect>("expect"),
  };
  return kStatements;
}

auto Parser::find_statement(std::string_view word) -> const StatementInfo* {
  for (const auto& s : statements())
    if (s.name == word) return &s;
  return nullptr;
}

auto Parser::header_keys() -> std::span<const HeaderInfo> {
  static constexpr std::array<HeaderInfo, 10> kHeader{{
      {"granule", &Parser::parse_granule, &Header::Given::granule},
      {"contpte", &Parser::parse_contpte, &Header::Given::contpte},
      {"mthp", &Parser::parse_mthp, &Header::Given::mthp},
      {"thp", &Parser::parse_thp, &Header::Given::thp},
      {"tlb", &Parser::parse_tlb, &Header::Given::tlb},
      {"seed", &Parser::parse_seed, &Header::Given::seed},
      {"memory", &Parser::parse_memory, &Header::Given::memory},
      {"fragment", &Parser::parse_fragment, &Header::Given::fragment},
      {"hafdbs", &Parser::parse_hafdbs, &Header::Given::hafdbs},
      {"insns_per_access", &Parser::parse_insns_per_access, &Header::Given::insns_per_access},
  }};
  return kHeader;
}

auto Parser::find_header(std::string_view word) -> const HeaderInfo* {
  for (const auto& h : header_keys())
    if (h.name == word) return &h;
  return nullptr;
}

void Parser::read_line(unsigned number, std::string_view raw) {
  check_encoding(number, raw);
  Line line;
  line.number = number;
  std::string_view code = raw.substr(0, raw.find('#'));
  constexpr std::string_view kBlanks = " \t\r";
  for (std::size_t pos = code.find_first_not_of(kBlanks); pos != std::string_view::npos;) {
    const std::size_t end = std::min(code.find_first_of(kBlanks, pos), code.size());
    const Token t{code.substr(pos, end - pos), 1 + code_points(code.substr(0, pos))};
    line.tokens.push_back(t);
    line.end_col = t.col + code_points(t.text);
    pos = code.find_first_not_of(kBlanks, end);
  }
  if (line.tokens.empty()) return;
  const std::size_t first = code.find_first_not_of(kBlanks);
  line.text = code.substr(first, code.find_last_not_of(kBlanks) + 1 - first);
  statement(line);
}

void Parser::check_encoding(unsigned number, std::string_view raw) const {
  for (std::size_t i = 0; i < raw.size();) {
    const auto b = static_cast<unsigned char>(raw[i]);
    // Everything before byte i is valid, so its code points are its columns.
    const auto fail = [&](std::string_view message) {
      throw ScenarioError(SourceLoc{file_, number, 1 + code_points(raw.substr(0, i))}, message);
    };
    if (b == 0) fail("NUL byte in the input; expected UTF-8 text");
    if ((b < 0x20 && b != '\t' && b != '\r') || b == 0x7F)
      fail(fmt::format("control character U+{:04X} in the input; expected UTF-8 text", b));
    if (b < 0x80) {
      ++i;
      continue;
    }
    const std::size_t len = utf8_sequence(raw, i);
    if (len == 0) fail(fmt::format("invalid UTF-8 byte {:#04x}; expected UTF-8 text", b));
    i += len;
  }
}

void Parser::statement(const Line& line) {
  LineCursor c(file_, line, 1);
  const Token& kw = line.tokens[0];
  const std::string_view word = kw.text;
  if (block_) return block_line(c, line, kw);

  if (const HeaderInfo* h = find_header(word)) {
    if (!forcing_ && forced_.count(word)) return;  // overridden by the configuration
    if (geo_)
      c.fail(kw, fmt::format("'{}' is a header statement and must come before the first operation (line {})",
                             word, first_op_line_));
    Header::Given& given = out_.header.given;
    std::optional<SourceLoc>& this_key = given.*(h->given);
    if (this_key) c.fail(kw, fmt::format("duplicate '{}'; already given at line {}", word, this_key->line));
    // Both would set the same policies; which one wins would be a guess.
    if (word == "thp" || word == "mthp") {
      const std::string_view other = word == "thp" ? "mthp" : "thp";
      if (const auto& at = word == "thp" ? given.mthp : given.thp)
        c.fail(kw, fmt::format("'{}' conflicts with '{}' at line {}; give the THP policy one way", word, other,
                               at->line));
    }
    this_key = c.loc(kw);
    return (this->*(h->parse))(c, kw);
  }

  if (!geo_) {
    first_op_line_ = line.number;
    finish_header();
  }
  if (word == "parallel") {
    c.finish("parallel");
    block_.emplace(Block{Statement{c.loc(kw), std::string(line.text), Parallel{}}, 0});
    return;
  }
  if (word == "end") c.fail(kw, "'end' without an open 'parallel' block");
  const StatementInfo* s = find_statement(word);
  // `dev` is a statement too; the other branch words only exist in blocks.
  if (!s && std::find(kBranchWords.begin(), kBranchWords.end(), word) != kBranchWords.end())
    c.fail(kw, fmt::format("'{}' branch outside a parallel block; expected it between 'parallel' and 'end'", word));
  if (!s) unknown_statement(c, kw);
  Op op = (this->*(s->parse))(c, kw);
  out_.statements.push_back(Statement{c.loc(kw), std::string(line.text), std::move(op)});
}

[[noreturn]] void Parser::unknown_statement(const LineCursor& c, const Token& kw) const {
  // Suggest the nearest known word for a typo: at most two edits, and at
  // most half the word, so that a fragment like "rk" suggests nothing.
  std::string_view best;
  std::size_t best_distance = 3;
  const auto consider = [&](std::string_view candidate) {
    const std::size_t d = edit_distance(kw.text, candidate);
    if (d < best_distance && 2 * d <= kw.text.size()) best = candidate, best_distance = d;
  };
  for (const auto& h : header_keys()) consider(h.name);
  for (const auto& s : statements()) consider(s.name);
  consider("parallel");
  consider("end");
  if (!best.empty()) c.fail(kw, fmt::format("unknown statement '{}'; did you mean '{}'?", kw.text, best));
  c.fail(kw, fmt::format("unknown statement '{}'; expected a header, PTE-level, mm, access, parallel or "
                         "expect statement",
                         kw.text));
}

void Parser::block_line(LineCursor& c, const Line& line, const Token& kw) {
  const unsigned opened = block_->stmt.loc.line;
  if (kw.text == "end") {
    c.finish("end");
    if (std::get<Parallel>(block_->stmt.op).branches.empty())
      c.fail(kw, fmt::format("empty parallel block (opened at line {}); expected an engine, hw, reader or "
                             "dev branch before 'end'",
                             opened));
    out_.statements.push_back(std::move(block_->stmt));
    block_.reset();
    return;
  }
  if (kw.text == "parallel")
    c.fail(kw, fmt::format("parallel blocks cannot nest (the enclosing block opened at line {})", opened));
  Branch b;
  b.loc = c.loc(kw);
  b.text = std::string(line.text);
  if (kw.text == "engine") {
    b.op = engine_branch(c);
  } else if (kw.text == "hw") {
    HwAccess hw;
    const Token k = c.take("read, write or exec");
    const auto kind = lookup(kAccessKinds, k.text);
    if (!kind) c.fail(k, fmt::format("unknown access '{}'; expected one of: {}", k.text, names_of(kAccessKinds)));
    hw.kind = *kind;
    hw.addr = addr_expr(c);
    check_range(hw.addr, page_size(), hw.addr.loc);
    c.finish("hw read|write|exec ADDR");
    b.op = std::move(hw);
  } else if (kw.text == "reader") {
    const Token k = c.take("ptep_get_lockless");
    if (k.text != "ptep_get_lockless")
      c.fail(k, fmt::format("unknown reader operation '{}'; expected ptep_get_lockless", k.text));
    LocklessRead r{addr_expr(c)};
    check_range(r.addr, page_size(), r.addr.loc);
    c.finish("reader ptep_get_lockless ADDR");
    b.op = std::move(r);
  } else if (kw.text == "dev") {
    b.op = parse_dev(c, kw);
  } else {
    c.fail(kw, fmt::format("expected a branch (engine, hw, reader, dev) or 'end' in the parallel block opened at "
                           "line {}, found '{}'",
                           opened, kw.text));
  }
  std::get<Parallel>(block_->stmt.op).branches.push_back(std::move(b));
}

EngineOp Parser::engine_branch(LineCursor& c) {
  const Token st = c.take("a PTE-level or mm statement");
  if (st.text == "parallel")
    c.fail(st, fmt::format("parallel blocks cannot nest (the enclosing block opened at line {})",
                           block_->stmt.loc.line));
  const StatementInfo* s = find_statement(st.text);
  if (!s && !find_header(st.text) && st.text != "end" &&
      std::find(kBranchWords.begin(), kBranchWords.end(), st.text) == kBranchWords.end())
    unknown_statement(c, st);
  if (!s || !s->parse_engine)
    c.fail(st, fmt::format("'{}' cannot be an engine branch; expected a PTE-level or mm statement", st.text));
  // Process ids are numbered in creation order; two forks racing in one
  // block would number their children by the interleaving.
  if (st.text == "fork" && ++block_->forks > 1)
    c.fail(st, "a parallel block may fork only once: process ids would depend on the interleaving");
  return (this->*(s->parse_engine))(c, st);
}

void Parser::parse_granule(LineCursor& c, const Token&) {
  const Token t = c.take("a granule (4K, 16K or 64K)");
  std::uint64_t bytes = 0;
  std::optional<Granule> g;
  if (scan_size(t.text, bytes) == Scan::Ok) g = granule_from_bytes(bytes);
  if (!g) c.fail(t, fmt::format("unknown granule '{}'; expected one of: 4K, 16K, 64K", t.text));
  out_.header.granule = *g;
  c.finish("granule 4K|16K|64K");
}

void Parser::parse_contpte(LineCursor& c, const Token&) {
  const Token t = c.take("a contpte variant");
  if (std::find(kVariantNames.begin(), kVariantNames.end(), t.text) == kVariantNames.end())
    c.fail(t, fmt::format("unknown contpte variant '{}'; expected one of: {}", t.text, join(kVariantNames)));
  out_.header.variant = std::string(t.text);
  c.finish("contpte VARIANT");
}

void Parser::parse_mthp(LineCursor& c, const Token&) {
  const Token first = c.take("folio sizes or 'none'");
  if (first.text == "none") return c.finish("mthp none");
  for (std::optional<Token> t = first; t; t = c.take_optional()) {
    const std::uint64_t bytes = folio_size(c, *t);
    if (!out_.header.thp.emplace(bytes, ThpPolicy::Always).second)
      c.fail(*t, fmt::format("duplicate folio size {}", format_size(bytes)));
  }
}

void Parser::parse_thp(LineCursor& c, const Token&) {
  const auto rest = c.take_rest();
  if (rest.empty()) c.fail_at_end("expected SIZE=POLICY or top=POLICY after 'thp', found end of line");
  bool top_given = false;
  for (const Token& t : rest) {
    const std::size_t eq = t.text.find('=');
    if (eq == std::string_view::npos)
      c.fail(t, fmt::format("expected SIZE=POLICY or top=POLICY, found '{}'", t.text));
    const Token key = sub_token(t, 0, eq);
    const Token value = sub_token(t, eq + 1);
    const auto policy = lookup(kThpPolicies, value.text);
    if (key.text == "top") {
      if (top_given) c.fail(key, "duplicate key 'top'");
      // The top-level `enabled` knob has no `inherit`: it is what sizes inherit.
      if (!policy || *policy == ThpPolicy::Inherit)
        c.fail(value, fmt::format("unknown policy '{}' for top; expected one of: always, madvise, never",
                                  value.text));
      out_.header.thp_top = *policy;
      top_given = true;
      continue;
    }
    const std::uint64_t bytes = folio_size(c, key);
    if (!policy)
      c.fail(value, fmt::format("unknown policy '{}'; expected one of: {}", value.text, names_of(kThpPolicies)));
    if (!out_.header.thp.emplace(bytes, *policy).second)
      c.fail(key, fmt::format("duplicate key '{}'", key.text));
  }
}

std::uint64_t Parser::folio_size(const LineCursor& c, const Token& t) {
  const std::uint64_t bytes = size(c, t, "folio size");
  pending_sizes_.push_back({bytes, c.loc(t)});
  return bytes;
}

// A core's JSON file is found relative to the scenario file, as a C
// #include is, so a scenario runs the same from any directory.
void Parser::parse_tlb(LineCursor& c, const Token&) {
  out_.header.tlb = std::string(c.take("a TLB preset name or JSON file").text);
  c.finish("tlb NAME");
  const std::filesystem::path path(out_.header.tlb);
  const std::filesystem::path dir = std::filesystem::path(file_).parent_path();
  if (tlb_names_file(out_.header.tlb) && path.is_relative() && !dir.empty())
    out_.header.tlb = (dir / path).lexically_normal().string();
}

void Parser::parse_seed(LineCursor& c, const Token&) {
  out_.header.seed = number(c, c.take("a seed"), "seed");
  c.finish("seed N");
}

void Parser::parse_memory(LineCursor& c, const Token&) {
  const Token t = c.take("a memory size");
  out_.header.memory = size(c, t, "memory size");
  memory_loc_ = c.loc(t);
  c.finish("memory SIZE");
}

void Parser::parse_fragment(LineCursor& c, const Token&) {
  const Token t = c.take("a fraction from 0 to 1");
  const auto v = scan_double(t.text);
  if (!v) c.fail(t, fmt::format("bad fragment '{}'; expected a decimal fraction from 0 to 1", t.text));
  if (*v < 0 || *v > 1) c.fail(t, fmt::format("fragment {} is out of range; expected a fraction from 0 to 1", t.text));
  out_.header.fragment = *v;
  c.finish("fragment FRACTION");
}

void Parser::parse_insns_per_access(LineCursor& c, const Token&) {
  const Token t = c.take("a number of instructions");
  const auto v = scan_double(t.text);
  if (!v) c.fail(t, fmt::format("bad insns_per_access '{}'; expected a decimal number", t.text));
  if (!(*v >= 0 && *v <= 1e6))
    c.fail(t, fmt::format("insns_per_access {} is out of range; expected a number from 0 to 1000000", t.text));
  out_.header.insns_per_access = *v;
  c.finish("insns_per_access N");
}

void Parser::parse_hafdbs(LineCursor& c, const Token&) {
  const Token t = c.take("on or off");
  if (t.text != "on" && t.text != "off")
    c.fail(t, fmt::format("bad value '{}' for hafdbs; expected on or off", t.text));
  out_.header.hafdbs = t.text == "on";
  c.finish("hafdbs on|off");
}

void Parser::finish_header() {
  const Header& h = out_.header;
  geo_ = &h.geometry();
  const std::uint64_t page = geo_->page_size(), pmd = geo_->pmd_size();
  for (const auto& [bytes, loc] : pending_sizes_)
    if (!std::has_single_bit(bytes) || bytes <= page || bytes > pmd)
      throw ScenarioError(loc, fmt::format("invalid folio size {} for the {} granule; expected a power of two "
                                           "from {} to {}",
                                           format_size(bytes), geo_->name, format_size(2 * page),
                                           format_size(pmd)));
  if (memory_loc_) {
    const auto fail = [&](std::string_view why) {
      throw ScenarioError(*memory_loc_, fmt::format("memory {} {}", format_size(h.memory), why));
    };
    if (h.memory < pmd)
      fail(fmt::format("is less than one PMD; expected at least {} with the {} granule", format_size(pmd),
                       geo_->name));
    if (h.memory % pmd != 0)
      fail(fmt::format("is not a multiple of the PMD size ({} with the {} granule)", format_size(pmd),
                       geo_->name));
    if (h.memory > kMaxScenarioMemory) fail(fmt::format("is too large; expected at most {}", format_size(kMaxScenarioMemory)));
  }
}

}  // namespace cpt

using cpt::Parser;

Scenario parse_scenario(std::string_view text, std::string filename, std::string_view forced_header) {
  Parser p(std::move(filename));
  p.force_header(forced_header);
  return p.parse(text);
}

Scenario load_scenario(const std::filesystem::path& path, std::string_view forced_header) {
  const std::string name = path.string();
  const auto fail = [&](int err) -> ScenarioError {
    return ScenarioError(name, "cannot read: " + std::error_code(err, std::generic_category()).message());
  };
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(name.c_str(), "rb"), &std::fclose);
  if (!f) throw fail(errno);
  std::string text;
  std::array<char, 1 << 16> buf;
  while (const std::size_t n = std::fread(buf.data(), 1, buf.size(), f.get())) text.append(buf.data(), n);
  // fread reports a directory (EISDIR) or an I/O error only through ferror.
  if (std::ferror(f.get())) throw fail(errno);
  return parse_scenario(text, name, forced_header);
}

ScenarioVocabulary scenario_vocabulary() {
  ScenarioVocabulary v;
  for (const auto& s : Parser::statements()) v.statements.push_back(s.name);
  for (const auto& h : Parser::header_keys()) v.header_keys.push_back(h.name);
  v.block_words = {"parallel", "end"};
  v.branch_kinds.assign(cpt::kBranchWords.begin(), cpt::kBranchWords.end());
  v.expect_forms.assign(cpt::kExpectForms.begin(), cpt::kExpectForms.end());
  return v;
}

}  // namespace contpte
