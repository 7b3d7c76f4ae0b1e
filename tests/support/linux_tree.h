// tests/support/linux_tree.h — Debian's linux-source-6.12 for the tests that
// run the kernel's own contpte code (scripts/linux-tree.sh fetches it once
// into the cache; the tests skip with the reason when it cannot be had).
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <string>

namespace contpte::test {

// The tree's path, or nullopt with `why` set (the test then skips).
inline std::optional<std::string> linux_tree(std::string* why) {
  static const std::pair<std::optional<std::string>, std::string> cached = [] {
    const std::string cmd = std::string(CONTPTE_SOURCE_DIR) + "/scripts/linux-tree.sh 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return std::pair<std::optional<std::string>, std::string>{std::nullopt, "cannot run linux-tree.sh"};
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    const int rc = pclose(p);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    const std::size_t nl = out.rfind('\n');
    const std::string last = nl == std::string::npos ? out : out.substr(nl + 1);
    if (rc != 0) return std::pair<std::optional<std::string>, std::string>{std::nullopt, "linux-source-6.12 unavailable: " + out};
    return std::pair<std::optional<std::string>, std::string>{last, ""};
  }();
  if (why) *why = cached.second;
  return cached.first;
}

}  // namespace contpte::test

// Skips the test when the tree cannot be had; else declares `tree`.
#define CONTPTE_NEED_LINUX_TREE(tree)                         \
  std::string tree##_why;                                     \
  const auto tree##_opt = ::contpte::test::linux_tree(&tree##_why); \
  if (!tree##_opt) GTEST_SKIP() << tree##_why;                \
  const std::string tree = *tree##_opt
