// hw/tlb_impl.h — the inside of one TLB structure (Tlb::Impl): its layout,
// index, lookup and replacement state. Its fill paths, and the Tlb fast
// paths the MMU's fused miss path (mmu.cpp) inlines, are in hw/tlb_fill.h,
// which includes this file; tlb.cpp and mmu.cpp include that one. Not part
// of the hw layer's interface: nothing else includes either.
//
// Why Tlb::Impl is one struct of ~670 lines rather than several classes:
// the fused miss path inlines the lookup, the replacement update and the
// fill of both levels into one function, which needs every member it
// touches visible and in one object (one pointer, fields at fixed offsets
// the compiler can keep in registers across the inlined steps).
//
// The organisation, the replacement state and why they are laid out so
// are described at the top of tlb.cpp.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "hw/tlb.h"

namespace contpte {

struct Tlb::Impl {
  static constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

  // The largest structure we build: far beyond any real TLB, small enough
  // that a typo in a JSON file cannot ask for gigabytes.
  static constexpr unsigned kMaxEntries = 1u << 20;

  // A fully associative structure of at most this many entries (an L1 TLB)
  // finds a key by comparing a 16-bit tag of every slot at once (a few SIMD
  // compares over one array) instead of through the hash index: no index to
  // keep up to date on a fill or an eviction, and two host cache lines to
  // read instead of a random line of a large index.
  static constexpr unsigned kSmallEntries = 64;

  // Fully associative index: open addressing with linear probing, the keys
  // in the index itself, at most 1/8 full (1/2 past 4096 entries) so that a
  // probe almost always ends at its first position: a chain of
  // unpredictable length costs more in branch mispredictions than the
  // memory does.
  struct IndexEntry {
    std::uint64_t key = 0;       // 0: empty (a valid key is never 0)
    std::uint32_t slot = kNone;
    std::uint16_t asid = 0;
  };
  // An entry's storage: one host cache line each, so that a fill or a hit
  // touches one line of entries, not two.
  struct alignas(64) Slot {
    TlbEntry e;
  };
  struct alignas(64) Line {
    unsigned char b[64];
  };

  TlbStructureConfig cfg;
  std::uint32_t ways = 1;
  std::uint32_t nsets = 1;
  bool fully = true;
  bool sets_pow2 = true;
  bool lru = true;
  bool wide = false;  // stamps are 32 bits (more than 4096 ways), else 16
  // Set associative with at most kOrderWays ways (every preset's L2): the
  // set's recency order instead of stamps (see order_of()).
  static constexpr unsigned kOrderWays = 8;
  bool ordered = false;
  // Which fill_absent_* a fill of a key known absent takes (Tlb::fill_absent_l1/l2).
  // OrderN: a recency order and N ways (the set's layout a constant);
  // Order: another way count up to kOrderWays; Ways16/32: stamps.
  enum class FillKind : std::uint8_t { Insert, Small, Ways16, Ways32, Order, Order4, Order5, Order8 };
  FillKind fill_kind = FillKind::Insert;
  std::vector<Slot> entries;
  // Per set, one block of `stride` bytes (one host cache line for up to 5
  // ways): the keys (u64, va | size_shift; 0: free), then the stamps (last
  // use for LRU, fill for FIFO; 0: free) followed by the set's clock (the
  // last stamp given), u16 or u32, then the ASIDs (u16). A fully
  // associative structure is one set (its stamps unused). With at most
  // kOrderWays ways the stamps' place holds the set's recency order.
  std::vector<Line> setmem;
  std::size_t stride = 0;
  // Byte offsets in a set's block of its stamps and ASIDs, and the mask of
  // a set index when the set count is a power of two (worked out once: the
  // probe of every TLB miss needs them).
  std::size_t stamp_off = 0;
  std::size_t asid_off = 0;
  std::uint32_t set_mask = 0;
  // Fully associative: a circular recency list of the live slots, `head`
  // the most recent (kNone: none live) and prev[head] the least recent (the
  // LRU or FIFO victim); and a stack of free slots. No sentinel: the fill
  // of a full structure makes its least recent slot the most recent, which
  // in a circular list is one step of `head` (see fill_absent_small()).
  std::vector<std::uint32_t> prev, next;
  std::uint32_t head = kNone;
  std::vector<std::uint32_t> free_slots;
  // Small fully associative (entries <= kSmallEntries): a tag per slot and
  // the slots that hold a live entry, instead of `index`.
  bool small = false;
  std::uint64_t live_bits = 0;
  alignas(64) std::array<std::uint16_t, kSmallEntries> tags{};
  // Per value of a tag's low 8 bits: how many live entries have it (none:
  // a key with it is absent, no scan needed), and the slot last filled
  // with it, where a hit is looked for first (checked against the slot's
  // key, so never wrong, only stale).
  struct Bucket {
    std::uint8_t slot = 0;
    std::uint8_t count = 0;
  };
  std::array<Bucket, 256> buckets{};
  std::vector<IndexEntry> index;
  std::vector<std::uint32_t> where;  // slot -> its position in `index`
  unsigned index_bits = 1;
  std::uint32_t index_mask = 1;

