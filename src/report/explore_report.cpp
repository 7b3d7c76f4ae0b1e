#include "report/explore_report.h"

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "arch/granule.h"
#include "arch/pte_format.h"
#include "report/step_format.h"

namespace contpte {

namespace {

// The run's granule, as arch/granule.h names it (the runner wrote the name).
unsigned page_shift_of(const RunResult& r) {
  return geometry(granule_from_name(r.config.granule).value_or(Granule::k4K)).page_shift;
}

// Branches are named A, B, C... in the order the block lists them.
char branch_name(unsigned b) { return static_cast<char>('A' + b); }

double rate(const ExploreResult& x) { return x.seconds > 0 ? double(x.executions) / x.seconds : 0.0; }

// How a branch ended over the explored interleavings: "completed in every
// interleaving", or the counts of each way it ended.
std::string outcome_text(const ExploreResult& x, std::size_t b) {
  if (b >= x.outcomes.size()) return "";
  const BranchOutcomes& o = x.outcomes[b];
  if (o.always_completed()) return "completed in every interleaving";
  std::vector<std::string> ways;
  auto add = [&](std::uint64_t n, std::string_view what) {
    if (n) ways.push_back(fmt::format("{} in {}", what, n));
  };
  add(o.completed, "completed");
  add(o.faulted, "faulted");
  add(o.unmapped, "UNMAPPED");
  add(o.stuck, "never finished");
  return fmt::format("{} (first: {})", fmt::join(ways, ", "), o.first_fault);
}

// A step that reads or writes a PTE word (those collapse into runs).
bool is_memory_step(StepKind k) {
  return k == StepKind::Load || k == StepKind::Store || k == StepKind::Xchg || k == StepKind::Cmpxchg ||
         k == StepKind::HwWalk || k == StepKind::HwUpdate;
}

// The function an engine branch's statement calls: "engine ptep_set_wrprotect
// 0x40000000" -> "ptep_set_wrprotect".
std::string_view statement_function(std::string_view branch) {
  if (!branch.starts_with("engine ")) return {};
  branch.remove_prefix(7);
  return branch.substr(0, branch.find(' '));
}

// "contpte_convert › __set_ptes", "contpte_try_fold", the statement's own
// function for a step it makes outside any marked one, or "" (hardware,
// lock).
std::string where_name(const StepRecord& s, const BlockExploration& b) {
  if (s.where.function.empty()) {
    if (s.kind == StepKind::Acquire || s.kind == StepKind::Release || s.branch >= b.branches.size()) return {};
    if (s.kind != StepKind::Load && s.kind != StepKind::Store && s.kind != StepKind::Xchg &&
        s.kind != StepKind::Cmpxchg && s.kind != StepKind::Tlbi)
      return {};
    return std::string(statement_function(b.branches[s.branch]));
  }
  if (s.where.within.empty()) return std::string(s.where.function);
  return fmt::format("{} › {}", s.where.within, s.where.function);
}
std::string where_suffix(const StepRecord& s, const BlockExploration& b) {
  const std::string w = where_name(s, b);
  return w.empty() ? std::string() : fmt::format("  [{}]", w);
}

// A PTE's state without its word and PFN: what a run of steps over
// consecutive pages has in common ("rw valid young clean cont").
std::string pte_shape(Pte p, unsigned shift) {
  std::string out;
  const std::string text = format_pte(p, shift);
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = std::min(text.find(' ', pos), text.size());
    const std::string_view tok = std::string_view(text).substr(pos, end - pos);
    if (!tok.starts_with("0x") && !tok.starts_with("pfn=")) {
      if (!out.empty()) out.push_back(' ');
      out.append(tok);
    }
    pos = end + 1;
  }
  return out;
}

bool same_step(const StepRecord& a, const StepRecord& b) {
  return a.branch == b.branch && a.kind == b.kind && a.va == b.va && a.nr == b.nr && a.before == b.before &&
         a.after == b.after;
}

// Whether step j continues a run that step i starts (i < j, same run so far).
bool continues_run(const StepRecord& first, const StepRecord& prev, const StepRecord& next, unsigned shift) {
  return is_memory_step(next.kind) && next.branch == first.branch && next.kind == first.kind &&
         next.note.empty() && next.wrote == first.wrote && next.where.function == first.where.function &&
         next.where.within == first.where.within && next.va == prev.va + (std::uint64_t{1} << shift) &&
         pte_shape(next.before, shift) == pte_shape(first.before, shift) &&
         (!first.wrote || pte_shape(next.after, shift) == pte_shape(first.after, shift));
}

void print_step(std::ostream& out, const BlockExploration& b, const ExploreFailure& f, std::size_t i,
                unsigned shift) {
  const StepRecord& s = f.steps[i];
  const bool marked = static_cast<int>(i) == f.marked;
  out << fmt::format("  {}{:>4}  {}  line {:<4} {}{}{}{}\n", marked ? ">>" : "  ", i + 1, branch_name(s.branch),
                     b.lines[s.branch], format_step(s, shift), s.note.empty() ? "" : "  ; " + s.note,
                     where_suffix(s, b), marked ? "   <== " + f.mark_note : "");
}

// Runs of at least this many like steps print as one line.
constexpr std::size_t kMinRun = 3;

void print_counterexample(std::ostream& out, const BlockExploration& b, const ExploreFailure& f, unsigned shift,
                          bool verbose) {
  for (std::size_t i = 0; i < f.steps.size();) {
    const StepRecord& s = f.steps[i];
    std::size_t j = i + 1;
    if (!verbose && is_memory_step(s.kind) && s.note.empty() && static_cast<int>(i) != f.marked)
      while (j < f.steps.size() && static_cast<int>(j) != f.marked &&
             continues_run(s, f.steps[j - 1], f.steps[j], shift))
        ++j;
    if (j - i < kMinRun) {
      for (; i < j; ++i) print_step(out, b, f, i, shift);
      continue;
    }
    const StepRecord& last = f.steps[j - 1];
    const std::string shape = s.wrote ? pte_shape(s.before, shift) + " -> " + pte_shape(s.after, shift)
                                      : pte_shape(s.before, shift);
    // Width 6 in code points: the numbers line up with single steps' "  >>  26".
    out << fmt::format("  {:>6}  {}  line {:<4} {} ×{} {:#x}–{:#x}  {}{}\n",
                       fmt::format("{}–{}", i + 1, j), branch_name(s.branch), b.lines[s.branch],
                       step_kind_name(s.kind), j - i, s.va, last.va, shape, where_suffix(s, b));
    i = j;
  }
}

}  // namespace

