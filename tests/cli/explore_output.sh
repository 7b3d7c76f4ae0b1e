#!/usr/bin/env bash
# What `contpte explore` prints (issue 25 point 3): runs of like steps
# collapsed, each step labelled with its engine function, a counterexample
# equal to one already printed named instead of repeated, the full listing
# behind --verbose, and the file's verdict as the last line.
set -u
bin=$(realpath "$1")
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
has() {  # name file fixed-string
  if grep -qF -- "$3" "$2"; then echo "ok   $1"; else echo "FAIL $1: no '$3' in:"; cat "$2"; fail=1; fi
}
last_is() {  # name file expected-last-line
  local got
  got=$(tail -n 1 "$2")
  if [[ $got == "$3" ]]; then echo "ok   $1"; else echo "FAIL $1: last line '$got', expected '$3'"; fail=1; fi
}
cd "$src" || exit 1
naive=examples/races/naive-unfold-vs-hw-write.cpt
"$bin" explore "$naive" >"$tmp/out" 2>&1; [[ $? == 1 ]] || { echo "FAIL naive: exit status"; fail=1; }
has "a run of 16 loads is one line, labelled" "$tmp/out" \
  "  3–18  A  line 17   load ×16 0x40000000–0x4000f000  rw valid young clean cont  [contpte_try_unfold › contpte_convert]"
has "the marked step stays apart" "$tmp/out" ">>  26  A  line 17   store      0x40005000"
has "the lost step names its function" "$tmp/out" "[contpte_convert › __set_ptes]   <== the dirty bit is lost here"
has "a step of the statement itself names it" "$tmp/out" \
  "       2  A  line 17   load       0x40000000  0x0078000000010fc3 pfn=0x10 rw valid young clean cont  [ptep_set_wrprotect]"
has "the caller's flush is named" "$tmp/out" "tlbi       0x40000000 +1 pages  ; by VA  [flush_tlb_page (core mm)]"
has "runs line up with single steps" "$tmp/out" "    3–18  A  line 17   load ×16"
has "a prefix is named, not repeated" "$tmp/out" \
  "  counterexample for misprogrammed: the first 19 steps of the one for lost_dirty, found at step 19 (--verbose prints it)"
has "an equal counterexample is named, not repeated" "$tmp/out" \
  "  counterexample for expect: the same interleaving as for lost_dirty (--verbose prints it)"
last_is "the verdict is the last line" "$tmp/out" \
  "$naive: FAILED — lost_dirty, misprogrammed, expect fail in some interleaving of 1 parallel block (counterexamples above)"
lines=$(wc -l <"$tmp/out")
[[ $lines -lt 40 ]] && echo "ok   short ($lines lines)" || { echo "FAIL $lines lines"; fail=1; }
"$bin" explore "$naive" --verbose >"$tmp/v" 2>&1
steps=$(grep -cE "^  (>>|  ) +[0-9]+  [AB]  line" "$tmp/v")
[[ $steps == 99 ]] && echo "ok   --verbose lists every step" || { echo "FAIL --verbose lists $steps steps, expected 99"; fail=1; }
has "--verbose labels too" "$tmp/v" "store      0x40000000  0x0078000000010fc3 pfn=0x10 rw valid young clean cont -> 0x0068000000010fc3 pfn=0x10 rw valid young clean  [contpte_convert › __set_ptes]"
"$bin" explore examples/races/upstream-unfold-vs-hw-write.cpt >"$tmp/up" 2>&1
if tail -n 1 "$tmp/up" | grep -qE "^examples/races/upstream-unfold-vs-hw-write.cpt: ok — every interleaving of 1 parallel block passes \([0-9]+ explored up to equivalence\)$"; then
  echo "ok   passing verdict last"; else echo "FAIL passing verdict"; tail -3 "$tmp/up"; fail=1; fi
"$bin" explore examples/races/upstream-three-cpus-16-ptes.cpt --max 3 >"$tmp/b" 2>&1
last_is "bounded verdict last" "$tmp/b" \
  "examples/races/upstream-three-cpus-16-ptes.cpt: BOUNDED — no failure in 3 interleavings of 1 parallel block, but not all were explored (raise --max)"
"$bin" explore "$naive" --json "$tmp/x.json" >/dev/null 2>&1
has "json carries the function" "$tmp/x.json" '"function": "contpte_convert"'
exit $fail
