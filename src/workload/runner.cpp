#include "workload/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <type_traits>

#include "engine/pgtable.h"
#include "hw/page_table.h"
#include "hw/phys_mem.h"
#include "hw/sim_env.h"
#include "mm/buddy.h"
#include "workload/pte_format.h"

namespace contpte {

const std::vector<std::string>& stat_names() {
  // The first ten are DESIGN.md's stable keys; the rest are the engine's.
  static const std::vector<std::string> names{
      "accesses", "tlb_misses", "walks",     "walk_cycles", "faults",     "folds",
      "unfolds",  "tlbi",       "cont_coverage", "rss_bytes", "pte_stores", "tlbi_pages"};
  return names;
}

int RunResult::exit_status() const {
  if (error || expects_failed > 0) return 1;
  for (const auto& v : violations)
    if (!v.claimed) return 1;
  return 0;
}

double RunResult::stat(std::string_view name) const {
  for (const auto& [k, v] : stats)
    if (k == name) return v;
  return 0;
}

namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// The statements whose layer does not exist yet, and where it will come from.
std::optional<std::string_view> unsupported(const Op& op) {
  return std::visit(
      Overloaded{
          [](const Mmap&) -> std::optional<std::string_view> { return "'mmap'"; },
          [](const Munmap&) -> std::optional<std::string_view> { return "'munmap'"; },
          [](const Mprotect&) -> std::optional<std::string_view> { return "'mprotect'"; },
          [](const Madvise&) -> std::optional<std::string_view> { return "'madvise'"; },
          [](const Fork&) -> std::optional<std::string_view> { return "'fork'"; },
          [](const Process&) -> std::optional<std::string_view> { return "'process'"; },
          [](const Exit&) -> std::optional<std::string_view> { return "'exit'"; },
          [](const Reclaim&) -> std::optional<std::string_view> { return "'reclaim'"; },
          [](const Access&) -> std::optional<std::string_view> { return "hardware accesses"; },
          [](const Parallel&) -> std::optional<std::string_view> { return "'parallel' blocks"; },
          [](const auto&) -> std::optional<std::string_view> { return std::nullopt; },
      },
      op);
}

std::string_view planned_in(const Op& op) {
  if (std::holds_alternative<Access>(op)) return "needs the simulated MMU";
  if (std::holds_alternative<Parallel>(op)) return "needs the interleaving explorer";
  return "needs the memory manager";
}

const AddrExpr* mapping_operand(const Op& op) {
  return std::visit(
      Overloaded{
          [](const Dump& d) -> const AddrExpr* { return &d.addr; },
          [](const ExpectCont& e) -> const AddrExpr* { return &e.addr; },
          [](const ExpectPte& e) -> const AddrExpr* { return &e.addr; },
          [](const auto&) -> const AddrExpr* { return nullptr; },
      },
      op);
}

// Prints every PTE access and TLB invalidation with the statement that
// made it: what a kernel engineer reads to see why a block folded or not.
class TraceObserver final : public SimObserver {
 public:
  TraceObserver(std::ostream& out, const PageTable& pt) : out_(out), pt_(pt) {}
  void set_statement(const Statement* s) { cur_ = s; }
  void set_enabled(bool on) { enabled_ = on; }

