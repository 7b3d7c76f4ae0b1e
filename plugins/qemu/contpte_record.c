/* plugins/qemu/contpte_record.c — the QEMU user-mode plugin behind
 * `contpte record --recorder qemu`.
 *
 * Promises: every data load and store of the guest (address, size), every
 * translation block the guest starts executing (its instruction addresses
 * are sent once, when the block is translated), and the memory-management
 * system calls with their arguments and results, sent in the order each
 * guest thread made them to the socket named by `sock=PATH`
 * (record_protocol.h). It interprets nothing: mappings, offsets and the
 * trace format are the recorder's (src/trace/record_qemu.cpp).
 *
 * Speed is the point (docs/trace.md "Recording speed"): the hot callbacks
 * append a tag byte and a varint delta to the calling thread's buffer; a
 * full buffer, and every system call, sends it as one message.
 *
 * Threads: qemu-user runs each guest thread on its own host thread, so each
 * vCPU has its own buffer; sending takes a lock, so messages never mix.
 * fork: qemu-user forks itself; the child drops what its parent had
 * buffered, opens its own connection and announces itself.
 * execve: qemu-user would hand it to the host kernel and the new program
 * would run natively, unrecorded. The plugin runs it under QEMU instead:
 * at the execve's entry it sends what it has, then executes the same qemu
 * command line (qemu, its options, this plugin) with the new program
 * (follow_exec). The new qemu has the same pid and connects again. When that
 * execve fails (the program is missing, of another ISA, not ELF), QEMU's
 * own execve runs and fails or succeeds as it would have.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qemu_plugin_api.h"
#include "record_protocol.h"

CPT_PLUGIN_EXPORT int qemu_plugin_version = CPT_QEMU_PLUGIN_API_VERSION;

enum {
  kBufBytes = 1 << 20, /* event bytes per message */
  kMaxEvent = 96,      /* the longest event but a file name (7 varints + tag) */
  kMaxVcpus = 1 << 16, /* guest threads alive at once */
  kHeaderBytes = 24,   /* message header, tid, time */
  kPredSlots = CPT_PRED_SLOTS,
};
static const uint32_t kNoBlock = UINT32_MAX;
/* Guest user addresses: aarch64 ignores the top byte (TBI); x86-64 user
 * addresses are below 2^47 anyway. */
static const uint64_t kAddrMask = 0x00ffffffffffffffull;

/* The system calls the recorder interprets, by guest ISA (Linux uapi). */
struct syscalls {
  int64_t mmap, munmap, mprotect, madvise, brk, mremap, clone, clone3, fork, vfork, execve, execveat, exit,
      exit_group;
};
static const struct syscalls kX86_64 = {9, 11, 10, 28, 12, 25, 56, 435, 57, 58, 59, 322, 60, 231};
static const struct syscalls kAarch64 = {222, 215, 226, 233, 214, 216, 220, 435, -1, -1, 221, 281, 93, 94};
static const uint64_t kCloneVm = 0x100, kCloneVfork = 0x4000, kMapAnonymous = 0x20;

/* The block-run prediction of record_protocol.h (CPT_EV_NEXT): the block
 * that ran after block `from` last time in this message, in the slot of
 * `from`; an entry is valid only in the message (gen) that wrote it. */
struct pred_slot {
  uint32_t from, next, gen;
};

struct buffer {
  uint64_t head[3];                  /* the message header, tid, time: sent with */
  uint8_t bytes[kBufBytes + 4096];   /* the events, right after head */
  size_t n;      /* event bytes held */
  uint64_t last_addr, last_block;    /* delta bases (reset with every message) */
  uint32_t gen;        /* this message's generation (never 0: slots start at 0) */
  uint32_t pred_last;  /* the last block run in this message, or kNoBlock */
  uint32_t pending;    /* a predicted run not written yet (1 or 0) */
  struct pred_slot pred[kPredSlots];
  pid_t tid;     /* the host (= guest) thread id, learnt on its first send */
  int forking;   /* the syscall in progress makes a new process */
};

