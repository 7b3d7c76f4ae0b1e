#!/usr/bin/env bash
# Usage: scripts/sweep-slurm.sh SPEC.json N [OUTDIR]
# Runs a `contpte sweep` on a Slurm cluster as a job array of N tasks, then
# merges it (docs/sweep.md):
#   1. `sbatch --array=0-<N-1>`: task I runs `contpte sweep SPEC` as shard I/N
#      (contpte reads SLURM_ARRAY_TASK_ID/MIN/COUNT itself) and writes
#      OUTDIR/sweep-I.jsonl; its log is OUTDIR/slurm-<job>_<I>.out (%A_%a).
#   2. `sbatch --dependency=afterany:<array>`: `contpte sweep report` over
#      every shard's file into OUTDIR/report.{txt,json,svg}. afterany, not
#      afterok: a failed or killed task leaves its runs missing, and the
#      report lists them (exit 1) instead of the merge never running.
# Resubmitting the same command resumes: each task skips the runs its file
# already holds.
# Environment: CONTPTE (the binary; default `contpte` on PATH, else
# build/contpte), SBATCH_ARGS (more sbatch options, e.g. "--partition=x
# --time=2:00:00 --cpus-per-task=4"). The spec's relative paths are taken
# from its folder; the jobs start in this directory (sbatch's default).
# Prints the two job ids: ARRAY_JOB REPORT_JOB.
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: scripts/sweep-slurm.sh SPEC.json N [OUTDIR]" >&2
  exit 2
fi
spec=$1
n=$2
out=${3:-sweep-out}
if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
  echo "sweep-slurm: error: N must be a whole number >= 1, not '$n'" >&2
  exit 2
fi
[[ -r $spec ]] || { echo "sweep-slurm: error: cannot read the spec '$spec'" >&2; exit 2; }
command -v sbatch >/dev/null 2>&1 || { echo "sweep-slurm: error: sbatch not found (is this a Slurm submit host?)" >&2; exit 2; }

bin=${CONTPTE:-}
if [[ -z $bin ]]; then
  bin=$(command -v contpte || true)
  [[ -n $bin ]] || bin=$(dirname "$0")/../build/contpte
fi
bin=$(realpath "$bin")
[[ -x $bin ]] || { echo "sweep-slurm: error: no contpte binary at '$bin' (set CONTPTE)" >&2; exit 2; }
# Check the spec here, before anything is queued: a bad spec is exit 2 now,
# not N failed tasks later.
"$bin" sweep "$spec" --dry-run >/dev/null || exit 2

mkdir -p "$out"
out=$(realpath "$out")
read -r -a extra <<<"${SBATCH_ARGS:-}"

q() { printf '%q' "$1"; }
array=$(sbatch --parsable "${extra[@]}" --job-name=contpte-sweep --array="0-$((n - 1))" \
          --output="$out/slurm-%A_%a.out" \
          --wrap "exec $(q "$bin") sweep $(q "$spec") -o $(q "$out")/sweep-\${SLURM_ARRAY_TASK_ID}.jsonl")
array=${array%%;*}
report=$(sbatch --parsable "${extra[@]}" --job-name=contpte-sweep-report --dependency="afterany:$array" \
           --output="$out/report.txt" \
           --wrap "exec $(q "$bin") sweep report $(q "$out")/sweep-*.jsonl --json $(q "$out")/report.json --svg $(q "$out")/report.svg")
report=${report%%;*}
echo "$array $report"
