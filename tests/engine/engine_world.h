// tests/engine/engine_world.h — a small simulated machine for engine tests,
// and the contpte invariant every test checks after every operation.
//
// Owns: World (PhysMem + PageTable + BuddyAllocator + SimEnv for one granule
// and variant), PTE construction helpers, direct word access that bypasses
// the engine (the "hardware" or a buggy caller), and contpte_invariant().
// Must not know: the scenario language, the mm layer above the allocator.
//
// Everything is per-object: tests build a World on the stack; nothing here
// keeps state between tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/pgtable.h"
#include "hw/sim_env.h"
#include "mm/buddy.h"

namespace contpte::test {

// 1 GiB of simulated RAM is plenty: frames hold no data (PhysMem is sparse).
inline constexpr std::uint64_t kWorldRam = std::uint64_t{1} << 30;
// Base of the test region: aligned to the largest PMD (512M with 64K
// pages), so a test region starting here never crosses a page-table page
// before pmd_size() bytes.
inline constexpr std::uint64_t kWorldBase = 0x4000'0000;

inline std::string granule_param_name(const ::testing::TestParamInfo<Granule>& info) {
  std::string name("g");
  name.append(geometry(info.param).name);
  return name;
}

inline Features features_for(Variant v) {
  Features f;
  f.variant = v;
  f.bbml2_noabort = v == Variant::Bbml2;
  f.hafdbs = true;
  return f;
}

class World {
 public:
  World(Granule g, Variant v, std::uint64_t ram = kWorldRam)
      : mem_(g, ram), pt_(mem_), buddy_(mem_), env_(mem_, pt_, features_for(v)) {}
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  SimEnv& env() { return env_; }
  const EngineCounters& counters() const { return env_.counters(); }
  PhysMem& mem() { return mem_; }
  PageTable& pt() { return pt_; }
  BuddyAllocator& buddy() { return buddy_; }
  const Geometry& geo() const { return mem_.geometry(); }
  unsigned shift() const { return geo().page_shift; }
  unsigned cont() const { return geo().cont_ptes; }
  unsigned cont_order() const {
    unsigned o = 0;
    while ((1u << o) < cont()) ++o;
    return o;
  }
  std::uint64_t page() const { return geo().page_size(); }
  Variant variant() const { return env_.features().variant; }

  // Page `i` of the test region, and the first page of block `b`.
  VirtAddr va(std::uint64_t i) const { return VirtAddr{kWorldBase + i * page()}; }
  VirtAddr block_va(std::uint64_t b) const { return va(b * cont()); }
  PteSlot slot(VirtAddr a) { return pt_.pte_slot(a, true).value(); }
  PteSlot slot_of_page(std::uint64_t i) { return slot(va(i)); }

  Pfn alloc(unsigned order) {
    auto pfn = buddy_.alloc_folio(order);
    if (!pfn) throw std::runtime_error("test world: out of frames");
    return *pfn;
  }

  // pfn_pte(pfn, prot), old unless `young`, pte_mkdirty() if `dirty` — the
  // value docs/scenario.md's set_ptes builds.
  Pte mk(Pfn pfn, PgProt prot, bool young = false, bool dirty = false) const {
    Pte p = pfn_pte(pfn, prot, shift());
    p = young ? pte_mkyoung(p) : pte_mkold(p);
    if (dirty) p = pte_mkdirty(p);
    return p;
  }
  Pte mk(Pfn pfn, Prot prot, bool young = false, bool dirty = false) const {
    return mk(pfn, pgprot_of(prot), young, dirty);
  }

  // ---- the engine's public API on page indices of the region ----
  void set_ptes(std::uint64_t i, Pfn pfn, unsigned nr, Prot prot, bool young = false,
                bool dirty = false) {
    contpte::set_ptes(env_, va(i), slot_of_page(i), mk(pfn, prot, young, dirty), nr);
  }
  Pte get(std::uint64_t i) { return contpte::ptep_get(env_, slot_of_page(i)); }

  // ---- bypassing the engine ----
  // The stored word, read without an Env call (no observer sees it).
  Pte raw(std::uint64_t i) { return *slot_of_page(i).ptr(); }
  // Write a word as a buggy caller or a test set-up would: no engine, no TLBI.
  void poke(std::uint64_t i, Pte v) { *slot_of_page(i).ptr() = v; }
  // What the MMU does on an access with FEAT_HAFDBS, in the accessed page's
  // own entry (also inside a CONT block): sets AF; a write through a DBM
  // entry also clears RDONLY. A write to a read-only, non-DBM entry or any
  // access to an invalid entry faults and changes nothing. Returns whether
  // the access was permitted.
  bool hw_access(std::uint64_t i, bool write) {
    Pte* p = slot_of_page(i).ptr();
    Pte v = *p;
    if (!pte_valid(v)) return false;
    if (write) {
      if (pte_rdonly(v) && !pte_write(v)) return false;
      if (pte_write(v)) v = clear_pte_bit(v, bits::kRdonly);
    }
    *p = pte_mkyoung(v);
    return true;
  }