  std::array<std::uint32_t, 64> shift_count{};
  std::uint64_t shift_mask = 0;  // bit s: some live entry has size_shift s
  std::size_t live = 0;
  std::uint64_t rng_state = 0;
  // The last lookup that missed, while no entry has been added since: an
  // insert covering that VA need not look for an entry with its key.
  bool miss_valid = false;
  std::uint16_t miss_asid = 0;
  std::uint64_t miss_va = 0;

  Impl(const TlbStructureConfig& c, std::uint64_t seed) : cfg(c), rng_state(seed) {
    const std::string who = cfg.name.empty() ? std::string("TLB") : cfg.name;
    if (cfg.entries == 0 || cfg.entries > kMaxEntries)
      throw std::invalid_argument(who + ": entries must be 1.." + std::to_string(kMaxEntries) +
                                  ", not " + std::to_string(cfg.entries));
    if (cfg.ways == 0 || cfg.ways > cfg.entries || cfg.entries % cfg.ways != 0)
      throw std::invalid_argument(who + ": ways " + std::to_string(cfg.ways) +
                                  " does not divide entries " + std::to_string(cfg.entries));
    ways = cfg.ways;
    nsets = cfg.entries / cfg.ways;
    fully = nsets == 1;
    sets_pow2 = std::has_single_bit(nsets);
    lru = cfg.replacement == Replacement::Lru;
    wide = ways > 4096;
    ordered = !fully && ways <= kOrderWays;
    entries.resize(cfg.entries);
    const std::size_t stamp_bytes = wide ? 4 : 2;
    std::size_t bytes = 8 * std::size_t{ways} + stamp_bytes * (ways + 1) + 2 * std::size_t{ways};
    bytes = (bytes + 7) & ~std::size_t{7};
    stride = bytes <= 64 ? std::bit_ceil(bytes) : (bytes + 63) & ~std::size_t{63};
    stamp_off = 8 * std::size_t{ways};
    asid_off = stamp_off + stamp_bytes * (std::size_t{ways} + 1);
    set_mask = sets_pow2 ? nsets - 1 : 0;
    setmem.resize((stride * nsets + 63) / 64);
    if (fully) {
      prev.resize(cfg.entries);
      next.resize(cfg.entries);
      free_slots.reserve(cfg.entries);
      small = cfg.entries <= kSmallEntries;
    }
    if (fully && !small) {
      const unsigned factor = cfg.entries <= 4096 ? 8 : 2;
      index_bits = static_cast<unsigned>(std::bit_width(factor * cfg.entries - 1));
      index.resize(std::size_t{1} << index_bits);
      where.resize(cfg.entries);
      index_mask = static_cast<std::uint32_t>(index.size() - 1);
    }
    fill_kind = fully ? (small ? FillKind::Small : FillKind::Insert)
                : wide ? FillKind::Ways32
                : ways == 4 ? FillKind::Order4
                : ways == 5 ? FillKind::Order5
                : ways == 8 ? FillKind::Order8
                : ordered ? FillKind::Order
                            : FillKind::Ways16;
    reset();
  }

