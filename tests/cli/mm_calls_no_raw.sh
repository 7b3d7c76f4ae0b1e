#!/bin/sh
# src/mm calls the engine where the kernel's core-mm calls pgtable.h: the
# contpte-aware PTE API and the PMD helpers (engine/pmd.h), never a raw
# (contpte-unaware) operation. Fails naming each line that does.
# Usage: mm_calls_no_raw.sh SOURCE_DIR
src="$1/src/mm"
[ -d "$src" ] || { echo "mm_calls_no_raw.sh: no directory $src" >&2; exit 2; }
if grep -n 'raw::\|engine/raw\.h' "$src"/*.h "$src"/*.cpp; then
  echo "error: src/mm must call no raw:: function (use engine/pgtable.h or engine/pmd.h)" >&2
  exit 1
fi
exit 0
