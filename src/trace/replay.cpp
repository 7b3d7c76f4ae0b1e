#include "trace/replay.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "mm/mm.h"

namespace contpte {

namespace {

// Where the brk heap goes: low, where Linux puts it after a PIE program
// (mm->brk follows the executable near 0x55..., far below the mmap area
// that grows down from mmap_base), so mmaps never crowd it.
constexpr VirtAddr kHeapBase{0x5555'0000'0000};

Prot prot_of(std::uint32_t bits) {
  using namespace trace_prot;
  const bool r = bits & kRead, w = bits & kWrite, x = bits & kExec;
  // PROT_WRITE implies read on arm64 (no write-only pages).
  if (w) return x ? Prot::RWX : Prot::RW;
  if (x) return r ? Prot::RX : Prot::X;
  return r ? Prot::R : Prot::None;
}

std::uint32_t bits_of(Prot p) {
  using namespace trace_prot;
  switch (p) {
    case Prot::R: return kRead;
    case Prot::RW: return kRead | kWrite;
    case Prot::RX: return kRead | kExec;
    case Prot::RWX: return kRead | kWrite | kExec;
    case Prot::X: return kExec;
    case Prot::None: return 0;
  }
  return 0;
}

MemAccess access_kind(TraceAccessType t) {
  switch (t) {
    case TraceAccessType::Instr: return MemAccess::Exec;
    case TraceAccessType::Load: return MemAccess::Read;
    // A modify (read-modify-write) is one translation with write permission.
    case TraceAccessType::Store:
    case TraceAccessType::Modify: return MemAccess::Write;
  }
  return MemAccess::Read;
}

// Applies trace records to a RunMachine. Ranges are rounded to the
// simulated page size, which may be larger than the recorded program's:
// what creates memory rounds out, what removes or restricts it rounds in
// (a 4K mprotect inside a 64K page changes nothing, rather than make
// the rest of the page fault), except at a mapping's own end, which was
// rounded out when it was made.
class Replayer {
 public:
  Replayer(RunMachine& m, const Geometry& g) : m_(m), page_(g.page_size()), shift_(g.page_shift) {}

  void record(const TraceRecord& r) {
    if (const auto* a = std::get_if<TraceAccess>(&r)) return access(*a);
    std::visit([&](const auto& x) { apply(x); }, r);
    m_.end_step();
  }

  void access(const TraceAccess& a) {
    const std::vector<Map>& maps = *cur_;
    if (a.map >= maps.size() || !maps[a.map].placed) {
      ++unresolved_;
      return;
    }
    const std::uint64_t va = maps[a.map].base + a.offset;
    const MemAccess kind = access_kind(a.type);
    instructions_ += a.type == TraceAccessType::Instr;
    bool ok = m_.access(pid_, va, kind);
    // An access that straddles a page boundary translates both pages, but
    // stays one access: `accesses` is the program's count in every granule.
    const std::uint64_t last = va + a.size - 1;
    if ((last ^ va) >> shift_) ok = m_.access(pid_, last, kind, /*continued=*/true) && ok;
    if (!ok) ++unresolved_;
  }

  std::uint64_t unresolved() const { return unresolved_; }
  // Instruction fetches replayed: the program's instructions.
  std::uint64_t instructions() const { return instructions_; }
  std::uint64_t failed_mmaps() const { return failed_mmaps_; }

 private:
  // What backs a mapping in the simulated mm (see backing_of).
  struct Backing {
    std::optional<FileMap> file;  // its pgoff: the file offset at the mapping's start, in bytes
    bool shared = false;
  };
  struct Map {
    std::uint64_t base = 0;
    std::uint64_t len = 0;
    Prot prot = Prot::None;
    bool placed = false;
    Backing backing;
  };

  std::uint64_t up(std::uint64_t v) const { return (v + page_ - 1) & ~(page_ - 1); }
  std::uint64_t down(std::uint64_t v) const { return v & ~(page_ - 1); }
  Mm& mm() { return m_.mm(pid_); }

