// tests/mm/mm_property_test.cpp — the memory manager keeps memory what a
// program believes it is, whatever folio sizes and splits it chose.
//
// Property: random sequences of mm operations (write, read, munmap, mmap,
// mprotect, madvise dontneed / populate_write / free / cold / pageout, fork,
// exit, reclaim) in several processes, with PMD THP,
// mTHP and contpte on, run through the simulated MMU. A reference model
// gives each page of each process a content token: a write makes a new one,
// fork copies them, a read of an empty page sees the zero token. After every
// operation, for every page of every live process:
//  * an access succeeds exactly when the reference VMA permits it;
//  * a page with a token is mapped (MADV_PAGEOUT may drop only pages
//    MADV_FREE'd and not written since; a child of fork may lack zero-page
//    PTEs its parent had); the zero token maps a zero page; pages
//    with equal tokens map the same frame and different tokens never do
//    (a page a fault populated without being written gets a fresh token);
//  * a page mapped writable holds a token no other process holds (else a
//    write would be seen by the other: broken copy-on-write);
//  * no page mapped read-only by its VMA is writable.
// At the end every process exits and every frame but the zero pages is free
// (no leaked or doubly freed folio), every page table but the roots is back
// in the pool (free_pgtables), and the conformance checker saw no stale
// TLB entry, conflict or misprogrammed block.
//
// CONTPTE_SEED=N runs only seed N; a failure prints the seed and the ops.
// Seeds 1-12 per granule (1-2 under AddressSanitizer).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "support/sanitizer.h"

#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <unordered_map>
#include <algorithm>
#include <string>
#include <vector>

#include "hw/checker.h"
#include "hw/mmu.h"
#include "hw/tlb.h"
#include "mm/buddy.h"
#include "mm/mm.h"

using namespace contpte;

namespace {

// Under AddressSanitizer the same work takes ~25x longer: fewer sequences.
using contpte::testing::kAsan;

constexpr std::uint64_t kZeroToken = 0;

struct RefPage {
  bool mapped = false;
  Prot prot = Prot::RW;
  std::optional<std::uint64_t> token;  // content; nullopt = never touched
  bool lazy = false;  // MADV_FREE since the last write: may be discarded
};

class World {
 public:
  World(Granule g, std::uint64_t seed)
      : mem_(g, std::uint64_t{1} << 30),
        buddy_(mem_),
        initial_free_(buddy_.free_frames()),
        checker_(mem_.geometry(), false),
        mmu_(mem_, resolve_tlb_config("default"), true, &checker_, seed),
        sys_(mem_, buddy_, Features{}, thp_settings(mem_.geometry())),
        rng_(seed) {
    sys_.observers.push_back(&mmu_);
    const Geometry& geo = mem_.geometry();
    page_ = geo.page_size();
    arena_ = (g == Granule::k4K ? 4 : 2) * geo.pmd_size();  // 8192 or 4096 pages
    base_ = 0x40'0000'0000;
    procs_.push_back(std::make_unique<Mm>(sys_, 0, 1));
    procs_[0]->mmap(arena_, Prot::RW, false, VirtAddr{base_}, 0);
    refs_.emplace_back(arena_ / page_);
    for (auto& r : refs_[0]) r.mapped = true;
  }

  static ThpSettings thp_settings(const Geometry& g) {
    ThpSettings t;
    const unsigned pmd_order = g.pmd_shift() - g.page_shift;
    t.per_order[pmd_order] = ThpMode::Always;
    t.per_order[__builtin_ctz(g.cont_ptes)] = ThpMode::Always;  // the contpte block size
    t.per_order[2] = ThpMode::Always;
    return t;
  }

