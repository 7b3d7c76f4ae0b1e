#!/usr/bin/env bash
# Installs the Debian packages contpte needs to build and test, and only the
# missing ones: on a ready machine it changes nothing and touches no network,
# so setup.sh and test.sh can call it every time.
set -euo pipefail

packages=(cmake g++ clang libclang-rt-14-dev ninja-build libgtest-dev libbenchmark-dev
          libcli11-dev libfmt-dev nlohmann-json3-dev libzstd-dev valgrind pkg-config)

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
