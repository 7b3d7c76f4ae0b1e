// diff/diff.h — `contpte diff --kernel DIR`: random PTE-level scenarios run
// in lock-step by the built-in engine and by the engine built from a Linux
// tree, compared after every statement (docs/kernel.md "contpte diff").
//
// Owns: the generator (core-mm's preconditions: set_ptes only onto empty
// PTEs of one folio, batched calls only over present runs of one folio with
// one protection, access-flag updates only towards more permissive),
// hardware A/D updates between calls, the comparison (every PTE word, every
// returned value, fold/unfold counts), the shrinking of a divergence and
// its reproducer scenario.
// Must not know: how the kernel engine is built (kernel/build.h gives it).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "arch/granule.h"
#include "engine/external.h"

namespace contpte {

struct DiffOptions {
  std::vector<Granule> granules{Granule::k4K, Granule::k16K, Granule::k64K};
  unsigned runs = 400;   // per granule
  unsigned ops = 1000;   // statements per run
  std::uint64_t seed = 1;
};

struct DiffResult {
  std::uint64_t runs = 0;
  std::uint64_t statements = 0;
  std::uint64_t ptes_compared = 0;
  std::uint64_t divergences = 0;
  std::uint64_t folds = 0, unfolds = 0;  // the built-in side's, over all runs (coverage)
  std::string first;       // the first diverging statement and PTE, one line
  std::string reproducer;  // the shrunk scenario (with the kernel side's expect raw lines)
};

// `engine(geo)` gives the tree's CONFIG_ARM64_CONTPTE=y engine for a granule.
// Stops at the first divergence. `progress(runs done, runs total)` may be empty.
DiffResult run_diff(const DiffOptions& opts,
                    const std::function<const ExternalEngine&(const Geometry&)>& engine,
                    const std::function<void(std::uint64_t, std::uint64_t)>& progress = {});

}  // namespace contpte
