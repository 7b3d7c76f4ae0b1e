/* kshim.h — the small kernel the arm64 contpte code of a Linux tree is
 * compiled against (docs/kernel.md "The shim"). Project code, no Linux code.
 *
 * Provides what the tree's contpte.c, the PTE part of pgtable.h and the few
 * mm/*.c functions read by src/kernel need and do not define themselves:
 * types, config, READ_ONCE / WRITE_ONCE / xchg / cmpxchg (each one call into
 * the simulator's Env), TLB flushes (routed like the built-in engine's),
 * struct page / folio over the simulator's frames, WARN / BUG (counted and
 * reported with the tree's FILE:LINE), CPU feature queries.
 *
 * The generator defines before including this: KX_PAGE_SHIFT,
 * KX_CONT_PTE_SHIFT, KX_CONT_PMD_SHIFT, KX_PGTABLE_LEVELS, and
 * CONFIG_ARM64_CONTPTE / CONFIG_DEBUG_VM / CONFIG_ARM64_{4K,16K,64K}_PAGES.
 */
#ifndef CONTPTE_KSHIM_H
#define CONTPTE_KSHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "kx_abi.h"

/* ---- configuration (docs/kernel.md) ---- */
#define CONFIG_ARM64 1
#define CONFIG_64BIT 1
#define CONFIG_MMU 1
#define CONFIG_ARM64_HW_AFDBM 1
#define CONFIG_ARM64_VA_BITS 48
#define CONFIG_ARM64_VA_BITS_48 1
#define CONFIG_ARM64_PA_BITS 48
#define CONFIG_ARM64_PA_BITS_48 1
#define CONFIG_PGTABLE_LEVELS KX_PGTABLE_LEVELS
#define CONFIG_ARM64_CONT_PTE_SHIFT KX_CONT_PTE_SHIFT
#define CONFIG_ARM64_CONT_PMD_SHIFT KX_CONT_PMD_SHIFT
#define CONFIG_PAGE_SHIFT KX_PAGE_SHIFT
#define VA_BITS 48
#define VA_BITS_MIN 48
#define vabits_actual 48UL

/* IS_ENABLED, as include/linux/kconfig.h defines it (the placeholder trick). */
#define __KX_ARG_PLACEHOLDER_1 0,
#define __kx_take_second_arg(__ignored, val, ...) val
#define __kx_is_defined(x) ___kx_is_defined(x)
#define ___kx_is_defined(val) ____kx_is_defined(__KX_ARG_PLACEHOLDER_##val)
#define ____kx_is_defined(arg1_or_junk) __kx_take_second_arg(arg1_or_junk 1, 0)
#define IS_ENABLED(option) __kx_is_defined(option)

/* ---- compiler ---- */
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define __always_inline inline __attribute__((__always_inline__))
#define noinline __attribute__((__noinline__))
#define __always_unused __attribute__((__unused__))
#define __maybe_unused __attribute__((__unused__))
#define __bitwise
#define __force
#define __init
#define __ro_after_init
#define notrace
#define EXPORT_SYMBOL(sym) extern int __kx_export_##sym
#define EXPORT_SYMBOL_GPL(sym) extern int __kx_export_##sym
#define BUILD_BUG_ON(c) ((void)sizeof(char[1 - 2 * !!(c)]))
#define BUILD_BUG_ON_INVALID(e) ((void)(sizeof((long)(e))))
#define BUILD_BUG() ((void)0)

/* ---- types ---- */
typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;
typedef u64 phys_addr_t;
typedef u64 pteval_t;
typedef u64 pmdval_t;
typedef u64 pudval_t;
typedef u64 p4dval_t;
typedef u64 pgdval_t;
typedef struct { pteval_t pte; } pte_t;
typedef struct { pmdval_t pmd; } pmd_t;
typedef struct { pudval_t pud; } pud_t;
typedef struct { p4dval_t p4d; } p4d_t;
typedef struct { pgdval_t pgd; } pgd_t;
typedef struct { pteval_t pgprot; } pgprot_t;
typedef struct { unsigned long val; } swp_entry_t;
typedef struct { int counter; } atomic_t;
#define pte_val(x) ((x).pte)
#define pmd_val(x) ((x).pmd)
#define pud_val(x) ((x).pud)
#define p4d_val(x) ((x).p4d)
#define pgd_val(x) ((x).pgd)
#define pgprot_val(x) ((x).pgprot)
#define __pte(x) ((pte_t){(x)})
#define __pmd(x) ((pmd_t){(x)})
#define __pud(x) ((pud_t){(x)})
#define __p4d(x) ((p4d_t){(x)})
#define __pgd(x) ((pgd_t){(x)})
#define __pgprot(x) ((pgprot_t){(x)})

