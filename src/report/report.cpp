#include "report/report.h"

#include <fmt/format.h>

#include <ostream>

namespace contpte {

namespace {

nlohmann::json stat_json(double v) {
  // Counters are integers; print them as such (cont_coverage stays a real).
  if (v == static_cast<double>(static_cast<std::int64_t>(v))) return static_cast<std::int64_t>(v);
  return v;
}

nlohmann::json run_json(const RunResult& r) {
  nlohmann::json stats = nlohmann::json::object();
  for (const auto& [k, v] : r.stats) stats[k] = stat_json(v);
  // cont_coverage is a fraction: keep it a real number even when 0 or 1.
  for (const auto& [k, v] : r.stats)
    if (k == "cont_coverage") stats[k] = v;
  nlohmann::json violations = nlohmann::json::array();
  for (const auto& v : r.violations) {
    nlohmann::json ptes = nlohmann::json::array();
    for (const auto& [va, value] : v.ptes)
      ptes.push_back({{"va", fmt::format("{:#x}", va)}, {"value", fmt::format("{:#018x}", value)}});
    violations.push_back({{"rule", v.rule},
                          {"va", fmt::format("{:#x}", v.va)},
                          {"ptes", ptes},
                          {"line", v.line},
                          {"step", v.step},
                          {"claimed", v.claimed}});
  }
  nlohmann::json failures = nlohmann::json::array();
  for (const auto& f : r.failures) failures.push_back({{"line", f.loc.line}, {"message", f.message}});
  nlohmann::json run{
      {"scenario", r.scenario},
      {"config",
       {{"name", r.config.name},
        {"granule", r.config.granule},
        {"contpte", r.config.contpte},
        {"mthp", r.config.mthp},
        {"tlb", r.config.tlb}}},
      {"stats", stats},
      {"statements", r.statements},
      {"expects", {{"passed", r.expects_passed}, {"failed", r.expects_failed}}},
      {"expect_failures", failures},
      {"violations", violations},
      {"exit_status", r.exit_status()},
  };
  if (r.error) run["error"] = *r.error;
  return run;
}

}  // namespace

nlohmann::json json_report(const std::vector<RunResult>& runs) {
  nlohmann::json out{{"version", 1}, {"runs", nlohmann::json::array()}};
  for (const auto& r : runs) out["runs"].push_back(run_json(r));
  return out;
}

void print_summary(std::ostream& out, const RunResult& r) {
  const char* verdict = r.exit_status() == 0 ? "ok" : "FAILED";
  out << fmt::format("{} [{}: {} {}]: {} — {} statements, expects {} passed, {} failed\n", r.scenario,
                     r.config.name, r.config.granule, r.config.contpte, verdict, r.statements,
                     r.expects_passed, r.expects_failed);
  std::string counters;
  for (const auto& [k, v] : r.stats) {
    if (k == "cont_coverage")
      counters += fmt::format(" {}={:.3f}", k, v);
    else if (v != 0 || k == "folds" || k == "unfolds" || k == "tlbi")
      counters += fmt::format(" {}={}", k, static_cast<std::int64_t>(v));
  }
  out << "  " << counters.substr(counters.empty() ? 0 : 1) << '\n';
  for (const auto& f : r.failures)
    out << fmt::format("  {}:{}: expect failed: {}\n", f.loc.file, f.loc.line, f.message);
  for (const auto& v : r.violations)
    if (!v.claimed)
      out << fmt::format("  {}:{}: violation {} at {:#x}\n", r.scenario, v.line, v.rule, v.va);
  if (r.error) out << "  error: " << *r.error << '\n';
}

void print_totals(std::ostream& out, const std::vector<RunResult>& runs) {
  unsigned ok = 0, passed = 0, failed = 0;
  for (const auto& r : runs) {
    ok += r.exit_status() == 0;
    passed += r.expects_passed;
    failed += r.expects_failed;
  }
  out << fmt::format("{} of {} runs ok; expects {} passed, {} failed\n", ok, runs.size(), passed, failed);
}

}  // namespace contpte
