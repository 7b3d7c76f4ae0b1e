#include "arch/pte_format.h"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace contpte {

std::string format_size(std::uint64_t bytes) {
  constexpr std::array<std::pair<char, unsigned>, 4> kUnits{{{'T', 40}, {'G', 30}, {'M', 20}, {'K', 10}}};
  if (bytes != 0)
    for (auto [suffix, shift] : kUnits)
      if (bytes % (std::uint64_t{1} << shift) == 0) return fmt::format("{}{}", bytes >> shift, suffix);
  return std::to_string(bytes);
}


std::string format_pte(Pte pte, unsigned page_shift) {
  std::string s = fmt::format("{:#018x}", pte.val);
  if (pte_none(pte)) return s + " none";
  if (!pte_present(pte)) return s + " not-present";
  s += fmt::format(" pfn={:#x}", pte_pfn(pte, page_shift).val);
  // A huge PMD has the same attribute bits as a page descriptor, with the
  // table bit clear: name its protection as the page's would be named.
  const bool block = pmd_trans_huge(pte);
  if (auto p = pte_prot(block ? set_pte_bit(pte, bits::kTable) : pte, page_shift))
    s += fmt::format(" {}", prot_name(*p));
  else
    s += " prot=?";
  s += pte_valid(pte) ? " valid" : " present-invalid";
  s += pte_young(pte) ? " young" : " old";
  if (pte_sw_dirty(pte) && pte_hw_dirty(pte))
    s += " dirty(sw+hw)";
  else if (pte_sw_dirty(pte))
    s += " dirty(sw)";
  else if (pte_hw_dirty(pte))
    s += " dirty(hw)";
  else
    s += " clean";
  if (pte_cont(pte)) s += " cont";
  if (pte_special(pte)) s += " special";
  if (block) s += " block";
  return s;
}

}  // namespace contpte