  // The simulated range for [offset, offset + len) of `mp`, rounded in
  // (see the class comment); empty when no whole page is inside.
  std::pair<std::uint64_t, std::uint64_t> range_in(const Map& mp, std::uint64_t offset, std::uint64_t len) const {
    const std::uint64_t s = up(mp.base + offset);
    const std::uint64_t e = offset + len >= mp.len ? up(mp.base + mp.len) : down(mp.base + offset + len);
    return {s, std::max(s, e)};
  }

  // The file page at simulated address `at` of a mapping whose byte
  // `want` is file byte `offset` (docs/trace.md, "Offsets in larger
  // pages"): a mapping rounded out down to its page is extended down in
  // the file by as much, and an offset still not a multiple of the
  // granule's page size (which Linux on that granule would refuse) is
  // rounded down to the page holding it. So no file page past the one
  // that holds the program's byte is ever asked for: an access the
  // program made stays inside the file.
  std::optional<FileMap> file_at(const Backing& b, std::uint64_t want, std::uint64_t at) const {
    if (!b.file) return std::nullopt;
    FileMap f = *b.file;
    const std::uint64_t below = want - at;
    f.pgoff = (f.pgoff >= below ? f.pgoff - below : 0) >> shift_;
    return f;
  }

  // A fixed mapping at `want` (maybe not page aligned in the simulated
  // granule): the covering pages, sharing a protection with what was
  // already in an edge page (so neither neighbour starts to fault).
  // False when it could not be mapped.
  bool map_fixed(std::uint64_t want, std::uint64_t len, Prot prot, const Backing& b) {
    const std::uint64_t s = down(want), e = up(want + len);
    std::uint32_t bits = bits_of(prot);
    if (s != want)
      if (const Vma* v = mm().find_vma(VirtAddr{s})) bits |= bits_of(v->prot);
    if (e != want + len)
      if (const Vma* v = mm().find_vma(VirtAddr{e - 1})) bits |= bits_of(v->prot);
    mm().munmap(VirtAddr{s}, e - s);  // MAP_FIXED replaces what was there
    const std::optional<FileMap> f = file_at(b, want, s);
    return mm().mmap(e - s, prot_of(bits), b.shared, VirtAddr{s}, 0, f ? &*f : nullptr).has_value();
  }

  // What backs a new mapping in the simulated mm (docs/trace.md "Replay"):
  // a file mapping maps the page cache of its file (one per file the trace
  // names, by path and recorded size, of that size), from its offset, so
  // every process and every mapping of the file shares its pages, as
  // processes share libc's; shared anonymous memory is shmem of its own,
  // shared with the children forked after it; the rest is private
  // anonymous memory. A file of recorded size 0 is a device (/dev/zero:
  // a program can touch no page of an empty regular file) and replays as
  // anonymous memory, as Linux maps /dev/zero.
  Backing backing_of(const TraceMmap& m) {
    Backing b;
    b.shared = m.flags & trace_map::kShared;
    if (m.file && *m.file < files_.size() && files_[*m.file].size > 0) {
      const TraceFile& f = files_[*m.file];
      b.file = FileMap{fmt::format("{}:{}", *m.file, f.path), f.size / page_ + (f.size % page_ != 0), m.file_offset,
                       false};
    } else if (b.shared && (!(m.flags & trace_map::kFile) || m.file)) {
      b.file = FileMap{fmt::format("shmem#{}", next_id_), up(m.len) / page_, 0, true};
    }
    if (!b.file) b.shared = false;  // a shared file the trace does not name: anonymous
    return b;
  }

