#!/usr/bin/env bash
# Usage: scripts/test.sh [--sanitize] [--build-dir DIR]   (DIR relative to the source tree)
# Builds with warnings as errors and runs the whole test suite with ctest.
#   (default)   Release into build/
#   --sanitize  Debug with AddressSanitizer + UBSan into build-asan/, without
#               the benchmarks (they measure nothing useful under ASan)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=
sanitize=0
args=(-DCMAKE_BUILD_TYPE=Release -DCONTPTE_SANITIZE=OFF -DCONTPTE_TESTS=ON -DCONTPTE_BENCH=ON)
while (($#)); do
  case $1 in
    --sanitize)
      sanitize=1
      args=(-DCONTPTE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DCONTPTE_TESTS=ON -DCONTPTE_BENCH=OFF) ;;
    --build-dir)
      dir=${2:?--build-dir needs a directory}
      shift ;;
    *)
      echo "usage: scripts/test.sh [--sanitize] [--build-dir DIR]" >&2
      exit 2 ;;
  esac
  shift
done
if [[ -z $dir ]]; then
  if ((sanitize)); then dir=build-asan; else dir=build; fi
fi

scripts/install-deps.sh --test
# The sanitizer pass builds with clang, so that one CI run checks both
# compilers for warnings (the default pass uses the system c++, g++).
if ((sanitize)) && command -v clang++ >/dev/null 2>&1 && [[ ! -f $dir/CMakeCache.txt ]]; then
  export CXX=clang++
fi
scripts/build.sh "$dir" "${args[@]}" -DCONTPTE_WERROR=ON
status=0
ctest --test-dir "$dir" --output-on-failure -j2 || status=$?
# ctest shows a test's output only when it fails; a skipped test's reason
# (its SKIP: line) is printed here so that CI output shows it.
grep -h "^SKIP: " "$dir/Testing/Temporary/LastTest.log" 2>/dev/null | sed 's/^/ctest: skipped: /' || true
exit $status
