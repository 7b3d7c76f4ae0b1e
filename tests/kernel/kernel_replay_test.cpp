// tests/kernel/kernel_replay_test.cpp — `contpte run --replay TRACE --kernel
// DIR`: a replayed trace drives the memory manager, whose engine calls then
// run the code of Debian's linux-source-6.12 through the same seam as a
// scenario's. Wherever the run used no core-mm fallback, every stat equals
// the built-in engine's; where it used one, the run names it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "kernel/build.h"
#include "support/linux_tree.h"
#include "trace/replay.h"

namespace contpte::test {
namespace {

namespace fs = std::filesystem;
using A = TraceAccessType;
constexpr std::uint32_t kRW = trace_prot::kRead | trace_prot::kWrite;

TraceMmap anon(std::uint64_t len) { return TraceMmap{len, kRW, 0, std::nullopt, 0, std::nullopt, 0}; }

// A program that touches anonymous memory (folds under contpte), forks and
// writes in both processes (copy-on-write of folded blocks), drops ranges
// with MADV_DONTNEED and munmap at 4K offsets (partial blocks: unfolds) and
// exits; `mprotect` adds a change of protection (core-mm's batched
// modify_prot_*_ptes, which a 6.12 tree lacks).
std::vector<TraceRecord> program(bool mprotect) {
  std::vector<TraceRecord> r{anon(4 << 20), anon(1 << 20)};
  std::mt19937_64 rng(21);
  auto touch = [&](std::uint32_t map, std::uint64_t len, int n, std::uint64_t from = 0) {
    for (int i = 0; i < n; ++i)
      r.push_back(TraceAccess{rng() % 3 ? A::Load : A::Store, map, from + ((rng() % len) & ~std::uint64_t{7}), 8});
  };
  for (std::uint64_t off = 0; off < (2 << 20); off += 4096) r.push_back(TraceAccess{A::Store, 0, off, 8});
  touch(0, 4 << 20, 3000);
  touch(1, 1 << 20, 1000);
  r.push_back(TraceFork{1});
  touch(0, 4 << 20, 1000);  // the parent writes: copy-on-write
  r.push_back(TraceStream{1});
  touch(0, 4 << 20, 1000);
  r.push_back(TraceMadvise{0, 0x3000, 0x21000, trace_madv::kDontNeed});
  touch(0, 1 << 20, 500);
  r.push_back(TraceExit{});
  r.push_back(TraceStream{0});
  if (mprotect) r.push_back(TraceMprotect{1, 0, 1 << 20, trace_prot::kRead});
  r.push_back(TraceMunmap{0, 0x105000, 0x13000});
  touch(0, 2 << 20, 2000, 2 << 20);  // past the hole
  touch(1, 1 << 20, 500);
  return r;
}

// Replays `recs` from a trace file under every built-in configuration.
std::vector<RunResult> replay_all(const std::vector<TraceRecord>& recs, kernel::KernelEngines* engines) {
  const fs::path file = fs::temp_directory_path() / ("contpte-kernel-replay-" + std::to_string(::getpid()) + ".trace");
  {
    std::ofstream out(file, std::ios::binary);
    TraceHeader h;
    TraceWriter w(out, h);
    for (const auto& rec : recs) w.write(rec);
    w.finish();
  }
  ReplayOptions o;
  if (engines)
    o.run.kernel_engine = [engines](const Geometry& g, bool on) { return &engines->get(g, on); };
  std::vector<RunResult> results = replay_compare(file.string(), o, 2);
  fs::remove(file);
  return results;
}

TEST(KernelReplay, StatsEqualTheBuiltInEngineWhereNoFallbackWasUsed) {
  CONTPTE_NEED_LINUX_TREE(tree);
  kernel::KernelEngines engines(tree, nullptr);
  const auto recs = program(/*mprotect=*/false);
  const auto builtin = replay_all(recs, nullptr);
  const auto kernel = replay_all(recs, &engines);
  ASSERT_EQ(builtin.size(), kernel.size());
  double unfolds = 0;
  for (std::size_t i = 0; i < kernel.size(); ++i) {
    const RunResult &b = builtin[i], &k = kernel[i];
    SCOPED_TRACE(k.config.name);
    EXPECT_EQ(k.exit_status(), 0);
    EXPECT_TRUE(k.kernel_fallbacks.empty());
    EXPECT_EQ(k.stat("replay_unresolved_accesses"), 0);
    ASSERT_EQ(b.stats.size(), k.stats.size());
    for (std::size_t s = 0; s < b.stats.size(); ++s) {
      EXPECT_EQ(b.stats[s].first, k.stats[s].first);
      EXPECT_EQ(b.stats[s].second, k.stats[s].second) << b.stats[s].first;
    }
    unfolds += k.stat("unfolds");
  }
  // The trace reaches the contpte code: blocks mapped whole (fewer TLB
  // misses than the same folios without contpte), and unfolded by
  // copy-on-write, MADV_DONTNEED and munmap of parts.
  EXPECT_LT(kernel[3].stat("tlb_misses"), kernel[2].stat("tlb_misses"));
  EXPECT_EQ(kernel[3].config.name, "contpte-64k");
  EXPECT_GT(unfolds, 0);
}

// The same program with an mprotect: the contpte configurations use the
// generic modify_prot fallbacks and say so; `off` builds do not reach them
// (the kernel's own non-contpte mapping) and still equal the built-in run.
TEST(KernelReplay, ARunNamesTheFallbacksItUsed) {
  CONTPTE_NEED_LINUX_TREE(tree);
  kernel::KernelEngines engines(tree, nullptr);
  const auto recs = program(/*mprotect=*/true);
  const auto builtin = replay_all(recs, nullptr);
  const auto kernel = replay_all(recs, &engines);
  ASSERT_EQ(builtin.size(), kernel.size());
  bool any = false;
  for (std::size_t i = 0; i < kernel.size(); ++i) {
    const RunResult &b = builtin[i], &k = kernel[i];
    SCOPED_TRACE(k.config.name);
    EXPECT_EQ(k.exit_status(), 0);
    EXPECT_TRUE(b.kernel_fallbacks.empty());
    if (!k.kernel_fallbacks.empty()) {
      any = true;
      EXPECT_EQ(k.kernel_fallbacks,
                (std::vector<std::string>{"modify_prot_commit_ptes", "modify_prot_start_ptes"}));
      continue;
    }
    for (std::size_t s = 0; s < b.stats.size(); ++s) EXPECT_EQ(b.stats[s].second, k.stats[s].second) << b.stats[s].first;
  }
  EXPECT_TRUE(any) << "mprotect of a contpte mapping uses the batched helpers the tree lacks";
}

}  // namespace
}  // namespace contpte::test