static struct {
  char sock_path[108];
  int fd;
  uint64_t isa;
  const struct syscalls *nr;
  pthread_mutex_t lock; /* sending, defs, block indices, vcpu buffers */
  struct buffer *bufs[kMaxVcpus];
  uint64_t *defs; /* pending CPT_EV_DEF events (sent before any chunk) */
  size_t ndefs, defs_cap;
  uint64_t next_block;
  int failed; /* the recorder went away: stop sending */
  int predict; /* block runs coded against their prediction (predict=off: never) */
  /* This qemu's command line up to the guest program (qemu, its options,
   * -plugin SPEC), for following execve; NULL: not known. */
  char **qemu_argv;
  size_t qemu_argc;
  /* The guest command (the arguments after -plugin SPEC, NUL-terminated
   * each), read by this process from its own /proc/self/cmdline at start,
   * so the recorder never has to read it after the fact (the program may
   * have exec'd again or exited by then). */
  const char *guest_cmd;
  size_t guest_cmd_len;
  unsigned elf_machine; /* the guest ISA's ELF e_machine */
} g = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .predict = 1};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t msg_header(unsigned kind, size_t payload) { return ((uint64_t)kind << 56) | payload; }

/* Writes all of [p, p + n) to the recorder; called with g.lock held. */
static void send_locked(const void *p, size_t n) {
  const char *c = p;
  while (n > 0 && !g.failed) {
    ssize_t w = write(g.fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      /* The recorder died: the program runs on, unrecorded. */
      g.failed = 1;
      return;
    }
    c += w, n -= (size_t)w;
  }
}

static void send_defs_locked(void) {
  if (g.ndefs == 0) return;
  uint64_t h = msg_header(CPT_MSG_DEFS, g.ndefs * sizeof(uint64_t));
  send_locked(&h, sizeof h);
  send_locked(g.defs, g.ndefs * sizeof(uint64_t));
  g.ndefs = 0;
}

/* A new message: the delta bases and the prediction start afresh, so each
 * message decodes on its own. */
static void restart(struct buffer *b) {
  b->n = 0;
  b->last_addr = b->last_block = 0;
  b->pending = 0;
  b->pred_last = kNoBlock;
  if (++b->gen == 0) { /* after 2^32 messages: forget every slot */
    memset(b->pred, 0, sizeof b->pred);
    b->gen = 1;
  }
}

/* Writes the pending predicted run, before an event that is not a load or
 * store (and at the message's end); the buffer's slack has room for it. */
static inline void settle(struct buffer *b) {
  if (b->pending) b->bytes[b->n++] = CPT_EV_NEXT, b->pending = 0;
}

static void flush_locked(struct buffer *b) {
  settle(b);
  if (b->n == 0) return;
  send_defs_locked();
  b->head[0] = msg_header(CPT_MSG_CHUNK, 16 + b->n);
  b->head[1] = (uint64_t)b->tid;
  b->head[2] = now_ns();
  send_locked(b->head, kHeaderBytes + b->n);
  restart(b);
}

static void flush(struct buffer *b) {
  if (b->tid == 0) b->tid = (pid_t)syscall(SYS_gettid);
  pthread_mutex_lock(&g.lock);
  flush_locked(b);
  pthread_mutex_unlock(&g.lock);
}

static inline void put_byte(struct buffer *b, uint8_t v) { b->bytes[b->n++] = v; }
static inline void put(struct buffer *b, uint64_t v) {
  while (v >= 0x80) {
    b->bytes[b->n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  b->bytes[b->n++] = (uint8_t)v;
}
static inline uint64_t zigzag(uint64_t d) { return (d << 1) ^ (uint64_t)((int64_t)d >> 63); }
/* Room for an event of `k` bytes in this message (events never split). */
static inline void reserve(struct buffer *b, size_t k) {
  if (b->n + k > kBufBytes) flush(b);
}

static struct buffer *buffer_of(unsigned vcpu) {
  struct buffer *b = vcpu < kMaxVcpus ? g.bufs[vcpu] : NULL;
  if (b) return b;
  /* A callback before vcpu_init (should not happen) or past the table. */
  static struct buffer overflow = {.gen = 1, .pred_last = UINT32_MAX};
  return &overflow;
}

static int connect_recorder(void) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, g.sock_path, sizeof a.sun_path);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  /* A deep socket buffer lets the guest run ahead of the recorder's
   * conversion instead of waiting for it after every message (capped by
   * net.core.wmem_max; a smaller buffer only costs speed). */
  int sndbuf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  g.fd = fd;
  uint64_t hello[6] = {msg_header(CPT_MSG_HELLO, 40 + g.guest_cmd_len), CPT_REC_PROTOCOL, (uint64_t)getpid(),
                       (uint64_t)getppid(), g.isa, now_ns()};
  send_locked(hello, sizeof hello);
  send_locked(g.guest_cmd, g.guest_cmd_len);
  return 0;
}

/* ---- hot callbacks ------------------------------------------------------ */

