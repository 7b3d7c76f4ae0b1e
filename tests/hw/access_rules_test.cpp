// hw/access_rules.h: the hardware access rules have one home, and their two
// callers agree. The MMU (the main CPU, hw/mmu.cpp) and the explorer's
// hardware branch (another CPU, explore/hw_branch.cpp) each access random
// leaf descriptors (valid or not, USER, RDONLY, DBM, AF, UXN, with and
// without FEAT_HAFDBS, loads, stores and fetches); both must take the same
// fault class, leave the same word in memory, make the same FEAT_HAFDBS
// update and cache the same descriptor.

#include <gtest/gtest.h>

#include <random>

#include <fmt/format.h>

#include "engine/pgtable.h"
#include "explore/explorer.h"
#include "hw/access_rules.h"
#include "hw/mmu.h"
#include "hw/page_table.h"
#include "mm/buddy.h"

using namespace contpte;

namespace {

constexpr VirtAddr kVa{0x40000000};
constexpr MemAccess kKinds[] = {MemAccess::Read, MemAccess::Write, MemAccess::Exec};

// A leaf descriptor with each bit the rules read chosen at random.
Pte random_desc(std::mt19937_64& rng, Pfn pfn) {
  Pte d = pfn_pte(pfn, prot::kPageShared, 12);
  auto flip = [&](std::uint64_t bit) {
    if (rng() % 2) d.val ^= bit;
  };
  flip(bits::kUser);
  flip(bits::kRdonly);
  flip(bits::kDbm);
  flip(bits::kAf);
  flip(bits::kUxn);
  if (rng() % 8 == 0) d.val &= ~bits::kValid;
  return d;
}

struct Outcome {
  Fault fault = Fault::None;
  Pte word{};              // the descriptor in memory after the access
  Pte cached{};            // completed: the descriptor its TLB caches
  bool set_af = false;     // the FEAT_HAFDBS update set AF
  bool set_dirty = false;  //   and cleared RDONLY
};

// The main CPU's MMU, without a checker (its fused miss path applies).
Outcome mmu_access(Pte d, MemAccess kind, bool hafdbs) {
  PhysMem mem(Granule::k4K, std::uint64_t{64} << 20);
  PageTable pt(mem);
  const PteSlot slot = *pt.pte_slot(kVa, true);
  *slot.ptr() = d;
  Mmu mmu(mem, resolve_tlb_config("neoverse-n1"), hafdbs, nullptr, 1);
  Outcome o;
  o.fault = mmu.access(pt, 1, kVa, kind).fault;
  o.word = *slot.ptr();
  if (o.fault == Fault::None) {
    const TlbEntry* e = (kind == MemAccess::Exec ? mmu.l1i() : mmu.l1d()).lookup(1, kVa.val);
    EXPECT_NE(e, nullptr);
    if (e) o.cached = e->desc;
  }
  o.set_af = mmu.stats().hw_af_updates != 0;
  o.set_dirty = mmu.stats().hw_dirty_updates != 0;
  return o;
}

// Another CPU in the explorer: one hardware branch, alone.
Outcome explorer_access(Pte d, MemAccess kind, bool hafdbs) {
  PhysMem mem(Granule::k4K, std::uint64_t{64} << 20);
  PageTable pt(mem);
  const PteSlot slot = *pt.pte_slot(kVa, true);
  *slot.ptr() = d;
  ExploreSetup s;
  s.mem = &mem;
  s.pt = &pt;
  s.features.hafdbs = hafdbs;
  ExploreBranch hw;
  hw.kind = ExploreBranch::Kind::Hw;
  hw.label = "hw access";
  hw.access = kind;
  hw.va = kVa;
  s.branches.push_back(hw);
  Explorer x(std::move(s));
  const KeptRun k = x.run_seeded(1, nullptr);
  Outcome o;
  o.word = *slot.ptr();
  switch (k.ends.at(0)) {
    case BranchEnd::Completed: o.cached = k.steps.back().after; break;
    case BranchEnd::Unmapped: o.fault = Fault::Translation; break;
    case BranchEnd::Faulted: {
      // "faulted: <the fault's name>"
      bool named = false;
      for (AccessFault f : {AccessFault::Permission, AccessFault::ReadOnly, AccessFault::AccessFlag})
        if (k.outcomes.at(0) == "faulted: " + std::string(access_fault_name(f))) {
          o.fault = fault_class(f);
          named = true;
        }
      EXPECT_TRUE(named) << k.outcomes.at(0);
      break;
    }
    case BranchEnd::Stuck: ADD_FAILURE() << "the access never finished"; break;
  }
  for (const StepRecord& st : k.steps)
    if (st.kind == StepKind::HwUpdate && st.wrote) {
      o.set_af |= !pte_young(st.before) && pte_young(st.after);
      o.set_dirty |= pte_rdonly(st.before) && !pte_rdonly(st.after);
    }
  return o;
}

TEST(AccessRules, MmuAndExplorerHardwareBranchAgreeOnRandomDescriptors) {
  PhysMem mem(Granule::k4K, std::uint64_t{64} << 20);
  BuddyAllocator buddy(mem);
  const Pfn pfn = *buddy.alloc_folio(0);
  std::mt19937_64 rng(20);
  unsigned faults = 0, updates = 0, as_is = 0, handled = 0;
  for (int i = 0; i < 600; ++i) {
    const Pte d = random_desc(rng, pfn);
    const MemAccess kind = kKinds[rng() % 3];
    const bool hafdbs = rng() % 4 != 0;
    const Outcome m = mmu_access(d, kind, hafdbs);
    const Outcome x = explorer_access(d, kind, hafdbs);
    const std::string at =
        fmt::format("desc {:#018x}, access {}, hafdbs {}", d.val, static_cast<int>(kind), hafdbs);
    const AccessFault af = access_fault(pte_valid(d), d, kind, hafdbs);
    if (!hafdbs && (af == AccessFault::AccessFlag || (af == AccessFault::ReadOnly && pte_write(d))) &&
        (kind != MemAccess::Write || pte_write(d))) {
      // The faults FEAT_HAFDBS would have handled: the MMU reports them;
      // the explorer's CPU takes them to handle_pte_fault (the PTE-level
      // handler here), whose ptep_set_access_flags lets the access complete.
      // (A write to an entry without write permission is no such fault: the
      // handler gives up and the access faults as the MMU says.)
      ASSERT_EQ(m.fault, fault_class(af)) << at;
      ASSERT_EQ(x.fault, Fault::None) << at;
      ASSERT_TRUE(pte_young(x.word)) << at;
      ASSERT_EQ(pte_rdonly(x.word), pte_rdonly(d) && kind != MemAccess::Write) << at;
      ++handled;
      continue;
    }
    ASSERT_EQ(m.fault, x.fault) << at;
    ASSERT_EQ(m.fault, fault_class(access_fault(pte_valid(d), d, kind, hafdbs))) << at;
    ASSERT_EQ(m.word, x.word) << at;
    ASSERT_EQ(m.set_af, x.set_af) << at;
    ASSERT_EQ(m.set_dirty, x.set_dirty) << at;
    if (m.fault == Fault::None) {
      ASSERT_EQ(m.cached, x.cached) << at;
    }
    faults += m.fault != Fault::None;
    updates += m.word != d;
    as_is += m.fault == Fault::None && m.word == d;
  }
  // Every outcome occurred: faults, updates, descriptors cached as they are.
  EXPECT_GT(faults, 50u);
  EXPECT_GT(updates, 50u);
  EXPECT_GT(as_is, 50u);
  EXPECT_GT(handled, 10u);
}

// A TLB hit's permission is the walk's fault decision for a young entry
// without a hardware update: every combination of the bits it reads.
TEST(AccessRules, CachedPermitsIsTheFaultDecisionOfAYoungEntry) {
  const std::uint64_t bits_read[] = {bits::kUser, bits::kRdonly, bits::kDbm, bits::kUxn};
  for (unsigned m = 0; m < 16; ++m) {
    Pte d = pte_mkyoung(pfn_pte(Pfn{0x1234}, prot::kPageShared, 12));
    for (unsigned i = 0; i < 4; ++i) d.val = (m >> i) & 1 ? d.val | bits_read[i] : d.val & ~bits_read[i];
    for (MemAccess k : kKinds)
      EXPECT_EQ(cached_permits(d, k), access_fault(true, d, k, /*hafdbs=*/false) == AccessFault::None)
          << fmt::format("desc {:#018x}, access {}", d.val, static_cast<int>(k));
  }
}

// The faults a core without FEAT_HAFDBS takes to the A/D handler are
// exactly those that vanish when the walker has FEAT_HAFDBS: the same
// descriptor and access fault without it and not with it.
TEST(AccessRules, HafdbsWouldHandleExactlyTheFaultsHardwareAvoids) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const Pte d = random_desc(rng, Pfn{0x1234});
    for (MemAccess k : kKinds) {
      const AccessFault without = access_fault(pte_valid(d), d, k, /*hafdbs=*/false);
      const AccessFault with = access_fault(pte_valid(d), d, k, /*hafdbs=*/true);
      EXPECT_EQ(hafdbs_would_handle(without, d), without != AccessFault::None && with == AccessFault::None)
          << fmt::format("desc {:#018x}, access {}", d.val, static_cast<int>(k));
    }
  }
}

