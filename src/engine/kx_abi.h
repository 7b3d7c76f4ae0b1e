/* engine/kx_abi.h — the C interface between contpte and an engine built from
 * a Linux tree (src/kernel builds it; docs/kernel.md).
 *
 * Owns: the two tables that cross the shared object's boundary: what the
 * kernel code may ask of the simulator (kx_env_ops, one call per PTE memory
 * operation, TLB flush, folio lookup, WARN) and the arch functions the
 * object exports (kx_api). Plain C, included by C++ and by the generated C
 * translation unit alike; bump KX_ABI_VERSION on any change (it is part of
 * the cache key).
 * Must not know: C++.
 */
#ifndef CONTPTE_KX_ABI_H
#define CONTPTE_KX_ABI_H

#include <stdint.h>

#define KX_ABI_VERSION 1

struct kx_env;

struct kx_env_ops {
  /* READ_ONCE / WRITE_ONCE / xchg_relaxed / cmpxchg_relaxed on a PTE word.
   * `fn` is the kernel function that made the access (for labels). */
  uint64_t (*read)(const struct kx_env *e, uint64_t *p, const char *fn);
  void (*write)(const struct kx_env *e, uint64_t *p, uint64_t v, const char *fn);
  uint64_t (*xchg)(const struct kx_env *e, uint64_t *p, uint64_t v, const char *fn);
  uint64_t (*cmpxchg)(const struct kx_env *e, uint64_t *p, uint64_t old, uint64_t v,
                      const char *fn);
  /* __flush_tlb_range[_nosync] (last level), flush_tlb_page[_nosync], flush_tlb_mm. */
  void (*flush_range)(const struct kx_env *e, uint64_t start, uint64_t nr_pages, int sync);
  void (*flush_page)(const struct kx_env *e, uint64_t addr, int sync);
  void (*flush_mm)(const struct kx_env *e);
  /* page_folio(pfn_to_page(pfn)): the folio's head PFN and size. */
  void (*folio)(const struct kx_env *e, uint64_t pfn, uint64_t *head, uint64_t *nr_pages);
  /* WARN_ON & co. fired at FILE:LINE of the tree; kind is "WARN", "BUG". */
  void (*warn)(const struct kx_env *e, const char *kind, const char *file, int line,
               const char *cond);
  /* contpte_convert started: towards CONT (fold) or not (unfold). */
  void (*convert)(const struct kx_env *e, int cont);
  /* contpte_ptep_get_lockless starts again on a torn block. */
  void (*lockless_retry)(const struct kx_env *e);
  /* A generic core-mm fallback (a helper the tree lacks) ran. */
  void (*fallback)(const struct kx_env *e, const char *name);
  /* CPU features the kernel asks about (KX_CPU_*). */
  int (*cpu_has)(const struct kx_env *e, int feature);
};

enum { KX_CPU_BBML2_NOABORT = 0, KX_CPU_TLB_RANGE = 1, KX_CPU_HAFDBS = 2 };

struct kx_env {
  void *ctx;
  const struct kx_env_ops *ops;
};

/* The exported arch functions; addr is a user VA, p points at a PTE word of
 * a live, naturally aligned page-table page. */
struct kx_api {
  int abi_version;
  unsigned page_shift, cont_ptes;
  const char *fallbacks; /* helpers compiled as core-mm fallbacks, ", "-separated */
  const struct kx_env *(*swap_env)(const struct kx_env *e);
  uint64_t (*ptep_get)(uint64_t *p);
  uint64_t (*ptep_get_lockless)(uint64_t *p);
  void (*set_ptes)(uint64_t addr, uint64_t *p, uint64_t pte, unsigned nr);
  void (*pte_clear)(uint64_t addr, uint64_t *p);
  uint64_t (*ptep_get_and_clear)(uint64_t addr, uint64_t *p);
  void (*clear_full_ptes)(uint64_t addr, uint64_t *p, unsigned nr, int full);
  uint64_t (*get_and_clear_full_ptes)(uint64_t addr, uint64_t *p, unsigned nr, int full);
  int (*ptep_test_and_clear_young)(uint64_t addr, uint64_t *p);
  int (*ptep_clear_flush_young)(uint64_t addr, uint64_t *p);
  void (*wrprotect_ptes)(uint64_t addr, uint64_t *p, unsigned nr);
  void (*ptep_set_wrprotect)(uint64_t addr, uint64_t *p);
  void (*clear_young_dirty_ptes)(uint64_t addr, uint64_t *p, unsigned nr, unsigned flags);
  int (*ptep_set_access_flags)(uint64_t addr, uint64_t *p, uint64_t entry, int dirty);
  uint64_t (*ptep_modify_prot_start)(uint64_t addr, uint64_t *p);
  void (*ptep_modify_prot_commit)(uint64_t addr, uint64_t *p, uint64_t old, uint64_t pte);
  uint64_t (*modify_prot_start_ptes)(uint64_t addr, uint64_t *p, unsigned nr);
  void (*modify_prot_commit_ptes)(uint64_t addr, uint64_t *p, uint64_t old, uint64_t pte,
                                  unsigned nr);
  unsigned (*pte_batch_hint)(uint64_t *p, uint64_t pte);
};

/* The one symbol the object exports. */
typedef const struct kx_api *(*kx_api_fn)(void);
#define KX_API_SYMBOL "contpte_kx_api"

#endif