  void on_pte_access(const PteAccess& a) override {
    if (!enabled_) return;
    static constexpr std::string_view kOps[] = {"load", "store", "xchg", "cmpxchg"};
    const unsigned shift = pt_.geometry().page_shift;
    const auto va = pt_.va_of(a.slot);
    std::string where = va ? fmt::format("{:#x}", va->val) : std::string("?");
    std::string what = fmt::format("{:<7} {}", kOps[static_cast<int>(a.op)], where);
    if (a.op == PteAccessOp::Load)
      out_ << prefix() << what << "  " << format_pte(a.before, shift) << '\n';
    else if (a.op == PteAccessOp::Cmpxchg && a.before != a.expected)
      out_ << prefix() << what << "  failed, found " << format_pte(a.before, shift) << '\n';
    else
      out_ << prefix() << what << "  " << format_pte(a.before, shift) << "\n"
           << prefix() << std::string(9 + where.size(), ' ') << "-> "
           << format_pte(a.after, shift) << '\n';
  }
  void on_tlbi(const TlbiRequest& r) override {
    if (!enabled_) return;
    switch (r.kind) {
      case TlbiKind::Page:
        out_ << prefix() << fmt::format("tlbi    page {:#x}{}\n", r.start.val, r.sync ? "" : " (nosync)");
        break;
      case TlbiKind::Range:
        out_ << prefix()
             << fmt::format("tlbi    range {:#x} pages={}{}\n", r.start.val, r.nr_pages,
                            r.sync ? "" : " (nosync)");
        break;
      case TlbiKind::Mm:
        out_ << prefix() << "tlbi    mm\n";
        break;
    }
  }

 private:
  std::string prefix() const {
    if (!cur_) return "  ";
    return fmt::format("  {}:{}: ", cur_->loc.file, cur_->loc.line);
  }
  std::ostream& out_;
  const PageTable& pt_;
  const Statement* cur_ = nullptr;
  bool enabled_ = true;
};

struct FolioDecl {
  Pfn head;
  unsigned order;
};

Features features_of(const Header& h) {
  Features f;
  f.variant = *variant_from_name(h.variant);
  f.bbml2_noabort = f.variant == Variant::Bbml2;
  f.hafdbs = h.hafdbs;
  return f;
}

Pte make_pte(Pfn pfn, Prot p, bool young, bool dirty, unsigned shift) {
  // Linux's PAGE_* carry AF; scenarios make it explicit.
  Pte pte = pte_mkold(pfn_pte(pfn, pgprot_of(p), shift));
  if (young) pte = pte_mkyoung(pte);
  if (dirty) pte = pte_mkdirty(pte);
  return pte;
}

bool compare(double a, CmpOp op, double b) {
  switch (op) {
    case CmpOp::Eq: return a == b;
    case CmpOp::Ne: return a != b;
    case CmpOp::Lt: return a < b;
    case CmpOp::Le: return a <= b;
    case CmpOp::Gt: return a > b;
    case CmpOp::Ge: return a >= b;
  }
  return false;
}

std::string format_stat(double v) {
  if (v == static_cast<double>(static_cast<std::int64_t>(v))) return fmt::format("{}", static_cast<std::int64_t>(v));
  return fmt::format("{:.6g}", v);
}

class Runner {
 public:
  Runner(const Scenario& sc, const RunOptions& opts)
      : sc_(sc),
        geo_(sc.header.geometry()),
        opts_(opts),
        mem_(sc.header.granule, sc.header.memory),
        pt_(mem_),
        buddy_(mem_),
        env_(mem_, pt_, features_of(sc.header)) {
    res_.scenario = sc.file;
    res_.config.granule = std::string(geo_.name);
    res_.config.contpte = sc.header.variant;
    res_.config.tlb = sc.header.tlb;
    for (const auto& [size, policy] : sc.header.thp)
      if (policy != ThpPolicy::Never) res_.config.mthp.push_back(format_size(size));
    if (opts_.trace) {
      trace_.emplace(*opts_.trace, pt_);
      env_.add_observer(&*trace_);
    }
  }

  RunResult run() {
    for (const Statement& st : sc_.statements) {
      if (trace_) trace_->set_statement(&st);
      if (opts_.trace) *opts_.trace << st.loc.file << ':' << st.loc.line << ": " << st.text << '\n';
      ++res_.statements;
      exec(st);
      if (res_.error) break;
    }
    res_.stats = collect_stats();
    return std::move(res_);
  }

