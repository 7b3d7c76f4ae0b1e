import shutil
W='/work/wt-explore/'
def patch(path, pairs):
    s=open(W+path).read()
    for old,new in pairs:
        assert old in s, (path, old[:90])
        s=s.replace(old,new,1)
    open(W+path,'w').write(s)
shutil.copy('/tmp/access_rules.h', W+'src/hw/access_rules.h')
patch('src/hw/mmu.h', [
("""enum class Fault : std::uint8_t { None, Translation, AccessFlag, Permission };
""",""""""),
("""#include "hw/checker.h"
""","""#include "hw/access_rules.h"
#include "hw/checker.h"
"""),
])
patch('src/hw/mmu.cpp', [
("""    Pte v = pte_mkyoung(old);
    if (needs_dirty && pte_write(old)) v = clear_pte_bit(v, bits::kRdonly);
    if (v == old) break;""","""    const Pte v = hafdbs_updated(old, needs_dirty);
    if (v == old) break;"""),
("""  Pte cached = pte_mkyoung(d);
  if (needs_dirty) cached = clear_pte_bit(cached, bits::kRdonly);
  return cached;
}""","""  return hafdbs_cached(d, needs_dirty);
}"""),
("""  const Pte d = w.desc;
  const bool el0_ok = kind == MemAccess::Exec ? pte_user_exec(d) : (d.val & bits::kUser) != 0;
  if (!el0_ok) return fault(Fault::Permission);
  const bool needs_dirty = kind == MemAccess::Write && pte_rdonly(d);
  if (needs_dirty && !(pte_write(d) && hafdbs_)) return fault(Fault::Permission);
  if (!pte_young(d) && !hafdbs_) return fault(Fault::AccessFlag);
""","""  const Pte d = w.desc;
  const AccessDecision decision = decide_access(true, d, kind, hafdbs_);
  if (decision.fault != Fault::None) return fault(decision.fault);
"""),
("""  const Pte cached = !pte_young(d) || needs_dirty ? hw_update(pt, asid, target, d, needs_dirty) : d;

  TlbEntry e;
  e.asid = asid;
  e.va = w.va_base;
  e.size_shift = w.size_shift;
  e.level = static_cast<std::uint8_t>(w.level);
  e.cont = pte_cont(d);
  e.pa = w.pa_base;
  e.desc = cached;""","""  const Pte cached = decision.needs_update ? hw_update(pt, asid, target, d, decision.needs_dirty) : d;

  const TlbEntry e = tlb_entry_from_walk(w, asid, cached);"""),
])
patch('src/explore/explorer.cpp', [
("""#include "hw/walker.h"
""","""#include "hw/access_rules.h"
#include "hw/walker.h"
"""),
("""    const bool needs_dirty = s.access == MemAccess::Write && pte_rdonly(d);
    std::string fault;
    if (!w.valid) fault = "translation fault";
    else if (!(s.access == MemAccess::Exec ? pte_user_exec(d) : (d.val & bits::kUser) != 0))
      fault = "permission fault";
    else if (needs_dirty && !(pte_write(d) && hafdbs)) fault = "permission fault (read-only)";
    else if (!pte_young(d) && !hafdbs) fault = "access flag fault";""","""    const AccessDecision decision = decide_access(w.valid, d, s.access, hafdbs);
    const std::string fault(access_fault_text(decision));"""),
("""    if (!pte_young(d) || needs_dirty) {
      r.hw = HwPhase::Update;
      r.expected = d;
      r.update_slot = w.slot;
      r.needs_dirty = needs_dirty;
      rec.note = needs_dirty ? "needs the dirty update" : "needs the access flag";""","""    if (decision.needs_update) {
      r.hw = HwPhase::Update;
      r.expected = d;
      r.update_slot = w.slot;
      r.needs_dirty = decision.needs_dirty;
      rec.note = decision.needs_dirty ? "needs the dirty update" : "needs the access flag";"""),
("""    Pte v = pte_mkyoung(r.expected);
    if (r.needs_dirty && pte_write(r.expected)) v = clear_pte_bit(v, bits::kRdonly);
    rec.before = *r.update_slot;""","""    const Pte v = hafdbs_updated(r.expected, r.needs_dirty);
    rec.before = *r.update_slot;"""),
("""    fill_tlb(b, w, v);
    r.hw = HwPhase::Done;""","""    fill_tlb(b, w, hafdbs_cached(r.expected, r.needs_dirty));
    r.hw = HwPhase::Done;"""),
("""  void fill_tlb(unsigned b, const WalkResult& w, Pte cached) {
    TlbEntry e;
    e.asid = setup.asid;
    e.va = w.va_base;
    e.size_shift = w.size_shift;
    e.level = static_cast<std::uint8_t>(w.level);
    e.cont = pte_cont(w.desc);
    e.pa = w.pa_base;
    e.desc = cached;
    e.page_shift""","""  void fill_tlb(unsigned b, const WalkResult& w, Pte cached) {
    TlbEntry e = tlb_entry_from_walk(w, setup.asid, cached);
    e.page_shift"""),
])
patch('src/workload/runner.cpp', [
("""  static std::string dev_fault_of(Pte d, bool write) {
    if (!pte_valid(d)) return "translation fault";
    if ((d.val & bits::kUser) == 0) return "permission fault";
    if (write && pte_rdonly(d)) return "permission fault (read-only)";
    if (!pte_young(d)) return "access flag fault";
    return "";
  }""","""  static std::string dev_fault_of(Pte d, bool write) {
    return std::string(access_fault_text(
        decide_access(pte_valid(d), d, write ? MemAccess::Write : MemAccess::Read, /*hafdbs=*/false)));
  }"""),
])
