#include "report/explore_report.h"

#include <ostream>

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
      out << fmt::format("  {}  line {:<4} {}\n", branch_name(static_cast<unsigned>(i)), b.lines[i], b.branches[i]);
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
    out << fmt::format("  explored {} interleaving{} ({} cut as equivalent, {} steps){}, {:.3f} s, {:.0f}/s\n",
                       x.executions, x.executions == 1 ? "" : "s", x.sleep_blocked, x.steps,
                       x.exhausted ? ", exhausted" : ", BOUNDED: not exhausted (raise --max)", x.seconds, rate(x));
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
                     {"steps", x.steps},
                     {"failing", x.failing},
                     {"exhausted", x.exhausted},
                     {"seconds", x.seconds},
                     {"verdict", x.failed() ? "fail" : "pass"},
                     {"failures", nlohmann::json::array()}};
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

}  // namespace contpte