 private:
  // ---- addresses and folios ----
  Pfn pfn_of(const FolioRef& f) const { return folios_.at(f.folio).head + f.index; }
  PteSlot slot(VirtAddr va) { return *pt_.pte_slot(va, /*alloc=*/true); }
  Pte stored(VirtAddr va) {
    auto s = pt_.pte_slot(va, /*alloc=*/false);
    return s ? *s->ptr() : Pte{};
  }
  VirtAddr resolve(const AddrExpr& a) const {
    if (a.mapping)  // no memory manager yet: nothing is ever mapped by name
      throw ScenarioError(a.loc, fmt::format("no mapping named '{}' in process 0", *a.mapping));
    return VirtAddr{a.offset};
  }

  // Reads for expectations and dumps are not part of the scenario's work:
  // keep them out of the trace.
  template <class Fn>
  auto quietly(Fn&& fn) {
    if (trace_) trace_->set_enabled(false);
    auto r = fn();
    if (trace_) trace_->set_enabled(true);
    return r;
  }

  void expect_result(const Statement& st, bool ok, std::string message) {
    if (ok) {
      ++res_.expects_passed;
      return;
    }
    ++res_.expects_failed;
    res_.failures.push_back({st.loc, std::move(message)});
  }

  // ---- execution ----
  void exec(const Statement& st) {
    const unsigned shift = geo_.page_shift;
    std::visit(
        Overloaded{
            [&](const Alloc& a) {
              auto pfn = buddy_.alloc_folio(a.order);
              if (!pfn) {
                res_.error = fmt::format("{}:{}: alloc {} order={}: out of memory ({} frames free)",
                                         st.loc.file, st.loc.line, a.name, a.order,
                                         buddy_.free_frames());
                return;
              }
              folios_[a.name] = FolioDecl{*pfn, a.order};
            },
            [&](const SetPtes& s) {
              set_ptes(env_, s.addr, slot(s.addr),
                       make_pte(pfn_of(s.folio), s.prot, s.young, s.dirty, shift), s.nr);
            },
            [&](const PteOp& o) { exec_pte_op(o); },
            [&](const PteBatch& b) { exec_batch(b); },
            [&](const ModifyProt& m) {
              // Pre-6.17 change_pte_range: one start/commit per present PTE.
              const PteSlot first = slot(m.addr);
              for (unsigned i = 0; i < m.nr; ++i) {
                const VirtAddr va = m.addr + std::uint64_t{i} * geo_.page_size();
                const PteSlot p = first + i;
                if (!pte_present(ptep_get(env_, p))) continue;
                Pte old = ptep_modify_prot_start(env_, va, p);
                ptep_modify_prot_commit(env_, va, p, old, pte_modify(old, pgprot_of(m.prot)));
              }
            },
            [&](const SetAccessFlags& s) {
              const PteSlot p = slot(s.addr);
              const Pfn pfn = pte_pfn(ptep_get(env_, p), shift);
              ptep_set_access_flags(env_, s.addr, p, make_pte(pfn, s.prot, s.young, s.dirty, shift),
                                    s.dirty);
            },
            [&](const RawSet& r) {
              // A buggy caller: the word is written as is, no engine, no TLBI.
              Pte v = make_pte(pfn_of(r.pfn), r.prot, r.young, r.dirty, shift);
              if (r.cont) v = pte_mkcont(v);
              env_.write(slot(r.addr), v);
            },
            [&](const Dump& d) { exec_dump(st, d); },
            [&](const ExpectCont& e) { exec_expect_cont(st, e); },
            [&](const ExpectPte& e) { exec_expect_pte(st, e); },
            [&](const ExpectStat& e) {
              const double v = stat_value(e.name);
              expect_result(st, compare(v, e.op, e.value),
                            fmt::format("expect stat {} {} {}: found {}", e.name, name(e.op),
                                        format_stat(e.value), format_stat(v)));
            },
            [&](const ExpectViolations& e) {
              std::uint64_t unclaimed = 0;
              for (const auto& v : res_.violations) unclaimed += !v.claimed;
              expect_result(st, unclaimed == e.count,
                            fmt::format("expect violations {}: found {} unclaimed", e.count, unclaimed));
            },
            [&](const ExpectViolation& e) {
              std::uint64_t found = 0;
              for (auto& v : res_.violations)
                if (v.rule == e.rule && !v.claimed) {
                  v.claimed = true;
                  ++found;
                }
              const bool ok = e.count ? found == *e.count : found > 0;
              expect_result(st, ok,
                            fmt::format("expect violation {}{}: found {} finding(s) of that rule",
                                        e.rule, e.count ? fmt::format(" {}", *e.count) : "", found));
            },
            [&](const auto&) {
              // validate_for_run() rejected everything else before the run.
              throw ScenarioError(st.loc, "statement not supported yet");
            },
        },
        st.op);
  }

