// The machine (sim/machine.h): processes and their ASIDs, the path of a user
// access (fault, memory manager, retry), and the one route of a TLB
// invalidation to the MMU, whoever issues it.

#include <gtest/gtest.h>

#include "hw/tlb.h"
#include "sim/machine.h"

using namespace contpte;

namespace {

MachineSpec spec_4k() {
  MachineSpec s;
  s.granule = Granule::k4K;
  s.memory = std::uint64_t{64} << 20;
  s.core = resolve_tlb_config("default");
  return s;
}

std::uint64_t tlbi_instructions(const Machine& m) {
  const MmuStats s = m.mmu().stats();
  return s.tlbi_va + s.tlbi_range + s.tlbi_asid + s.tlbi_all;
}

TEST(Machine, ProcessesRunInAsidPidPlusOne) {
  Machine m(spec_4k());
  ASSERT_EQ(m.processes(), 1u);
  EXPECT_EQ(m.mm(0).asid(), 1);
  const std::size_t child = m.fork(0);
  EXPECT_EQ(child, 1u);
  EXPECT_EQ(m.mm(child).asid(), 2);
  EXPECT_EQ(m.mm_by_asid(2), &m.mm(child));
  EXPECT_EQ(m.mm_by_asid(3), nullptr);
  m.exit(child);
  EXPECT_FALSE(m.alive(child));
  EXPECT_TRUE(m.alive(0));
}

TEST(Machine, AFaultingAccessGoesToTheMemoryManagerAndIsRetriedOnce) {
  Machine m(spec_4k());
  ASSERT_TRUE(m.mm(0).mmap(0x10000, Prot::RW, false, VirtAddr{0x4000000000ull}, 0, nullptr));
  EXPECT_EQ(m.access(0, VirtAddr{0x4000000000ull}, MemAccess::Write), std::nullopt);
  EXPECT_EQ(m.mmu().stats().accesses, 1u);  // the retry is not a second access
  EXPECT_EQ(m.mmu().stats().faults, 1u);
  EXPECT_EQ(m.system().stats().faults_anon, 1u);
  const auto why = m.access(0, VirtAddr{0x5000000000ull}, MemAccess::Read);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("SIGSEGV: no mapping"), std::string::npos) << *why;
}

// A core-mm caller's flush, the engine's flushes and an explored block's
// flushes all reach the MMU through the process's Env.
TEST(Machine, EveryFlushReachesTheMmuThroughTheEnv) {
  Machine m(spec_4k());
  const std::uint64_t before = tlbi_instructions(m);
  m.caller_flush(0, VirtAddr{0x4000000000ull}, 1);
  EXPECT_EQ(tlbi_instructions(m), before + 1);
  EXPECT_EQ(m.caller_tlbi(), 1u);
  m.env(0).flush_tlb_page(VirtAddr{0x4000000000ull}, true);
  EXPECT_EQ(tlbi_instructions(m), before + 2);
  m.env(0).invalidate_tlb(TlbiRequest{TlbiKind::Mm, 1, VirtAddr{}, 0, true});  // an explored block's
  m.add_caller_flushes(1);
  EXPECT_EQ(m.mmu().stats().tlbi_asid, 1u);
  EXPECT_EQ(m.caller_tlbi(), 2u);
}

// The watcher sees each process's PTE accesses, except the reads the
// machine makes for itself.
TEST(Machine, TheWatcherSeesProcessAccessesButNotTheMachinesOwnReads) {
  struct Counter final : MachineWatcher, SimObserver {
    SimObserver* watch(std::size_t, const PageTable&) override { return this; }
    void pause(bool p) override { paused = p; }
    void on_pte_access(const PteAccess&) override { seen += !paused; }
    bool paused = false;
    unsigned seen = 0;
  } w;
  Machine m(spec_4k(), &w);
  ASSERT_TRUE(m.mm(0).mmap(0x10000, Prot::RW, false, VirtAddr{0x4000000000ull}, 0, nullptr));
  ASSERT_EQ(m.access(0, VirtAddr{0x4000000000ull}, MemAccess::Write), std::nullopt);
  const unsigned after_fault = w.seen;
  EXPECT_GT(after_fault, 0u);
  m.pte_view(0, VirtAddr{0x4000000000ull});
  m.settle();
  EXPECT_EQ(w.seen, after_fault);
}

}  // namespace
