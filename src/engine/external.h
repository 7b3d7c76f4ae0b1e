// engine/external.h — the engine seam's other side: the arch functions of an
// engine built from a Linux tree (src/kernel), called through the same Env.
//
// Owns: ExternalEngine (the loaded object's function table), the adapter
// that turns a C++ Env into the kx_env the kernel code calls back (each
// callback is one Env call, counted as the built-in engine counts it), and
// the findings only foreign code can produce: a WARN (kernel_warning), a
// write outside the contpte blocks of the caller's range (out_of_range), an
// access to memory that is no PTE of a live table (wild_write; never
// performed).
// Must not know: how the object is built or loaded (src/kernel), scenarios.
//
// Optional Env members the adapter uses when present:
//   void engine_finding(EngineFinding)   where findings go (else dropped)
//   bool is_pte_word(const Pte*) const    wild-access check (else all pass)
//   void lockless_retry()                 a lockless reader starts again
//   void engine_fallback(const char*)     a core-mm fallback ran
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "engine/kx_abi.h"
#include "engine/raw.h"

namespace contpte {

enum class EngineFindingKind : std::uint8_t { KernelWarning, OutOfRange, WildWrite };

struct EngineFinding {
  EngineFindingKind kind;
  const Pte* slot = nullptr;  // out_of_range / wild_write: the word
  std::string detail;         // one sentence, naming the kernel function / FILE:LINE
};

constexpr std::string_view engine_finding_rule(EngineFindingKind k) {
  switch (k) {
    case EngineFindingKind::KernelWarning: return "kernel_warning";
    case EngineFindingKind::OutOfRange: return "out_of_range";
    case EngineFindingKind::WildWrite: return "wild_write";
  }
  return "?";
}

// A loaded kernel engine. Immutable once loaded: shared by threads.
struct ExternalEngine {
  const kx_api* api = nullptr;
  std::string name;  // "DIR (4K, CONFIG_ARM64_CONTPTE=y)"
  std::vector<std::string> fallbacks;  // core-mm fallbacks compiled in
};

// A statement needs an arch function the tree lacks (exit 2).
class ExternalEngineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace external {

template <class F>
F need(const ExternalEngine& x, F f, const char* name) {
  if (!f) throw ExternalEngineError(x.name + ": the tree has no " + name + " (an older kernel?)");
  return f;
}

template <Env E>
class Call {
 public:
  // `p`..`p + nr`: the range the caller passed (nr 0: no range, reads only).
  Call(const ExternalEngine& x, E& env, const char* what, PteSlot p, unsigned nr)
      : x_(x), env_(env), what_(what), kenv_{this, &kOps} {
    if (nr) {
      const unsigned cont = env.geometry().cont_ptes;
      lo_ = p.align_down(cont).ptr();
      hi_ = (p + (static_cast<std::ptrdiff_t>(nr) - 1)).align_down(cont).ptr() + cont;
    }
    prev_ = x_.api->swap_env(&kenv_);
  }
  ~Call() { x_.api->swap_env(prev_); }
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

 private:
  static Call& self(const kx_env* e) { return *static_cast<Call*>(e->ctx); }
  void finding(EngineFindingKind k, const Pte* slot, std::string detail) {
    if constexpr (requires { env_.engine_finding(EngineFinding{}); })
      env_.engine_finding(EngineFinding{k, slot, std::move(detail)});
  }
  // False (and reported) when `p` is no PTE word of a live table.
  bool live(std::uint64_t* p, const char* fn, const char* op) {
    if constexpr (requires { env_.is_pte_word(static_cast<const Pte*>(nullptr)); }) {
      if (!env_.is_pte_word(reinterpret_cast<const Pte*>(p))) {
        finding(EngineFindingKind::WildWrite, reinterpret_cast<const Pte*>(p),
                std::string(fn) + " (in " + what_ + ") " + op +
                    " memory that is no PTE of a live page table");
        return false;
      }
    }
    return true;
  }
  void written(std::uint64_t* p, const char* fn) {
    const Pte* s = reinterpret_cast<const Pte*>(p);
    if (lo_ && (s < lo_ || s >= hi_))
      finding(EngineFindingKind::OutOfRange, s,
              std::string(fn) + " (in " + what_ +
                  ") wrote a PTE outside the contpte blocks of the range it was given");
  }
  static PteSlot slot(std::uint64_t* p) { return PteSlot{reinterpret_cast<Pte*>(p)}; }

