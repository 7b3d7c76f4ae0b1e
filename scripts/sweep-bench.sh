#!/usr/bin/env bash
# Usage: scripts/sweep-bench.sh [BUILD_DIR] [SEEDS]
# The sweep's performance targets (docs/sweep.md "Performance"), measured in
# one run against baselines of the same run:
#   1. overhead: one `--threads 1` process over the built-in suite × SEEDS
#      seeds (default 3); overhead = (process wall time − Σ runs' wall_s) /
#      Σ wall_s. Target < 5%.
#   2. sharding: two `--shard I/2 --threads 1` processes started together on
#      the same sweep; speedup ratio = their wall time / the single
#      process's. Target ≤ 0.6 (needs two idle cores).
#   3. identity: the two shards' merged runs equal the single process's
#      (every field but wall_s).
set -euo pipefail
build=${1:-build}
seeds=${2:-3}
bin=$(realpath "$build/contpte")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
now() { date +%s.%N; }

t0=$(now)
"$bin" sweep --inputs builtin --seeds "$seeds" --threads 1 -o "$tmp/one.jsonl" >/dev/null
t1=$(now)
"$bin" sweep --inputs builtin --seeds "$seeds" --threads 1 --shard 0/2 -o "$tmp/s0.jsonl" >/dev/null &
p0=$!
"$bin" sweep --inputs builtin --seeds "$seeds" --threads 1 --shard 1/2 -o "$tmp/s1.jsonl" >/dev/null &
p1=$!
wait "$p0" "$p1"
t2=$(now)

python3 - "$tmp" "$seeds" "$t0" "$t1" "$t2" <<'PY'
import json, os, sys
d, seeds = sys.argv[1], int(sys.argv[2])
t0, t1, t2 = map(float, sys.argv[3:])
def runs(*names):
    out = {}
    for n in names:
        for line in open(os.path.join(d, n)).read().splitlines()[1:]:
            r = json.loads(line)
            out[json.dumps(r["key"], sort_keys=True)] = r
    return out
one, shards = runs("one.jsonl"), runs("s0.jsonl", "s1.jsonl")
own = sum(r["wall_s"] for r in one.values())
single, two = t1 - t0, t2 - t1
strip = lambda rs: {k: {f: v for f, v in r.items() if f != "wall_s"} for k, r in rs.items()}
same = strip(one) == strip(shards) and len(one) == len(shards)
print(f"runs: {len(one)} ({len(one) // seeds} inputs x configurations, x {seeds} seeds)")
print(f"single --threads 1: {single:.2f} s wall, runs' own time {own:.2f} s")
print(f"overhead per run: {(single - own) / len(one) * 1e3:.2f} ms = {(single - own) / own * 100:.2f}% of the runs' own time (target < 5%)")
print(f"two --shard I/2 --threads 1 at once: {two:.2f} s = {two / single:.3f}x the single process (target <= 0.6)")
print(f"results identical across shardings: {'yes' if same else 'NO'}")
sys.exit(0 if same else 1)
PY
