#include "diff/diff.h"

#include <array>
#include <memory>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "engine/pgtable.h"
#include "hw/page_table.h"
#include "hw/phys_mem.h"
#include "hw/sim_env.h"

namespace contpte {

namespace {

constexpr std::uint64_t kBase = 0x4000'0000;  // PMD-aligned for every granule
constexpr unsigned kBlocks = 4;               // the region: 4 contpte blocks of one table

enum class OpKind : std::uint8_t {
  SetPtes, Hw, PteClear, GetAndClear, GetAndClearFull, ClearFull, Wrprotect, SetWrprotect,
  TestAndClearYoung, ClearFlushYoung, ClearYoungDirty, SetAccessFlags, ModifyProt, PtepGet
};

// One statement, in the scenario language's terms (page index i = VA page
// of the region, mapped to PFN base + i).
struct Op {
  OpKind kind;
  unsigned page = 0;
  unsigned nr = 1;
  Prot prot = Prot::RW;
  bool young = false, dirty = false, full = false, cont = false;
};

struct Folio {
  unsigned start, order;
};

// One engine's machine: memory, the region's table, an Env.
struct Box {
  Box(const Geometry& g, const std::vector<Folio>& folios, std::uint64_t pfn_base, const ExternalEngine* x)
      : mem(g.granule, std::uint64_t{1} << 32), pt(mem), env(mem, pt, features(x)) {
    for (const Folio& f : folios) mem.add_folio(Pfn{pfn_base + f.start}, f.order);
    first = pt.pte_slot(VirtAddr{kBase}, true).value();
  }
  static Features features(const ExternalEngine* x) {
    Features f;
    f.external = x;
    return f;
  }
  PhysMem mem;
  PageTable pt;
  SimEnv env;
  PteSlot first;
};

Pte make_pte(std::uint64_t pfn, Prot p, bool young, bool dirty, unsigned shift) {
  Pte pte = pte_mkold(pfn_pte(Pfn{pfn}, pgprot_of(p), shift));
  if (young) pte = pte_mkyoung(pte);
  if (dirty) pte = pte_mkdirty(pte);
  return pte;
}

class Run {
 public:
  Run(const Geometry& g, const ExternalEngine& x, std::uint64_t seed)
      : g_(g), x_(x), rng_(seed), pages_(kBlocks * g.cont_ptes), pfn_base_(std::uint64_t{pages_} * 4) {
    // A random partition of the region into naturally aligned folios, up to
    // two blocks large (folds need one folio over the whole block).
    const unsigned max_order = static_cast<unsigned>(__builtin_ctz(g.cont_ptes)) + 1;
    for (unsigned i = 0; i < pages_;) {
      unsigned o = pick(max_order + 1);
      while (o && ((i & ((1u << o) - 1)) || i + (1u << o) > pages_)) --o;
      folios_.push_back({i, o});
      i += 1u << o;
    }
    for (unsigned fi = 0; fi < folios_.size(); ++fi)
      for (unsigned k = 0; k < (1u << folios_[fi].order); ++k) folio_of_.push_back(fi);
  }

  const std::vector<Folio>& folios() const { return folios_; }
  unsigned pages() const { return pages_; }

