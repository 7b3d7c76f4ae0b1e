import re
W='/work/wt-explore/'
def patch(path, pairs):
    s=open(W+path).read()
    for old,new in pairs:
        assert old in s, (path, old[:80])
        s=s.replace(old,new,1)
    open(W+path,'w').write(s)

# ---- scenario language ----
patch('src/workload/scenario.h', [
("""inline constexpr std::array<std::string_view, 5> kRuleNames{
    "misprogrammed", "tlb_conflict", "stale_translation", "lost_dirty", "lost_young"};""",
"""inline constexpr std::array<std::string_view, 6> kRuleNames{
    "misprogrammed", "tlb_conflict", "stale_translation", "lost_dirty", "lost_young", "fault_loop"};"""),
("""  Pattern pattern = Pattern::Seq;
};""","""  Pattern pattern = Pattern::Seq;
  // `dev read|write ADDR`: one access by a device walker without hardware
  // A/D updates (an SMMU without HTTU): it faults on AF=0 and on a write to
  // a PTE_RDONLY entry, the OS handles the fault (ptep_set_access_flags)
  // and the access retries.
  bool device = false;
};"""),
("""struct HwAccess {  // `hw read|write|exec ADDR`: one access on another CPU
  AccessKind kind = AccessKind::Read;
  AddrExpr addr;
};""","""struct HwAccess {  // `hw read|write|exec ADDR`: one access on another CPU
  AccessKind kind = AccessKind::Read;
  AddrExpr addr;
  bool device = false;  // `dev read|write ADDR`: a device walker without HTTU (see Access)
};"""),
])
patch('src/workload/scenario.cpp', [
("""constexpr std::array<std::string_view, 3> kBranchWords{"engine", "hw", "reader"};""",
 """constexpr std::array<std::string_view, 4> kBranchWords{"engine", "hw", "reader", "dev"};"""),
("""        entry<&Parser::parse_access>("exec"),""","""        entry<&Parser::parse_access>("exec"),
        entry<&Parser::parse_dev>("dev"),"""),
("""  Op parse_expect(LineCursor& c, const Token&) {""","""  // `dev read|write ADDR`: one device access (no length: one page).
  Access parse_dev(LineCursor& c, const Token&) {
    Access a;
    a.device = true;
    const Token k = c.take("read or write");
    if (k.text != "read" && k.text != "write")
      c.fail(k, fmt::format("unknown device access '{}'; expected read or write", k.text));
    a.kind = k.text == "read" ? AccessKind::Read : AccessKind::Write;
    a.addr = addr_expr(c);
    check_range(a.addr, page_size(), a.addr.loc);
    a.len = a.stride = page_size();
    a.count = 1;
    c.finish("dev read|write ADDR");
    return a;
  }

  Op parse_expect(LineCursor& c, const Token&) {"""),
("""      c.finish("hw read|write|exec ADDR");
      b.op = std::move(hw);""","""      c.finish("hw read|write|exec ADDR");
      b.op = std::move(hw);
    } else if (kw.text == "dev") {
      HwAccess dev;
      dev.device = true;
      const Token k = c.take("read or write");
      if (k.text != "read" && k.text != "write")
        c.fail(k, fmt::format("unknown device access '{}'; expected read or write", k.text));
      dev.kind = k.text == "read" ? AccessKind::Read : AccessKind::Write;
      dev.addr = addr_expr(c);
      check_range(dev.addr, page_size(), dev.addr.loc);
      c.finish("dev read|write ADDR");
      b.op = std::move(dev);"""),
("""      c.fail(kw, fmt::format("expected a branch (engine, hw, reader) or 'end' in the parallel block opened at \"""",
 """      c.fail(kw, fmt::format("expected a branch (engine, hw, reader, dev) or 'end' in the parallel block opened at \""""),
])

