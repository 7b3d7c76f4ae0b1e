#!/usr/bin/env bash
# From a fresh Debian 12 (as root) to a result: installs what is missing,
# builds Release into build/ and runs the main job, `contpte run` with its
# built-in suite. The script's exit status is that of the run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Only what the tool needs: no test or benchmark packages, nothing of them built.
scripts/install-deps.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=Release -DCONTPTE_TESTS=OFF -DCONTPTE_BENCH=OFF
exec build/contpte run