  // A statement valid in `b`'s state (core-mm's preconditions), or nullopt.
  std::optional<Op> generate(Box& b) {
    // Weights: mapping and hardware updates often, so blocks fill up and
    // fold; every other call about as often as the others.
    static constexpr std::array<std::pair<OpKind, unsigned>, 14> kWeights{{
        {OpKind::SetPtes, 12}, {OpKind::Hw, 6}, {OpKind::PteClear, 1}, {OpKind::GetAndClear, 1},
        {OpKind::GetAndClearFull, 1}, {OpKind::ClearFull, 1}, {OpKind::Wrprotect, 2},
        {OpKind::SetWrprotect, 1}, {OpKind::TestAndClearYoung, 2}, {OpKind::ClearFlushYoung, 2},
        {OpKind::ClearYoungDirty, 2}, {OpKind::SetAccessFlags, 3}, {OpKind::ModifyProt, 2},
        {OpKind::PtepGet, 2}}};
    unsigned roll = pick(38);
    Op op{OpKind::PtepGet};
    for (const auto& [k, wgt] : kWeights) {
      if (roll < wgt) {
        op.kind = k;
        break;
      }
      roll -= wgt;
    }
    op.page = pick(pages_);
    if (op.kind == OpKind::SetPtes && pick(3) != 0) {
      // As faults fill a folio: the first empty PTE of a block, alone, with
      // the protection its neighbours have — the last one may fold.
      const unsigned cont = g_.cont_ptes;
      const unsigned start = op.page & ~(cont - 1);
      op.page = start;
      while (op.page < start + cont && !pte_none(word(b, op.page))) ++op.page;
      if (op.page == start + cont) return std::nullopt;
    }
    const Pte w = word(b, op.page);
    switch (op.kind) {
      case OpKind::SetPtes: {
        if (!pte_none(w)) return std::nullopt;
        const Folio& f = folios_[folio_of_[op.page]];
        unsigned end = op.page;
        while (end < f.start + (1u << f.order) && pte_none(word(b, end))) ++end;
        op.nr = pick(4) == 0 ? end - op.page : 1 + pick(end - op.page);
        if (pick(2)) op.nr = 1;
        op.prot = pick(5) == 0 ? Prot::R : Prot::RW;
        for (unsigned i = f.start; i < f.start + (1u << f.order) && pick(8) != 0; ++i)
          if (auto p = pte_present(word(b, i)) ? prot_of(word(b, i), i) : std::nullopt) {
            op.prot = *p;
            break;
          }
        op.young = pick(2), op.dirty = pick(3) == 0;
        return op;
      }
      case OpKind::Hw: {
        if (!pte_valid(w)) return std::nullopt;
        auto p = prot_of(w, op.page);
        if (!p) return std::nullopt;
        op.prot = *p;
        op.cont = pte_cont(w);
        op.young = pte_young(w) || pick(2);
        op.dirty = pte_dirty(w) || (pte_write(w) && pick(3) == 0);
        // Only when the word raw_set rebuilds differs from the stored one in A/D alone.
        Pte v = make_pte(pfn_base_ + op.page, op.prot, op.young, op.dirty, g_.page_shift);
        if (op.cont) v = pte_mkcont(v);
        if (pte_mkold(pte_mkclean(v)) != pte_mkold(pte_mkclean(w))) return std::nullopt;
        return op;
      }
      case OpKind::PteClear:
      case OpKind::GetAndClear:
      case OpKind::SetWrprotect:
      case OpKind::TestAndClearYoung:
      case OpKind::ClearFlushYoung:
      case OpKind::PtepGet:
        if (!pte_present(w)) return std::nullopt;
        return op;
      case OpKind::SetAccessFlags: {
        if (!pte_valid(w)) return std::nullopt;
        auto p = prot_of(w, op.page);
        if (!p) return std::nullopt;
        op.prot = *p;  // never less permissive than now
        op.young = true;
        op.dirty = pte_write(w) && pick(2);
        return op;
      }
      default: {  // batched: a present run of one folio with one protection
        if (!pte_present(w)) return std::nullopt;
        const Folio& f = folios_[folio_of_[op.page]];
        const Pte key = strip(w);
        unsigned end = op.page + 1;
        while (end < f.start + (1u << f.order) && pte_present(word(b, end)) &&
               strip(word(b, end)).val == key.val + (std::uint64_t{end - op.page} << g_.page_shift))
          ++end;
        op.nr = 1 + pick(end - op.page);
        op.full = pick(2);
        op.young = pick(2), op.dirty = pick(2);
        if (op.kind == OpKind::ClearYoungDirty && !op.young && !op.dirty) op.young = true;
        op.prot = pick(2) ? Prot::R : Prot::RW;
        return op;
      }
    }
  }

