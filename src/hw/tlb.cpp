// hw/tlb.cpp — one TLB structure: placement, lookup, replacement, invalidation.
//
// Lookup must cost a few nanoseconds (issue 10: the whole access path runs
// at >= 150 M accesses/s when every access hits the L1 TLB), so nothing
// scans a structure's entries on an access:
//  - the entry that hit (or was filled) last is checked first, inline
//    (tlb.h);
//  - then, for each entry size present (a bit mask of size_shifts; at most
//    five for a 4K granule: 4K, 64K, 2M, 32M, 1G), one probe: in a fully
//    associative structure of <= 64 entries, of a 256-bucket filter (count
//    and last slot per bucket of a 16-bit tag of the key), and only when
//    that slot is stale, a SIMD compare of every slot's tag; in a larger
//    fully associative one, of a hash index keyed by (ASID, VA, size) that
//    holds the keys itself (one cache line per probe); in a set-associative
//    one, of the ways of the set (VA >> size_shift) % sets, whose keys are
//    packed together — what the hardware compares.
// Replacement state: a fully associative structure keeps an intrusive
// circular recency list (head = most recent, its predecessor the victim),
// so its LRU/FIFO victim is O(1) however many entries it has; a
// set-associative one of up to 8 ways keeps the recency order of its ways
// (4 bits a way, the victim last), so that a fill takes the last way and
// shifts it to the front; a wider one keeps a stamp per way (last use for
// LRU, fill time for FIFO) and takes the set's oldest. Keys, ASIDs and that
// state are packed 12 bytes a way apart from the entries, so a probe or a
// fill touches few cache lines. Nothing allocates after construction (but
// for renumbering a set's stamps when its clock runs out).
// The fill after a walk (Tlb::fill following a lookup that missed the same
// VA) skips insert()'s search for an entry with its key, which the miss
// showed absent, and for the usual way counts (4, 5, 8) runs with the set's
// layout a compile-time constant: a miss costs a few hundred instructions
// end to end, and every one of them showed in the issue-10 profile.
// Tlb::Impl itself is in hw/tlb_impl.h (its fills in hw/tlb_fill.h), so
// that the MMU's fused miss path (Mmu::miss_fast) can inline the L2 lookup
// and the fills of both levels.
#include "hw/tlb.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "hw/tlb_fill.h"

