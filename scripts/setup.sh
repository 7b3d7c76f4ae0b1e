#!/usr/bin/env bash
# From a fresh Debian 12 (as root) to a result: installs what is missing,
# builds Release into build/ and runs the main job, `contpte run` with its
# built-in suite. The script's exit status is that of the run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=Release
exec build/contpte run
