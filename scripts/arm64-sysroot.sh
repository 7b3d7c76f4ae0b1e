#!/usr/bin/env bash
# Usage: scripts/arm64-sysroot.sh [DIR] [PACKAGE...]
# Fills DIR with Debian 12's arm64 packages, unpacked (dpkg-deb -x), so that
# `contpte record` can run arm64 programs under `qemu-aarch64 -L DIR`
# (docs/trace.md). The host is not touched: apt runs with a private state
# and cache directory and architecture arm64, so no foreign architecture is
# added to dpkg and nothing is installed (a multiarch install of arm64 gcc
# or busybox conflicts with the host's packages).
#   DIR      default: $CONTPTE_SYSROOT, else
#            ${XDG_DATA_HOME:-~/.local/share}/contpte/sysroot-arm64 (where
#            `contpte record` looks)
#   PACKAGE  default: libc6 libgcc-s1 libstdc++6 zlib1g gzip busybox-static
#            (the C library and loader, a dynamically linked gzip, a static
#            busybox); dependencies are not followed: name what you need.
# Needs apt-get, dpkg-deb and debian-archive-keyring (all in a Debian base
# system) and the network.
set -euo pipefail

dir=${1:-${CONTPTE_SYSROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/contpte/sysroot-arm64}}
shift || true
packages=("$@")
((${#packages[@]})) || packages=(libc6 libgcc-s1 libstdc++6 zlib1g gzip busybox-static)
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${DEBIAN_SUITE:-bookworm}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r $keyring ]] || { echo "arm64-sysroot: no $keyring (apt-get install debian-archive-keyring)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/contpte-arm64-apt-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/state/lists/partial "$tmp"/cache/archives/partial "$tmp"/etc/preferences.d "$tmp"/debs
: >"$tmp"/state/status
echo "deb [arch=arm64 signed-by=$keyring] $mirror $suite main" >"$tmp"/etc/sources.list
apt=(apt-get -q
     -o APT::Architecture=arm64 -o APT::Architectures::=arm64
     -o Dir::State="$tmp"/state -o Dir::State::status="$tmp"/state/status
     -o Dir::Cache="$tmp"/cache
     -o Dir::Etc::SourceList="$tmp"/etc/sources.list -o Dir::Etc::SourceParts="$tmp"/etc/none
     -o Dir::Etc::Preferences="$tmp"/etc/none -o Dir::Etc::PreferencesParts="$tmp"/etc/preferences.d
     -o Debug::NoLocking=1)
echo "arm64-sysroot: reading the $suite arm64 package lists from $mirror" >&2
"${apt[@]}" update >/dev/null
(cd "$tmp"/debs && "${apt[@]}" download "${packages[@]/%/:arm64}")
mkdir -p "$dir"
for deb in "$tmp"/debs/*.deb; do
  dpkg-deb -x "$deb" "$dir"
done
# Debian's merged /usr: the loader is looked up as /lib/ld-linux-aarch64.so.1.
for d in bin sbin lib; do
  [[ -e $dir/$d ]] || ln -s usr/$d "$dir/$d"
done
echo "arm64-sysroot: ${packages[*]} unpacked into $dir" >&2