namespace contpte {

namespace {
constexpr std::uint32_t kNone = Tlb::Impl::kNone;
}  // namespace

const std::vector<ReplacementInfo>& replacement_policies() {
  static const std::vector<ReplacementInfo> k{
      {"lru", Replacement::Lru, "evict the least recently used entry of the set"},
      {"fifo", Replacement::Fifo, "evict the oldest filled entry of the set; hits do not refresh"},
      {"random", Replacement::Random,
       "evict a random way of the set (deterministic from the seed)"},
  };
  return k;
}

const std::vector<ContHoldingInfo>& cont_holdings() {
  static const std::vector<ContHoldingInfo> k{
      {"one-entry", ContHolding::OneEntry, "a contiguous block is one entry (what contpte is for)"},
      {"split-pages", ContHolding::SplitPages,
       "the core ignores the contiguous hint: one entry per page (or block) accessed"},
  };
  return k;
}

std::string_view replacement_name(Replacement r) {
  for (const auto& p : replacement_policies())
    if (p.id == r) return p.name;
  return "?";
}

std::string_view cont_holding_name(ContHolding c) {
  for (const auto& h : cont_holdings())
    if (h.id == c) return h.name;
  return "?";
}

Tlb::Tlb(const TlbStructureConfig& cfg, std::uint64_t seed)
    : impl_(std::make_unique<Impl>(cfg, seed)) {}
Tlb::~Tlb() = default;
Tlb::Tlb(Tlb&& o) noexcept : impl_(std::move(o.impl_)), mru_(std::exchange(o.mru_, nullptr)) {}
Tlb& Tlb::operator=(Tlb&& o) noexcept {
  impl_ = std::move(o.impl_);
  mru_ = std::exchange(o.mru_, nullptr);
  return *this;
}

const TlbStructureConfig& Tlb::config() const { return impl_->cfg; }
std::size_t Tlb::size() const { return impl_->live; }

const TlbEntry* Tlb::lookup_slow(std::uint16_t asid, std::uint64_t va) {
  return lookup_after_mru(asid, va);
}

const TlbEntry* Tlb::peek(std::uint16_t asid, std::uint64_t va) const {
  std::uint32_t set = 0;
  const std::uint32_t s = impl_->probe(asid, va, &set);
  return s == kNone ? nullptr : &impl_->entries[s].e;
}

std::uint32_t Tlb::Impl::insert(const TlbEntry& in, std::uint64_t va,
                                std::optional<TlbEntry>* evicted) {
  unsigned shift = in.size_shift;
  if (shift < 6 || shift >= 64) [[unlikely]]
    throw std::invalid_argument("TLB entry covering 2^" + std::to_string(shift) +
                                " bytes: expected 2^6 to 2^63");
  // The range the new entry covers, computed in registers and written once
  // into its slot (building a TlbEntry field by field on the stack and then
  // copying it costs store-forwarding stalls on the fill path).
  std::uint64_t first = in.va & ~((std::uint64_t{1} << shift) - 1);
  std::uint64_t pa = in.pa - (in.va - first);  // pa stays the output address of va
  // A core that ignores the contiguous hint keeps only the descriptor the
  // access used: one page at level 3, one block at level 2 (Arm ARM, "the
  // Contiguous bit": a hint, which an implementation may ignore and then
  // caches the translation of the single descriptor).
  if (cfg.cont == ContHolding::SplitPages && in.cont && in.page_shift >= 9 && in.level >= 1 &&
      in.level <= 3) {
    const unsigned desc_shift = in.page_shift + (3u - in.level) * (in.page_shift - 3u);
    if (desc_shift < shift) {
      const bool covered = va - first < (std::uint64_t{1} << shift);
      const std::uint64_t page = (covered ? va : first) & ~((std::uint64_t{1} << desc_shift) - 1);
      pa += page - first;
      first = page;
      shift = desc_shift;
    }
  }
  const TlbEntry* src = &in;
  // Field by field: callers build entries field by field just before
  // inserting them, and a block copy would read those fresh stores back
  // with wider loads, which the store buffer cannot forward.
  static_assert(sizeof(TlbEntry) == 48, "a new TlbEntry field must be copied here");
  auto write = [&](std::uint32_t s) { write_entry(s, *src, first, pa, shift); };

  // The set the key maps to; and whether an entry with this key may be
  // live: not when the last lookup, with no entry added since, missed a VA
  // the key covers (that entry would have covered it).
  const std::uint32_t set = fully ? 0 : set_of_vpn(first >> shift);
  const bool known_absent =
      miss_valid && miss_asid == in.asid && miss_va - first < (std::uint64_t{1} << shift);
  if (!known_absent) {
    const std::uint64_t key = key_of(first, shift);
    std::uint32_t s = kNone;
    if (fully) {
      s = find(in.asid, shift, first);
    } else if (const std::uint32_t w = find_way(set, key, in.asid); w != kNone) {
      s = set * ways + w;
    }
    if (s != kNone) {
      write(s);  // same key: refresh in place (index unchanged)
      touch(set, s);
      return s;
    }
  }

  bool displaces = false;
  const std::uint32_t w = place(set, &displaces);
  const std::uint32_t slot = set * ways + w;
  std::optional<TlbEntry> saved;  // engaged only when `in` is the victim
  if (displaces) {
    const TlbEntry& victim = entries[slot].e;
    // `in` may be the entry being evicted (a caller re-inserting what it
    // looked up): copy from the saved value then.
    if (evicted) {
      evicted->emplace(victim);
      if (src == &victim) src = &**evicted;
    } else if (src == &victim) {
      saved.emplace(victim);
      src = &*saved;
    }
    detach(set, w, slot);
  }
  write(slot);
  attach(set, w, slot);
  return slot;
}

std::optional<TlbEntry> Tlb::insert(const TlbEntry& in, std::uint64_t va) {
  std::optional<TlbEntry> evicted;
  mru_ = &impl_->entries[impl_->insert(in, va, &evicted)].e;
  return evicted;
}

void Tlb::fill(const TlbEntry& in, std::uint64_t va) {
  // The fill after a walk, decided before entering insert(): an entry kept
  // as given (not split into pages) whose key the last lookup, which
  // missed, showed absent, in a structure with a direct fill.
  Impl& im = *impl_;
  const unsigned shift = in.size_shift;
  if (im.miss_valid && im.miss_asid == in.asid && shift >= 6 && shift < 64 &&
      !(in.cont && im.cfg.cont == ContHolding::SplitPages)) [[likely]] {
    const std::uint64_t first = in.va & ~((std::uint64_t{1} << shift) - 1);
    if (im.miss_va - first < (std::uint64_t{1} << shift) && (!im.fully || im.small)) [[likely]] {
      const std::uint64_t pa = in.pa - (in.va - first);
      std::uint32_t s;
      if (im.fully)
        s = im.fill_absent_small(in, first, pa, shift);
      else
        s = im.fill_absent_ways(in, first, pa, shift);
      mru_ = &im.entries[s].e;
      return;
    }
  }
  fill_general(in, va);
}

// Tlb::fill_absent_l1/l2 for any organisation.
void Tlb::fill_absent_other(const TlbEntry& e, std::uint64_t va) {
  Impl& im = *impl_;
  std::uint32_t s;
  switch (im.fill_kind) {
    case Impl::FillKind::Small: s = im.fill_absent_small(e, e.va, e.pa, e.size_shift); break;
    case Impl::FillKind::Order:
    case Impl::FillKind::Order4:
    case Impl::FillKind::Order5:
    case Impl::FillKind::Order8:
    case Impl::FillKind::Ways16:
    case Impl::FillKind::Ways32: s = im.fill_absent_ways(e, e.va, e.pa, e.size_shift); break;
    default: fill_general(e, va); return;
  }
  mru_ = &im.entries[s].e;
}

void Tlb::fill_general(const TlbEntry& in, std::uint64_t va) {
  mru_ = &impl_->entries[impl_->insert(in, va, nullptr)].e;
}

// The slots of every live entry of `asid` overlapping [start, start+len),
// found by probing every aligned position of every live size, or by one
// pass over the slots when that costs fewer lookups.
static std::vector<std::uint32_t> overlapping_slots(const Tlb::Impl& im, std::uint16_t asid,
                                                    std::uint64_t start, std::uint64_t len);

unsigned Tlb::invalidate_range(std::uint16_t asid, std::uint64_t start, std::uint64_t len) {
  Impl& im = *impl_;
  if (len == 0 || im.live == 0) return 0;
  const auto slots = overlapping_slots(im, asid, start, len);
  for (std::uint32_t s : slots) im.remove(s);
  if (!slots.empty()) mru_ = nullptr;
  return static_cast<unsigned>(slots.size());
}

void Tlb::for_each_overlapping_impl(std::uint16_t asid, std::uint64_t start, std::uint64_t len,
                                    const std::function<void(const TlbEntry&)>& fn) const {
  const Impl& im = *impl_;
  if (len == 0 || im.live == 0) return;
  for (std::uint32_t s : overlapping_slots(im, asid, start, len)) fn(im.entries[s].e);
}

static std::vector<std::uint32_t> overlapping_slots(const Tlb::Impl& im, std::uint16_t asid,
                                                    std::uint64_t start, std::uint64_t len) {
  std::vector<std::uint32_t> out;
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const std::uint64_t last = len - 1 > max - start ? max : start + (len - 1);
  std::uint64_t probes = 0;
  for (std::uint64_t m = im.shift_mask; m != 0; m &= m - 1) {
    const unsigned sh = static_cast<unsigned>(std::countr_zero(m));
    probes += ((last >> sh) - (start >> sh)) + 1;
    if (probes > im.entries.size()) break;
  }
  if (probes > im.entries.size()) {
    for (std::uint32_t set = 0, s = 0; set < im.nsets; ++set) {
      const std::uint64_t* keys = im.keys(set);
      for (std::uint32_t w = 0; w < im.ways; ++w, ++s)
        if (keys[w] != 0 && im.overlaps(im.entries[s].e, asid, start, last)) out.push_back(s);
    }
    return out;
  }
  for (std::uint64_t m = im.shift_mask; m != 0; m &= m - 1) {
    const unsigned sh = static_cast<unsigned>(std::countr_zero(m));
    for (std::uint64_t vpn = start >> sh;; ++vpn) {
      if (const std::uint32_t s = im.find(asid, sh, vpn << sh); s != kNone) out.push_back(s);
      if (vpn == (last >> sh)) break;
    }
  }
  return out;
}

unsigned Tlb::invalidate_asid(std::uint16_t asid) {
  Impl& im = *impl_;
  unsigned dropped = 0;
  for (std::uint32_t set = 0, s = 0; set < im.nsets && im.live != 0; ++set) {
    const std::uint64_t* keys = im.keys(set);
    const std::uint16_t* asids = im.asids(set);
    for (std::uint32_t w = 0; w < im.ways; ++w, ++s)
      if (keys[w] != 0 && asids[w] == asid) {
        im.detach(set, w, s);
        if (im.fully) im.free_slots.push_back(s);
        ++dropped;
      }
  }
  if (dropped) mru_ = nullptr;
  return dropped;
}

unsigned Tlb::invalidate_all() {
  Impl& im = *impl_;
  const unsigned dropped = static_cast<unsigned>(im.live);
  im.reset();
  mru_ = nullptr;
  return dropped;
}

void Tlb::for_each_impl(const std::function<void(const TlbEntry&)>& fn) const {
  const Impl& im = *impl_;
  for (std::uint32_t set = 0, s = 0; set < im.nsets; ++set) {
    const std::uint64_t* keys = im.keys(set);
    for (std::uint32_t w = 0; w < im.ways; ++w, ++s)
      if (keys[w] != 0) fn(im.entries[s].e);
  }
}

}  // namespace contpte