  static std::uint64_t read(const kx_env* e, std::uint64_t* p, const char* fn) {
    Call& c = self(e);
    if (!c.live(p, fn, "read")) return 0;
    return raw::ptep_get(c.env_, slot(p)).val;
  }
  static void write(const kx_env* e, std::uint64_t* p, std::uint64_t v, const char* fn) {
    Call& c = self(e);
    if (!c.live(p, fn, "wrote")) return;
    c.written(p, fn);
    raw::set_pte(c.env_, slot(p), Pte{v});
  }
  static std::uint64_t xchg(const kx_env* e, std::uint64_t* p, std::uint64_t v, const char* fn) {
    Call& c = self(e);
    if (!c.live(p, fn, "exchanged")) return 0;
    c.written(p, fn);
    ++c.env_.counters().pte_stores;
    return c.env_.xchg(slot(p), Pte{v}).val;
  }
  static std::uint64_t cmpxchg(const kx_env* e, std::uint64_t* p, std::uint64_t old,
                               std::uint64_t v, const char* fn) {
    Call& c = self(e);
    // Not performed, but reported as done: a retry loop around it ends.
    if (!c.live(p, fn, "compare-exchanged")) return old;
    c.written(p, fn);
    return raw::cmpxchg(c.env_, slot(p), Pte{old}, Pte{v}).val;
  }
  static void flush_range(const kx_env* e, std::uint64_t start, std::uint64_t nr, int sync) {
    detail::flush_tlb_range(self(e).env_, VirtAddr{start}, nr, sync != 0);
  }
  static void flush_page(const kx_env* e, std::uint64_t addr, int sync) {
    detail::flush_tlb_page(self(e).env_, VirtAddr{addr}, sync != 0);
  }
  static void flush_mm(const kx_env* e) {
    Call& c = self(e);
    ++c.env_.counters().tlbi;
    c.env_.flush_tlb_mm();
  }
  static void folio(const kx_env* e, std::uint64_t pfn, std::uint64_t* head, std::uint64_t* nr) {
    const FolioInfo f = self(e).env_.folio_of(Pfn{pfn});
    // No folio (special / not allocated): the page alone, as a 1-page folio.
    *head = f.valid ? f.head.val : pfn;
    *nr = f.valid ? f.nr_pages : 1;
  }
  static void warn(const kx_env* e, const char* kind, const char* file, int line,
                   const char* cond) {
    Call& c = self(e);
    c.finding(EngineFindingKind::KernelWarning, nullptr,
              std::string(kind) + " at " + file + ":" + std::to_string(line) + " (" + cond +
                  ") in " + c.what_);
  }
  static void convert(const kx_env* e, int cont) {
    auto& k = self(e).env_.counters();
    ++(cont ? k.folds : k.unfolds);
  }
  static void lockless_retry(const kx_env* e) {
    if constexpr (requires { self(e).env_.lockless_retry(); }) self(e).env_.lockless_retry();
  }
  static void fallback(const kx_env* e, const char* name) {
    if constexpr (requires { self(e).env_.engine_fallback(name); }) self(e).env_.engine_fallback(name);
  }
  static int cpu_has(const kx_env* e, int feature) {
    const Features& f = self(e).env_.features();
    switch (feature) {
      case KX_CPU_BBML2_NOABORT: return f.bbml2_noabort;
      case KX_CPU_HAFDBS: return f.hafdbs;
      default: return 0;
    }
  }
  static constexpr kx_env_ops kOps{&read,     &write,   &xchg,       &cmpxchg,
                                   &flush_range, &flush_page, &flush_mm, &folio,
                                   &warn,     &convert, &lockless_retry, &fallback,
                                   &cpu_has};

