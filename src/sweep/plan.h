// sweep/plan.h — what a sweep runs: the cross product of inputs ×
// configurations × cores × seeds, each run named by its key.
//
// Owns: the spec (a JSON file and/or flags), its resolution into a Plan
// (inputs found and hashed, names checked: every bad combination is a
// SweepError before anything runs), the run keys, the deterministic split
// into shards (`--shard I/N`, or a Slurm job array's environment).
// Must not know: how runs execute or how results are stored.
//
// A run is a pure function of its key: the same key gives the same stats
// whatever the thread, shard or order it ran in.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace contpte::sweep {

// Bad input (spec, flag, input file, core, results file): what() is the
// whole message, `WHERE: error: WHAT`; the CLI prints it and exits 2.
class SweepError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the user asked for: a spec file's fields, then flags over them.
struct SweepRequest {
  std::vector<std::string> inputs;   // scenario/trace files, DIRs, `builtin`
  std::vector<std::string> configs;  // built-in configuration names; empty: all
  std::vector<std::string> cores;    // TLB preset names or core JSON files; empty: `default`
  std::string seeds = "1";           // "N" (1..N) or "A..B" (inclusive)
  unsigned scale = 1;
  // Relative paths in inputs/cores are taken from here (the spec file's
  // folder for its own fields, the working directory for flags).
  std::filesystem::path input_base, core_base;
};

// Reads a spec file: {"inputs": [...], "configs": [...], "cores": [...],
// "seeds": N | "A..B" | [N, ...], "scale": N}; every field optional,
// unknown fields rejected. Throws SweepError (`FILE:LINE:COL: error:` for
// JSON syntax, `FILE: error: field 'X': ...` for a bad value).
SweepRequest read_spec_file(const std::filesystem::path& path);

// "N" -> 1..N, "A..B" -> A..B; throws SweepError naming `what`.
std::vector<std::uint64_t> parse_seeds(const std::string& text, const std::string& what);

enum class InputKind { Scenario, Trace };

struct PlanInput {
  std::string name;              // as keys name it: a path, or `builtin:NAME`
  std::filesystem::path path;    // where it is read from
  InputKind kind = InputKind::Scenario;
  std::string sha256;
  std::uint64_t bytes = 0;       // the cost estimate's base
};

struct PlanCore {
  std::string name;    // a preset name or the JSON file's path as given
  std::string sha256;  // the JSON file's digest; empty for a preset
};

// One run's identity. `version` is the build's (sweep/version.h).
struct RunKey {
  std::string input, input_sha256, config, core, core_sha256;
  std::uint64_t seed = 0;
  unsigned scale = 1;
  std::string version;

  nlohmann::json to_json() const;
  // The canonical text of to_json() (sorted keys): equal keys, equal ids.
  std::string id() const;
};

class Plan {
 public:
  std::vector<PlanInput> inputs;
  std::vector<std::string> configs;
  std::vector<PlanCore> cores;
  std::vector<std::uint64_t> seeds;
  unsigned scale = 1;
  std::string version;

  std::size_t size() const { return inputs.size() * configs.size() * cores.size() * seeds.size(); }
  // Run i, in input-major order (inputs, then configs, cores, seeds).
  RunKey key(std::size_t i) const;
  std::size_t input_of(std::size_t i) const { return i / (configs.size() * cores.size() * seeds.size()); }
  // The resolved spec as a results header holds it: enough to enumerate
  // every key again (inputs and cores with their digests), no host paths.
  nlohmann::json to_json() const;
  // The inverse, for `sweep report` (paths are not needed there); throws
  // SweepError naming `where` when the object is not a spec.
  static Plan from_json(const nlohmann::json& spec, const std::string& version, const std::string& where);
};

// Resolves a request: finds the inputs (a DIR: its `*.cpt` and trace files,
// recursively, sorted), hashes them, checks configs and cores. `builtin_dir`
// is the folder of the built-in workloads. Throws SweepError.
Plan resolve_plan(const SweepRequest& req, const std::filesystem::path& builtin_dir, const std::string& version);

struct Shard {
  unsigned index = 0;
  unsigned count = 1;
};

// "I/N" with 0 <= I < N; throws SweepError.
Shard parse_shard(const std::string& text);

// Under a Slurm job array (SLURM_ARRAY_TASK_ID set): index = ID - MIN,
// count = SLURM_ARRAY_TASK_COUNT; a non-contiguous array (count != MAX - MIN
// + 1, or a step other than 1) throws SweepError. nullopt outside an array.
std::optional<Shard> shard_from_slurm(const std::function<const char*(const char*)>& getenv);

// The runs of shard `s`, longest expected first. Every shard computes the
// same assignment: runs sorted by expected cost (input bytes × scale), each
// given to the least-loaded shard (ties: the lowest index), so the shards
// are disjoint, cover the plan, and carry about equal cost.
std::vector<std::size_t> shard_runs(const Plan& plan, Shard s);

}  // namespace contpte::sweep
