#!/bin/sh
# scripts/record-build.sh — records a small real C build for the comparison
# with published kernel-build measurements (docs/results.md, "A real build
# against the published measurements").
#
#   scripts/record-build.sh [-c CONTPTE] OUTDIR [FILE.c ...]
#
# Records, one trace per process, what a gcc build of the C files runs:
# cc1 (the compiler proper), as and ld for each file.
# Each command is the one `gcc -###` prints, run under `contpte record`
# (its default recorder: QEMU where qemu-user is installed, else valgrind),
# one trace per process; scripts/compare-build.py adds the processes up.
# (The QEMU recorder also follows exec, so `contpte record -- make` records
# a whole build as one trace; per-process traces keep the comparison the
# same under both recorders.)
# Default files: three of zlib's examples (Debian package zlib1g-dev),
# compiled at -O0 (about a minute under QEMU, hours under valgrind).
set -eu
CONTPTE=build/contpte
if [ "${1:-}" = "-c" ]; then CONTPTE=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: $0 [-c CONTPTE] OUTDIR [FILE.c ...]" >&2; exit 2; }
OUT=$1; shift
if [ $# -eq 0 ]; then
  EX=/usr/share/doc/zlib1g-dev/examples
  set -- $EX/gun.c $EX/gzjoin.c $EX/minigzip.c
fi
for f in "$@"; do
  [ -r "$f" ] || { echo "$0: $f: cannot read (zlib1g-dev installed?)" >&2; exit 2; }
done
command -v gcc >/dev/null || { echo "$0: gcc is not installed" >&2; exit 2; }
[ -x "$CONTPTE" ] || { echo "$0: $CONTPTE: not an executable (build first, or -c PATH)" >&2; exit 2; }
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
CONTPTE=$(realpath "$CONTPTE")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for f in "$@"; do
  b=$(basename "$f" .c)
  cp "$f" "$WORK/$b.c"
  # The commands gcc would run, as it prints them (quoted words).
  (cd "$WORK" && gcc -### -O0 -c "$b.c" -o "$b.o") 2>"$WORK/$b.cmds"
  cc1=$(grep '/cc1 ' "$WORK/$b.cmds" | sed "s|-o /tmp/[^ ]*\.s|-o $b.s|")
  as=$(grep -E '^ *as ' "$WORK/$b.cmds" | sed "s|/tmp/[^ ]*\.s|$b.s|")
  echo "recording cc1 $b.c" >&2
  (cd "$WORK" && eval "\"$CONTPTE\" record -o \"$OUT/cc1-$b.trace\" -- $cc1")
  echo "recording as $b.s" >&2
  (cd "$WORK" && eval "\"$CONTPTE\" record -o \"$OUT/as-$b.trace\" -- $as")
  # The link, as collect2 would run ld (without the LTO plugin, which the
  # -O0 objects do not need); each zlib example is a program of its own.
  (cd "$WORK" && gcc -### "$b.o" -lz -o "$b") 2>"$WORK/$b.link"
  ld=$(grep '/collect2 ' "$WORK/$b.link" | sed 's|^ *[^ ]*/collect2 |ld |; s|-plugin [^ ]*||; s|"-plugin-opt=[^"]*"||g')
  echo "recording ld $b" >&2
  (cd "$WORK" && eval "\"$CONTPTE\" record -o \"$OUT/ld-$b.trace\" -- $ld")
done
ls -l "$OUT" >&2
