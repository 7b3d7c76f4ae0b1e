// The comparison table's header (issue 25 point 9): the program's access
// count when every configuration translated the same, else each one's.
#include "report/report.h"

#include <gtest/gtest.h>

#include <sstream>

namespace contpte {
namespace {

RunResult run(std::string scenario, std::string config, double accesses) {
  RunResult r;
  r.scenario = std::move(scenario);
  r.config.name = std::move(config);
  r.stats = {{"accesses", accesses}, {"translation_cycles", 100}};
  return r;
}

std::string header_line(const std::vector<RunResult>& runs) {
  std::ostringstream out;
  print_comparison(out, runs);
  std::istringstream in(out.str());
  std::string line;
  std::getline(in, line);  // the blank line before each table
  std::getline(in, line);
  return line;
}

TEST(ComparisonTable, HeaderShowsTheProgramsAccessCount) {
  EXPECT_EQ(header_line({run("dir/true.trace", "base-4k", 1000), run("dir/true.trace", "gran-64k", 1000)}),
            "true.trace (1000 accesses)");
}

TEST(ComparisonTable, HeaderSaysWhichConfigurationTranslatedFewer) {
  EXPECT_EQ(header_line({run("dir/true.trace", "base-4k", 1000), run("dir/true.trace", "gran-64k", 998)}),
            "true.trace (accesses differ by configuration: base-4k 1000, gran-64k 998)");
}

}  // namespace
}  // namespace contpte
