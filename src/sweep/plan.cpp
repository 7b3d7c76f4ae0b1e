#include "sweep/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include "hw/tlb.h"
#include "sweep/sha256.h"
#include "scenario/configs.h"
#include "trace/trace.h"
#include "arch/names.h"

namespace fs = std::filesystem;

namespace contpte::sweep {

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& what) {
  throw SweepError(fmt::format("{}: error: {}", where, what));
}

// nlohmann reports a syntax error's byte offset; users need line and column.
std::string line_col(std::string_view text, std::size_t byte) {
  unsigned line = 1, col = 1;
  for (std::size_t i = 0; i < std::min(byte, text.size()); ++i) {
    if (text[i] == '\n') ++line, col = 1;
    else ++col;
  }
  return fmt::format("{}:{}", line, col);
}

std::vector<std::string> string_list(const nlohmann::json& v, const std::string& where, const char* field) {
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) fail(where, fmt::format("field '{}': expected a string or a list of strings", field));
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) fail(where, fmt::format("field '{}': expected a list of strings, found {}", field, e.dump()));
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::optional<std::uint64_t> to_u64(std::string_view s) {
  std::uint64_t v = 0;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Paths relative to the spec file are taken from its folder; the key names
// the file as reached from the working directory.
std::string rebase(const fs::path& base, const std::string& p) {
  if (base.empty() || fs::path(p).is_absolute()) return p;
  return (base / p).lexically_normal().string();
}

bool is_trace(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return false;
  try {
    TraceReader r(in, p.string());
    return true;
  } catch (const TraceError&) {
    return false;
  }
}

PlanInput make_input(std::string name, fs::path path, InputKind kind) {
  PlanInput in{std::move(name), std::move(path), kind, {}, 0};
  try {
    in.sha256 = sha256_file(in.path);
  } catch (const std::runtime_error& e) {
    throw SweepError(e.what());
  }
  std::error_code ec;
  in.bytes = fs::file_size(in.path, ec);
  return in;
}

void add_dir(const std::string& name, std::vector<PlanInput>& out) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(name, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file()) files.push_back(it->path());
  if (ec) fail(name, "cannot list the directory: " + ec.message());
  std::sort(files.begin(), files.end());
  std::size_t found = 0;
  for (const auto& f : files) {
    if (f.extension() == ".cpt")
      out.push_back(make_input(f.string(), f, InputKind::Scenario));
    else if (is_trace(f))
      out.push_back(make_input(f.string(), f, InputKind::Trace));
    else
      continue;
    ++found;
  }
  if (!found) fail(name, "the directory holds no scenario (.cpt) or trace file");
}

void add_input(const std::string& name, const fs::path& builtin_dir, std::vector<PlanInput>& out) {
  if (name == "builtin") {
    std::vector<fs::path> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(builtin_dir, ec))
      if (e.is_regular_file() && e.path().extension() == ".cpt") files.push_back(e.path());
    if (files.empty())
      fail("contpte sweep", fmt::format("the built-in workloads were not found (looked in {})", builtin_dir.string()));
    std::sort(files.begin(), files.end());
    for (const auto& f : files) out.push_back(make_input("builtin:" + f.stem().string(), f, InputKind::Scenario));
    return;
  }
  std::error_code ec;
  const auto st = fs::status(name, ec);
  if (ec || !fs::exists(st)) fail(name, "no such file or directory");
  if (fs::is_directory(st)) return add_dir(name, out);
  if (fs::path(name).extension() == ".cpt") return out.push_back(make_input(name, name, InputKind::Scenario));
  std::ifstream in(name, std::ios::binary);
  try {
    TraceReader r(in, name);
  } catch (const TraceError& e) {
    fail(name, fmt::format("neither a scenario (.cpt) nor a contpte trace ({})", e.what()));
  }
  out.push_back(make_input(name, name, InputKind::Trace));
}

PlanCore make_core(const std::string& name) {
  const auto& presets = tlb_presets();
  if (name == "default" || std::any_of(presets.begin(), presets.end(), [&](const auto& p) { return p.name == name; }))
    return {name, {}};
  if (name.find_first_of(" \t\n#") != std::string::npos)
    fail(name, "a core file's path may not contain blanks or '#' (it becomes a scenario's `tlb` line)");
  std::error_code ec;
  if (!fs::is_regular_file(name, ec)) {
    fail(name, fmt::format("neither a TLB preset (default, {}) nor a core JSON file",
                           fmt::join(names_in(presets, &TlbPreset::name), ", ")));
  }
  try {
    (void)resolve_tlb_config(name);
    return {name, sha256_file(name)};
  } catch (const std::runtime_error& e) {
    throw SweepError(fmt::format("{}: error: {}", name, e.what()));
  }
}

}  // namespace

