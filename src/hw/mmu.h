// hw/mmu.h — one CPU's memory management unit: TLB hierarchy, walker,
// hardware access/dirty management and TLB maintenance.
//
// Owns: the path of one user access (L1 TLB, L2 TLB, walk), the AF and
// dirty updates FEAT_HAFDBS makes by compare-exchange on the descriptor,
// the fills, and the mapping of the engine's flush requests onto TLBI
// instructions the way Linux's __flush_tlb_range does.
// Must not know: mm policy (a fault is returned, not handled), scenarios.
#pragma once

#include <array>
#include <cstdint>
#include <random>

#include "engine/env.h"
#include "hw/access_rules.h"
#include "hw/checker.h"
#include "hw/page_table.h"
#include "hw/phys_mem.h"
#include "hw/sim_env.h"
#include "hw/tlb.h"
#include "hw/walker.h"

namespace contpte {

// Fault (hw/access_rules.h): the fault class an access reports.
std::string_view fault_name(Fault f);

struct AccessResult {
  Fault fault = Fault::None;
  unsigned level = 0;   // where a translation fault was found
};

struct MmuStats {
  std::uint64_t accesses = 0;
  std::uint64_t l1_hits = 0;        // L1 data or instruction TLB
  std::uint64_t l2_hits = 0;
  std::uint64_t tlb_misses = 0;     // missed every TLB: walked
  std::uint64_t walks = 0;
  std::uint64_t walk_mem_accesses = 0;
  std::uint64_t walk_cycles = 0;    // descriptor reads x their cost
  std::uint64_t cycles = 0;         // translation cycles: hits + walks
  std::uint64_t faults = 0;
  std::uint64_t hw_af_updates = 0;
  std::uint64_t hw_dirty_updates = 0;
  std::uint64_t tlb_overlaps = 0;   // tolerated overlapping entries (BBML2)
  // TLBI instructions issued, by kind.
  std::uint64_t tlbi_va = 0, tlbi_range = 0, tlbi_asid = 0, tlbi_all = 0;
};

class Mmu final : public SimObserver {
 public:
  // `checker` may be null (`--no-check`).
  Mmu(PhysMem& mem, TlbConfig cfg, bool hafdbs, Checker* checker, std::uint64_t seed);

  // One access by user code in `asid` through the tables at `root`.
  // `retry`: the re-execution of an access that faulted, not counted again
  // in `accesses` (the program made one access).
  AccessResult access(const PageTable& pt, std::uint16_t asid, VirtAddr va, MemAccess kind,
                      bool retry = false);

  // SimObserver: the engine's flush requests become TLBI instructions.
  void on_tlbi(const TlbiRequest& r) override;

  // A copy: the counts of the fused miss path are added in here (see
  // fast_walks_).
  MmuStats stats() const;
  const TlbConfig& config() const { return cfg_; }
  Tlb& l1d() { return l1d_; }
  Tlb& l1i() { return l1i_; }
  Tlb& l2() { return l2_; }

 private:
  bool permits(const Pte& desc, MemAccess kind) const;
  [[gnu::noinline]] void check_hit(PhysAddr root, std::uint16_t asid, VirtAddr va,
                                   MemAccess kind, const TlbEntry& e);
  void prefetch_walk(std::uint16_t asid, VirtAddr va) const;
  [[gnu::noinline]] Pte hw_update(const PageTable& pt, std::uint16_t asid, Pte* target, Pte d,
                                  bool needs_dirty);
  AccessResult l1_hit(const PageTable& pt, std::uint16_t asid, VirtAddr va, MemAccess kind,
                      const TlbEntry& e);
  [[gnu::noinline]] AccessResult access_l1(const PageTable& pt, std::uint16_t asid, VirtAddr va,
                                           MemAccess kind, Tlb& l1);
  [[gnu::noinline]] AccessResult access_l1_probe(const PageTable& pt, std::uint16_t asid,
                                                 VirtAddr va, MemAccess kind, Tlb& l1);
  AccessResult miss(const PageTable& pt, std::uint16_t asid, VirtAddr va, MemAccess kind, Tlb& l1,
                    bool l1_absent);
  [[gnu::noinline]] AccessResult miss_general(const PageTable& pt, std::uint16_t asid,
                                              VirtAddr va, MemAccess kind, Tlb& l1);
  // Six arguments, all in registers: access_l1() ends in a jump to it.
  AccessResult miss_fast(const PageTable& pt, std::uint16_t asid, VirtAddr va, MemAccess kind,
                         bool l1_absent);
  [[gnu::noinline]] AccessResult walk_from_root(const PageTable& pt, std::uint16_t asid,
                                                VirtAddr va, MemAccess kind, bool absent);
  // Inline in both callers: a WalkResult passed in memory costs the
  // checked path what the fused one saves.
  [[gnu::always_inline]] inline AccessResult fill_from_walk(const PageTable& pt, std::uint16_t asid, VirtAddr va,
                              MemAccess kind, Tlb& l1, const WalkResult& w, bool absent);
  AccessResult walk_and_fill(const PageTable& pt, std::uint16_t asid, VirtAddr va, MemAccess kind,
                             Tlb& l1);
  void fill(Tlb& t, const TlbEntry& e, std::uint64_t va);
  void flush_range(std::uint16_t asid, std::uint64_t start, std::uint64_t nr_pages);
  void flush_asid(std::uint16_t asid);

  PhysMem& mem_;
  TlbConfig cfg_;
  bool hafdbs_;
  Checker* checker_;
  Walker walker_;
  WalkCache walk_cache_;
  Tlb l1d_, l1i_, l2_;
  std::mt19937_64 rng_;
  MmuStats stats_;
  // Walks of one descriptor read that miss_fast() completed: each counts
  // one TLB miss, walk and walk memory access and walk_access_cycles, which
  // stats() adds; one increment instead of five on the path that matters.
  std::uint64_t fast_walks_ = 0;
  // Worked out once (every miss needs them; Tlb::config() is a call).
  unsigned l1d_hit_cycles_ = 0, l1i_hit_cycles_ = 0, l2_hit_cycles_ = 0;
  // The fused miss path (miss_fast) applies: no checker (whose checks the
  // general path makes) and a walk cache. Tests turn it off to compare.
  bool fast_miss_ = false;
  // A contiguous block's miss takes the general path: some structure holds
  // blocks as pages (Mmu::fill splits them), or the preset updates a random
  // PTE of the block (walk_and_fill draws it from rng_ on every such walk).
  bool cont_general_ = false;
  // Per kind of access, the bits of a level-3 descriptor that miss_fast()
  // looks at (`care`) and the values they must have (`set`) for the entry
  // to be cached as it is: one mask and compare instead of five tests.
  struct AsIs {
    std::uint64_t care = 0, set = 0;
  };
  std::array<AsIs, 3> as_is_{};
  // The granule's page: log2 of its size, its offset bits, and the output
  // address bits of a page descriptor.
  unsigned page_shift_ = 0;
  std::uint64_t page_mask_ = 0, page_oa_mask_ = 0;
  friend struct MmuFastPathSwitch;  // tests/hw/mmu_fast_path_test.cpp
};

}  // namespace contpte
