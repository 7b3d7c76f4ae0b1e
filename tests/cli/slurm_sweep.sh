#!/usr/bin/env bash
# A real Slurm cluster of one node, started here from Debian's slurm-wlm and
# munge: a generated munge key, a minimal slurm.conf for this host, munged,
# slurmctld and slurmd started (and stopped at the end) by this script. A
# 2-task job array sweep goes through scripts/sweep-slurm.sh (sbatch), and
# its merged result must equal the same sweep run here without shards.
# If the daemons cannot start, it says why and exits 77 (ctest: skipped).
# Usage: slurm_sweep.sh CONTPTE_BINARY SOURCE_DIR
set -u
bin=$(realpath "$1")
src=$(realpath "$2")

skip() { echo "SKIP: $*"; exit 77; }
for cmd in munged mungekey slurmctld slurmd sbatch squeue scontrol python3; do
  command -v "$cmd" >/dev/null 2>&1 || skip "$cmd not found (Debian: slurm-wlm, munge; scripts/install-deps.sh --test)"
done
[[ $(id -u) -eq 0 ]] || skip "slurmd must run as root to start jobs (this test runs as uid $(id -u))"

tmp=$(mktemp -d /tmp/contpte-slurm.XXXXXX)
chmod 700 "$tmp"
pids=()
cleanup() {
  [[ -n ${SLURM_CONF:-} ]] && scontrol shutdown >/dev/null 2>&1
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
logs() { for f in "$tmp"/*.log; do echo "--- $f"; tail -n 15 "$f"; done; }

# Two free TCP ports for slurmctld and slurmd.
read -r port_ctld port_d < <(python3 -c '
import socket
s=[socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
host=$(hostname -s)
cpus=$(nproc)

# munge: its own key, socket, pid and log under $tmp.
mungekey --create --keyfile="$tmp/munge.key" >"$tmp/mungekey.log" 2>&1 || { logs; skip "mungekey could not create a key"; }
chmod 600 "$tmp/munge.key"
mkdir -p "$tmp/munge" && chmod 700 "$tmp/munge"
munged --foreground --force --key-file="$tmp/munge.key" --socket="$tmp/munge/socket" \
       --pid-file="$tmp/munge/munged.pid" --seed-file="$tmp/munge/seed" --log-file="$tmp/munged.log" \
       >>"$tmp/munged.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [[ -S $tmp/munge/socket ]] && break; sleep 0.1; done
[[ -S $tmp/munge/socket ]] || { logs; skip "munged did not start (see its log above)"; }

mkdir -p "$tmp/state" "$tmp/spool"
cat >"$tmp/slurm.conf" <<CONF
ClusterName=contpte-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port_ctld
SlurmdPort=$port_d
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/socket
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$tmp/slurm.conf

slurmctld -D -i -f "$SLURM_CONF" >>"$tmp/slurmctld.log" 2>&1 &
pids+=($!)
slurmd -D -N "$host" -f "$SLURM_CONF" >>"$tmp/slurmd.log" 2>&1 &
pids+=($!)
up=0
for _ in $(seq 100); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null)
  [[ $state == idle* ]] && { up=1; break; }
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { logs; skip "a Slurm daemon exited at start (see its log above)"; }; done
  sleep 0.2
done
((up)) || { logs; skip "the node did not become idle within 20 s (state '${state:-none}'; logs above)"; }
echo "slurm: slurmctld and slurmd up on $host ($cpus CPUs), ports $port_ctld/$port_d"

# The sweep: small examples, two configurations, two seeds (12 runs).
work=$tmp/work
mkdir -p "$work/inputs"
cp "$src/examples/02-fold-on-last-pte.cpt" "$src/examples/10-one-walk-per-block.cpt" \
   "$src/examples/races/upstream-fold-vs-hw-write.cpt" "$work/inputs/"
cat >"$work/spec.json" <<'SPEC'
{"inputs": ["inputs"], "configs": ["contpte-64k", "base-4k"], "seeds": "1..2"}
SPEC
cd "$work" || exit 1
ids=$(CONTPTE=$bin "$src/scripts/sweep-slurm.sh" spec.json 2 out) || { logs; echo "FAIL: sweep-slurm.sh"; exit 1; }
read -r array report <<<"$ids"
echo "slurm: submitted array job $array (2 tasks) and report job $report (afterany:$array)"
done=0
for _ in $(seq 600); do
  [[ -z $(squeue -h -j "$array,$report" 2>/dev/null) ]] && { done=1; break; }
  sleep 0.5
done
((done)) || { squeue; logs; echo "FAIL: the jobs did not finish within 300 s"; exit 1; }
for f in out/slurm-*.out; do echo "--- $f"; cat "$f"; done
echo "--- out/report.txt"
cat out/report.txt
fail=0
[[ -s out/sweep-0.jsonl && -s out/sweep-1.jsonl ]] || { echo "FAIL: a task wrote no results"; fail=1; }
[[ -s out/report.json ]] || { echo "FAIL: the report job wrote no report.json"; fail=1; }

# The same sweep here, one process, no shards.
# (Exit 1: under base-4k the examples' `expect cont` fail, as recorded.)
env -u SLURM_ARRAY_TASK_ID "$bin" sweep spec.json -o local.jsonl >/dev/null
(($? <= 1)) || { echo "FAIL: local sweep"; fail=1; }
python3 - out/sweep-0.jsonl out/sweep-1.jsonl -- local.jsonl <<'PY' || fail=1
import json, sys
args = sys.argv[1:]
cut = args.index("--")
def runs(files):
    out = {}
    for f in files:
        lines = open(f).read().splitlines()
        for l in lines[1:]:
            r = json.loads(l)
            r.pop("wall_s")
            out[json.dumps(r["key"], sort_keys=True)] = r
    return out
a, b = runs(args[:cut]), runs(args[cut + 1:])
if a != b or len(a) != 12:
    print(f"FAIL: the merged Slurm results ({len(a)} runs) differ from the local sweep ({len(b)} runs)")
    sys.exit(1)
shards = [json.loads(open(f).readline())["shard"] for f in args[:cut]]
print(f"ok   merged Slurm results equal the local unsharded sweep: {len(a)} runs; shards {shards}")
PY
grep -q '"complete": true' out/report.json || { echo "FAIL: the report job did not find the sweep complete"; fail=1; }
exit $fail
