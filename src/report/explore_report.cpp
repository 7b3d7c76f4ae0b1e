#include "report/explore_report.h"

#include <ostream>

#include <fmt/format.h>

#include "arch/granule.h"
#include "arch/pte_format.h"
#include "explore/step_format.h"

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
  std::string t;
  auto add = [&](std::uint64_t n, std::string_view what) {
    if (!n) return;
    t += fmt::format("{}{} in {}", t.empty() ? "" : ", ", what, n);
  };
  add(o.completed, "completed");
  add(o.faulted, "faulted");
  add(o.unmapped, "UNMAPPED");
  add(o.stuck, "never finished");
  return t + fmt::format(" (first: {})", o.first_fault);
}

}  // namespace

void print_explorations(std::ostream& out, const RunResult& r) {
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
    for (const ExploreFailure& f : x.failures) {
      out << fmt::format("  counterexample for {} ({} steps, the shortest found):\n", f.rule, f.steps.size());
      for (std::size_t i = 0; i < f.steps.size(); ++i) {
        const StepRecord& s = f.steps[i];
        const bool marked = static_cast<int>(i) == f.marked;
        out << fmt::format("  {}{:>4}  {}  line {:<4} {}{}{}\n", marked ? ">>" : "  ", i + 1,
                           branch_name(s.branch), b.lines[s.branch], format_step(s, shift),
                           s.note.empty() ? "" : "  ; " + s.note, marked ? "   <== " + f.mark_note : "");
      }
    }
    out << fmt::format("  explored {} class{} of interleavings ({} cut as equivalent, {} steps{}){}, {:.3f} s, {:.0f}/s\n",
                       x.executions, x.executions == 1 ? "" : "es", x.sleep_blocked, x.steps,
                       x.reader_states ? fmt::format(", {} reader states", x.reader_states) : "",
                       x.exhausted ? ", exhausted" : ", BOUNDED: not exhausted (raise --max): no proof", x.seconds,
                       rate(x));
    if (x.failing) out << fmt::format("  {} failing interleaving{}\n", x.failing, x.failing == 1 ? "" : "s");
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
                     {"steps", x.steps},
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
                         {"note", s.note}});
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
