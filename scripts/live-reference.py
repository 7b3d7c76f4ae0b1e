#!/usr/bin/env python3
"""live-reference.py — run a memory-manager scenario on the live kernel and
write it back with the kernel's own answer: after every statement, one
`expect cont` / `expect nocont` per 64K block of every mapping of the current
process.

Why: the simulated memory manager (src/mm) must take the decisions Linux
takes — which folio a fault gets, what fork, mprotect, madvise and munmap do
to it. The only ground truth is a real kernel. This script replays a
scenario's mm statements with real system calls in real processes (fork is
fork(2)), reads the resulting folio layout from /proc/PID/pagemap and
/proc/kpageflags, and records for each 64K block whether arm64 contpte
would hold it folded: 16 present pages, consecutive PFNs from a 16-aligned
one, all of one compound folio (order >= 4), one VMA protection.

What x86 cannot show is left out, with a comment: a block whose PTEs an
arm64 kernel would rewrite one at a time (a write fault that reuses a page
of a large folio in place: arm64 unfolds and never refolds, x86 shows the
same layout as before), and a block whose answer differs between runs.

Needs: root (kpageflags, pagemap PFNs), a 4K-page kernel with mTHP sysfs
(/sys/kernel/mm/transparent_hugepage/hugepages-*kB/enabled). The THP
settings are set from the scenario's `mthp` header and restored at the end.

Statements: the header (granule 4K, contpte, mthp, thp, seed), mmap with
addr= (anonymous or file=NAME, private or shared; files are made full of
data in a temporary directory and dropped from the page cache before each
run, so their folios are whatever the host's filesystem uses), munmap, mprotect, madvise (dontneed, free,
cold, pageout, hugepage, nohugepage, populate_write), read / write with a
stride and pattern=seq (one byte per stride), fork, process, exit. Existing
expect lines are dropped. Exit status: 0 written, 2 bad input or missing
privileges (with a message naming the line).

Usage: live-reference.py IN.cpt -o OUT.cpt [--runs N]
"""

import argparse
import ctypes
import fcntl
import json
import mmap as pymmap
import os
import re
import resource
import struct
import sys
import tempfile

PAGE = 4096
BLOCK = 16  # pages per contpte block at 4K
PMD_PAGES = 512
THP_DIR = "/sys/kernel/mm/transparent_hugepage"
THP_LOCK = "/tmp/contpte-thp-settings.lock"  # also taken by the tests that change THP settings

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

PROT = {"none": 0, "r": 1, "rw": 3, "rx": 5, "rwx": 7}
MAP_PRIVATE, MAP_SHARED, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x02, 0x01, 0x20, 0x100000
ADVICE = {"dontneed": 4, "free": 8, "cold": 20, "pageout": 21, "hugepage": 14, "nohugepage": 15,
          "populate_write": 23}
# /proc/kpageflags bits (Documentation/admin-guide/mm/pagemap.rst).
KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_ZERO_PAGE = 15, 16, 24


class InputError(Exception):
    pass


def size(text, where):
    m = re.fullmatch(r"(0x[0-9a-fA-F]+|\d+)([KMGT]?)", text)
    if not m:
        raise InputError(f"{where}: bad size '{text}'")
    return int(m.group(1), 0) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2)]


# ---- the scenario ----------------------------------------------------------------

