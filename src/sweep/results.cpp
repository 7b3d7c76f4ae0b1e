#include "sweep/results.h"

#include <fmt/format.h>

#include <fstream>
#include <set>
#include <sstream>

namespace contpte::sweep {

nlohmann::json results_header(const Plan& plan, Shard shard, std::size_t shard_runs) {
  return {{"contpte_sweep", kResultsFormat},
          {"version", plan.version},
          {"spec", plan.to_json()},
          {"planned", plan.size()},
          {"shard", {{"index", shard.index}, {"count", shard.count}, {"runs", shard_runs}}}};
}

namespace {

void check_header(const nlohmann::json& h, const std::string& where) {
  const auto bad = [&](const std::string& what) { throw SweepError(fmt::format("{}:1: error: {}", where, what)); };
  if (!h.is_object() || !h.contains("contpte_sweep")) bad("not a contpte sweep results file (no header line)");
  if (h["contpte_sweep"] != kResultsFormat)
    bad(fmt::format("results format {} is not the one this build reads ({})", h["contpte_sweep"].dump(), kResultsFormat));
  if (!h.contains("version") || !h["version"].is_string() || !h.contains("spec") || !h.contains("planned"))
    bad("the header lacks version, spec or planned");
}

}  // namespace

ResultsFile read_results_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SweepError(fmt::format("{}: error: cannot read the results file", path));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  ResultsFile f;
  f.path = path;
  std::set<std::string> planned;
  Plan plan;
  std::size_t pos = 0;
  unsigned line = 0;
  while (pos < text.size()) {
    ++line;
    const std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      // Killed mid-write: the run is redone (sweep) or missing (report).
      f.partial_tail = true;
      f.partial_line = line;
      break;
    }
    const std::string_view one(text.data() + pos, nl - pos);
    pos = nl + 1;
    const auto bad = [&](const std::string& what) {
      throw SweepError(fmt::format("{}:{}: error: {}", path, line, what));
    };
    nlohmann::json v;
    try {
      v = nlohmann::json::parse(one);
    } catch (const nlohmann::json::parse_error&) {
      bad(line == 1 ? "not a contpte sweep results file (the first line is not JSON)" : "not a JSON line");
    }
    if (line == 1) {
      check_header(v, path);
      f.header = std::move(v);
      plan = Plan::from_json(f.header["spec"], f.header["version"].get<std::string>(), path + ":1");
      for (std::size_t i = 0; i < plan.size(); ++i) planned.insert(plan.key(i).id());
      f.complete_bytes = pos;
      continue;
    }
    if (!v.is_object() || !v.contains("key") || !v.contains("stats") || !v["stats"].is_object() ||
        !v.contains("exit") || !v["exit"].is_number_integer())
      bad("not a run line (expected key, stats and exit)");
    std::string id;
    try {
      const auto& k = v["key"];
      RunKey key{k.at("input"), k.at("input_sha256"), k.at("config"), k.at("core"),
                 k.at("core_sha256").is_null() ? std::string{} : k.at("core_sha256").get<std::string>(),
                 k.at("seed"), k.at("scale"), k.at("version")};
      id = key.id();
    } catch (const nlohmann::json::exception& e) {
      bad(fmt::format("malformed key ({})", e.what()));
    }
    if (!planned.count(id)) bad("a run that is not in this file's sweep (its key is outside the header's spec)");
    f.runs.push_back({line, std::move(v), std::move(id)});
    f.complete_bytes = pos;
  }
  return f;
}

nlohmann::json comparable(const nlohmann::json& run_line) {
  nlohmann::json c = run_line;
  c.erase("wall_s");
  return c;
}

std::vector<nlohmann::json> flat_records(const ResultsFile& f) {
  std::vector<nlohmann::json> out;
  for (const auto& r : f.runs) {
    nlohmann::json rec = nlohmann::json::object();
    for (const auto& [k, v] : r.value["key"].items()) rec[k] = v;
    for (const auto& [k, v] : r.value["stats"].items()) rec[k] = v;
    rec["exit"] = r.value["exit"];
    rec["wall_s"] = r.value.value("wall_s", 0.0);
    if (r.value.contains("expects")) {
      rec["expects_passed"] = r.value["expects"].value("passed", 0);
      rec["expects_failed"] = r.value["expects"].value("failed", 0);
    }
    if (!rec.contains("violations"))  // the stat of that name, when the run has it
      rec["violations"] = r.value.contains("violations") ? r.value["violations"].size() : 0;
    out.push_back(std::move(rec));
  }
  return out;
}

}  // namespace contpte::sweep
