// sweep/version.h — the version of this build, as `contpte --version` prints
// it and every sweep key records it.
//
// Owns: the one version string. It is the CMake project version, followed by
// ` (git DESCRIPTION)` when the build had a git checkout and git at build
// time; a build without git has the project version alone.
#pragma once

#include <string>

namespace contpte::sweep {

// "0.1" or "0.1 (git 17d55bb-dirty)".
const std::string& version_string();

}  // namespace contpte::sweep
