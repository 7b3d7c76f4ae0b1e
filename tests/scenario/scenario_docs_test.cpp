// docs/scenario.md is the users' reference (issue 25): every word the
// parser accepts at the start of a line — taken from the parser's own
// tables, so a statement added to the parser without documentation fails
// here — is documented there, and the README links only to files of the
// repository.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "scenario/runner.h"
#include "scenario/scenario.h"
#include "sim/stats.h"

namespace contpte {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const fs::path kSource(CONTPTE_SOURCE_DIR);

// `word` stands in the text as code: `word`, `word ...` or `word|...`.
bool documented(const std::string& doc, std::string_view word) {
  // Built by append: g++ 12 -O3 warns (-Wrestrict, a false positive) on
  // "`" + std::string + "...".
  std::string code(1, '`');
  code.append(word);
  for (char after : {'`', ' ', '|'})
    if (doc.find(code + after) != std::string::npos) return true;
  return false;
}

TEST(ScenarioDocs, EveryStatementAndHeaderKeyTheParserAcceptsIsDocumented) {
  const std::string doc = read(kSource / "docs" / "scenario.md");
  ASSERT_FALSE(doc.empty());
  const ScenarioVocabulary v = scenario_vocabulary();
  ASSERT_GE(v.statements.size(), 25u);  // the table itself, not an empty list
  for (const auto& list : {v.statements, v.header_keys, v.block_words, v.branch_kinds})
    for (std::string_view w : list) EXPECT_TRUE(documented(doc, w)) << "docs/scenario.md lacks `" << w << "`";
  for (std::string_view f : v.expect_forms)
    EXPECT_TRUE(documented(doc, std::string("expect ").append(f))) << "docs/scenario.md lacks `expect " << f << "`";
}

TEST(ScenarioDocs, EveryStatNameIsDocumented) {
  const std::string doc = read(kSource / "docs" / "scenario.md");
  // The stats table (sim/stats.h): every name `expect stat` accepts, and
  // each per-size family as `PREFIXSIZE`.
  for (const StatDef& d : stat_table())
    if (d.value) {
      EXPECT_TRUE(documented(doc, d.name)) << "docs/scenario.md lacks stat `" << d.name << "`";
    }
  for (const StatFamily& f : stat_families())
    EXPECT_TRUE(documented(doc, std::string(f.prefix) + "SIZE")) << "docs/scenario.md lacks `" << f.prefix << "SIZE`";
}

// The README and the docs link only to files that exist in the repository.
TEST(ScenarioDocs, LinksStayInsideTheRepository) {
  const std::regex link(R"(\]\(([^)#]+)(#[^)]*)?\))");
  for (const fs::path& md : {kSource / "README.md", kSource / "docs" / "scenario.md", kSource / "docs" / "design.md"}) {
    const std::string text = read(md);
    ASSERT_FALSE(text.empty()) << md;
    EXPECT_EQ(text.find("../shared"), std::string::npos) << md << " points outside the repository";
    for (std::sregex_iterator it(text.begin(), text.end(), link), end; it != end; ++it) {
      const std::string target = (*it)[1];
      if (target.starts_with("http://") || target.starts_with("https://")) continue;
      EXPECT_TRUE(fs::exists(md.parent_path() / target)) << md << " links to missing " << target;
    }
  }
}

}  // namespace
}  // namespace contpte
