// sim/machine.h — the simulated machine a run drives: physical memory, the
// buddy allocator, the MMU with its TLBs, the conformance checker and the
// memory manager with its processes, built and wired together.
//
// Owns: building those parts from a MachineSpec and wiring them: each
// process's Env reaches the MMU by SimEnv::invalidate_tlb and feeds the
// checker every PTE word it writes; processes and their ASIDs; the path of
// a user access (MMU, fault to the memory manager, retry); a core-mm
// caller's flush after a PTE-level call; the checker's settling; the
// counts behind the report's stats (sim/stats.h).
// Must not know: the scenario language (scenario/ interprets statements
// over a Machine), output formats (printers watch it through a
// MachineWatcher, wired by apps/).
//
// The engine is called from three places only, so that a run-time choice
// of engine goes in one seam: the memory manager (mm/), the PTE-level
// statements (scenario/pte_statements.h, on env()), and Machine::pte_view.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "arch/granule.h"
#include "engine/env.h"
#include "hw/access_rules.h"
#include "hw/checker.h"
#include "hw/mmu.h"
#include "hw/phys_mem.h"
#include "hw/sim_env.h"
#include "hw/tlb.h"
#include "mm/buddy.h"
#include "mm/mm.h"
#include "sim/watcher.h"

namespace contpte {

// What a machine is built from (a scenario header says it: the runner
// converts).
struct MachineSpec {
  Granule granule = Granule::k4K;
  std::uint64_t memory = std::uint64_t{8} << 30;  // bytes of physical memory
  double fragment = 0.0;                          // buddy fragmentation, in [0, 1]
  std::uint64_t seed = 1;                         // fragmentation and TLB replacement
  // The core: its TLBs, costs and CPU features (FEAT_HAFDBS,
  // FEAT_BBML2_NOABORT), the scenario's overrides applied.
  TlbConfig core;
  // The engine seam: the engine's variant and the core's features it reads,
  // or (Features::external) an engine built from a Linux tree. Chosen once,
  // here, at run time; the built-in engine's calls are direct.
  Features features;
  ThpSettings thp;
  // The user program's instructions per access, when no driven run counts
  // them (the `instructions` stat).
  double insns_per_access = 0;
  bool check = true;  // run the conformance checker
};

// How a device walker's access ended (Machine::device_access).
struct DeviceAccessResult {
  enum class End : std::uint8_t {
    Completed,
    FaultLoop,  // the fault just handled, again, with the PTE as its handler left it
    Failed,     // a fault nothing resolves
  };
  End end = End::Completed;
  AccessFault fault = AccessFault::None;  // FaultLoop, Failed: the fault
  Pte desc;                               // FaultLoop: the descriptor it faulted on again
  std::string_view why;                   // Failed: why not ("SIGSEGV: ...")
};

class Machine {
 public:
  explicit Machine(const MachineSpec& spec, MachineWatcher* watcher = nullptr);
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;

  const Geometry& geometry() const { return geo_; }
  const Features& features() const { return features_; }
  bool checking() const { return check_; }

  // ---- processes: pid i runs in ASID i + 1 ----
  static std::uint16_t asid_of(std::size_t pid) { return static_cast<std::uint16_t>(pid + 1); }
  std::size_t processes() const { return procs_.size(); }
  Mm& mm(std::size_t pid) { return *procs_.at(pid).mm; }
  bool alive(std::size_t pid) const { return procs_.at(pid).alive; }
  SimEnv& env(std::size_t pid) { return mm(pid).env(); }
  // The process whose ASID is `asid`, if any.
  Mm* mm_by_asid(std::uint16_t asid);
  // fork() of `parent`; returns the child's pid.
  std::size_t fork(std::size_t parent);
  // exit_mmap of `pid`; its pid stays taken.
  void exit(std::size_t pid);

  // ---- user accesses ----
  // One access by user code; a fault goes to the memory manager
  // (handle_mm_fault) and the access is retried, as the CPU re-executes
  // the faulting instruction. nullopt when it completed, else why not
  // ("Translation at level 3; SIGSEGV: no mapping").
  // `continued`: the second page of an access that straddles a page
  // boundary, translated but not counted again in `accesses`.
  std::optional<std::string> access(std::size_t pid, VirtAddr va, MemAccess kind, bool continued = false) {
    Mm& m = *procs_[pid].mm;
    const AccessResult r = mmu_.access(m.page_table(), m.asid(), va, kind, /*retry=*/continued);
    if (r.fault == Fault::None) [[likely]] return std::nullopt;
    return fault_and_retry(m, va, kind, r);
  }
  // User instructions a driven program executed (a replay counts them).
  void count_instructions(std::uint64_t n) { instructions_ = instructions_.value_or(0) + n; }
  // The program's instructions: counted, else accesses x insns_per_access.
  double instructions() const;