void print_explorations(std::ostream& out, const RunResult& r, bool verbose) {
  const unsigned shift = page_shift_of(r);
  for (const BlockExploration& b : r.explorations) {
    const ExploreResult& x = b.result;
    out << fmt::format("{}:{}: parallel block, {} branches: {}\n", b.loc.file, b.loc.line, b.branches.size(),
                       x.failed()     ? "FAILED"
                       : x.exhausted ? "every interleaving passes"
                                     : "no failure found (bounded)");
    for (const ExploreFailure& f : x.failures) out << fmt::format("  verdict: {}\n", f.verdict);
    out << fmt::format("  configuration: granule {}, contpte {}, tlb {}\n", r.config.granule, r.config.contpte,
                       r.config.tlb);
    for (std::size_t i = 0; i < b.branches.size(); ++i)
      out << fmt::format("  {}  line {:<4} {}   [{}]\n", branch_name(static_cast<unsigned>(i)), b.lines[i],
                         b.branches[i], outcome_text(x, i));
    std::vector<const ExploreFailure*> printed;
    for (const ExploreFailure& f : x.failures) {
      // The same interleaving (or its beginning) as one already printed:
      // say which, not the steps again.
      const ExploreFailure* same = nullptr;
      if (!verbose)
        for (const ExploreFailure* p : printed)
          if (f.steps.size() <= p->steps.size() &&
              std::equal(f.steps.begin(), f.steps.end(), p->steps.begin(), same_step)) {
            same = p;
            break;
          }
      if (same && same->steps.size() == f.steps.size()) {
        out << fmt::format("  counterexample for {}: the same interleaving as for {} (--verbose prints it)\n",
                           f.rule, same->rule);
        continue;
      }
      if (same) {
        out << fmt::format("  counterexample for {}: the first {} steps of the one for {}, found at step {} "
                           "(--verbose prints it)\n",
                           f.rule, f.steps.size(), same->rule, f.marked >= 0 ? f.marked + 1 : int(f.steps.size()));
        continue;
      }
      out << fmt::format("  counterexample for {} ({} steps, the shortest found):\n", f.rule, f.steps.size());
      print_counterexample(out, b, f, shift, verbose);
      printed.push_back(&f);
    }
    out << fmt::format("  explored {} class{} of interleavings ({} cut as equivalent, {} steps{}{}){}, {:.3f} s, {:.0f}/s\n",
                       x.executions, x.executions == 1 ? "" : "es", x.sleep_blocked, x.steps,
                       x.steps_at_once ? fmt::format(", {} of them at once", x.steps_at_once) : "",
                       x.reader_states ? fmt::format(", {} reader states{}", x.reader_states,
                                                     x.reader_memo_hits
                                                         ? fmt::format(" ({} observations shared by the same writes)",
                                                                       x.reader_memo_hits)
                                                         : "")
                                       : "",
                       x.exhausted ? ", exhausted" : ", BOUNDED: not exhausted (raise --max): no proof", x.seconds,
                       rate(x));
    if (x.failing) out << fmt::format("  {} failing interleaving{}\n", x.failing, x.failing == 1 ? "" : "s");
  }
}