/* The event tag of a load or store (kind and log2 of its size). The
 * meminfo word is opaque: its tag is asked of QEMU's API the first time a
 * value is seen and cached (bit 7 marks a cached entry), which saves two
 * calls into QEMU per access and assumes nothing about the word's layout.
 * Threads share the cache: a racing fill stores the same byte. */
enum { kTagCacheSize = 1 << 18 };
static uint8_t tag_cache[kTagCacheSize];

static inline unsigned mem_tag(qemu_plugin_meminfo_t info) {
  if (info < kTagCacheSize) {
    const unsigned t = __atomic_load_n(&tag_cache[info], __ATOMIC_RELAXED);
    if (t) return t & 0x7f;
  }
  const unsigned kind = qemu_plugin_mem_is_store(info) ? CPT_EV_STORE : CPT_EV_LOAD;
  const unsigned t = kind | (qemu_plugin_mem_size_shift(info) & 0xf) << 3;
  if (info < kTagCacheSize) __atomic_store_n(&tag_cache[info], (uint8_t)(t | 0x80), __ATOMIC_RELAXED);
  return t;
}

/* The hot callbacks write through a local pointer: stores of bytes may
 * alias anything, so writing b->bytes[b->n++] would reload and store b->n
 * for every byte. */
static inline uint8_t *put_at(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

static void on_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata) {
  (void)udata;
  struct buffer *b = buffer_of(vcpu);
  reserve(b, 11);
  const uint8_t tag = (uint8_t)mem_tag(info);
  vaddr &= kAddrMask;
  const uint64_t last = b->last_addr;
  b->last_addr = vaddr;
  uint8_t *p = b->bytes + b->n;
  *p++ = (uint8_t)(tag | b->pending << 7); /* bit 7: the predicted run came first */
  b->pending = 0;
  p = put_at(p, zigzag(vaddr - last));
  b->n = (size_t)(p - b->bytes);
}

/* A block starts: the run is only noted (pending) when it is the block
 * that ran after the previous one last time in this message; the next load
 * or store carries it in its tag, or a CPT_EV_NEXT byte does. */
static void on_exec(unsigned int vcpu, void *udata) {
  struct buffer *b = buffer_of(vcpu);
  reserve(b, 12);
  const uint32_t index = (uint32_t)(uintptr_t)udata;
  const uint32_t from = b->pred_last;
  b->pred_last = index;
  int predicted = 0;
  if (from != kNoBlock) {
    struct pred_slot *s = &b->pred[from & (kPredSlots - 1)];
    predicted = s->gen == b->gen && s->from == from && s->next == index && g.predict;
    s->from = from, s->next = index, s->gen = b->gen;
  }
  const uint64_t last = b->last_block;
  b->last_block = index;
  uint8_t *p = b->bytes + b->n;
  if (b->pending) *p++ = CPT_EV_NEXT; /* the previous predicted run made no access */
  b->pending = (uint32_t)predicted;
  if (!predicted) {
    *p++ = CPT_EV_EXEC;
    p = put_at(p, zigzag(index - last));
  }
  b->n = (size_t)(p - b->bytes);
}

/* ---- translation ---------------------------------------------------------- */

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
  (void)id;
  const size_t n = qemu_plugin_tb_n_insns(tb);
  pthread_mutex_lock(&g.lock);
  const uint64_t index = g.next_block++;
  const size_t need = 3 + (n + 7) / 8;
  if (g.ndefs + need > g.defs_cap) {
    size_t cap = g.defs_cap ? g.defs_cap * 2 : 4096;
    while (cap < g.ndefs + need) cap *= 2;
    uint64_t *d = realloc(g.defs, cap * sizeof(uint64_t));
    if (!d) abort();
    g.defs = d, g.defs_cap = cap;
  }
  uint64_t *d = g.defs + g.ndefs;
  d[0] = ((uint64_t)CPT_EV_DEF << 60) | index;
  d[1] = qemu_plugin_tb_vaddr(tb) & kAddrMask;
  d[2] = n;
  memset(d + 3, 0, (n + 7) / 8 * sizeof(uint64_t));
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
    const size_t size = qemu_plugin_insn_size(insn);
    d[3 + i / 8] |= (uint64_t)(size & 0xff) << (8 * (i % 8));
    qemu_plugin_register_vcpu_mem_cb(insn, on_mem, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, NULL);
  }
  g.ndefs += need;
  pthread_mutex_unlock(&g.lock);
  qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)index);
}