  bool all_cont(std::uint64_t first, std::uint64_t n) {
    for (std::uint64_t i = first; i < first + n; ++i)
      if (!pte_cont(raw(i))) return false;
    return true;
  }
  bool none_cont(std::uint64_t first, std::uint64_t n) {
    for (std::uint64_t i = first; i < first + n; ++i)
      if (pte_cont(raw(i))) return false;
    return true;
  }

 private:
  PhysMem mem_;
  PageTable pt_;
  BuddyAllocator buddy_;
  SimEnv env_;
};

inline std::string describe_pte(Pte p, unsigned shift) {
  std::ostringstream os;
  os << "0x" << std::hex << p.val << std::dec;
  if (pte_none(p)) return os.str() + " {none}";
  os << " {" << (pte_valid(p) ? "v" : (pte_present(p) ? "present-invalid" : "swap?"))
     << " pfn=0x" << std::hex << pte_pfn(p, shift).val << std::dec
     << (pte_young(p) ? " af" : "") << (pte_write(p) ? " dbm" : "")
     << (pte_rdonly(p) ? " ro" : "") << (pte_sw_dirty(p) ? " swdirty" : "")
     << (pte_cont(p) ? " cont" : "") << (pte_special(p) ? " special" : "") << "}";
  return os.str();
}

// Every bit of a PTE except the output address, AF and the dirty state
// (software DIRTY, and RDONLY, which hardware clears to make a DBM entry dirty).
inline PgProt canonical_prot(Pte p, unsigned shift) {
  return pte_pgprot(pte_mkold(pte_mkclean(p)), shift);
}

// The contpte invariant on the blocks overlapping pages [first, first+n) of
// the region:
//  * every valid PTE with CONT belongs to an aligned block whose valid PTEs
//    all have CONT, map consecutive PFNs of one folio from a block-aligned PFN
//    and agree on every bit but AF and the dirty state;
//  * `strict` (the state between two PTE-level calls, which hold the PTL):
//    such a block has no invalid entry at all, and no invalid PTE has CONT
//    (contpte never writes CONT on an invalid PTE). The non-strict form is
//    the one a walker may see mid-operation (break-before-make).
inline ::testing::AssertionResult contpte_invariant(World& w, std::uint64_t first,
                                                    std::uint64_t n, bool strict = true) {
  const unsigned cont = w.cont();
  const unsigned shift = w.shift();
  const std::uint64_t b0 = first / cont;
  const std::uint64_t b1 = (first + n + cont - 1) / cont;
  for (std::uint64_t b = b0; b < b1; ++b) {
    const PteSlot s0 = w.slot_of_page(b * cont);
    const Pte* words = s0.ptr();
    auto at = [](unsigned k, const char* why) {
      std::ostringstream os;
      os << "[" << k << "] " << why;
      return os.str();
    };
    auto fail = [&](const std::string& why) {
      std::ostringstream os;
      os << "contpte invariant broken in block " << b << " (va 0x" << std::hex
         << w.block_va(b).val << std::dec << ", granule " << w.geo().name << "): " << why
         << "\n";
      for (unsigned k = 0; k < cont; ++k)
        if (!pte_none(words[k]))
          os << "  [" << k << "] " << describe_pte(words[k], shift) << "\n";
      return ::testing::AssertionFailure() << os.str();
    };
    bool any_cont = false;
    for (unsigned k = 0; k < cont; ++k) {
      if (pte_valid_cont(words[k])) any_cont = true;
      if (strict && !pte_valid(words[k]) && pte_cont(words[k]))
        return fail(at(k, "invalid PTE has PTE_CONT"));
    }
    if (!any_cont) continue;
    std::uint64_t base = 0;
    bool have_base = false;
    PgProt prot{};
    for (unsigned k = 0; k < cont; ++k) {
      const Pte p = words[k];
      if (!pte_valid(p)) {
        if (strict) return fail(at(k, "entry of a CONT block is not valid"));
        continue;
      }
      if (!pte_cont(p)) return fail(at(k, "valid entry lacks PTE_CONT"));
      const std::uint64_t pfn = pte_pfn(p, shift).val;
      if (!have_base) {
        if (pfn < k) return fail("PFN underflow");
        base = pfn - k;
        prot = canonical_prot(p, shift);
        have_base = true;
        if (base % cont != 0) return fail("block does not start at a block-aligned PFN");
        const FolioInfo f = w.mem().folio_of(Pfn{base});
        if (!f.valid || f.head.val > base || f.head.val + f.nr_pages < base + cont)
          return fail("block is not inside one folio");
      } else {
        if (pfn != base + k) return fail(at(k, "PFNs are not consecutive"));
        if (canonical_prot(p, shift) != prot)
          return fail(at(k, "entry differs in bits other than AF/dirty"));
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// The invariant over every PTE page of the world's page table.
inline ::testing::AssertionResult contpte_invariant_all(World& w, bool strict = true) {
  std::vector<std::uint64_t> pages;
  const std::uint64_t per_table = w.geo().ptrs_per_table();
  w.pt().for_each_pte_page([&](VirtAddr base, PteSlot) { pages.push_back(base.val); });
  for (std::uint64_t base : pages) {
    if (base < kWorldBase) return ::testing::AssertionFailure() << "PTE page below the test region";
    auto r = contpte_invariant(w, (base - kWorldBase) / w.page(), per_table, strict);
    if (!r) return r;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace contpte::test