void print_explore_verdict(std::ostream& out, const RunResult& r) {
  std::vector<std::string> rules;
  std::uint64_t executions = 0;
  bool bounded = false;
  for (const BlockExploration& b : r.explorations) {
    executions += b.result.executions;
    bounded = bounded || !b.result.exhausted;
    for (const ExploreFailure& f : b.result.failures)
      if (std::find(rules.begin(), rules.end(), f.rule) == rules.end()) rules.push_back(f.rule);
  }
  const std::size_t n = r.explorations.size();
  const std::string blocks = fmt::format("{} parallel block{}", n, n == 1 ? "" : "s");
  if (!rules.empty()) {
    out << fmt::format("{}: FAILED — {} fail{} in some interleaving of {} (counterexamples above)\n", r.scenario,
                       fmt::join(rules, ", "), rules.size() == 1 ? "s" : "", blocks);
  } else if (r.exit_status() == 1) {  // 3 (bounded) is not a failure of the run
    out << fmt::format("{}: FAILED — {}, but the run {}\n", r.scenario,
                       n ? "no interleaving of " + blocks + " fails" : "no parallel block to explore",
                       r.error ? "hit an error: " + *r.error
                               : fmt::format("has {} failed expect{} or unclaimed findings (see above)",
                                             r.expects_failed, r.expects_failed == 1 ? "" : "s"));
  } else if (n == 0) {
    out << fmt::format("{}: ok — no parallel block to explore; the run passes\n", r.scenario);
  } else if (bounded) {
    out << fmt::format("{}: BOUNDED — no failure in {} interleaving{} of {}, but not all were explored "
                       "(raise --max)\n",
                       r.scenario, executions, executions == 1 ? "" : "s", blocks);
  } else {
    out << fmt::format("{}: ok — every interleaving of {} passes ({} explored up to equivalence)\n", r.scenario,
                       blocks, executions);
  }
}