  // One random operation; returns its description.
  std::string step() {
    const std::size_t p = pick_live();
    std::uniform_int_distribution<int> op(0, 99);
    const int o = op(rng_);
    if (o < 30) return access(p, true);
    if (o < 45) return access(p, false);
    auto [start, len] = range();
    const std::string where = fmt::format("{}+{}", start, len);
    if (o < 52) {
      procs_[p]->munmap(page_at(start), len * page_);
      for (std::uint64_t i = start; i < start + len; ++i) refs_[p][i] = RefPage{};
      return fmt::format("p{} munmap {}", p, where);
    }
    if (o < 57) {
      for (std::uint64_t i = start; i < start + len; ++i)
        if (refs_[p][i].mapped) return fmt::format("p{} mmap (occupied) {}", p, where);
      EXPECT_TRUE(procs_[p]->mmap(len * page_, Prot::RW, false, page_at(start), 0).has_value());
      for (std::uint64_t i = start; i < start + len; ++i) refs_[p][i] = RefPage{true, Prot::RW, {}};
      return fmt::format("p{} mmap {}", p, where);
    }
    if (o < 67) {
      static constexpr Prot kProts[] = {Prot::R, Prot::RW, Prot::RW, Prot::None};
      const Prot np = kProts[std::uniform_int_distribution<int>(0, 3)(rng_)];
      procs_[p]->mprotect(page_at(start), len * page_, np);
      for (std::uint64_t i = start; i < start + len; ++i)
        if (refs_[p][i].mapped) refs_[p][i].prot = np;
      return fmt::format("p{} mprotect {} {}", p, where, prot_name(np));
    }
    if (o < 74) {
      procs_[p]->madvise_dontneed(page_at(start), len * page_);
      for (std::uint64_t i = start; i < start + len; ++i) refs_[p][i].token.reset();
      return fmt::format("p{} dontneed {}", p, where);
    }
    if (o < 78) {
      const bool done = procs_[p]->populate_write(page_at(start), len * page_) == FaultResult::Handled;
      // Pages are populated in order up to the first one the VMA does not
      // let be written (madvise_populate stops there); a populated page is
      // written: it holds data of its own.
      bool ok = true;
      for (std::uint64_t i = start; i < start + len && ok; ++i) {
        ok = refs_[p][i].mapped && refs_[p][i].prot == Prot::RW;
        if (ok) {
          populate_token(p, i);
          refs_[p][i].lazy = false;
        }
      }
      EXPECT_EQ(done, ok) << where;
      return fmt::format("p{} populate_write {}{}", p, where, ok ? "" : " (EFAULT)");
    }
    if (o < 84 && live() < 4) {
      const auto child = static_cast<unsigned>(procs_.size());
      procs_.push_back(procs_[p]->fork(child, static_cast<std::uint16_t>(child + 1)));
      refs_.push_back(refs_[p]);
      return fmt::format("p{} fork -> p{}", p, child);
    }
    if (o < 88 && live() > 1) {
      procs_[p]->exit_mmap();
      procs_[p].reset();
      return fmt::format("exit p{}", p);
    }
    if (o < 92) {
      procs_[p]->age_young(std::uniform_int_distribution<std::uint64_t>(1, 5000)(rng_));
      return fmt::format("p{} reclaim", p);
    }
    const VirtAddr a = page_at(start);
    const std::uint64_t n = len * page_;
    if (o < 95) {
      procs_[p]->madvise_free(a, n);
      for (std::uint64_t i = start; i < start + len; ++i) refs_[p][i].lazy = true;
      return fmt::format("p{} free {}", p, where);
    }
    if (o < 97) {
      procs_[p]->madvise_cold(a, n, false);
      return fmt::format("p{} cold {}", p, where);
    }
    procs_[p]->madvise_cold(a, n, true);
    // Only lazyfree content may go; what went reads as zeros again.
    for (std::uint64_t i = start; i < start + len; ++i) {
      RefPage& r = refs_[p][i];
      if (r.token && r.lazy && !pte_present(procs_[p]->leaf_pte(page_at(i), false))) r.token.reset();
    }
    return fmt::format("p{} pageout {}", p, where);
  }

