// arch/names.h — the names of a table's entries, for error messages that
// list the valid choices (fmt::join over the result).
//
// Why not `table | std::views::transform(...)`: clang 14 (the CI's
// sanitizer compiler) cannot instantiate libstdc++ 12's <ranges> views over
// a std::vector, so the project builds the list with a plain loop instead.
#pragma once

#include <functional>
#include <string_view>
#include <vector>

namespace contpte {

template <class Table, class Member>
std::vector<std::string_view> names_in(const Table& table, Member name) {
  std::vector<std::string_view> out;
  for (const auto& entry : table) out.emplace_back(std::invoke(name, entry));
  return out;
}

}  // namespace contpte
