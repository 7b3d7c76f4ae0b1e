#!/usr/bin/env bash
# The memory manager against the host's live kernel on random mm scenarios
# (scripts/live-reference.py --random): every recorded 64K-block answer must
# match the model's. Opt-in (it changes the host's THP settings while it
# runs, then restores them): CONTPTE_LIVE=1 ctest -L live, or run directly.
# Usage: live_differential.sh CONTPTE SOURCE_DIR [FIRST_SEED [COUNT]]
set -u
bin=$1
src=$2
first=${3:-1}
count=${4:-40}
if [[ ${CONTPTE_LIVE:-0} != 1 ]]; then
  echo "skipped: set CONTPTE_LIVE=1 to run random scenarios on the live kernel"
  exit 77
fi
if [[ $(id -u) != 0 || ! -d /sys/kernel/mm/transparent_hugepage || $(getconf PAGESIZE) != 4096 ]]; then
  echo "skipped: needs root, mTHP sysfs and 4K pages"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
for ((seed = first; seed < first + count; seed++)); do
  if ! python3 "$src/scripts/live-reference.py" "$tmp/in$seed.cpt" --random "$seed" -o "$tmp/out$seed.cpt" \
      2>"$tmp/err"; then
    echo "FAIL seed $seed: live run: $(cat "$tmp/err")"
    fail=1
    continue
  fi
  if ! "$bin" run "$tmp/out$seed.cpt" >"$tmp/res" 2>&1; then
    echo "FAIL seed $seed: the model disagrees with the kernel:"
    grep "expect failed" "$tmp/res" | head -5
    cp "$tmp/in$seed.cpt" "$tmp/out$seed.cpt" "${TMPDIR:-/tmp}/" 2>/dev/null
    fail=1
  else
    echo "ok   seed $seed"
  fi
done
exit $fail