/* clear_young_dirty_ptes() flags (include/linux/mm_types.h). */
typedef int __bitwise cydp_t;
#define CYDP_CLEAR_YOUNG ((__force cydp_t)1)
#define CYDP_CLEAR_DIRTY ((__force cydp_t)2)

/* ---- constants ---- */
#define _AC(X, Y) (X##Y)
#define _AT(T, X) ((T)(X))
#define _UL(x) (_AC(x, UL))
#define _ULL(x) (_AC(x, ULL))
#define UL(x) (_UL(x))
#define ULL(x) (_ULL(x))
#define BIT(nr) (1UL << (nr))
#define BIT_ULL(nr) (1ULL << (nr))
#define GENMASK(h, l) (((~0UL) - (1UL << (l)) + 1) & (~0UL >> (63 - (h))))
#define GENMASK_ULL(h, l) (((~0ULL) - (1ULL << (l)) + 1) & (~0ULL >> (63 - (h))))
#define SZ_4K 0x00001000
#define SZ_16K 0x00004000
#define SZ_64K 0x00010000
#define SZ_2M 0x00200000
#define SZ_8M 0x00800000
#define SZ_32M 0x02000000
#define SZ_512M 0x20000000
#define SZ_1G 0x40000000
#define PAGE_SHIFT KX_PAGE_SHIFT
#define PAGE_SIZE (_AC(1, UL) << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define ALIGN(x, a) (((x) + ((__typeof__(x))(a) - 1)) & ~((__typeof__(x))(a) - 1))
#define PTR_ALIGN_DOWN(p, a) ((__typeof__(p))ALIGN_DOWN((unsigned long)(p), (a)))
#define IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a) - 1)) == 0)

/* ---- the Env: the one global the kernel's calling convention forces ----
 * The arch helpers take a bare pte_t * (no mm), so the simulator's Env for
 * the call in progress is kept in this thread_local; contpte's C++ side
 * (engine/external.h, class external::Call) swaps it in around every call
 * and back out, also when an exception unwinds through this code. */
static __thread const struct kx_env *kx_cur;
#define KX (kx_cur)

static inline u64 kx_read_word(u64 *p, const char *fn) { return KX->ops->read(KX, p, fn); }
static inline void kx_write_word(u64 *p, u64 v, const char *fn) { KX->ops->write(KX, p, v, fn); }
static inline u64 kx_xchg_word(u64 *p, u64 v, const char *fn) { return KX->ops->xchg(KX, p, v, fn); }
static inline u64 kx_cmpxchg_word(u64 *p, u64 o, u64 v, const char *fn) {
  return KX->ops->cmpxchg(KX, p, o, v, fn);
}
static inline void kx_warn(const char *kind, const char *file, int line, const char *cond) {
  KX->ops->warn(KX, kind, file, line, cond);
}
static inline void kx_convert_hook(int cont) { KX->ops->convert(KX, cont); }
static inline void kx_lockless_retry_hook(void) { KX->ops->lockless_retry(KX); }
static inline void kx_fallback(const char *name) { KX->ops->fallback(KX, name); }

/* PTE words go through the Env; anything else READ_ONCE reads is plain
 * memory of the shim (none of it is shared). */
#define READ_ONCE(x)                                                        \
  ({                                                                        \
    __typeof__(x) __kx_r;                                                   \
    if (__builtin_types_compatible_p(__typeof__(x), pte_t) ||               \
        __builtin_types_compatible_p(__typeof__(x), pteval_t)) {            \
      u64 __kx_w = kx_read_word((u64 *)&(x), __func__);                     \
      __builtin_memcpy(&__kx_r, &__kx_w, sizeof(__kx_r));                   \
    } else {                                                                \
      __kx_r = *(volatile __typeof__(x) *)&(x);                             \
    }                                                                       \
    __kx_r;                                                                 \
  })