  // Runs `op` on `b`; returns what the call returned (0 for void calls).
  std::uint64_t apply(Box& b, const Op& op) {
    SimEnv& e = b.env;
    const VirtAddr va{kBase + std::uint64_t{op.page} * g_.page_size()};
    const PteSlot s = b.first + op.page;
    switch (op.kind) {
      case OpKind::SetPtes:
        set_ptes(e, va, s, make_pte(pfn_base_ + op.page, op.prot, op.young, op.dirty, g_.page_shift), op.nr);
        return 0;
      case OpKind::Hw: {
        Pte v = make_pte(pfn_base_ + op.page, op.prot, op.young, op.dirty, g_.page_shift);
        *s.ptr() = op.cont ? pte_mkcont(v) : v;
        return 0;
      }
      case OpKind::PteClear: pte_clear(e, va, s); return 0;
      case OpKind::GetAndClear: return ptep_get_and_clear(e, va, s).val;
      case OpKind::GetAndClearFull: return get_and_clear_full_ptes(e, va, s, op.nr, op.full).val;
      case OpKind::ClearFull: clear_full_ptes(e, va, s, op.nr, op.full); return 0;
      case OpKind::Wrprotect: wrprotect_ptes(e, va, s, op.nr); return 0;
      case OpKind::SetWrprotect: ptep_set_wrprotect(e, va, s); return 0;
      case OpKind::TestAndClearYoung: return ptep_test_and_clear_young(e, va, s);
      case OpKind::ClearFlushYoung: return ptep_clear_flush_young(e, va, s);
      case OpKind::ClearYoungDirty:
        clear_young_dirty_ptes(e, va, s, op.nr,
                               (op.young ? CYDP_CLEAR_YOUNG : 0u) | (op.dirty ? CYDP_CLEAR_DIRTY : 0u));
        return 0;
      case OpKind::SetAccessFlags: {
        const Pfn pfn = pte_pfn(ptep_get(e, s), g_.page_shift);
        return ptep_set_access_flags(e, va, s, make_pte(pfn.val, op.prot, op.young, op.dirty, g_.page_shift),
                                     op.dirty);
      }
      case OpKind::ModifyProt: {
        std::uint64_t r = 0;
        for (unsigned i = 0; i < op.nr; ++i) {
          const VirtAddr a = va + std::uint64_t{i} * g_.page_size();
          if (!pte_present(ptep_get(e, s + i))) continue;
          const Pte old = ptep_modify_prot_start(e, a, s + i);
          r ^= old.val;
          ptep_modify_prot_commit(e, a, s + i, old, pte_modify(old, pgprot_of(op.prot)));
        }
        return r;
      }
      case OpKind::PtepGet: return ptep_get(e, s).val ^ ptep_get_lockless(e, s).val;
    }
    return 0;
  }

  // Empty when the boxes agree; else one line naming what differs.
  std::string compare(Box& k, Box& b, std::uint64_t rk, std::uint64_t rb, std::uint64_t* ptes) const {
    for (unsigned i = 0; i < pages_; ++i) {
      ++*ptes;
      const Pte wk = word(k, i), wb = word(b, i);
      if (wk != wb)
        return fmt::format("PTE {:#x}: kernel {:#018x}, built-in {:#018x}",
                           kBase + std::uint64_t{i} * g_.page_size(), wk.val, wb.val);
    }
    if (rk != rb) return fmt::format("returned value: kernel {:#x}, built-in {:#x}", rk, rb);
    const auto &ck = k.env.counters(), &cb = b.env.counters();
    if (ck.folds != cb.folds || ck.unfolds != cb.unfolds)
      return fmt::format("folds/unfolds: kernel {}/{}, built-in {}/{}", ck.folds, ck.unfolds, cb.folds, cb.unfolds);
    return {};
  }

  // Replays `ops` on fresh boxes: the index of the first divergence and its
  // description, or -1 (also when an op no longer meets its preconditions).
  std::pair<long, std::string> replay(const std::vector<Op>& ops) {
    Box k(g_, folios_, pfn_base_, &x_), b(g_, folios_, pfn_base_, nullptr);
    std::uint64_t ptes = 0;
    for (std::size_t i = 0; i < ops.size(); ++i) {
      if (!valid(b, ops[i])) return {-1, {}};
      const std::uint64_t rk = apply(k, ops[i]), rb = apply(b, ops[i]);
      std::string d = compare(k, b, rk, rb, &ptes);
      if (!d.empty()) return {static_cast<long>(i), d};
    }
    return {-1, {}};
  }