# ---- explorer ----
patch('src/explore/explorer.h', [
("""  // Hw: the process has mappings and none covers `va` (a memory-manager
  // scenario): a translation fault finds no VMA, which is an error at once.
  bool no_vma = false;""","""  // Hw: the process has mappings and none covers `va` (a memory-manager
  // scenario): a translation fault finds no VMA, which is an error at once.
  bool no_vma = false;
  // Hw: a device walker without hardware A/D updates (`dev`, an SMMU
  // without HTTU): it faults on AF=0 and on a write to a PTE_RDONLY entry;
  // the fault handler takes the page-table lock and calls
  // ptep_set_access_flags with pte_mkyoung(ptep_get()) (+ pte_mkdirty for a
  // write), as handle_pte_fault does, then the access retries.
  bool device = false;"""),
("""  FaultRetry,   // the fault handler took the page-table lock; the access retries""",
 """  FaultRetry,   // the fault handler took the page-table lock (a dev handler runs then)"""),
])
patch('src/explore/explorer.cpp', [
("""#include "engine/pgtable.h"
""","""#include "engine/contpte.h"
#include "engine/pgtable.h"
"""),
("""  enum class HwPhase : std::uint8_t { Walk, Update, FaultWait, Done };""",
 """  enum class HwPhase : std::uint8_t { Walk, Update, FaultWait, Handler, Done };"""),
("""    bool retried = false;
    std::optional<TlbEntry> tlb;""","""    bool retried = false;
    // dev: the fault its handler last handled, and whether the handler left
    // the PTE so that the access no longer faults for it.
    std::string handled_fault;
    bool handler_fixed = false;
    bool handler_error = false;
    std::optional<TlbEntry> tlb;"""),
("""      case HwPhase::FaultWait:
        rec.note = "fault handler took the page-table lock; the access retries";
        r.retried = true;
        r.hw = HwPhase::Walk;
        break;""","""      case HwPhase::FaultWait:
        if (s.device) {
          dev_fault_handler(b);  // records its own steps
          return;
        }
        rec.note = "fault handler took the page-table lock; the access retries";
        r.retried = true;
        r.hw = HwPhase::Walk;
        break;
      case HwPhase::Handler:
        settle_and_check_tlbs();
        lock_holder = -1;
        rec.note = r.handler_error ? "the fault cannot be handled: the access does not complete"
                                   : "fault handled, drops the page-table lock; the access retries";
        r.retried = true;
        r.hw = r.handler_error ? HwPhase::Done : HwPhase::Walk;
        break;"""),
("""      case HwPhase::FaultWait: r.pending = Footprint{StepKind::FaultRetry}; break;
      case HwPhase::Done: r.done = true; break;""","""      case HwPhase::FaultWait: r.pending = Footprint{StepKind::FaultRetry}; break;
      case HwPhase::Handler: r.pending = Footprint{StepKind::Release}; break;
      case HwPhase::Done: r.done = true; break;"""),
("""    const bool hafdbs = setup.features.hafdbs;""","""    const bool hafdbs = setup.features.hafdbs && !s.device;  // a dev walker never updates A/D"""),
("""    if (!fault.empty()) {
      const bool unmapped = !w.valid;
      if (unmapped && s.no_vma) {""","""    if (!fault.empty() && s.device) {
      dev_fault(b, rec, fault);
      return;
    }
    if (!fault.empty()) {
      const bool unmapped = !w.valid;
      if (unmapped && s.no_vma) {"""),
("""  // An access that can never complete: an error of the run (a top-level""","""  // ---- device walkers (dev) ------------------------------------------------

  // A dev access faulted for `fault`. Again for the same reason after its
  // handler ran and left the PTE still faulting: a walker that reads each
  // descriptor alone would fault forever (rule fault_loop).
  void dev_fault(unsigned b, StepRecord& rec, const std::string& fault) {
    BranchRun& r = runs[b];
    const ExploreBranch& s = spec(b);
    if (fault == "translation fault" && s.no_vma) {
      unmapped_access(b, rec, fmt::format("no VMA covers {:#x} (SIGSEGV)", s.va.val));
      return;
    }
    if (!r.handled_fault.empty() && r.handled_fault == fault && !r.handler_fixed) {
      r.hw = HwPhase::Done;
      r.end = BranchEnd::Faulted;
      r.outcome = "fault_loop: " + fault;
      rec.note = fault + " again after its handler changed nothing it needed: it would fault forever";
      report_fault_loop(b, fault);
      return;
    }
    r.hw = HwPhase::FaultWait;
    r.handled_fault = fault;
    rec.note = fault + ": the handler waits for the page-table lock";
  }

  void report_fault_loop(unsigned b, const std::string& fault) {
    const ExploreBranch& s = spec(b);
    const std::string detail = fmt::format(
        "{} faulted again ({}) after its fault handler ran (ptep_set_access_flags) and left the PTE "
        "unchanged: a walker without hardware A/D updates would fault forever",
        s.label, fault);
    if (chk) {
      Violation v;
      v.rule = "fault_loop";
      v.va = s.va.val;
      v.detail = detail;
      v.line = s.line;
      chk->violations().push_back(std::move(v));
    } else {
      fail("fault_loop", fmt::format("fault_loop at {:#x}: {}", s.va.val, detail), s.va.val);
    }
  }

  // handle_pte_fault for a dev access, under the page-table lock, through
  // the stepping Env (each memory operation is a step): entry =
  // pte_mkyoung(ptep_get(ptep)), pte_mkdirty for a write when pte_write;
  // ptep_set_access_flags(entry, write). A fault on a PTE that is not valid,
  // or a write to one without write permission, cannot be handled here (no
  // VMA to consult): an error of the run.
  void dev_fault_handler(unsigned b) {
    BranchRun& r = runs[b];
    const ExploreBranch& s = spec(b);
    lock_holder = static_cast<int>(b);
    StepRecord rec;
    rec.va = s.va.val;
    rec.note = "fault handler takes the page-table lock (handle_pte_fault)";
    record(b, r.pending, std::move(rec));
    after_step();
    const PteSlot slot = *setup.pt->pte_slot(s.va, false);
    const bool write = s.access == MemAccess::Write;
    const Pte cur = ptep_get(r.env, slot);
    r.handler_error = false;
    if (!pte_valid(cur)) {
      r.handler_error = true;
      unmapped_fault(b, "the fault handler finds no valid PTE (a fault on a non-present PTE)");
    } else if (write && !pte_write(cur)) {
      r.handler_error = true;
      unmapped_fault(b, "a write to a PTE without write permission");
    } else {
      Pte entry = pte_mkyoung(cur);
      if (write) entry = pte_mkdirty(entry);
      ptep_set_access_flags(r.env, s.va, slot, entry, write);
    }
    const Pte now = *slot.ptr();
    r.handler_fixed = pte_valid(now) && pte_young(now) && !(write && pte_rdonly(now));
    r.hw = HwPhase::Handler;
    r.pending = Footprint{StepKind::Release};
  }

  // A dev fault the PTE-level handler cannot handle: an error of the run.
  void unmapped_fault(unsigned b, const std::string& why) {
    BranchRun& r = runs[b];
    r.end = BranchEnd::Unmapped;
    r.outcome = "unmapped: " + why;
    const std::string what = fmt::format("{}: {}; the access cannot complete", spec(b).label, why);
    if (kept) kept->problems.push_back({spec(b).line, what});
    fail("unmapped", fmt::format("unmapped: {}:{}: {}", setup.source, spec(b).line, what), spec(b).va.val);
  }

  // An access that can never complete: an error of the run (a top-level"""),
("""                                                  "tlb_conflict", "misprogrammed", "reader", "deadlock",
                                                  "unmapped", "expect"};""","""                                                  "tlb_conflict", "misprogrammed", "fault_loop", "reader",
                                                  "deadlock", "unmapped", "expect"};"""),
])

