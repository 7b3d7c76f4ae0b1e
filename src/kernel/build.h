// kernel/build.h — building, caching and loading an engine from a Linux tree.
//
// Owns: the cache (one shared object per tree content, granule and
// configuration, under $CONTPTE_CACHE_DIR or ~/.cache/contpte/kernel/), the
// compiler run (the system gcc, against the shim headers this binary
// carries), dlopen, and the set of engines one command uses.
// Must not know: scenarios, the simulator.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>

#include "engine/external.h"
#include "kernel/source.h"

namespace contpte::kernel {

// Where the cache lives: $CONTPTE_CACHE_DIR, else $HOME/.cache/contpte.
std::string cache_root();

struct BuildInfo {
  std::string dir;        // the cache entry (engine.c, engine.so, build.log)
  bool built = false;     // false: found in the cache
  double seconds = 0;     // generation + compile (or lookup + load)
};

// Builds (or finds) and loads the engine of `tree` for `cfg`. `progress`
// (may be null) gets a line before and after a build. Throws KernelError.
std::shared_ptr<const ExternalEngine> load_engine(const TreeFiles& tree, const KernelConfig& cfg,
                                                  std::ostream* progress, BuildInfo* info = nullptr);

// The engines of one tree, one per granule and configuration, built on
// first use. Thread-safe (the main job runs workloads on several threads).
class KernelEngines {
 public:
  // Reads the tree now: throws KernelError naming a missing file.
  KernelEngines(std::string dir, std::ostream* progress);
  const ExternalEngine& get(const Geometry& geo, bool contpte);
  const std::string& dir() const { return tree_.dir; }
  bool debug_vm() const { return debug_vm_; }

 private:
  TreeFiles tree_;
  std::ostream* progress_;
  bool debug_vm_ = true;
  std::mutex mu_;
  std::map<std::pair<std::string, bool>, std::shared_ptr<const ExternalEngine>> engines_;
};

}  // namespace contpte::kernel
