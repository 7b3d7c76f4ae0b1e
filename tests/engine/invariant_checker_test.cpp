// tests/engine/invariant_checker_test.cpp — the contpte invariant checker
// (engine_world.h) that every engine test runs after every operation must
// itself catch each way a block can be misprogrammed, and accept what is
// legitimate (A/D differences between entries; holes while break-before-make
// is in progress, in its non-strict form).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "engine_world.h"

namespace contpte::test {
namespace {

class InvariantChecker : public ::testing::TestWithParam<Granule> {};

// A folded rw block 0 from folio `f` (order cont_order + 1, so frame f + cont
// exists), written word by word: no engine involved.
Pfn poke_folded_block(World& w) {
  const Pfn f = w.alloc(w.cont_order() + 1);
  for (unsigned k = 0; k < w.cont(); ++k) w.poke(k, pte_mkcont(w.mk(f + k, Prot::RW)));
  return f;
}

TEST_P(InvariantChecker, AcceptsAWellFormedBlockWithPerEntryAccessDirty) {
  World w(GetParam(), Variant::Upstream);
  poke_folded_block(w);
  ASSERT_TRUE(w.hw_access(2, true));
  ASSERT_TRUE(w.hw_access(5, false));
  w.poke(7, pte_mkdirty(w.raw(7)));
  EXPECT_TRUE(contpte_invariant_all(w));
}

TEST_P(InvariantChecker, CatchesEachMisprogramming) {
  struct Case {
    const char* what;
    std::function<void(World&, Pfn)> breakit;
    bool strict_only;
  };
  const Case cases[] = {
      {"a valid entry without CONT", [](World& w, Pfn) { w.poke(3, pte_mknoncont(w.raw(3))); }, false},
      {"PFNs out of sequence",
       [](World& w, Pfn) { w.poke(3, pte_advance_pfn(w.raw(3), 1, w.shift())); }, false},
      {"block not starting at a block-aligned PFN",
       [](World& w, Pfn) {
         for (unsigned k = 0; k < w.cont(); ++k) w.poke(k, pte_advance_pfn(w.raw(k), 1, w.shift()));
       },
       false},
      {"an entry with another protection",
       [](World& w, Pfn) { w.poke(3, pte_wrprotect(w.raw(3))); }, false},
      {"a block across two folios",
       [](World& w, Pfn f) {
         // Re-register the frames as two half-block folios.
         w.mem().remove_folio(f);
         w.mem().add_folio(f, w.cont_order() - 1);
         w.mem().add_folio(f + w.cont() / 2, w.cont_order() - 1);
       },
       false},
      {"a hole in a CONT block (only legitimate mid-operation)",
       [](World& w, Pfn) { w.poke(3, Pte{}); }, true},
      {"an invalid entry carrying CONT",
       [](World& w, Pfn) {
         for (unsigned k = 0; k < w.cont(); ++k) w.poke(k, Pte{});
         w.poke(w.cont(), pte_mkcont(w.mk(Pfn{0}, Prot::None)));
       },
       true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    World w(GetParam(), Variant::Upstream);
    const Pfn f = poke_folded_block(w);
    ASSERT_TRUE(contpte_invariant_all(w));
    c.breakit(w, f);
    EXPECT_FALSE(contpte_invariant_all(w, /*strict=*/true));
    EXPECT_EQ(static_cast<bool>(contpte_invariant_all(w, /*strict=*/false)), c.strict_only);
  }
}

INSTANTIATE_TEST_SUITE_P(AllGranules, InvariantChecker,
                         ::testing::Values(Granule::k4K, Granule::k16K, Granule::k64K),
                         granule_param_name);

}  // namespace
}  // namespace contpte::test
