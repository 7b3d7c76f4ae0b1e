// workload/scenario.cpp — the .cpt parser.
//
// One pass over the lines. A line is checked for encoding, cut at `#`, split
// into blank-separated tokens, and dispatched on its first word through one
// table (statements) or another (header keys). Each statement is checked
// completely as it is read, so the first error in file order is the one
// reported. The only look-ahead is the header: the granule may follow `mthp`
// or `memory`, so sizes that depend on it are checked when the header ends.

#include "workload/scenario.h"

#include "hw/tlb.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
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

namespace contpte {

ScenarioError::ScenarioError(const SourceLoc& loc, std::string_view message)
    : std::runtime_error(fmt::format("{}:{}:{}: error: {}", loc.file, loc.line, loc.col, message)),
      loc_(loc),
      message_(message) {}

ScenarioError::ScenarioError(std::string_view file, std::string_view message)
    : std::runtime_error(fmt::format("{}: error: {}", file, message)), message_(message) {}

std::string format_size(std::uint64_t bytes) {
  constexpr std::array<std::pair<char, unsigned>, 4> kUnits{{{'T', 40}, {'G', 30}, {'M', 20}, {'K', 10}}};
  if (bytes != 0)
    for (auto [suffix, shift] : kUnits)
      if (bytes % (std::uint64_t{1} << shift) == 0) return fmt::format("{}{}", bytes >> shift, suffix);
  return std::to_string(bytes);
}

namespace {

// ---- text ------------------------------------------------------------------

struct Token {
  std::string_view text;
  unsigned col = 0;  // 1-based, in code points
};

struct Line {
  unsigned number = 0;
  std::string_view text;  // without comment and surrounding blanks
  std::vector<Token> tokens;
  unsigned end_col = 0;  // just past the last token: where "found end of line" points
};

// Lines are checked to be UTF-8 before this runs, so counting the bytes that
// do not continue a sequence counts code points.
unsigned code_points(std::string_view s) {
  return static_cast<unsigned>(
      std::count_if(s.begin(), s.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; }));
}

// A part of a token (the value of `key=value`, the offset of `NAME+OFF`), with
// its own column so that errors point into the token.
Token sub_token(const Token& t, std::size_t pos, std::size_t len = std::string_view::npos) {
  return {t.text.substr(pos, len), t.col + code_points(t.text.substr(0, pos))};
}

bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
bool is_name_start(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }

// Folio and mapping names: an identifier, so that a name can never be read as
// a number and `+` always separates the offset.
bool is_name(std::string_view s) {
  return !s.empty() && is_name_start(s[0]) &&
         std::all_of(s.begin() + 1, s.end(), [](char ch) { return is_name_start(ch) || is_digit(ch); });
}

// Stat names as the report spells them (may be dotted, e.g. expects.passed).
bool is_stat_name(std::string_view s) {
  return !s.empty() && is_name_start(s[0]) && std::all_of(s.begin() + 1, s.end(), [](char ch) {
           return is_name_start(ch) || is_digit(ch) || ch == '.';
         });
}

// Byte length of the valid UTF-8 sequence at s[i], or 0 if it is not one
// (truncated, overlong, surrogate, beyond U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  std::uint32_t cp = 0, min = 0;
  if ((lead & 0xE0) == 0xC0) {
    len = 2, cp = lead & 0x1F, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    len = 3, cp = lead & 0x0F, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    len = 4, cp = lead & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

template <class E, std::size_t N>
std::optional<E> lookup(const std::array<Named<E>, N>& table, std::string_view word) {
  for (const auto& entry : table)
    if (entry.name == word) return entry.value;
  return std::nullopt;
}

template <class E, std::size_t N>
std::string names_of(const std::array<Named<E>, N>& table) {
  std::string out;
  for (const auto& entry : table) out += (out.empty() ? "" : ", ") + std::string(entry.name);
  return out;
}

std::string join(std::span<const std::string_view> words) { return fmt::format("{}", fmt::join(words, ", ")); }

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// ---- numbers ----------------------------------------------------------------

enum class Scan { Ok, Bad, Overflow };

// Decimal or 0x hex; no sign, no separators.
Scan scan_u64(std::string_view s, std::uint64_t& out) {
  int base = 10;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  }
  if (s.empty()) return Scan::Bad;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  if (end != s.data() + s.size() || ec == std::errc::invalid_argument) return Scan::Bad;
  return ec == std::errc::result_out_of_range ? Scan::Overflow : Scan::Ok;
}

// A number with an optional K/M/G/T suffix (powers of 1024).
Scan scan_size(std::string_view s, std::uint64_t& out) {
  constexpr std::string_view kSuffixes = "KMGT";
  unsigned shift = 0;
  if (!s.empty())
    if (auto at = kSuffixes.find(s.back()); at != std::string_view::npos) {
      shift = 10 * static_cast<unsigned>(at + 1);
      s.remove_suffix(1);
    }
  std::uint64_t v = 0;
  if (Scan r = scan_u64(s, v); r != Scan::Ok) return r;
  if (v > (std::numeric_limits<std::uint64_t>::max() >> shift)) return Scan::Overflow;
  out = v << shift;
  return Scan::Ok;
}

// A decimal number as std::from_chars reads it ("0.3", "1", "2.5e3"),
// finite.
std::optional<double> scan_double(std::string_view s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// ---- one line's tokens ------------------------------------------------------------

// Walks the tokens of one line and raises errors located in it.
class LineCursor {
 public:
  LineCursor(const std::string& file, const Line& line, std::size_t first)
      : file_(&file), line_(&line), next_(first) {}

  SourceLoc loc(const Token& t) const { return {*file_, line_->number, t.col}; }
  unsigned line_number() const { return line_->number; }

  [[noreturn]] void fail(const Token& t, std::string_view message) const {
    throw ScenarioError(loc(t), message);
  }
  [[noreturn]] void fail_at_end(std::string_view message) const {
    throw ScenarioError(SourceLoc{*file_, line_->number, line_->end_col}, message);
  }

  bool done() const { return next_ == line_->tokens.size(); }

  // The next token, which must exist: `what` says what was expected.
  Token take(std::string_view what) {
    if (done())
      fail_at_end(fmt::format("expected {} after '{}', found end of line", what,
                              line_->tokens[next_ - 1].text));
    return line_->tokens[next_++];
  }
  std::optional<Token> take_optional() {
    if (done()) return std::nullopt;
    return line_->tokens[next_++];
  }
  std::span<const Token> take_rest() {
    auto rest = std::span<const Token>(line_->tokens).subspan(next_);
    next_ = line_->tokens.size();
    return rest;
  }
  // The statement must end here; `usage` is its synopsis.
  void finish(std::string_view usage) const {
    if (!done())
      fail(line_->tokens[next_], fmt::format("unexpected '{}'; expected: {}", line_->tokens[next_].text, usage));
  }

 private:
  const std::string* file_;
  const Line* line_;
  std::size_t next_;
};

// The `key=value` options and bare-word flags that end a statement, each
// given at most once, in any order.
class Options {
 public:
  struct Entry {
    std::string_view name;
    Token token;  // the whole `key=value` or flag
    Token value;  // the value part; the flag itself for flags
  };

  Options(LineCursor& c, std::string_view stmt, std::span<const std::string_view> keys,
          std::span<const std::string_view> flags)
      : c_(&c), stmt_(stmt) {
    const auto has = [](std::span<const std::string_view> set, std::string_view w) {
      return std::find(set.begin(), set.end(), w) != set.end();
    };
    for (const Token& t : c.take_rest()) {
      const std::size_t eq = t.text.find('=');
      const std::string_view word = t.text.substr(0, eq);
      const bool is_key = has(keys, word);
      if (!is_key && !has(flags, word)) {
        if (keys.empty() && flags.empty())
          c.fail(t, fmt::format("unexpected '{}'; {} takes no options", t.text, stmt));
        std::vector<std::string> expected;
        for (auto k : keys) expected.push_back(std::string(k) + "=");
        for (auto f : flags) expected.emplace_back(f);
        c.fail(t, fmt::format("unknown option '{}' for {}; expected one of: {}", word, stmt,
                              fmt::join(expected, ", ")));
      }
      if (!is_key && eq != std::string_view::npos)
        c.fail(t, fmt::format("'{}' is a flag and takes no value", word));
      if (is_key && eq == std::string_view::npos)
        c.fail(t, fmt::format("option '{}' needs a value: {}=...", word, word));
      const Token value = is_key ? sub_token(t, eq + 1) : t;
      if (is_key && value.text.empty()) c.fail(value, fmt::format("expected a value after '{}='", word));
      if (const Entry* first = find(word))
        c.fail(t, fmt::format("duplicate option '{}'; already given at column {}", word, first->token.col));
      entries_.push_back({word, t, value});
    }
  }
  Options(LineCursor& c, std::string_view stmt, std::initializer_list<std::string_view> keys,
          std::initializer_list<std::string_view> flags)
      : Options(c, stmt, std::span(keys.begin(), keys.size()), std::span(flags.begin(), flags.size())) {}

  const Entry* find(std::string_view name) const {
    for (const Entry& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }
  std::optional<Token> value(std::string_view key) const {
    if (const Entry* e = find(key)) return e->value;
    return std::nullopt;
  }
  bool flag(std::string_view name) const { return find(name) != nullptr; }
  Token require(std::string_view key, std::string_view placeholder) const {
    if (const Entry* e = find(key)) return e->value;
    c_->fail_at_end(fmt::format("missing {} in {}", placeholder, stmt_));
  }
  // Two words that exclude each other: the later one is the error.
  void exclusive(std::string_view a, std::string_view b) const {
    const Entry* ea = find(a);
    const Entry* eb = find(b);
    if (!ea || !eb) return;
    if (eb->token.col < ea->token.col) std::swap(ea, eb);
    c_->fail(eb->token, fmt::format("'{}' conflicts with '{}'", eb->token.text, ea->token.text));
  }
  bool empty() const { return entries_.empty(); }

 private:
  const LineCursor* c_;
  std::string_view stmt_;
  std::vector<Entry> entries_;
};

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

// The forms of `expect` (parse_expect takes each).
constexpr std::array<std::string_view, 7> kExpectForms{"cont", "nocont", "pte", "raw", "stat", "violations",
                                                       "violation"};
constexpr std::array<std::string_view, 3> kBranchWords{"engine", "hw", "reader"};
static_assert(static_cast<std::size_t>(BranchKind::Engine) == 0 && static_cast<std::size_t>(BranchKind::Hw) == 1 &&
                  static_cast<std::size_t>(BranchKind::Reader) == 2,
              "Branch::kind() is the index of Branch::op");

// ---- the parser ------------------------------------------------------------------------

class Parser {
 public:
  explicit Parser(std::string file) : file_(std::move(file)) { processes_.emplace_back(); }

  // Header lines that override the file's own (`contpte run --config`):
  // parsed first, and the file's lines for the same keys are skipped.
  void force_header(std::string_view lines) {
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

  Scenario parse(std::string_view text) {
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
  static std::span<const StatementInfo> statements() {
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
        entry<&Parser::parse_expect>("expect"),
    };
    return kStatements;
  }
  static const StatementInfo* find_statement(std::string_view word) {
    for (const auto& s : statements())
      if (s.name == word) return &s;
    return nullptr;
  }

  struct HeaderInfo {
    std::string_view name;
    void (Parser::*parse)(LineCursor&, const Token&);
    std::optional<SourceLoc> Header::Given::*given;
  };
  static std::span<const HeaderInfo> header_keys() {
    static constexpr std::array<HeaderInfo, 9> kHeader{{
        {"granule", &Parser::parse_granule, &Header::Given::granule},
        {"contpte", &Parser::parse_contpte, &Header::Given::contpte},
        {"mthp", &Parser::parse_mthp, &Header::Given::mthp},
        {"thp", &Parser::parse_thp, &Header::Given::thp},
        {"tlb", &Parser::parse_tlb, &Header::Given::tlb},
        {"seed", &Parser::parse_seed, &Header::Given::seed},
        {"memory", &Parser::parse_memory, &Header::Given::memory},
        {"fragment", &Parser::parse_fragment, &Header::Given::fragment},
        {"hafdbs", &Parser::parse_hafdbs, &Header::Given::hafdbs},
    }};
    return kHeader;
  }
  static const HeaderInfo* find_header(std::string_view word) {
    for (const auto& h : header_keys())
      if (h.name == word) return &h;
    return nullptr;
  }

  // ---- lines ----

  void read_line(unsigned number, std::string_view raw) {
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

  // Scenarios are UTF-8 text: a NUL or control byte or a broken sequence is
  // almost always a binary or mis-saved file, so say so where it starts.
  void check_encoding(unsigned number, std::string_view raw) const {
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

  void statement(const Line& line) {
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
    if (std::find(kBranchWords.begin(), kBranchWords.end(), word) != kBranchWords.end())
      c.fail(kw, fmt::format("'{}' branch outside a parallel block; expected it between 'parallel' and 'end'", word));
    const StatementInfo* s = find_statement(word);
    if (!s) unknown_statement(c, kw);
    Op op = (this->*(s->parse))(c, kw);
    out_.statements.push_back(Statement{c.loc(kw), std::string(line.text), std::move(op)});
  }

  [[noreturn]] void unknown_statement(const LineCursor& c, const Token& kw) const {
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

  // ---- parallel blocks ----

  void block_line(LineCursor& c, const Line& line, const Token& kw) {
    const unsigned opened = block_->stmt.loc.line;
    if (kw.text == "end") {
      c.finish("end");
      if (std::get<Parallel>(block_->stmt.op).branches.empty())
        c.fail(kw, fmt::format("empty parallel block (opened at line {}); expected an engine, hw or reader "
                               "branch before 'end'",
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
    } else {
      c.fail(kw, fmt::format("expected a branch (engine, hw, reader) or 'end' in the parallel block opened at "
                             "line {}, found '{}'",
                             opened, kw.text));
    }
    std::get<Parallel>(block_->stmt.op).branches.push_back(std::move(b));
  }

  EngineOp engine_branch(LineCursor& c) {
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

  // ---- header ----

  void parse_granule(LineCursor& c, const Token&) {
    const Token t = c.take("a granule (4K, 16K or 64K)");
    std::uint64_t bytes = 0;
    std::optional<Granule> g;
    if (scan_size(t.text, bytes) == Scan::Ok) g = granule_from_bytes(bytes);
    if (!g) c.fail(t, fmt::format("unknown granule '{}'; expected one of: 4K, 16K, 64K", t.text));
    out_.header.granule = *g;
    c.finish("granule 4K|16K|64K");
  }

  void parse_contpte(LineCursor& c, const Token&) {
    const Token t = c.take("a contpte variant");
    if (std::find(kVariantNames.begin(), kVariantNames.end(), t.text) == kVariantNames.end())
      c.fail(t, fmt::format("unknown contpte variant '{}'; expected one of: {}", t.text, join(kVariantNames)));
    out_.header.variant = std::string(t.text);
    c.finish("contpte VARIANT");
  }

  // `mthp S...` = `thp S=always ...`, every other size and `top` never.
  void parse_mthp(LineCursor& c, const Token&) {
    const Token first = c.take("folio sizes or 'none'");
    if (first.text == "none") return c.finish("mthp none");
    for (std::optional<Token> t = first; t; t = c.take_optional()) {
      const std::uint64_t bytes = folio_size(c, *t);
      if (!out_.header.thp.emplace(bytes, ThpPolicy::Always).second)
        c.fail(*t, fmt::format("duplicate folio size {}", format_size(bytes)));
    }
  }

  void parse_thp(LineCursor& c, const Token&) {
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

  // A folio size token; whether the granule allows it is checked when the
  // header ends, because `granule` may come later.
  std::uint64_t folio_size(const LineCursor& c, const Token& t) {
    const std::uint64_t bytes = size(c, t, "folio size");
    pending_sizes_.push_back({bytes, c.loc(t)});
    return bytes;
  }

  // A core's JSON file is found relative to the scenario file, as a C
  // #include is, so a scenario runs the same from any directory.
  void parse_tlb(LineCursor& c, const Token&) {
    out_.header.tlb = std::string(c.take("a TLB preset name or JSON file").text);
    c.finish("tlb NAME");
    const std::filesystem::path path(out_.header.tlb);
    const std::filesystem::path dir = std::filesystem::path(file_).parent_path();
    if (tlb_names_file(out_.header.tlb) && path.is_relative() && !dir.empty())
      out_.header.tlb = (dir / path).lexically_normal().string();
  }

  void parse_seed(LineCursor& c, const Token&) {
    out_.header.seed = number(c, c.take("a seed"), "seed");
    c.finish("seed N");
  }

  void parse_memory(LineCursor& c, const Token&) {
    const Token t = c.take("a memory size");
    out_.header.memory = size(c, t, "memory size");
    memory_loc_ = c.loc(t);
    c.finish("memory SIZE");
  }

  void parse_fragment(LineCursor& c, const Token&) {
    const Token t = c.take("a fraction from 0 to 1");
    const auto v = scan_double(t.text);
    if (!v) c.fail(t, fmt::format("bad fragment '{}'; expected a decimal fraction from 0 to 1", t.text));
    if (*v < 0 || *v > 1) c.fail(t, fmt::format("fragment {} is out of range; expected a fraction from 0 to 1", t.text));
    out_.header.fragment = *v;
    c.finish("fragment FRACTION");
  }

  void parse_hafdbs(LineCursor& c, const Token&) {
    const Token t = c.take("on or off");
    if (t.text != "on" && t.text != "off")
      c.fail(t, fmt::format("bad value '{}' for hafdbs; expected on or off", t.text));
    out_.header.hafdbs = t.text == "on";
    c.finish("hafdbs on|off");
  }

  // The header ends at the first operation (or the end of the file): from
  // here on the granule is fixed.
  void finish_header() {
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

  // ---- operands ----

  std::uint64_t number(const LineCursor& c, const Token& t, std::string_view what) const {
    std::uint64_t v = 0;
    switch (scan_u64(t.text, v)) {
      case Scan::Ok: return v;
      case Scan::Bad: c.fail(t, fmt::format("bad {} '{}'; expected a decimal or 0x hex number", what, t.text));
      case Scan::Overflow: break;
    }
    c.fail(t, fmt::format("{} '{}' does not fit in 64 bits", what, t.text));
  }

  std::uint64_t size(const LineCursor& c, const Token& t, std::string_view what) const {
    std::uint64_t v = 0;
    switch (scan_size(t.text, v)) {
      case Scan::Ok: return v;
      case Scan::Bad:
        c.fail(t, fmt::format("bad {} '{}'; expected a number with an optional K, M, G or T suffix", what, t.text));
      case Scan::Overflow: break;
    }
    c.fail(t, fmt::format("{} '{}' does not fit in 64 bits", what, t.text));
  }

  // A count that must be at least one (nr, count, pages, ...).
  std::uint64_t positive(const LineCursor& c, const Token& t, std::string_view what) const {
    const std::uint64_t v = number(c, t, what);
    if (v == 0) c.fail(t, fmt::format("{} must be at least 1, found {}", what, t.text));
    return v;
  }

  std::uint64_t page_size() const { return geo_->page_size(); }

  // A byte length of a range of pages (mm statements, expect, dump).
  std::uint64_t length(const LineCursor& c, const Token& t, std::string_view what = "length") const {
    const std::uint64_t v = size(c, t, what);
    if (v == 0) c.fail(t, fmt::format("{} must not be zero", what));
    if (v % page_size() != 0)
      c.fail(t, fmt::format("{} {} is not a multiple of the {} page size", what, t.text, geo_->name));
    return v;
  }

  // A plain user address: page aligned, not in the null page (Linux never
  // maps it, mmap_min_addr), below the 48-bit VA limit.
  void check_va(const LineCursor& c, const Token& t, std::uint64_t va) const {
    if (va % page_size() != 0)
      c.fail(t, fmt::format("address {} is not aligned to the {} page size", hex(va), geo_->name));
    if (va == 0 || va >= kUserVaEnd)
      c.fail(t, fmt::format("address {} is out of range; expected a user address from {} to {}", hex(va),
                            hex(page_size()), hex(kUserVaEnd - page_size())));
  }

  // ADDR, NAME or NAME+OFFSET (OFFSET a number or a size).
  AddrExpr addr_expr(LineCursor& c) {
    const Token t = c.take("an address, NAME or NAME+OFFSET");
    AddrExpr a;
    a.loc = c.loc(t);
    if (is_digit(t.text[0])) {
      a.offset = number(c, t, "address");
      check_va(c, t, a.offset);
      return a;
    }
    const std::size_t plus = t.text.find('+');
    const Token name = sub_token(t, 0, plus);
    if (!is_name(name.text))
      c.fail(t, fmt::format("bad address '{}'; expected a number, NAME or NAME+OFFSET", t.text));
    a.mapping = std::string(name.text);
    if (plus != std::string_view::npos) {
      const Token off = sub_token(t, plus + 1);
      a.offset = size(c, off, "offset");
      if (a.offset % page_size() != 0)
        c.fail(off, fmt::format("offset {} is not aligned to the {} page size", hex(a.offset), geo_->name));
    }
    return a;
  }

  static std::string describe(const AddrExpr& a) {
    if (!a.mapping) return hex(a.offset);
    return a.offset ? fmt::format("{}+{}", *a.mapping, hex(a.offset)) : *a.mapping;
  }

  // No range ends past the user address space (for a mapping, whatever its
  // start: no mapping extends past it).
  static void check_range(const AddrExpr& a, std::uint64_t len, const SourceLoc& at) {
    if (a.offset > kUserVaEnd || len > kUserVaEnd - a.offset)
      throw ScenarioError(at, fmt::format("range {} + {} ends past the 48-bit user address space ({})",
                                          describe(a), format_size(len), hex(kUserVaEnd)));
  }

  // The optional LEN of `dump` and `expect cont|nocont`: one page by default.
  std::uint64_t optional_length(LineCursor& c, const AddrExpr& a) const {
    const std::optional<Token> t = c.take_optional();
    const std::uint64_t len = t ? length(c, *t) : page_size();
    check_range(a, len, t ? c.loc(*t) : a.loc);
    return len;
  }

  // A PTE-level statement's address: a plain number, not a mapping name.
  VirtAddr pte_address(LineCursor& c, const Token& kw) const {
    const Token t = c.take("an address");
    if (!is_digit(t.text[0]))
      c.fail(t, fmt::format("{} takes a numeric address, found '{}'; PTE-level statements act outside mappings",
                            kw.text, t.text));
    const std::uint64_t va = number(c, t, "address");
    check_va(c, t, va);
    return VirtAddr{va};
  }

  // nr= of a PTE-level call: as in the kernel, the PTEs [addr, addr + nr)
  // must lie in one page-table page (one PMD's worth of VA).
  unsigned pte_count(const LineCursor& c, const Token& t, VirtAddr addr) const {
    const std::uint64_t nr = positive(c, t, "nr");
    const std::uint64_t slot = (addr.val >> geo_->page_shift) & (geo_->ptrs_per_table() - 1);
    if (nr > geo_->ptrs_per_table() - slot)
      c.fail(t, fmt::format("nr={} from {} crosses the page-table page boundary at {}; a PTE-level range must "
                            "stay inside one page table ({} with the {} granule)",
                            nr, hex(addr.val), hex((addr.val | (geo_->pmd_size() - 1)) + 1),
                            format_size(geo_->pmd_size()), geo_->name));
    return static_cast<unsigned>(nr);
  }

  Prot prot(const LineCursor& c, const Token& t) const {
    const auto p = prot_from_name(t.text);
    if (!p) {
      std::vector<std::string_view> names;
      for (const auto& info : kProts) names.push_back(info.name);
      c.fail(t, fmt::format("unknown protection '{}'; expected one of: {}", t.text, join(names)));
    }
    return *p;
  }

  void check_name(const LineCursor& c, const Token& t, std::string_view what) const {
    if (!is_name(t.text))
      c.fail(t, fmt::format("bad {} '{}'; expected a letter or '_' followed by letters, digits or '_'", what,
                            t.text));
  }

  // F or F+I, F declared by an earlier `alloc`, I inside it. Returns the
  // reference and the folio's page count.
  std::pair<FolioRef, std::uint64_t> folio_ref(const LineCursor& c, const Token& t) const {
    const std::size_t plus = t.text.find('+');
    const Token name = sub_token(t, 0, plus);
    if (!is_name(name.text))
      c.fail(t, fmt::format("bad folio page '{}'; expected F or F+I, F a folio from 'alloc'", t.text));
    const auto it = folios_.find(name.text);
    if (it == folios_.end())
      c.fail(name, fmt::format("unknown folio '{}'; expected a folio allocated by an earlier 'alloc'", name.text));
    const std::uint64_t pages = std::uint64_t{1} << it->second.order;
    FolioRef ref{std::string(name.text), 0, c.loc(t)};
    if (plus != std::string_view::npos) {
      const Token index = sub_token(t, plus + 1);
      ref.index = number(c, index, "page index");
      if (ref.index >= pages)
        c.fail(index, fmt::format("page index {} is past the end of folio {} (order {}: pages 0 to {})", ref.index,
                                  ref.folio, it->second.order, pages - 1));
    }
    return {std::move(ref), pages};
  }

  bool bit_value(const LineCursor& c, const Token& t, std::string_view key) const {
    if (t.text != "0" && t.text != "1")
      c.fail(t, fmt::format("bad value '{}' for {}; expected 0 or 1", t.text, key));
    return t.text == "1";
  }

  // ---- statements ----

  Alloc parse_alloc(LineCursor& c, const Token&) {
    const Token name = c.take("a folio name");
    check_name(c, name, "folio name");
    if (const auto it = folios_.find(name.text); it != folios_.end())
      c.fail(name, fmt::format("folio '{}' is already allocated (line {})", name.text, it->second.line));
    Options o(c, "alloc", {"order"}, {});
    const Token ot = o.require("order", "order=N");
    // The buddy's largest block is a PMD: a folio is at most PMD-sized.
    const unsigned max_order = geo_->pmd_shift() - geo_->page_shift;
    const std::uint64_t order = number(c, ot, "order");
    if (order > max_order)
      c.fail(ot, fmt::format("order {} is too large; expected at most {} (a {} folio with the {} granule)", ot.text,
                             max_order, format_size(geo_->pmd_size()), geo_->name));
    const std::uint64_t bytes = page_size() << order;
    if (bytes > out_.header.memory - allocated_bytes_)
      c.fail(ot, fmt::format("folio {} ({}) does not fit: earlier allocs take {} of the {} memory", name.text,
                             format_size(bytes), format_size(allocated_bytes_), format_size(out_.header.memory)));
    allocated_bytes_ += bytes;
    folios_.emplace(std::string(name.text), FolioInfo{static_cast<unsigned>(order), c.line_number()});
    return Alloc{std::string(name.text), static_cast<unsigned>(order)};
  }

  SetPtes parse_set_ptes(LineCursor& c, const Token& kw) {
    SetPtes s;
    s.addr = pte_address(c, kw);
    std::uint64_t pages = 0;
    std::tie(s.folio, pages) = folio_ref(c, c.take("a folio page F or F+I"));
    Options o(c, "set_ptes", {"nr", "prot"}, {"young", "dirty"});
    const Token nr = o.require("nr", "nr=N");
    const Token p = o.require("prot", "prot=P");
    s.nr = pte_count(c, nr, s.addr);
    // set_ptes maps consecutive pages of one folio (core-mm's precondition).
    if (s.folio.index + s.nr > pages)
      c.fail(nr, fmt::format("nr={} from {}+{} runs past the end of folio {} ({} pages)", s.nr, s.folio.folio,
                             s.folio.index, s.folio.folio, pages));
    s.prot = prot(c, p);
    s.young = o.flag("young");
    s.dirty = o.flag("dirty");
    return s;
  }

  PteOp parse_pte_op(LineCursor& c, const Token& kw) {
    PteOp op;
    op.kind = *lookup(kPteOps, kw.text);
    op.addr = pte_address(c, kw);
    c.finish(fmt::format("{} ADDR", kw.text));
    return op;
  }

  PteBatch parse_pte_batch(LineCursor& c, const Token& kw) {
    static constexpr std::array<std::string_view, 1> kNr{"nr"};
    static constexpr std::array<std::string_view, 1> kFull{"full"};
    static constexpr std::array<std::string_view, 2> kYoungDirty{"young", "dirty"};
    PteBatch b;
    b.kind = *lookup(kPteBatchOps, kw.text);
    b.addr = pte_address(c, kw);
    std::span<const std::string_view> flags;
    switch (b.kind) {
      case PteBatchKind::GetAndClearFullPtes:
      case PteBatchKind::ClearFullPtes: flags = kFull; break;
      case PteBatchKind::ClearYoungDirtyPtes: flags = kYoungDirty; break;
      case PteBatchKind::WrprotectPtes: break;
    }
    Options o(c, kw.text, kNr, flags);
    b.nr = pte_count(c, o.require("nr", "nr=N"), b.addr);
    b.full = o.flag("full");
    b.young = o.flag("young");
    b.dirty = o.flag("dirty");
    return b;
  }

  ModifyProt parse_modify_prot(LineCursor& c, const Token& kw) {
    ModifyProt m;
    m.addr = pte_address(c, kw);
    Options o(c, "modify_prot", {"nr", "prot"}, {});
    const Token nr = o.require("nr", "nr=N");
    const Token p = o.require("prot", "prot=P");
    m.nr = pte_count(c, nr, m.addr);
    m.prot = prot(c, p);
    return m;
  }

  SetAccessFlags parse_set_access_flags(LineCursor& c, const Token& kw) {
    SetAccessFlags s;
    s.addr = pte_address(c, kw);
    Options o(c, "ptep_set_access_flags", {"prot"}, {"young", "dirty"});
    s.prot = prot(c, o.require("prot", "prot=P"));
    s.young = o.flag("young");
    s.dirty = o.flag("dirty");
    return s;
  }

  RawSet parse_raw_set(LineCursor& c, const Token& kw) {
    RawSet r;
    r.addr = pte_address(c, kw);
    Options o(c, "raw_set", {"pfn", "prot"}, {"cont", "young", "dirty"});
    const Token pfn = o.require("pfn", "pfn=F+I");
    const Token p = o.require("prot", "prot=P");
    r.pfn = folio_ref(c, pfn).first;
    r.prot = prot(c, p);
    r.cont = o.flag("cont");
    r.young = o.flag("young");
    r.dirty = o.flag("dirty");
    return r;
  }

  Dump parse_dump(LineCursor& c, const Token&) {
    Dump d;
    d.addr = addr_expr(c);
    d.len = optional_length(c, d.addr);
    c.finish("dump ADDR [LEN]");
    return d;
  }

  // The NAME of `mmap` and `brk`, and where it stands.
  std::pair<std::string, SourceLoc> mapping_name(LineCursor& c) {
    const Token name = c.take("a mapping name");
    check_name(c, name, "mapping name");
    return {std::string(name.text), c.loc(name)};
  }

  Mmap parse_mmap(LineCursor& c, const Token&) {
    Mmap m;
    std::tie(m.name, m.name_loc) = mapping_name(c);
    const Token sz = c.take("a size");
    m.size = length(c, sz, "size");
    Options o(c, "mmap", {"prot", "file", "addr", "align"}, {"private", "shared", "anon"});
    o.exclusive("private", "shared");
    o.exclusive("anon", "file");
    if (auto p = o.value("prot")) m.prot = prot(c, *p);
    m.shared = o.flag("shared");
    if (auto f = o.value("file")) m.file = std::string(f->text);
    if (auto a = o.value("align")) {
      m.align = size(c, *a, "alignment");
      if (!std::has_single_bit(*m.align) || *m.align < page_size())
        c.fail(*a, fmt::format("align={} is not a power of two of at least the {} page size", a->text,
                               geo_->name));
    }
    if (auto a = o.value("addr")) {
      const std::uint64_t va = number(c, *a, "address");
      check_va(c, *a, va);
      if (m.size > kUserVaEnd - va)
        c.fail(*a, fmt::format("mapping {} + {} ends past the 48-bit user address space ({})", hex(va),
                               format_size(m.size), hex(kUserVaEnd)));
      if (m.align && va % *m.align != 0)
        c.fail(*a, fmt::format("addr={} is not aligned to align={}", a->text, format_size(*m.align)));
      m.addr = VirtAddr{va};
    }
    return m;
  }

  // NAME[+OFF] LEN, common to munmap, mprotect, madvise.
  std::pair<AddrExpr, std::uint64_t> mm_range(LineCursor& c) {
    AddrExpr a = addr_expr(c);
    const Token t = c.take("a length");
    const std::uint64_t len = length(c, t);
    check_range(a, len, c.loc(t));
    return {std::move(a), len};
  }

  Munmap parse_munmap(LineCursor& c, const Token&) {
    Munmap m;
    std::tie(m.addr, m.len) = mm_range(c);
    c.finish("munmap NAME[+OFF] LEN");
    return m;
  }

  Brk parse_brk(LineCursor& c, const Token&) {
    Brk b;
    std::tie(b.name, b.name_loc) = mapping_name(c);
    b.size = length(c, c.take("the heap's new size"), "size");
    c.finish("brk NAME SIZE");
    return b;
  }

  Mprotect parse_mprotect(LineCursor& c, const Token&) {
    Mprotect m;
    std::tie(m.addr, m.len) = mm_range(c);
    m.prot = prot(c, c.take("a protection"));
    c.finish("mprotect NAME[+OFF] LEN PROT");
    return m;
  }

  Madvise parse_madvise(LineCursor& c, const Token&) {
    Madvise m;
    std::tie(m.addr, m.len) = mm_range(c);
    const Token t = c.take("an advice");
    const auto advice = lookup(kAdvices, t.text);
    if (!advice) c.fail(t, fmt::format("unknown advice '{}'; expected one of: {}", t.text, names_of(kAdvices)));
    m.advice = *advice;
    c.finish("madvise NAME[+OFF] LEN ADVICE");
    return m;
  }

  Fork parse_fork(LineCursor& c, const Token&) {
    c.finish("fork");
    processes_.emplace_back();
    return {};
  }

  // A process that exists and has not exited.
  unsigned process_id(const LineCursor& c, const Token& t) const {
    const std::uint64_t id = number(c, t, "process id");
    if (id >= processes_.size())
      c.fail(t, fmt::format("no process {}; processes so far are 0 to {} ('fork' creates the next)", t.text,
                            processes_.size() - 1));
    if (const auto& exited = processes_[id].exit_line)
      c.fail(t, fmt::format("process {} exited at line {}", id, *exited));
    return static_cast<unsigned>(id);
  }

  Process parse_process(LineCursor& c, const Token&) {
    const unsigned id = process_id(c, c.take("a process id"));
    c.finish("process ID");
    current_ = id;
    return Process{id};
  }

  // Exiting the current process would leave later statements nowhere to
  // act; the scenario switches away first, as live-fork.cpt does.
  Exit parse_exit(LineCursor& c, const Token&) {
    const Token t = c.take("a process id");
    const unsigned id = process_id(c, t);
    if (id == current_)
      c.fail(t, fmt::format("cannot exit process {}: it is the current process; switch with 'process ID' first", id));
    c.finish("exit ID");
    processes_[id].exit_line = c.line_number();
    return Exit{id};
  }

  Reclaim parse_reclaim(LineCursor& c, const Token&) {
    Reclaim r;
    Options o(c, "reclaim", {"pages"}, {});
    if (auto p = o.value("pages")) r.pages = positive(c, *p, "pages");
    return r;
  }

  Access parse_access(LineCursor& c, const Token& kw) {
    Access a;
    a.kind = *lookup(kAccessKinds, kw.text);
    a.addr = addr_expr(c);
    const Token lt = c.take("a length");
    a.len = size(c, lt, "length");
    if (a.len == 0) c.fail(lt, "length must not be zero");
    check_range(a.addr, a.len, c.loc(lt));
    Options o(c, kw.text, {"stride", "count", "pattern"}, {});
    a.stride = page_size();
    const std::optional<Token> st = o.value("stride");
    if (st) {
      a.stride = size(c, *st, "stride");
      if (a.stride == 0) c.fail(*st, "stride must not be zero");
    }
    if (a.stride > a.len)
      c.fail(st ? *st : lt, fmt::format("length {} is shorter than the stride {}: no access would be made",
                                        format_size(a.len), format_size(a.stride)));
    a.count = a.len / a.stride;
    if (auto n = o.value("count")) a.count = positive(c, *n, "count");
    if (auto p = o.value("pattern")) {
      const auto pattern = lookup(kPatterns, p->text);
      if (!pattern) c.fail(*p, fmt::format("unknown pattern '{}'; expected one of: {}", p->text, names_of(kPatterns)));
      a.pattern = *pattern;
    }
    return a;
  }

  Op parse_expect(LineCursor& c, const Token&) {
    const Token form = c.take(fmt::format("one of: {}", join(kExpectForms)));
    const std::string_view f = form.text;
    if (f == "cont" || f == "nocont") {
      ExpectCont e;
      e.cont = f == "cont";
      e.addr = addr_expr(c);
      e.len = optional_length(c, e.addr);
      c.finish(fmt::format("expect {} ADDR [LEN]", f));
      return e;
    }
    if (f == "pte" || f == "raw") return expect_pte(c, f == "raw");
    if (f == "stat") return expect_stat(c);
    if (f == "violations") {
      ExpectViolations e{number(c, c.take("a count"), "count")};
      c.finish("expect violations N");
      return e;
    }
    if (f == "violation") {
      const Token rule = c.take("a rule");
      if (std::find(kRuleNames.begin(), kRuleNames.end(), rule.text) == kRuleNames.end())
        c.fail(rule, fmt::format("unknown rule '{}'; expected one of: {}", rule.text, join(kRuleNames)));
      ExpectViolation e{std::string(rule.text), std::nullopt};
      // Claiming zero findings says nothing; `expect violations 0` asserts none.
      if (auto n = c.take_optional()) e.count = positive(c, *n, "count");
      c.finish("expect violation RULE [N]");
      return e;
    }
    c.fail(form, fmt::format("unknown expectation '{}'; expected one of: {}", f, join(kExpectForms)));
  }

  ExpectPte expect_pte(LineCursor& c, bool raw) {
    ExpectPte e;
    e.raw = raw;
    e.addr = addr_expr(c);
    check_range(e.addr, page_size(), e.addr.loc);
    const std::string_view stmt = raw ? "expect raw" : "expect pte";
    Options o(c, stmt, {"present", "pfn", "write", "dirty", "young", "cont", "huge"}, {});
    if (o.empty())
      c.fail_at_end(
          fmt::format("{} needs at least one of: present=, pfn=, write=, dirty=, young=, cont=, huge=", stmt));
    PteExpectation& w = e.want;
    for (auto [key, field] : {std::pair{"present", &PteExpectation::present}, std::pair{"write", &PteExpectation::write},
                              std::pair{"dirty", &PteExpectation::dirty}, std::pair{"young", &PteExpectation::young},
                              std::pair{"cont", &PteExpectation::cont}, std::pair{"huge", &PteExpectation::huge}})
      if (auto v = o.value(key)) w.*field = bit_value(c, *v, key);
    if (auto v = o.value("pfn")) {
      if (is_digit(v->text[0])) {
        const std::uint64_t pfn = number(c, *v, "pfn");
        // Output addresses are 48-bit (no FEAT_LPA): a larger PFN can never match.
        if (pfn >= (kUserVaEnd >> geo_->page_shift))
          c.fail(*v, fmt::format("pfn {} is beyond the 48-bit physical address space", v->text));
        w.pfn = Pfn{pfn};
      } else {
        w.pfn = folio_ref(c, *v).first;
      }
    }
    return e;
  }

  ExpectStat expect_stat(LineCursor& c) {
    ExpectStat e;
    const Token name = c.take("a stat name");
    if (!is_stat_name(name.text))
      c.fail(name, fmt::format("bad stat name '{}'; expected a key of \"stats\" in the report", name.text));
    e.name = std::string(name.text);
    e.name_loc = c.loc(name);
    const Token op = c.take("a comparison");
    const auto cmp = lookup(kCmpOps, op.text);
    if (!cmp) c.fail(op, fmt::format("unknown comparison '{}'; expected one of: {}", op.text, names_of(kCmpOps)));
    e.op = *cmp;
    const Token v = c.take("a value");
    // Integers may be written as sizes or in hex (rss_bytes >= 64M).
    std::uint64_t n = 0;
    if (scan_size(v.text, n) == Scan::Ok)
      e.value = static_cast<double>(n);
    else if (auto d = scan_double(v.text))
      e.value = *d;
    else
      c.fail(v, fmt::format("bad value '{}'; expected a decimal number, 0x hex or a size", v.text));
    c.finish("expect stat NAME OP VALUE");
    return e;
  }

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

}  // namespace

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
  v.branch_kinds.assign(kBranchWords.begin(), kBranchWords.end());
  v.expect_forms.assign(kExpectForms.begin(), kExpectForms.end());
  return v;
}

}  // namespace contpte
