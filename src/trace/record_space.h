// trace/record_space.h — the address space of one recorded process, as
// its system calls and accesses reveal it, turned into trace records.
//
// Owns: the rule that turns an absolute address of the recorded program
// into (mapping id, offset) (docs/trace-format.md "Addresses"), and how each
// successful mm system call (mmap, munmap, mprotect, madvise, brk, mremap)
// becomes trace records; the implicit mappings that accesses reveal (what no
// recorded syscall mapped: the loaded program, the loader, the stack).
// Shared by both recorders (valgrind's log, the QEMU plugin's stream).
// Must not know: where the events come from.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>

#include "trace/trace.h"

namespace contpte {

class RecordedSpace {
 public:
  explicit RecordedSpace(TraceWriter& w) : w_(&w) {}
  // A fork's child starts with a copy (copy the object).
  RecordedSpace(const RecordedSpace& o) : w_(o.w_), as_(o.as_) {}
  RecordedSpace& operator=(const RecordedSpace& o) {
    w_ = o.w_, as_ = o.as_;
    forget_recent();
    return *this;
  }

  // A data access or fetch of `size` bytes at `addr`.
  void access(TraceAccessType type, std::uint64_t addr, std::uint64_t size) {
    const Seg* s = seg_of(addr);
    size = std::min<std::uint64_t>({size, s->end - addr, 1 << 16});  // the rest would be the next mapping's
    w_->access(TraceAccess{type, s->map, s->off + (addr - s->start), static_cast<std::uint32_t>(size)});
  }
  // Where `addr` is: (mapping, offset, bytes to the mapping's end); makes
  // an implicit mapping when nothing is there.
  struct Place {
    std::uint32_t map;
    std::uint64_t offset, room;
  };
  Place place(std::uint64_t addr) {
    const Seg* s = seg_of(addr);
    return Place{s->map, s->off + (addr - s->start), s->end - addr};
  }

  // The system calls, with their arguments and (successful) results as the
  // kernel saw them. `file`: the TraceFile a file mapping maps (already
  // written), with its file offset.
  void mmap(std::uint64_t result, std::uint64_t len, std::uint64_t prot, std::uint64_t flags, std::int64_t fd,
            std::optional<std::uint32_t> file = std::nullopt, std::uint64_t file_offset = 0);
  void munmap(std::uint64_t addr, std::uint64_t len);
  void mprotect(std::uint64_t addr, std::uint64_t len, std::uint64_t prot);
  void madvise(std::uint64_t addr, std::uint64_t len, std::uint64_t advice);
  void brk(std::uint64_t asked, std::uint64_t result);
  void mremap(std::uint64_t old_addr, std::uint64_t old_len, std::uint64_t new_len, std::uint64_t result);
  // execve: nothing of the old program stays (the trace says TraceExec).
  void clear() {
    as_ = AddressSpace{};
    forget_recent();
  }

 private:
  // A piece of a recorded mapping: [start, end) in the recorded address
  // space is mapping `map` from offset `off`.
  struct Seg {
    std::uint64_t start = 0, end = 0;
    std::uint32_t map = 0;
    std::uint64_t off = 0;
  };
  // Explicit mappings win a lookup: valgrind may put the brk heap inside a
  // window it also used for the loader.
  struct AddressSpace {
    std::map<std::uint64_t, Seg> segs;      // explicit, by start, disjoint
    std::map<std::uint64_t, Seg> implicit;  // by start, disjoint
    std::optional<std::uint32_t> heap;
    std::uint64_t brk_start = 0;
    bool brk_known = false;
  };
  static const Seg* find_in(const std::map<std::uint64_t, Seg>& m, std::uint64_t a);
  template <class Fn>
  static void pieces(std::map<std::uint64_t, Seg>& m, std::uint64_t a, std::uint64_t e, bool remove, Fn&& fn);
  template <class Fn>
  void for_range(std::uint64_t a, std::uint64_t e, bool remove, Fn&& fn) {
    pieces(as_.segs, a, e, remove, fn);
    pieces(as_.implicit, a, e, remove, fn);
  }
  const Seg* lookup(std::uint64_t a) {
    if (const Seg* s = find_in(as_.segs, a)) return s;
    if (const Seg* s = find_in(as_.implicit, a)) return s;
    return add_implicit(a);
  }
  const Seg* add_implicit(std::uint64_t a);
  static bool inside(const Seg* s, std::uint64_t a) { return s && a >= s->start && a < s->end; }
  // The segment of `a` through the two most recently used (a program
  // alternates between its stack and its data); any change of the segment
  // maps forgets them.
  const Seg* seg_of(std::uint64_t a) {
    if (inside(recent_[0], a)) return recent_[0];
    if (inside(recent_[1], a)) {
      std::swap(recent_[0], recent_[1]);
      return recent_[0];
    }
    const Seg* s = lookup(a);
    recent_[1] = recent_[0], recent_[0] = s;
    return s;
  }
  void forget_recent() { recent_[0] = recent_[1] = nullptr; }
  void unmap_implicit(std::uint64_t a, std::uint64_t e);

  TraceWriter* w_;
  AddressSpace as_;
  const Seg* recent_[2] = {nullptr, nullptr};  // a cache of seg_of
};

}  // namespace contpte