/* ---- system calls ----------------------------------------------------------- */

/* The protocol's code for a system call the recorder interprets, or 0. */
static unsigned code_of(int64_t num) {
  const struct syscalls *s = g.nr;
  if (num < 0) return 0;
  if (num == s->mmap) return CPT_SYS_MMAP;
  if (num == s->munmap) return CPT_SYS_MUNMAP;
  if (num == s->mprotect) return CPT_SYS_MPROTECT;
  if (num == s->madvise) return CPT_SYS_MADVISE;
  if (num == s->brk) return CPT_SYS_BRK;
  if (num == s->mremap) return CPT_SYS_MREMAP;
  if (num == s->clone) return CPT_SYS_CLONE;
  if (num == s->clone3) return CPT_SYS_CLONE3;
  if (num == s->fork) return CPT_SYS_FORK;
  if (num == s->vfork) return CPT_SYS_VFORK;
  if (num == s->execve) return CPT_SYS_EXECVE;
  if (num == s->execveat) return CPT_SYS_EXECVEAT;
  if (num == s->exit) return CPT_SYS_EXIT;
  if (num == s->exit_group) return CPT_SYS_EXIT_GROUP;
  return 0;
}

/* The file an mmap maps: its size and path (the guest's fds are the host's
 * in qemu-user). */
static void put_file(struct buffer *b, int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t len = readlink(link, path, sizeof path);
  if (len < 0) len = 0;
  reserve(b, 32 + (size_t)len);
  settle(b);
  put_byte(b, CPT_EV_FILE);
  put(b, (uint64_t)st.st_size);
  put(b, (uint64_t)len);
  memcpy(b->bytes + b->n, path, (size_t)len);
  b->n += (size_t)len;
}

/* ---- following execve --------------------------------------------------------- */

/* qemu-user maps guest addresses 1:1 when it runs a 64-bit guest on a
 * 64-bit host without a reserved address space (guest_base 0, the case for
 * x86-64 and aarch64 guests here); reading through process_vm_readv turns
 * a wrong guess into an error, never a crash. */