std::vector<std::uint64_t> parse_seeds(const std::string& text, const std::string& what) {
  constexpr std::uint64_t kMaxSeeds = 1'000'000;  // a typo guard: each seed is a run per combination
  const auto dots = text.find("..");
  std::optional<std::uint64_t> a = 1, b;
  if (dots == std::string::npos) {
    b = to_u64(text);
    if (b && *b == 0) fail(what, "seeds: N must be at least 1 (N means seeds 1..N)");
  } else {
    a = to_u64(std::string_view(text).substr(0, dots));
    b = to_u64(std::string_view(text).substr(dots + 2));
  }
  if (!a || !b) fail(what, fmt::format("seeds: expected N or A..B, found '{}'", text));
  if (*a > *b) fail(what, fmt::format("seeds: empty range '{}' (A..B needs A <= B)", text));
  if (*b - *a >= kMaxSeeds) fail(what, fmt::format("seeds: '{}' is more than {} seeds", text, kMaxSeeds));
  std::vector<std::uint64_t> out(*b - *a + 1);
  std::iota(out.begin(), out.end(), *a);
  return out;
}

SweepRequest read_spec_file(const fs::path& path) {
  const std::string where = path.string();
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(where, "cannot read the spec file");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    const std::string msg = e.what();
    throw SweepError(fmt::format("{}:{}: error: not valid JSON: {}", where, line_col(text, e.byte ? e.byte - 1 : 0),
                                 msg.substr(msg.find(": ") == std::string::npos ? 0 : msg.rfind(": ") + 2)));
  }
  if (!j.is_object()) fail(where, "a spec is a JSON object ({\"inputs\": [...], ...})");
  SweepRequest req;
  req.input_base = req.core_base = path.parent_path();
  for (const auto& [k, v] : j.items()) {
    if (k == "inputs") {
      req.inputs = string_list(v, where, "inputs");
    } else if (k == "configs") {
      req.configs = string_list(v, where, "configs");
    } else if (k == "cores") {
      req.cores = string_list(v, where, "cores");
    } else if (k == "seeds") {
      if (v.is_number_unsigned())
        req.seeds = std::to_string(v.get<std::uint64_t>());
      else if (v.is_string())
        req.seeds = v.get<std::string>();
      else
        fail(where, "field 'seeds': expected N (seeds 1..N) or \"A..B\"");
    } else if (k == "scale") {
      if (!v.is_number_unsigned() || v.get<std::uint64_t>() < 1 || v.get<std::uint64_t>() > 1000)
        fail(where, "field 'scale': expected a whole number from 1 to 1000");
      req.scale = v.get<unsigned>();
    } else {
      fail(where, fmt::format("unknown field '{}'; expected inputs, configs, cores, seeds, scale", k));
    }
  }
  return req;
}

nlohmann::json RunKey::to_json() const {
  return {{"input", input},
          {"input_sha256", input_sha256},
          {"config", config},
          {"core", core},
          {"core_sha256", core_sha256.empty() ? nlohmann::json(nullptr) : nlohmann::json(core_sha256)},
          {"seed", seed},
          {"scale", scale},
          {"version", version}};
}

std::string RunKey::id() const { return to_json().dump(); }

RunKey Plan::key(std::size_t i) const {
  const std::size_t s = seeds.size(), k = cores.size(), c = configs.size();
  const PlanInput& in = inputs[i / (s * k * c)];
  const PlanCore& core = cores[(i / s) % k];
  return {in.name, in.sha256, configs[(i / (s * k)) % c], core.name, core.sha256, seeds[i % s], scale, version};
}

nlohmann::json Plan::to_json() const {
  nlohmann::json ins = nlohmann::json::array(), cs = nlohmann::json::array();
  for (const auto& in : inputs)
    ins.push_back({{"name", in.name},
                   {"sha256", in.sha256},
                   {"kind", in.kind == InputKind::Trace ? "trace" : "scenario"}});
  for (const auto& c : cores)
    cs.push_back({{"name", c.name}, {"sha256", c.sha256.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.sha256)}});
  return {{"inputs", ins}, {"configs", configs}, {"cores", cs}, {"seeds", seeds}, {"scale", scale}};
}

Plan Plan::from_json(const nlohmann::json& spec, const std::string& version, const std::string& where) {
  Plan p;
  p.version = version;
  try {
    for (const auto& in : spec.at("inputs"))
      p.inputs.push_back({in.at("name").get<std::string>(), {},
                          in.at("kind").get<std::string>() == "trace" ? InputKind::Trace : InputKind::Scenario,
                          in.at("sha256").get<std::string>(), 0});
    p.configs = spec.at("configs").get<std::vector<std::string>>();
    for (const auto& c : spec.at("cores"))
      p.cores.push_back({c.at("name").get<std::string>(),
                         c.at("sha256").is_null() ? std::string{} : c.at("sha256").get<std::string>()});
    p.seeds = spec.at("seeds").get<std::vector<std::uint64_t>>();
    p.scale = spec.at("scale").get<unsigned>();
  } catch (const nlohmann::json::exception& e) {
    fail(where, fmt::format("not a sweep spec ({})", e.what()));
  }
  return p;
}

