// explore/findings.cpp — the checks in every state and at the end of an
// execution, and the counterexamples they leave.
//
// Promises: every PTE write feeds the execution's checker and re-checks the
// written block (rule 1 in every state); a new checker finding fails the
// execution without ending it (one bug does not hide another); the end of
// an operation settles A/D bookkeeping and checks every branch's TLB
// against memory; per rule, the shortest counterexample found is kept,
// losses of information first, with the step that lost it marked.
#include "explore/explorer_impl.h"

#include "engine/pgtable.h"

namespace contpte {

void Explorer::Impl::write_word(Pte* p, Pte v) {
  const Pte old = *p;
  if (old == v) return;
  undo.emplace_back(p, old);
  *p = v;
  if (!chk) return;
  const std::uint64_t va = va_of(p);
  if (!va) {  // no table maps it (0 is never a user VA here): unchecked, so nothing is known clean
    clean_blocks.clear();
    return;
  }
  chk->on_pte_write(setup.asid, va, old, v);
  check_block_of(p, va);
}

// Rule 1 in every state, not only when this model's walks happen: a CPU
// may walk (speculatively, too) at any moment, so a block is never to be
// left with a valid CONT entry that disagrees on CONT or output address
// with another valid entry — nor on attributes, once no statement is in
// progress. Only a write can break it, so the written block is checked.
//
// A block found clean stays clean through a write the checker can vouch
// for in O(1) (Checker::block_still_clean); the full check runs otherwise.
void Explorer::Impl::check_block_of(const Pte* p, std::uint64_t va) {
  const auto [lo, hi] = block_words(p);
  const bool in_progress = lock_holder >= 0;
  CleanBlock* known = nullptr;
  for (CleanBlock& c : clean_blocks)
    if (c.first == lo) known = &c;
  if (!known) known = &clean_blocks.emplace_back(CleanBlock{lo, false, false});
  // Clean while a statement is in progress says nothing about attributes.
  if (known->clean && (in_progress || !known->in_progress) &&
      chk->block_still_clean(lo, geo.cont_ptes, static_cast<unsigned>(p - lo), geo.page_shift, in_progress))
    return;
  known->clean = false;
  if (std::none_of(lo, hi, [](Pte w) { return pte_valid_cont(w); })) return;
  known->clean = chk->check_block(lo, geo.cont_ptes, block_of(va).first, geo.page_shift, in_progress);
  known->in_progress = in_progress;
}

// After each step: a new checker finding fails the execution.
void Explorer::Impl::after_step() {
  if (!chk) return;
  for (; violations_seen < chk->violations().size(); ++violations_seen) {
    const Violation& v = chk->violations()[violations_seen];
    const std::string rule(rule_name(v.rule));
    fail(rule, fmt::format("{} at {:#x}: {}", rule, v.va.val, v.detail), v.va.val);
  }
}

// Records the first failure of `rule` in this execution, with the steps
// so far; the execution goes on.
void Explorer::Impl::fail(std::string rule, std::string verdict, std::uint64_t va,
                          std::vector<StepRecord>* witness) {
  if (mode != Mode::Explore) return;  // a kept run reports through the live checker
  ++fail_calls;
  for (ExploreFailure& f : exec_failures)
    if (f.rule == rule) {
      // Observed readers can fail in several ways in one execution: keep the shortest.
      if (witness && witness->size() < f.steps.size()) {
        f.verdict = std::move(verdict);
        f.va = va;
        f.steps = std::move(*witness);
        mark_culprit(f);
      }
      return;
    }
  ExploreFailure f;
  f.rule = std::move(rule);
  f.verdict = std::move(verdict);
  f.va = va;
  f.steps = witness ? std::move(*witness) : steps;
  mark_culprit(f);
  exec_failures.push_back(std::move(f));
}

// Keeps the shortest counterexample per rule, losses of information first.
void Explorer::Impl::merge_failures() {
  if (exec_failures.empty()) return;
  ++result.failing;
  for (ExploreFailure& f : exec_failures) {
    auto it = std::find_if(result.failures.begin(), result.failures.end(),
                           [&](const ExploreFailure& g) { return g.rule == f.rule; });
    if (it == result.failures.end()) result.failures.push_back(std::move(f));
    else if (f.steps.size() < it->steps.size()) *it = std::move(f);
  }
  static constexpr std::string_view kOrder[] = {"lost_dirty", "lost_young", "stale_translation",
                                                "tlb_conflict", "misprogrammed", "fault_loop", "reader",
                                                "deadlock", "unmapped", "expect"};
  auto rank = [](const ExploreFailure& f) {
    return std::find(std::begin(kOrder), std::end(kOrder), f.rule) - std::begin(kOrder);
  };
  std::stable_sort(result.failures.begin(), result.failures.end(),
                   [&](const ExploreFailure& a, const ExploreFailure& b) { return rank(a) < rank(b); });
  exec_failures.clear();
}

// The step that lost the information: for a lost dirty or young bit, the
// last write that turned that page's PTE from dirty (young) to clean (old).
void Explorer::Impl::mark_culprit(ExploreFailure& f) const {
  const bool dirty = f.rule == "lost_dirty", young = f.rule == "lost_young";
  if (!dirty && !young) {
    if (!f.steps.empty()) f.marked = static_cast<int>(f.steps.size() - 1);
    f.mark_note = "found here";
    return;
  }
  for (std::size_t i = f.steps.size(); i-- > 0;) {
    const StepRecord& s = f.steps[i];
    if (!s.wrote || s.va != f.va) continue;
    const bool lost = dirty ? pte_dirty(s.before) && !pte_dirty(s.after) && pte_present(s.after)
                            : pte_young(s.before) && !pte_young(s.after) && pte_present(s.after);
    if (lost) {
      f.marked = static_cast<int>(i);
      f.mark_note = dirty ? "the dirty bit is lost here" : "the access flag is lost here";
      return;
    }
  }
}

// The end of an operation: the A/D information it removed must show in
// ptep_get (lost_dirty / lost_young), and no other CPU may still hold a
// translation the operation changed (stale_translation).
void Explorer::Impl::settle_and_check_tlbs() {
  if (!chk) return;
  chk->settle([&](std::uint16_t, std::uint64_t va) {
                auto s = slot_of(VirtAddr{va});
                return s ? ptep_get(view_env, *s) : Pte{};
              },
              [&](std::uint16_t, std::uint64_t va) {
                auto s = slot_of(VirtAddr{va});
                return s ? *s->ptr() : Pte{};
              });
  for (unsigned b = 0; b < nbranches(); ++b)
    if (runs[b].tlb)
      chk->check_hit(*runs[b].tlb, spec(b).va.val, spec(b).access,
                     walker.walk(setup.pt->root(), setup.asid, spec(b).va, nullptr));
}

void Explorer::Impl::final_checks() {
  if (observing())
    for (unsigned b = 0; b < nbranches(); ++b)
      if (spec(b).kind == ExploreBranch::Kind::Reader) observe_reader(b);
  for (unsigned b = 0; b < nbranches(); ++b) {
    if (runs[b].done) continue;
    fail("deadlock",
         fmt::format("{} never finished{}", spec(b).label,
                     spec(b).kind == ExploreBranch::Kind::Reader ? ": the block stays torn" : ""),
         spec(b).va.val);
    runs[b].end = BranchEnd::Stuck;
    if (kept) kept->problems.push_back({spec(b).line, fmt::format("{} never finished", spec(b).label)});
  }
  if (!observing()) check_readers();
  settle_and_check_tlbs();
  after_step();
  tally_outcomes();
  if (mode == Mode::Explore && setup.on_final) {
    FinalState fs;
    for (unsigned b = 0; b < nbranches(); ++b) {
      fs.ends.push_back(runs[b].end);
      fs.reader_values.emplace_back();
      if (spec(b).kind != ExploreBranch::Kind::Reader) continue;
      if (observing()) fs.reader_values.back() = observed_values[b];
      else if (runs[b].result) fs.reader_values.back().push_back(*runs[b].result);
    }
    setup.on_final(fs);
  }
  if (mode == Mode::Explore && setup.check_final) {
    EngineCounters sum;
    for (const BranchRun& r : runs) sum += r.env.counters();
    auto failures = setup.check_final(sum);
    if (!failures.empty()) fail("expect", failures.front(), 0);
  }
}

// How each branch ended: counted over the exploration, kept for a seeded run.
void Explorer::Impl::tally_outcomes() {
  if (mode == Mode::Explore) {
    result.outcomes.resize(nbranches());
    for (unsigned b = 0; b < nbranches(); ++b) {
      BranchOutcomes& o = result.outcomes[b];
      const BranchRun& r = runs[b];
      switch (r.end) {
        case BranchEnd::Completed: ++o.completed; break;
        case BranchEnd::Faulted: ++o.faulted; break;
        case BranchEnd::Unmapped: ++o.unmapped; break;
        case BranchEnd::Stuck: ++o.stuck; break;
      }
      if (r.end != BranchEnd::Completed && o.first_fault.empty()) o.first_fault = r.outcome;
    }
  }
  if (kept) {
    for (const BranchRun& r : runs) {
      kept->ends.push_back(r.end);
      kept->outcomes.push_back(r.end == BranchEnd::Completed ? std::string("completed")
                               : r.outcome.empty()            ? std::string(branch_end_name(r.end))
                                                              : r.outcome);
    }
  }
}

}  // namespace contpte
