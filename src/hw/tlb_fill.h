// hw/tlb_fill.h — the fill paths of a TLB structure (Tlb::Impl's
// fill_absent_* members) and the Tlb fast paths inlined from here into
// tlb.cpp and into the MMU's fused miss path (mmu.cpp): the lookup after
// the MRU check, the tag filter, and the direct fills of an L1 and an L2.
// Private to hw/, like hw/tlb_impl.h.
#pragma once

#include "hw/tlb_impl.h"

namespace contpte {

// A set that keeps stamps (more than kOrderWays ways).
template <class T>
std::uint32_t Tlb::Impl::fill_absent_stamps(const TlbEntry& in, std::uint64_t first,
                                            std::uint64_t pa, unsigned shift, std::uint32_t set) {
  std::uint64_t* k = keys(set);
  T* st = stamps<T>(set);
  // place(): the oldest stamp (a free way if any), or a random way when
  // the set is full and the policy is random.
  std::uint32_t w = oldest_as<T>(set);
  const std::uint64_t old_key = k[w];
  if (old_key != 0) {
    if (cfg.replacement == Replacement::Random) {
      w = static_cast<std::uint32_t>(next_random() % ways);
      replace_counts(static_cast<unsigned>(k[w] & 63), shift);
    } else {
      replace_counts(static_cast<unsigned>(old_key & 63), shift);
    }
    st[w] = 0;  // as detach() leaves it, for the renumbering in stamp_as()
  } else {
    add_counts(shift);
  }
  const std::uint32_t slot = set * ways + w;
  write_entry(slot, in, first, pa, shift);
  k[w] = key_of(first, shift);
  asids(set)[w] = in.asid;
  stamp_as<T>(set, w);
  miss_valid = false;
  return slot;
}

// A set that keeps its recency order: the way a fill takes is the order's
// last field (a free way, or the least recent), and becomes its first.
template <unsigned N>
inline std::uint32_t Tlb::Impl::fill_absent_order(const TlbEntry& in, std::uint64_t first,
                                                  std::uint64_t pa, unsigned shift,
                                                  std::uint32_t set) {
  // With N known here, the block's layout is constant.
  const std::uint32_t nw = N ? N : ways;
  unsigned char* blk = reinterpret_cast<unsigned char*>(setmem.data()) + std::size_t{set} * stride;
  std::uint64_t* k = reinterpret_cast<std::uint64_t*>(blk);
  std::uint32_t* order = reinterpret_cast<std::uint32_t*>(blk + 8 * std::size_t{nw});
  std::uint16_t* as = reinterpret_cast<std::uint16_t*>(blk + asid_off);
  if constexpr (N != 0)
    as = reinterpret_cast<std::uint16_t*>(blk + 8 * std::size_t{N} + 2 * (std::size_t{N} + 1));
  const std::uint32_t o = *order;
  std::uint32_t w = order_last(o, nw);
  const std::uint64_t old_key = k[w];
  if (old_key != 0) [[likely]] {
    if (cfg.replacement == Replacement::Random) [[unlikely]] {
      w = static_cast<std::uint32_t>(next_random() % nw);
      replace_counts(static_cast<unsigned>(k[w] & 63), shift);
      *order = order_to_front(o, w, nw);
    } else {
      replace_counts(static_cast<unsigned>(old_key & 63), shift);
      *order = order_rotate(o, nw);
    }
  } else {
    add_counts(shift);
    *order = order_rotate(o, nw);
  }
  const std::uint32_t slot = set * nw + w;
  write_entry(slot, in, first, pa, shift);
  k[w] = key_of(first, shift);
  as[w] = in.asid;
  miss_valid = false;
  return slot;
}

// Tlb::fill's set-associative case: the way count made a constant for the
// usual associativities.
inline std::uint32_t Tlb::Impl::fill_absent_ways(const TlbEntry& in, std::uint64_t first,
                                                 std::uint64_t pa, unsigned shift) {
  const std::uint32_t set = set_of_vpn(first >> shift);
  if (!ordered) {
    if (wide) return fill_absent_stamps<std::uint32_t>(in, first, pa, shift, set);
    return fill_absent_stamps<std::uint16_t>(in, first, pa, shift, set);
  }
  switch (ways) {
    case 4: return fill_absent_order<4>(in, first, pa, shift, set);
    case 5: return fill_absent_order<5>(in, first, pa, shift, set);
    case 8: return fill_absent_order<8>(in, first, pa, shift, set);
    default: return fill_absent_order<0>(in, first, pa, shift, set);
  }
}

inline std::uint32_t Tlb::Impl::fill_absent_small(const TlbEntry& in, std::uint64_t first,
                                           std::uint64_t pa, unsigned shift) {
  std::uint64_t* k = keys(0);
  std::uint32_t s;
  if (!free_slots.empty()) {
    s = free_slots.back();
    free_slots.pop_back();
    add_counts(shift);
    live_bits |= std::uint64_t{1} << s;
    link_front(s);
  } else {
    if (cfg.replacement == Replacement::Random) [[unlikely]] {
      s = static_cast<std::uint32_t>(next_random() % ways);
      unlink(s);
      link_front(s);
    } else {
      // The least recent slot becomes the most recent, the others keeping
      // their order: in the circular list, head steps back onto it.
      s = prev[head];
      head = s;
    }
    // detach(): the victim leaves its bucket.
    --buckets[tags[s] & 0xff].count;
    replace_counts(static_cast<unsigned>(k[s] & 63), shift);
  }
  write_entry(s, in, first, pa, shift);
  const std::uint64_t key = key_of(first, shift);
  k[s] = key;
  asids(0)[s] = in.asid;
  const std::uint16_t t = tag_of(key, in.asid);
  tags[s] = t;
  Bucket& b = buckets[t & 0xff];
  b.slot = static_cast<std::uint8_t>(s);
  ++b.count;
  miss_valid = false;
  return s;
}

// A copy of `e` made field by field (see Tlb::fill_absent_l1).
inline TlbEntry field_copy(const TlbEntry& e) {
  static_assert(sizeof(TlbEntry) == 48, "a new TlbEntry field must be copied here");
  TlbEntry c;
  c.asid = e.asid;
  c.va = e.va;
  c.size_shift = e.size_shift;
  c.level = e.level;
  c.cont = e.cont;
  c.pa = e.pa;
  c.desc = e.desc;
  c.page_shift = e.page_shift;
  return c;
}

// Tlb's lookup after its MRU check, and its fill, inline here for tlb.cpp
// and for the MMU's fused miss path.
inline const TlbEntry* Tlb::lookup_after_mru(std::uint16_t asid, std::uint64_t va) {
  Impl& im = *impl_;
  std::uint32_t set = 0;
  const std::uint32_t s = im.lookup_slot(asid, va, &set);
  if (s == Impl::kNone) return nullptr;
  im.touch(set, s);
  mru_ = &im.entries[s].e;
  return mru_;
}

// The first step of lookup_after_mru() for a small fully associative
// structure holding entries of one size: true when the tag filter shows
// no entry for (asid, va), the miss then recorded as lookup_slot() records
// it. False: lookup_after_mru() decides.
inline bool Tlb::filtered_out(std::uint16_t asid, std::uint64_t va) {
  Impl& im = *impl_;
  const std::uint64_t m = im.shift_mask;
  if (!im.small || m == 0 || (m & (m - 1)) != 0) return false;
  const unsigned shift = static_cast<unsigned>(std::countr_zero(m));
  const std::uint64_t key = Impl::key_of(va & ~((std::uint64_t{1} << shift) - 1), shift);
  if (im.buckets[Impl::tag_of(key, asid) & 0xff].count != 0) return false;
  im.miss_valid = true;
  im.miss_asid = asid;
  im.miss_va = va;
  return true;
}

// The fill after a walk when the lookup of this structure for (e.asid, va)
// returned no entry, with nothing filled since, and `e` is kept as given:
// e.va aligned to its size, covering va, not to be split. Tlb::fill's
// direct-fill conditions then hold and need no checking. Each of the two
// inlines the organisation its caller's structure has in the presets (an
// L1: small fully associative; an L2: 5 or 8 ways) and hands any other to
// fill_absent_other(), on a copy made field by field: nothing here takes
// the address of `e` or copies it whole, so that a caller's entry can stay
// in registers.
inline void Tlb::fill_absent_l1(const TlbEntry& e, std::uint64_t va) {
  Impl& im = *impl_;
  if (im.fill_kind == Impl::FillKind::Small) [[likely]] {
    mru_ = &im.entries[im.fill_absent_small(e, e.va, e.pa, e.size_shift)].e;
    return;
  }
  fill_absent_other(field_copy(e), va);
}

inline void Tlb::fill_absent_l2(const TlbEntry& e, std::uint64_t va) {
  Impl& im = *impl_;
  std::uint32_t s;
  if (im.fill_kind == Impl::FillKind::Order5) [[likely]]
    s = im.fill_absent_order<5>(e, e.va, e.pa, e.size_shift, im.set_of_vpn(e.va >> e.size_shift));
  else if (im.fill_kind == Impl::FillKind::Order8)
    s = im.fill_absent_order<8>(e, e.va, e.pa, e.size_shift, im.set_of_vpn(e.va >> e.size_shift));
  else
    return fill_absent_other(field_copy(e), va);
  mru_ = &im.entries[s].e;
}

}  // namespace contpte
