// scenario/parse_text.cpp — see parse_text.h.

#include "scenario/parse_text.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

namespace contpte::cpt {

unsigned code_points(std::string_view s) {
  return static_cast<unsigned>(
      std::count_if(s.begin(), s.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; }));
}

Token sub_token(const Token& t, std::size_t pos, std::size_t len) {
  return {t.text.substr(pos, len), t.col + code_points(t.text.substr(0, pos))};
}

bool is_name(std::string_view s) {
  return !s.empty() && is_name_start(s[0]) &&
         std::all_of(s.begin() + 1, s.end(), [](char ch) { return is_name_start(ch) || is_digit(ch); });
}

bool is_stat_name(std::string_view s) {
  return !s.empty() && is_name_start(s[0]) && std::all_of(s.begin() + 1, s.end(), [](char ch) {
           return is_name_start(ch) || is_digit(ch) || ch == '.';
         });
}

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

std::optional<double> scan_double(std::string_view s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace contpte::cpt
