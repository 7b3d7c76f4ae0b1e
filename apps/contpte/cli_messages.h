// The command line's own messages: what CLI11 reports as a parse error,
// said the way the rest of the tool says errors (`contpte CMD: error: ...`),
// with a "did you mean" for a mistyped command or option, and the validator
// behind every count-like flag (a positive integer, said so when it is not).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace contpte::cli {

// The name among `names` closest to `typed` (edit distance with adjacent
// transpositions, small against the name's length), or a unique name that
// `typed` begins; nullopt when none is close enough to be a likely typo.
std::optional<std::string> closest_name(std::string_view typed, const std::vector<std::string>& names);

// The message (one line, no newline) for a parse error of `app`'s command
// line: an unknown command or option with a suggestion drawn from CLI11's own
// lists of subcommands and options (so later subcommands are covered), or
// CLI11's message prefixed by the command that was being parsed.
std::string parse_error_message(CLI::App& app, const CLI::ParseError& e);

// Accepts a decimal integer in [1, max]; otherwise "expected a positive
// integer[ up to MAX], got 'TEXT'".
CLI::Validator positive_integer(std::uint64_t max = ~std::uint64_t{0});

}  // namespace contpte::cli
