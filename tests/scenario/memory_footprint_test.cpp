// Host memory per touched page of a sparse address space: the 64 GiB check
// (examples/16-sparse-64g.cpt, one page in every 2M, budget 2 GiB) scaled
// down to 8G. The run happens in a forked child so that its peak resident
// memory (VmHWM) minus what it started with (VmRSS) is the run's own cost.
#include <gtest/gtest.h>

#include "support/sanitizer.h"
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "scenario/configs.h"
#include "scenario/runner.h"
#include "scenario/scenario.h"

using namespace contpte;

namespace {

using contpte::testing::kAsan;

// A "VmXXX:   123 kB" line of /proc/self/status, in bytes (0 if absent).
std::uint64_t status_bytes(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
  return 0;
}

// The run's peak memory in a child process, in bytes; 0 if it failed.
std::uint64_t run_and_measure(const std::string& text, const char* config) {
  int fds[2];
  if (pipe(fds) != 0) return 0;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const std::uint64_t start = status_bytes("VmRSS");
    const RunResult r = run_scenario(parse_scenario(text, "sparse.cpt", find_config(config)->header));
    std::uint64_t used = status_bytes("VmHWM") - start;
    if (r.exit_status() != 0 || r.stat("faults_anon") < 4095) used = 0;
    [[maybe_unused]] auto n = write(fds[1], &used, sizeof used);
    _exit(0);
  }
  close(fds[1]);
  std::uint64_t used = 0;
  if (read(fds[0], &used, sizeof used) != sizeof used) used = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return used;
}

TEST(MemoryFootprint, SparseAddressSpaceCostsLittleHostMemoryPerTouchedPage) {
  if constexpr (kAsan) GTEST_SKIP() << "ASan's shadow memory and quarantine make resident sizes meaningless";
  if (status_bytes("VmHWM") == 0) GTEST_SKIP() << "no VmHWM in /proc/self/status";
  const std::string text =
      "memory 8G\n"
      "mmap A 8G addr=0x4000000000\n"
      "write A 8G stride=2M\n"  // 4096 pages, one per 2M
      "expect violations 0\n";
  // The 64 GiB budget: 2 GiB for its 32768 touched pages.
  constexpr std::uint64_t kBudgetPerPage = (std::uint64_t{2} << 30) / 32768;
  for (const char* config : {"base-4k", "contpte-64k", "thp-4k", "gran-64k"}) {
    const std::uint64_t used = run_and_measure(text, config);
    ASSERT_GT(used, 0u) << config << ": the run failed or was not measured";
    const std::uint64_t per_page = used / 4096;
    std::printf("[ footprint ] %s: %llu bytes of host memory per touched page\n", config,
                static_cast<unsigned long long>(per_page));
    RecordProperty(std::string("bytes_per_touched_page_") + config, std::to_string(per_page));
    EXPECT_LE(per_page, kBudgetPerPage) << config;
  }
}

}  // namespace
