#include "scenario/runner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <iostream>
#include <type_traits>

#include "arch/pte_format.h"
#include "engine/pgtable.h"
#include "hw/access_rules.h"
#include "hw/checker.h"
#include "hw/page_table.h"
#include "hw/sim_env.h"
#include "hw/tlb.h"
#include "mm/mm.h"
#include "scenario/machine_spec.h"
#include "scenario/pte_statements.h"
#include "scenario/scale.h"
#include "scenario/zipf.h"
#include "sim/machine.h"
#include "sim/stats.h"

namespace contpte {

int RunResult::exit_status() const {
  if (error || expects_failed > 0) return 1;
  for (const auto& x : explorations)
    if (x.result.failed()) return 1;
  for (const auto& v : violations)
    if (!v.claimed) return 1;
  // Only an exhausted exploration is a proof.
  for (const auto& x : explorations)
    if (!x.result.exhausted) return 3;
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

// PTE-level statements: the engine API called directly (docs/scenario.md).
bool is_pte_level(const EngineOp& op) {
  return std::holds_alternative<SetPtes>(op) || std::holds_alternative<PteOp>(op) ||
         std::holds_alternative<PteBatch>(op) || std::holds_alternative<ModifyProt>(op) ||
         std::holds_alternative<SetAccessFlags>(op) || std::holds_alternative<RawSet>(op);
}

// The statements whose layer does not exist yet, and where it will come from.
std::optional<std::string_view> unsupported(const Op& op) {
  return std::visit(
      Overloaded{
          [](const Parallel& p) -> std::optional<std::string_view> {
            for (const Branch& b : p.branches)
              if (const auto* e = std::get_if<EngineOp>(&b.op); e && !is_pte_level(*e))
                return "memory-manager statements inside 'parallel' blocks";
            return std::nullopt;
          },
          [](const auto&) -> std::optional<std::string_view> { return std::nullopt; },
      },
      op);
}

std::string_view planned_in(const Op& op) {
  if (std::holds_alternative<Parallel>(op))
    return "branches may be PTE-level statements, hw accesses and lockless readers";
  return "not modelled";
}


struct FolioDecl {
  Pfn head;
  unsigned order;
};

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

// The interpreter of scenario statements over a Machine: names (folios,
// mappings, the current process), expectations, the PTE-level statements
// with their core-mm caller, parallel blocks through the explorer.
class Runner final : public RunMachine {
 public:
  Runner(const Scenario& sc, const RunOptions& opts)
      : sc_(sc),
        geo_(sc.header.geometry()),
        opts_(opts),
        m_(machine_spec(sc, opts), opts.trace),
        names_(1),
        rng_(sc.header.seed) {
    res_.scenario = sc.file;
    res_.config.granule = std::string(geo_.name);
    res_.config.contpte = sc.header.variant;
    res_.config.tlb = m_.mmu().config().name;  // the core's name, not the JSON file's path
    for (const auto& [size, policy] : sc.header.thp)
      if (policy != ThpPolicy::Never) res_.config.mthp.push_back(format_size(size));
  }

  RunResult run() {
    for (std::size_t i = 0; i < sc_.statements.size(); ++i) {
      const Statement& st = sc_.statements[i];
      index_ = i;
      if (opts_.trace) opts_.trace->on_statement(st);
      ++res_.statements;
      m_.set_context(st.loc.line, res_.statements);
      exec(st);
      m_.engine_findings();
      m_.settle();
      if (res_.error) break;
    }
    return finish();
  }

  RunResult run_driven(const std::function<void(RunMachine&)>& drive) {
    drive(*this);
    return finish();
  }

  // ---- RunMachine ----
  Mm& mm(std::size_t pid) override { return m_.mm(pid); }
  std::size_t fork(std::size_t parent) override { return m_.fork(parent); }
  void exit(std::size_t pid) override { m_.exit(pid); }
  bool access(std::size_t pid, std::uint64_t va, MemAccess kind, bool continued) override {
    return !m_.access(pid, VirtAddr{va}, kind, continued);
  }
  void end_step() override { m_.settle(); }
  void count_instructions(std::uint64_t n) override { m_.count_instructions(n); }

 private:
  RunResult finish() {
    res_.violations = m_.checker().violations();
    res_.stats = collect_stats(m_);
    std::set<std::string> fallbacks;  // every process's, exited ones too
    for (std::size_t pid = 0; pid < m_.processes(); ++pid) {
      const auto& used = m_.env(pid).fallbacks_used();
      fallbacks.insert(used.begin(), used.end());
    }
    res_.kernel_fallbacks.assign(fallbacks.begin(), fallbacks.end());
    return std::move(res_);
  }

  // ---- the current process ----
  using Names = std::map<std::string, std::pair<VirtAddr, std::uint64_t>>;  // start, size
  Mm& cur() { return m_.mm(cur_); }
  Names& cur_names() { return names_[cur_]; }
  SimEnv& env() { return m_.env(cur_); }
  PageTable& pt() { return cur().page_table(); }
  std::uint16_t asid() { return cur().asid(); }

  // ---- addresses and folios ----
  Pfn pfn_of(const FolioRef& f) const { return folios_.at(f.folio).head + f.index; }
  PteSlot slot(VirtAddr va) { return *pt().pte_slot(va, /*alloc=*/true); }
  Pte stored(VirtAddr va) { return m_.stored(cur_, va); }
  VirtAddr resolve(const AddrExpr& a) {
    if (!a.mapping) return VirtAddr{a.offset};
    auto it = cur_names().find(*a.mapping);
    if (it == cur_names().end())
      throw ScenarioError(a.loc, fmt::format("no mapping named '{}' in process {}", *a.mapping, cur_));
    if (a.offset >= it->second.second)
      throw ScenarioError(a.loc, fmt::format("offset {:#x} is past the end of '{}' ({})", a.offset,
                                             *a.mapping, format_size(it->second.second)));
    return it->second.first + a.offset;
  }

  // A PTE-level statement acts outside every mapping (docs/scenario.md): inside
  // a VMA it would bypass the memory manager's own bookkeeping.
  void outside_vmas(const SourceLoc& loc, VirtAddr va, std::uint64_t nr) {
    const std::uint64_t end = va.val + nr * geo_.page_size();
    for (const auto& [s, v] : cur().vmas())
      if (s.val < end && va < v.end)
        throw ScenarioError(loc, fmt::format("PTE-level statement inside a mapping ({:#x}-{:#x}) of "
                                                "process {}; PTE-level statements act outside every mmap",
                                                v.start.val, v.end.val, cur_));
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
              auto pfn = m_.buddy().alloc_folio(a.order);
              if (!pfn) {
                res_.error = fmt::format("{}:{}: alloc {} order={}: out of memory ({} frames free)",
                                         st.loc.file, st.loc.line, a.name, a.order,
                                         m_.buddy().free_frames());
                return;
              }
              folios_[a.name] = FolioDecl{*pfn, a.order};
            },
            [&](const SetPtes& s) {
              outside_vmas(st.loc, s.addr, s.nr);
              in_caller_range(s.addr, s.nr, [&] {
                seq_caller().set(s, make_pte(pfn_of(s.folio), s.prot, s.young, s.dirty, shift));
              });
            },
            [&](const PteOp& o) {
              outside_vmas(st.loc, o.addr, 1);
              in_caller_range(o.addr, 1, [&] { seq_caller().op(o); });
            },
            [&](const PteBatch& b) {
              outside_vmas(st.loc, b.addr, b.nr);
              in_caller_range(b.addr, b.nr, [&] { seq_caller().batch(b); });
            },
            [&](const Mmap& m) { exec_mmap(st, m); },
            [&](const Munmap& m) {
              const VirtAddr a = resolve(m.addr);
              cur().munmap(a, m.len);
            },
            [&](const Brk& b) { exec_brk(st, b); },
            [&](const Mprotect& m) {
              const VirtAddr a = resolve(m.addr);
              cur().mprotect(a, m.len, m.prot);
            },
            [&](const Madvise& m) { exec_madvise(st, m); },
            [&](const Fork&) {
              Names names = cur_names();
              m_.fork(cur_);
              names_.push_back(std::move(names));
            },
            [&](const Process& p) { cur_ = p.id; },
            [&](const Exit& e) {
              m_.exit(e.id);
            },
            [&](const Reclaim& r) { exec_reclaim(r); },
            [&](const ModifyProt& m) {
              outside_vmas(st.loc, m.addr, m.nr);
              in_caller_range(m.addr, m.nr, [&] { seq_caller().modify_prot(m); });
            },
            [&](const Access& a) { exec_access(st, a); },
            [&](const DevAccess& d) { exec_dev(st, d); },
            [&](const SetAccessFlags& s) {
              outside_vmas(st.loc, s.addr, 1);
              seq_caller().set_access_flags(
                  s, [&](Pfn pfn) { return make_pte(pfn, s.prot, s.young, s.dirty, shift); });
            },
            [&](const RawSet& r) {
              outside_vmas(st.loc, r.addr, 1);
              seq_caller().raw_set(r, raw_pte(r));
            },
            [&](const Dump& d) { exec_dump(st, d); },
            [&](const Parallel& p) { exec_parallel(st, p); },
            [&](const ExpectCont& e) { exec_expect_cont(st, e); },
            [&](const ExpectPte& e) { exec_expect_pte(st, e); },
            [&](const ExpectStat& e) {
              StatReader r(m_);
              const double v = stat_value(r, e.name).value_or(0.0);
              expect_result(st, compare(v, e.op, e.value),
                            fmt::format("expect stat {} {} {}: found {}", e.name, name(e.op),
                                        format_stat(e.value), format_stat(v)));
            },
            [&](const ExpectViolations& e) {
              std::uint64_t unclaimed = 0;
              for (const auto& v : m_.checker().violations()) unclaimed += !v.claimed;
              expect_result(st, unclaimed == e.count,
                            fmt::format("expect violations {}: found {} unclaimed", e.count, unclaimed));
            },
            [&](const ExpectViolation& e) {
              std::uint64_t found = 0;
              for (auto& v : m_.checker().violations())
                if (rule_name(v.rule) == e.rule && !v.claimed) {
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

  // A PTE-level statement, with what its core-mm caller does around it
  // (scenario/pte_statements.h), on `e`: the process's SimEnv here, a
  // StepEnv in a parallel branch.
  template <Env E, class Flush>
  PteCaller<E> pte_caller(E& e, Checker* chk, Flush flush) {
    return PteCaller<E>{e, geo_, chk, asid(), [this](VirtAddr va) { return slot(va); },
                        [this](VirtAddr va) { return stored(va); }, std::move(flush)};
  }
  // out_of_range for the built-in engine: a PTE-level call may write only
  // inside the contpte blocks that contain the range it was given. (An
  // engine built from a Linux tree is checked by the seam itself,
  // engine/external.h.)
  template <class Fn>
  void in_caller_range(VirtAddr addr, unsigned nr, Fn&& fn) {
    if (env().features().external || !m_.checking() || nr == 0) return fn();
    struct Guard final : SimObserver {
      const Pte* lo;
      const Pte* hi;
      Checker& chk;
      SimEnv& env;
      Guard(const Pte* l, const Pte* h, Checker& c, SimEnv& e) : lo(l), hi(h), chk(c), env(e) {
        env.add_observer(this);
      }
      ~Guard() override { env.remove_observer(this); }
      void on_pte_access(const PteAccess& a) override {
        if (a.op != PteAccessOp::Load && (a.slot.ptr() < lo || a.slot.ptr() >= hi))
          chk.report_engine(EngineFinding{EngineFindingKind::OutOfRange, a.slot.ptr(),
                                          "the engine wrote a PTE outside the contpte blocks of the range "
                                          "its caller passed"});
      }
    };
    const unsigned cont = geo_.cont_ptes;
    const Pte* lo = slot(addr).align_down(cont).ptr();
    const Pte* hi = slot(addr + std::uint64_t{nr - 1} * geo_.page_size()).align_down(cont).ptr() + cont;
    Guard g(lo, hi, m_.checker(), env());
    fn();
  }

  PteCaller<SimEnv> seq_caller() {
    return pte_caller(env(), &m_.checker(),
                      [this](VirtAddr va, std::uint64_t nr) { m_.caller_flush(cur_, va, nr); });
  }
  Pte raw_pte(const RawSet& r) const {
    Pte v = make_pte(pfn_of(r.pfn), r.prot, r.young, r.dirty, geo_.page_shift);
    return r.cont ? pte_mkcont(v) : v;
  }

  // ---- parallel blocks ----
  static MemAccess mem_access(AccessKind k) {
    return k == AccessKind::Read ? MemAccess::Read : k == AccessKind::Write ? MemAccess::Write : MemAccess::Exec;
  }

  // The branches as the explorer runs them. Every PTE slot a branch touches
  // exists before the block starts: allocating a table is not a step.
  ExploreSetup parallel_setup(const Parallel& p) {
    ExploreSetup s;
    s.source = sc_.file;
    s.mem = &m_.memory();
    s.pt = &pt();
    s.asid = asid();
    s.features = m_.features();
    s.checker = m_.checking() ? &m_.checker() : nullptr;
    for (const Branch& b : p.branches) {
      ExploreBranch eb;
      eb.label = b.text;
      eb.line = b.loc.line;
      std::visit(Overloaded{
                     [&](const EngineOp& op) {
                       eb.kind = ExploreBranch::Kind::Engine;
                       eb.body = engine_body(b.loc, op);
                     },
                     [&](const HwAccess& h) {
                       eb.kind = ExploreBranch::Kind::Hw;
                       eb.va = resolve(h.addr);
                       eb.access = mem_access(h.kind);
                       eb.no_vma = !cur().vmas().empty() && !cur().find_vma(eb.va);
                       slot(eb.va);
                     },
                     [&](const LocklessRead& r) {
                       eb.kind = ExploreBranch::Kind::Reader;
                       eb.va = resolve(r.addr);
                       eb.slot = slot(eb.va);
                     },
                     [&](const DevAccess& d) {
                       eb.kind = ExploreBranch::Kind::Hw;
                       eb.device = true;
                       eb.va = resolve(d.addr);
                       eb.access = mem_access(d.kind);
                       if (const Vma* v = cur().find_vma(eb.va)) dev_in_vma(d, *v, eb);
                       slot(eb.va);
                     },
                 },
                 b.op);
      s.branches.push_back(std::move(eb));
    }
    if (opts_.explore_max)
      s.check_final = [this](const EngineCounters& c) { return expects_after_block(c); };
    return s;
  }

  // A dev branch inside a VMA: its fault goes to the memory manager's fault
  // path (handle_mm_fault). Inside a block nothing but A/D updates changes a
  // PTE of a VMA (engine branches act outside every mapping), so which path
  // the fault takes is known here: the VMA's access_error (SIGSEGV, an
  // error of the run when the fault happens), or handle_pte_fault's
  // ptep_set_access_flags on the present PTE. The paths that allocate or
  // copy (do_anonymous_page, do_fault, do_wp_page) do not run inside
  // blocks: such a branch is an input error.
  void dev_in_vma(const DevAccess& d, const Vma& v, ExploreBranch& eb) {
    const bool write = d.kind == AccessKind::Write;
    eb.segv = !v.permits(write, /*exec=*/false);
    if (eb.segv) return;
    const Pte p = stored(eb.va);
    const char* path = !pte_present(p)           ? "finds no PTE: its fault would map a page (do_anonymous_page / "
                                                   "do_fault)"
                       : write && !pte_write(p) ? "writes a PTE without write permission: its fault would copy or "
                                                  "reuse the page (do_wp_page)"
                                                : nullptr;
    if (path)
      throw ScenarioError(d.addr.loc, fmt::format("a dev branch inside a mapping ({:#x}-{:#x}) of process {} {}, "
                                                  "which does not run inside parallel blocks; touch the page "
                                                  "before the block",
                                                  v.start.val, v.end.val, cur_, path));
  }

  // An engine branch: the PTE-level statement through the explorer's
  // StepEnv, with the same caller code as the sequential run.
  std::function<void(StepEnv&)> engine_body(const SourceLoc& loc, const EngineOp& op) {
    const unsigned shift = geo_.page_shift;
    Pte first{};  // set_ptes' first entry / raw_set's word, fixed before the block
    std::visit(Overloaded{
                   [&](const SetPtes& s) {
                     outside_vmas(loc, s.addr, s.nr);
                     first = make_pte(pfn_of(s.folio), s.prot, s.young, s.dirty, shift);
                     slot(s.addr);
                   },
                   [&](const PteOp& o) { outside_vmas(loc, o.addr, 1), slot(o.addr); },
                   [&](const PteBatch& b) { outside_vmas(loc, b.addr, b.nr), slot(b.addr); },
                   [&](const ModifyProt& m) { outside_vmas(loc, m.addr, m.nr), slot(m.addr); },
                   [&](const SetAccessFlags& a) { outside_vmas(loc, a.addr, 1), slot(a.addr); },
                   [&](const RawSet& r) {
                     outside_vmas(loc, r.addr, 1);
                     first = raw_pte(r);
                     slot(r.addr);
                   },
                   [&](const auto&) {
                     throw ScenarioError(loc, "memory-manager statements inside 'parallel' blocks are not "
                                              "supported yet");
                   },
               },
               op);
    return [this, op, first, shift](StepEnv& e) {
      auto c = pte_caller(e, e.checker(), [&e](VirtAddr va, std::uint64_t nr) { e.caller_flush(va, nr); });
      std::visit(Overloaded{
                     [&](const SetPtes& s) { c.set(s, first); },
                     [&](const PteOp& o) { c.op(o); },
                     [&](const PteBatch& b) { c.batch(b); },
                     [&](const ModifyProt& m) { c.modify_prot(m); },
                     [&](const SetAccessFlags& a) {
                       c.set_access_flags(a, [&](Pfn pfn) { return make_pte(pfn, a.prot, a.young, a.dirty, shift); });
                     },
                     [&](const RawSet& r) { c.raw_set(r, first); },
                     [](const auto&) {},
                 },
                 op);
    };
  }

  static bool is_expect(const Op& op) {
    return std::holds_alternative<ExpectCont>(op) || std::holds_alternative<ExpectPte>(op) ||
           std::holds_alternative<ExpectStat>(op);
  }

  // The `expect`s right after the block, evaluated in one of the explorer's
  // final states (memory holds it; the engine counters of the execution are
  // added for `expect stat`). The run's own expect tally is left untouched.
  std::vector<std::string> expects_after_block(const EngineCounters& c) {
    const unsigned passed = res_.expects_passed, failed = res_.expects_failed;
    const std::size_t nfail = res_.failures.size();
    EngineCounters& ec = env().counters();
    const EngineCounters saved = ec;
    ec += c;
    for (std::size_t i = index_ + 1; i < sc_.statements.size(); ++i) {
      const Statement& e = sc_.statements[i];
      if (std::holds_alternative<ExpectViolation>(e.op) || std::holds_alternative<ExpectViolations>(e.op))
        continue;  // the explorer fails on any finding of the checker itself
      if (!is_expect(e.op)) break;
      exec(e);
    }
    std::vector<std::string> out;
    for (std::size_t i = nfail; i < res_.failures.size(); ++i)
      out.push_back(fmt::format("{}:{}: {}", res_.failures[i].loc.file, res_.failures[i].loc.line,
                                res_.failures[i].message));
    res_.failures.resize(nfail);
    res_.expects_passed = passed, res_.expects_failed = failed;
    ec = saved;
    return out;
  }

  // `contpte explore` explores the block first; both commands then run it
  // in one seeded interleaving and go on from there.
  void exec_parallel(const Statement& st, const Parallel& p) {
    ExploreSetup setup = parallel_setup(p);
    if (opts_.explore_max && opts_.explore_progress)
      setup.progress = [this, where = fmt::format("{}:{}", st.loc.file, st.loc.line)](std::uint64_t n, double s) {
        opts_.explore_progress(where, n, s);
      };
    Explorer x(std::move(setup));
    if (opts_.explore_max) {
      BlockExploration be;
      be.loc = st.loc;
      for (const Branch& b : p.branches) {
        be.branches.push_back(b.text);
        be.lines.push_back(b.loc.line);
      }
      be.result = x.explore(*opts_.explore_max);
      res_.explorations.push_back(std::move(be));
    }
    // Its flushes reach this CPU's TLBs too, through the process's Env.
    const KeptRun k = x.run_seeded(sc_.header.seed + index_, m_.checking() ? &m_.checker() : nullptr, &env());
    m_.add_caller_flushes(k.caller_tlbi);
    env().counters() += k.counters;
    if (opts_.trace)
      for (const StepRecord& r : k.steps) opts_.trace->on_block_step(st, p.branches[r.branch].loc, r, geo_.page_shift);
    ParallelRun pr;
    pr.loc = st.loc;
    for (std::size_t i = 0; i < p.branches.size(); ++i) {
      pr.branches.push_back(p.branches[i].text);
      pr.lines.push_back(p.branches[i].loc.line);
      pr.outcomes.push_back(i < k.outcomes.size() ? k.outcomes[i] : std::string("?"));
    }
    res_.parallel_runs.push_back(std::move(pr));
    if (!k.problems.empty()) {
      const auto& pb = k.problems.front();
      res_.error = fmt::format("{}:{}: {}", st.loc.file, pb.line, pb.text);
    }
  }

  void exec_mmap(const Statement& st, const Mmap& m) {
    if (cur_names().count(m.name))
      throw ScenarioError(m.name_loc, fmt::format("mapping '{}' already exists in process {}", m.name, cur_));
    // A shared anonymous mapping is backed by a shmem object of its own
    // (shmem_zero_setup), which fork's child shares.
    const bool shmem = m.shared && !m.file;
    const std::uint64_t page = geo_.page_size();
    // A file is as large as `filesize=` says, else as the mapping's end in
    // it; it keeps the largest size any mapping gave it.
    const std::uint64_t bytes = m.file_size.value_or(m.offset + m.size);
    FileMap file{m.file ? *m.file : fmt::format("shmem:{}:{}", cur_, m.name), bytes / page + (bytes % page != 0),
                 m.offset / page, shmem};
    auto start = cur().mmap(m.size, m.prot, m.shared, m.addr, m.align.value_or(0), m.file || shmem ? &file : nullptr);
    if (!start) {
      res_.error = fmt::format("{}:{}: mmap {}: {}", st.loc.file, st.loc.line, m.name,
                               m.addr ? "the range is already mapped" : "no free range of that size");
      return;
    }
    cur_names()[m.name] = {*start, m.size};
  }

  // `brk NAME SIZE`: NAME is a heap whose break moves to NAME + SIZE.
  void exec_brk(const Statement& st, const Brk& b) {
    auto it = cur_names().find(b.name);
    if (it == cur_names().end())
      throw ScenarioError(b.name_loc, fmt::format("no mapping named '{}' in process {}", b.name, cur_));
    auto& [start, size] = it->second;
    if (const Vma* v = cur().find_vma(start); v && (v->file >= 0 || v->shared))
      throw ScenarioError(b.name_loc, fmt::format("brk moves the break of a private anonymous heap; '{}' is {}",
                                                  b.name, v->shared ? "shared" : "file-backed"));
    if (b.size > kUserVaEnd - start.val)
      throw ScenarioError(st.loc, fmt::format("brk {} {}: the heap would end past the 48-bit user address "
                                              "space ({:#x})",
                                              b.name, format_size(b.size), kUserVaEnd));
    if (!cur().brk(start + size, start + b.size)) {
      res_.error = fmt::format("{}:{}: brk {}: the range after the heap is already mapped", st.loc.file,
                               st.loc.line, b.name);
      return;
    }
    size = b.size;
  }

  void exec_madvise(const Statement& st, const Madvise& m) {
    const VirtAddr a = resolve(m.addr);
    Mm& mm = cur();
    switch (m.advice) {
      case Advice::DontNeed: mm.madvise_dontneed(a, m.len); break;
      case Advice::Free: mm.madvise_free(a, m.len); break;
      case Advice::Cold: mm.madvise_cold(a, m.len, /*pageout=*/false); break;
      case Advice::Pageout: mm.madvise_cold(a, m.len, /*pageout=*/true); break;
      case Advice::Hugepage: mm.madvise_hugepage(a, m.len, true); break;
      case Advice::NoHugepage: mm.madvise_hugepage(a, m.len, false); break;
      case Advice::PopulateWrite:
        if (mm.populate_write(a, m.len) == FaultResult::Segv)
          res_.error = fmt::format("{}:{}: madvise populate_write: EFAULT (not a writable mapping, "
                                   "or out of memory)",
                                   st.loc.file, st.loc.line);
        break;
      default: break;  // rejected before the run
    }
  }

  // One LRU aging pass (folio_referenced) over every live process, up to
  // `pages` PTEs (Mm::age_young).
  void exec_reclaim(const Reclaim& r) {
    std::uint64_t budget = r.pages.value_or(~std::uint64_t{0});
    for (std::size_t pid = 0; pid < m_.processes(); ++pid)
      if (m_.alive(pid)) budget = m_.mm(pid).age_young(budget);
  }

  // One access; a fault goes to the memory manager (handle_mm_fault) and the
  // access is retried, as the CPU re-executes the faulting instruction. A
  // fault it cannot resolve is the process's SIGSEGV: a run error.
  bool access_one(const Statement& st, AccessKind ak, MemAccess kind, VirtAddr va) {
    const auto why = m_.access(cur_, va, kind);
    if (!why) return true;
    res_.error = fmt::format("{}:{}: {} {:#x} in process {}: {}", st.loc.file, st.loc.line, name(ak), va.val,
                             cur_, *why);
    return false;
  }

  // `dev read|write ADDR`: a device walker without HTTU reads the leaf
  // descriptor alone (docs/explore.md, "Device walkers and `fault_loop`");
  // the machine handles its faults and retries (Machine::device_access).
  // The fault just handled again, with the PTE as the handler left it, is
  // fault_loop.
  void exec_dev(const Statement& st, const DevAccess& d) {
    const VirtAddr va = resolve(d.addr);
    const DeviceAccessResult r = m_.device_access(cur_, va, mem_access(d.kind));
    switch (r.end) {
      case DeviceAccessResult::End::Completed: return;
      case DeviceAccessResult::End::FaultLoop:
        if (m_.checking())
          m_.checker().report_fault_loop(va, st.loc.line, r.desc,
                                         fmt::format("{} faulted again ({}) after its fault handler "
                                                     "(ptep_set_access_flags) left the PTE still faulting for it: a "
                                                     "walker without hardware A/D updates would fault forever",
                                                     st.text, access_fault_name(r.fault)));
        return;
      case DeviceAccessResult::End::Failed:
        res_.error = fmt::format("{}:{}: dev {} {:#x} in process {}: {}; {}", st.loc.file, st.loc.line,
                                 name(d.kind), va.val, cur_, access_fault_name(r.fault), r.why);
        return;
    }
  }

  // `read|write|exec ADDR LEN [stride] [count] [pattern]`.
  void exec_access(const Statement& st, const Access& a) {
    const VirtAddr base = resolve(a.addr);
    const MemAccess kind = a.kind == AccessKind::Read    ? MemAccess::Read
                           : a.kind == AccessKind::Write ? MemAccess::Write
                                                         : MemAccess::Exec;
    const std::uint64_t slots = std::max<std::uint64_t>(1, (a.len + a.stride - 1) / a.stride);
    std::optional<ZipfGenerator> zipf;
    if (a.pattern == Pattern::Zipf) zipf.emplace(slots);
    std::uniform_int_distribution<std::uint64_t> uniform(0, slots - 1);
    for (std::uint64_t i = 0; i < a.count; ++i) {
      std::uint64_t slot_idx = i % slots;
      if (a.pattern == Pattern::Random) slot_idx = uniform(rng_);
      if (a.pattern == Pattern::Zipf) slot_idx = zipf->next(rng_);
      const VirtAddr va = base + slot_idx * a.stride;
      if (!access_one(st, a.kind, kind, va)) return;
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
    const Pte pte = e.raw ? stored(va) : m_.quietly([&] { return cur().leaf_pte(va, /*gathered=*/true); });
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
    check("huge", w.huge, pmd_trans_huge(pte));
    expect_result(st, wrong.empty(),
                  fmt::format("expect {} {:#x}: found{}; PTE {}", e.raw ? "raw" : "pte", va.val, wrong,
                              format_pte(pte, shift)));
  }

  const Scenario& sc_;
  const Geometry& geo_;
  const RunOptions& opts_;
  Machine m_;
  std::vector<Names> names_;  // each process's mappings, by pid
  std::size_t cur_ = 0;
  std::mt19937_64 rng_;
  std::size_t index_ = 0;  // of the statement being executed
  std::map<std::string, FolioDecl> folios_;
  RunResult res_;
};

}  // namespace

void validate_for_run(const Scenario& sc) {
  try {
    resolve_tlb_config(sc.header.tlb);
  } catch (const std::exception& e) {
    const SourceLoc loc = sc.header.given.tlb ? *sc.header.given.tlb : SourceLoc{sc.file, 1, 1};
    throw ScenarioError(loc, e.what());
  }
  for (const Statement& st : sc.statements) {
    if (auto what = unsupported(st.op))
      throw ScenarioError(st.loc, fmt::format("{} not supported yet ({})", *what, planned_in(st.op)));
    if (const auto* e = std::get_if<ExpectStat>(&st.op)) {
      const Geometry& g = sc.header.geometry();
      if (!is_scenario_stat(e->name, g))
        throw ScenarioError(e->name_loc, fmt::format("unknown stat '{}'; expected one of: {} (docs/stats.md)",
                                                     e->name, fmt::join(scenario_stat_names(g), ", ")));
    }
  }
}

RunResult run_scenario(const Scenario& sc, const RunOptions& opts) {
  if (opts.scale > 1) {
    const Scenario scaled = scale_scenario(sc, opts.scale);
    validate_for_run(scaled);
    return Runner(scaled, opts).run();
  }
  validate_for_run(sc);
  return Runner(sc, opts).run();
}

RunResult run_driven(const Scenario& sc, const RunOptions& opts, const std::function<void(RunMachine&)>& drive) {
  validate_for_run(sc);
  return Runner(sc, opts).run_driven(drive);
}

}  // namespace contpte