  // The checks of the file comment; returns a description of the first
  // broken one, or "".
  std::string check() {
    const unsigned shift = mem_.geometry().page_shift;
    std::unordered_map<std::uint64_t, std::uint64_t> pfn_of_token;
    std::unordered_map<std::uint64_t, std::uint64_t> token_of_pfn;
    std::unordered_map<std::uint64_t, unsigned> holders;  // token -> live processes holding it
    std::vector<std::vector<Pte>> leaves(procs_.size());
    for (std::size_t p = 0; p < procs_.size(); ++p)
      if (procs_[p]) leaves[p] = leaf_words(*procs_[p]);
    // Absorb pages a fault populated without a write: fresh zeroed frames.
    for (std::size_t p = 0; p < procs_.size(); ++p) {
      if (!procs_[p]) continue;
      for (std::uint64_t i = 0; i < refs_[p].size(); ++i) {
        RefPage& r = refs_[p][i];
        const Pte pte = leaves[p][i];
        if (!r.token && pte_present(pte)) {
          if (!r.mapped) return where(p, i, "mapped although unmapped in the reference");
          r.token = is_zero(pte_pfn(pte, shift)) ? kZeroToken : ++next_token_;
        } else if (r.token == kZeroToken && pte_present(pte) && !is_zero(pte_pfn(pte, shift))) {
          // A write elsewhere in the huge zero PMD replaced it with a new,
          // zeroed THP (do_huge_zero_wp_pmd): still zeros, in a frame of its own.
          r.token = ++next_token_;
        }
      }
    }
    for (std::size_t p = 0; p < procs_.size(); ++p) {
      if (!procs_[p]) continue;
      std::vector<std::uint64_t> mine;
      for (const auto& r : refs_[p])
        if (r.token && *r.token != kZeroToken) mine.push_back(*r.token);
      std::sort(mine.begin(), mine.end());
      mine.erase(std::unique(mine.begin(), mine.end()), mine.end());
      for (std::uint64_t t : mine) ++holders[t];
    }
    for (std::size_t p = 0; p < procs_.size(); ++p) {
      if (!procs_[p]) continue;
      for (std::uint64_t i = 0; i < refs_[p].size(); ++i) {
        const RefPage& r = refs_[p][i];
        const Pte pte = leaves[p][i];
        if (!r.token) {
          if (pte_present(pte)) return where(p, i, "present without content");
          continue;
        }
        if (!pte_present(pte)) {
          // Fork does not copy a VMA that never had anonymous memory
          // (vma_needs_copy): its zero-page PTEs are left behind, and the
          // page reads as zeros through a new fault just the same.
          if (*r.token == kZeroToken) continue;
          return where(p, i, "holds data but is not mapped");
        }
        const std::uint64_t pfn = pte_pfn(pte, shift).val;
        if (r.prot != Prot::RW && pte_write(pte)) return where(p, i, "writable in a read-only VMA");
        if (*r.token == kZeroToken) {
          if (!is_zero(Pfn{pfn})) return where(p, i, "should map a zero page");
          if (pte_write(pte)) return where(p, i, "zero page mapped writable");
          continue;
        }
        if (is_zero(Pfn{pfn})) return where(p, i, "holds data but maps a zero page");
        if (auto [it, fresh] = pfn_of_token.emplace(*r.token, pfn); !fresh && it->second != pfn)
          return where(p, i, "same content, different frames");
        if (auto [it, fresh] = token_of_pfn.emplace(pfn, *r.token); !fresh && it->second != *r.token)
          return where(p, i, "one frame holds two different contents");
        if (pte_write(pte) && holders[*r.token] > 1)
          return where(p, i, "writable while another process shares the frame");
      }
    }
    if (!checker_.violations().empty())
      return fmt::format("checker: {}: {}", rule_name(checker_.violations().front().rule), checker_.violations().front().detail);
    return "";
  }

  // Every process exits: every folio goes back to the allocator.
  // Every process exits: every folio goes back to the allocator, and every
  // page table but each address space's root to the table pool.
  std::string teardown() {
    for (auto& m : procs_)
      if (m) m->exit_mmap();
    const std::size_t roots = procs_.size();
    procs_.clear();
    const std::uint64_t zero_frames = 1 + (huge_zero() ? std::uint64_t{1} << huge_order() : 0);
    if (buddy_.free_frames() != initial_free_ - zero_frames)
      return fmt::format("leak: {} frames", std::int64_t(initial_free_ - zero_frames - buddy_.free_frames()));
    if (mem_.live_tables() != roots)
      return fmt::format("leak: {} page tables beyond the {} roots", mem_.live_tables() - roots, roots);
    return "";
  }

 private:
  std::string access(std::size_t p, bool write) {
    std::uint64_t i = std::uniform_int_distribution<std::uint64_t>(0, arena_ / page_ - 1)(rng_);
    RefPage& r = refs_[p][i];
    const VirtAddr va = page_at(i);
    const bool allowed = r.mapped && (write ? r.prot == Prot::RW : (r.prot == Prot::RW || r.prot == Prot::R));
    bool ok = false;
    for (int attempt = 0; attempt < 4; ++attempt) {
      const AccessResult a = mmu_.access(procs_[p]->page_table(), procs_[p]->asid(), va,
                                         write ? MemAccess::Write : MemAccess::Read, attempt > 0);
      if (a.fault == Fault::None) {
        ok = true;
        break;
      }
      if (procs_[p]->handle_fault(va, write, false) == FaultResult::Segv) break;
    }
    EXPECT_EQ(ok, allowed) << "p" << p << (write ? " write " : " read ") << std::hex << va.val;
    if (ok && write) {
      r.token = ++next_token_;
      r.lazy = false;
    }
    if (ok && !write && !r.token) r.token = kZeroToken;
    return fmt::format("p{} {} {}", p, write ? "write" : "read", i);
  }

  void populate_token(std::size_t p, std::uint64_t i) {
    RefPage& r = refs_[p][i];
    // A page already written and exclusively this process's stays as is;
    // one shared or zero gets a copy (its own frame).
    if (r.token && *r.token != kZeroToken) {
      unsigned holders = 0;
      for (std::size_t q = 0; q < procs_.size(); ++q)
        if (procs_[q] && refs_[q][i].token == r.token) ++holders;
      if (holders == 1) return;
    }
    r.token = ++next_token_;
  }

