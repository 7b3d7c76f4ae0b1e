// tests/hw/phys_mem_page_table_test.cpp — PhysMem (table pages, folio
// registry), PageTable (slots, walk, VA of a slot) and SimEnv (the Env over
// them), per granule.
#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

#include "hw/page_table.h"
#include "hw/phys_mem.h"
#include "hw/sim_env.h"

namespace contpte {
namespace {

constexpr std::uint64_t kRam = std::uint64_t{256} << 20;

class HwBasics : public ::testing::TestWithParam<Granule> {
 protected:
  const Geometry& geo() const { return geometry(GetParam()); }
};

TEST_P(HwBasics, TablePagesAreAlignedZeroedAndOutsideRam) {
  PhysMem mem(GetParam(), kRam);
  const PhysAddr a = mem.alloc_table(), b = mem.alloc_table();
  EXPECT_NE(a, b);
  EXPECT_GE(a.val, kRam) << "table pages never alias a data frame";
  EXPECT_EQ(a.val % geo().page_size(), 0u);
  Pte* t = mem.table(a);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t) % geo().page_size(), 0u)
      << "aligned to its size, so a PteSlot can be aligned down to its block";
  for (unsigned i = 0; i < geo().ptrs_per_table(); ++i) ASSERT_TRUE(pte_none(t[i]));
  EXPECT_EQ(mem.table(PhysAddr{a.val + 8}), nullptr);
  EXPECT_EQ(mem.table(PhysAddr{0}), nullptr);
  EXPECT_EQ(mem.nr_tables(), 2u);
}

TEST_P(HwBasics, FolioRegistryAnswersPageFolio) {
  PhysMem mem(GetParam(), kRam);
  EXPECT_EQ(mem.nr_frames(), kRam >> geo().page_shift);
  EXPECT_TRUE(mem.is_ram(Pfn{mem.nr_frames() - 1}));
  EXPECT_FALSE(mem.is_ram(Pfn{mem.nr_frames()}));
  mem.add_folio(Pfn{64}, 4);
  for (std::uint64_t p = 64; p < 80; ++p) {
    const FolioInfo f = mem.folio_of(Pfn{p});
    EXPECT_TRUE(f.valid);
    EXPECT_EQ(f.head, Pfn{64});
    EXPECT_EQ(f.nr_pages, 16u);
  }
  EXPECT_FALSE(mem.folio_of(Pfn{63}).valid);
  EXPECT_FALSE(mem.folio_of(Pfn{80}).valid);
  mem.remove_folio(Pfn{64});
  EXPECT_FALSE(mem.folio_of(Pfn{70}).valid);
}

TEST_P(HwBasics, PteSlotsAreConsecutiveWithinAPtePage) {
  PhysMem mem(GetParam(), kRam);
  PageTable pt(mem);
  const std::uint64_t base = 0x4000'0000;  // aligned to every granule's PMD
  EXPECT_FALSE(pt.pte_slot(VirtAddr{base}, false).has_value()) << "nothing allocated yet";
  const PteSlot s0 = pt.pte_slot(VirtAddr{base}, true).value();
  EXPECT_TRUE(pt.pte_slot(VirtAddr{base}, false).has_value());
  const unsigned n = geo().ptrs_per_table();
  for (unsigned i : {1u, 2u, geo().cont_ptes, n - 1}) {
    const PteSlot s = pt.pte_slot(VirtAddr{base + i * geo().page_size()}, false).value();
    EXPECT_EQ(s - s0, static_cast<std::ptrdiff_t>(i));
    EXPECT_EQ(pt.va_of(s), VirtAddr{base + i * geo().page_size()});
  }
  EXPECT_EQ(s0.index_in(geo().cont_ptes), 0u) << "a block-aligned VA starts a block";
  EXPECT_EQ((s0 + 5).align_down(geo().cont_ptes), s0);
  // The next PMD is another PTE page.
  EXPECT_FALSE(pt.pte_slot(VirtAddr{base + geo().pmd_size()}, false).has_value());
  const PteSlot t = pt.pte_slot(VirtAddr{base + geo().pmd_size()}, true).value();
  EXPECT_EQ(pt.va_of(t), VirtAddr{base + geo().pmd_size()});
  std::set<std::uint64_t> bases;
  pt.for_each_pte_page([&](VirtAddr va, PteSlot) { bases.insert(va.val); });
  EXPECT_EQ(bases, (std::set<std::uint64_t>{base, base + geo().pmd_size()}));
  EXPECT_EQ(mem.nr_tables(), static_cast<std::size_t>(geo().levels) + 1)
      << "root, one table per lower level, and a second PTE page";
  EXPECT_FALSE(pt.va_of(PteSlot{}).has_value());
}

