#!/usr/bin/env bash
# The user's own files (issue 25 points 4, 6, 7): TLB cores found relative to
# the scenario and named in the outputs, --tlb, --compare, and several files
# run in parallel with the output in input order.
set -u
bin=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # name expected-status actual-status
  if [[ $2 != "$3" ]]; then echo "FAIL $1: exit $3, expected $2"; cat "$tmp/out"; fail=1; else echo "ok   $1"; fi
}
has() {  # name file fixed-string
  if grep -qF -- "$3" "$2"; then echo "ok   $1"; else echo "FAIL $1: no '$3' in:"; cat "$2"; fail=1; fi
}

mkdir -p "$tmp/cores" "$tmp/sc"
# Only `entries` changed: the L1D stays fully associative, the L2 5-way.
printf '{"name": "big-l2", "l1d": {"entries": 64}, "l2": {"entries": 2560}}\n' >"$tmp/cores/big-l2.json"
printf 'tlb ../cores/big-l2.json\nmthp 64K\nmmap A 1M\nwrite A 1M\nexpect stat rss_bytes == 1M\n' >"$tmp/sc/core.cpt"
printf 'mthp 64K\nmmap A 2M\nwrite A 2M stride=4K\nread A 2M count=4096 pattern=random\nexpect stat rss_bytes == 2M\n' >"$tmp/sc/mm.cpt"
printf 'mthp 64K\nmmap B 256K\nwrite B 256K stride=4K\n' >"$tmp/sc/small.cpt"
printf 'alloc F order=4\nset_ptes 0x40000000 F nr=16 prot=rw\nexpect cont 0x40000000 64K\n' >"$tmp/sc/pte.cpt"

# Point 6: `tlb PATH` relative to the scenario, from any directory; the name shown.
(cd / && "$bin" run "$tmp/sc/core.cpt" --json "$tmp/core.json") >"$tmp/out" 2>&1; check "tlb relative to the scenario" 0 $?
has "text names the core" "$tmp/out" "core.cpt [file: 4K upstream, tlb big-l2]: ok"
has "json names the core" "$tmp/core.json" '"tlb": "big-l2"'
"$bin" run "$tmp/sc/small.cpt" --json "$tmp/small.json" >"$tmp/out" 2>&1; check "default core" 0 $?
has "default core named" "$tmp/out" "tlb neoverse-n1]"
# --tlb: a preset, or a file relative to the current directory.
"$bin" run "$tmp/sc/small.cpt" --tlb neoverse-v1 >"$tmp/out" 2>&1; check "--tlb preset" 0 $?
has "--tlb preset shown" "$tmp/out" "small.cpt [file: 4K upstream, tlb neoverse-v1]: ok"
(cd "$tmp" && "$bin" run sc/small.cpt --tlb cores/big-l2.json) >"$tmp/out" 2>&1; check "--tlb file" 0 $?
has "--tlb file shown" "$tmp/out" "tlb big-l2]"
"$bin" run "$tmp/sc/core.cpt" --tlb apple-m1 >"$tmp/out" 2>&1; check "--tlb overrides the file" 0 $?
has "--tlb overrides the file's core" "$tmp/out" "tlb apple-m1]"
"$bin" run "$tmp/sc/small.cpt" --tlb nope >"$tmp/out" 2>&1; check "--tlb unknown" 2 $?
has "--tlb unknown message" "$tmp/out" \
  "contpte run: error: --tlb: unknown TLB preset 'nope'; expected one of neoverse-n1, neoverse-v1, apple-m1, default, or a JSON file (NAME.json)"

# Point 4: --compare, per file the main job's table under every configuration.
"$bin" run "$tmp/sc/mm.cpt" "$tmp/sc/small.cpt" --compare --json "$tmp/cmp.json" >"$tmp/out" 2>&1
check "--compare" 0 $?
has "--compare table for mm" "$tmp/out" "mm (4608 accesses)"
has "--compare table for small" "$tmp/out" "small (64 accesses)"
# per file, each configuration has a row in the translation table and one in the estimate table
configs=$("$bin" configs | awk '/^[a-z0-9-]+ / {print $1}')
nconfigs=$(wc -w <<<"$configs")
[[ $nconfigs -ge 6 ]] || { echo "FAIL contpte configs lists $nconfigs configurations"; fail=1; }
for c in $configs; do
  n=$(grep -c "^  $c " "$tmp/out")
  [[ $n == 4 ]] || { echo "FAIL --compare: $c has $n rows, expected 4"; fail=1; }
done
runs=$(grep -c '"scenario":' "$tmp/cmp.json")
[[ $runs == $((2 * nconfigs)) ]] && echo "ok   --compare json carries every run" || { echo "FAIL --compare json has $runs runs"; fail=1; }
"$bin" run "$tmp/sc/mm.cpt" --compare --config base-4k --config contpte-64k >"$tmp/out" 2>&1
check "--compare with --config" 0 $?
# each configuration has a row in the translation table and one in the estimate table
rows=$(grep -cE "^  (base-4k|contpte-64k) " "$tmp/out"); others=$(grep -cE "^  (thp-4k|gran-16k) " "$tmp/out")
[[ $rows == 4 && $others == 0 ]] && echo "ok   --compare the given configurations" || { echo "FAIL --compare --config rows"; cat "$tmp/out"; fail=1; }
"$bin" run "$tmp/sc/pte.cpt" --compare >"$tmp/out" 2>&1; check "--compare PTE-level" 2 $?
has "--compare PTE-level message" "$tmp/out" \
  "$tmp/sc/pte.cpt:1:1: error: --compare applies to memory-manager scenarios (mmap, brk, ...); a PTE-level scenario chooses its own granule and addresses"
"$bin" run --compare >"$tmp/out" 2>&1; check "--compare without files" 2 $?

# Point 7: several files on several threads, reported in input order.
"$bin" run "$tmp/sc/mm.cpt" "$tmp/sc/small.cpt" "$tmp/sc/core.cpt" --threads 3 >"$tmp/par" 2>&1; check "--threads 3" 0 $?
"$bin" run "$tmp/sc/mm.cpt" "$tmp/sc/small.cpt" "$tmp/sc/core.cpt" --threads 1 >"$tmp/ser" 2>&1; check "--threads 1" 0 $?
order=$(grep -o "sc/[a-z]*\.cpt \[" "$tmp/par" | tr '\n' ' ')
[[ $order == "sc/mm.cpt [ sc/small.cpt [ sc/core.cpt [ " ]] && echo "ok   input order" || { echo "FAIL order: $order"; fail=1; }
cmp -s "$tmp/par" "$tmp/ser" && echo "ok   parallel output equals serial output" || { echo "FAIL parallel output differs"; diff "$tmp/ser" "$tmp/par"; fail=1; }
if command -v script >/dev/null 2>&1; then
  script -qec "'$bin' run '$tmp/sc/mm.cpt' '$tmp/sc/small.cpt' --threads 2" /dev/null >"$tmp/tty" 2>&1
  grep -aq "2/2 runs" "$tmp/tty" && echo "ok   progress over the files on a terminal" || { echo "FAIL no progress"; cat -v "$tmp/tty"; fail=1; }
fi
exit $fail