  void exec_pte_op(const PteOp& o) {
    const PteSlot p = slot(o.addr);
    switch (o.kind) {
      case PteOpKind::PteClear: pte_clear(env_, o.addr, p); break;
      case PteOpKind::PtepGetAndClear: ptep_get_and_clear(env_, o.addr, p); break;
      case PteOpKind::PtepSetWrprotect: ptep_set_wrprotect(env_, o.addr, p); break;
      case PteOpKind::PtepTestAndClearYoung: ptep_test_and_clear_young(env_, o.addr, p); break;
      case PteOpKind::PtepClearFlushYoung: ptep_clear_flush_young(env_, o.addr, p); break;
    }
  }

  void exec_batch(const PteBatch& b) {
    const PteSlot p = slot(b.addr);
    switch (b.kind) {
      case PteBatchKind::GetAndClearFullPtes: get_and_clear_full_ptes(env_, b.addr, p, b.nr, b.full); break;
      case PteBatchKind::ClearFullPtes: clear_full_ptes(env_, b.addr, p, b.nr, b.full); break;
      case PteBatchKind::WrprotectPtes: wrprotect_ptes(env_, b.addr, p, b.nr); break;
      case PteBatchKind::ClearYoungDirtyPtes: {
        unsigned flags = (b.young ? CYDP_CLEAR_YOUNG : 0u) | (b.dirty ? CYDP_CLEAR_DIRTY : 0u);
        clear_young_dirty_ptes(env_, b.addr, p, b.nr, flags);
        break;
      }
    }
  }

  std::uint64_t pages_in(std::uint64_t len) const {
    return (len + geo_.page_size() - 1) >> geo_.page_shift;
  }

  void exec_dump(const Statement& st, const Dump& d) {
    std::ostream& out = opts_.dump ? *opts_.dump : std::cout;
    const VirtAddr start = resolve(d.addr);
    out << st.loc.file << ':' << st.loc.line << ": " << st.text << '\n';
    for (std::uint64_t i = 0; i < pages_in(d.len); ++i) {
      const VirtAddr va = start + i * geo_.page_size();
      out << fmt::format("  {:#014x}  {}\n", va.val, format_pte(stored(va), geo_.page_shift));
    }
  }

  void exec_expect_cont(const Statement& st, const ExpectCont& e) {
    const VirtAddr start = resolve(e.addr);
    for (std::uint64_t i = 0; i < pages_in(e.len); ++i) {
      const VirtAddr va = start + i * geo_.page_size();
      const Pte pte = stored(va);
      if (pte_cont(pte) != e.cont) {
        expect_result(st, false,
                      fmt::format("expect {} {:#x}: PTE at {:#x} {} PTE_CONT: {}",
                                  e.cont ? "cont" : "nocont", start.val, va.val,
                                  e.cont ? "lacks" : "has", format_pte(pte, geo_.page_shift)));
        return;
      }
    }
    expect_result(st, true, {});
  }