class Counter : public SimObserver {
 public:
  void on_pte_access(const PteAccess& a) override { accesses.push_back(a); }
  void on_tlbi(const TlbiRequest& r) override { tlbis.push_back(r); }
  std::vector<PteAccess> accesses;
  std::vector<TlbiRequest> tlbis;
};

TEST_P(HwBasics, SimEnvOperationsAndObservers) {
  PhysMem mem(GetParam(), kRam);
  PageTable pt(mem);
  SimEnv env(mem, pt, Features{});
  static_assert(Env<SimEnv>);
  const PteSlot s = pt.pte_slot(VirtAddr{0x4000'0000}, true).value();
  Counter obs;
  env.add_observer(&obs);
  const Pte a{0x703}, b{0x707};
  env.write(s, a);
  EXPECT_EQ(env.read(s), a);
  EXPECT_EQ(env.cmpxchg(s, b, Pte{}), a) << "failed compare: returns what it found";
  EXPECT_EQ(*s.ptr(), a);
  EXPECT_EQ(env.cmpxchg(s, a, b), a);
  EXPECT_EQ(*s.ptr(), b);
  EXPECT_EQ(env.xchg(s, Pte{}), b);
  EXPECT_TRUE(pte_none(*s.ptr()));
  env.flush_tlb_range(TlbFlush{VirtAddr{0x4000'0000}, 16, true});
  env.flush_tlb_page(VirtAddr{0x4000'0000}, false);
  env.flush_tlb_mm();
  ASSERT_EQ(obs.accesses.size(), 5u);
  using Op = decltype(PteAccess::op);
  EXPECT_EQ(obs.accesses[0].op, Op::Store);
  EXPECT_EQ(obs.accesses[1].op, Op::Load);
  EXPECT_EQ(obs.accesses[2].op, Op::Cmpxchg);
  EXPECT_EQ(obs.accesses[2].after, a) << "a failed cmpxchg leaves the word";
  EXPECT_EQ(obs.accesses[3].after, b);
  EXPECT_EQ(obs.accesses[4].op, Op::Xchg);
  EXPECT_EQ(obs.accesses[4].before, b);
  ASSERT_EQ(obs.tlbis.size(), 3u);
  EXPECT_EQ(obs.tlbis[0].kind, TlbiKind::Range);
  EXPECT_EQ(obs.tlbis[0].nr_pages, 16u);
  EXPECT_EQ(obs.tlbis[1].kind, TlbiKind::Page);
  EXPECT_FALSE(obs.tlbis[1].sync);
  EXPECT_EQ(obs.tlbis[2].kind, TlbiKind::Mm);
  env.remove_observer(&obs);
  env.read(s);
  EXPECT_EQ(obs.accesses.size(), 5u);
  mem.add_folio(Pfn{32}, 2);
  EXPECT_EQ(env.folio_of(Pfn{33}).head, Pfn{32});
  EXPECT_TRUE(env.mm_is_user());
  EXPECT_EQ(&env.geometry(), &env.geometry());
  EXPECT_EQ(env.geometry().granule, GetParam());
}

INSTANTIATE_TEST_SUITE_P(AllGranules, HwBasics,
                         ::testing::Values(Granule::k4K, Granule::k16K, Granule::k64K),
                         [](const ::testing::TestParamInfo<Granule>& info) {
                           std::string n("g");
                           n.append(geometry(info.param).name);
                           return n;
                         });

}  // namespace
}  // namespace contpte
