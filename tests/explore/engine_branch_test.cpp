// explore/engine_branch.cpp: an engine branch's TLB invalidations take the
// one route of every invalidation, SimEnv::invalidate_tlb (hw/sim_env.h).
// In each execution they reach that execution's TLBs; in the kept
// execution (Explorer::run_seeded) they also reach the machine's TLBs,
// through the Env of the address space in the machine, as each is made —
// and no explored execution reaches the machine.

#include <gtest/gtest.h>

#include <vector>

#include "explore/explorer.h"
#include "hw/page_table.h"
#include "hw/phys_mem.h"
#include "hw/sim_env.h"

using namespace contpte;

namespace {

struct TlbRecorder final : SimObserver {
  std::vector<TlbiRequest> seen;
  void on_tlbi(const TlbiRequest& r) override { seen.push_back(r); }
};

TEST(ExplorerTlbRoute, TheKeptRunsFlushesReachTheMachineThroughItsEnvAsTheyAreMade) {
  PhysMem mem(Granule::k4K, std::uint64_t{64} << 20);
  PageTable pt(mem);
  SimEnv machine(mem, pt, Features{});
  TlbRecorder tlb;
  machine.set_tlb(&tlb);
  std::vector<std::size_t> seen_after_each;  // the machine's count after each flush returned

  ExploreSetup s;
  s.mem = &mem;
  s.pt = &pt;
  ExploreBranch e;
  e.label = "engine flushes";
  e.body = [&](StepEnv& se) {
    se.flush_tlb_page(VirtAddr{0x40000000}, true);
    seen_after_each.push_back(tlb.seen.size());
    se.caller_flush(VirtAddr{0x40010000}, 16);
    seen_after_each.push_back(tlb.seen.size());
    se.flush_tlb_mm();
    seen_after_each.push_back(tlb.seen.size());
  };
  s.branches.push_back(e);
  ExploreBranch hw;  // another CPU, so that there is something to interleave
  hw.kind = ExploreBranch::Kind::Hw;
  hw.label = "hw read";
  hw.va = VirtAddr{0x50000000};
  s.branches.push_back(hw);
  Explorer x(std::move(s));

  const ExploreResult r = x.explore(1000);
  EXPECT_GT(r.executions, 1u);
  EXPECT_TRUE(tlb.seen.empty()) << "an explored execution reached the machine's TLBs";

  seen_after_each.clear();
  const KeptRun k = x.run_seeded(7, nullptr, &machine);
  EXPECT_EQ(seen_after_each, (std::vector<std::size_t>{1, 2, 3}));
  ASSERT_EQ(tlb.seen.size(), 3u);
  EXPECT_EQ(tlb.seen[0].kind, TlbiKind::Page);
  EXPECT_EQ(tlb.seen[0].start.val, 0x40000000u);
  EXPECT_EQ(tlb.seen[1].kind, TlbiKind::Range);
  EXPECT_EQ(tlb.seen[1].start.val, 0x40010000u);
  EXPECT_EQ(tlb.seen[1].nr_pages, 16u);
  EXPECT_EQ(tlb.seen[2].kind, TlbiKind::Mm);
  EXPECT_EQ(k.caller_tlbi, 1u);

  // Without a machine, a kept run reaches no TLB but its own execution's.
  tlb.seen.clear();
  x.run_seeded(7, nullptr);
  EXPECT_TRUE(tlb.seen.empty());
}

}  // namespace
