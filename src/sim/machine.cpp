// sim/machine.cpp — see machine.h.

#include "sim/machine.h"

#include <fmt/format.h>

#include "engine/pgtable.h"
#include "hw/walker.h"
#include "mm/pte_fault.h"

namespace contpte {

Machine::Machine(const MachineSpec& spec, MachineWatcher* watcher)
    : geo_(contpte::geometry(spec.granule)),
      features_(spec.features),
      check_(spec.check),
      watcher_(watcher),
      mem_(spec.granule, spec.memory),
      buddy_(mem_),
      checker_(geo_, spec.features.bbml2_noabort),
      mmu_(mem_, spec.core, spec.features.hafdbs, spec.check ? &checker_ : nullptr, spec.seed),
      sys_(mem_, buddy_, spec.features, spec.thp),
      insns_per_access_(spec.insns_per_access) {
  // After the memory manager took its zero page, as a booted system would.
  if (spec.fragment > 0) buddy_.fragment(spec.fragment, spec.seed);
  sys_.tlb = &mmu_;
  if (check_) sys_.checker = &checker_;
  add_process(std::make_unique<Mm>(sys_, 0, asid_of(0)));
}

void Machine::CheckerFeed::on_pte_access(const PteAccess& a) {
  if (a.op == PteAccessOp::Load || a.before == a.after) return;
  if (auto va = pt_.va_of(a.slot)) c_.on_pte_write(asid_, va->val, a.before, a.after);
}

void Machine::add_process(std::unique_ptr<Mm> mm) {
  Proc p;
  p.mm = std::move(mm);
  if (watcher_)
    if (SimObserver* o = watcher_->watch(procs_.size(), p.mm->page_table())) p.mm->env().add_observer(o);
  if (check_) {
    p.feed = std::make_unique<CheckerFeed>(checker_, p.mm->page_table(), p.mm->asid());
    p.mm->env().add_observer(p.feed.get());
  }
  procs_.push_back(std::move(p));
}

Mm* Machine::mm_by_asid(std::uint16_t asid) {
  const std::size_t i = asid - 1u;
  return i < procs_.size() ? procs_[i].mm.get() : nullptr;
}

std::size_t Machine::fork(std::size_t parent) {
  const std::size_t child = procs_.size();
  add_process(procs_.at(parent).mm->fork(static_cast<unsigned>(child), asid_of(child)));
  return child;
}

void Machine::exit(std::size_t pid) {
  procs_.at(pid).mm->exit_mmap();
  procs_[pid].alive = false;
}

std::optional<std::string> Machine::fault_and_retry(Mm& m, VirtAddr va, MemAccess kind, AccessResult r) {
  // On a core without FEAT_HAFDBS, the fault just handled again, with the
  // PTE as the handler left it, is fault_loop (design.md rule 7), as for a
  // device walker: the access ends there. With FEAT_HAFDBS these faults
  // never happen, so the walks below are skipped.
  const Walker walker(mem_);
  auto fault_of = [&](Pte* desc) {
    const WalkResult w = walker.walk(m.page_table().root(), m.asid(), va, nullptr);
    if (desc) *desc = w.desc;
    return access_fault(w.valid, w.desc, kind, /*hafdbs=*/false);
  };
  AccessFault handled = AccessFault::None;
  bool left_faulting = false;
  for (int attempt = 1;; ++attempt) {
    Pte desc{};
    const AccessFault f = features_.hafdbs ? AccessFault::None : fault_of(&desc);
    const bool ad = hafdbs_would_handle(f, desc);  // a core without FEAT_HAFDBS takes it to handle_pte_fault
    if (ad && f == handled && left_faulting) {
      if (check_)
        checker_.report_fault_loop(va, checker_.context_line(), desc,
                                   fmt::format("the CPU's {} of {:#x} faulted again ({}) after its fault handler "
                                               "(ptep_set_access_flags) left the PTE still faulting for it: a core "
                                               "without hardware A/D updates would fault forever",
                                               kind == MemAccess::Write ? "write" : "read", va.val,
                                               access_fault_name(f)));
      return std::nullopt;
    }
    std::string why;
    if (attempt > 3) {
      why = "the fault handler did not resolve it";
    } else {
      FaultResult fr = FaultResult::Segv;
      if (m.find_vma(va)) {
        fr = m.handle_fault(va, kind == MemAccess::Write, kind == MemAccess::Exec);
      } else if (ad) {
        // Outside every mapping (PTE-level scenarios): the PTE-level
        // handler, as for a device walker (mm/pte_fault.h).
        const auto s = m.page_table().pte_slot(va, /*alloc=*/false);
        if (s && !handle_pte_level_fault(m.env(), VirtAddr{align_down(va.val, geo_.page_size())}, *s,
                                         kind == MemAccess::Write))
          fr = FaultResult::Handled;
      }
      if (fr == FaultResult::Handled) {
        handled = f;
        left_faulting = ad && fault_of(nullptr) == f;
        r = mmu_.access(m.page_table(), m.asid(), va, kind, /*retry=*/true);
        if (r.fault == Fault::None) return std::nullopt;
        continue;
      }
      why = m.find_vma(va) ? "SIGSEGV: the mapping does not permit it" : "SIGSEGV: no mapping";
    }
    return fmt::format("{} at level {}; {}", fault_name(r.fault), r.level, why);
  }
}

double Machine::instructions() const {
  return instructions_ ? double(*instructions_) : double(mmu_.stats().accesses) * insns_per_access_;
}

void Machine::engine_findings() {
  for (auto& p : procs_)
    for (const EngineFinding& f : p.mm->env().take_findings()) checker_.report_engine(f);
}

DeviceAccessResult Machine::device_access(std::size_t pid, VirtAddr va, MemAccess kind) {
  const bool write = kind == MemAccess::Write;
  Mm& m = mm(pid);
  const Walker walker(mem_);
  auto walk = [&] { return walker.walk(m.page_table().root(), m.asid(), va, nullptr); };
  auto fault_of = [&](const WalkResult& w) { return access_fault(w.valid, w.desc, kind, /*hafdbs=*/false); };
  auto failed = [](AccessFault f, std::string_view why) {
    return DeviceAccessResult{DeviceAccessResult::End::Failed, f, Pte{}, why};
  };
  AccessFault handled = AccessFault::None;
  bool left_faulting = false;
  // Each retry either completes, loops or handles another reason; the
  // reasons are few, so this bound is only a guard.
  for (int attempt = 0; attempt < 8; ++attempt) {
    const WalkResult w = walk();
    const AccessFault f = fault_of(w);
    if (f == AccessFault::None) return {};
    if (f == handled && left_faulting) return {DeviceAccessResult::End::FaultLoop, f, w.desc, {}};
    handled = f;
    if (m.find_vma(va)) {
      if (m.handle_fault(va, write, /*exec=*/false) != FaultResult::Handled)
        return failed(f, "SIGSEGV: the mapping does not permit it");
    } else {
      const auto s = m.page_table().pte_slot(va, /*alloc=*/false);
      if (!s) return failed(f, kNoValidPte);
      if (const auto why = handle_pte_level_fault(m.env(), VirtAddr{align_down(va.val, geo_.page_size())}, *s, write))
        return failed(f, *why);
    }
    left_faulting = fault_of(walk()) == handled;
  }
  return failed(handled, "the fault handler did not resolve it");
}

void Machine::caller_flush(std::size_t pid, VirtAddr va, std::uint64_t nr) {
  ++caller_tlbi_;
  SimEnv& e = env(pid);
  e.invalidate_tlb(TlbiRequest{nr == 1 ? TlbiKind::Page : TlbiKind::Range, e.asid(), va, nr, true});
}

Pte Machine::pte_view(std::size_t pid, VirtAddr va) {
  Mm& m = mm(pid);
  return quietly([&] {
    auto s = m.page_table().pte_slot(va, false);
    return s ? ptep_get(m.env(), *s) : Pte{};
  });
}

void Machine::settle() {
  if (!check_) return;
  checker_.settle(
      [&](std::uint16_t a, std::uint64_t va) {
        Mm* m = mm_by_asid(a);
        return m ? pte_view(m->pid(), VirtAddr{va}) : Pte{};
      },
      [&](std::uint16_t a, std::uint64_t va) {
        Mm* m = mm_by_asid(a);
        return m ? stored(m->pid(), VirtAddr{va}) : Pte{};
      });
}

EngineCounters Machine::engine_counters() {
  EngineCounters k;
  for (auto& p : procs_) k += p.mm->env().counters();
  return k;
}

}  // namespace contpte