  // ---- device accesses ----
  // One access by a device walker without hardware A/D updates (`dev
  // read|write`): it reads the leaf descriptor alone; a fault goes to the
  // memory manager's fault path inside a mapping, to the PTE-level handler
  // (mm/pte_fault.h) outside every mapping, and the access retries.
  DeviceAccessResult device_access(std::size_t pid, VirtAddr va, MemAccess kind);

  // ---- TLB maintenance ----
  // The flush a core-mm caller issues after a PTE-level call
  // (flush_tlb_page / flush_tlb_range), counted as caller_tlbi.
  void caller_flush(std::size_t pid, VirtAddr va, std::uint64_t nr);
  // Core-mm callers' flushes another CPU issued (in an explored parallel
  // block, whose flushes reach this CPU's TLBs through the process's Env
  // as the kept execution makes them: Explorer::run_seeded), counted as
  // caller_tlbi.
  void add_caller_flushes(std::uint64_t n) { caller_tlbi_ += n; }

  // ---- the checker ----
  // The checker, whether or not checking is on: a PTE-level statement's
  // caller tells it what core mm consumed either way.
  Checker& checker() { return checker_; }
  void set_context(unsigned line, std::uint64_t step) { checker_.set_context(line, step); }
  // What foreign engine code did that no checker rule sees (a WARN, a write
  // outside the caller's blocks, a wild access), since the last call: to
  // the checker, at the statement that made it.
  void engine_findings();
  // The end of a step: the checker compares what the TLBs hold against
  // the page tables (no-op when not checking).
  void settle();

  // ---- the engine's view ----
  // ptep_get of va in process `pid` (the gathered view contpte gives core
  // mm), unseen by watchers; none when no PTE table covers va.
  Pte pte_view(std::size_t pid, VirtAddr va);
  // The stored leaf word: a PTE, or a huge PMD's block advanced to va's page.
  Pte stored(std::size_t pid, VirtAddr va) { return mm(pid).leaf_pte(va, /*gathered=*/false); }
  // Reads made with watchers paused.
  template <class Fn>
  auto quietly(Fn&& fn) {
    if (watcher_) watcher_->pause(true);
    auto r = fn();
    if (watcher_) watcher_->pause(false);
    return r;
  }

  // ---- parts, for the interpreter and the stats ----
  PhysMem& memory() { return mem_; }
  BuddyAllocator& buddy() { return buddy_; }
  Mmu& mmu() { return mmu_; }
  const Mmu& mmu() const { return mmu_; }
  const BuddyAllocator& buddy() const { return buddy_; }
  const PhysMem& memory() const { return mem_; }
  MmSystem& system() { return sys_; }
  // Core-mm callers' flushes of PTE-level statements (the memory manager
  // counts its own in MmStats::caller_tlbi).
  std::uint64_t caller_tlbi() const { return caller_tlbi_; }
  // The engine's counters summed over every process.
  EngineCounters engine_counters();

 private:
  // Feeds every PTE word a process's Env writes to the checker's
  // access/dirty bookkeeping.
  class CheckerFeed final : public SimObserver {
   public:
    CheckerFeed(Checker& c, const PageTable& pt, std::uint16_t asid) : c_(c), pt_(pt), asid_(asid) {}
    void on_pte_access(const PteAccess& a) override;

   private:
    Checker& c_;
    const PageTable& pt_;
    std::uint16_t asid_;
  };
  struct Proc {
    std::unique_ptr<Mm> mm;
    std::unique_ptr<CheckerFeed> feed;
    bool alive = true;
  };
  void add_process(std::unique_ptr<Mm> mm);
  // access() after its first attempt faulted with `first`.
  std::optional<std::string> fault_and_retry(Mm& m, VirtAddr va, MemAccess kind, AccessResult first);

  const Geometry& geo_;
  Features features_;
  bool check_;
  MachineWatcher* watcher_;
  PhysMem mem_;
  BuddyAllocator buddy_;
  Checker checker_;
  Mmu mmu_;
  MmSystem sys_;
  std::vector<Proc> procs_;
  std::uint64_t caller_tlbi_ = 0;
  double insns_per_access_;
  std::optional<std::uint64_t> instructions_;  // counted by a driven run
};

}  // namespace contpte
