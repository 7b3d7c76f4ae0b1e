#!/usr/bin/env bash
# The CLI's contract (docs/design.md "Interfaces"): exit 0 / 1 / 2, errors naming
# FILE:LINE:COL, no report written on bad input, highest status wins.
set -u
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # name expected-status actual-status
  if [[ $2 != "$3" ]]; then echo "FAIL $1: exit $3, expected $2"; fail=1; else echo "ok   $1"; fi
}

"$bin" configs >"$tmp/out" 2>&1; check "configs" 0 $?
grep -q "^contpte-64k" "$tmp/out" || { echo "FAIL configs lacks contpte-64k"; fail=1; }
"$bin" presets >"$tmp/out" 2>&1; check "presets" 0 $?

printf 'alloc F order=4\nset_ptes 0x40000000 F nr=16 prot=rw\nexpect cont 0x40000000 64K\n' >"$tmp/good.cpt"
printf 'alloc F order=4\nset_ptes 0x40000000 F nr=16 prot=rw\nexpect nocont 0x40000000\n' >"$tmp/wrong.cpt"
printf 'granule 4K\ncontpte upstrem\n' >"$tmp/bad.cpt"

"$bin" run "$tmp/good.cpt" --json "$tmp/good.json" >/dev/null; check "good scenario" 0 $?
grep -q '"version": 1' "$tmp/good.json" || { echo "FAIL json report lacks version"; fail=1; }

"$bin" run "$tmp/wrong.cpt" >"$tmp/out" 2>&1; check "wrong expect" 1 $?
grep -q "wrong.cpt:3: expect failed" "$tmp/out" || { echo "FAIL wrong expect does not name line 3"; cat "$tmp/out"; fail=1; }

"$bin" run "$tmp/bad.cpt" --json "$tmp/bad.json" >"$tmp/out" 2>&1; check "bad input" 2 $?
grep -q "bad.cpt:2:9: error: unknown contpte variant 'upstrem'" "$tmp/out" || { echo "FAIL bad input message"; cat "$tmp/out"; fail=1; }
[[ ! -e $tmp/bad.json ]] || { echo "FAIL a report was written for bad input"; fail=1; }

"$bin" run "$tmp/good.cpt" "$tmp/wrong.cpt" >/dev/null 2>&1; check "highest status wins (0,1)" 1 $?
"$bin" run "$tmp/wrong.cpt" "$tmp/bad.cpt" >/dev/null 2>&1; check "highest status wins (1,2)" 2 $?
"$bin" run "$tmp/missing.cpt" >"$tmp/out" 2>&1; check "missing file" 2 $?
"$bin" run --no-such-flag >/dev/null 2>&1; check "unknown flag" 2 $?
"$bin" frobnicate >/dev/null 2>&1; check "unknown command" 2 $?
"$bin" run "$tmp/good.cpt" --trace >"$tmp/out" 2>&1; check "trace" 0 $?
grep -q "tlbi\|store" "$tmp/out" || { echo "FAIL trace printed no PTE access"; fail=1; }
"$bin" run "$tmp/good.cpt" --config gran-16k >"$tmp/out" 2>&1; check "--config" 1 $?
grep -q "gran-16k" "$tmp/out" || { echo "FAIL --config not shown"; fail=1; }
"$bin" run "$tmp/good.cpt" --config nope >"$tmp/out" 2>&1; check "unknown --config" 2 $?
grep -q "unknown configuration 'nope'" "$tmp/out" || { echo "FAIL unknown config message"; fail=1; }
"$bin" run "$tmp/good.cpt" --svg "$tmp/c.svg" >/dev/null 2>&1; check "--svg" 0 $?
grep -q "<svg" "$tmp/c.svg" || { echo "FAIL no svg written"; fail=1; }

# --scale N: a memory-manager scenario N times larger; PTE-level files cannot be scaled.
printf 'mthp 64K\nmmap A 1M addr=0x4000000000\nwrite A 1M\nexpect stat rss_bytes == 1M\n' >"$tmp/mm.cpt"
"$bin" run "$tmp/mm.cpt" --scale 3 --json "$tmp/s.json" >"$tmp/out" 2>&1; check "--scale mm" 0 $?
grep -q '"rss_bytes": 3145728' "$tmp/s.json" || { echo "FAIL --scale 3 did not triple the RSS"; fail=1; }
"$bin" run "$tmp/good.cpt" --scale 2 --json "$tmp/g.json" >"$tmp/out" 2>&1; check "--scale PTE-level" 2 $?
grep -q "good.cpt:1:1: error: --scale 2 applies to memory-manager scenarios" "$tmp/out" || { echo "FAIL --scale message"; cat "$tmp/out"; fail=1; }
[[ ! -e $tmp/g.json ]] || { echo "FAIL a report was written for an unscalable scenario"; fail=1; }
"$bin" run "$tmp/mm.cpt" --scale 0 >/dev/null 2>&1; check "--scale 0" 2 $?

