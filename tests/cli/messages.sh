#!/usr/bin/env bash
# The command line's messages (issue 25 point 8), pinned exactly: a mistyped
# command or option gets a suggestion, a non-trace given to --replay is said
# to be no trace, a missing file gives the OS's reason, a count flag says it
# wants a positive integer, and a long exploration shows its progress on a
# terminal.
set -u
bin=$(realpath "$1")
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
# name expected-status expected-stderr CMD...: the status and the whole stderr.
expect_err() {
  local name=$1 want_status=$2 want=$3
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local status=$?
  local got
  got=$(cat "$tmp/err")
  if [[ $status != "$want_status" || $got != "$want" ]]; then
    echo "FAIL $name: exit $status (expected $want_status)"
    echo "  got:      $got"
    echo "  expected: $want"
    fail=1
  else
    echo "ok   $name"
  fi
}

printf 'alloc F order=4\nset_ptes 0x40000000 F nr=16 prot=rw\nexpect cont 0x40000000 64K\n' >"$tmp/good.cpt"

expect_err "mistyped command" 2 "contpte: error: unknown command 'explor'; did you mean 'explore'?" \
  "$bin" explor "$tmp/good.cpt"
expect_err "mistyped command, swapped letters" 2 "contpte: error: unknown command 'rnu'; did you mean 'run'?" \
  "$bin" rnu
expect_err "unknown command" 2 "contpte: error: unknown command 'frobnicate'" "$bin" frobnicate
expect_err "mistyped option" 2 "contpte run: error: unknown option '--jsn'; did you mean '--json'?" \
  "$bin" run "$tmp/good.cpt" --jsn "$tmp/r.json"
expect_err "mistyped option with =" 2 "contpte explore: error: unknown option '--mx'; did you mean '--max'?" \
  "$bin" explore "$tmp/good.cpt" --mx=3
expect_err "unknown option" 2 "contpte run: error: unknown option '--frobnicate'" \
  "$bin" run "$tmp/good.cpt" --frobnicate
expect_err "--max abc" 2 "contpte explore: error: --max: expected a positive integer, got 'abc'" \
  "$bin" explore "$tmp/good.cpt" --max abc
expect_err "--max 0" 2 "contpte explore: error: --max: expected a positive integer, got '0'" \
  "$bin" explore "$tmp/good.cpt" --max 0
expect_err "--threads 1000" 2 "contpte run: error: --threads: expected a positive integer up to 256, got '1000'" \
  "$bin" run "$tmp/good.cpt" --threads 1000

# --replay on something that is not a trace: no zstd error; a missing file: why.
expect_err "--replay on a scenario" 2 \
  "$tmp/good.cpt: error: at byte 0: not a contpte trace: it does not start with the zstd magic 28 b5 2f fd (a trace is a zstd stream holding the magic 'CPTTRACE' and format version 3)" \
  "$bin" run --replay "$tmp/good.cpt"
: >"$tmp/empty.trace"
expect_err "--replay on an empty file" 2 \
  "$tmp/empty.trace: error: at compressed byte 0: not a contpte trace: the file is empty (truncated, or its recording never finished)" \
  "$bin" run --replay "$tmp/empty.trace"
if command -v zstd >/dev/null 2>&1; then
  printf 'hello, world' | zstd -q >"$tmp/hello.zst"
  expect_err "--replay on another zstd file" 2 \
    "$tmp/hello.zst: error: at byte 0: not a contpte trace: a zstd stream, but it does not start with the trace magic 'CPTTRACE' (bad magic)" \
    "$bin" run --replay "$tmp/hello.zst"
fi
expect_err "--replay on a missing file" 2 "$tmp/missing.trace: error: cannot open: No such file or directory" \
  "$bin" run --replay "$tmp/missing.trace"
expect_err "missing scenario" 2 "$tmp/missing.cpt: error: cannot read: No such file or directory" \
  "$bin" run "$tmp/missing.cpt"

# Progress on a terminal (script(1) gives the command one): executions and rate.
# (A root without /dev/pts, a bare chroot, cannot give one: skipped.)
if script -qec true /dev/null </dev/null >/dev/null 2>&1; then
  script -qec "'$bin' explore '$src/examples/races/upstream-three-cpus-16-ptes.cpt' --max 5000" /dev/null \
    </dev/null >"$tmp/tty" 2>&1
  if grep -aEq "exploring .*upstream-three-cpus-16-ptes.cpt:[0-9]+: [0-9]+ executions, [0-9]+/s" "$tmp/tty"; then
    echo "ok   explore progress on a terminal"
  else
    echo "FAIL explore progress on a terminal"; cat -v "$tmp/tty" | head -5; fail=1
  fi
  "$bin" explore "$src/examples/races/upstream-three-cpus-16-ptes.cpt" --max 5000 >"$tmp/out" 2>"$tmp/err"
  if grep -q "executions," "$tmp/err"; then echo "FAIL progress printed when not a terminal"; fail=1; fi
else
  echo "skip explore progress: script(1) cannot open a pseudo-terminal here"
fi
exit $fail
