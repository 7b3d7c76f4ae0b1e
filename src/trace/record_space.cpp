#include "trace/record_space.h"

#include <algorithm>

namespace contpte {

namespace {

// Linux mmap flag values (uapi; the same on x86-64 and arm64).
constexpr std::uint64_t kMapShared = 0x01, kMapFixed = 0x10, kMapAnonymous = 0x20, kMapGrowsdown = 0x100,
                        kMapStack = 0x20000, kMapFixedNoreplace = 0x100000;
constexpr std::uint64_t kPage = 4096;  // the recorded program's page size (x86-64, arm64 4K)
// Addresses no syscall explained (the loaded program, the loader, the
// initial stack) become mappings of at most this window, aligned.
constexpr std::uint64_t kImplicitWindow = 2 << 20;

constexpr std::uint64_t page_up(std::uint64_t v) { return (v + kPage - 1) & ~(kPage - 1); }

}  // namespace

const RecordedSpace::Seg* RecordedSpace::find_in(const std::map<std::uint64_t, Seg>& m, std::uint64_t a) {
  auto it = m.upper_bound(a);
  if (it == m.begin()) return nullptr;
  --it;
  return a < it->second.end ? &it->second : nullptr;
}

// Calls fn(seg piece) for every piece of [a, e) in `m`; with `remove`,
// takes the pieces out (splitting the segments they were in).
template <class Fn>
void RecordedSpace::pieces(std::map<std::uint64_t, Seg>& m, std::uint64_t a, std::uint64_t e, bool remove,
                           Fn&& fn) {
  auto it = m.upper_bound(a);
  if (it != m.begin()) --it;
  while (it != m.end() && it->second.start < e) {
    const Seg s = it->second;
    if (s.end <= a) {
      ++it;
      continue;
    }
    const std::uint64_t ps = std::max(a, s.start), pe = std::min(e, s.end);
    fn(Seg{ps, pe, s.map, s.off + (ps - s.start)});
    if (!remove) {
      ++it;
      continue;
    }
    it = m.erase(it);
    if (s.start < ps) m.emplace(s.start, Seg{s.start, ps, s.map, s.off});
    if (pe < s.end) it = m.emplace(pe, Seg{pe, s.end, s.map, s.off + (pe - s.start)}).first, ++it;
  }
}

// The aligned window around `a`, less what is already known.
const RecordedSpace::Seg* RecordedSpace::add_implicit(std::uint64_t a) {
  std::uint64_t lo = a & ~(kImplicitWindow - 1), hi = lo + kImplicitWindow;
  for (const auto* m : {&as_.segs, &as_.implicit}) {
    auto it = m->upper_bound(a);
    if (it != m->end()) hi = std::min(hi, it->second.start);
    if (it != m->begin()) lo = std::max(lo, std::prev(it)->second.end);
  }
  const std::uint32_t id = w_->next_map();
  w_->write(TraceMmap{hi - lo, trace_prot::kRead | trace_prot::kWrite | trace_prot::kExec, trace_map::kImplicit,
                      std::nullopt, 0, std::nullopt, 0});
  forget_recent();
  return &as_.implicit.emplace(lo, Seg{lo, hi, id, 0}).first->second;
}

void RecordedSpace::unmap_implicit(std::uint64_t a, std::uint64_t e) {
  pieces(as_.implicit, a, e, true, [&](const Seg& p) { w_->write(TraceMunmap{p.map, p.off, p.end - p.start}); });
}

void RecordedSpace::munmap(std::uint64_t a, std::uint64_t len) {
  len = page_up(len);
  for_range(a, a + len, true, [&](const Seg& p) { w_->write(TraceMunmap{p.map, p.off, p.end - p.start}); });
  forget_recent();
}

void RecordedSpace::mprotect(std::uint64_t a, std::uint64_t len, std::uint64_t prot) {
  for_range(a, a + page_up(len), false, [&](const Seg& p) {
    w_->write(TraceMprotect{p.map, p.off, p.end - p.start, static_cast<std::uint32_t>(prot & 7)});
  });
}

void RecordedSpace::madvise(std::uint64_t a, std::uint64_t len, std::uint64_t advice) {
  for_range(a, a + page_up(len), false, [&](const Seg& p) {
    w_->write(TraceMadvise{p.map, p.off, p.end - p.start, static_cast<std::uint32_t>(advice)});
  });
}

void RecordedSpace::mmap(std::uint64_t a, std::uint64_t len, std::uint64_t prot, std::uint64_t flags,
                         std::int64_t fd, std::optional<std::uint32_t> file, std::uint64_t file_offset) {
  len = page_up(len);
  if (len == 0) return;
  TraceMmap m{len, static_cast<std::uint32_t>(prot & 7), 0, std::nullopt, 0, std::nullopt, 0};
  if (flags & kMapShared) m.flags |= trace_map::kShared;
  if (!(flags & kMapAnonymous) && fd >= 0) {
    m.flags |= trace_map::kFile;
    m.file = file, m.file_offset = file ? file_offset : 0;
  }
  if (flags & (kMapFixed | kMapFixedNoreplace)) m.flags |= trace_map::kFixed;
  if (flags & (kMapStack | kMapGrowsdown)) m.flags |= trace_map::kStack;
  // A fixed mapping wholly inside one explicit mapping keeps its place in
  // it (the loader's segments inside its reservation).
  if (m.flags & trace_map::kFixed)
    if (const Seg* s = find_in(as_.segs, a); s && a + len <= s->end)
      m.within = s->map, m.within_offset = s->off + (a - s->start);
  for_range(a, a + len, true, [&](const Seg& p) {
    if (!m.within) w_->write(TraceMunmap{p.map, p.off, p.end - p.start});
  });
  const std::uint32_t id = w_->next_map();
  w_->write(m);
  as_.segs.emplace(a, Seg{a, a + len, id, 0});
  forget_recent();
}

void RecordedSpace::brk(std::uint64_t asked, std::uint64_t now) {
  if (!as_.brk_known) {
    as_.brk_known = true;
    as_.brk_start = now;  // brk(0) (or the first brk) tells where the heap starts
    if (asked == 0) return;
  }
  const std::uint64_t start = as_.brk_start, end = std::max(start, page_up(now));
  if (!as_.heap) {
    if (end == start) return;
    unmap_implicit(start, end);
    as_.heap = w_->next_map();
    w_->write(TraceMmap{end - start, trace_prot::kRead | trace_prot::kWrite, trace_map::kHeap, std::nullopt, 0,
                        std::nullopt, 0});
    as_.segs.emplace(start, Seg{start, end, *as_.heap, 0});
    forget_recent();
    return;
  }
  auto it = as_.segs.find(start);
  if (it == as_.segs.end() || it->second.map != *as_.heap || it->second.off != 0) return;  // heap was unmapped
  if (end == it->second.end) return;
  // Growth takes what is there (brk never overlaps, but an implicit window
  // may have claimed the addresses).
  if (end > it->second.end) unmap_implicit(it->second.end, end);
  it->second.end = end;
  w_->write(TraceBrk{*as_.heap, end - start});
  forget_recent();
}

void RecordedSpace::mremap(std::uint64_t old, std::uint64_t old_len, std::uint64_t new_len, std::uint64_t now) {
  old_len = page_up(old_len), new_len = page_up(new_len);
  auto it = as_.segs.find(old);
  if (it != as_.segs.end() && it->second.off == 0 && it->second.end - old == old_len && new_len > 0) {
    const std::uint32_t map = it->second.map;
    if (now == old) {
      if (new_len > old_len) unmap_implicit(old + old_len, old + new_len);
      it->second.end = old + new_len;
      w_->write(TraceMremap{map, new_len, false});
    } else {
      as_.segs.erase(it);
      munmap(now, new_len);  // MREMAP_FIXED replaces what was at the target
      const std::uint32_t id = w_->next_map();
      w_->write(TraceMremap{map, new_len, true});
      as_.segs.emplace(now, Seg{now, now + new_len, id, 0});
    }
    forget_recent();
    return;
  }
  // Part of a mapping: an unmap and a fresh mapping (docs/trace.md).
  munmap(old, old_len);
  munmap(now, new_len);
  const std::uint32_t id = w_->next_map();
  w_->write(TraceMmap{new_len, trace_prot::kRead | trace_prot::kWrite, 0, std::nullopt, 0, std::nullopt, 0});
  as_.segs.emplace(now, Seg{now, now + new_len, id, 0});
  forget_recent();
}

}  // namespace contpte
