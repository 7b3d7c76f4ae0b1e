// Regression: with a recorder far behind its guests (under ASan in CI), a
// grandchild could connect while its parent was itself still waiting to be
// placed. The merger took the grandchild for a process nobody recorded
// forking: an extra stream, its blocks unknown (unparsed events), and its
// fork recorded a second time. The exec'd programs' command lines, read
// from /proc after the fact, were empty or named the next program. Fixed by
// waiting while the parent's connection is unfinished, placed or not, and
// by the plugin sending each program's command line itself. Then, when the
// guests had all exited with chunks still queued, a child whose parent was
// placed only in the final drain became a stream of its own: the final
// drain now alternates converting and placing until nothing moves. (A lag
// of 1000 ns per byte caught the first bug, 10000 both.)

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "trace/record.h"
#include "trace/trace.h"

namespace contpte {
namespace {

RecordOptions qemu_options(std::uint32_t lag) {
  RecordOptions o;
  o.recorder = Recorder::Qemu;
  o.qemu_plugin = CONTPTE_QEMU_PLUGIN_FILE;
  o.lag_ns_per_byte = lag;
  return o;
}

// Each stream's exec'd command lines, in order; and the number of streams.
struct Tree {
  std::map<std::uint32_t, std::vector<std::vector<std::string>>> execs;
  std::uint32_t streams = 0;
  bool operator==(const Tree&) const = default;
};

Tree tree_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  TraceReader rd(in, path);
  Tree t;
  std::uint32_t cur = 0;
  while (auto rec = rd.next()) {
    if (const auto* s = std::get_if<TraceStream>(&*rec)) cur = s->stream;
    if (const auto* e = std::get_if<TraceExec>(&*rec)) t.execs[cur].push_back(e->command);
  }
  t.streams = rd.streams();
  return t;
}

std::string describe(const Tree& t) {
  std::string s = "  " + std::to_string(t.streams) + " streams\n";
  for (const auto& [stream, execs] : t.execs) {
    s += "  stream " + std::to_string(stream) + ":";
    for (const auto& cmd : execs) {
      s += " [";
      for (const auto& a : cmd) s += " " + a;
      s += " ]";
    }
    s += "\n";
  }
  return s;
}

TEST(RecorderBehindItsGuests, RecordsTheSameProcessTreeAsAPromptOne) {
  if (const std::string why = qemu_unavailable(qemu_options(0)); !why.empty()) GTEST_SKIP() << why;
  const auto dir = std::filesystem::temp_directory_path() / ("contpte_record_lag-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  // The root shell forks a shell that forks a program before the root's
  // fork is merged (a lagging recorder converts the root's first chunks
  // slowly, and is still converting when every guest has exited); every
  // process execs once more.
  const std::vector<std::string> cmd{"/bin/sh", "-c", "/bin/sh -c '/bin/true x; exec /bin/true y'; exec /bin/true z"};
  const std::string prompt = (dir / "prompt.trace").string(), lagging = (dir / "lagging.trace").string();
  const RecordResult a = record_command(cmd, prompt, qemu_options(0));
  const RecordResult b = record_command(cmd, lagging, qemu_options(10000));
  EXPECT_EQ(a.exit_status, 0);
  EXPECT_EQ(b.exit_status, 0);
  EXPECT_EQ(a.unparsed_lines, 0u);
  EXPECT_EQ(b.unparsed_lines, 0u);
  const Tree ta = tree_of(prompt), tb = tree_of(lagging);
  // root, the inner shell, its child: three processes, and each exec named.
  EXPECT_EQ(ta.streams, 3u);
  const std::vector<std::string> inner{"/bin/sh", "-c", "/bin/true x; exec /bin/true y"};
  ASSERT_EQ(ta.execs.size(), 3u);
  EXPECT_EQ(ta.execs.at(0), (std::vector<std::vector<std::string>>{{"/bin/true", "z"}}));
  EXPECT_EQ(ta.execs.at(1), (std::vector<std::vector<std::string>>{inner, {"/bin/true", "y"}}));
  EXPECT_EQ(ta.execs.at(2), (std::vector<std::vector<std::string>>{{"/bin/true", "x"}}));
  EXPECT_TRUE(ta == tb) << "the lagging recorder saw another process tree:\n"
                        << describe(ta) << "against\n"
                        << describe(tb);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace contpte
