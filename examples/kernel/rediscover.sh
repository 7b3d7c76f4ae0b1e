#!/usr/bin/env bash
# Usage: examples/kernel/rediscover.sh CONTPTE TREE bytes-for-pages|naive-convert|drop-young|gathered-access-flags
# Restores an old contpte behaviour in a copy of the Linux tree TREE (only
# the files `--kernel` reads are copied) and shows contpte finding it, then
# the unmodified tree holding (docs/kernel.md, "Demonstrations"):
#   bytes-for-pages  Linux 6.10-rc's contpte_clear_young_dirty_ptes passed a
#                    length in bytes as a page count: `run` reports
#                    out_of_range (and wild_write), exit 1.
#   naive-convert    contpte_convert reading each entry (__ptep_get) instead
#                    of clearing it: `explore` finds lost_dirty, exit 1.
#   drop-young       contpte_convert not gathering the young bit: `diff`
#                    finds a divergence and prints a reproducer, exit 1.
#   gathered-access-flags
#                    contpte_ptep_set_access_flags comparing the gathered
#                    ptep_get with the new entry (before "arm64: contpte:
#                    fix set_access_flags() no-op check for SMMU/ATS
#                    faults"): `explore` finds the fault_loop of a device
#                    walker (outside and inside a mapping) and of a CPU
#                    without hardware A/D updates (`hafdbs off`).
# Exit 0 when both halves behave as described.
set -uo pipefail
contpte=${1:?contpte binary} tree=${2:?Linux tree} what=${3:?mutation}
here=$(cd "$(dirname "$0")/../.." && pwd)
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
for f in Makefile arch/arm64/mm/contpte.c arch/arm64/mm/fault.c arch/arm64/mm/mmu.c \
         arch/arm64/include/asm/pgtable.h arch/arm64/include/asm/pgtable-hwdef.h \
         arch/arm64/include/asm/pgtable-prot.h; do
  mkdir -p "$copy/$(dirname "$f")"
  cp "$tree/$f" "$copy/$f" 2>/dev/null || true
done
c=$copy/arch/arm64/mm/contpte.c
case $what in
  bytes-for-pages)
    sed -i 's|(end - start) / PAGE_SIZE, flags);|(end - start), flags);|' "$c"
    cmd=(run "$here/examples/05-clear-young-dirty-widens.cpt") ;;
  naive-convert)
    sed -i '0,/pte_t ptent = __ptep_get_and_clear(mm, addr, ptep);/s//pte_t ptent = __ptep_get(ptep);/' "$c"
    cmd=(explore "$here/examples/races/upstream-fold-vs-hw-write.cpt") ;;
  drop-young)
    perl -0pi -e 's/if \(pte_young\(ptent\)\)\n\t\t\tpte = pte_mkyoung\(pte\);//' "$c"
    cmd=(diff --granule 4K) ;;
  gathered-access-flags)
    sed -i 's|if (contpte_all_subptes_match_access_flags(ptep, entry))|if (pte_val(pte_mknoncont(ptep_get(ptep))) == pte_val(entry))|' "$c"
    cmd=(explore "$here/examples/races/upstream-dev-write-vs-hw-write.cpt"
         "$here/examples/races/upstream-dev-write-in-mapping-vs-hw-write.cpt"
         "$here/examples/races/upstream-nohafdbs-cpu-write-vs-dev-read.cpt") ;;
  *) echo "unknown mutation $what" >&2; exit 2 ;;
esac
cmp -s "$c" "$tree/arch/arm64/mm/contpte.c" && { echo "rediscover: the mutation did not apply to this tree" >&2; exit 2; }
"$contpte" "${cmd[0]}" --kernel "$copy" "${cmd[@]:1}"; bad=$?
"$contpte" "${cmd[0]}" --kernel "$tree" "${cmd[@]:1}" >/dev/null; good=$?
echo "mutated tree: exit $bad (expected 1); unmodified tree: exit $good (expected 0)"
[[ $bad == 1 && $good == 0 ]]