  void reset() {
    std::fill(setmem.begin(), setmem.end(), Line{});
    if (ordered)
      for (std::uint32_t set = 0; set < nsets; ++set) order_of(set) = order_all_free();
    std::fill(index.begin(), index.end(), IndexEntry{});
    live_bits = 0;
    buckets.fill(Bucket{});
    if (fully) {
      head = kNone;
      // The free stack hands out slots 0, 1, 2...
      free_slots.clear();
      for (std::uint32_t i = static_cast<std::uint32_t>(entries.size()); i-- > 0;)
        free_slots.push_back(i);
    }
    shift_count.fill(0);
    shift_mask = 0;
    live = 0;
    miss_valid = false;
  }

  // ---- a set's block ----
  std::uint64_t* keys(std::uint32_t set) {
    // Address the storage as bytes of the whole vector, not through one
    // Line's array: a set may start in any line.
    return reinterpret_cast<std::uint64_t*>(reinterpret_cast<unsigned char*>(setmem.data()) +
                                            std::size_t{set} * stride);
  }
  const std::uint64_t* keys(std::uint32_t set) const {
    return reinterpret_cast<const std::uint64_t*>(reinterpret_cast<const unsigned char*>(setmem.data()) +
                                                  std::size_t{set} * stride);
  }
  template <class T>
  T* stamps(std::uint32_t set) {
    return reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(keys(set)) + stamp_off);
  }
  template <class T>
  const T* stamps(std::uint32_t set) const {
    return reinterpret_cast<const T*>(reinterpret_cast<const unsigned char*>(keys(set)) +
                                      stamp_off);
  }
  std::uint16_t* asids(std::uint32_t set) {
    return reinterpret_cast<std::uint16_t*>(reinterpret_cast<unsigned char*>(keys(set)) + asid_off);
  }
  const std::uint16_t* asids(std::uint32_t set) const {
    return reinterpret_cast<const std::uint16_t*>(reinterpret_cast<const unsigned char*>(keys(set)) +
                                                  asid_off);
  }
  // A set's recency order (`ordered`): its ways as 4-bit fields, most
  // recent first, so that the last field, (order >> 4 * (ways - 1)) & 15,
  // is the way a fill takes. The live ways come first, in the order of
  // their last use (LRU) or fill (FIFO), then the free ways in decreasing
  // index, so that a fill takes the free way of lowest index while there
  // is one: exactly the way the stamps choose (free ways have stamp 0,
  // ties go to the lowest way). A fill of a full set is then a shift,
  // where stamps need the minimum of the set's.
  std::uint32_t& order_of(std::uint32_t set) {
    return *reinterpret_cast<std::uint32_t*>(reinterpret_cast<unsigned char*>(keys(set)) +
                                             stamp_off);
  }
  std::uint32_t order_all_free() const {
    std::uint32_t o = 0;
    for (std::uint32_t i = 0; i < ways; ++i) o |= (ways - 1 - i) << (4 * i);
    return o;
  }
  static std::uint32_t order_last(std::uint32_t o, std::uint32_t n) {
    return (o >> (4 * (n - 1))) & 15;
  }
  // `o` with the way in its last field moved to the front.
  static std::uint32_t order_rotate(std::uint32_t o, std::uint32_t n) {
    const std::uint64_t mask = (std::uint64_t{1} << (4 * n)) - 1;
    return static_cast<std::uint32_t>(((std::uint64_t{o} << 4) | order_last(o, n)) & mask);
  }
  // `o` with way w (one of its n fields) moved to the front.
  static std::uint32_t order_to_front(std::uint32_t o, std::uint32_t w, std::uint32_t n) {
    // The field holding w: the lowest zero field of o ^ (w in every
    // field), fields past n made non-zero (the lowest zero field a
    // borrow-based test finds is exact).
    std::uint64_t x = o ^ (0x11111111u * w);
    x |= ~std::uint64_t{0} << (4 * n);
    const std::uint64_t z = (x - 0x1111111111111111ull) & ~x & 0x8888888888888888ull;
    const unsigned pos = static_cast<unsigned>(std::countr_zero(z)) / 4;
    const std::uint64_t low = o & ((std::uint64_t{1} << (4 * pos)) - 1);
    const std::uint64_t high = o & ~((std::uint64_t{1} << (4 * pos + 4)) - 1);
    return static_cast<std::uint32_t>(high | (low << 4) | w);
  }
  // The order of `set` after one of its ways became free (its key already
  // 0): the live ways in their order, then the free ways as order_of()
  // keeps them.
  void order_free(std::uint32_t set) {
    const std::uint64_t* k = keys(set);
    std::uint32_t& o = order_of(set);
    std::uint32_t out = 0, n = 0;
    for (std::uint32_t i = 0; i < ways; ++i) {
      const std::uint32_t w = (o >> (4 * i)) & 15;
      if (k[w] != 0) out |= w << (4 * n++);
    }
    for (std::uint32_t w = ways; w-- > 0;)
      if (k[w] == 0) out |= w << (4 * n++);
    o = out;
  }

