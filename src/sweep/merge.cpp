#include "sweep/merge.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ostream>

#include "sweep/results.h"

namespace contpte::sweep {

namespace {

std::string compact(double v) {
  const double a = std::fabs(v);
  if (a >= 1e9) return fmt::format("{:.3g}G", v / 1e9);
  if (a >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (a >= 1e4) return fmt::format("{:.3g}k", v / 1e3);
  if (v == std::floor(v)) return fmt::format("{:.0f}", v);
  return fmt::format("{:.3g}", v);
}

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

// One (input, configuration, core) and its runs over seeds, in plan order.
struct Group {
  std::string input, config, core;
  std::vector<const nlohmann::json*> runs;
};

std::vector<Group> groups(const Merged& m) {
  std::vector<Group> out;
  const std::size_t per = m.plan.seeds.size();
  for (std::size_t i = 0; i < m.plan.size(); i += per) {
    const RunKey k = m.plan.key(i);
    Group g{k.input, k.config, k.core, {}};
    for (std::size_t s = 0; s < per; ++s)
      if (auto it = m.runs.find(m.plan.key(i + s).id()); it != m.runs.end()) g.runs.push_back(&it->second);
    out.push_back(std::move(g));
  }
  return out;
}

Spread stat_spread(const Group& g, const std::string& name) {
  std::vector<double> v;
  for (const auto* r : g.runs)
    if (const auto& s = (*r)["stats"]; s.contains(name) && s[name].is_number()) v.push_back(s[name].get<double>());
  return spread(std::move(v));
}

}  // namespace

const std::vector<std::string>& main_figures() {
  static const std::vector<std::string> names{"tlb_mpki", "translation_cycles", "faults", "cont_coverage",
                                              "rss_bytes"};
  return names;
}

Spread spread(std::vector<double> v) {
  Spread s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return s;
}

Merged merge_results(const std::vector<std::string>& files) {
  if (files.empty()) throw SweepError("contpte sweep report: error: give at least one results file");
  Merged m;
  std::map<std::string, std::string> where;  // key id -> FILE:LINE of the line kept
  std::string first_file;
  for (const auto& path : files) {
    ResultsFile f = read_results_file(path);
    if (f.header.is_null())
      throw SweepError(fmt::format("{}:1: error: no complete header line (not a results file, or written by a "
                                   "process killed at once)",
                                   path));
    if (m.header.is_null()) {
      m.header = f.header;
      m.plan = Plan::from_json(f.header["spec"], f.header["version"].get<std::string>(), path + ":1");
      first_file = path;
    } else {
      for (const char* field : {"version", "spec", "planned"})
        if (f.header[field] != m.header[field])
          throw SweepError(fmt::format("{}:1: error: its header's {} differs from {}'s: not shards of one sweep", path,
                                       field, first_file));
    }
    if (f.partial_tail)
      m.notes.push_back(fmt::format("{}:{}: a partly written last line (its run counts as missing)", path, f.partial_line));
    for (auto& r : f.runs) {
      const std::string at = fmt::format("{}:{}", path, r.line);
      auto [it, fresh] = m.runs.emplace(r.id, r.value);
      if (fresh) {
        where[r.id] = at;
        continue;
      }
      if (comparable(it->second) != comparable(r.value)) {
        const auto& k = r.value["key"];
        m.conflicts.push_back({RunKey{k["input"], k["input_sha256"], k["config"], k["core"],
                                      k["core_sha256"].is_null() ? "" : k["core_sha256"].get<std::string>(),
                                      k["seed"], k["scale"], k["version"]},
                               where[r.id], at});
      }
    }
  }
  for (std::size_t i = 0; i < m.plan.size(); ++i)
    if (!m.runs.count(m.plan.key(i).id())) m.missing.push_back(m.plan.key(i));
  return m;
}

nlohmann::json merged_json(const Merged& m) {
  nlohmann::json missing = nlohmann::json::array(), conflicts = nlohmann::json::array(), gs = nlohmann::json::array();
  for (const auto& k : m.missing) missing.push_back(k.to_json());
  for (const auto& c : m.conflicts) conflicts.push_back({{"key", c.key.to_json()}, {"lines", {c.first, c.second}}});
  for (const auto& g : groups(m)) {
    nlohmann::json stats = nlohmann::json::object();
    std::vector<std::string> names;
    for (const auto* r : g.runs)
      for (const auto& [k, v] : (*r)["stats"].items())
        if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
    for (const auto& n : names) {
      const Spread s = stat_spread(g, n);
      stats[n] = {{"median", s.median}, {"min", s.min}, {"max", s.max}};
    }
    std::size_t failed = 0;
    for (const auto* r : g.runs) failed += (*r)["exit"] != 0;
    gs.push_back({{"input", g.input}, {"config", g.config}, {"core", g.core}, {"seeds", g.runs.size()},
                  {"failed_runs", failed}, {"stats", stats}});
  }
  return {{"complete", m.complete()}, {"version", m.header["version"]}, {"planned", m.plan.size()},
          {"present", m.runs.size()}, {"missing", missing}, {"conflicts", conflicts}, {"groups", gs}};
}

void print_merged(std::ostream& out, const Merged& m) {
  for (const auto& n : m.notes) out << "note: " << n << '\n';
  out << fmt::format("{} of {} planned runs present; {} missing, {} conflicting duplicates\n", m.runs.size(),
                     m.plan.size(), m.missing.size(), m.conflicts.size());
  constexpr std::size_t kListed = 20;
  for (std::size_t i = 0; i < std::min(kListed, m.missing.size()); ++i) {
    const RunKey& k = m.missing[i];
    out << fmt::format("  missing: {} {} {} seed {}\n", k.input, k.config, k.core, k.seed);
  }
  if (m.missing.size() > kListed) out << fmt::format("  ... and {} more missing\n", m.missing.size() - kListed);
  for (const auto& c : m.conflicts)
    out << fmt::format("  conflict: {} {} {} seed {}: {} and {} differ\n", c.key.input, c.key.config, c.key.core,
                       c.key.seed, c.first, c.second);
  const auto gs = groups(m);
  std::size_t wi = 5, wc = 6, wk = 4;
  for (const auto& g : gs) wi = std::max(wi, g.input.size()), wc = std::max(wc, g.config.size()), wk = std::max(wk, g.core.size());
  out << fmt::format("\nmedian [min-max] over seeds\n{:<{}}  {:<{}}  {:<{}}  {:>5}", "input", wi, "config", wc, "core",
                     wk, "seeds");
  for (const auto& f : main_figures()) out << fmt::format("  {:>22}", f);
  out << '\n';
  for (const auto& g : gs) {
    std::size_t failed = 0;
    for (const auto* r : g.runs) failed += (*r)["exit"] != 0;
    out << fmt::format("{:<{}}  {:<{}}  {:<{}}  {:>5}", g.input, wi, g.config, wc, g.core, wk, g.runs.size());
    for (const auto& f : main_figures()) {
      const Spread s = stat_spread(g, f);
      out << fmt::format("  {:>22}", s.n == 0 ? std::string("-")
                                              : fmt::format("{} [{}-{}]", compact(s.median), compact(s.min), compact(s.max)));
    }
    if (failed) out << fmt::format("  ({} run(s) exited non-zero)", failed);
    out << '\n';
  }
}

std::string merged_svg(const Merged& m) {
  const auto gs = groups(m);
  // Panels: one per input, bars per (configuration, core) group.
  std::vector<std::pair<std::string, std::vector<const Group*>>> panels;
  for (const auto& g : gs) {
    if (panels.empty() || panels.back().first != g.input) panels.push_back({g.input, {}});
    panels.back().second.push_back(&g);
  }
  const int bar = 18, gap = 6, panel_h = 170, top = 40, left = 60;
  std::size_t most = 1;
  for (const auto& p : panels) most = std::max(most, p.second.size());
  const int width = left + static_cast<int>(most) * (bar + gap) + 220;
  const int height = top + static_cast<int>(panels.size()) * panel_h + 20;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
      "font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"10\" y=\"20\" font-size=\"14\">translation cycles: median over seeds, whisker min-max</text>\n",
      width, height);
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const int y0 = top + static_cast<int>(p) * panel_h;
    const int base = y0 + panel_h - 50;
    double vmax = 0;
    for (const auto* g : panels[p].second) vmax = std::max(vmax, stat_spread(*g, "translation_cycles").max);
    if (vmax <= 0) vmax = 1;
    const double scale = (panel_h - 70) / vmax;
    s += fmt::format("<text x=\"10\" y=\"{}\" font-size=\"12\">{}</text>\n", y0 + 12, xml_escape(panels[p].first));
    s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n", left - 4, base,
                     left + static_cast<int>(panels[p].second.size()) * (bar + gap), base);
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", left - 6, base - (panel_h - 70) + 4,
                     compact(vmax));
    for (std::size_t b = 0; b < panels[p].second.size(); ++b) {
      const Group& g = *panels[p].second[b];
      const Spread sp = stat_spread(g, "translation_cycles");
      const int x = left + static_cast<int>(b) * (bar + gap);
      const int h = static_cast<int>(sp.median * scale);
      s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#4a7ab5\"><title>{} {}: median {} "
                       "[{}-{}], {} seeds</title></rect>\n",
                       x, base - h, bar, h, xml_escape(g.config), xml_escape(g.core), compact(sp.median),
                       compact(sp.min), compact(sp.max), sp.n);
      const int ylo = base - static_cast<int>(sp.min * scale), yhi = base - static_cast<int>(sp.max * scale);
      s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"black\"/>\n", x + bar / 2, ylo, yhi);
      s += fmt::format("<text transform=\"translate({},{}) rotate(45)\">{}{}{}</text>\n", x + 4, base + 10,
                       xml_escape(g.config), m.plan.cores.size() > 1 ? "/" : "",
                       m.plan.cores.size() > 1 ? xml_escape(g.core) : std::string());
    }
  }
  return s + "</svg>\n";
}

}  // namespace contpte::sweep
