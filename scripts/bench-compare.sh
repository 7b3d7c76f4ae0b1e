#!/usr/bin/env bash
# Usage: scripts/bench-compare.sh OLD_DIR NEW_DIR [FILTER]
#
# Compares two builds of contpte on this machine, in one run: each round
# runs the OLD and then the NEW binary of every benchmark (alternately, so
# that a change in the machine's load hits both alike), RUNS rounds (5 by
# default), and reports per benchmark the median CPU time per iteration of
# each and the ratio new/old (> 1: the new build is slower). A benchmark
# that counts items (accesses) also gets the median items per second.
#
# OLD_DIR and NEW_DIR are build directories (configured with
# -DCONTPTE_BENCH=ON): the benchmarks are OLD_DIR/bench/NAME. FILTER is
# Google Benchmark's --benchmark_filter regex (default: all).
#
# Environment:
#   BENCH="mmu_bench tlb_bench"  the benchmark programs (default: every
#                                program present in both bench/ folders)
#   RUNS=5                       rounds
#   MAIN=1                       also time the main job (`contpte run`, no
#                                arguments): wall and CPU seconds, and check
#                                that both builds print the same table
#
# Why alternate rather than compare the in-run baselines of two separate
# runs: code alignment alone moves a benchmark between builds, and on a
# shared machine the load changes from minute to minute; medians of
# interleaved runs cancel most of both. Report the load (`uptime`) with the
# figures. Exit status: 0, or 2 on bad arguments or a program that fails.
set -euo pipefail

usage() {
  echo "usage: scripts/bench-compare.sh OLD_DIR NEW_DIR [FILTER]" >&2
  exit 2
}
[[ $# -ge 2 && $# -le 3 ]] || usage
old=$1 new=$2 filter=${3:-.}
for d in "$old" "$new"; do
  [[ -d $d/bench ]] || { echo "bench-compare: error: $d/bench: no such directory (build with -DCONTPTE_BENCH=ON)" >&2; exit 2; }
done
runs=${RUNS:-5}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench-compare: error: RUNS=$runs: expected a positive integer" >&2; exit 2; }

if [[ -n ${BENCH:-} ]]; then
  read -r -a benches <<<"$BENCH"
else
  benches=()
  for f in "$old"/bench/*; do
    n=$(basename "$f")
    [[ -f $f && -x $f && -x $new/bench/$n ]] && benches+=("$n")
  done
fi
for b in "${benches[@]}"; do
  for d in "$old" "$new"; do
    [[ -x $d/bench/$b ]] || { echo "bench-compare: error: $d/bench/$b: no such program" >&2; exit 2; }
  done
done
if [[ ${MAIN:-0} == 1 ]]; then
  for d in "$old" "$new"; do
    [[ -x $d/contpte ]] || { echo "bench-compare: error: $d/contpte: no such program" >&2; exit 2; }
  done
fi

exec python3 - "$old" "$new" "$filter" "$runs" "${MAIN:-0}" "${benches[@]}" <<'PY'
import json, os, statistics, subprocess, sys, tempfile, time

old, new, flt, runs, main = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
benches = sys.argv[6:]
builds = (("old", old), ("new", new))

def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])

def fail(msg):
    print(f"bench-compare: error: {msg}", file=sys.stderr)
    sys.exit(2)

def run_bench(prog):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        r = subprocess.run([prog, f"--benchmark_filter={flt}", f"--benchmark_out={out.name}",
                            "--benchmark_out_format=json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode != 0:
            fail(f"{prog} exited with status {r.returncode}: {r.stderr.strip()}")
        return json.load(open(out.name))["benchmarks"]

def run_main(prog):
    t0 = time.monotonic()
    p = subprocess.Popen([prog, "run"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        fail(f"{prog} run exited with status {os.waitstatus_to_exitcode(status)}")
    return wall, ru.ru_utime + ru.ru_stime, out

print(f"load at start: {load()}  (1, 5, 15 min); {runs} alternating rounds; filter {flt!r}")
times = {}   # (bench, name) -> {"old": [ns/iter], "new": [...]}
items = {}   # (bench, name) -> {"old": [items/s], "new": [...]}
mains = {"old": [], "new": []}
outputs = {}
for rnd in range(runs):
    for b in benches:
        for tag, d in builds:
            for e in run_bench(os.path.join(d, "bench", b)):
                if e.get("run_type", "iteration") != "iteration":
                    continue
                key = (b, e["name"])
                scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[e.get("time_unit", "ns")]
                times.setdefault(key, {"old": [], "new": []})[tag].append(e["cpu_time"] * scale)
                if "items_per_second" in e:
                    items.setdefault(key, {"old": [], "new": []})[tag].append(e["items_per_second"])
    if main:
        for tag, d in builds:
            wall, cpu, out = run_main(os.path.join(d, "contpte"))
            mains[tag].append((wall, cpu))
            outputs.setdefault(tag, out)
    print(f"  round {rnd + 1}/{runs} done, load {load()}", flush=True)

def med(xs):
    return statistics.median(xs)

width = max([len(f"{b}:{n}") for b, n in times] + [9])
print(f"\n{'benchmark':<{width}}  {'old ns/it':>11}  {'new ns/it':>11}  {'new/old':>7}  {'old items/s':>12}  {'new items/s':>12}")
for key, t in times.items():
    if not t["old"] or not t["new"]:
        continue
    o, n = med(t["old"]), med(t["new"])
    line = f"{key[0] + ':' + key[1]:<{width}}  {o:>11.2f}  {n:>11.2f}  {n / o:>7.3f}"
    if key in items:
        line += f"  {med(items[key]['old']):>12.4g}  {med(items[key]['new']):>12.4g}"
    print(line)
if main:
    ow, oc = med([w for w, _ in mains["old"]]), med([c for _, c in mains["old"]])
    nw, nc = med([w for w, _ in mains["new"]]), med([c for _, c in mains["new"]])
    print(f"\nmain job (contpte run): wall old {ow:.2f} s, new {nw:.2f} s, new/old {nw / ow:.3f}; "
          f"CPU old {oc:.2f} s, new {nc:.2f} s, new/old {nc / oc:.3f}")
    print("main job output: " + ("identical" if outputs["old"] == outputs["new"] else "DIFFERS"))
print(f"load at end: {load()}")
PY
