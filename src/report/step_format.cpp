#include "report/step_format.h"

#include <fmt/format.h>

#include "arch/pte_format.h"

namespace contpte {

namespace {
bool is_memory_step(StepKind k) {
  return k == StepKind::Load || k == StepKind::Store || k == StepKind::Xchg || k == StepKind::Cmpxchg ||
         k == StepKind::HwWalk || k == StepKind::HwUpdate;
}
}  // namespace

std::string format_step(const StepRecord& s, unsigned shift) {
  if (s.kind == StepKind::Tlbi)
    return fmt::format("{:<10} {:#x}{}", step_kind_name(s.kind), s.va,
                       s.nr ? fmt::format(" +{} pages", s.nr) : std::string{});
  if (!is_memory_step(s.kind)) return fmt::format("{:<10}", step_kind_name(s.kind));
  if (s.wrote)
    return fmt::format("{:<10} {:#x}  {} -> {}", step_kind_name(s.kind), s.va, format_pte(s.before, shift),
                       format_pte(s.after, shift));
  return fmt::format("{:<10} {:#x}  {}", step_kind_name(s.kind), s.va, format_pte(s.before, shift));
}

}  // namespace contpte
