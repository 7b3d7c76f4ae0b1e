#include "cli_messages.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

namespace contpte::cli {

namespace {

// Optimal string alignment distance: insertions, deletions, substitutions
// and swaps of two adjacent characters each cost 1 ("explor", "--jsn",
// "exlpore" are all 1 away from what was meant).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string_view strip_dashes(std::string_view s) {
  while (!s.empty() && s.front() == '-') s.remove_prefix(1);
  return s;
}

// The subcommand being parsed when the error came (the deepest one).
CLI::App* parsed_subcommand(CLI::App& app) {
  CLI::App* at = nullptr;
  for (CLI::App* sub : app.get_subcommands()) at = sub;
  if (!at) return nullptr;
  CLI::App* deeper = parsed_subcommand(*at);
  return deeper ? deeper : at;
}

std::string command_name(const CLI::App* sub) {
  std::string name;
  for (const CLI::App* a = sub; a && a->get_parent(); a = a->get_parent())
    name = a->get_name() + (name.empty() ? "" : " " + name);
  return name.empty() ? "contpte" : "contpte " + name;
}

std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : app.get_options()) {
    for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
    for (const auto& s : opt->get_snames()) names.push_back("-" + s);
  }
  return names;
}

std::string with_suggestion(std::string message, const std::optional<std::string>& near) {
  if (near) message += fmt::format("; did you mean '{}'?", *near);
  return message;
}

// The leftover arguments of `app` that made CLI11 complain.
std::string leftover_message(CLI::App& app, const std::vector<std::string>& left) {
  const std::string who = command_name(&app);
  for (const auto& arg : left) {
    if (arg.size() > 1 && arg.front() == '-') {
      const std::string typed = arg.substr(0, arg.find('='));
      return with_suggestion(fmt::format("{}: error: unknown option '{}'", who, typed),
                             closest_name(typed, option_names(app)));
    }
  }
  return fmt::format("{}: error: unexpected argument '{}'", who, left.empty() ? "" : left.front());
}

}  // namespace

std::optional<std::string> closest_name(std::string_view typed, const std::vector<std::string>& names) {
  const std::string_view core = strip_dashes(typed);
  if (core.empty()) return std::nullopt;
  std::optional<std::string> best;
  std::size_t best_d = ~std::size_t{0};
  for (const auto& n : names) {
    const std::size_t d = edit_distance(core, strip_dashes(n));
    if (d < best_d) best_d = d, best = n;
  }
  // A typo changes a few characters: at most a third of the name, at least one.
  if (best && best_d <= std::max<std::size_t>(1, strip_dashes(*best).size() / 3)) return best;
  // Or the start of exactly one name ("expl" for "explore").
  std::optional<std::string> prefix_of;
  for (const auto& n : names)
    if (core.size() >= 2 && strip_dashes(n).substr(0, core.size()) == core) {
      if (prefix_of) return std::nullopt;
      prefix_of = n;
    }
  return prefix_of;
}

std::string parse_error_message(CLI::App& app, const CLI::ParseError& e) {
  CLI::App* sub = parsed_subcommand(app);
  if (!sub) {
    std::vector<std::string> commands;
    for (const CLI::App* s : app.get_subcommands([](CLI::App*) { return true; })) commands.push_back(s->get_name());
    for (const auto& arg : app.remaining(false))
      if (arg.empty() || arg.front() != '-')
        return with_suggestion(fmt::format("contpte: error: unknown command '{}'", arg), closest_name(arg, commands));
    const auto left = app.remaining(false);
    if (!left.empty()) return leftover_message(app, left);
    return fmt::format("contpte: error: a command is required: one of {} (contpte --help)",
                       fmt::join(commands, ", "));
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) {
    // The leftovers belong to the innermost command that has any.
    for (CLI::App* a = sub; a; a = a->get_parent())
      if (const auto left = a->remaining(false); !left.empty()) return leftover_message(*a, left);
  }
  return fmt::format("{}: error: {}", command_name(sub), e.what());
}

CLI::Validator positive_integer(std::uint64_t max) {
  return CLI::Validator(
      [max](std::string& text) -> std::string {
        std::uint64_t v = 0;
        const char* end = text.data() + text.size();
        const auto [p, ec] = std::from_chars(text.data(), end, v);
        if (ec == std::errc{} && p == end && v >= 1 && v <= max) return {};
        if (max == ~std::uint64_t{0}) return fmt::format("expected a positive integer, got '{}'", text);
        return fmt::format("expected a positive integer up to {}, got '{}'", max, text);
      },
      "POSITIVE");
}

}  // namespace contpte::cli