// The FEAT_HAFDBS compare-exchange: exchanges only over the value the walk
// read, writes AF and (a store through DBM) clears RDONLY, stores nothing
// when the word already is what it would write.
TEST(AccessRules, HafdbsUpdateIsOneCompareExchange) {
  const Pte clean = pte_mkold(pfn_pte(Pfn{0x1234}, prot::kPageShared, 12));  // DBM, RDONLY, AF clear
  Pte word = clean;
  unsigned stores = 0;
  auto store = [&](Pte* p, Pte v) {
    ++stores;
    *p = v;
  };
  HafdbsUpdate u = hafdbs_update(&word, pte_mkyoung(clean), true, store);
  EXPECT_FALSE(u.exchanged);
  EXPECT_EQ(word, clean);
  EXPECT_EQ(stores, 0u);
  u = hafdbs_update(&word, clean, true, store);
  EXPECT_TRUE(u.exchanged);
  EXPECT_TRUE(u.sets_af());
  EXPECT_TRUE(u.sets_dirty());
  EXPECT_TRUE(pte_young(word) && !pte_rdonly(word));
  EXPECT_EQ(stores, 1u);
  u = hafdbs_update(&word, word, true, store);
  EXPECT_TRUE(u.exchanged);
  EXPECT_FALSE(u.wrote());
  EXPECT_EQ(stores, 1u);
  // A load sets AF only.
  word = clean;
  u = hafdbs_update(&word, clean, false, store);
  EXPECT_TRUE(u.sets_af());
  EXPECT_FALSE(u.sets_dirty());
  EXPECT_TRUE(pte_rdonly(word));
}

}  // namespace