  std::string statement(const Op& op) const {
    const std::uint64_t va = kBase + std::uint64_t{op.page} * g_.page_size();
    const unsigned fi = folio_of_[op.page];
    const std::string pfn = fmt::format("F{}+{}", fi, op.page - folios_[fi].start);
    const std::string p(prot_name(op.prot));
    auto flags = [&](bool y, bool d) { return std::string(y ? " young" : "") + (d ? " dirty" : ""); };
    switch (op.kind) {
      case OpKind::SetPtes: return fmt::format("set_ptes {:#x} {} nr={} prot={}{}", va, pfn, op.nr, p, flags(op.young, op.dirty));
      case OpKind::Hw:
        return fmt::format("# a hardware access/dirty update:\nraw_set {:#x} pfn={} prot={}{}{}", va, pfn, p,
                           op.cont ? " cont" : "", flags(op.young, op.dirty));
      case OpKind::PteClear: return fmt::format("pte_clear {:#x}", va);
      case OpKind::GetAndClear: return fmt::format("ptep_get_and_clear {:#x}", va);
      case OpKind::GetAndClearFull: return fmt::format("get_and_clear_full_ptes {:#x} nr={}{}", va, op.nr, op.full ? " full" : "");
      case OpKind::ClearFull: return fmt::format("clear_full_ptes {:#x} nr={}{}", va, op.nr, op.full ? " full" : "");
      case OpKind::Wrprotect: return fmt::format("wrprotect_ptes {:#x} nr={}", va, op.nr);
      case OpKind::SetWrprotect: return fmt::format("ptep_set_wrprotect {:#x}", va);
      case OpKind::TestAndClearYoung: return fmt::format("ptep_test_and_clear_young {:#x}", va);
      case OpKind::ClearFlushYoung: return fmt::format("ptep_clear_flush_young {:#x}", va);
      case OpKind::ClearYoungDirty: return fmt::format("clear_young_dirty_ptes {:#x} nr={}{}", va, op.nr, flags(op.young, op.dirty));
      case OpKind::SetAccessFlags: return fmt::format("ptep_set_access_flags {:#x} prot={}{}", va, p, flags(op.young, op.dirty));
      case OpKind::ModifyProt: return fmt::format("modify_prot {:#x} nr={} prot={}", va, op.nr, p);
      case OpKind::PtepGet: return fmt::format("# ptep_get / ptep_get_lockless:\nexpect pte {:#x} present=1", va);
    }
    return {};
  }

  // The scenario of `ops` (shrunk), with the kernel side's stored words
  // after the last statement as `expect raw` lines.
  std::string scenario(const std::vector<Op>& ops, const std::string& first) {
    Box k(g_, folios_, pfn_base_, &x_);
    for (const Op& op : ops) apply(k, op);
    std::string s = fmt::format("# contpte diff: the built-in engine and the tree's code diverge.\n"
                                "# first divergence, at the last statement: {}\n"
                                "granule {}\ncontpte upstream\n\n", first, g_.name);
    for (std::size_t fi = 0; fi < folios_.size(); ++fi) s += fmt::format("alloc F{} order={}\n", fi, folios_[fi].order);
    s += "\n";
    for (const Op& op : ops) s += statement(op) + "\n";
    s += "\n# the kernel side's words:\n";
    for (unsigned i = 0; i < pages_; ++i) {
      const Pte w = word(k, i);
      if (pte_none(w)) continue;
      s += fmt::format("expect raw {:#x} present={} young={} dirty={} write={} cont={}\n",
                       kBase + std::uint64_t{i} * g_.page_size(), int(pte_present(w)), int(pte_young(w)),
                       int(pte_dirty(w)), int(pte_write(w)), int(pte_cont(w)));
    }
    return s;
  }

  const Geometry& geo() const { return g_; }
  std::uint64_t pfn_base() const { return pfn_base_; }
  const ExternalEngine* engine() const { return &x_; }