  const ExternalEngine& x_;
  E& env_;
  const char* what_;
  kx_env kenv_;
  const kx_env* prev_ = nullptr;
  const Pte* lo_ = nullptr;
  const Pte* hi_ = nullptr;
};

inline std::uint64_t* word(PteSlot p) { return reinterpret_cast<std::uint64_t*>(p.ptr()); }

// One function per arch call of engine/pgtable.h, same arguments.
template <Env E>
Pte ptep_get(const ExternalEngine& x, E& env, PteSlot p) {
  Call<E> c(x, env, "ptep_get", p, 0);
  return Pte{x.api->ptep_get(word(p))};
}
template <Env E>
Pte ptep_get_lockless(const ExternalEngine& x, E& env, PteSlot p) {
  Call<E> c(x, env, "ptep_get_lockless", p, 0);
  return Pte{x.api->ptep_get_lockless(word(p))};
}
template <Env E>
void set_ptes(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p, Pte pte, unsigned nr) {
  Call<E> c(x, env, "set_ptes", p, nr);
  x.api->set_ptes(a.val, word(p), pte.val, nr);
}
template <Env E>
void pte_clear(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p) {
  Call<E> c(x, env, "pte_clear", p, 1);
  x.api->pte_clear(a.val, word(p));
}
template <Env E>
Pte ptep_get_and_clear(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p) {
  Call<E> c(x, env, "ptep_get_and_clear", p, 1);
  return Pte{x.api->ptep_get_and_clear(a.val, word(p))};
}
template <Env E>
void clear_full_ptes(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p, unsigned nr, bool full) {
  Call<E> c(x, env, "clear_full_ptes", p, nr);
  need(x, x.api->clear_full_ptes, "clear_full_ptes")(a.val, word(p), nr, full);
}
template <Env E>
Pte get_and_clear_full_ptes(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p, unsigned nr,
                            bool full) {
  Call<E> c(x, env, "get_and_clear_full_ptes", p, nr);
  return Pte{need(x, x.api->get_and_clear_full_ptes, "get_and_clear_full_ptes")(a.val, word(p), nr, full)};
}
template <Env E>
bool ptep_test_and_clear_young(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p) {
  Call<E> c(x, env, "ptep_test_and_clear_young", p, 1);
  return x.api->ptep_test_and_clear_young(a.val, word(p)) != 0;
}
template <Env E>
bool ptep_clear_flush_young(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p) {
  Call<E> c(x, env, "ptep_clear_flush_young", p, 1);
  return x.api->ptep_clear_flush_young(a.val, word(p)) != 0;
}
template <Env E>
void wrprotect_ptes(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p, unsigned nr) {
  Call<E> c(x, env, "wrprotect_ptes", p, nr);
  need(x, x.api->wrprotect_ptes, "wrprotect_ptes")(a.val, word(p), nr);
}
template <Env E>
void clear_young_dirty_ptes(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p, unsigned nr,
                            unsigned flags) {
  Call<E> c(x, env, "clear_young_dirty_ptes", p, nr);
  need(x, x.api->clear_young_dirty_ptes, "clear_young_dirty_ptes")(a.val, word(p), nr, flags);
}
template <Env E>
bool ptep_set_access_flags(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p, Pte entry,
                           bool dirty) {
  Call<E> c(x, env, "ptep_set_access_flags", p, 1);
  return x.api->ptep_set_access_flags(a.val, word(p), entry.val, dirty) != 0;
}
template <Env E>
Pte ptep_modify_prot_start(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p) {
  Call<E> c(x, env, "ptep_modify_prot_start", p, 1);
  return Pte{x.api->ptep_modify_prot_start(a.val, word(p))};
}
template <Env E>
void ptep_modify_prot_commit(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p, Pte old, Pte pte) {
  Call<E> c(x, env, "ptep_modify_prot_commit", p, 1);
  x.api->ptep_modify_prot_commit(a.val, word(p), old.val, pte.val);
}
template <Env E>
Pte modify_prot_start_ptes(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p, unsigned nr) {
  Call<E> c(x, env, "modify_prot_start_ptes", p, nr);
  return Pte{x.api->modify_prot_start_ptes(a.val, word(p), nr)};
}
template <Env E>
void modify_prot_commit_ptes(const ExternalEngine& x, E& env, VirtAddr a, PteSlot p, Pte old, Pte pte,
                             unsigned nr) {
  Call<E> c(x, env, "modify_prot_commit_ptes", p, nr);
  x.api->modify_prot_commit_ptes(a.val, word(p), old.val, pte.val, nr);
}
template <Env E>
unsigned pte_batch_hint(const ExternalEngine& x, const E&, PteSlot p, Pte pte) {
  return x.api->pte_batch_hint(word(p), pte.val);  // pure: no memory access
}

}  // namespace external
}  // namespace contpte
