// The huge-PMD helpers core-mm calls (engine/pmd.h), each against what
// arm64's pgtable.h makes of it: one word written, exchanged or
// compare-exchanged per call, A/D kept against racing hardware, never a
// contpte decision on a PMD, and a flush only where
// __ptep_set_access_flags makes one.

#include <gtest/gtest.h>

#include "engine/pmd.h"
#include "engine_world.h"

namespace contpte::test {
namespace {

class PmdHelpers : public ::testing::TestWithParam<Granule> {
 protected:
  PmdHelpers() : w(GetParam(), Variant::Upstream) {}
  // The PMD entry covering the test region, and a huge PMD mapping a
  // PMD-sized folio there, old and clean, writable through DBM.
  PteSlot pmdp() { return w.pt().entry_slot(VirtAddr{kWorldBase}, 2, true).value(); }
  Pte huge(bool young = false, bool dirty = false) {
    const unsigned order = w.geo().pmd_shift() - w.shift();
    Pte p = pmd_mkhuge(w.mk(w.alloc(order), Prot::RW, young, dirty));
    return pte_mkwrite(p);
  }
  Pte word() { return *pmdp().ptr(); }
  VirtAddr at() const { return VirtAddr{kWorldBase}; }
  World w;
};

TEST_P(PmdHelpers, SetPmdAtStoresTheBlockAsGivenInOneStore) {
  const Pte pmd = huge(true, true);
  set_pmd_at(w.env(), at(), pmdp(), pmd);
  EXPECT_EQ(word(), pmd);
  EXPECT_TRUE(pmd_trans_huge(word()));
  EXPECT_FALSE(pte_cont(word())) << "a PMD never gets PTE_CONT from this layer";
  EXPECT_EQ(w.counters().pte_stores, 1u);
  EXPECT_EQ(w.counters().tlbi, 0u);
}

TEST_P(PmdHelpers, PmdPopulateLinksATable) {
  const PhysAddr table = w.pt().alloc_pte_page(at());
  pmd_populate(w.env(), pmdp(), PageTable::table_desc(table));
  EXPECT_TRUE(pmd_table(word()));
  EXPECT_FALSE(pmd_trans_huge(word()));
  EXPECT_EQ(w.counters().pte_stores, 1u);
}

TEST_P(PmdHelpers, HugeGetAndClearReturnsWhatHardwareSetUntilTheClear) {
  set_pmd_at(w.env(), at(), pmdp(), huge());
  // Hardware (FEAT_HAFDBS) marks the block young and dirty after the store.
  *pmdp().ptr() = pte_mkyoung(clear_pte_bit(word(), bits::kRdonly));
  const Pte old = pmdp_huge_get_and_clear(w.env(), at(), pmdp());
  EXPECT_TRUE(pmd_none(word()));
  EXPECT_TRUE(pte_young(old));
  EXPECT_TRUE(pte_dirty(old));
  EXPECT_EQ(w.counters().tlbi, 0u) << "the caller flushes (pmdp_huge_clear_flush)";
}

TEST_P(PmdHelpers, EstablishExchangesAndReturnsTheOldEntry) {
  const Pte pmd = huge(true, false);
  set_pmd_at(w.env(), at(), pmdp(), pmd);
  const Pte old = pmdp_establish(w.env(), at(), pmdp(), pmd_mkinvalid(pmd));
  EXPECT_EQ(old, pmd);
  EXPECT_FALSE(pte_valid(word()));
  EXPECT_TRUE(pmd_trans_huge(word())) << "software still sees the THP (pmdp_invalidate)";
  EXPECT_EQ(w.counters().pte_stores, 2u);
}

TEST_P(PmdHelpers, TestAndClearYoungClearsOnlyAfAndSaysWhetherItWasSet) {
  set_pmd_at(w.env(), at(), pmdp(), huge(true, true));
  const Pte before = word();
  EXPECT_TRUE(pmdp_test_and_clear_young(w.env(), at(), pmdp()));
  EXPECT_FALSE(pte_young(word()));
  EXPECT_EQ(pte_mkyoung(word()), before) << "nothing but AF changes";
  EXPECT_FALSE(pmdp_test_and_clear_young(w.env(), at(), pmdp()));
  EXPECT_EQ(w.counters().tlbi, 0u);
}

TEST_P(PmdHelpers, SetAccessFlagsOnlyAddsPermissionAndFlushesOnADirtyUpdate) {
  const Pte pmd = pte_wrprotect(huge());
  set_pmd_at(w.env(), at(), pmdp(), pmd);
  // A read access: AF only, no flush.
  EXPECT_TRUE(pmdp_set_access_flags(w.env(), at(), pmdp(), pte_mkyoung(pmd), false));
  EXPECT_TRUE(pte_young(word()));
  EXPECT_FALSE(pte_write(word()));
  EXPECT_EQ(w.counters().tlbi, 0u);
  // An entry older than the stored one never takes AF away.
  EXPECT_TRUE(pmdp_set_access_flags(w.env(), at(), pmdp(), pte_mkdirty(pmd), false));
  EXPECT_TRUE(pte_young(word()));
  // A write reusing the folio: writable and dirty, and the page flushed.
  const Pte entry = pte_mkwrite(pte_mkdirty(pte_mkyoung(pmd)));
  EXPECT_TRUE(pmdp_set_access_flags(w.env(), at(), pmdp(), entry, true));
  EXPECT_TRUE(pte_write(word()));
  EXPECT_TRUE(pte_dirty(word()));
  EXPECT_EQ(w.counters().tlbi, 1u);
  // Nothing left to do: false, and no store.
  const auto stores = w.counters().pte_stores;
  EXPECT_FALSE(pmdp_set_access_flags(w.env(), at(), pmdp(), word(), true));
  EXPECT_EQ(w.counters().pte_stores, stores);
}

TEST_P(PmdHelpers, SetWrprotectKeepsHardwareDirtinessInTheSoftwareBit) {
  set_pmd_at(w.env(), at(), pmdp(), huge(true));
  // Hardware dirties the writable block: RDONLY cleared (DBM).
  *pmdp().ptr() = clear_pte_bit(word(), bits::kRdonly);
  ASSERT_TRUE(pte_hw_dirty(word()));
  pmdp_set_wrprotect(w.env(), at(), pmdp());
  EXPECT_FALSE(pte_write(word()));
  EXPECT_TRUE(pte_rdonly(word()));
  EXPECT_TRUE(pte_dirty(word())) << "still dirty after wrprotect (pte_wrprotect moves it to PTE_DIRTY)";
  EXPECT_TRUE(pmd_trans_huge(word()));
}

INSTANTIATE_TEST_SUITE_P(Granules, PmdHelpers, ::testing::Values(Granule::k4K, Granule::k16K, Granule::k64K),
                         granule_param_name);

}  // namespace
}  // namespace contpte::test