# contpte explore: 0 every interleaving passes, 1 a counterexample, 2 bad input,
# 3 bounded without a counterexample (no proof).
"$bin" explore "$src/examples/races/upstream-unfold-vs-hw-write.cpt" >"$tmp/out" 2>&1; check "explore upstream" 0 $?
grep -q "every interleaving passes" "$tmp/out" || { echo "FAIL explore verdict"; cat "$tmp/out"; fail=1; }
"$bin" explore "$src/examples/races/naive-unfold-vs-hw-write.cpt" --json "$tmp/x.json" >"$tmp/out" 2>&1
check "explore naive" 1 $?
grep -q "the dirty bit is lost here" "$tmp/out" || { echo "FAIL explore counterexample not marked"; fail=1; }
grep -q '"rule": "lost_dirty"' "$tmp/x.json" || { echo "FAIL explore json lacks the failure"; fail=1; }
"$bin" explore "$src/examples/races/upstream-three-cpus-16-ptes.cpt" --max 3 >"$tmp/out" 2>&1
check "explore bounded" 3 $?
grep -q "BOUNDED" "$tmp/out" || { echo "FAIL bounded run not said"; fail=1; }
"$bin" explore "$tmp/bad.cpt" >/dev/null 2>&1; check "explore bad input" 2 $?
"$bin" explore "$tmp/good.cpt" --max 0 >/dev/null 2>&1; check "explore --max 0" 2 $?
"$bin" explore >/dev/null 2>&1; check "explore without file" 2 $?
# Traces (issue 13): record, replay, and bad trace files => exit 2 with the offset.
"$bin" record -o "$tmp/x.trace" >/dev/null 2>&1; check "record without a command" 2 $?
if command -v valgrind >/dev/null 2>&1; then
  "$bin" record -o "$tmp/true.trace" -- /bin/true >"$tmp/out" 2>&1; check "record /bin/true" 0 $?
  grep -q "bytes/access" "$tmp/out" || { echo "FAIL record printed no summary"; cat "$tmp/out"; fail=1; }
  "$bin" record -o "$tmp/false.trace" -- /bin/false >/dev/null 2>&1; check "record a failing command" 1 $?
  "$bin" run --replay "$tmp/true.trace" --config contpte-64k --json "$tmp/r.json" >"$tmp/out" 2>&1
  check "replay --config" 0 $?
  grep -q "contpte-64k" "$tmp/out" || { echo "FAIL replay --config not shown"; cat "$tmp/out"; fail=1; }
  grep -q '"version": 1' "$tmp/r.json" || { echo "FAIL replay json report"; fail=1; }
  "$bin" run --replay "$tmp/true.trace" --scale 2 >"$tmp/out" 2>&1; check "replay --scale" 2 $?
  "$bin" run --replay "$tmp/true.trace" >"$tmp/out" 2>&1; check "replay comparison" 0 $?
  grep -q "gran-64k" "$tmp/out" || { echo "FAIL replay comparison lacks gran-64k"; cat "$tmp/out"; fail=1; }
  size=$(stat -c %s "$tmp/true.trace")
  head -c $((size / 2)) "$tmp/true.trace" >"$tmp/trunc.trace"
  "$bin" run --replay "$tmp/trunc.trace" --json "$tmp/trunc.json" >"$tmp/out" 2>&1; check "truncated trace" 2 $?
  grep -q "trunc.trace: error: at compressed byte [0-9]*: truncated" "$tmp/out" || { echo "FAIL truncated message"; cat "$tmp/out"; fail=1; }
  [[ ! -e $tmp/trunc.json ]] || { echo "FAIL a report was written for a truncated trace"; fail=1; }
  cp "$tmp/true.trace" "$tmp/corrupt.trace"
  printf '\xff\xff\xff\xff' | dd of="$tmp/corrupt.trace" bs=1 seek=$((size / 2)) conv=notrunc status=none
  "$bin" run --replay "$tmp/corrupt.trace" >"$tmp/out" 2>&1; check "corrupt trace" 2 $?
  grep -q "corrupt.trace: error: at .*byte [0-9]*:" "$tmp/out" || { echo "FAIL corrupt message"; cat "$tmp/out"; fail=1; }