  std::uint32_t set_of(std::uint32_t s) const { return fully ? 0 : s / ways; }
  std::uint64_t key_at(std::uint32_t s) const {
    const std::uint32_t set = set_of(s);
    return keys(set)[s - set * ways];
  }
  std::uint16_t asid_at(std::uint32_t s) const {
    const std::uint32_t set = set_of(s);
    return asids(set)[s - set * ways];
  }
  bool valid(std::uint32_t s) const { return key_at(s) != 0; }

  // splitmix64: a fixed, portable sequence from the seed (std::uniform_*
  // distributions differ between standard libraries).
  std::uint64_t next_random() {
    std::uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // va is aligned to 1 << shift >= 64, so the shift fits in the low bits.
  static std::uint64_t key_of(std::uint64_t aligned_va, unsigned shift) {
    return aligned_va | shift;
  }
  std::uint32_t hash(std::uint64_t key, std::uint16_t asid) const {
    const std::uint64_t k = (key ^ (std::uint64_t{asid} << 32)) * 0x9E3779B97F4A7C15ull;
    return static_cast<std::uint32_t>(k >> (64 - index_bits));
  }
  static std::uint16_t tag_of(std::uint64_t key, std::uint16_t asid) {
    const std::uint64_t k = (key ^ (std::uint64_t{asid} << 32)) * 0x9E3779B97F4A7C15ull;
    return static_cast<std::uint16_t>(k >> 48);
  }
  // Small fully associative: the slots whose tag is `t` (live or not).
  std::uint64_t tag_matches(std::uint16_t t) const {
    std::uint64_t m = 0;
#if defined(__SSE2__)
    const __m128i needle = _mm_set1_epi16(static_cast<short>(t));
    const __m128i* p = reinterpret_cast<const __m128i*>(tags.data());
    for (unsigned i = 0; i < kSmallEntries / 16; ++i) {
      const __m128i a = _mm_cmpeq_epi16(_mm_load_si128(p + 2 * i), needle);
      const __m128i b = _mm_cmpeq_epi16(_mm_load_si128(p + 2 * i + 1), needle);
      const auto bits = static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_packs_epi16(a, b)));
      m |= std::uint64_t{bits} << (16 * i);
    }
#else
    for (unsigned i = 0; i < kSmallEntries; ++i)
      m |= std::uint64_t{tags[i] == t} << i;
#endif
    return m;
  }
  std::uint32_t set_of_vpn(std::uint64_t vpn) const {
    return static_cast<std::uint32_t>(sets_pow2 ? vpn & set_mask : vpn % nsets);
  }

  // The way of `set` holding exactly (key, asid), or kNone. The usual
  // associativities get a loop of constant length, which the compiler
  // unrolls: this runs twice on every TLB miss (a probe of the L2 per live
  // entry size, and a fill's look for its key).
  template <unsigned N>
  static std::uint32_t find_way_n(const std::uint64_t* k, const std::uint16_t* a,
                                  std::uint64_t key, std::uint16_t asid) {
    for (std::uint32_t w = 0; w < N; ++w)
      if (k[w] == key && a[w] == asid) return w;
    return kNone;
  }
  std::uint32_t find_way(std::uint32_t set, std::uint64_t key, std::uint16_t asid) const {
    const std::uint64_t* k = keys(set);
    const std::uint16_t* a = asids(set);
    switch (ways) {
      case 2: return find_way_n<2>(k, a, key, asid);
      case 4: return find_way_n<4>(k, a, key, asid);
      case 5: return find_way_n<5>(k, a, key, asid);
      case 6: return find_way_n<6>(k, a, key, asid);
      case 8: return find_way_n<8>(k, a, key, asid);
      default: break;
    }
    for (std::uint32_t w = 0; w < ways; ++w)
      if (k[w] == key && a[w] == asid) return w;
    return kNone;
  }

  // The slot holding exactly (asid, shift, va aligned to the shift), or
  // kNone; *set_out: its set.
  std::uint32_t find(std::uint16_t asid, unsigned shift, std::uint64_t va,
                     std::uint32_t* set_out = nullptr) const {
    const std::uint64_t aligned = va & ~((std::uint64_t{1} << shift) - 1);
    const std::uint64_t key = key_of(aligned, shift);
    if (fully) {
      if (set_out) *set_out = 0;
      if (small) {
        const std::uint64_t* k = keys(0);
        const std::uint16_t* a = asids(0);
        const std::uint16_t t = tag_of(key, asid);
        const Bucket b = buckets[t & 0xff];
        if (b.count == 0) return kNone;
        if (k[b.slot] == key && a[b.slot] == asid && (live_bits >> b.slot & 1) != 0) [[likely]]
          return b.slot;
        for (std::uint64_t m = tag_matches(t) & live_bits; m != 0; m &= m - 1) {
          const auto s = static_cast<std::uint32_t>(std::countr_zero(m));
          if (k[s] == key && a[s] == asid) [[likely]]
            return s;
        }
        return kNone;
      }
      for (std::uint32_t i = hash(key, asid);; i = (i + 1) & index_mask) {
        const IndexEntry& ie = index[i];
        if (ie.key == key && ie.asid == asid) [[likely]]
          return ie.slot;
        if (ie.key == 0) return kNone;
      }
    }
    const std::uint32_t set = set_of_vpn(aligned >> shift);
    if (set_out) *set_out = set;
    const std::uint32_t w = find_way(set, key, asid);
    return w == kNone ? kNone : set * ways + w;
  }

  void index_insert(std::uint32_t slot) {
    const std::uint64_t key = keys(0)[slot];
    const std::uint16_t asid = asids(0)[slot];
    std::uint32_t i = hash(key, asid);
    while (index[i].key != 0) i = (i + 1) & index_mask;
    index[i] = IndexEntry{key, slot, asid};
    where[slot] = i;
  }

  // Backward-shift deletion keeps probe chains intact without tombstones.
  void index_erase(std::uint32_t slot) {
    std::uint32_t i = where[slot];
    for (std::uint32_t j = (i + 1) & index_mask;; j = (j + 1) & index_mask) {
      if (index[j].key == 0) break;
      const std::uint32_t home = hash(index[j].key, index[j].asid);
      // index[j] moves back into the hole at i unless its home lies
      // cyclically in (i, j].
      const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (stays) continue;
      index[i] = index[j];
      where[index[i].slot] = i;
      i = j;
    }
    index[i] = IndexEntry{};
  }

  void unlink(std::uint32_t s) {
    const std::uint32_t n = next[s];
    if (n == s) {  // the only live slot
      head = kNone;
      return;
    }
    const std::uint32_t p = prev[s];
    next[p] = n;
    prev[n] = p;
    if (head == s) head = n;
  }
  void link_front(std::uint32_t s) {
    if (head == kNone) {
      next[s] = prev[s] = s;
    } else {
      const std::uint32_t last = prev[head];
      next[last] = s;
      prev[s] = last;
      next[s] = head;
      prev[head] = s;
    }
    head = s;
  }
  // A hit on slot s of `set`: only LRU changes state.
  void touch(std::uint32_t set, std::uint32_t s) {
    if (!lru) return;
    if (ordered) {
      std::uint32_t& o = order_of(set);
      o = order_to_front(o, s - set * ways, ways);
    } else if (!fully) {
      stamp(set, s - set * ways);
    } else if (head != s) {
      unlink(s);
      link_front(s);
    }
  }

  // Set associative: the set's next stamp. When the set's clock runs out,
  // its stamps are renumbered 1..ways in their order.
  template <class T>
  void stamp_as(std::uint32_t set, std::uint32_t w) {
    T* st = stamps<T>(set);
    if (st[ways] == std::numeric_limits<T>::max()) [[unlikely]]
      renumber_stamps<T>(set);
    st[w] = ++st[ways];
  }
  void stamp(std::uint32_t set, std::uint32_t w) {
    if (wide)
      stamp_as<std::uint32_t>(set, w);
    else
      stamp_as<std::uint16_t>(set, w);
  }
  // Cold and out of line: once per 2^16 uses of a set at most, and keeping
  // it out of the fill path keeps that path's register use small.
  template <class T>
  [[gnu::cold, gnu::noinline]] void renumber_stamps(std::uint32_t set) {
    T* st = stamps<T>(set);
    std::vector<std::uint32_t> order(ways);
    for (std::uint32_t w = 0; w < ways; ++w) order[w] = w;
    std::sort(order.begin(), order.end(),
              [&](std::uint32_t a, std::uint32_t b) { return st[a] < st[b]; });
    T n = 0;
    for (std::uint32_t w : order)
      if (st[w] != 0) st[w] = ++n;
    st[ways] = n;
  }
  template <class T>
  std::uint32_t oldest_as(std::uint32_t set) const {
    // The first way of the smallest stamp: the minimum of (stamp, way)
    // packed in one integer, branch-free (stamps are random to a predictor).
    using Wide = std::conditional_t<sizeof(T) == 2, std::uint32_t, std::uint64_t>;
    constexpr unsigned kWayBits = sizeof(T) == 2 ? 12 : 32;  // ways <= 4096 when T is u16
    const T* st = stamps<T>(set);
    Wide best = std::numeric_limits<Wide>::max();
    // Constant trip counts for the usual associativities (unrolled: this
    // runs on every fill of a set-associative structure).
    auto scan = [&]<unsigned N>() {
      for (std::uint32_t w = 0; w < N; ++w) best = std::min(best, (Wide{st[w]} << kWayBits) | w);
    };
    switch (ways) {
      case 2: scan.template operator()<2>(); break;
      case 4: scan.template operator()<4>(); break;
      case 5: scan.template operator()<5>(); break;
      case 6: scan.template operator()<6>(); break;
      case 8: scan.template operator()<8>(); break;
      default:
        for (std::uint32_t w = 0; w < ways; ++w)
          best = std::min(best, (Wide{st[w]} << kWayBits) | w);
    }
    return static_cast<std::uint32_t>(best & ((Wide{1} << kWayBits) - 1));
  }

  // Takes valid slot s (way w of `set`) out of the structure (index, list,
  // counts); the caller frees or reuses it.
  void detach(std::uint32_t set, std::uint32_t w, std::uint32_t s) {
    if (fully) {
      if (small) {
        live_bits &= ~(std::uint64_t{1} << s);
        --buckets[tags[s] & 0xff].count;
      }
      else
        index_erase(s);
      unlink(s);
    } else if (ordered) {
      // The order is rebuilt below, once the key shows the way free.
    } else if (wide) {
      stamps<std::uint32_t>(set)[w] = 0;
    } else {
      stamps<std::uint16_t>(set)[w] = 0;
    }
    std::uint64_t& key = keys(set)[w];
    const unsigned sh = static_cast<unsigned>(key & 63);
    if (--shift_count[sh] == 0) shift_mask &= ~(std::uint64_t{1} << sh);
    key = 0;
    --live;
    if (ordered) order_free(set);
  }
  void remove(std::uint32_t s) {
    const std::uint32_t set = set_of(s);
    detach(set, s - set * ways, s);
    if (fully) free_slots.push_back(s);
  }
  // Makes entries[s] (way w of `set`), already written, live.
  void attach(std::uint32_t set, std::uint32_t w, std::uint32_t s) {
    const TlbEntry& e = entries[s].e;
    keys(set)[w] = key_of(e.va, e.size_shift);
    asids(set)[w] = e.asid;
    if (fully) {
      link_front(s);
      if (small) {
        tags[s] = tag_of(keys(0)[s], e.asid);
        Bucket& b = buckets[tags[s] & 0xff];
        b.slot = static_cast<std::uint8_t>(s);
        ++b.count;
        live_bits |= std::uint64_t{1} << s;
      } else {
        index_insert(s);
      }
    } else if (ordered) {
      std::uint32_t& o = order_of(set);
      o = order_to_front(o, w, ways);
    } else {
      stamp(set, w);
    }
    ++shift_count[e.size_shift];
    shift_mask |= std::uint64_t{1} << e.size_shift;
    ++live;
    miss_valid = false;
  }

  // The way of `set` a new entry goes to (for a fully associative
  // structure, the slot); *displaces: it holds a live entry now.
  std::uint32_t place(std::uint32_t set, bool* displaces) {
    *displaces = false;
    if (fully) {
      if (!free_slots.empty()) {
        const std::uint32_t s = free_slots.back();
        free_slots.pop_back();
        return s;
      }
      *displaces = true;
      return cfg.replacement == Replacement::Random
                 ? static_cast<std::uint32_t>(next_random() % ways)
                 : prev[head];  // LRU: least recently used; FIFO: oldest fill
    }
    // A free way has stamp 0, older than any live one (stamps start at 1):
    // the set's oldest stamp is a free way if there is one, else the victim.
    const std::uint32_t oldest = ordered ? order_last(order_of(set), ways)
                                 : wide  ? oldest_as<std::uint32_t>(set)
                                         : oldest_as<std::uint16_t>(set);
    *displaces = keys(set)[oldest] != 0;
    if (*displaces && cfg.replacement == Replacement::Random)
      return static_cast<std::uint32_t>(next_random() % ways);
    return oldest;
  }

  // The slot covering (asid, va), or kNone; *set_out: its set.
  std::uint32_t probe(std::uint16_t asid, std::uint64_t va, std::uint32_t* set_out) const {
    for (std::uint64_t m = shift_mask; m != 0; m &= m - 1) {
      const std::uint32_t s = find(asid, static_cast<unsigned>(std::countr_zero(m)), va, set_out);
      if (s != kNone) return s;
    }
    return kNone;
  }

  bool overlaps(const TlbEntry& e, std::uint16_t asid, std::uint64_t first,
                std::uint64_t last) const {
    return e.asid == asid && e.va <= last && first <= e.va + (e.size() - 1);
  }

  // The slot covering (asid, va), or kNone, recording the miss; *set_out:
  // its set. What Tlb::lookup does after its MRU check.
  std::uint32_t lookup_slot(std::uint16_t asid, std::uint64_t va, std::uint32_t* set_out) {
    std::uint32_t s = kNone;
    // (m & (m - 1)) == 0 rather than std::has_single_bit: without POPCNT in
    // the baseline ISA that is a library call.
    const std::uint64_t m = shift_mask;
    if (!fully && m != 0 && (m & (m - 1)) == 0) [[likely]] {
      // One entry size live (most workloads: pages only, or one block size):
      // one set to look in, found without the loop of probe().
      const unsigned shift = static_cast<unsigned>(std::countr_zero(m));
      const std::uint64_t aligned = va & ~((std::uint64_t{1} << shift) - 1);
      const std::uint32_t set = set_of_vpn(aligned >> shift);
      *set_out = set;
      if (const std::uint32_t w = find_way(set, key_of(aligned, shift), asid); w != kNone)
        s = set * ways + w;
    } else if (small && m != 0 && (m & (m - 1)) == 0) {
      // Most misses end at the tag's bucket, empty: find() only when not.
      const unsigned shift = static_cast<unsigned>(std::countr_zero(m));
      const std::uint64_t key = key_of(va & ~((std::uint64_t{1} << shift) - 1), shift);
      *set_out = 0;
      if (buckets[tag_of(key, asid) & 0xff].count != 0) s = find(asid, shift, va);
    } else {
      s = probe(asid, va, set_out);
    }
    if (s == kNone) {
      miss_valid = true;
      miss_asid = asid;
      miss_va = va;
    }
    return s;
  }

  // Inserts `in` (see Tlb::insert); returns the slot written. The entry it
  // evicted goes to *evicted when that is not null.
  std::uint32_t insert(const TlbEntry& in, std::uint64_t va, std::optional<TlbEntry>* evicted);

  // The fill after a walk: the key is known absent (the lookup that just
  // missed covered it) and nobody wants the evicted entry (Tlb::fill
  // decides; fill_absent_small needs a small fully associative one). The same
  // placement and bookkeeping as insert()'s general path (place, detach,
  // attach), written once for the two organisations that matter, with the
  // set's block addressed once and the counts of a victim of the same
  // size left alone (they would drop and come back).
  template <class T>
  std::uint32_t fill_absent_stamps(const TlbEntry& in, std::uint64_t first, std::uint64_t pa,
                                   unsigned shift, std::uint32_t set);
  // N: the way count when it is one of the usual ones, else 0.
  template <unsigned N>
  [[gnu::always_inline]] std::uint32_t fill_absent_order(const TlbEntry& in, std::uint64_t first,
                                                         std::uint64_t pa, unsigned shift,
                                                         std::uint32_t set);
  std::uint32_t fill_absent_ways(const TlbEntry& in, std::uint64_t first, std::uint64_t pa,
                                 unsigned shift);
  std::uint32_t fill_absent_small(const TlbEntry& in, std::uint64_t first, std::uint64_t pa,
                                  unsigned shift);
  // The entry fields of a fill, written in one go (see insert()).
  void write_entry(std::uint32_t s, const TlbEntry& from, std::uint64_t first, std::uint64_t pa,
                   unsigned shift) {
    TlbEntry& d = entries[s].e;
    d.asid = from.asid;
    d.level = from.level;
    d.cont = from.cont;
    d.desc = from.desc;
    d.page_shift = from.page_shift;
    d.va = first;
    d.pa = pa;
    d.size_shift = static_cast<std::uint8_t>(shift);
  }
  // The live-entry counts when an entry of size `shift` replaces a live one
  // of size `old_shift` (nothing to do when they are equal).
  void replace_counts(unsigned old_shift, unsigned shift) {
    if (old_shift == shift) [[likely]]
      return;
    if (--shift_count[old_shift] == 0) shift_mask &= ~(std::uint64_t{1} << old_shift);
    ++shift_count[shift];
    shift_mask |= std::uint64_t{1} << shift;
  }
  void add_counts(unsigned shift) {
    ++shift_count[shift];
    shift_mask |= std::uint64_t{1} << shift;
    ++live;
  }
};

}  // namespace contpte