# ---- engine test hook: the pre-fix no-op check ----
patch('src/engine/env.h', [
("""  bool hafdbs = true;  // FEAT_HAFDBS: hardware updates AF and dirty
};""","""  bool hafdbs = true;  // FEAT_HAFDBS: hardware updates AF and dirty
  // Test hook, no scenario reaches it: contpte_ptep_set_access_flags' no-op
  // check as before "arm64: contpte: fix set_access_flags() no-op check for
  // SMMU/ATS faults" — the gathered ptep_get compared with the new entry —
  // so that tests show the fault_loop a dev walker then hits.
  bool test_gathered_access_flags_check = false;
};"""),
])
patch('src/engine/contpte.h', [
("""  if (all_subptes_match_access_flags(env, ptep, entry)) return false;""",
 """  if (env.features().test_gathered_access_flags_check
          ? pte_mknoncont(ptep_get(env, ptep, raw::ptep_get(env, ptep))) == entry
          : all_subptes_match_access_flags(env, ptep, entry))
    return false;"""),
])

# ---- runner ----
patch('src/workload/runner.cpp', [
("""                       eb.access = mem_access(h.kind);
                       eb.no_vma = !cur().mm->vmas().empty() && !cur().mm->find_vma(eb.va.val);""",
"""                       eb.access = mem_access(h.kind);
                       eb.device = h.device;
                       eb.no_vma = !cur().mm->vmas().empty() && !cur().mm->find_vma(eb.va.val);
                       if (h.device && cur().mm->find_vma(eb.va.val))
                         throw ScenarioError(b.loc, "a dev branch inside a mapping: the memory manager's fault "
                                                    "path does not run inside parallel blocks yet (a top-level "
                                                    "'dev' statement uses it)");"""),
("""  // `read|write|exec ADDR LEN [stride] [count] [pattern]`.
  void exec_access(const Statement& st, const Access& a) {""","""  // Why a device walker without hardware A/D updates faults on the stored
  // descriptor `d` ("" when the access completes): the same decision the
  // explorer's dev branches make.
  static std::string dev_fault_of(Pte d, bool write) {
    if (!pte_valid(d)) return "translation fault";
    if ((d.val & bits::kUser) == 0) return "permission fault";
    if (write && pte_rdonly(d)) return "permission fault (read-only)";
    if (!pte_young(d)) return "access flag fault";
    return "";
  }

  // `dev read|write ADDR`: a device walker without HTTU. A fault goes to
  // the memory manager's fault path in a mapping; outside every mapping
  // (PTE-level scenarios) the handler is handle_pte_fault's: entry =
  // pte_mkyoung(ptep_get()), pte_mkdirty for a write when pte_write, then
  // ptep_set_access_flags. The access retries; faulting again for the same
  // reason after a handler that left the PTE still faulting is fault_loop.
  void exec_dev(const Statement& st, const Access& a) {
    const VirtAddr va = resolve(a.addr);
    const bool write = a.kind == AccessKind::Write;
    Mm& mm = *cur().mm;
    auto stored_word = [&] {
      const auto s = mm.page_table().pte_slot(va, false);
      return s ? *s->ptr() : Pte{};
    };
    auto error = [&](std::string_view why) {
      res_.error = fmt::format("{}:{}: dev {} {:#x} in process {}: {}", st.loc.file, st.loc.line,
                               write ? "write" : "read", va.val, cur_, why);
    };
    std::string handled;
    bool fixed = false;
    for (int attempt = 0; attempt < 8; ++attempt) {
      const std::string fault = dev_fault_of(stored_word(), write);
      if (fault.empty()) return;
      if (!handled.empty() && handled == fault && !fixed) {
        Violation v;
        v.rule = "fault_loop";
        v.va = va.val;
        v.line = st.loc.line;
        v.detail = fmt::format("{} faulted again ({}) after its fault handler ran and left the PTE unchanged: a "
                               "walker without hardware A/D updates would fault forever",
                               st.text, fault);
        checker_.violations().push_back(std::move(v));
        return;
      }
      handled = fault;
      if (mm.find_vma(va.val)) {
        if (mm.handle_fault(va.val, write, false) != FaultResult::Handled)
          return error(fmt::format("{}; SIGSEGV: the mapping does not permit it", fault));
      } else {
        const auto s = mm.page_table().pte_slot(va, false);
        const Pte cur_pte = s ? ptep_get(env(), *s) : Pte{};
        if (!pte_valid(cur_pte))
          return error(fmt::format("{}; no valid PTE and no mapping (a fault on a non-present PTE)", fault));
        if (write && !pte_write(cur_pte)) return error(fmt::format("{}; a write to a PTE without write permission", fault));
        Pte entry = pte_mkyoung(cur_pte);
        if (write) entry = pte_mkdirty(entry);
        ptep_set_access_flags(env(), va, *s, entry, write);
      }
      fixed = dev_fault_of(stored_word(), write).empty();
    }
    error("the fault handler did not resolve it");
  }

  // `read|write|exec ADDR LEN [stride] [count] [pattern]`.
  void exec_access(const Statement& st, const Access& a) {
    if (a.device) return exec_dev(st, a);"""),
])
