// tests/arch/pte_helpers_test.cpp — the pgtable.h helper algebra and the
// PAGE_* protections (arch/pte.h), in the spirit of mm/debug_vm_pgtable.c:
// one-line identities for every protection x granule, plus the arm64
// specifics docs/design.md "Semantics to respect" relies on (PTE_WRITE is DBM,
// !RDONLY means dirty on a DBM entry, PROT_NONE is present-invalid via nG).
#include <gtest/gtest.h>

#include <string>
#include <tuple>

#include "arch/pte.h"

namespace contpte {
namespace {

// ---- exact encodings (arch/arm64/include/asm/pgtable-hwdef.h, pgtable-prot.h, 6.12) ----
TEST(PteBits, ArchitecturalAndSoftwareBitPositions) {
  EXPECT_EQ(bits::kValid, 1ull << 0);
  EXPECT_EQ(bits::kUser, 1ull << 6);
  EXPECT_EQ(bits::kRdonly, 1ull << 7);
  EXPECT_EQ(bits::kShared, 3ull << 8);
  EXPECT_EQ(bits::kAf, 1ull << 10);
  EXPECT_EQ(bits::kNg, 1ull << 11);
  EXPECT_EQ(bits::kDbm, 1ull << 51);
  EXPECT_EQ(bits::kWrite, bits::kDbm) << "PTE_WRITE is PTE_DBM";
  EXPECT_EQ(bits::kCont, 1ull << 52);
  EXPECT_EQ(bits::kPxn, 1ull << 53);
  EXPECT_EQ(bits::kUxn, 1ull << 54);
  EXPECT_EQ(bits::kDirty, 1ull << 55);
  EXPECT_EQ(bits::kSpecial, 1ull << 56);
  EXPECT_EQ(bits::kPresentInvalid, bits::kNg) << "PTE_PRESENT_INVALID is PTE_NG (6.10+)";
}

// _PAGE_DEFAULT = PTE_TYPE_PAGE | PTE_AF | PTE_SHARED | PTE_ATTRINDX(MT_NORMAL=0) = 0x703.
TEST(PteBits, PageProtectionValues) {
  EXPECT_EQ(prot::kPageDefault, 0x703u);
  EXPECT_EQ(prot::kPageNone.val, 0x0060000000000F82ull);
  EXPECT_EQ(prot::kPageReadonly.val, 0x0060000000000FC3ull);
  EXPECT_EQ(prot::kPageReadonlyExec.val, 0x0020000000000FC3ull);
  EXPECT_EQ(prot::kPageShared.val, 0x0068000000000FC3ull);
  EXPECT_EQ(prot::kPageSharedExec.val, 0x0028000000000FC3ull);
  EXPECT_EQ(prot::kPageExeconly.val, 0x0020000000000F83ull);
}

TEST(PteBits, ScenarioProtectionNames) {
  const std::pair<const char*, PgProt> want[] = {
      {"r", prot::kPageReadonly},  {"rw", prot::kPageShared},    {"rx", prot::kPageReadonlyExec},
      {"rwx", prot::kPageSharedExec}, {"x", prot::kPageExeconly}, {"none", prot::kPageNone},
  };
  for (const auto& [name, pg] : want) {
    SCOPED_TRACE(name);
    auto p = prot_from_name(name);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(pgprot_of(*p), pg);
    EXPECT_EQ(prot_name(*p), name);
  }
  EXPECT_FALSE(prot_from_name("wr").has_value());
  EXPECT_FALSE(prot_from_name("").has_value());
}

TEST(PteBits, ProtectionPermissions) {
  // rw / rwx: writable but clean (DBM | RDONLY); the rest not writable.
  for (const auto& pi : kProts) {
    SCOPED_TRACE(std::string(pi.name));
    const Pte p{pi.pgprot.val};
    const bool writable = pi.id == Prot::RW || pi.id == Prot::RWX;
    EXPECT_EQ(pte_write(p), writable);
    EXPECT_TRUE(pte_rdonly(p)) << "every PAGE_* starts with RDONLY (clean)";
    EXPECT_FALSE(pte_dirty(p));
    EXPECT_TRUE(pte_young(p)) << "Linux's PAGE_* carry AF";
    EXPECT_FALSE(pte_cont(p));
    EXPECT_EQ(pte_valid(p), pi.id != Prot::None);
    EXPECT_TRUE(pte_present(p));
    const bool user_exec = pi.id == Prot::RX || pi.id == Prot::RWX || pi.id == Prot::X;
    EXPECT_EQ(pte_user_exec(p), user_exec);
  }
}

// PROT_NONE is "present but invalid": the valid bit clear and nG set.
TEST(PteBits, ProtNoneIsPresentInvalidViaNg) {
  const Pte none{prot::kPageNone.val};
  EXPECT_FALSE(pte_valid(none));
  EXPECT_TRUE(pte_present_invalid(none));
  EXPECT_TRUE(pte_present(none));
  EXPECT_FALSE(pte_valid_cont(pte_mkcont(none))) << "CONT on an invalid PTE means nothing";
  // Without nG an invalid non-zero word is not present (a swap entry, say).
  EXPECT_FALSE(pte_present(clear_pte_bit(none, bits::kNg)));
  EXPECT_FALSE(pte_present(Pte{}));
  EXPECT_TRUE(pte_none(Pte{}));
  // A valid PTE is present whatever its nG.
  EXPECT_TRUE(pte_present(clear_pte_bit(Pte{prot::kPageShared.val}, bits::kNg)));
  EXPECT_FALSE(pte_present_invalid(Pte{prot::kPageShared.val}));
}

TEST(PteBits, DirtyIsSoftwareOrHardwareDirty) {
  const Pte clean{prot::kPageShared.val};  // DBM | RDONLY
  ASSERT_TRUE(pte_write(clean));
  ASSERT_TRUE(pte_rdonly(clean));
  EXPECT_FALSE(pte_hw_dirty(clean));
  EXPECT_FALSE(pte_dirty(clean));
  const Pte hw = clear_pte_bit(clean, bits::kRdonly);
  EXPECT_TRUE(pte_hw_dirty(hw));
  EXPECT_FALSE(pte_sw_dirty(hw));
  EXPECT_TRUE(pte_dirty(hw));
  const Pte sw = set_pte_bit(clean, bits::kDirty);
  EXPECT_TRUE(pte_sw_dirty(sw));
  EXPECT_FALSE(pte_hw_dirty(sw));
  EXPECT_TRUE(pte_dirty(sw));
  // !RDONLY without DBM is not dirty: it is a plain writable-by-permission bit.
  const Pte ro_cleared{prot::kPageReadonly.val & ~bits::kRdonly};
  EXPECT_FALSE(pte_hw_dirty(ro_cleared));
  EXPECT_FALSE(pte_dirty(ro_cleared));
}

// ---- identities per protection x granule -------------------------------
class HelperAlgebra : public ::testing::TestWithParam<std::tuple<Granule, Prot>> {
 protected:
  unsigned shift() const { return geometry(std::get<0>(GetParam())).page_shift; }
  Prot prot() const { return std::get<1>(GetParam()); }
  // A PTE of this protection for a PFN near the top of a 48-bit PA space.
  Pte pte() const {
    const std::uint64_t max_pfn = (std::uint64_t{1} << (48 - shift())) - 1;
    return pfn_pte(Pfn{max_pfn - 12345}, pgprot_of(prot()), shift());
  }
};

// mm/debug_vm_pgtable.c pte_basic_tests().
TEST_P(HelperAlgebra, DebugVmPgtableBasicIdentities) {
  const Pte p = pte();
  EXPECT_TRUE(pte_same(p, p));
  EXPECT_TRUE(pte_young(pte_mkyoung(pte_mkold(p))));
  EXPECT_TRUE(pte_dirty(pte_mkdirty(pte_mkclean(p))));
  EXPECT_TRUE(pte_write(pte_mkwrite(pte_wrprotect(p))));
  EXPECT_FALSE(pte_young(pte_mkold(pte_mkyoung(p))));
  EXPECT_FALSE(pte_dirty(pte_mkclean(pte_mkdirty(p))));
  EXPECT_FALSE(pte_write(pte_wrprotect(pte_mkwrite(p))));
  EXPECT_TRUE(pte_dirty(pte_wrprotect(pte_mkdirty(p))));
  EXPECT_FALSE(pte_dirty(pte_wrprotect(pte_mkclean(p))));
}

TEST_P(HelperAlgebra, MkdirtyClearsRdonlyOnlyWhenWritable) {
  const Pte d = pte_mkdirty(pte());
  EXPECT_TRUE(pte_sw_dirty(d));
  EXPECT_EQ(pte_hw_dirty(d), pte_write(pte()));
  EXPECT_EQ(pte_rdonly(d), !pte_write(pte())) << "!RDONLY would grant write without DBM";
}

TEST_P(HelperAlgebra, MkcleanSetsRdonlyAndClearsDirty) {
  const Pte c = pte_mkclean(pte_mkdirty(pte()));
  EXPECT_FALSE(pte_sw_dirty(c));
  EXPECT_TRUE(pte_rdonly(c));
  EXPECT_FALSE(pte_dirty(c));
  EXPECT_EQ(pte_write(c), pte_write(pte())) << "cleaning keeps the write permission (DBM)";
}

TEST_P(HelperAlgebra, WrprotectMovesHardwareDirtyIntoSoftwareDirty) {
  Pte hw = pte();
  if (pte_write(hw)) hw = clear_pte_bit(hw, bits::kRdonly);  // as the MMU makes it dirty
  const Pte w = pte_wrprotect(hw);
  EXPECT_FALSE(pte_write(w));
  EXPECT_TRUE(pte_rdonly(w));
  EXPECT_EQ(pte_dirty(w), pte_dirty(hw));
  EXPECT_EQ(pte_sw_dirty(w), pte_hw_dirty(hw));
  EXPECT_EQ(pte_pfn(w, shift()), pte_pfn(hw, shift()));
}

TEST_P(HelperAlgebra, MkwriteTurnsSoftwareDirtyIntoHardwareDirty) {
  const Pte d = pte_wrprotect(pte_mkdirty(pte()));
  const Pte w = pte_mkwrite(d);
  EXPECT_TRUE(pte_write(w));
  EXPECT_TRUE(pte_hw_dirty(w));
  const Pte c = pte_mkwrite(pte_wrprotect(pte_mkclean(pte())));
  EXPECT_TRUE(pte_write(c));
  EXPECT_TRUE(pte_rdonly(c)) << "a clean PTE made writable stays clean";
  EXPECT_FALSE(pte_dirty(c));
}

TEST_P(HelperAlgebra, PteSameIgnoresRdonlyOnPresentPtes) {
  const Pte p = pte();
  EXPECT_TRUE(pte_same(p, clear_pte_bit(p, bits::kRdonly)));
  EXPECT_FALSE(pte_same(p, pte_mkold(pte_mkyoung(set_pte_bit(p, bits::kDirty)))));
  EXPECT_FALSE(pte_same(p, pte_advance_pfn(p, 1, shift())));
  EXPECT_FALSE(pte_same(p, pte_mkold(p)) && pte_young(p));
  // Not present: every bit counts.
  const Pte np = clear_pte_bit(clear_pte_bit(p, bits::kValid), bits::kNg);
  ASSERT_FALSE(pte_present(np));
  EXPECT_FALSE(pte_same(np, clear_pte_bit(np, bits::kRdonly)));
}

TEST_P(HelperAlgebra, PteModifyKeepsPfnAccessDirtyContAndSpecial) {
  const unsigned s = shift();
  Pte p = pte_mkspecial(pte_mkcont(pte_mkyoung(pte())));
  if (pte_write(p)) p = clear_pte_bit(p, bits::kRdonly);  // hardware-dirty if it can be
  for (const auto& to : kProts) {
    SCOPED_TRACE(std::string(to.name));
    const Pte m = pte_modify(p, to.pgprot);
    EXPECT_EQ(pte_pfn(m, s), pte_pfn(p, s));
    EXPECT_TRUE(pte_young(m));
    EXPECT_TRUE(pte_cont(m));
    EXPECT_TRUE(pte_special(m));
    EXPECT_EQ(pte_dirty(m), pte_dirty(p)) << "hardware-dirty survives any protection change";
    EXPECT_EQ(pte_write(m), pte_write(Pte{to.pgprot.val}));
    EXPECT_EQ(pte_valid(m), to.id != Prot::None);
    EXPECT_TRUE(pte_present(m));
    EXPECT_EQ(pte_prot(clear_pte_bit(m, bits::kSpecial), s), to.id);
    if (pte_write(m) && pte_dirty(m)) {
      EXPECT_TRUE(pte_hw_dirty(m)) << "re-made hardware-dirty";
    }
    // And back.
    const Pte back = pte_modify(m, pgprot_of(prot()));
    EXPECT_EQ(pte_prot(clear_pte_bit(back, bits::kSpecial), s), prot());
    EXPECT_EQ(pte_pfn(back, s), pte_pfn(p, s));
  }
}

TEST_P(HelperAlgebra, PfnRoundTripsAndAdvances) {
  const unsigned s = shift();
  const Pte p = pte();
  EXPECT_EQ(pte_pfn(pfn_pte(pte_pfn(p, s), pte_pgprot(p, s), s), s), pte_pfn(p, s));
  EXPECT_EQ(pfn_pte(pte_pfn(p, s), pte_pgprot(p, s), s), p);
  EXPECT_EQ(pte_pfn(pte_advance_pfn(p, 7, s), s), pte_pfn(p, s) + 7);
  EXPECT_EQ(pte_pgprot(pte_advance_pfn(p, 7, s), s), pte_pgprot(p, s));
  EXPECT_EQ(pte_pgprot(p, s), pgprot_of(prot())) << "no PFN bit leaks into the protection";
}

TEST_P(HelperAlgebra, ProtIdentifiedDespiteAccessDirtyAndCont) {
  const unsigned s = shift();
  Pte p = pte_mkcont(pte_mkdirty(pte_mkold(pte())));
  EXPECT_EQ(pte_prot(p, s), prot());
  EXPECT_EQ(pte_prot(pte_mkclean(pte_mkyoung(p)), s), prot());
  EXPECT_FALSE(pte_prot(pte_mkspecial(p), s).has_value()) << "not one of the six protections";
}

std::string algebra_name(const ::testing::TestParamInfo<std::tuple<Granule, Prot>>& info) {
  std::string n("g");
  n.append(geometry(std::get<0>(info.param)).name);
  n.append("_");
  n.append(prot_name(std::get<1>(info.param)));
  return n;
}

INSTANTIATE_TEST_SUITE_P(
    AllProtsAllGranules, HelperAlgebra,
    ::testing::Combine(::testing::Values(Granule::k4K, Granule::k16K, Granule::k64K),
                       ::testing::Values(Prot::R, Prot::RW, Prot::RX, Prot::RWX, Prot::X,
                                         Prot::None)),
    algebra_name);

}  // namespace
}  // namespace contpte
