// python/contpte_module.cpp — `import contpte`: the simulator for notebooks
// (docs/sweep.md "Python"). A thin binding over the library: scenarios run
// as `contpte run` runs them, results come back as the JSON report's `runs`
// (plain dicts and lists), results files as flat records.
//
// Bad input raises contpte.InputError, a ValueError whose message is the
// CLI's `FILE:LINE:COL: error: ...`.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>  // std::optional arguments

#include <filesystem>
#include <optional>
#include <string>

#include "hw/tlb.h"
#include "report/report.h"
#include "sweep/plan.h"
#include "sweep/results.h"
#include "sweep/version.h"
#include "scenario/configs.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

namespace py = pybind11;
using namespace contpte;

namespace {

// JSON to Python objects through the json module: one conversion, exact.
py::object to_python(const nlohmann::json& j) { return py::module_::import("json").attr("loads")(j.dump()); }

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

py::list run(const py::object& scenario, const std::optional<std::string>& config,
             const std::optional<std::string>& core, const std::optional<std::uint64_t>& seed) {
  // A path when it is os.PathLike or names an existing file; else the text.
  std::optional<std::string> path;
  std::string text;
  if (py::isinstance(scenario, py::module_::import("os").attr("PathLike"))) {
    path = py::str(py::module_::import("os").attr("fspath")(scenario)).cast<std::string>();
  } else if (py::isinstance<py::str>(scenario)) {
    text = scenario.cast<std::string>();
    std::error_code ec;
    if (text.find('\n') == std::string::npos && std::filesystem::is_regular_file(text, ec)) path = text;
  } else {
    throw py::type_error("contpte.run: scenario must be a path (str or os.PathLike) or scenario text");
  }
  std::string header;
  const BuiltinConfig* cfg = nullptr;
  if (config) {
    cfg = find_config(*config);
    if (!cfg) {
      throw InputError("unknown configuration '" + *config + "'; expected one of: " + config_names());
    }
    header += std::string(cfg->header) + "\n";
  }
  if (core) {
    try {
      (void)resolve_tlb_config(*core);
    } catch (const std::runtime_error& e) {
      throw InputError(std::string("core '") + *core + "': " + e.what());
    }
    header += "tlb " + *core + "\n";
  }
  if (seed) header += "seed " + std::to_string(*seed) + "\n";
  RunResult r;
  try {
    Scenario sc = path ? load_scenario(*path, header) : parse_scenario(text, "<string>", header);
    validate_for_run(sc);
    py::gil_scoped_release unlocked;  // runs share nothing: other Python threads may run theirs
    r = run_scenario(sc, {});
  } catch (const ScenarioError& e) {
    throw InputError(e.what());
  }
  if (cfg) r.config.name = std::string(cfg->name);
  return to_python(json_report({r})["runs"]);
}

py::list configs() {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : kBuiltinConfigs) out.push_back({{"name", c.name}, {"header", c.header}, {"what", c.what}});
  return to_python(out);
}

py::list presets() {
  nlohmann::json out = nlohmann::json::array();
  out.push_back({{"name", "default"}, {"summary", "the default preset: " + std::string(default_tlb_preset())}});
  for (const auto& p : tlb_presets()) out.push_back({{"name", p.name}, {"summary", p.summary}});
  return to_python(out);
}

py::list read_results(const py::object& path) {
  const std::string p = py::str(py::module_::import("os").attr("fspath")(path)).cast<std::string>();
  try {
    const auto recs = sweep::flat_records(sweep::read_results_file(p));
    return to_python(nlohmann::json(recs));
  } catch (const sweep::SweepError& e) {
    throw InputError(e.what());
  }
}

}  // namespace

PYBIND11_MODULE(contpte, m) {
  m.doc() = "contpte: the arm64 transparent contiguous-PTE layer, its MMU and memory manager, simulated";
  m.attr("__version__") = sweep::version_string();
  py::register_exception<InputError>(m, "InputError", PyExc_ValueError);
  m.def("run", &run, py::arg("scenario"), py::arg("config") = py::none(), py::arg("core") = py::none(),
        py::arg("seed") = py::none(),
        "Run a scenario (a path, os.PathLike, or scenario text) under a built-in configuration, a core (TLB "
        "preset or JSON file) and a seed; returns the JSON report's `runs` list.");
  m.def("configs", &configs, "The built-in configurations: [{name, header, what}].");
  m.def("presets", &presets, "The TLB presets (cores): [{name, summary}].");
  m.def("read_results", &read_results, py::arg("path"),
        "A `contpte sweep` results file as flat records (one dict per run: key fields, stats, exit, wall_s), "
        "ready for pandas.DataFrame.");
}
