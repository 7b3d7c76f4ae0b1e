#!/usr/bin/env python3
"""Recording speed: `contpte record` of `gzip -c` of a 4 MiB input against the
same command run natively, timed in one run (docs/trace.md "Recording speed").

Usage: bench/record_speed.py [--contpte BUILD/contpte] [--recorder qemu|valgrind|both]
                             [--size BYTES] [--keep DIR]

Prints, per recorder: wall and CPU time (user + sys of every process, the
recorder's own included), the ratio to native, accesses, trace bytes and
bytes per access. The machine may be shared: CPU ratios are the steadier
figure; wall ratios are what a user waits. Native time is the best of 5 runs.
The input is pseudo-random bytes from a fixed seed (gzip's stored-block
path is what the issue's 0.09 s example measured).
"""
import argparse
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time


def timed(argv, stdout):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r, wall, cpu


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--contpte", default=os.path.join(here, "..", "build", "contpte"))
    ap.add_argument("--recorder", default="qemu", choices=["qemu", "valgrind", "both"])
    ap.add_argument("--size", type=int, default=4 << 20)
    ap.add_argument("--keep", help="keep the input and traces in this directory")
    args = ap.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="contpte-bench-")
    os.makedirs(work, exist_ok=True)
    inp = os.path.join(work, "in.bin")
    with open(inp, "wb") as f:
        f.write(random.Random(23).randbytes(args.size))
    cmd = ["gzip", "-c", inp]
    runs = []
    for _ in range(5):
        r, wall, cpu = timed(cmd, subprocess.DEVNULL)
        if r.returncode != 0:
            sys.exit(f"native gzip failed: {r.stderr}")
        runs.append((wall, cpu))
    nwall = min(w for w, _ in runs)
    ncpu = min(c for _, c in runs)
    print(f"native  gzip -c ({args.size} bytes): wall {nwall:.3f} s, cpu {ncpu:.3f} s (best of 5)")
    recorders = ["qemu", "valgrind"] if args.recorder == "both" else [args.recorder]
    for rec in recorders:
        trace = os.path.join(work, f"gzip-{rec}.trace")
        r, wall, cpu = timed([args.contpte, "record", "--recorder", rec, "-o", trace, "--"] + cmd,
                             subprocess.DEVNULL)
        if r.returncode != 0:
            print(f"{rec}: recording failed (exit {r.returncode}): {r.stderr.strip()}")
            continue
        m = re.search(r"recorded (\d+) accesses, (\d+) records, (\d+) process\(es\) into .* \((\d+) bytes", r.stderr)
        acc, recs, procs, size = (int(x) for x in m.groups()) if m else (0, 0, 0, os.path.getsize(trace))
        print(f"{rec:8s} wall {wall:.2f} s ({wall / nwall:.1f}x native), cpu {cpu:.2f} s ({cpu / ncpu:.1f}x native); "
              f"{acc} accesses, {size} trace bytes, {size / max(acc, 1):.3f} bytes/access")
    if not args.keep:
        for n in os.listdir(work):
            os.unlink(os.path.join(work, n))
        os.rmdir(work)


if __name__ == "__main__":
    main()