  void exec_expect_pte(const Statement& st, const ExpectPte& e) {
    const unsigned shift = geo_.page_shift;
    const VirtAddr va = resolve(e.addr);
    const Pte pte = e.raw ? stored(va) : quietly([&] {
      auto s = pt_.pte_slot(va, false);
      return s ? ptep_get(env_, *s) : Pte{};
    });
    std::string wrong;
    auto check = [&](std::string_view key, std::optional<bool> want, bool got) {
      if (want && *want != got) wrong += fmt::format(" {}={} (expected {})", key, int(got), int(*want));
    };
    const PteExpectation& w = e.want;
    check("present", w.present, pte_present(pte));
    if (w.pfn) {
      const Pfn want = std::visit(Overloaded{[&](const FolioRef& f) { return pfn_of(f); },
                                             [](const Pfn& p) { return p; }},
                                  *w.pfn);
      const Pfn got = pte_pfn(pte, shift);
      if (got != want) wrong += fmt::format(" pfn={:#x} (expected {:#x})", got.val, want.val);
    }
    check("write", w.write, pte_write(pte));
    check("dirty", w.dirty, pte_dirty(pte));
    check("young", w.young, pte_young(pte));
    check("cont", w.cont, pte_cont(pte));
    expect_result(st, wrong.empty(),
                  fmt::format("expect {} {:#x}: found{}; PTE {}", e.raw ? "raw" : "pte", va.val, wrong,
                              format_pte(pte, shift)));
  }

  // ---- stats ----
  struct Coverage {
    std::uint64_t present = 0, cont = 0;
  };
  Coverage coverage() const {
    Coverage c;
    const unsigned n = geo_.ptrs_per_table();
    pt_.for_each_pte_page([&](VirtAddr, PteSlot s) {
      for (unsigned i = 0; i < n; ++i) {
        const Pte pte = s.ptr()[i];
        if (!pte_present(pte)) continue;
        ++c.present;
        c.cont += pte_valid_cont(pte);
      }
    });
    return c;
  }

  double stat_value(std::string_view name) const {
    const EngineCounters& k = env_.counters();
    if (name == "folds") return double(k.folds);
    if (name == "unfolds") return double(k.unfolds);
    if (name == "tlbi") return double(k.tlbi);
    if (name == "tlbi_pages") return double(k.tlbi_pages);
    if (name == "pte_stores") return double(k.pte_stores);
    if (name == "cont_coverage") {
      const Coverage c = coverage();
      return c.present ? double(c.cont) / double(c.present) : 0.0;
    }
    if (name == "rss_bytes") return double(coverage().present * geo_.page_size());
    // accesses, tlb_misses, walks, walk_cycles, faults: no access has been
    // simulated (the MMU model is not part of this build yet).
    return 0.0;
  }

  std::vector<std::pair<std::string, double>> collect_stats() const {
    std::vector<std::pair<std::string, double>> out;
    for (const auto& n : stat_names()) out.emplace_back(n, stat_value(n));
    return out;
  }

  const Scenario& sc_;
  const Geometry& geo_;
  const RunOptions& opts_;
  PhysMem mem_;
  PageTable pt_;
  BuddyAllocator buddy_;
  SimEnv env_;
  std::optional<TraceObserver> trace_;
  std::map<std::string, FolioDecl> folios_;
  RunResult res_;
};

}  // namespace

void validate_for_run(const Scenario& sc) {
  if (sc.header.tlb != "default" && sc.header.given.tlb)
    throw ScenarioError(*sc.header.given.tlb,
                        fmt::format("unknown TLB preset '{}'; expected one of: default "
                                    "(the TLB model is not part of this build yet)",
                                    sc.header.tlb));
  for (const Statement& st : sc.statements) {
    if (auto what = unsupported(st.op))
      throw ScenarioError(st.loc, fmt::format("{} not supported yet ({})", *what, planned_in(st.op)));
    if (const AddrExpr* a = mapping_operand(st.op); a && a->mapping)
      throw ScenarioError(a->loc, fmt::format("no mapping named '{}' in process 0", *a->mapping));
    if (const auto* e = std::get_if<ExpectStat>(&st.op)) {
      const auto& names = stat_names();
      if (std::find(names.begin(), names.end(), e->name) == names.end())
        throw ScenarioError(e->name_loc, fmt::format("unknown stat '{}'; expected one of: {}", e->name,
                                                     fmt::join(names, ", ")));
    }
  }
}

RunResult run_scenario(const Scenario& sc, const RunOptions& opts) {
  validate_for_run(sc);
  return Runner(sc, opts).run();
}

}  // namespace contpte
