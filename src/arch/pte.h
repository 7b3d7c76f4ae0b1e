// arch/pte.h — the Linux arm64 PTE: bit layout, protections, helpers.
//
// Owns: the descriptor bits at their architectural positions (Arm ARM D8.3,
// "VMSAv8-64 descriptor formats") plus Linux's software bits, the PAGE_*
// protections, and the pgtable.h helpers under their kernel names
// (pte_mkdirty, pte_wrprotect, pte_modify, ...), with the same meaning.
// Must not know: PTE_CONT policy (engine), memory, TLBs.
//
// Linux 6.10+ encodes PROT_NONE as "present but invalid": valid bit clear
// and nG set (PTE_PRESENT_INVALID == PTE_NG). PTE_WRITE is the DBM bit:
// a writable clean PTE is DBM|RDONLY, and hardware makes it dirty by
// clearing RDONLY.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "arch/granule.h"

namespace contpte {

// Distinct types so that a PFN, a VA and a PTE value cannot be mixed up.
struct Pte {
  std::uint64_t val = 0;
  friend constexpr bool operator==(Pte, Pte) = default;
};
struct Pfn {
  std::uint64_t val = 0;
  friend constexpr auto operator<=>(Pfn, Pfn) = default;
  constexpr Pfn operator+(std::uint64_t n) const { return Pfn{val + n}; }
};
struct VirtAddr {
  std::uint64_t val = 0;
  friend constexpr auto operator<=>(VirtAddr, VirtAddr) = default;
  constexpr VirtAddr operator+(std::uint64_t n) const { return VirtAddr{val + n}; }
};
struct PhysAddr {
  std::uint64_t val = 0;
  friend constexpr auto operator<=>(PhysAddr, PhysAddr) = default;
};

namespace bits {
constexpr std::uint64_t bit(unsigned n) { return std::uint64_t{1} << n; }
// Hardware, level-3 page descriptor (Arm ARM D8.3.2).
inline constexpr std::uint64_t kValid = bit(0);
inline constexpr std::uint64_t kTable = bit(1);           // "page" type at level 3
inline constexpr std::uint64_t kTypePage = kValid | kTable;
inline constexpr std::uint64_t kAttrIndxMask = 7u << 2;   // AttrIndx[2:0]
inline constexpr std::uint64_t kUser = bit(6);            // AP[1]
inline constexpr std::uint64_t kRdonly = bit(7);          // AP[2]
inline constexpr std::uint64_t kShared = 3u << 8;         // SH[1:0] = inner shareable
inline constexpr std::uint64_t kAf = bit(10);
inline constexpr std::uint64_t kNg = bit(11);
inline constexpr std::uint64_t kGp = bit(50);
inline constexpr std::uint64_t kDbm = bit(51);
inline constexpr std::uint64_t kCont = bit(52);
inline constexpr std::uint64_t kPxn = bit(53);
inline constexpr std::uint64_t kUxn = bit(54);
inline constexpr std::uint64_t kPoIdxMask = 7ull << 60;   // POE index (FEAT_S1POE)
// Linux software bits (arch/arm64/include/asm/pgtable-prot.h).
inline constexpr std::uint64_t kWrite = kDbm;             // PTE_WRITE is PTE_DBM
inline constexpr std::uint64_t kDirty = bit(55);          // PTE_DIRTY (software)
inline constexpr std::uint64_t kSpecial = bit(56);        // PTE_SPECIAL
inline constexpr std::uint64_t kPresentInvalid = kNg;     // with kValid clear
// Output address: PA[47:page_shift] in place (no 52-bit PA: FEAT_LPA unused).
inline constexpr std::uint64_t kAddrMask48 = (bit(48) - 1);
}  // namespace bits

// ---- PAGE_* protections (pgtable-prot.h, Linux 6.12, MT_NORMAL = 0) -------
struct PgProt {
  std::uint64_t val = 0;
  friend constexpr bool operator==(PgProt, PgProt) = default;
};

namespace prot {
inline constexpr std::uint64_t kPageDefault = bits::kTypePage | bits::kAf | bits::kShared;
inline constexpr PgProt kPageNone{(kPageDefault & ~bits::kValid) | bits::kPresentInvalid |
                                  bits::kRdonly | bits::kNg | bits::kPxn | bits::kUxn};
inline constexpr PgProt kPageReadonly{kPageDefault | bits::kUser | bits::kRdonly | bits::kNg |
                                      bits::kPxn | bits::kUxn};
inline constexpr PgProt kPageReadonlyExec{kPageDefault | bits::kUser | bits::kRdonly |
                                          bits::kNg | bits::kPxn};
// Shared+writable pages are clean by default: PTE_RDONLY | PTE_WRITE.
inline constexpr PgProt kPageShared{kPageDefault | bits::kUser | bits::kRdonly | bits::kNg |
                                    bits::kPxn | bits::kUxn | bits::kWrite};
inline constexpr PgProt kPageSharedExec{kPageDefault | bits::kUser | bits::kRdonly |
                                        bits::kNg | bits::kPxn | bits::kWrite};
inline constexpr PgProt kPageExeconly{kPageDefault | bits::kRdonly | bits::kNg | bits::kPxn};
}  // namespace prot

// The scenario protections `r rw rx rwx x none` (docs/scenario.md).
enum class Prot : std::uint8_t { R, RW, RX, RWX, X, None };

struct ProtInfo {
  std::string_view name;
  Prot id;
  PgProt pgprot;
  std::string_view linux_name;
};
inline constexpr std::array<ProtInfo, 6> kProts{{
    {"r", Prot::R, prot::kPageReadonly, "PAGE_READONLY"},
    {"rw", Prot::RW, prot::kPageShared, "PAGE_SHARED"},
    {"rx", Prot::RX, prot::kPageReadonlyExec, "PAGE_READONLY_EXEC"},
    {"rwx", Prot::RWX, prot::kPageSharedExec, "PAGE_SHARED_EXEC"},
    {"x", Prot::X, prot::kPageExeconly, "PAGE_EXECONLY"},
    {"none", Prot::None, prot::kPageNone, "PAGE_NONE"},
}};

constexpr PgProt pgprot_of(Prot p) { return kProts[static_cast<std::size_t>(p)].pgprot; }
constexpr std::string_view prot_name(Prot p) { return kProts[static_cast<std::size_t>(p)].name; }
constexpr std::optional<Prot> prot_from_name(std::string_view s) {
  for (const auto& p : kProts)
    if (p.name == s) return p.id;
  return std::nullopt;
}

// ---- the pgtable.h helpers ---------------------------------------------
// Each is a pure function of the PTE value; page_shift is explicit where the
// output address is involved because the granule is chosen at run time.

constexpr bool pte_valid(Pte p) { return p.val & bits::kValid; }
constexpr bool pte_present_invalid(Pte p) {
  return (p.val & (bits::kValid | bits::kPresentInvalid)) == bits::kPresentInvalid;
}
constexpr bool pte_present(Pte p) { return pte_valid(p) || pte_present_invalid(p); }
constexpr bool pte_none(Pte p) { return p.val == 0; }
constexpr bool pte_young(Pte p) { return p.val & bits::kAf; }
constexpr bool pte_write(Pte p) { return p.val & bits::kWrite; }
constexpr bool pte_rdonly(Pte p) { return p.val & bits::kRdonly; }
constexpr bool pte_cont(Pte p) { return p.val & bits::kCont; }
constexpr bool pte_special(Pte p) { return p.val & bits::kSpecial; }
constexpr bool pte_sw_dirty(Pte p) { return p.val & bits::kDirty; }
// Hardware dirty: DBM set and RDONLY cleared by the walker on a write.
constexpr bool pte_hw_dirty(Pte p) { return pte_write(p) && !pte_rdonly(p); }
constexpr bool pte_dirty(Pte p) { return pte_sw_dirty(p) || pte_hw_dirty(p); }
constexpr bool pte_valid_cont(Pte p) { return pte_valid(p) && pte_cont(p); }
constexpr bool pte_user_exec(Pte p) { return !(p.val & bits::kUxn); }

constexpr Pte set_pte_bit(Pte p, std::uint64_t b) { return Pte{p.val | b}; }
constexpr Pte clear_pte_bit(Pte p, std::uint64_t b) { return Pte{p.val & ~b}; }

constexpr Pte pte_mkyoung(Pte p) { return set_pte_bit(p, bits::kAf); }
constexpr Pte pte_mkold(Pte p) { return clear_pte_bit(p, bits::kAf); }
constexpr Pte pte_mkcont(Pte p) { return set_pte_bit(p, bits::kCont); }
constexpr Pte pte_mknoncont(Pte p) { return clear_pte_bit(p, bits::kCont); }
constexpr Pte pte_mkspecial(Pte p) { return set_pte_bit(p, bits::kSpecial); }

// A writable PTE made dirty must also lose RDONLY, or hardware would still
// see it as clean and a later write would not need to set anything.
constexpr Pte pte_mkdirty(Pte p) {
  p = set_pte_bit(p, bits::kDirty);
  if (pte_write(p)) p = clear_pte_bit(p, bits::kRdonly);
  return p;
}
// Clean means "hardware must mark it again": RDONLY back on.
constexpr Pte pte_mkclean(Pte p) {
  p = clear_pte_bit(p, bits::kDirty);
  return set_pte_bit(p, bits::kRdonly);
}
// Write-protect first moves hardware-dirty into software-dirty: once DBM is
// cleared, !RDONLY no longer means dirty and the information would be lost.
constexpr Pte pte_wrprotect(Pte p) {
  if (pte_hw_dirty(p)) p = set_pte_bit(p, bits::kDirty);
  p = clear_pte_bit(p, bits::kWrite);
  return set_pte_bit(p, bits::kRdonly);
}
// pte_mkwrite_novma: a software-dirty PTE becomes hardware-dirty.
constexpr Pte pte_mkwrite(Pte p) {
  p = set_pte_bit(p, bits::kWrite);
  if (pte_sw_dirty(p)) p = clear_pte_bit(p, bits::kRdonly);
  return p;
}

constexpr std::uint64_t pte_addr_mask(unsigned page_shift) {
  return bits::kAddrMask48 & ~((std::uint64_t{1} << page_shift) - 1);
}
constexpr Pfn pte_pfn(Pte p, unsigned page_shift) {
  return Pfn{(p.val & pte_addr_mask(page_shift)) >> page_shift};
}
constexpr Pte pfn_pte(Pfn pfn, PgProt prot, unsigned page_shift) {
  return Pte{((pfn.val << page_shift) & pte_addr_mask(page_shift)) | prot.val};
}
// Every bit but the output address.
constexpr PgProt pte_pgprot(Pte p, unsigned page_shift) {
  return PgProt{p.val & ~pte_addr_mask(page_shift)};
}
constexpr Pte pte_advance_pfn(Pte p, std::uint64_t nr, unsigned page_shift) {
  return pfn_pte(pte_pfn(p, page_shift) + nr, pte_pgprot(p, page_shift), page_shift);
}

// arm64's pte_same ignores RDONLY on present PTEs: it is the one bit the
// hardware flips (dirty via DBM), so two PTEs that differ only there map the
// same thing.
constexpr bool pte_same(Pte a, Pte b) {
  std::uint64_t l = a.val, r = b.val;
  if (pte_present(a)) l &= ~bits::kRdonly;
  if (pte_present(b)) r &= ~bits::kRdonly;
  return l == r;
}

// Change protection, keeping output address, AF, dirty state, CONT and
// software bits. Hardware-dirty is saved into PTE_DIRTY first because the new
// protection may not carry DBM; a software-dirty result is made hardware-dirty
// again if the new protection is writable.
constexpr Pte pte_modify(Pte p, PgProt newprot) {
  constexpr std::uint64_t mask = bits::kUser | bits::kPxn | bits::kUxn | bits::kRdonly |
                                 bits::kPresentInvalid | bits::kValid | bits::kWrite |
                                 bits::kGp | bits::kAttrIndxMask | bits::kPoIdxMask;
  if (pte_hw_dirty(p)) p = set_pte_bit(p, bits::kDirty);
  p.val = (p.val & ~mask) | (newprot.val & mask);
  if (pte_sw_dirty(p)) p = pte_mkdirty(p);
  return p;
}

// The scenario protection a PTE carries, if it is one of the six
// (ignoring AF, dirty state, CONT and the output address).
constexpr std::optional<Prot> pte_prot(Pte p, unsigned page_shift) {
  Pte canon = pte_mknoncont(pte_mkold(pte_mkclean(Pte{pte_pgprot(p, page_shift).val})));
  for (const auto& pi : kProts) {
    Pte want = pte_mkold(pte_mkclean(Pte{pi.pgprot.val}));
    if (canon == want) return pi.id;
  }
  return std::nullopt;
}

// ---- level-2 (PMD) block descriptors: transparent huge pages -------------
// arm64 keeps a PMD in the same format as a PTE, with the table bit clear
// for a block (PMD_TYPE_SECT); the pmd_* helpers are the pte_* ones on the
// same word, so only the descriptor type needs its own functions.
constexpr bool pmd_none(Pte p) { return p.val == 0; }
// pmd_mkhuge: a block, not a table.
constexpr Pte pmd_mkhuge(Pte p) { return clear_pte_bit(p, bits::kTable); }
// A present block (valid, or PROT_NONE's present-invalid) — not a table.
constexpr bool pmd_trans_huge(Pte p) { return !pmd_none(p) && pte_present(p) && !(p.val & bits::kTable); }
constexpr bool pmd_table(Pte p) { return pte_valid(p) && (p.val & bits::kTable); }
// pmd_mkinvalid: what pmdp_invalidate leaves while a huge PMD is split or
// changed: not valid for the walker, still present for software.
constexpr Pte pmd_mkinvalid(Pte p) {
  return set_pte_bit(clear_pte_bit(p, bits::kValid), bits::kPresentInvalid);
}

// ---- helper algebra pinned at compile time (cf. mm/debug_vm_pgtable.c) ---
static_assert(pmd_trans_huge(pmd_mkhuge(Pte{prot::kPageReadonly.val})));
static_assert(pmd_trans_huge(pmd_mkinvalid(pmd_mkhuge(Pte{prot::kPageShared.val}))));
static_assert(pmd_trans_huge(pmd_mkhuge(Pte{prot::kPageNone.val})));
static_assert(!pmd_trans_huge(Pte{prot::kPageShared.val}) && !pmd_trans_huge(Pte{}));
static_assert(pte_dirty(pte_wrprotect(pte_mkdirty(Pte{prot::kPageShared.val}))),
              "still dirty after wrprotect of mkdirty");
static_assert(pte_dirty(pte_wrprotect(Pte{prot::kPageShared.val & ~bits::kRdonly})),
              "wrprotect keeps hardware-dirty as software-dirty");
static_assert(!pte_dirty(Pte{prot::kPageShared.val}), "PAGE_SHARED starts clean");
static_assert(!pte_write(pte_wrprotect(pte_mkwrite(Pte{prot::kPageReadonly.val}))));
static_assert(pte_present(Pte{prot::kPageNone.val}) && !pte_valid(Pte{prot::kPageNone.val}));
static_assert(pte_same(Pte{prot::kPageShared.val}, pte_mkdirty(Pte{prot::kPageShared.val})) == false);
static_assert(pte_pfn(pfn_pte(Pfn{0x1234}, prot::kPageShared, 12), 12) == Pfn{0x1234});

}  // namespace contpte