nlohmann::json explorations_json(const RunResult& r) {
  const unsigned shift = page_shift_of(r);
  nlohmann::json out = nlohmann::json::array();
  for (const BlockExploration& b : r.explorations) {
    const ExploreResult& x = b.result;
    nlohmann::json j{{"line", b.loc.line},
                     {"branches", b.branches},
                     {"executions", x.executions},
                     {"sleep_blocked", x.sleep_blocked},
                     {"classes", x.executions},
                     {"reader_states", x.reader_states},
                     {"reader_memo_hits", x.reader_memo_hits},
                     {"steps", x.steps},
                     {"steps_at_once", x.steps_at_once},
                     {"failing", x.failing},
                     {"exhausted", x.exhausted},
                     {"seconds", x.seconds},
                     {"verdict", x.failed() ? "fail" : "pass"},
                     {"failures", nlohmann::json::array()},
                     {"outcomes", nlohmann::json::array()}};
    for (std::size_t i = 0; i < x.outcomes.size() && i < b.branches.size(); ++i) {
      const BranchOutcomes& o = x.outcomes[i];
      j["outcomes"].push_back({{"branch", std::string(1, branch_name(static_cast<unsigned>(i)))},
                               {"line", b.lines[i]},
                               {"completed", o.completed},
                               {"faulted", o.faulted},
                               {"unmapped", o.unmapped},
                               {"never_finished", o.stuck},
                               {"always_completed", o.always_completed()},
                               {"first_fault", o.first_fault}});
    }
    for (const ExploreFailure& f : x.failures) {
      nlohmann::json steps = nlohmann::json::array();
      for (const StepRecord& s : f.steps)
        steps.push_back({{"branch", std::string(1, branch_name(s.branch))},
                         {"line", b.lines[s.branch]},
                         {"op", step_kind_name(s.kind)},
                         {"va", fmt::format("{:#x}", s.va)},
                         {"before", fmt::format("{:#018x}", s.before.val)},
                         {"after", fmt::format("{:#018x}", s.after.val)},
                         {"before_text", format_pte(s.before, shift)},
                         {"after_text", format_pte(s.after, shift)},
                         {"note", s.note},
                         {"function", std::string(s.where.function)},
                         {"within", std::string(s.where.within)}});
      j["failures"].push_back({{"rule", f.rule},
                               {"verdict", f.verdict},
                               {"va", fmt::format("{:#x}", f.va)},
                               {"marked", f.marked >= 0 ? nlohmann::json(f.marked + 1) : nlohmann::json()},
                               {"steps", steps}});
    }
    out.push_back(std::move(j));
  }
  return out;
}

void print_parallel_runs(std::ostream& out, const RunResult& r) {
  for (const ParallelRun& p : r.parallel_runs) {
    out << fmt::format("  {}:{}: parallel block, seeded interleaving:\n", p.loc.file, p.loc.line);
    for (std::size_t i = 0; i < p.branches.size(); ++i)
      out << fmt::format("    {}  line {:<4} {}   [{}]\n", branch_name(static_cast<unsigned>(i)), p.lines[i],
                         p.branches[i], p.outcomes[i]);
  }
}

nlohmann::json parallel_runs_json(const RunResult& r) {
  nlohmann::json out = nlohmann::json::array();
  for (const ParallelRun& p : r.parallel_runs) {
    nlohmann::json j{{"line", p.loc.line}, {"branches", nlohmann::json::array()}};
    for (std::size_t i = 0; i < p.branches.size(); ++i)
      j["branches"].push_back({{"branch", std::string(1, branch_name(static_cast<unsigned>(i)))},
                               {"line", p.lines[i]},
                               {"text", p.branches[i]},
                               {"outcome", p.outcomes[i]},
                               {"completed", p.outcomes[i] == "completed"}});
    out.push_back(std::move(j));
  }
  return out;
}

}  // namespace contpte