  void add_map(std::optional<VirtAddr> base, std::uint64_t len, Prot prot, const Backing& b) {
    if (!base) ++failed_mmaps_;
    cur_->resize(++next_id_);
    cur_->back() = Map{base.value_or(VirtAddr{}).val, len, prot, base.has_value(), b};
  }
  // Mapping `id` as the current process sees it (unplaced when it was made
  // by another process after their fork).
  Map& map(std::uint32_t id) {
    if (id >= cur_->size()) cur_->resize(id + 1);
    return (*cur_)[id];
  }

  void apply(const TraceMmap& m) {
    const Prot prot = prot_of(m.prot);
    const Backing b = backing_of(m);
    if (m.within && map(*m.within).placed) {
      const std::uint64_t want = map(*m.within).base + m.within_offset;
      return add_map(map_fixed(want, m.len, prot, b) ? std::optional(VirtAddr{want}) : std::nullopt, m.len, prot,
                     b);
    }
    std::optional<VirtAddr> at;
    if (m.flags & trace_map::kHeap) at = mm().mmap(m.len, prot, false, kHeapBase, 0);
    // Everything else top-down, THP-aligned where Linux aligns it
    // (thp_get_unmapped_area, in the simulated mm).
    if (!at) at = map_anywhere(m.len, prot, b);
    add_map(at, m.len, prot, b);
  }

  std::optional<VirtAddr> map_anywhere(std::uint64_t len, Prot prot, const Backing& b) {
    const std::optional<FileMap> f = file_at(b, 0, 0);
    return mm().mmap(len, prot, b.shared, std::nullopt, 0, f ? &*f : nullptr);
  }

  void apply(const TraceMunmap& m) {
    const Map& mp = map(m.map);
    if (!mp.placed) return;
    const auto [s, e] = range_in(mp, m.offset, m.len);
    if (s < e) mm().munmap(VirtAddr{s}, e - s);
  }

  // Whole pages inside the range get the new protection; a page only
  // partly inside gets the union of what it had and the new one (glibc
  // grows an arena by mprotect-ing 4K steps of a PROT_NONE reservation: a
  // larger page must open as soon as part of it is opened).
  void apply(const TraceMprotect& m) {
    const Map& mp = map(m.map);
    if (!mp.placed || m.len == 0) return;
    const auto [s, e] = range_in(mp, m.offset, m.len);
    if (s < e) mm().mprotect(VirtAddr{s}, e - s, prot_of(m.prot));
    const std::uint64_t first = down(mp.base + m.offset), last = down(mp.base + m.offset + m.len - 1);
    if (first < s || s >= e) grant_page(first, m.prot);
    if (last != first && (last >= e || s >= e)) grant_page(last, m.prot);
  }

  void grant_page(std::uint64_t page, std::uint32_t prot) {
    const Vma* v = mm().find_vma(VirtAddr{page});
    if (!v) return;
    const Prot u = prot_of(bits_of(v->prot) | prot);
    if (u != v->prot) mm().mprotect(VirtAddr{page}, page_, u);
  }

  void apply(const TraceMadvise& m) {
    const Map& mp = map(m.map);
    if (!mp.placed) return;
    const auto [s, e] = range_in(mp, m.offset, m.len);
    if (s >= e) return;
    const VirtAddr at{s};
    switch (m.advice) {
      case trace_madv::kDontNeed: mm().madvise_dontneed(at, e - s); break;
      case trace_madv::kHugepage: mm().madvise_hugepage(at, e - s, true); break;
      case trace_madv::kNoHugepage: mm().madvise_hugepage(at, e - s, false); break;
      case trace_madv::kPopulateWrite: mm().populate_write(at, e - s); break;
      default: break;  // MADV_FREE, COLD, PAGEOUT, ...: not modelled (docs/trace.md)
    }
  }

