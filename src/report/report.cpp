#include "report/report.h"

#include "report/explore_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <ostream>
#include <string>
#include <vector>

namespace contpte {

namespace {

nlohmann::json stat_json(double v) {
  // Counters are integers; print them as such (cont_coverage stays a real).
  if (v == static_cast<double>(static_cast<std::int64_t>(v))) return static_cast<std::int64_t>(v);
  return v;
}

}  // namespace

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
      ptes.push_back({{"va", fmt::format("{:#x}", va.val)}, {"value", fmt::format("{:#018x}", value.val)}});
    violations.push_back({{"rule", std::string(rule_name(v.rule))},
                          {"va", fmt::format("{:#x}", v.va.val)},
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
  if (r.isa) run["isa"] = *r.isa;
  if (!r.kernel_fallbacks.empty()) run["kernel_fallbacks"] = r.kernel_fallbacks;
  if (!r.explorations.empty()) run["explore"] = explorations_json(r);
  if (!r.parallel_runs.empty()) run["parallel"] = parallel_runs_json(r);
  return run;
}

nlohmann::json json_report(const std::vector<RunResult>& runs) {
  nlohmann::json out{{"version", 1}, {"runs", nlohmann::json::array()}};
  for (const auto& r : runs) out["runs"].push_back(run_json(r));
  return out;
}

void print_summary(std::ostream& out, const RunResult& r) {
  const char* verdict = r.exit_status() == 0 ? "ok" : "FAILED";
  out << fmt::format("{} [{}: {} {}, tlb {}]: {} — {} statements, expects {} passed, {} failed\n", r.scenario,
                     r.config.name, r.config.granule, r.config.contpte, r.config.tlb, verdict, r.statements,
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
      out << fmt::format("  {}:{}: violation {} at {:#x}\n", r.scenario, v.line, rule_name(v.rule), v.va.val);
  print_parallel_runs(out, r);
  if (!r.kernel_fallbacks.empty())
    out << fmt::format("  kernel fallbacks (generic core-mm versions of helpers the tree lacks): {}\n",
                       fmt::join(r.kernel_fallbacks, ", "));
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

namespace contpte {

namespace {

std::string workload_name(const std::string& path) {
  std::string n = path.substr(path.find_last_of('/') + 1);
  if (n.size() > 4 && n.ends_with(".cpt")) n.resize(n.size() - 4);
  return n;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  return u == 0 ? fmt::format("{:.0f}{}", b, units[u]) : fmt::format("{:.1f}{}", b, units[u]);
}

// Workloads in first-seen order, each with its runs.
std::vector<std::pair<std::string, std::vector<const RunResult*>>> by_workload(
    const std::vector<RunResult>& runs) {
  std::vector<std::pair<std::string, std::vector<const RunResult*>>> out;
  for (const auto& r : runs) {
    auto it = std::find_if(out.begin(), out.end(), [&](const auto& p) { return p.first == r.scenario; });
    if (it == out.end()) {
      out.emplace_back(r.scenario, std::vector<const RunResult*>{});
      it = std::prev(out.end());
    }
    it->second.push_back(&r);
  }
  return out;
}

const RunResult* find_run(const std::vector<const RunResult*>& rs, std::string_view config) {
  for (const RunResult* r : rs)
    if (r->config.name == config) return r;
  return nullptr;
}

// A change against the baseline, in percent ("-" for the baseline itself,
// "n/a" without one or when the baseline's value is 0).
std::string change(const RunResult* base, const RunResult& r, double (*value)(const RunResult&)) {
  if (!base) return "n/a";
  if (base == &r) return "-";
  const double b = value(*base);
  if (b <= 0) return "n/a";
  return fmt::format("{:+.1f}%", 100.0 * (value(r) - b) / b);
}

double est_time(const RunResult& r) { return r.stat("est_time_ns"); }
double est_user(const RunResult& r) { return r.stat("est_user_ns"); }
double est_kernel(const RunResult& r) { return r.stat("est_kernel_ns"); }
double peak_memory(const RunResult& r) { return r.stat("peak_rss_bytes") + r.stat("peak_pgtable_bytes"); }

std::string human_ns(double ns) {
  if (ns >= 1e9) return fmt::format("{:.2f}s", ns / 1e9);
  if (ns >= 1e6) return fmt::format("{:.2f}ms", ns / 1e6);
  if (ns >= 1e3) return fmt::format("{:.1f}us", ns / 1e3);
  return fmt::format("{:.0f}ns", ns);
}

// The second table of a workload: estimated time and its change against
// the baseline (total, user, kernel), peak memory and its change.
void print_estimate(std::ostream& out, const std::vector<const RunResult*>& rs, const RunResult* base) {
  out << fmt::format("  {:<12} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}\n", "estimate", "time", "kernel",
                     "time%", "user%", "kernel%", "peak RSS", "peak PT", "memory%");
  for (const RunResult* r : rs)
    out << fmt::format("  {:<12} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}\n", r->config.name,
                       human_ns(est_time(*r)), human_ns(est_kernel(*r)), change(base, *r, est_time),
                       change(base, *r, est_user), change(base, *r, est_kernel),
                       human_bytes(r->stat("peak_rss_bytes")), human_bytes(r->stat("peak_pgtable_bytes")),
                       change(base, *r, peak_memory));
}

}  // namespace

void print_comparison(std::ostream& out, const std::vector<RunResult>& runs, std::string_view baseline) {
  for (const auto& [scenario, rs] : by_workload(runs)) {
    const RunResult* base = find_run(rs, baseline);
    // A replayed program's accesses are the same under every configuration
    // (unless some were skipped: the notes say so); a scenario's statement
    // without a count touches each page once, so larger pages make fewer.
    // When they differ the header gives each, not one of them.
    const double accesses = rs.front()->stat("accesses");
    if (std::all_of(rs.begin(), rs.end(), [&](const RunResult* r) { return r->stat("accesses") == accesses; })) {
      out << fmt::format("\n{} ({} accesses)\n", workload_name(scenario), static_cast<std::uint64_t>(accesses));
    } else {
      std::vector<std::string> each;
      for (const RunResult* r : rs)
        each.push_back(fmt::format("{} {}", r->config.name, static_cast<std::uint64_t>(r->stat("accesses"))));
      out << fmt::format("\n{} (accesses differ by configuration: {})\n", workload_name(scenario),
                         fmt::join(each, ", "));
    }
    out << fmt::format("  {:<12} {:>8} {:>12} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>6} {:>8} {:>7} {:>8}  {}\n",
                       "config", "TLB MPKI", "walk cycles", "faults", "zeroed", "copied", "folds", "unfolds",
                       "tlbi", "cont%", "RSS", "PT", "speedup", "");
    for (const RunResult* r : rs) {
      const double cycles = r->stat("translation_cycles");
      // Without the baseline in this run (--config) there is no speedup to show.
      const std::string speedup = base && cycles > 0
                                      ? fmt::format("{:.2f}x", base->stat("translation_cycles") / cycles)
                                      : std::string("n/a");
      std::string note;
      if (r->exit_status() != 0) note = r->error ? "ERROR: " + *r->error : "FAILED (see summary)";
      out << fmt::format(
          "  {:<12} {:>8.2f} {:>12} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>5.1f}% {:>8} {:>7} {:>8}  {}\n",
          r->config.name, r->stat("tlb_mpki"), static_cast<std::uint64_t>(r->stat("walk_cycles")),
          static_cast<std::uint64_t>(r->stat("faults")), human_bytes(r->stat("bytes_zeroed")),
          human_bytes(r->stat("bytes_copied")), static_cast<std::uint64_t>(r->stat("folds")),
          static_cast<std::uint64_t>(r->stat("unfolds")),
          static_cast<std::uint64_t>(r->stat("tlbi") + r->stat("caller_tlbi")), 100.0 * r->stat("cont_coverage"),
          human_bytes(r->stat("rss_bytes")), human_bytes(r->stat("pgtable_bytes")), speedup, note);
    }
    print_estimate(out, rs, base);
    for (const RunResult* r : rs)
      if (!r->kernel_fallbacks.empty())
        out << fmt::format("  {}: kernel fallbacks {} (docs/kernel.md \"Fallbacks\": stats may differ from the "
                           "built-in engine's)\n",
                           r->config.name, fmt::join(r->kernel_fallbacks, ", "));
  }
  out << fmt::format("\nspeedup: translation cycles (TLB hits + walks) of {} divided by the configuration's; "
                     "tlbi: flush requests by the engine and its callers; RSS and PT (page-table memory) "
                     "at the end of the run.\n"
                     "est. time: estimated run time (docs/estimate.md) = user (instructions x base CPI + "
                     "translation beyond L1 TLB hits) + kernel (faults, PTE writes, zeroing, copying, TLBI, "
                     "reclaim); changes against {}; memory: peak RSS (every folio, whole, page cache included) "
                     "+ peak page tables.\n",
                     baseline, baseline);
}

std::string comparison_svg(const std::vector<RunResult>& runs, std::string_view baseline) {
  const auto groups = by_workload(runs);
  std::vector<std::string> configs;
  for (const auto& [s, rs] : groups)
    for (const RunResult* r : rs)
      if (std::find(configs.begin(), configs.end(), r->config.name) == configs.end())
        configs.push_back(r->config.name);
  static constexpr const char* kColors[] = {"#777777", "#4e79a7", "#f28e2b", "#59a14f",
                                            "#e15759", "#b07aa1", "#76b7b2", "#9c755f"};
  const double bar = 14, gap = 30, left = 60, top = 60, chart_h = 220;
  const double group_w = bar * double(configs.size()) + gap;
  const double width = left + group_w * double(groups.size()) + 200;
  // Two panels: speedup (higher is better), memory cost (RSS / baseline).
  double max_speed = 1, max_mem = 1;
  for (const auto& [s, rs] : groups) {
    const RunResult* base = find_run(rs, baseline);
    for (const RunResult* r : rs) {
      if (!base) continue;
      const double c = r->stat("translation_cycles");
      if (c > 0) max_speed = std::max(max_speed, base->stat("translation_cycles") / c);
      if (base->stat("rss_bytes") > 0) max_mem = std::max(max_mem, r->stat("rss_bytes") / base->stat("rss_bytes"));
    }
  }
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" font-family=\"sans-serif\" "
      "font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, top * 3 + chart_h * 3 + 120);
  auto panel = [&](double y0, const std::string& title, double max, auto value) {
    svg += fmt::format("<text x=\"{}\" y=\"{:.0f}\" font-size=\"14\" font-weight=\"bold\">{}</text>\n", left,
                       y0 - 25, title);
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.0f}\" x2=\"{:.0f}\" y2=\"{:.0f}\" stroke=\"black\"/>\n", left,
                       y0 + chart_h, width - 180, y0 + chart_h);
    // The baseline's level (1x).
    const double y1 = y0 + chart_h - chart_h / max;
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{:.0f}\" y2=\"{:.1f}\" stroke=\"#999\" "
                       "stroke-dasharray=\"4 3\"/><text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">1x</text>\n",
                       left, y1, width - 180, y1, left - 4, y1 + 4);
    svg += fmt::format("<text x=\"{}\" y=\"{:.0f}\" text-anchor=\"end\">{:.1f}x</text>\n", left - 4, y0 + 4, max);
    for (std::size_t g = 0; g < groups.size(); ++g) {
      const auto& [scenario, rs] = groups[g];
      const RunResult* base = find_run(rs, baseline);
      const double gx = left + gap / 2 + double(g) * group_w;
      for (std::size_t c = 0; c < configs.size(); ++c) {
        const RunResult* r = find_run(rs, configs[c]);
        if (!r || !base) continue;
        const double v = value(*base, *r);
        const double h = chart_h * std::min(v, max) / max;
        svg += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{:.1f}\" fill=\"{}\">"
                           "<title>{} {}: {:.2f}x</title></rect>\n",
                           gx + double(c) * bar, y0 + chart_h - h, bar - 2, h, kColors[c % 8],
                           workload_name(scenario), configs[c], v);
      }
      svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.0f}\" text-anchor=\"middle\">{}</text>\n",
                         gx + bar * double(configs.size()) / 2, y0 + chart_h + 14, workload_name(scenario));
    }
  };
  panel(top, fmt::format("Translation speedup vs {} (higher is better)", baseline), max_speed * 1.1,
        [](const RunResult& b, const RunResult& r) {
          const double c = r.stat("translation_cycles");
          return c > 0 ? b.stat("translation_cycles") / c : 0.0;
        });
  panel(top * 2 + chart_h + 40, fmt::format("Memory cost: RSS relative to {} (lower is better)", baseline),
        max_mem * 1.1, [](const RunResult& b, const RunResult& r) {
          return b.stat("rss_bytes") > 0 ? r.stat("rss_bytes") / b.stat("rss_bytes") : 0.0;
        });
  // Third panel: estimated time change against memory cost, one point per
  // workload and configuration (the baseline sits at 0, 0).
  {
    const double y0 = top * 3 + chart_h * 2 + 80, x0 = left, w = width - 180 - left;
    double tmin = -1, tmax = 1, mmin = -1, mmax = 1;
    struct Point {
      double mem, time;
      std::size_t config;
      std::string label;
    };
    std::vector<Point> points;
    for (const auto& [scenario, rs] : groups) {
      const RunResult* base = find_run(rs, baseline);
      if (!base || est_time(*base) <= 0 || peak_memory(*base) <= 0) continue;
      for (const RunResult* r : rs) {
        const std::size_t c = static_cast<std::size_t>(
            std::find(configs.begin(), configs.end(), r->config.name) - configs.begin());
        Point p{100.0 * (peak_memory(*r) / peak_memory(*base) - 1), 100.0 * (est_time(*r) / est_time(*base) - 1), c,
                workload_name(scenario) + " " + r->config.name};
        tmin = std::min(tmin, p.time), tmax = std::max(tmax, p.time);
        mmin = std::min(mmin, p.mem), mmax = std::max(mmax, p.mem);
        points.push_back(std::move(p));
      }
    }
    auto px = [&](double m) { return x0 + w * (m - mmin) / (mmax - mmin); };
    auto py = [&](double t) { return y0 + chart_h * (tmax - t) / (tmax - tmin); };
    svg += fmt::format("<text x=\"{}\" y=\"{:.0f}\" font-size=\"14\" font-weight=\"bold\">Estimated time change "
                       "against memory cost vs {} (down and left is better)</text>\n",
                       left, y0 - 25, baseline);
    svg += fmt::format("<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"{:.0f}\" height=\"{:.0f}\" fill=\"none\" "
                       "stroke=\"black\"/>\n",
                       x0, y0, w, chart_h);
    svg += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.0f}\" x2=\"{:.1f}\" y2=\"{:.0f}\" stroke=\"#999\" "
                       "stroke-dasharray=\"4 3\"/>\n<line x1=\"{:.0f}\" y1=\"{:.1f}\" x2=\"{:.0f}\" y2=\"{:.1f}\" "
                       "stroke=\"#999\" stroke-dasharray=\"4 3\"/>\n",
                       px(0), y0, px(0), y0 + chart_h, x0, py(0), x0 + w, py(0));
    svg += fmt::format("<text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"end\">{:+.0f}%</text>"
                       "<text x=\"{:.0f}\" y=\"{:.0f}\" text-anchor=\"end\">{:+.0f}%</text>\n",
                       x0 - 4, y0 + 4, tmax, x0 - 4, y0 + chart_h, tmin);
    svg += fmt::format("<text x=\"{:.0f}\" y=\"{:.0f}\">{:+.0f}%</text><text x=\"{:.0f}\" y=\"{:.0f}\" "
                       "text-anchor=\"end\">{:+.0f}%</text>\n<text x=\"{:.0f}\" y=\"{:.0f}\" "
                       "text-anchor=\"middle\">memory cost (peak RSS + peak page tables)</text>\n",
                       x0, y0 + chart_h + 14, mmin, x0 + w, y0 + chart_h + 14, mmax, x0 + w / 2, y0 + chart_h + 28);
    for (const Point& p : points)
      svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4\" fill=\"{}\"><title>{}: time {:+.1f}%, "
                         "memory {:+.1f}%</title></circle>\n",
                         px(p.mem), py(p.time), kColors[p.config % 8], p.label, p.time, p.mem);
  }
  for (std::size_t c = 0; c < configs.size(); ++c)
    svg += fmt::format("<rect x=\"{:.0f}\" y=\"{:.0f}\" width=\"12\" height=\"12\" fill=\"{}\"/>"
                       "<text x=\"{:.0f}\" y=\"{:.0f}\">{}</text>\n",
                       width - 170, top + 20.0 * double(c), kColors[c % 8], width - 152, top + 10 + 20.0 * double(c),
                       configs[c]);
  svg += "</svg>\n";
  return svg;
}

}  // namespace contpte