#define WRITE_ONCE(x, val)                                                  \
  do {                                                                      \
    __typeof__(x) __kx_v = (val);                                           \
    if (__builtin_types_compatible_p(__typeof__(x), pte_t) ||               \
        __builtin_types_compatible_p(__typeof__(x), pteval_t)) {            \
      u64 __kx_w;                                                           \
      __builtin_memcpy(&__kx_w, &__kx_v, sizeof(__kx_w));                   \
      kx_write_word((u64 *)&(x), __kx_w, __func__);                         \
    } else {                                                                \
      *(volatile __typeof__(x) *)&(x) = __kx_v;                             \
    }                                                                       \
  } while (0)
#define xchg_relaxed(ptr, v) kx_xchg_word((u64 *)(ptr), (u64)(v), __func__)
#define xchg(ptr, v) xchg_relaxed(ptr, v)
#define cmpxchg_relaxed(ptr, o, n) kx_cmpxchg_word((u64 *)(ptr), (u64)(o), (u64)(n), __func__)
#define cmpxchg(ptr, o, n) cmpxchg_relaxed(ptr, o, n)
#define atomic_read(v) ((v)->counter)
#define dsb(opt) ((void)0)
#define isb() ((void)0)

/* ---- WARN / BUG: reported with the tree's FILE:LINE (#line directives) ---- */
#define WARN_ON(c)                                                          \
  ({                                                                        \
    int __kx_c = !!(c);                                                     \
    if (unlikely(__kx_c)) kx_warn("WARN_ON", __FILE__, __LINE__, #c);       \
    unlikely(__kx_c);                                                       \
  })
#define WARN_ON_ONCE(c) WARN_ON(c)
#define WARN(c, ...) WARN_ON(c)
#define WARN_ONCE(c, ...) WARN_ON(c)
#define BUG_ON(c)                                                           \
  do {                                                                      \
    if (unlikely(c)) kx_warn("BUG_ON", __FILE__, __LINE__, #c);             \
  } while (0)
#define BUG() kx_warn("BUG", __FILE__, __LINE__, "BUG()")
#ifdef CONFIG_DEBUG_VM
#define VM_WARN_ON(c) ((void)WARN_ON(c))
#define VM_WARN_ON_ONCE(c) WARN_ON(c)
#define VM_WARN_ONCE(c, ...) WARN_ON(c)
#define VM_WARN(c, ...) WARN_ON(c)
#define VM_BUG_ON(c) BUG_ON(c)
#else
#define VM_WARN_ON(c) BUILD_BUG_ON_INVALID(c)
#define VM_WARN_ON_ONCE(c) BUILD_BUG_ON_INVALID(c)
#define VM_WARN_ONCE(c, ...) BUILD_BUG_ON_INVALID(c)
#define VM_WARN(c, ...) BUILD_BUG_ON_INVALID(c)
#define VM_BUG_ON(c) BUILD_BUG_ON_INVALID(c)
#endif

/* Memory types (asm/memory.h, MAIR_EL1 indices): Normal is index 0, as
 * in the built-in engine's PAGE_* values. */
#define MT_NORMAL 0
#define MT_NORMAL_TAGGED 1
#define MT_NORMAL_NC 2
#define MT_DEVICE_nGnRnE 3
#define MT_DEVICE_nGnRE 4

/* ---- mm, vma, task: one user address space ---- */
struct mm_struct {
  atomic_t mm_users;
  int kx_user;
};
struct vm_area_struct {
  struct mm_struct *vm_mm;
  unsigned long vm_flags;
};
struct task_struct {
  struct mm_struct *active_mm;
};
static struct mm_struct init_mm = {{1}, 0};
static struct mm_struct kx_mm = {{1}, 1};
static struct vm_area_struct kx_vma = {&kx_mm, 0};
static struct task_struct kx_task = {&kx_mm};
#define current (&kx_task)
#define mm_is_efi(mm) false
#define mm_tlb_flush_pending(mm) false
#define TLB_FLUSH_VMA(mm, flags) {.vm_mm = (mm), .vm_flags = (flags)}

/* ---- struct page / folio over the simulator's frames ----
 * The memmap is a reserved, inaccessible range of one byte per PFN of the
 * 48-bit PA space: page pointers are real addresses in one object, so the
 * kernel's page arithmetic (page - &folio->page) is valid; nothing is ever
 * loaded from it. */
struct page {
  char kx;
};
struct folio {
  struct page page;
};
static struct page *kx_memmap;
__attribute__((constructor)) static void kx_reserve_memmap(void) {
  void *m = mmap(NULL, (size_t)1 << (48 - PAGE_SHIFT), PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  kx_memmap = m == MAP_FAILED ? NULL : (struct page *)m;
}
#define pfn_to_page(pfn) (kx_memmap + (pfn))
#define page_to_pfn(pg) ((unsigned long)((pg) - kx_memmap))
static inline struct folio *page_folio(struct page *page) {
  u64 head, nr;
  KX->ops->folio(KX, page_to_pfn(page), &head, &nr);
  return (struct folio *)pfn_to_page(head);
}
static inline long folio_nr_pages(struct folio *folio) {
  u64 head, nr;
  KX->ops->folio(KX, page_to_pfn(&folio->page), &head, &nr);
  return (long)nr;
}

/* ---- what the arch asks the CPU (from the simulated core) ---- */
#define system_supports_bbml2_noabort() (KX->ops->cpu_has(KX, KX_CPU_BBML2_NOABORT) != 0)
#define system_supports_tlb_range() (KX->ops->cpu_has(KX, KX_CPU_TLB_RANGE) != 0)
#define cpu_has_hw_af() (KX->ops->cpu_has(KX, KX_CPU_HAFDBS) != 0)
#define system_supports_mte() false
#define system_supports_poe() false
#define system_supports_haft() false
#define lpa2_is_enabled() false
#define alternative_has_cap_unlikely(cap) false
#define alternative_has_cap_likely(cap) false
#define cpus_have_final_cap(cap) false
#define mte_sync_tags(pte, nr) ((void)0)
static inline void __sync_icache_dcache(pte_t pte) { (void)pte; }
#define page_table_check_ptes_set(mm, ptep, pte, nr) ((void)0)
#define page_table_check_pte_clear(mm, pte) ((void)0)
#define page_table_check_pmd_clear(mm, pmd) ((void)0)
#define page_table_check_pte_set(mm, ptep, pte) ((void)0)
#define arch_leave_lazy_mmu_mode() ((void)0)
#define arch_enter_lazy_mmu_mode() ((void)0)
#define lockdep_assert_held(l) ((void)0)

/* ---- TLB maintenance: the same flush -> Env mapping as the built-in
 * engine (one request per call; range in pages, last level). ---- */
static inline void __flush_tlb_range(struct vm_area_struct *vma, unsigned long start,
                                     unsigned long end, unsigned long stride, bool last_level,
                                     int tlb_level) {
  (void)vma, (void)stride, (void)last_level, (void)tlb_level;
  KX->ops->flush_range(KX, start, (end - start) >> PAGE_SHIFT, 1);
}
static inline void __flush_tlb_range_nosync(struct vm_area_struct *vma, unsigned long start,
                                            unsigned long end, unsigned long stride,
                                            bool last_level, int tlb_level) {
  (void)vma, (void)stride, (void)last_level, (void)tlb_level;
  KX->ops->flush_range(KX, start, (end - start) >> PAGE_SHIFT, 0);
}
static inline void flush_tlb_range(struct vm_area_struct *vma, unsigned long start,
                                   unsigned long end) {
  __flush_tlb_range(vma, start, end, PAGE_SIZE, false, 0);
}
static inline void flush_tlb_page_nosync(struct vm_area_struct *vma, unsigned long addr) {
  (void)vma;
  KX->ops->flush_page(KX, addr, 0);
}
static inline void flush_tlb_page(struct vm_area_struct *vma, unsigned long addr) {
  (void)vma;
  KX->ops->flush_page(KX, addr, 1);
}
static inline void flush_tlb_mm(struct mm_struct *mm) {
  (void)mm;
  KX->ops->flush_mm(KX);
}

/* include/linux/pgtable.h generics the arch code uses. */
static inline int pte_same(pte_t a, pte_t b) { return pte_val(a) == pte_val(b); }
#define set_pte_at(mm, addr, ptep, pte) set_ptes(mm, addr, ptep, pte, 1)
#define pte_next_pfn(pte) pte_advance_pfn(pte, 1)
/* mm/pgtable-generic.c's ptep_clear_flush (only the erratum path of
 * ptep_modify_prot_start names it; errata are off). */
#define ptep_clear_flush(vma, addr, ptep)                                   \
  ({                                                                        \
    pte_t __kx_p = ptep_get_and_clear((vma)->vm_mm, (addr), (ptep));        \
    if (pte_accessible((vma)->vm_mm, __kx_p)) flush_tlb_page((vma), (addr)); \
    __kx_p;                                                                 \
  })

#endif
