// sim/watcher.h — what watches a Machine from outside (the `--trace`
// printer): apart from machine.h so that the scenario language's headers
// need not include the memory manager's.
#pragma once

#include <cstddef>

#include "hw/page_table.h"
#include "hw/sim_env.h"

namespace contpte {

// Watches every process's PTE accesses and TLB invalidations from outside
// the machine: the `--trace` printer (report/trace_printer.h).
class MachineWatcher {
 public:
  virtual ~MachineWatcher() = default;
  // Process `pid` was created: the observer to attach to its Env, or null.
  // It must outlive the machine's use of it.
  virtual SimObserver* watch(std::size_t pid, const PageTable& pt) = 0;
  // Reads the machine makes for itself (settling the checker, evaluating
  // expectations) are not the program's work: watchers skip them.
  virtual void pause(bool paused) = 0;
};

}  // namespace contpte
