// hw/checker.h — the conformance checker (docs/design.md "Conformance rules").
//
// Owns: one small predicate per rule, each run where the hardware would be
// hurt — misprogrammed on every walk that reads a valid CONT entry,
// tlb_conflict on every TLB fill, stale_translation on every TLB hit —
// and the bookkeeping of access/dirty information for lost_dirty and
// lost_young: which pages' PTEs have held AF or a dirty state that no
// aging, cleaning or discarding operation has since accounted for.
// Must not know: scenarios, mm policy, report formats.
//
// The sequential runner executes each statement to completion before the
// next, so "an operation in progress" never exists there; the explorer will
// tell the checker which operations are in flight.
#pragma once

#include <array>
#include <cstdint>
#include <tuple>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "arch/pte.h"
#include "engine/external.h"
#include "hw/tlb.h"
#include "hw/walker.h"

namespace contpte {

// KernelWarning, OutOfRange and WildWrite are reported by the engine seam
// (engine/external.h), not checked here: only code built from a Linux tree
// can break them. FaultLoop is reported by whoever retries a faulting
// access (the runner, the explorer): report_fault_loop.
enum class Rule : std::uint8_t {
  Misprogrammed, TlbConflict, StaleTranslation, LostDirty, LostYoung,
  KernelWarning, OutOfRange, WildWrite, FaultLoop
};
inline constexpr std::array<std::string_view, 9> kRules{
    "misprogrammed", "tlb_conflict", "stale_translation", "lost_dirty", "lost_young",
    "kernel_warning", "out_of_range", "wild_write", "fault_loop"};
constexpr std::string_view rule_name(Rule r) { return kRules[static_cast<std::size_t>(r)]; }
// The rule called `name` (an `expect violation RULE`); nullopt if none is.
constexpr std::optional<Rule> rule_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kRules.size(); ++i)
    if (kRules[i] == name) return static_cast<Rule>(i);
  return std::nullopt;
}

// A finding: {"rule", "va", "ptes": [{"va", "value"}...], "line", "step"}
// (`rule` printed by its name, rule_name).
struct Violation {
  Rule rule = Rule::Misprogrammed;
  VirtAddr va;
  std::vector<std::pair<VirtAddr, Pte>> ptes;  // (va, stored word)
  std::string detail;  // one sentence: what was seen
  unsigned line = 0;
  std::uint64_t step = 0;
  bool claimed = false;  // an `expect violation` accounted for it
};

enum class MemAccess : std::uint8_t { Read, Write, Exec };

class Checker {
 public:
  Checker(const Geometry& geo, bool bbml2_noabort) : geo_(geo), bbml2_(bbml2_noabort) {}

  // Where findings are attributed: the scenario line and a running step.
  void set_context(unsigned line, std::uint64_t step) { line_ = line, step_ = step; }
  unsigned context_line() const { return line_; }

  // ---- rule 1: misprogrammed (on a walk that read a valid CONT leaf) ----
  // `block` points at the first of the CONT_PTES (or CONT_PMDS) words of
  // the aligned block; `va_base` is its first VA.
  // `in_progress`: an operation on the block has started and not returned
  // (only inside the explorer); the entries may then disagree on attributes
  // while it rewrites them one by one, but never on CONT or output address.
  // Returns whether the block is clean (whether or not a finding was
  // reported now: one finding per rule, address and line).
  bool check_block(const Pte* block, unsigned n, std::uint64_t va_base, unsigned shift,
                   bool in_progress = false);
  // Rule 1 after one word changed, in O(1) mostly: for a block that
  // check_block(…, in_progress) found clean, whose entry `written` was then
  // rewritten (to what `block` now holds), true when check_block would
  // still find it clean. False means "check it": it never answers for a
  // block it is unsure about (a state checked with `in_progress` and now
  // checked without it is the caller's to check in full). The explorer
  // checks every state after every write; a full check of a 16K block's
  // 128 entries per write was a fifth of its time.
  bool block_still_clean(const Pte* block, unsigned n, unsigned written, unsigned shift, bool in_progress) const;

