#!/usr/bin/env bash
# Usage: scripts/linux-tree.sh [--print]
# Fetches Debian's linux-source-6.12 (bookworm-security), pinned to
# 6.12.117-1~deb12u1, and unpacks only the files `contpte --kernel` reads
# (arch/arm64/mm/{contpte,fault,mmu}.c, arch/arm64/include/asm/, the top
# Makefile) into a partial tree under the cache directory:
#   ${CONTPTE_CACHE_DIR:-~/.cache/contpte}/linux-source-6.12/
# If the pinned version is gone from the archive, the newest one is taken
# with a warning. Prints the tree's path on the last line of stdout.
# Exit 0: the tree is there (fetched now or before); exit 77: it cannot be
# had (no apt, no network): the reason is on stderr. Tests call this and skip
# on 77. The project ships no Linux code: the tree is only read at run time.
set -euo pipefail

pin=6.12.117-1~deb12u1
pkg=linux-source-6.12
cache=${CONTPTE_CACHE_DIR:-${HOME:-/root}/.cache/contpte}
dest=$cache/$pkg
stamp=$dest/.contpte-tree

if [[ -f $stamp ]]; then
  echo "$dest"
  exit 0
fi
for tool in apt-get dpkg-deb tar xz; do
  command -v "$tool" >/dev/null 2>&1 || { echo "linux-tree: no $tool: cannot fetch $pkg" >&2; exit 77; }
done

mkdir -p "$cache"
work=$(mktemp -d "$cache/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

version=$pin
if ! apt-get download "$pkg=$pin" >download.log 2>&1; then
  # The list may be stale (apt-get update not run), or the version gone.
  newest=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [[ -z $newest || $newest == "(none)" ]]; then
    echo "linux-tree: $pkg is not in the package lists (run apt-get update?):" >&2
    tail -3 download.log >&2
    exit 77
  fi
  echo "linux-tree: warning: $pkg $pin is not available; using $newest" >&2
  version=$newest
  apt-get download "$pkg=$version" >download.log 2>&1 || {
    echo "linux-tree: cannot download $pkg $version:" >&2
    tail -3 download.log >&2
    exit 77
  }
fi
deb=$(ls ./*.deb)
dpkg-deb --fsys-tarfile "$deb" | tar -x ./usr/src/$pkg.tar.xz
echo "linux-tree: unpacking the needed files of $pkg $version (about a minute)" >&2
tar -xJf "usr/src/$pkg.tar.xz" --wildcards \
  "$pkg/Makefile" "$pkg/arch/arm64/mm/contpte.c" "$pkg/arch/arm64/mm/fault.c" \
  "$pkg/arch/arm64/mm/mmu.c" "$pkg/arch/arm64/include/asm/*"
rm -rf "$dest"
mv "$pkg" "$dest"
echo "$version" >"$stamp"
echo "$dest"
