// report/trace_printer.h — `--trace`: every statement, PTE access and TLB
// invalidation as a kernel engineer reads them, each with the statement
// that made it.
//
// Owns: the text of the trace (PTE words as arch/pte_format.h writes them,
// explorer steps as report/step_format.h does).
// Must not know: how the run produces what it shows (it watches the machine
// and the interpreter through RunTrace, scenario/runner.h).
#pragma once

#include <iosfwd>
#include <memory>
#include <vector>

#include "scenario/runner.h"

namespace contpte {

class TracePrinter final : public RunTrace {
 public:
  explicit TracePrinter(std::ostream& out);
  ~TracePrinter() override;

  SimObserver* watch(std::size_t pid, const PageTable& pt) override;
  void pause(bool paused) override { paused_ = paused; }
  void on_statement(const Statement& st) override;
  void on_block_step(const Statement& st, const SourceLoc& branch, const StepRecord& step,
                     unsigned page_shift) override;

 private:
  class ProcessTrace;
  std::ostream& out_;
  bool paused_ = false;
  std::vector<std::unique_ptr<ProcessTrace>> procs_;
};

}  // namespace contpte