  // Grows or shrinks mapping `map` in place to `len`; false when the pages
  // after it are taken. A file mapping grows with the file pages that
  // follow (vma_expand keeps the file and vm_pgoff; the new part merges).
  bool resize(Map& mp, std::uint64_t len) {
    const std::uint64_t old_end = up(mp.base + mp.len), new_end = up(mp.base + len);
    if (new_end > old_end) {
      Backing tail = mp.backing;
      if (tail.file) tail.file->pgoff += old_end - mp.base;
      const std::optional<FileMap> f = file_at(tail, old_end, old_end);
      if (!mm().mmap(new_end - old_end, mp.prot, tail.shared, VirtAddr{old_end}, 0, f ? &*f : nullptr)) return false;
    }
    if (new_end < old_end) mm().munmap(VirtAddr{new_end}, old_end - new_end);
    mp.len = len;
    return true;
  }

  void apply(const TraceBrk& b) {
    Map& mp = map(b.map);
    if (!mp.placed) return;
    if (!mm().brk(VirtAddr{mp.base + mp.len}, VirtAddr{mp.base + b.len})) {
      ++failed_mmaps_;
      return;
    }
    mp.len = b.len;
  }

  // The kernel moves page tables on mremap (move_page_tables) and the VMA
  // keeps its file and vm_pgoff; replay maps the new place afresh with the
  // same backing from the same file page: its pages fault in again (from
  // the page cache, for a file).
  void apply(const TraceMremap& m) {
    Map& mp = map(m.map);
    if (!m.moved && (!mp.placed || resize(mp, m.new_len))) return;
    if (mp.placed) mm().munmap(VirtAddr{mp.base}, up(mp.base + mp.len) - mp.base);
    const Backing b = mp.backing;
    const auto at = map_anywhere(m.new_len, mp.prot, b);
    if (m.moved) {
      // The old id is dead: its place may be the new mapping's now.
      mp.placed = false;
      return add_map(at, m.new_len, mp.prot, b);
    }
    // In place in the recording, but the replayed neighbour is in the way.
    if (!at) ++failed_mmaps_;
    mp = Map{at.value_or(VirtAddr{}).val, m.new_len, mp.prot, at.has_value(), b};
  }

  // The child's view of the mappings is the parent's at the fork; each
  // changes its own afterwards.
  void apply(const TraceFork&) {
    const std::size_t child = m_.fork(pid_);
    pid_of_stream_.push_back(child);
    if (maps_.size() <= child) maps_.resize(child + 1);
    maps_[child] = maps_[pid_];
    cur_ = &maps_[pid_];
  }
  void apply(const TraceExit&) { m_.exit(pid_); }
  void apply(const TraceStream& s) {
    pid_ = pid_of_stream_[s.stream];
    cur_ = &maps_[pid_];
  }
  void apply(const TraceAccess& a) { access(a); }
  void apply(const TraceBlock& b) {
    Block blk{b.map, b.offset, b.sizes};
    blocks_.push_back(std::move(blk));
  }
  void apply(const TraceRunBlock& r) { run_block(r.block); }
  void apply(const TraceTime&) {}    // the order of the records is the time order already
  void apply(const TraceThread&) {}  // threads share their process's address space and TLBs
  void apply(const TraceFile& f) { files_.push_back(f); }
  // The new program starts from an empty address space: the old
  // program's mappings go (as exec's exec_mmap drops the old mm).
  void apply(const TraceExec&) {
    for (Map& mp : *cur_)
      if (mp.placed) {
        mm().munmap(VirtAddr{mp.base}, up(mp.base + mp.len) - mp.base);
        mp.placed = false;
      }
  }

 public:
  // Each instruction of the block, in order: one fetch each.
  void run_block(std::uint32_t id) {
    if (id >= blocks_.size()) {
      ++unresolved_;
      return;
    }
    const Block& b = blocks_[id];
    std::uint64_t off = b.offset;
    for (std::uint8_t sz : b.sizes) {
      access(TraceAccess{TraceAccessType::Instr, b.map, off, sz});
      off += sz;
    }
  }

 private:
  struct Block {
    std::uint32_t map;
    std::uint64_t offset;
    std::vector<std::uint8_t> sizes;
  };
  std::vector<Block> blocks_;