def parse(path):
    """(header lines, [(line number, text, op dict)]) of the statements this
    script can run; anything else is an error naming its line."""
    header, ops = [], []
    for n, raw in enumerate(open(path), 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        where = f"{path}:{n}"
        w = text.split()
        kw, args = w[0], w[1:]
        opts = dict(a.split("=", 1) for a in args if "=" in a)
        flags = {a for a in args if "=" not in a}
        if kw in ("granule", "contpte", "mthp", "thp", "seed"):
            if kw == "granule" and args != ["4K"]:
                raise InputError(f"{where}: the live kernel has 4K pages; granule {args} cannot be checked")
            header.append(text)
        elif kw == "expect":
            continue
        elif kw == "mmap":
            if "addr" not in opts:
                raise InputError(f"{where}: mmap needs addr= for a reproducible layout")
            ops.append((n, text, dict(op="mmap", name=args[0], size=size(args[1], where),
                                      prot=opts.get("prot", "rw"), shared="shared" in flags,
                                      addr=int(opts["addr"], 0), file=opts.get("file"))))
        elif kw in ("munmap", "mprotect", "madvise", "read", "write"):
            op = dict(op=kw, at=args[0], len=size(args[1], where))
            if kw == "mprotect":
                op["prot"] = args[2]
            if kw == "madvise":
                if args[2] not in ADVICE:
                    raise InputError(f"{where}: madvise {args[2]} cannot be run live")
                op["advice"] = args[2]
            if kw in ("read", "write"):
                if opts.get("pattern", "seq") != "seq" or "count" in opts:
                    raise InputError(f"{where}: only sequential accesses (no count=, pattern=seq) run live")
                op["stride"] = size(opts.get("stride", "4K"), where)
            ops.append((n, text, op))
        elif kw == "fork":
            ops.append((n, text, dict(op="fork")))
        elif kw in ("process", "exit"):
            ops.append((n, text, dict(op=kw, id=int(args[0]))))
        else:
            raise InputError(f"{where}: '{kw}' cannot be run live")
    return header, ops


def thp_settings(header):
    """The sysfs `enabled` files' values for the header: hugepages-<k>kB for
    each size (`mthp S...` = always, `thp S=POLICY`; unnamed sizes never)
    and "" for the top-level setting (`thp top=POLICY`, else never)."""
    policy, top = {}, "never"
    for h in header:
        w = h.split()
        if w[0] == "mthp" and w[1:] != ["none"]:
            policy.update({size(s, "mthp") >> 10: "always" for s in w[1:]})
        if w[0] == "thp":
            for item in w[1:]:
                k, _, v = item.partition("=")
                if k == "top":
                    top = v
                else:
                    policy[size(k, "thp") >> 10] = v
    out = {"": top}
    for d in os.listdir(THP_DIR):
        m = re.fullmatch(r"hugepages-(\d+)kB", d)
        if m and os.path.exists(f"{THP_DIR}/{d}/enabled"):  # no order-1 anonymous folios: no file
            out[d] = policy.get(int(m.group(1)), "never")
    return out


# ---- random scenarios ------------------------------------------------------------

def random_scenario(seed, max_ops=30, max_procs=3):
    """A random mm scenario over a 4M arena: mmaps (aligned or not),
    sequential reads and writes of mapped runs the protection allows,
    mprotect, madvise, munmap, fork, process switches and exits. Every
    access stays inside memory that is mapped and permits it, so no process
    takes a signal."""
    import random
    rng = random.Random(seed)
    arena, npages = 0x4000000000, 1024
    out = ["granule 4K", "contpte upstream",
           rng.choice(["mthp 64K", "mthp 16K 64K", "mthp 32K 64K 128K", "mthp 64K 2M",
                       "thp 64K=madvise 2M=madvise", "thp 32K=always 64K=inherit 2M=inherit top=madvise",
                       "thp 16K=always 64K=madvise 128K=inherit top=always"])]
    procs = {0: [None] * npages}  # pid -> per page: None or (name, prot)
    names = {}                    # name -> (first page, pages)
    cur, next_pid, next_name = 0, 1, 0

    def runs(pages, ok):
        """Maximal runs [i, j) of pages satisfying ok."""
        res, i = [], 0
        while i < npages:
            if ok(pages[i]):
                j = i
                while j < npages and ok(pages[j]) and pages[j][0] == pages[i][0]:
                    j += 1
                res.append((i, j))
                i = j
            else:
                i += 1
        return res

    def at(i):
        name, _ = procs[cur][i]
        first = names[name][0]
        return f"{name}+{(i - first) * PAGE:#x}" if i > first else name

    def sub_run(i, j):
        if rng.random() < 0.5:
            return i, j
        a = rng.randrange(i, j)
        return a, rng.randrange(a, j) + 1

    for _ in range(rng.randrange(min(12, max_ops), max_ops + 1)):
        pages = procs[cur]
        o = rng.random()
        if o < 0.22 or not any(pages):
            align = rng.choice([1, 1, 4, 16, 16, 32, 512])
            n = rng.choice([4, 8, 16, 24, 32, 48, 64, 100, 128, 512, 600])
            start = rng.randrange(0, npages - n) // align * align
            if all(p is None for p in pages[start:start + n]):
                name = f"M{next_name}"
                next_name += 1
                names[name] = (start, n)
                for k in range(start, start + n):
                    pages[k] = (name, "rw")
                out.append(f"mmap {name} {n * 4}K prot=rw private anon addr={arena + start * PAGE:#x}")
            continue
        mapped = runs(pages, lambda p: p is not None)
        i, j = sub_run(*rng.choice(mapped))
        rng_txt = f"{at(i)} {(j - i) * 4}K"
        if o < 0.50:
            writable = runs(pages, lambda p: p is not None and p[1] == "rw")
            readable = runs(pages, lambda p: p is not None and p[1] in ("r", "rw"))
            write = rng.random() < 0.7
            choice = writable if write else readable
            if choice:
                i, j = sub_run(*rng.choice(choice))
                out.append(f"{'write' if write else 'read'} {at(i)} {(j - i) * 4}K stride=4K")
        elif o < 0.62:
            prot = rng.choice(["r", "rw", "rw", "none"])
            out.append(f"mprotect {rng_txt} {prot}")
            for k in range(i, j):
                pages[k] = (pages[k][0], prot)
        elif o < 0.80:
            adv = rng.choice(["dontneed", "dontneed", "free", "cold", "pageout", "populate_write",
                              "hugepage", "nohugepage"])
            if adv == "populate_write" and any(pages[k][1] != "rw" for k in range(i, j)):
                adv = "dontneed"
            out.append(f"madvise {rng_txt} {adv}")
        elif o < 0.86:
            out.append(f"munmap {rng_txt}")
            for k in range(i, j):
                pages[k] = None
        elif o < 0.93 and len(procs) < max_procs:
            out.append("fork")
            procs[next_pid] = list(pages)
            out.append(f"process {next_pid}")
            cur, next_pid = next_pid, next_pid + 1
        elif len(procs) > 1:
            other = rng.choice([p for p in procs if p != cur])
            if rng.random() < 0.5:
                out.append(f"process {other}")
                cur = other
            else:
                out.append(f"exit {other}")
                del procs[other]
    return "\n".join(out) + "\n"


# ---- a worker: one process of the scenario -------------------------------------------

class Worker:
    """Runs ops sent as JSON lines on FIFO `cmd`, answers on FIFO `rep`."""

    def __init__(self, pid_id, fifo_dir, names):
        self.id = pid_id
        self.dir = fifo_dir
        self.names = dict(names)  # name -> (addr, size)
        self.piecemeal = set()    # blocks (first page address) an arm64 kernel would have unfolded
        self.cmd = open(f"{fifo_dir}/cmd{pid_id}", "r")
        self.rep = open(f"{fifo_dir}/rep{pid_id}", "w")
        self.warm_up()

    def warm_up(self):
        # The reuse test in access() compares minor-fault counts around one
        # store; the interpreter's own first touches of fresh heap pages
        # would count too. Run the same code path on a scratch page first.
        scratch = pymmap.mmap(-1, 64 * PAGE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(scratch))
        for _ in range(2):
            self.access(base, 64 * PAGE, PAGE, True)
        self.piecemeal.clear()

    def loop(self):
        for line in self.cmd:
            msg = json.loads(line)
            try:
                result = self.run(msg)
            except OSError as e:
                result = {"error": str(e)}
            self.rep.write(json.dumps(result) + "\n")
            self.rep.flush()
            if msg["op"] == "exit":
                os._exit(0)

    def addr(self, at):
        name, _, off = at.partition("+")
        if name[0].isdigit():
            return int(at, 0)
        return self.names[name][0] + (int(off, 0) if off else 0)

    def run(self, msg):
        op = msg["op"]
        if op == "mmap":
            flags = (MAP_SHARED if msg["shared"] else MAP_PRIVATE) | MAP_FIXED_NOREPLACE
            fd = -1
            if msg["file"]:
                # A file of the scenario's: made by the controller, not cached.
                writable = msg["shared"] and "w" in msg["prot"]
                fd = os.open(f"{self.dir}/files/{msg['file']}", os.O_RDWR if writable else os.O_RDONLY)
            else:
                flags |= MAP_ANONYMOUS
            got = libc.mmap(msg["addr"], msg["size"], PROT[msg["prot"]], flags, fd, 0)
            if fd >= 0:
                os.close(fd)
            if got != msg["addr"]:
                raise OSError(ctypes.get_errno(), f"mmap at {msg['addr']:#x} failed")
            self.names[msg["name"]] = (msg["addr"], msg["size"])
        elif op == "munmap":
            libc.munmap(self.addr(msg["at"]), msg["len"])
        elif op == "mprotect":
            a = self.addr(msg["at"])
            libc.mprotect(a, msg["len"], PROT[msg["prot"]])
            # A range that ends inside a block rewrites part of it: arm64
            # unfolds the block, and the later rewrite of those PTEs (with
            # set_ptes over less than a block) never folds it again, while
            # x86 shows the same layout as a folded block would have. So
            # does a VMA boundary inside a block the range covers: the
            # kernel rewrites each VMA's part on its own.
            for edge in [a, a + msg["len"]] + self.vma_edges(a, a + msg["len"]):
                if edge % (BLOCK * PAGE):
                    self.piecemeal.add(edge & ~(BLOCK * PAGE - 1))
        elif op == "madvise":
            if msg["advice"] == "populate_write":
                # Write faults without accesses() to watch them: a page
                # already present may be reused in place (one PTE made
                # writable, the block unfolded on arm64).
                self.mark_present_blocks(self.addr(msg["at"]), msg["len"])
            if libc.madvise(self.addr(msg["at"]), msg["len"], ADVICE[msg["advice"]]) != 0:
                raise OSError(ctypes.get_errno(), f"madvise {msg['advice']} failed")
        elif op in ("read", "write"):
            self.access(self.addr(msg["at"]), msg["len"], msg["stride"], op == "write")
        elif op == "fork":
            # fork copies (and write-protects) each VMA on its own: a block
            # that straddles two VMAs is write-protected in parts, which
            # unfolds it on arm64, and the child's copy is set in parts.
            for edge in self.vma_edges(0, 1 << 48):
                if edge % (BLOCK * PAGE):
                    self.piecemeal.add(edge & ~(BLOCK * PAGE - 1))
            child = os.fork()
            if child == 0:
                # The child takes over the id the controller gave it.
                self.cmd.close()
                self.rep.close()
                me = Worker(msg["child_id"], self.dir, self.names)
                me.piecemeal = set(self.piecemeal)
                me.loop()
                os._exit(0)
        return {"blocks": self.blocks()}

    def access(self, start, length, stride, write):
        pagemap = open("/proc/self/pagemap", "rb", buffering=0)
        for a in range(start, start + length, stride):
            page = a & ~(PAGE - 1)
            before = self.pte(pagemap, page) if write else None
            flt = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            if write:
                ctypes.memset(a, 0x5a, 1)
            else:
                ctypes.c_char.from_address(a).value
            # A write fault that kept the page where it was reused it in
            # place (wp_page_reuse): one PTE rewritten, its block unfolded
            # on arm64 for good.
            if write and before and before[0]:
                if resource.getrusage(resource.RUSAGE_SELF).ru_minflt != flt and self.pte(pagemap, page) == before:
                    self.piecemeal.add(page & ~(BLOCK * PAGE - 1))
        pagemap.close()

    @staticmethod
    def pte(pagemap, va):
        e = struct.unpack("<Q", os.pread(pagemap.fileno(), 8, (va // PAGE) * 8))[0]
        return (bool(e >> 63 & 1), e & ((1 << 55) - 1))

    def mark_present_blocks(self, start, length):
        span = BLOCK * PAGE
        fd = os.open("/proc/self/pagemap", os.O_RDONLY)
        for va in range(start & ~(span - 1), start + length, span):
            ents = struct.unpack(f"<{BLOCK}Q", os.pread(fd, 8 * BLOCK, (va // PAGE) * 8))
            if any(e >> 63 & 1 for e in ents):
                self.piecemeal.add(va)
        os.close(fd)

    def vma_edges(self, lo, hi):
        """The VMA starts and ends in [lo, hi] among this process's mappings."""
        mine = [(b, b + n) for b, n in self.names.values()]
        out = []
        for vlo, vhi, _ in self.prots():
            for e in (vlo, vhi):
                if lo <= e <= hi and any(b <= e <= t for b, t in mine):
                    out.append(e)
        return out

    def prots(self):
        out = []
        for line in open("/proc/self/maps"):
            rng, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in rng.split("-"))
            out.append((lo, hi, perms))
        return out

    def blocks(self):
        """[(label, eligible, why)] for each naturally aligned 64K block that
        one of the process's mappings touches, lowest first. The label is
        NAME+OFF when the block lies inside mapping NAME, else its address."""
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
        kflags = os.open("/proc/kpageflags", os.O_RDONLY)
        maps = self.prots()
        span = BLOCK * PAGE
        labels = {}
        for name, (base, length) in sorted(self.names.items(), key=lambda kv: kv[1][0]):
            for va in range(base & ~(span - 1), base + length, span):
                inside = base <= va and va + span <= base + length
                label = (f"{name}+{va - base:#x}" if va > base else name) if inside else f"{va:#x}"
                if va not in labels or inside:
                    labels[va] = label
        rows = []
        for va in sorted(labels):
            eligible, why = self.block(pagemap, kflags, maps, va)
            rows.append((labels[va], eligible, why))
        os.close(pagemap)
        os.close(kflags)
        return rows

    @staticmethod
    def spans_aligned(kflags, pfn, n):
        """Whether pfn's folio covers the naturally aligned n frames around it."""
        base = pfn & ~(n - 1)
        fl = struct.unpack(f"<{n}Q", os.pread(kflags, 8 * n, base * 8))
        return fl[0] >> KPF_COMPOUND_HEAD & 1 and all(f >> KPF_COMPOUND_TAIL & 1 for f in fl[1:])

    def block(self, pagemap, kflags, maps, va):
        span = BLOCK * PAGE
        ents = struct.unpack(f"<{BLOCK}Q", os.pread(pagemap, 8 * BLOCK, (va // PAGE) * 8))
        present = [e >> 63 & 1 for e in ents]
        pfns = [e & ((1 << 55) - 1) for e in ents]
        if not any(present):
            self.piecemeal.discard(va)  # a refault starts afresh
            return False, "none"
        if not all(present):
            return False, "partial"
        fl = [struct.unpack("<Q", os.pread(kflags, 8, p * 8))[0] for p in pfns]
        if any(f >> KPF_ZERO_PAGE & 1 for f in fl):
            return False, "zero"
        consecutive = pfns[0] % BLOCK == 0 and all(pfns[i] == pfns[0] + i for i in range(BLOCK))
        one_folio = (fl[0] >> KPF_COMPOUND_HEAD & 1 or fl[0] >> KPF_COMPOUND_TAIL & 1) and all(
            f >> KPF_COMPOUND_TAIL & 1 for f in fl[1:])
        perms = {p for lo, hi, p in maps if lo < va + span and va < hi}
        if not (consecutive and one_folio):
            return False, "folio"
        # A PMD-sized folio may be mapped by one PMD (no PTEs, no PTE_CONT)
        # or by PTEs after a split: pagemap does not say which.
        if self.spans_aligned(kflags, pfns[0], PMD_PAGES):
            return False, "pmd"
        # PROT_NONE: present to the kernel, invalid to the MMU; arm64 never
        # sets PTE_CONT on an invalid entry.
        if any(p[:3] == "---" for p in perms):
            return False, "protnone"
        # A block written in pieces may be unfolded on arm64 although x86
        # shows it eligible — or folded although its VMAs differ: a
        # single-PTE set_ptes at the block's end folds whatever the VMAs
        # say when the PTEs agree (read-only after fork's write-protect,
        # say). Neither can be told from x86.
        if va in self.piecemeal:
            return len(perms) == 1, "piecemeal"
        if len(perms) != 1:
            return False, "prot"
        return True, "ok"


# ---- the controller ----------------------------------------------------------------

class Live:
    """The scenario's processes on the live kernel, driven op by op."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="contpte-live-")
        self.pipes = {}
        self.next_id = 0
        self.spawn_root()

    def fifos(self, i):
        os.mkfifo(f"{self.dir}/cmd{i}")
        os.mkfifo(f"{self.dir}/rep{i}")

    def connect(self, i):
        self.pipes[i] = (open(f"{self.dir}/cmd{i}", "w"), open(f"{self.dir}/rep{i}", "r"))

    def spawn_root(self):
        self.fifos(0)
        if os.fork() == 0:
            try:
                Worker(0, self.dir, {}).loop()
            finally:
                os._exit(0)
        self.connect(0)
        self.next_id = 1

    def send(self, i, msg):
        cmd, rep = self.pipes[i]
        cmd.write(json.dumps(msg) + "\n")
        cmd.flush()
        line = rep.readline()
        if not line:
            raise InputError(f"process {i} died (a fault the kernel answered with a signal?)")
        return json.loads(line)

    def run(self, cur, op):
        if op["op"] == "fork":
            child = self.next_id
            self.next_id += 1
            self.fifos(child)
            cmd, rep = self.pipes[cur]
            cmd.write(json.dumps(dict(op, child_id=child)) + "\n")
            cmd.flush()
            self.connect(child)
            line = rep.readline()
            return json.loads(line)
        if op["op"] == "exit":
            res = self.send(op["id"], op)
            del self.pipes[op["id"]]
            return self.send(cur, {"op": "record"})
        if op["op"] == "process":
            return self.send(op["id"], {"op": "record"})
        return self.send(cur, op)

    def close(self):
        for i in list(self.pipes):
            try:
                self.send(i, {"op": "exit"})
            except (InputError, BrokenPipeError):
                pass


def make_files(directory, ops):
    """The scenario's files, each as large as its largest mapping, full of
    data (no holes), written back and dropped from the page cache so that
    the run reads them in as the model's cold cache does."""
    sizes = {}
    for _, _, op in ops:
        if op["op"] == "mmap" and op.get("file"):
            sizes[op["file"]] = max(sizes.get(op["file"], 0), op["size"])
    os.makedirs(f"{directory}/files", exist_ok=True)
    for name, n in sizes.items():
        path = f"{directory}/files/{name}"
        with open(path, "wb") as f:
            f.write(bytes([0x5a]) * n)
            f.flush()
            os.fsync(f.fileno())
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)


def one_run(ops):
    """[(line, text, process, blocks or error)] for one live run."""
    live = Live()
    make_files(live.dir, ops)
    cur, out = 0, []
    try:
        for n, text, op in ops:
            res = live.run(cur, op)
            if op["op"] == "process":
                cur = op["id"]
            if "error" in res:
                raise InputError(f"line {n}: {text}: {res['error']}")
            out.append((n, text, cur, res["blocks"]))
    finally:
        live.close()
        while True:
            try:
                os.wait()
            except ChildProcessError:
                break
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", help="the scenario to run (with --random: where to write it)")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--random", type=int, metavar="SEED", help="generate a random mm scenario first")
    ap.add_argument("--random-ops", type=int, default=30, metavar="N", help="with --random: at most N statements")
    ap.add_argument("--random-procs", type=int, default=3, metavar="N", help="with --random: at most N processes")
    a = ap.parse_args()
    if a.random is not None:
        with open(a.scenario, "w") as f:
            f.write(f"# random mm scenario, seed {a.random}\n" + random_scenario(a.random, a.random_ops, a.random_procs))
    try:
        if os.geteuid() != 0 or not os.path.isdir(THP_DIR):
            raise InputError("needs root and mTHP sysfs (/sys/kernel/mm/transparent_hugepage)")
        header, ops = parse(a.scenario)
        want = thp_settings(header)
        # One run at a time changes the THP settings: two overlapping runs
        # would each restore what the other had set.
        lock = open(THP_LOCK, "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = {}
        try:
            for d, v in want.items():
                path = f"{THP_DIR}/{d}/enabled" if d else f"{THP_DIR}/enabled"
                saved[path] = re.search(r"\[(\w+)\]", open(path).read()).group(1)
                with open(path, "w") as f:
                    f.write(v)
            runs = [one_run(ops) for _ in range(a.runs)]
        finally:
            for path, v in saved.items():
                with open(path, "w") as f:
                    f.write(v)
    except (InputError, OSError, ValueError, KeyError, IndexError) as e:
        print(f"live-reference: error: {e}", file=sys.stderr)
        return 2

    kernel = os.uname().release
    lines = [f"# {os.path.basename(a.output)}: {os.path.basename(a.scenario)} run live",
             f"# Recorded by scripts/live-reference.py on Linux {kernel} {os.uname().machine} (4K pages), THP:",
             "# " + ", ".join(f"{d or 'enabled'}={v}" for d, v in sorted(want.items()) if v != "never") +
             ", all else never.",
             f"# {a.runs} runs. After each statement, one expect per 64K block of the current process's",
             "# mappings: cont when 16 present pages of one compound folio, consecutive PFNs from a",
             "# 16-aligned one, one VMA protection. Left out: blocks an arm64 kernel rewrites piecemeal",
             "# (write-reuse faults, mprotect or fork over part of a block) and blocks whose answer",
             "# varied between runs."]
    lines += header
    for step in range(len(ops)):
        n, text, cur, blocks = runs[0][step]
        lines.append(text)
        for i, (at, eligible, why) in enumerate(blocks):
            answers = {tuple(r[step][3][i][1:]) for r in runs}
            if len(answers) > 1:
                lines.append(f"# {at}: varied between runs: {sorted(answers)}")
            elif why == "pmd":
                lines.append(f"# {at}: in a PMD-sized folio: PMD- or PTE-mapped cannot be told from x86")
            elif why == "piecemeal":
                lines.append(f"# {at}: written piecemeal: arm64's state cannot be told from x86")
            elif eligible:
                lines.append(f"expect cont {at} 64K")
            else:
                lines.append(f"expect nocont {at}  # {why}")
    with open(a.output, "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
