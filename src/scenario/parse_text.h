// scenario/parse_text.h — the .cpt parser's view of text (internal to the
// parser: scenario.cpp, parse_statements.cpp).
//
// Owns: tokens and their columns (in code points), the UTF-8 check, number
// and size scanning, the cursor over one line's tokens that raises located
// errors, and the `key=value` / flag options that end a statement.
// Must not know: any statement's meaning.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scenario/scenario.h"
#include "arch/names.h"

namespace contpte::cpt {

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
unsigned code_points(std::string_view s);

// A part of a token (the value of `key=value`, the offset of `NAME+OFF`), with
// its own column so that errors point into the token.
Token sub_token(const Token& t, std::size_t pos, std::size_t len = std::string_view::npos);

inline bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
inline bool is_name_start(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }

// Folio and mapping names: an identifier, so that a name can never be read as
// a number and `+` always separates the offset.
bool is_name(std::string_view s);

// Stat names as the report spells them (may be dotted, e.g. expects.passed).
bool is_stat_name(std::string_view s);

// Byte length of the valid UTF-8 sequence at s[i], or 0 if it is not one
// (truncated, overlong, surrogate, beyond U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i);

inline std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

template <class E, std::size_t N>
std::optional<E> lookup(const std::array<Named<E>, N>& table, std::string_view word) {
  for (const auto& entry : table)
    if (entry.name == word) return entry.value;
  return std::nullopt;
}

template <class E, std::size_t N>
std::string names_of(const std::array<Named<E>, N>& table) {
  return fmt::format("{}", fmt::join(names_in(table, &Named<E>::name), ", "));
}

inline std::string join(std::span<const std::string_view> words) { return fmt::format("{}", fmt::join(words, ", ")); }

std::size_t edit_distance(std::string_view a, std::string_view b);

// ---- numbers ----------------------------------------------------------------

enum class Scan { Ok, Bad, Overflow };

// Decimal or 0x hex; no sign, no separators.
Scan scan_u64(std::string_view s, std::uint64_t& out);

// A number with an optional K/M/G/T suffix (powers of 1024).
Scan scan_size(std::string_view s, std::uint64_t& out);

// A decimal number as std::from_chars reads it ("0.3", "1", "2.5e3"),
// finite.
std::optional<double> scan_double(std::string_view s);

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

}  // namespace contpte::cpt