static int read_guest(uint64_t addr, void *to, size_t n) {
  struct iovec local = {to, n}, remote = {(void *)(uintptr_t)addr, n};
  return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* A NUL-terminated guest string, malloc'd; NULL when unreadable. */
static char *guest_string(uint64_t addr) {
  size_t cap = 256, n = 0;
  char *s = malloc(cap);
  while (s) {
    if (n == cap) {
      if (cap > (1u << 20)) break;
      char *t = realloc(s, cap *= 2);
      if (!t) break;
      s = t;
    }
    if (read_guest(addr + n, s + n, 1) != 0) break;
    if (s[n++] == '\0') return s;
  }
  free(s);
  return NULL;
}

/* The guest's argv array (NULL-terminated, at most 1 << 16 entries). */
static char **guest_argv(uint64_t addr, size_t *count) {
  size_t cap = 16, n = 0;
  char **v = calloc(cap, sizeof *v);
  for (; v; ++n) {
    uint64_t p = 0;
    if (n + 1 >= cap) {
      if (cap > (1u << 16)) break;
      char **t = realloc(v, (cap *= 2) * sizeof *v);
      if (!t) break;
      v = t;
    }
    if (addr == 0) break;
    if (read_guest(addr + 8 * n, &p, 8) != 0) goto fail;
    if (p == 0) break;
    if (!(v[n] = guest_string(p))) goto fail;
  }
  if (!v) return NULL;
  v[n] = NULL;
  *count = n;
  return v;
fail:
  for (size_t i = 0; i < n; ++i) free(v[i]);
  free(v);
  return NULL;
}

/* The ELF e_machine of `path`, or 0 when it is no ELF; a "#!" line's
 * interpreter and its optional argument go to interp/arg. */
static unsigned exec_kind(const char *path, char *interp, size_t isize, char *arg, size_t asize) {
  interp[0] = arg[0] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char h[256];
  ssize_t n = read(fd, h, sizeof h - 1);
  close(fd);
  if (n >= 20 && memcmp(h, "\x7f" "ELF", 4) == 0) return (unsigned char)h[18] | (unsigned char)h[19] << 8;
  if (n < 3 || h[0] != '#' || h[1] != '!') return 0;
  h[n] = '\0';
  char *l = h + 2, *e = strchr(l, '\n');
  if (!e) return 0;
  *e = '\0';
  while (*l == ' ' || *l == '\t') ++l;
  size_t k = strcspn(l, " \t");
  if (k == 0 || k >= isize) return 0;
  memcpy(interp, l, k), interp[k] = '\0';
  l += k;
  while (*l == ' ' || *l == '\t') ++l;
  size_t m = strlen(l);
  while (m > 0 && (l[m - 1] == ' ' || l[m - 1] == '\t' || l[m - 1] == '\r')) --m;
  if (m >= asize) return 0;
  memcpy(arg, l, m), arg[m] = '\0';
  return 1; /* a script: the caller looks at its interpreter */
}

/* Runs the program of an execve(path, argv, envp) under this qemu command
 * line; returns only when it could not (the caller lets QEMU's execve run). */
static void follow_exec(uint64_t path_addr, uint64_t argv_addr, uint64_t envp_addr) {
  if (!g.qemu_argv) return;
  char *path = guest_string(path_addr);
  size_t argc = 0, envc = 0;
  char **argv = guest_argv(argv_addr, &argc), **envp = guest_argv(envp_addr, &envc);
  char interp[512], arg[512];
  if (!path || !argv || !envp || access(path, X_OK) != 0) goto out;
  unsigned kind = exec_kind(path, interp, sizeof interp, arg, sizeof arg);
  const int script = kind == 1;
  if (script) {
    char i2[8], a2[8];
    kind = exec_kind(interp, i2, sizeof i2, a2, sizeof a2);
  }
  if (kind != g.elf_machine) goto out;
  /* qemu [options] -plugin SPEC -0 ARGV0 PROGRAM ARGS... ; a script runs
   * as the kernel runs it: INTERP [ARG] PATH ARGS... */
  size_t n = 0;
  char **v = calloc(g.qemu_argc + argc + 8, sizeof *v);
  if (!v) goto out;
  for (size_t i = 0; i < g.qemu_argc; ++i) v[n++] = g.qemu_argv[i];
  v[n++] = "-0";
  if (script) {
    v[n++] = interp, v[n++] = interp;
    if (arg[0]) v[n++] = arg;
    v[n++] = path;
  } else {
    v[n++] = argc > 0 ? argv[0] : path, v[n++] = path;
  }
  for (size_t i = 1; i < argc; ++i) v[n++] = argv[i];
  v[n] = NULL;
  execve("/proc/self/exe", v, envp);
  free(v);
out:
  free(path);
  for (size_t i = 0; argv && i < argc; ++i) free(argv[i]);
  for (size_t i = 0; envp && i < envc; ++i) free(envp[i]);
  free(argv), free(envp);
}

/* This qemu's command line: its own options up to and including
 * `-plugin SPEC` (kept for following execve when `follow`), and the guest
 * command after them. */
static void learn_cmdline(int follow) {
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  ssize_t r;
  while (buf && (r = read(fd, buf + n, cap - n)) > 0) {
    n += (size_t)r;
    if (n == cap) {
      char *t = realloc(buf, cap *= 2);
      if (!t) break;
      buf = t;
    }
  }
  close(fd);
  if (!buf) return;
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) count += buf[i] == '\0';
  char **v = calloc(count + 1, sizeof *v);
  if (!v) return free(buf);
  size_t k = 0;
  for (size_t i = 0; i < n && k < count; i += strlen(buf + i) + 1) v[k++] = buf + i;
  for (size_t i = 0; i + 1 < k; ++i)
    if (strcmp(v[i], "-plugin") == 0 && strstr(v[i + 1], "sock=")) {
      if (i + 2 < k) g.guest_cmd = v[i + 2], g.guest_cmd_len = (size_t)(buf + n - v[i + 2]);
      if (follow) g.qemu_argv = v, g.qemu_argc = i + 2;
      else free(v);
      return; /* buf stays: guest_cmd points into it */
    }
  free(v), free(buf);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
  (void)id, (void)a7, (void)a8;
  struct buffer *b = buffer_of(vcpu);
  const unsigned code = code_of(num);
  if (code) {
    if (code == CPT_SYS_MMAP && !(a4 & kMapAnonymous) && (int32_t)a5 >= 0) put_file(b, (int)(int32_t)a5);
    b->forking = code == CPT_SYS_FORK || code == CPT_SYS_VFORK ||
                 (code == CPT_SYS_CLONE && (!(a1 & kCloneVm) || (a1 & kCloneVfork)));
    reserve(b, kMaxEvent);
    settle(b);
    put_byte(b, CPT_EV_SYSCALL);
    put(b, code);
    put(b, a1), put(b, a2), put(b, a3), put(b, a4), put(b, a5), put(b, a6);
  }
  /* Everything before a system call goes out before it: a process that
   * blocks has sent all it did (the recorder merges processes by time). */
  flush(b);
  if (code == CPT_SYS_EXECVE) follow_exec(a1, a2, a3);
}

