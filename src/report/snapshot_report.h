// report/snapshot_report.h — what `contpte snapshot` prints and writes.
//
// Owns: the table of a snapshot (per process, per VMA, folio sizes and
// cont_bytes), the one-line-per-sample form of --periodic, and the JSON
// report with the keys of docs/design.md ("version", "processes", "pid", "comm",
// "vmas", "start", "end", "perms", "name", "resident_bytes", "folio_bytes",
// "cont_bytes", "total") plus the rest (docs/snapshot.md).
// Must not know: how /proc is read.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hostproc/snapshot.h"

namespace contpte {

// {"version": 1, "processes": [...], "total": {...}, "notes": [...]}.
// With `rollup` the processes carry no "vmas".
nlohmann::json snapshot_json(const SnapshotSet& set, bool rollup);

// One sample of --periodic: the snapshot_json object plus "t_ms".
nlohmann::json snapshot_sample_json(const SnapshotSet& set, double t_ms, bool rollup);

// The stats alone (one VMA, a process total or the grand total).
nlohmann::json snapshot_stats_json(const SnapshotStats& s, bool pfns);

// Per process: totals, cont_bytes per block size in bytes and % of RSS, the
// folio sizes split aligned / unaligned / partial; then (unless `rollup`)
// one row per VMA with resident pages. Then the notes.
void print_snapshot(std::ostream& out, const SnapshotSet& set, bool rollup);

// What `contpte snapshot` prints by default: the totals, the `top_vmas`
// VMAs with the most resident bytes (0: every VMA with resident pages), and
// a verdict when `thp` is given.
struct SnapshotPrint {
  bool rollup = false;
  std::size_t top_vmas = 10;
  const ThpHostSettings* thp = nullptr;
};
void print_snapshot(std::ostream& out, const SnapshotSet& set, const SnapshotPrint& how);

// The verdict for memory with stats `s`, one line per block size: what
// contpte maps, what the resident layout (fully resident, aligned blocks:
// resident_block_bytes) would let it map, the host's setting for that folio
// size, and which setting would change the answer.
std::vector<std::string> snapshot_verdict(const SnapshotStats& s, bool pfns, const ThpHostSettings& thp);

// {"dir", "present", "enabled", "defrag", "sizes": {"64K": "never", ...}}.
nlohmann::json thp_settings_json(const ThpHostSettings& thp);

// --periodic: one line per process (and one for all, if several).
void print_sample_line(std::ostream& out, const SnapshotSet& set, double t_ms);

}  // namespace contpte