Plan resolve_plan(const SweepRequest& req, const fs::path& builtin_dir, const std::string& version) {
  Plan p;
  p.version = version;
  p.scale = req.scale;
  if (req.inputs.empty()) fail("contpte sweep", "no inputs: give --inputs FILE|DIR|builtin or a spec file with \"inputs\"");
  for (const auto& name : req.inputs) add_input(name == "builtin" ? name : rebase(req.input_base, name), builtin_dir, p.inputs);
  // An input reached twice (a file and its folder) runs once.
  std::set<std::string> seen;
  std::erase_if(p.inputs, [&](const PlanInput& in) { return !seen.insert(in.name).second; });

  if (req.configs.empty())
    for (const auto& c : kBuiltinConfigs) p.configs.emplace_back(c.name);
  for (const auto& name : req.configs) {
    if (!find_config(name)) {
      fail("contpte sweep", fmt::format("unknown configuration '{}'; expected one of: {}", name, config_names()));
    }
    if (std::find(p.configs.begin(), p.configs.end(), name) == p.configs.end()) p.configs.push_back(name);
  }
  for (const auto& name : req.cores.empty() ? std::vector<std::string>{"default"} : req.cores) {
    const auto& presets = tlb_presets();
    const bool preset =
        name == "default" || std::any_of(presets.begin(), presets.end(), [&](const auto& p) { return p.name == name; });
    PlanCore c = make_core(preset ? name : rebase(req.core_base, name));
    if (std::none_of(p.cores.begin(), p.cores.end(), [&](const PlanCore& o) { return o.name == c.name; }))
      p.cores.push_back(std::move(c));
  }
  p.seeds = parse_seeds(req.seeds, "contpte sweep");
  return p;
}

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  const std::uint64_t i = to_u64(std::string_view(text).substr(0, slash)).value_or(~0ull);
  const std::uint64_t n =
      slash == std::string::npos ? 0 : to_u64(std::string_view(text).substr(slash + 1)).value_or(0);
  if (i == ~0ull || n == 0 || n > 1'000'000)
    fail("contpte sweep", fmt::format("--shard: expected I/N (0 <= I < N), found '{}'", text));
  if (i >= n) fail("contpte sweep", fmt::format("--shard {}: the index must be below the count (shards are 0..{})", text, n - 1));
  return {static_cast<unsigned>(i), static_cast<unsigned>(n)};
}

std::optional<Shard> shard_from_slurm(const std::function<const char*(const char*)>& getenv) {
  const char* id = getenv("SLURM_ARRAY_TASK_ID");
  if (!id) return std::nullopt;
  const auto num = [&](const char* var) -> std::optional<std::uint64_t> {
    const char* v = getenv(var);
    return v ? to_u64(v) : std::nullopt;
  };
  const auto task = to_u64(id), min = num("SLURM_ARRAY_TASK_MIN"), max = num("SLURM_ARRAY_TASK_MAX"),
             count = num("SLURM_ARRAY_TASK_COUNT");
  if (!task || !min || !count || *count == 0 || *task < *min)
    fail("contpte sweep", "SLURM_ARRAY_TASK_ID is set, but SLURM_ARRAY_TASK_MIN / SLURM_ARRAY_TASK_COUNT are missing "
                          "or inconsistent; give --shard I/N");
  const char* step = getenv("SLURM_ARRAY_TASK_STEP");
  if ((max && *max - *min + 1 != *count) || (step && std::string_view(step) != "1"))
    fail("contpte sweep", fmt::format("the Slurm job array is not contiguous (tasks {}..{}{}, {} of them): submit "
                                      "--array=0-<N-1>, or give --shard I/N",
                                      *min, max ? std::to_string(*max) : "?", step ? fmt::format(" step {}", step) : "",
                                      *count));
  if (*task - *min >= *count) fail("contpte sweep", "SLURM_ARRAY_TASK_ID lies outside the array's range");
  return Shard{static_cast<unsigned>(*task - *min), static_cast<unsigned>(*count)};
}

std::vector<std::size_t> shard_runs(const Plan& plan, Shard s) {
  std::vector<std::size_t> order(plan.size());
  std::iota(order.begin(), order.end(), 0);
  const auto cost = [&](std::size_t i) { return std::max<std::uint64_t>(1, plan.inputs[plan.input_of(i)].bytes) * plan.scale; };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cost(a) > cost(b); });
  std::vector<std::uint64_t> load(s.count, 0);
  std::vector<std::size_t> mine;
  for (const std::size_t i : order) {
    const auto least = static_cast<unsigned>(std::min_element(load.begin(), load.end()) - load.begin());
    load[least] += cost(i);
    if (least == s.index) mine.push_back(i);
  }
  return mine;
}

}  // namespace contpte::sweep
