#!/usr/bin/env bash
# Usage: scripts/install-deps.sh [--test]
# Installs the Debian 12 packages contpte needs, and only the missing ones: on
# a ready machine it changes nothing and touches no network, so setup.sh and
# test.sh can call it every time.
#   (default)  what the build and every command of the tool need at run time:
#              compiler, CMake, Ninja, the libraries, qemu-user
#              (`contpte record`'s QEMU recorder, which follows exec itself), valgrind
#              (its fallback), python3 (scripts/live-reference.py,
#              bench/record_speed.py).
#   --test     also what the tests and benchmarks need: GoogleTest and gmock
#              (separate packages in Debian), Google Benchmark, clang 14 with
#              its sanitizer runtime (the ASan+UBSan pass), xz-utils
#              (scripts/linux-tree.sh unpacks Debian's linux-source-6.12),
#              slurm-wlm + munge (the one-node Slurm sweep test), GNU
#              parallel (the parallel sweep recipe's test), pybind11-dev +
#              python3-dev (the Python module, optional for the tool itself),
#              zlib1g-dev (its example C files are what scripts/record-build.sh
#              compiles and records), make (the recorded `make -j2` build of
#              the process-tree test).
# Starts from a bare `debootstrap --variant=minbase bookworm` root: nothing is
# assumed present but apt and dpkg. No step needs git.
set -euo pipefail

test=0
case ${1:-} in
  '') ;;
  --test) test=1 ;;
  *) echo "usage: scripts/install-deps.sh [--test]" >&2; exit 2 ;;
esac

packages=(ca-certificates cmake g++ gcc ninja-build pkg-config
          libcli11-dev libfmt-dev nlohmann-json3-dev libzstd-dev
          qemu-user valgrind python3)
if ((test)); then
  packages+=(libgtest-dev libgmock-dev libbenchmark-dev
             clang libclang-rt-14-dev xz-utils
             slurm-wlm munge parallel pybind11-dev python3-dev
             zlib1g-dev make)
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: no dpkg-query (not Debian?); install these yourself: ${packages[*]}" >&2
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  # db:Status-Status is "installed" only for a fully configured package;
  # half-installed or removed-with-config ones must be installed again.
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ $status == installed ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "install-deps: missing packages and not root (no sudo): ${missing[*]}" >&2
    exit 1
  }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
