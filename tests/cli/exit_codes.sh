#!/usr/bin/env bash
# The CLI's contract (DESIGN.md "Interfaces"): exit 0 / 1 / 2, errors naming
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