  // The stored leaf word of every arena page (present, pfn and write need
  // no gathering), read a PMD at a time.
  std::vector<Pte> leaf_words(Mm& mm) const {
    const Geometry& g = mem_.geometry();
    std::vector<Pte> out(arena_ / page_);
    for (std::uint64_t i = 0; i < out.size(); i += g.ptrs_per_table()) {
      const VirtAddr va{base_ + i * page_};
      if (auto pte = mm.page_table().pte_slot(va, false)) {
        for (unsigned j = 0; j < g.ptrs_per_table(); ++j) out[i + j] = pte->ptr()[j];
      } else if (const Pte pmd = mm.leaf_pte(va, false); pmd_trans_huge(pmd)) {
        for (unsigned j = 0; j < g.ptrs_per_table(); ++j) out[i + j] = pte_advance_pfn(pmd, j, g.page_shift);
      }
    }
    return out;
  }

  // The address of arena page `i`.
  VirtAddr page_at(std::uint64_t i) const { return VirtAddr{base_ + i * page_}; }

  std::pair<std::uint64_t, std::uint64_t> range() {
    const std::uint64_t pages = arena_ / page_;
    const Geometry& g = mem_.geometry();
    // Mostly aligned to contpte blocks or PMDs, sometimes any page.
    std::uint64_t unit = 1;
    switch (std::uniform_int_distribution<int>(0, 3)(rng_)) {
      case 0: unit = g.cont_ptes; break;
      case 1: unit = g.ptrs_per_table(); break;
      default: break;
    }
    const std::uint64_t units = pages / unit;
    std::uint64_t start = std::uniform_int_distribution<std::uint64_t>(0, units - 1)(rng_);
    std::uint64_t len = std::uniform_int_distribution<std::uint64_t>(1, std::min<std::uint64_t>(units - start, 3 * g.cont_ptes))(rng_);
    return {start * unit, len * unit};
  }

  std::size_t live() const {
    std::size_t n = 0;
    for (const auto& m : procs_) n += m != nullptr;
    return n;
  }
  std::size_t pick_live() {
    std::vector<std::size_t> l;
    for (std::size_t i = 0; i < procs_.size(); ++i)
      if (procs_[i]) l.push_back(i);
    return l[std::uniform_int_distribution<std::size_t>(0, l.size() - 1)(rng_)];
  }
  unsigned huge_order() const { return mem_.geometry().pmd_shift() - mem_.geometry().page_shift; }
  std::optional<Pfn> huge_zero() {
    // Allocated only if some fault used it; is_huge_zero knows which.
    for (std::uint64_t f = 0; f < mem_.nr_frames(); f += std::uint64_t{1} << huge_order())
      if (sys_.is_huge_zero(Pfn{f})) return Pfn{f};
    return std::nullopt;
  }
  bool is_zero(Pfn pfn) {
    if (pfn == sys_.zero_pfn()) return true;
    const std::uint64_t head = pfn.val & ~((std::uint64_t{1} << huge_order()) - 1);
    return sys_.is_huge_zero(Pfn{head});
  }
  std::string where(std::size_t p, std::uint64_t i, std::string_view what) const {
    return fmt::format("p{} page {}: {}", p, i, what);
  }

  PhysMem mem_;
  BuddyAllocator buddy_;
  std::uint64_t initial_free_;
  Checker checker_;
  Mmu mmu_;
  MmSystem sys_;
  std::mt19937_64 rng_;
  std::uint64_t page_ = 0, arena_ = 0, base_ = 0;
  std::vector<std::unique_ptr<Mm>> procs_;
  std::vector<std::vector<RefPage>> refs_;
  std::uint64_t next_token_ = 0;
};

class MmProperty : public ::testing::TestWithParam<Granule> {};

TEST_P(MmProperty, ContentAndSharingMatchTheReferenceAndNothingLeaks) {
  std::vector<std::uint64_t> seeds;
  if (const char* s = std::getenv("CONTPTE_SEED"))
    seeds.push_back(std::strtoull(s, nullptr, 10));
  else
    for (std::uint64_t s = 1; s <= (kAsan ? 2u : 12u); ++s) seeds.push_back(s);
  const int ops = GetParam() == Granule::k4K ? 250 : 120;
  for (std::uint64_t seed : seeds) {
    World w(GetParam(), seed);
    std::vector<std::string> log;
    std::string bad;
    for (int i = 0; i < ops && bad.empty(); ++i) {
      log.push_back(w.step());
      bad = w.check();
    }
    if (bad.empty()) bad = w.teardown();
    if (!bad.empty()) {
      std::string all;
      for (const auto& l : log) all += fmt::format("  {}\n", l);
      FAIL() << "seed " << seed << " after op " << log.size() << ": " << bad << "\n" << all;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Granules, MmProperty, ::testing::Values(Granule::k4K, Granule::k16K),
                         [](const auto& info) { return fmt::format("g{}", geometry(info.param).name); });

}  // namespace
