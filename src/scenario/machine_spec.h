// scenario/machine_spec.h — the machine a scenario header describes: the
// core with the header's CPU-feature overrides, the engine seam's choice
// and the sysfs THP settings, as a MachineSpec (sim/machine.h).
//
// Owns: turning header lines into machine parameters, in one place.
// Must not know: how the machine runs (sim/), statements.
#pragma once

#include "hw/tlb.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"
#include "sim/machine.h"

namespace contpte {

// The core a run executes on: the header's `tlb` with its overrides
// (`hafdbs on|off`; `contpte bbml2` turns FEAT_BBML2_NOABORT on).
TlbConfig run_core(const Header& h);

// What the engine may ask: the kernel's behaviour and the core's features.
Features features_of(const Header& h, const TlbConfig& core);

// The engine seam's choice for `sc` (--kernel: an engine built from a
// Linux tree); throws ScenarioError for a variant a tree cannot build.
Features machine_features(const Scenario& sc, const TlbConfig& core, const RunOptions& opts);

// The sysfs THP settings a scenario header states, by folio order.
ThpSettings thp_settings(const Header& h);

// The machine `sc`'s header describes, under `opts` (--no-check, --kernel).
MachineSpec machine_spec(const Scenario& sc, const RunOptions& opts);

}  // namespace contpte
