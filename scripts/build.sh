#!/usr/bin/env bash
# Usage: scripts/build.sh BUILD_DIR [CMAKE_ARG...]
# Configures the source tree into BUILD_DIR with the given cache settings and
# builds it. Ninja is chosen only on the first configure: CMake refuses to
# switch the generator of an existing build directory.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${1:?usage: scripts/build.sh BUILD_DIR [CMAKE_ARG...]}
shift
generator=()
if [[ ! -f $dir/CMakeCache.txt ]] && command -v ninja >/dev/null 2>&1; then
  generator=(-G Ninja)
fi
cmake -S . -B "$dir" "${generator[@]}" "$@"
cmake --build "$dir" --parallel
