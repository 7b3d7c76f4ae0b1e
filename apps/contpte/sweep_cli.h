// apps/contpte/sweep_cli.h — the `contpte sweep` and `contpte sweep report`
// commands (docs/sweep.md), registered on the CLI by main.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>

namespace contpte {

class SweepCommand {
 public:
  virtual ~SweepCommand() = default;
  // True when `sweep` (or `sweep report`) was on the command line.
  virtual bool parsed() const = 0;
  // Runs it; the process's exit status (0 / 1 / 2, docs/sweep.md).
  virtual int run(const char* argv0) = 0;
};

// Adds `sweep` and its `report` subcommand to `app`.
std::unique_ptr<SweepCommand> add_sweep_command(CLI::App& app);

}  // namespace contpte
