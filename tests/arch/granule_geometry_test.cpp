// tests/arch/granule_geometry_test.cpp — granule geometry (arch/granule.h)
// against the Arm ARM (D8.2) and arch/arm64/include/asm/pgtable-hwdef.h.
#include <gtest/gtest.h>

#include "arch/granule.h"

namespace contpte {
namespace {

struct Want {
  Granule g;
  const char* name;
  std::uint64_t page;
  unsigned cont_ptes, cont_pmds, levels, start_level, ptrs;
  std::uint64_t pmd, cont_pte_size, cont_pmd_size;
};

constexpr std::uint64_t K = 1024, M = K * K, G = M * K;
// granule name  page   CONT_PTES CONT_PMDS levels start PTRS_PER_PTE PMD_SIZE CONT_PTE_SIZE CONT_PMD_SIZE
const Want kWant[] = {
    {Granule::k4K, "4K", 4 * K, 16, 16, 4, 0, 512, 2 * M, 64 * K, 32 * M},
    {Granule::k16K, "16K", 16 * K, 128, 32, 4, 0, 2048, 32 * M, 2 * M, 1 * G},
    {Granule::k64K, "64K", 64 * K, 32, 32, 3, 1, 8192, 512 * M, 2 * M, 16 * G},
};

class Geometries : public ::testing::TestWithParam<Want> {};

TEST_P(Geometries, MatchesTheArchitecture) {
  const Want& w = GetParam();
  const Geometry& g = geometry(w.g);
  EXPECT_EQ(g.granule, w.g);
  EXPECT_EQ(g.name, w.name);
  EXPECT_EQ(g.page_size(), w.page);
  EXPECT_EQ(g.cont_ptes, w.cont_ptes);
  EXPECT_EQ(g.cont_pmds, w.cont_pmds);
  EXPECT_EQ(g.levels, w.levels);
  EXPECT_EQ(g.start_level, w.start_level);
  EXPECT_EQ(g.start_level + g.levels, 4u) << "walks always end at level 3";
  EXPECT_EQ(g.ptrs_per_table(), w.ptrs);
  EXPECT_EQ(g.pmd_size(), w.pmd);
  EXPECT_EQ(g.cont_pte_size(), w.cont_pte_size);
  EXPECT_EQ(g.cont_pmd_size(), w.cont_pmd_size);
  // A block of PTEs lies inside one PTE table.
  EXPECT_EQ(g.ptrs_per_table() % g.cont_ptes, 0u);
  // The walk covers a 48-bit VA: the first level resolves the top bits
  // (fewer than a full table's worth on 16K and 64K).
  EXPECT_LT(g.level_shift(g.start_level), kVaBits);
  EXPECT_GE(g.level_shift(g.start_level) + g.table_shift(), kVaBits);
  EXPECT_EQ(g.level_shift(3), g.page_shift);
  EXPECT_EQ(g.level_shift(2), g.pmd_shift());
}

TEST_P(Geometries, NamesAndSizesLookUp) {
  const Want& w = GetParam();
  EXPECT_EQ(granule_from_name(w.name), w.g);
  EXPECT_EQ(granule_from_bytes(w.page), w.g);
}

TEST(GeometryLookup, RejectsUnknown) {
  EXPECT_FALSE(granule_from_name("8K").has_value());
  EXPECT_FALSE(granule_from_name("4k").has_value()) << "names are case-sensitive as the scenario spells them";
  EXPECT_FALSE(granule_from_bytes(8192).has_value());
  EXPECT_FALSE(granule_from_bytes(0).has_value());
}

INSTANTIATE_TEST_SUITE_P(AllGranules, Geometries, ::testing::ValuesIn(kWant),
                         [](const ::testing::TestParamInfo<Want>& info) {
                           std::string n("g");
                           n.append(info.param.name);
                           return n;
                         });

}  // namespace
}  // namespace contpte
