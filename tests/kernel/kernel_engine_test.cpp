// tests/kernel/kernel_engine_test.cpp — the engine built from Debian's
// linux-source-6.12: it builds for every granule, loads from the cache, and
// its PTE words agree with the built-in engine's on the basic operations.
#include <gtest/gtest.h>

#include "engine/pgtable.h"
#include "hw/page_table.h"
#include "hw/sim_env.h"
#include "kernel/build.h"
#include "engine/engine_world.h"
#include "support/linux_tree.h"

namespace contpte::test {
namespace {

struct Box {  // a World whose Env may carry an external engine
  Box(Granule g, Features f) : mem(g, std::uint64_t{1} << 30), pt(mem), env(mem, pt, f) {}
  PhysMem mem;
  PageTable pt;
  SimEnv env;
};

class KernelEngine : public ::testing::TestWithParam<Granule> {};

TEST_P(KernelEngine, FoldsAFullBlockAndUnfoldsOnAPartialClear) {
  CONTPTE_NEED_LINUX_TREE(tree);
  const Geometry& g = geometry(GetParam());
  kernel::KernelEngines engines(tree, nullptr);
  Features fk;
  fk.external = &engines.get(g, true);
  Box k(GetParam(), fk), b(GetParam(), Features{});
  const unsigned cont = g.cont_ptes;
  const std::uint64_t base = 0x4000'0000;
  for (Box* x : {&k, &b}) {
    x->mem.add_folio(Pfn{cont * 4}, static_cast<unsigned>(__builtin_ctz(cont)));
    // One PTE at a time: the last one folds the block.
    for (unsigned i = 0; i < cont; ++i) {
      const VirtAddr va{base + i * g.page_size()};
      Pte pte = pte_mkyoung(pfn_pte(Pfn{cont * 4 + i}, prot::kPageShared, g.page_shift));
      set_ptes(x->env, va, x->pt.pte_slot(va, true).value(), pte, 1);
    }
  }
  const PteSlot s0 = k.pt.pte_slot(VirtAddr{base}, false).value();
  const PteSlot b0 = b.pt.pte_slot(VirtAddr{base}, false).value();
  for (unsigned i = 0; i < cont; ++i) {
    EXPECT_TRUE(pte_cont(*(s0 + i).ptr())) << i;
    EXPECT_EQ((s0 + i).ptr()->val, (b0 + i).ptr()->val) << i;
  }
  EXPECT_EQ(k.env.counters().folds, 1u);
  // Clearing one PTE unfolds the block first.
  const VirtAddr mid{base + 3 * g.page_size()};
  const Pte got_k = ptep_get_and_clear(k.env, mid, s0 + 3);
  const Pte got_b = ptep_get_and_clear(b.env, mid, b0 + 3);
  EXPECT_EQ(got_k.val, got_b.val);
  for (unsigned i = 0; i < cont; ++i) EXPECT_EQ((s0 + i).ptr()->val, (b0 + i).ptr()->val) << i;
  EXPECT_EQ(k.env.counters().unfolds, 1u);
  EXPECT_EQ(k.env.counters().pte_stores, b.env.counters().pte_stores);
  EXPECT_EQ(k.env.counters().tlbi, b.env.counters().tlbi);
  EXPECT_TRUE(k.env.take_findings().empty());
}

INSTANTIATE_TEST_SUITE_P(Granules, KernelEngine,
                         ::testing::Values(Granule::k4K, Granule::k16K, Granule::k64K),
                         granule_param_name);

}  // namespace
}  // namespace contpte::test