 private:
  unsigned pick(unsigned n) { return n ? static_cast<unsigned>(rng_() % n) : 0; }
  Pte word(const Box& b, unsigned i) const { return *(b.first + i).ptr(); }
  // The PTE with what may differ inside one batch removed (A/D, CONT).
  static Pte strip(Pte p) { return pte_mknoncont(pte_mkold(pte_mkclean(p))); }
  std::optional<Prot> prot_of(Pte w, unsigned page) const {
    for (Prot p : {Prot::R, Prot::RW})
      if (strip(make_pte(pfn_base_ + page, p, false, false, g_.page_shift)) == strip(w)) return p;
    return std::nullopt;
  }
  // Whether `op` still meets its preconditions in `b` (for shrinking).
  bool valid(Box& b, const Op& op) {
    const Pte w = word(b, op.page);
    switch (op.kind) {
      case OpKind::SetPtes:
        for (unsigned i = 0; i < op.nr; ++i)
          if (!pte_none(word(b, op.page + i))) return false;
        return true;
      case OpKind::Hw:
      case OpKind::SetAccessFlags:
        return pte_valid(w) && prot_of(w, op.page) == op.prot;
      case OpKind::PteClear:
      case OpKind::GetAndClear:
      case OpKind::SetWrprotect:
      case OpKind::TestAndClearYoung:
      case OpKind::ClearFlushYoung:
      case OpKind::PtepGet:
        return pte_present(w);
      default: {
        const Pte key = strip(w);
        for (unsigned i = 0; i < op.nr; ++i) {
          const Pte v = word(b, op.page + i);
          if (!pte_present(v) || strip(v).val != key.val + (std::uint64_t{i} << g_.page_shift)) return false;
        }
        return true;
      }
    }
  }

  const Geometry& g_;
  const ExternalEngine& x_;
  std::mt19937_64 rng_;
  unsigned pages_;
  std::uint64_t pfn_base_;
  std::vector<Folio> folios_;
  std::vector<unsigned> folio_of_;
};

// Greedy shrinking: drop each statement whose removal keeps a divergence.
std::vector<Op> shrink(Run& run, std::vector<Op> ops) {
  for (std::size_t i = ops.size(); i-- > 0;) {
    if (ops.size() <= 1) break;
    std::vector<Op> trial = ops;
    trial.erase(trial.begin() + static_cast<std::ptrdiff_t>(i));
    const auto [at, why] = run.replay(trial);
    if (at >= 0) {
      trial.resize(static_cast<std::size_t>(at) + 1);
      ops = std::move(trial);
      if (i > ops.size()) i = ops.size();
    }
  }
  return ops;
}

}  // namespace

DiffResult run_diff(const DiffOptions& opts, const std::function<const ExternalEngine&(const Geometry&)>& engine,
                    const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  DiffResult res;
  const std::uint64_t total = std::uint64_t{opts.runs} * opts.granules.size();
  for (Granule gr : opts.granules) {
    const Geometry& g = geometry(gr);
    const ExternalEngine& x = engine(g);
    for (unsigned r = 0; r < opts.runs; ++r) {
      Run run(g, x, opts.seed * 1000003 + r * 7919 + static_cast<unsigned>(gr) * 104729);
      Box k(g, run.folios(), run.pfn_base(), &x), b(g, run.folios(), run.pfn_base(), nullptr);
      std::vector<Op> ops;
      for (unsigned n = 0; n < opts.ops;) {
        std::optional<Op> op = run.generate(b);
        if (!op) continue;
        ++n;
        ops.push_back(*op);
        ++res.statements;
        const std::uint64_t rk = run.apply(k, *op), rb = run.apply(b, *op);
        std::string d = run.compare(k, b, rk, rb, &res.ptes_compared);
        if (d.empty()) continue;
        ++res.divergences;
        ++res.runs;
        const std::vector<Op> small = shrink(run, ops);
        const auto [at, why] = run.replay(small);
        const std::string& what = at >= 0 ? why : d;
        res.first = fmt::format("{} run {}: statement {} of the reproducer ({}): {}", g.name, r, small.size(),
                                run.statement(small.back()), what);
        res.reproducer = run.scenario(small, what);
        return res;
      }
      ++res.runs;
      res.folds += b.env.counters().folds;
      res.unfolds += b.env.counters().unfolds;
      if (progress) progress(res.runs, total);
    }
  }
  return res;
}

}  // namespace contpte
