#!/usr/bin/env bash
# `contpte sweep` and `contpte sweep report` through the real binary
# (docs/sweep.md): exit statuses 0/1/2 and their messages, --version, bad
# combinations before anything runs, resume after a kill, Slurm array
# variables, shards equal to one process, and the GNU parallel recipe.
set -u
bin=$(realpath "$1")
src=$(realpath "$2")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() {  # name expected-status actual-status
  if [[ $2 != "$3" ]]; then echo "FAIL $1: exit $3, expected $2"; fail=1; else echo "ok   $1"; fi
}
has() {  # name file text
  grep -qF -- "$3" "$2" || { echo "FAIL $1: no '$3' in:"; cat "$2"; fail=1; }
}
# Run lines without wall_s, sorted: what must not depend on threads/shards.
runs() { python3 -c '
import json, sys
out = []
for f in sys.argv[1:]:
    for l in open(f).read().splitlines()[1:]:
        r = json.loads(l); r.pop("wall_s"); out.append(json.dumps(r, sort_keys=True))
print("\n".join(sorted(out)))' "$@"; }

"$bin" --version >"$tmp/out" 2>&1; check "--version" 0 $?
version=$(sed -n 's/^project(contpte VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
grep -qE "^$version( \(git .*\))?$" "$tmp/out" || { echo "FAIL --version: '$(cat "$tmp/out")' is not the project version $version"; fail=1; }

cd "$tmp" || exit 1
mkdir in
cp "$src/examples/02-fold-on-last-pte.cpt" "$src/examples/10-one-walk-per-block.cpt" in/
printf '{"inputs": ["in"], "configs": ["contpte-64k", "base-4k"], "seeds": 2}\n' >spec.json

# Bad combinations: exit 2 before anything runs, no results file.
"$bin" sweep spec.json --configs thp-2m -o bad.jsonl >out 2>&1; check "unknown config" 2 $?
has "unknown config" out "contpte sweep: error: unknown configuration 'thp-2m'; expected one of: base-4k"
"$bin" sweep spec.json --seeds 3..1 -o bad.jsonl >out 2>&1; check "empty seed range" 2 $?
has "empty seed range" out "seeds: empty range '3..1'"
"$bin" sweep spec.json --cores neoverse-n9 -o bad.jsonl >out 2>&1; check "unknown core" 2 $?
"$bin" sweep spec.json --shard 2/2 -o bad.jsonl >out 2>&1; check "shard out of range" 2 $?
"$bin" sweep --inputs nope.cpt -o bad.jsonl >out 2>&1; check "missing input" 2 $?
has "missing input" out "nope.cpt: error: no such file or directory"
# Under gran-16k this example's 4K-aligned addresses are bad input.
"$bin" sweep --inputs in --configs contpte-64k gran-16k -o bad.jsonl >out 2>&1; check "bad scenario under a config" 2 $?
has "bad scenario under a config" out "in/02-fold-on-last-pte.cpt:12:10: error: address 0x4000f000 is not aligned to the 16K page size (under configuration gran-16k, core default)"
printf '{"inputs": ["in"],\n "seed": 2}\n' >typo.json
"$bin" sweep typo.json -o bad.jsonl >out 2>&1; check "unknown spec field" 2 $?
has "unknown spec field" out "typo.json: error: unknown field 'seed'"
SLURM_ARRAY_TASK_ID=2 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_MAX=4 SLURM_ARRAY_TASK_COUNT=3 \
  "$bin" sweep spec.json -o bad.jsonl >out 2>&1; check "non-contiguous Slurm array" 2 $?
has "non-contiguous Slurm array" out "not contiguous"
[[ ! -e bad.jsonl ]] || { echo "FAIL a results file was written for bad input"; fail=1; }
"$bin" sweep spec.json --dry-run >out 2>&1; check "dry run" 0 $?
has "dry run" out "2 inputs x 2 configurations x 1 cores x 2 seeds = 8 runs; shard 0/1 gets 8"

# Under base-4k (contpte off) the examples' `expect cont` fail: those runs
# are recorded with exit 1, and the sweep exits 1.
# One process; then shards (by flag and by Slurm variables) equal it.
"$bin" sweep spec.json --threads 1 -o one.jsonl >out 2>&1; check "sweep" 1 $?
has "sweep" out "sweep shard 0/1: 8 of 8 planned runs; 0 already present, 8 run now -> one.jsonl"
[[ $(wc -l <one.jsonl) == 9 ]] || { echo "FAIL one.jsonl has $(wc -l <one.jsonl) lines, not header + 8"; fail=1; }
"$bin" sweep spec.json --shard 1/2 -o s1.jsonl >/dev/null 2>&1; check "shard 1/2" 1 $?
SLURM_ARRAY_TASK_ID=10 SLURM_ARRAY_TASK_MIN=10 SLURM_ARRAY_TASK_MAX=11 SLURM_ARRAY_TASK_COUNT=2 \
  "$bin" sweep spec.json -o s0.jsonl >out 2>&1; check "Slurm task 10 of 10-11" 1 $?
has "Slurm shard" out "sweep shard 0/2"
[[ "$(runs one.jsonl)" == "$(runs s0.jsonl s1.jsonl)" ]] || { echo "FAIL shards differ from one process"; fail=1; }
"$bin" sweep spec.json --threads 2 -o two.jsonl >/dev/null 2>&1
[[ "$(runs one.jsonl)" == "$(runs two.jsonl)" ]] || { echo "FAIL --threads 2 differs from --threads 1"; fail=1; }

# Report: complete (0), a shard missing (1), conflicting duplicate (1), bad line (2).
"$bin" sweep report s0.jsonl s1.jsonl --json r.json --svg r.svg >out 2>&1; check "report complete" 0 $?
has "report complete" out "8 of 8 planned runs present; 0 missing, 0 conflicting duplicates"
has "report json" r.json '"complete": true'
has "report svg" r.svg "<svg"
"$bin" sweep report s0.jsonl >out 2>&1; check "report missing shard" 1 $?
has "report missing shard" out "missing: "
sed '2s/"folds":[0-9]*/"folds":12345/' one.jsonl >changed.jsonl
"$bin" sweep report one.jsonl changed.jsonl >out 2>&1; check "report conflict" 1 $?
has "report conflict" out "one.jsonl:2 and changed.jsonl:2 differ"
{ head -n 3 one.jsonl; echo '{"key": '; tail -n +4 one.jsonl; } >bad.jsonl
"$bin" sweep report one.jsonl bad.jsonl >out 2>&1; check "report bad line" 2 $?
has "report bad line" out "bad.jsonl:4: error: not a JSON line"
echo '{"version": 1, "runs": []}' >foreign.jsonl
"$bin" sweep report foreign.jsonl >out 2>&1; check "report foreign file" 2 $?
has "report foreign file" out "foreign.jsonl:1: error: not a contpte sweep results file"
"$bin" sweep --inputs in --seeds 3 --configs contpte-64k base-4k -o other.jsonl >/dev/null 2>&1
"$bin" sweep report one.jsonl other.jsonl >out 2>&1; check "report: headers disagree" 2 $?
has "report: headers disagree" out "other.jsonl:1: error: its header's spec differs"

# Resume: a killed process leaves a partly written last line; the rerun
# redoes that run only and the file ends equal to an uninterrupted one.
head -c -30 one.jsonl >resumed.jsonl
"$bin" sweep spec.json -o resumed.jsonl >out 2>&1
has "resume" out "sweep shard 0/1"
has "resume" out "7 already present, 1 run now"
has "resume" out "partly written last line was dropped and redone"
[[ "$(runs one.jsonl)" == "$(runs resumed.jsonl)" ]] || { echo "FAIL resumed file differs"; fail=1; }
"$bin" sweep spec.json --seeds 3 -o one.jsonl >out 2>&1; check "another sweep into the same file" 2 $?
has "another sweep into the same file" out "one.jsonl:1: error: the file holds results of another sweep"

# A run whose expects fail is recorded with its status, not dropped.
printf 'alloc F order=4\nset_ptes 0x40000000 F nr=16 prot=rw\nexpect cont 0x40000000 64K\n' >cont.cpt
"$bin" sweep --inputs cont.cpt --configs base-4k -o failing.jsonl >out 2>&1; check "failing expect recorded" 1 $?
grep -q '"exit":1' failing.jsonl || { echo "FAIL the failing run's line lacks exit 1"; fail=1; }

# The GNU parallel recipe of docs/sweep.md, on this host (no ssh).
if command -v parallel >/dev/null 2>&1; then
  # (parallel's status counts the shards that exited non-zero: both exit 1 here.)
  parallel --will-cite -j 2 "$bin" sweep spec.json --shard {}/2 --threads 1 -o par-{}.jsonl ::: 0 1 >/dev/null 2>&1
  [[ -s par-0.jsonl && -s par-1.jsonl ]] || { echo "FAIL GNU parallel recipe wrote no results"; fail=1; }
  [[ "$(runs one.jsonl)" == "$(runs par-0.jsonl par-1.jsonl)" ]] || { echo "FAIL parallel shards differ"; fail=1; }
else
  echo "skip GNU parallel recipe: parallel not installed (Debian: parallel)"
fi
exit $fail