else
  echo "skip record/replay checks: valgrind is not installed"
fi
"$bin" run --replay "$tmp/good.cpt" >"$tmp/out" 2>&1; check "not a trace" 2 $?
grep -q "good.cpt: error: at byte 0: not a contpte trace" "$tmp/out" || { echo "FAIL not-a-trace message"; cat "$tmp/out"; fail=1; }
# --kernel with --replay: a tree that is not one is exit 2 naming the missing file.
"$bin" run --replay "$src/tests/data/trace/v2-loop.trace" --kernel "$tmp/no-tree" >"$tmp/out" 2>&1
check "replay --kernel without a tree" 2 $?
grep -q "missing $tmp/no-tree/arch/arm64/mm/contpte.c" "$tmp/out" || { echo "FAIL replay --kernel message"; cat "$tmp/out"; fail=1; }
if command -v zstd >/dev/null 2>&1; then
  # A well-formed header of a future version (9): refused at byte 8.
  printf 'CPTTRACE\x09\x00\xff\x00\x00' | zstd -q >"$tmp/v9.trace"
  "$bin" run --replay "$tmp/v9.trace" >"$tmp/out" 2>&1; check "wrong trace version" 2 $?
  grep -q "v9.trace: error: at byte 8: trace format version 9 is not supported" "$tmp/out" || { echo "FAIL version message"; cat "$tmp/out"; fail=1; }
fi
"$bin" run --replay "$tmp/missing.trace" >/dev/null 2>&1; check "missing trace" 2 $?
# contpte snapshot (docs/snapshot.md): bad flags and missing PIDs are exit 2.
"$bin" snapshot >"$tmp/out" 2>&1; check "snapshot without PID" 2 $?
grep -q "give at least one PID or --cgroup PATH" "$tmp/out" || { echo "FAIL snapshot without PID message"; cat "$tmp/out"; fail=1; }
"$bin" snapshot 2147483646 >"$tmp/out" 2>&1; check "snapshot missing PID" 2 $?
grep -q "pid 2147483646: no such process" "$tmp/out" || { echo "FAIL snapshot missing PID message"; cat "$tmp/out"; fail=1; }
"$bin" snapshot $$ --no-such-flag >/dev/null 2>&1; check "snapshot unknown flag" 2 $?
"$bin" snapshot $$ --cont 3K >"$tmp/out" 2>&1; check "snapshot bad --cont" 2 $?
grep -q "'3K' is not a power of two" "$tmp/out" || { echo "FAIL snapshot --cont message"; cat "$tmp/out"; fail=1; }
"$bin" snapshot $$ --cgroup /nonexistent-cgroup >"$tmp/out" 2>&1; check "snapshot bad --cgroup" 2 $?
"$bin" snapshot $$ --no-pfn --json "$tmp/snap.json" >/dev/null 2>&1; check "snapshot --no-pfn" 0 $?
grep -q '"version": 1' "$tmp/snap.json" || { echo "FAIL snapshot json lacks version"; fail=1; }
"$bin" snapshot $$ --no-pfn --periodic 10 --samples 2 >"$tmp/out" 2>&1; check "snapshot --periodic" 0 $?
[[ $(grep -c "ms " "$tmp/out") == 2 ]] || { echo "FAIL snapshot --periodic: not one line per sample"; cat "$tmp/out"; fail=1; }
if [[ $(id -u) == 0 && -r /proc/kpageflags ]]; then
  "$bin" snapshot $$ >"$tmp/out" 2>&1; check "snapshot as root" 0 $?
  grep -q "cont_bytes:" "$tmp/out" || { echo "FAIL snapshot shows no cont_bytes"; cat "$tmp/out"; fail=1; }
else
  "$bin" snapshot $$ >"$tmp/out" 2>&1; check "snapshot without PFNs" 2 $?
  grep -q "PFNs are hidden" "$tmp/out" || { echo "FAIL snapshot without PFNs message"; cat "$tmp/out"; fail=1; }
fi
exit $fail
