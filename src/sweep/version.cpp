#include "sweep/version.h"

#include <string_view>

#include "contpte_version.h"  // generated in the build tree by cmake/version.cmake

namespace contpte::sweep {

const std::string& version_string() {
  static const std::string v = [] {
    std::string s = CONTPTE_PROJECT_VERSION;
    if (constexpr std::string_view git = CONTPTE_GIT_DESCRIPTION; !git.empty()) s += " (git " + std::string(git) + ")";
    return s;
  }();
  return v;
}

}  // namespace contpte::sweep