static void on_syscall_ret(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, int64_t ret) {
  (void)id;
  const unsigned code = code_of(num);
  if (!code) return;
  struct buffer *b = buffer_of(vcpu);
  if (b->forking && ret == 0) {
    /* The new process: its parent's buffered events are the parent's to
     * send; it reports on a connection of its own. */
    b->forking = 0;
    pthread_mutex_lock(&g.lock);
    for (size_t i = 0; i < kMaxVcpus; ++i)
      if (g.bufs[i]) restart(g.bufs[i]);
    g.ndefs = 0;
    b->tid = (pid_t)syscall(SYS_gettid);
    close(g.fd);
    g.failed = connect_recorder() != 0;
    pthread_mutex_unlock(&g.lock);
    return;
  }
  reserve(b, kMaxEvent);
  settle(b);
  put_byte(b, CPT_EV_SYSRET);
  put(b, code);
  put(b, zigzag((uint64_t)ret));
  if (b->forking) flush(b); /* the child's connection waits for this */
  b->forking = 0;
}

/* ---- threads and exit -------------------------------------------------------- */

static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu) {
  (void)id;
  if (vcpu >= kMaxVcpus) return;
  pthread_mutex_lock(&g.lock);
  if (!g.bufs[vcpu]) g.bufs[vcpu] = calloc(1, sizeof(struct buffer));
  if (!g.bufs[vcpu]) abort();
  restart(g.bufs[vcpu]);
  g.bufs[vcpu]->tid = 0; /* learnt on the thread itself */
  pthread_mutex_unlock(&g.lock);
}

static void on_vcpu_exit(qemu_plugin_id_t id, unsigned int vcpu) {
  (void)id;
  if (vcpu < kMaxVcpus && g.bufs[vcpu]) flush(g.bufs[vcpu]);
}

static void on_exit_all(qemu_plugin_id_t id, void *udata) {
  (void)id, (void)udata;
  pthread_mutex_lock(&g.lock);
  for (size_t i = 0; i < kMaxVcpus; ++i)
    if (g.bufs[i]) {
      if (g.bufs[i]->tid == 0) g.bufs[i]->tid = getpid();
      flush_locked(g.bufs[i]);
    }
  send_defs_locked();
  pthread_mutex_unlock(&g.lock);
}

CPT_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
  if (info->system_emulation) {
    qemu_plugin_outs("contpte_record: only qemu-user (linux-user) is supported\n");
    return -1;
  }
  if (strcmp(info->target_name, "x86_64") == 0) {
    g.isa = CPT_ISA_X86_64, g.nr = &kX86_64, g.elf_machine = 62;
  } else if (strcmp(info->target_name, "aarch64") == 0) {
    g.isa = CPT_ISA_AARCH64, g.nr = &kAarch64, g.elf_machine = 183;
  } else {
    qemu_plugin_outs("contpte_record: guest is neither x86_64 nor aarch64\n");
    return -1;
  }
  for (int i = 0; i < argc; ++i)
    if (strncmp(argv[i], "sock=", 5) == 0) snprintf(g.sock_path, sizeof g.sock_path, "%s", argv[i] + 5);
  if (!g.sock_path[0]) {
    qemu_plugin_outs("contpte_record: missing sock=PATH\n");
    return -1;
  }
  int follow = 0;
  for (int i = 0; i < argc; ++i) {
    follow |= strcmp(argv[i], "exec=follow") == 0;
    if (strcmp(argv[i], "predict=off") == 0) g.predict = 0;
  }
  learn_cmdline(follow);
  pthread_mutex_lock(&g.lock);
  const int ok = connect_recorder() == 0;
  pthread_mutex_unlock(&g.lock);
  if (!ok) {
    qemu_plugin_outs("contpte_record: cannot connect to the recorder's socket\n");
    return -1;
  }
  qemu_plugin_register_vcpu_init_cb(id, on_vcpu_init);
  qemu_plugin_register_vcpu_exit_cb(id, on_vcpu_exit);
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
  qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
  qemu_plugin_register_vcpu_syscall_ret_cb(id, on_syscall_ret);
  qemu_plugin_register_atexit_cb(id, on_exit_all, NULL);
  return 0;
}