  // ---- rule 2: tlb_conflict (on a TLB fill) ----
  // `tlb` already holds `filled`. Returns the number of overlaps that the
  // architecture tolerates (BBML2 with agreeing output and attributes).
  unsigned check_fill(const Tlb& tlb, const TlbEntry& filled);

  // ---- rule 3: stale_translation (on a TLB hit that grants `kind`) ----
  // `now` is what a fresh walk of `va` finds in memory.
  void check_hit(const TlbEntry& e, std::uint64_t va, MemAccess kind, const WalkResult& now);
  // The same rule for the walk cache: a walk that started from a cached
  // table must read the entry a walk from the root reads. One that does
  // not went through a table the page tables no longer link there (freed
  // without a non-last-level flush, perhaps reused by another range).
  void check_walk(std::uint64_t va, const WalkResult& walked, const WalkResult& from_root);

  // ---- rules 4 and 5: lost_dirty, lost_young ----
  // Every PTE word written (by the engine, raw writes or hardware).
  // `asid` names the address space (processes share VAs).
  void on_pte_write(std::uint16_t asid, std::uint64_t va, Pte before, Pte after);
  // An operation that cleans (dirty) or ages (young) the pages of a range:
  // the information it removes was accounted for.
  void clean(std::uint16_t asid, std::uint64_t va, std::uint64_t nr_pages, bool dirty, bool young);
  // pte_clear / clear_full_ptes: the caller does not want A/D.
  void discard(std::uint16_t asid, std::uint64_t va, std::uint64_t nr_pages) {
    clean(asid, va, nr_pages, true, true);
  }
  // A get-and-clear returned `value` for the pages of a range (A/D OR-ed
  // over them): each page's dirty/young must show in it.
  void returned(std::uint16_t asid, std::uint64_t va, std::uint64_t nr_pages, Pte value);
  // At the end of an operation: every page whose block was written during it
  // must still report (through ptep_get, `view`) what it owes.
  void settle(const std::function<Pte(std::uint16_t asid, std::uint64_t va)>& view,
              const std::function<Pte(std::uint16_t asid, std::uint64_t va)>& stored);

  // A finding of the engine seam (kernel_warning, out_of_range, wild_write),
  // at the current line; one per rule, detail and line.
  void report_engine(const EngineFinding& f);

  // ---- rule 7: fault_loop ----
  // An access at `va` (the statement or branch at `line`) faulted again for
  // the reason its fault handler had just handled, and the handler left
  // `pte` still faulting for it: a walker that reads each descriptor alone
  // would fault forever.
  void report_fault_loop(VirtAddr va, unsigned line, Pte pte, std::string detail);

  std::vector<Violation>& violations() { return violations_; }
  const std::vector<Violation>& violations() const { return violations_; }
  std::uint64_t count(Rule r) const { return counts_[static_cast<std::size_t>(r)]; }

 private:
  bool block_dirty(const WalkResult& now) const;
  struct Owed {
    bool dirty = false;
    bool young = false;
  };
  void report(Rule r, std::uint64_t va, std::vector<std::pair<std::uint64_t, std::uint64_t>> ptes,
              std::string detail);

  const Geometry& geo_;
  bool bbml2_;
  unsigned line_ = 0;
  std::uint64_t step_ = 0;
  static std::uint64_t key(std::uint16_t asid, std::uint64_t va) {
    return (std::uint64_t{asid} << 48) | va;
  }
  std::unordered_map<std::uint64_t, Owed> owed_;  // key(asid, page) -> A/D not yet accounted for
  std::set<std::uint64_t> touched_blocks_;        // key(asid, block) written since the last settle
  std::set<std::tuple<int, std::uint64_t, unsigned>> seen_;  // (rule, va, line): report once
  std::set<std::tuple<int, std::string, unsigned>> seen_detail_;  // engine findings, once each
  std::vector<Violation> violations_;
  std::array<std::uint64_t, kRules.size()> counts_{};
};

}  // namespace contpte
