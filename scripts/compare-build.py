#!/usr/bin/env python3
"""scripts/compare-build.py — replays a recorded build (scripts/record-build.sh)
under the configurations that stand for the published kernel-build
measurements and prints the side-by-side table of docs/results.md.

    scripts/compare-build.py [--contpte build/contpte] TRACE...

Each trace is one process of the build. A configuration's estimated time is
the sum over the processes (they ran one after another); its memory is the
sum of their peak RSS and peak page tables (as if they ran at once, as in a
parallel build). Changes are against base-4k. Exit status 2 on bad input.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

# Published rows (mTHP and contpte cover letters, kernel build -j8 on Ampere
# Altra against a 4K kernel), each with the built-in configuration that
# stands for it: real time %, kernel time %, memory % (None: not published).
ROWS = [
    ("4K + 64K mTHP", "mthp-64k", -4.6, -37.9, 0.1),
    ("4K + 64K mTHP + contpte (v5)", "contpte-64k", -6.0, -41.4, None),
    ("16K kernel", "base-16k", -9.0, -49.7, 6.2),
    ("64K kernel", "base-64k", -11.9, -66.5, 28.3),
]
BASE = "base-4k"


def replay(contpte, trace, config, cache):
    """The replay's stats; with `cache`, kept in TRACE.CONFIG.json and reused
    while newer than the trace."""
    out = f"{trace}.{config}.json"
    if cache and os.path.exists(out) and os.path.getmtime(out) > os.path.getmtime(trace):
        with open(out) as f:
            return json.load(f)["runs"][0]["stats"]
    if not cache:
        fd, out = tempfile.mkstemp(suffix=".json")
        os.close(fd)
    try:
        p = subprocess.run([contpte, "run", "--quiet", "--replay", trace, "--config", config, "--json", out],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode == 2:
            sys.exit(f"{trace}: replay failed: {p.stderr.strip()}")
        with open(out) as f:
            return json.load(f)["runs"][0]["stats"]
    finally:
        if not cache:
            os.unlink(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contpte", default="build/contpte")
    ap.add_argument("--json", help="also write the sums per configuration here")
    ap.add_argument("--cache", action="store_true", help="keep each replay's report as TRACE.CONFIG.json and reuse it")
    ap.add_argument("--replay-only", action="store_true", help="only replay (with --cache), print nothing")
    ap.add_argument("traces", nargs="+")
    a = ap.parse_args()
    for t in a.traces:
        if not os.path.isfile(t):
            print(f"{t}: no such trace", file=sys.stderr)
            return 2
    keys = ["est_time_ns", "est_user_ns", "est_kernel_ns", "est_work_ns", "est_translation_ns", "est_fault_ns",
            "est_pte_ns", "est_zero_ns", "est_copy_ns", "est_tlbi_ns", "est_reclaim_ns", "peak_rss_bytes",
            "peak_pgtable_bytes", "accesses", "instructions", "mm_faults", "tlb_misses"]
    sums = {}
    for config in [BASE] + [r[1] for r in ROWS]:
        s = dict.fromkeys(keys, 0.0)
        for t in a.traces:
            st = replay(a.contpte, t, config, a.cache)
            for k in keys:
                s[k] += st.get(k, 0)
        s["memory"] = s["peak_rss_bytes"] + s["peak_pgtable_bytes"]
        sums[config] = s
        print(f"replayed {config}", file=sys.stderr)
    if a.replay_only:
        return 0
    b = sums[BASE]

    def pct(c, k):
        return 100.0 * (sums[c][k] - b[k]) / b[k] if b[k] else float("nan")

    print("| published setup | configuration | real (published) | time (model) | kernel (published) | "
          "kernel (model) | user (model) | memory (published) | memory (model) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, config, real, kern, mem in ROWS:
        pm = "n/a" if mem is None else f"{mem:+.1f}%"
        print(f"| {name} | `{config}` | {real:+.1f}% | {pct(config, 'est_time_ns'):+.1f}% | {kern:+.1f}% | "
              f"{pct(config, 'est_kernel_ns'):+.1f}% | {pct(config, 'est_user_ns'):+.1f}% | {pm} | "
              f"{pct(config, 'memory'):+.1f}% |")
    print()
    print(f"base-4k: {b['instructions']:.0f} instructions, {b['accesses']:.0f} accesses, est. time "
          f"{b['est_time_ns'] / 1e6:.2f} ms (user {b['est_user_ns'] / 1e6:.2f}, kernel {b['est_kernel_ns'] / 1e6:.2f}), "
          f"memory {b['memory'] / 2**20:.1f} MiB")
    print()
    print("| configuration | " + " | ".join(k for k in keys) + " |")
    print("|---|" + "---|" * len(keys))
    for c, s in sums.items():
        print(f"| {c} | " + " | ".join(f"{s[k]:.0f}" for k in keys) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(sums, f, indent=1)
    # The hard criterion of issue 23: signs and order.
    t = {c: -pct(c, "est_time_ns") for c in sums}
    m = {c: pct(c, "memory") for c in sums}
    time_ok = t["base-64k"] > t["base-16k"] > t["contpte-64k"] > t["mthp-64k"] > 0
    mem_ok = m["base-64k"] > m["base-16k"] > m["mthp-64k"] >= 0
    print()
    print(f"time gains 64K > 16K > 4K+mTHP+contpte > 4K+mTHP > 0: {'yes' if time_ok else 'NO'}")
    print(f"memory costs 64K > 16K > 4K+mTHP >= 0: {'yes' if mem_ok else 'NO'}")
    return 0 if time_ok and mem_ok else 1


if __name__ == "__main__":
    sys.exit(main())