  RunMachine& m_;
  std::uint64_t page_;
  unsigned shift_;
  std::vector<std::vector<Map>> maps_{1};  // by pid
  std::vector<Map>* cur_ = &maps_[0];       // the current process's
  std::uint32_t next_id_ = 0;
  std::vector<TraceFile> files_;  // the trace's files by id
  std::vector<std::size_t> pid_of_stream_{0};
  std::size_t pid_ = 0;
  std::uint64_t unresolved_ = 0, failed_mmaps_ = 0, instructions_ = 0;
};

Scenario machine_for(const BuiltinConfig& config, const std::string& name) {
  return parse_scenario(config.header, name);
}

void finish(RunResult& r, const BuiltinConfig& config, const Replayer* rp, std::uint64_t records, TraceIsa isa) {
  r.config.name = std::string(config.name);
  r.isa = std::string(trace_isa_name(isa));
  r.statements = static_cast<unsigned>(std::min<std::uint64_t>(records, ~0u));
  r.stats.emplace_back("replay_unresolved_accesses", rp ? double(rp->unresolved()) : 0.0);
  r.stats.emplace_back("replay_failed_mmaps", rp ? double(rp->failed_mmaps()) : 0.0);
}

}  // namespace

RunResult replay_records(const TraceContents& trace, const BuiltinConfig& config, const RunOptions& opts) {
  const Scenario sc = machine_for(config, "trace");
  std::optional<Replayer> rp;
  RunResult r = run_driven(sc, opts, [&](RunMachine& m) {
    rp.emplace(m, sc.header.geometry());
    for (const auto& rec : trace.records) rp->record(rec);
    m.count_instructions(rp->instructions());
  });
  finish(r, config, rp ? &*rp : nullptr, trace.records.size(), trace.header.isa);
  return r;
}

RunResult replay_trace(const std::string& path, const BuiltinConfig& config, const ReplayOptions& opts) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TraceError::cannot_open(path);
  std::error_code ec;
  const std::uint64_t size = std::filesystem::file_size(path, ec);
  TraceReader reader(in, path);
  const Scenario sc = machine_for(config, path);
  std::optional<Replayer> rp;
  std::uint64_t records = 0;
  RunResult r = run_driven(sc, opts.run, [&](RunMachine& m) {
    rp.emplace(m, sc.header.geometry());
    while (auto rec = reader.next()) {
      if (const auto* a = std::get_if<TraceAccess>(&*rec))
        rp->access(*a);
      else if (const auto* b = std::get_if<TraceRunBlock>(&*rec))
        rp->run_block(b->block);
      else
        rp->record(*rec);
      if ((++records & 0xfffff) == 0 && opts.progress) opts.progress(reader.compressed_offset(), size);
    }
    m.count_instructions(rp->instructions());
  });
  if (opts.progress) opts.progress(size, size);
  finish(r, config, rp ? &*rp : nullptr, records, reader.header().isa);
  return r;
}

std::vector<RunResult> replay_compare(const std::string& path, const ReplayOptions& opts, unsigned threads) {
  std::vector<RunResult> results(kBuiltinConfigs.size());
  // One bar for all: the sum of every replay's position.
  std::mutex m;
  std::vector<std::uint64_t> done(kBuiltinConfigs.size(), 0);
  std::uint64_t total = 0;
  parallel_for(kBuiltinConfigs.size(), threads, [&](std::size_t i) {
    ReplayOptions o = opts;
    if (opts.progress)
      o.progress = [&, i](std::uint64_t d, std::uint64_t t) {
        std::lock_guard lock(m);
        done[i] = d;
        total = t * kBuiltinConfigs.size();
        std::uint64_t sum = 0;
        for (auto x : done) sum += x;
        opts.progress(sum, total);
      };
    results[i] = replay_trace(path, kBuiltinConfigs[i], o);
  });
  return results;
}

}  // namespace contpte
