// arch/granule.h — translation granule geometry for arm64 with 48-bit VA.
//
// Owns: page size, CONT_PTES / CONT_PMDS, PMD (level-2 block) size, number
// of page-table levels, entries per table. One constexpr table; everything
// else derives from it.
// Must not know: anything above the architecture (engine, mm, simulation).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace contpte {

enum class Granule : std::uint8_t { k4K, k16K, k64K };

struct Geometry {
  Granule granule;
  std::string_view name;     // "4K" | "16K" | "64K"
  unsigned page_shift;       // log2(page size)
  unsigned cont_ptes;        // level-3 entries in one contiguous block
  unsigned cont_pmds;        // level-2 entries in one contiguous block
  unsigned levels;           // translation levels for a 48-bit VA
  unsigned start_level;      // first level walked (0 for 4 levels, 1 for 3)

  constexpr std::uint64_t page_size() const { return std::uint64_t{1} << page_shift; }
  // A table is one page of 8-byte descriptors, each level resolving
  // page_shift - 3 bits of the VA.
  constexpr unsigned ptrs_per_table() const { return 1u << (page_shift - 3); }
  constexpr unsigned table_shift() const { return page_shift - 3; }
  constexpr unsigned pmd_shift() const { return page_shift + table_shift(); }
  constexpr std::uint64_t pmd_size() const { return std::uint64_t{1} << pmd_shift(); }
  constexpr std::uint64_t cont_pte_size() const { return page_size() * cont_ptes; }
  constexpr std::uint64_t cont_pmd_size() const { return pmd_size() * cont_pmds; }
  // Shift of the VA bits a table at `level` (0..3) resolves.
  constexpr unsigned level_shift(unsigned level) const {
    return page_shift + (3 - level) * table_shift();
  }
};

// Source: Arm ARM D8.2 (translation granules; 48-bit VA needs 4 levels for
// 4K/16K and 3 for 64K) and arch/arm64/include/asm/pgtable-hwdef.h
// (CONT_PTE_SHIFT / CONT_PMD_SHIFT per granule).
//                        granule         name   shift cont_ptes cont_pmds levels start
inline constexpr std::array<Geometry, 3> kGeometries{{
    Geometry{Granule::k4K,  "4K",  12, 16,  16, 4, 0},
    Geometry{Granule::k16K, "16K", 14, 128, 32, 4, 0},
    Geometry{Granule::k64K, "64K", 16, 32,  32, 3, 1},
}};

constexpr const Geometry& geometry(Granule g) {
  return kGeometries[static_cast<std::size_t>(g)];
}

// ALIGN_DOWN / ALIGN (include/linux/align.h) for a power-of-two `a`.
constexpr std::uint64_t align_down(std::uint64_t v, std::uint64_t a) { return v & ~(a - 1); }
constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) & ~(a - 1); }

inline constexpr unsigned kVaBits = 48;
inline constexpr std::uint64_t kUserVaEnd = std::uint64_t{1} << kVaBits;

constexpr std::optional<Granule> granule_from_name(std::string_view s) {
  for (const auto& g : kGeometries)
    if (g.name == s) return g.granule;
  return std::nullopt;
}

constexpr std::optional<Granule> granule_from_bytes(std::uint64_t bytes) {
  for (const auto& g : kGeometries)
    if (g.page_size() == bytes) return g.granule;
  return std::nullopt;
}

static_assert(geometry(Granule::k4K).pmd_size() == (2u << 20));
static_assert(geometry(Granule::k16K).pmd_size() == (32u << 20));
static_assert(geometry(Granule::k64K).pmd_size() == (512u << 20));
static_assert(geometry(Granule::k4K).cont_pte_size() == (64u << 10));
static_assert(geometry(Granule::k16K).cont_pte_size() == (2u << 20));
static_assert(geometry(Granule::k64K).cont_pte_size() == (2u << 20));
// 48-bit VA: the top level must resolve the remaining high bits.
static_assert(geometry(Granule::k4K).level_shift(0) == 39);
static_assert(geometry(Granule::k16K).level_shift(0) == 47);
static_assert(geometry(Granule::k64K).level_shift(1) == 42);

}  // namespace contpte
