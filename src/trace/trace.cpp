#include "trace/trace.h"

#include <fmt/format.h>
#include <zstd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <istream>
#include <ostream>

namespace contpte {

namespace {

constexpr std::array<char, 8> kMagic{'C', 'P', 'T', 'T', 'R', 'A', 'C', 'E'};

// Record tags (docs/trace-format.md). Tags below 0x80 are accesses.
enum Tag : std::uint8_t {
  kTagMmap = 0x80,
  kTagMmapWithin = 0x81,
  kTagMunmap = 0x82,
  kTagMprotect = 0x83,
  kTagMadvise = 0x84,
  kTagBrk = 0x85,
  kTagMremap = 0x86,
  kTagFork = 0x87,
  kTagExit = 0x88,
  kTagStream = 0x89,
  // Version 2.
  kTagBlock = 0x8a,
  kTagRunBlock = trace_detail::kTagRunBlock,
  kTagTime = 0x8c,
  kTagThread = 0x8d,
  kTagFile = 0x8e,
  kTagMmapFile = 0x8f,
  kTagMmapWithinFile = 0x90,
  kTagExec = 0x91,
  // Version 3.
  kTagRunNext = trace_detail::kTagRunNext,
  kTagEnd = 0xff,
};
// Access tag bits: type (2), map changed (1), size code (4).
using trace_detail::kAccessMapChanged;
using trace_detail::kAccessSizeShift;

// Limits that keep a corrupt trace from asking for absurd allocations.
constexpr std::uint64_t kMaxArgs = 4096;
constexpr std::uint64_t kMaxArgLen = 1 << 20;
constexpr std::uint64_t kMaxMapLen = std::uint64_t{1} << 56;
constexpr std::uint64_t kMaxAccessSize = 1 << 16;
constexpr std::uint64_t kMaxMaps = std::uint64_t{1} << 28;
constexpr std::uint64_t kMaxBlocks = std::uint64_t{1} << 28;
constexpr std::uint64_t kMaxBlockInsns = 4096;
constexpr std::uint64_t kMaxPath = 4096;
using trace_detail::kChunk;
// Past kChunk, room for the longest fixed-size record (an mmap: a tag and 7
// varints); records with strings or size lists reserve their own.
constexpr std::size_t kSlack = 128;

using trace_detail::unzigzag;

// Fetches continue where the previous one ended; data accesses are coded
// against the previous data access of the same mapping.
constexpr unsigned cursor_class(TraceAccessType t) { return t == TraceAccessType::Instr ? 0 : 1; }


}  // namespace

using trace_detail::Predictor;

TraceError::TraceError(std::string file, std::uint64_t offset, bool compressed, const std::string& message)
    : std::runtime_error(fmt::format("{}: error: {} byte {}: {}", file,
                                     compressed ? "at compressed" : "at", offset, message)),
      offset_(offset),
      compressed_(compressed) {}

std::string_view trace_isa_name(TraceIsa isa) {
  switch (isa) {
    case TraceIsa::X86_64: return "x86-64";
    case TraceIsa::Aarch64: return "aarch64";
    case TraceIsa::Unknown: break;
  }
  return "unknown";
}

TraceError::TraceError(const std::string& whole_message) : std::runtime_error(whole_message), compressed_(false) {}

TraceError TraceError::cannot_open(const std::string& file) {
  return TraceError(fmt::format("{}: error: cannot open: {}", file, std::strerror(errno)));
}

std::string_view trace_access_name(TraceAccessType t) {
  static constexpr std::array<std::string_view, 4> kNames{"instr", "load", "store", "modify"};
  return kNames[static_cast<unsigned>(t)];
}

// ---- writer ----------------------------------------------------------------------

struct TraceWriter::Zstd {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ~Zstd() { ZSTD_freeCCtx(cctx); }
};

TraceWriter::TraceWriter(std::ostream& out, const TraceHeader& header, int level)
    : out_(out), z_(std::make_unique<Zstd>()) {
  if (!z_->cctx) throw std::runtime_error("zstd: cannot create a compression context");
  ZSTD_CCtx_setParameter(z_->cctx, ZSTD_c_compressionLevel, level);
  // The frame checksum turns a flipped bit into an error, not a wrong record.
  ZSTD_CCtx_setParameter(z_->cctx, ZSTD_c_checksumFlag, 1);
  // Compression runs on a worker thread while the caller encodes the next
  // chunk; a libzstd built without threads refuses, and compresses inline.
  ZSTD_CCtx_setParameter(z_->cctx, ZSTD_c_nbWorkers, 1);
  buf_.resize(kChunk + kSlack);
  if (header.version < kTraceVersionMin || header.version > kTraceVersion)
    throw std::logic_error(fmt::format("TraceWriter: no trace format version {}", header.version));
  version_ = header.version;
  put_bytes(kMagic.data(), kMagic.size());
  put_varint(header.version);
  if (version_ >= 2) put_varint(static_cast<unsigned>(header.isa));
  put_varint(header.command.size());
  for (const auto& a : header.command) {
    put_varint(a.size());
    put_bytes(a.data(), a.size());
  }
}

TraceWriter::~TraceWriter() = default;

void TraceWriter::put_bytes(const char* p, std::size_t k) {
  reserve(k + kSlack);
  std::memcpy(buf_.data() + n_, p, k);
  n_ += k;
}

void TraceWriter::flush_buffer(bool end) {
  ZSTD_inBuffer in{buf_.data(), n_, 0};
  zout_.resize(ZSTD_CStreamOutSize());
  for (;;) {
    ZSTD_outBuffer o{zout_.data(), zout_.size(), 0};
    const std::size_t left = ZSTD_compressStream2(z_->cctx, &o, &in, end ? ZSTD_e_end : ZSTD_e_continue);
    if (ZSTD_isError(left)) throw std::runtime_error(fmt::format("zstd: {}", ZSTD_getErrorName(left)));
    out_.write(zout_.data(), static_cast<std::streamsize>(o.pos));
    compressed_ += o.pos;
    if (end ? left == 0 : in.pos == in.size) break;
  }
  if (!out_) throw std::runtime_error("cannot write the trace");
  n_ = 0;
  if (buf_.size() > kChunk + kSlack) buf_.resize(kChunk + kSlack);  // after a long string
}

void TraceWriter::grow_cursors(std::uint32_t map) { cursors_.resize(std::size_t{map} * 2 + 2, 0); }

void TraceWriter::write(const TraceRecord& r) {
  if (const auto* a = std::get_if<TraceAccess>(&r))
    access(*a);
  else
    write_other(r);
}

void TraceWriter::write_other(const TraceRecord& r) {
  const bool v2_only = std::holds_alternative<TraceBlock>(r) || std::holds_alternative<TraceRunBlock>(r) ||
                       std::holds_alternative<TraceTime>(r) || std::holds_alternative<TraceThread>(r) ||
                       std::holds_alternative<TraceFile>(r) || std::holds_alternative<TraceExec>(r) ||
                       (std::holds_alternative<TraceMmap>(r) && std::get<TraceMmap>(r).file);
  if (v2_only && version_ < 2) throw std::logic_error("TraceWriter: a version-2 record in a version-1 trace");
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, TraceMmap>) {
          if (x.file)
            put_byte(x.within ? kTagMmapWithinFile : kTagMmapFile);
          else
            put_byte(x.within ? kTagMmapWithin : kTagMmap);
          put_varint(x.len), put_varint(x.prot), put_varint(x.flags);
          if (x.within) put_varint(*x.within), put_varint(x.within_offset);
          if (x.file) put_varint(*x.file), put_varint(x.file_offset);
          ++maps_;
        } else if constexpr (std::is_same_v<T, TraceMunmap>) {
          put_byte(kTagMunmap), put_varint(x.map), put_varint(x.offset), put_varint(x.len);
        } else if constexpr (std::is_same_v<T, TraceMprotect>) {
          put_byte(kTagMprotect), put_varint(x.map), put_varint(x.offset), put_varint(x.len);
          put_varint(x.prot);
        } else if constexpr (std::is_same_v<T, TraceMadvise>) {
          put_byte(kTagMadvise), put_varint(x.map), put_varint(x.offset), put_varint(x.len);
          put_varint(x.advice);
        } else if constexpr (std::is_same_v<T, TraceBrk>) {
          put_byte(kTagBrk), put_varint(x.map), put_varint(x.len);
        } else if constexpr (std::is_same_v<T, TraceMremap>) {
          put_byte(kTagMremap), put_varint(x.map), put_varint(x.new_len), put_byte(x.moved ? 1 : 0);
          maps_ += x.moved;
        } else if constexpr (std::is_same_v<T, TraceFork>) {
          put_byte(kTagFork), put_varint(x.child);
          ++streams_;
        } else if constexpr (std::is_same_v<T, TraceExit>) {
          put_byte(kTagExit);
        } else if constexpr (std::is_same_v<T, TraceStream>) {
          put_byte(kTagStream), put_varint(x.stream);
          cur_map_[0] = cur_map_[1] = ~0u;  // as the reader: the next access names its mapping
          pred_.forget();
        } else if constexpr (std::is_same_v<T, TraceBlock>) {
          put_byte(kTagBlock), put_varint(x.map), put_varint(x.offset), put_varint(x.sizes.size());
          put_bytes(reinterpret_cast<const char*>(x.sizes.data()), x.sizes.size());
          ++blocks_;
          pred_.define_block();
          block_insns_.push_back(static_cast<std::uint32_t>(x.sizes.size()));
        } else if constexpr (std::is_same_v<T, TraceRunBlock>) {
          if (x.block >= block_insns_.size()) throw std::logic_error("TraceWriter: run of an undefined block");
          --totals_.records;  // run_block counts it
          run_block(x.block, block_insns_[x.block]);
        } else if constexpr (std::is_same_v<T, TraceTime>) {
          // Never backwards: a clock that did not advance repeats.
          const std::uint64_t t = std::max(x.ns, last_time_);
          put_byte(kTagTime), put_varint(t - last_time_);
          last_time_ = t;
        } else if constexpr (std::is_same_v<T, TraceThread>) {
          put_byte(kTagThread), put_varint(x.tid);
          cur_map_[0] = cur_map_[1] = ~0u;
          pred_.forget();
        } else if constexpr (std::is_same_v<T, TraceFile>) {
          put_byte(kTagFile), put_varint(x.size), put_varint(x.path.size());
          put_bytes(x.path.data(), x.path.size());
          ++files_;
        } else if constexpr (std::is_same_v<T, TraceExec>) {
          put_byte(kTagExec), put_varint(x.command.size());
          for (const auto& a : x.command) put_varint(a.size()), put_bytes(a.data(), a.size());
          cur_map_[0] = cur_map_[1] = ~0u;
          pred_.forget();
        }
      },
      r);
  ++totals_.records;
  if (n_ >= kChunk) flush_buffer(false);
}

void TraceWriter::finish() {
  if (finished_) return;
  put_byte(kTagEnd);
  put_varint(totals_.records);
  put_varint(totals_.accesses);
  flush_buffer(true);
  out_.flush();
  if (!out_) throw std::runtime_error("cannot write the trace");
  finished_ = true;
}

// ---- reader ----------------------------------------------------------------------

struct TraceReader::Zstd {
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  ~Zstd() { ZSTD_freeDCtx(dctx); }
  std::vector<std::uint64_t> cursor;  // per mapping: fetch and data cursors
  std::vector<std::uint32_t> flags;   // per mapping: its trace_map flags
  std::uint64_t record_start = 0;
  Predictor pred;  // version 3
};

TraceReader::TraceReader(std::istream& in, std::string name)
    : in_(in), name_(std::move(name)), z_(std::make_unique<Zstd>()) {
  if (!z_->dctx) throw std::runtime_error("zstd: cannot create a decompression context");
  inbuf_.resize(ZSTD_DStreamInSize());
  outbuf_.resize(ZSTD_DStreamOutSize());
  z_->record_start = 0;
  std::array<char, 8> magic{};
  for (auto& c : magic) c = static_cast<char>(get_byte());
  if (magic != kMagic)
    fail(0, "not a contpte trace: a zstd stream, but it does not start with the trace magic 'CPTTRACE' (bad magic)");
  const std::uint64_t version = get_varint();
  if (version < kTraceVersionMin || version > kTraceVersion)
    fail(8, fmt::format("trace format version {} is not supported (this build reads versions {} to {})", version,
                        kTraceVersionMin, kTraceVersion));
  header_.version = static_cast<std::uint32_t>(version);
  if (version >= 2) {
    z_->record_start = pos_;
    const std::uint64_t isa = get_varint();
    if (isa > static_cast<unsigned>(TraceIsa::Aarch64)) fail(z_->record_start, fmt::format("unknown ISA {}", isa));
    header_.isa = static_cast<TraceIsa>(isa);
  }
  z_->record_start = pos_;
  const std::uint64_t argc = get_varint();
  if (argc > kMaxArgs) fail(z_->record_start, fmt::format("command has {} arguments (at most {})", argc, kMaxArgs));
  for (std::uint64_t i = 0; i < argc; ++i) {
    z_->record_start = pos_;
    const std::uint64_t len = get_varint();
    if (len > kMaxArgLen) fail(z_->record_start, fmt::format("command argument of {} bytes", len));
    std::string arg;
    arg.reserve(len);
    for (std::uint64_t k = 0; k < len; ++k) arg.push_back(static_cast<char>(get_byte()));
    header_.command.push_back(std::move(arg));
  }
}

TraceReader::~TraceReader() = default;

// A file that is not zstd at all (a scenario, a text file) is said to be no
// trace at all, not reported by what zstd thinks of its first bytes.
void TraceReader::check_zstd_magic() const {
  const auto* b = reinterpret_cast<const unsigned char*>(inbuf_.data());
  const bool zstd = in_size_ >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd;
  if (!zstd)
    throw TraceError(name_, 0, false,
                     "not a contpte trace: it does not start with the zstd magic 28 b5 2f fd (a trace is a "
                     "zstd stream holding the magic 'CPTTRACE' and format version " +
                         std::to_string(kTraceVersion) + ")");
}

void TraceReader::fail(std::uint64_t at, const std::string& message) const {
  throw TraceError(name_, at, false, message);
}

bool TraceReader::refill() {
  for (;;) {
    if (in_used_ == in_size_ && !in_eof_) {
      in_.read(inbuf_.data(), static_cast<std::streamsize>(inbuf_.size()));
      in_size_ = static_cast<std::size_t>(in_.gcount());
      in_used_ = 0;
      if (in_size_ == 0) in_eof_ = true;
    }
    if (in_used_ == in_size_) {
      if (!frame_done_)
        throw TraceError(name_, in_pos_, true,
                         in_pos_ == 0 ? "not a contpte trace: the file is empty (truncated, or its recording never finished)"
                                     : "truncated: the file ends inside the zstd frame");
      return false;
    }
    if (in_pos_ == 0 && in_used_ == 0) check_zstd_magic();
    if (frame_done_)
      throw TraceError(name_, in_pos_, true, "data after the end of the trace's zstd frame");
    ZSTD_inBuffer in{inbuf_.data() + in_used_, in_size_ - in_used_, 0};
    ZSTD_outBuffer out{outbuf_.data(), outbuf_.size(), 0};
    const std::size_t r = ZSTD_decompressStream(z_->dctx, &out, &in);
    if (ZSTD_isError(r)) throw TraceError(name_, in_pos_ + in.pos, true, fmt::format("zstd: {}", ZSTD_getErrorName(r)));
    in_used_ += in.pos;
    in_pos_ += in.pos;
    if (r == 0) frame_done_ = true;
    if (out.pos > 0) {
      out_pos_ = 0;
      out_size_ = out.pos;
      return true;
    }
  }
}

std::uint8_t TraceReader::get_byte() {
  if (out_pos_ == out_size_ && !refill())
    fail(z_->record_start, "truncated: the trace ends inside a record (no end record)");
  ++pos_;
  return static_cast<std::uint8_t>(outbuf_[out_pos_++]);
}

std::uint64_t TraceReader::get_varint() {
  std::uint64_t v = 0;
  for (unsigned shift = 0;; shift += 7) {
    const std::uint8_t b = get_byte();
    if (shift == 63 && b > 1) fail(z_->record_start, "varint overflows 64 bits");
    v |= std::uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return v;
  }
}

std::uint32_t TraceReader::get_u32(const char* what) {
  const std::uint64_t v = get_varint();
  if (v > 0xffffffffu) fail(z_->record_start, fmt::format("{} {} out of range", what, v));
  return static_cast<std::uint32_t>(v);
}

std::uint32_t TraceReader::get_map(const char* what) {
  const std::uint64_t v = get_varint();
  if (v >= map_len_.size())
    fail(z_->record_start, fmt::format("{} names mapping {}, but only {} exist", what, v, map_len_.size()));
  return static_cast<std::uint32_t>(v);
}

void TraceReader::check_range(std::uint32_t map, std::uint64_t offset, std::uint64_t len, std::uint64_t at) {
  if (offset > map_len_[map] || len > map_len_[map] - offset)
    fail(at, fmt::format("range {:#x}+{:#x} is past the end of mapping {} ({:#x} bytes)", offset, len, map,
                         map_len_[map]));
}

std::optional<TraceRecord> TraceReader::next() {
  if (ended_) return std::nullopt;
  z_->record_start = pos_;
  const std::uint64_t at = pos_;
  const std::uint8_t tag = get_byte();
  if (tag < 0x80) {
    // The hot path: an access.
    TraceAccess a;
    a.type = static_cast<TraceAccessType>(tag & 3);
    const unsigned c = cursor_class(a.type);
    const unsigned size_code = (tag >> kAccessSizeShift) & 0xf;
    if (tag >> (kAccessSizeShift + 4)) fail(at, fmt::format("bad access tag {:#x}", tag));
    if (size_code) {
      a.size = size_code;
    } else {
      const std::uint64_t s = get_varint();
      if (s == 0 || s > kMaxAccessSize) fail(at, fmt::format("access size {} out of range", s));
      a.size = static_cast<std::uint32_t>(s);
    }
    // Version 3: a data access is coded against its context's prediction.
    Predictor::Context* ctx = c == 1 && header_.version >= 3 ? z_->pred.context() : nullptr;
    const std::uint32_t expected_map = ctx && ctx->map != Predictor::kNone ? ctx->map : cur_map_[c];
    if (tag & kAccessMapChanged) {
      a.map = get_map("access");
    } else if (expected_map == ~0u) {
      fail(at, "access continues a mapping, but none was named before");
    } else {
      a.map = expected_map;
    }
    std::uint64_t& cursor = z_->cursor[std::size_t{a.map} * 2 + c];
    const bool predicted = !(tag & kAccessMapChanged) && Predictor::same_map(ctx, a.map);
    const std::uint64_t base = predicted ? ctx->offset + ctx->stride : cursor;
    a.offset = base + static_cast<std::uint64_t>(unzigzag(get_varint()));
    check_range(a.map, a.offset, a.size, at);
    if (c == 1 && header_.version >= 3) {
      Predictor::learn(ctx, a.map, a.offset);
      ++z_->pred.k;
    }
    cur_map_[c] = a.map;
    cursor = c == 0 ? a.offset + a.size : a.offset;
    ++seen_.records;
    ++seen_.accesses;
    return a;
  }
  if ((tag == kTagRunBlock && header_.version >= 2) || (tag == kTagRunNext && header_.version >= 3)) {
    std::uint64_t id = 0;
    if (tag == kTagRunBlock) {
      id = get_varint();
      if (id >= blocks_.size()) fail(at, fmt::format("runs block {}, but only {} exist", id, blocks_.size()));
    } else {
      const Predictor& p = z_->pred;
      if (p.block == Predictor::kNone || p.next[p.block] == Predictor::kNone)
        fail(at, "runs the next block, but no block ran before it in this thread");
      id = p.next[p.block];
    }
    if (header_.version >= 3) z_->pred.run(static_cast<std::uint32_t>(id));
    const TraceBlock& b = blocks_[id];
    // The mapping may have shrunk since the block was defined.
    check_range(b.map, b.offset, block_len_[id], at);
    ++seen_.records;
    seen_.accesses += b.sizes.size();
    return TraceRunBlock{static_cast<std::uint32_t>(id)};
  }
  auto r = read_other(tag, at);
  if (!ended_) ++seen_.records;
  if (ended_) return std::nullopt;
  return r;
}

TraceRecord TraceReader::read_other(std::uint8_t tag, std::uint64_t at) {
  switch (tag) {
    case kTagMmap:
    case kTagMmapWithin: return read_mmap(tag == kTagMmapWithin, false, at);
    case kTagMunmap: {
      TraceMunmap m;
      m.map = get_map("munmap");
      m.offset = get_varint(), m.len = get_varint();
      check_range(m.map, m.offset, m.len, at);
      return m;
    }
    case kTagMprotect: {
      TraceMprotect m;
      m.map = get_map("mprotect");
      m.offset = get_varint(), m.len = get_varint();
      m.prot = get_u32("protection");
      if (m.prot > 7) fail(at, fmt::format("mprotect protection {:#x} has unknown bits", m.prot));
      check_range(m.map, m.offset, m.len, at);
      return m;
    }
    case kTagMadvise: {
      TraceMadvise m;
      m.map = get_map("madvise");
      m.offset = get_varint(), m.len = get_varint();
      m.advice = get_u32("advice");
      check_range(m.map, m.offset, m.len, at);
      return m;
    }
    case kTagBrk: {
      TraceBrk b;
      b.map = get_map("brk");
      b.len = get_varint();
      if (!(z_->flags[b.map] & trace_map::kHeap)) fail(at, fmt::format("brk of mapping {}, not the heap", b.map));
      if (b.len > kMaxMapLen) fail(at, fmt::format("brk length {:#x} out of range", b.len));
      map_len_[b.map] = b.len;
      return b;
    }
    case kTagMremap: {
      TraceMremap m;
      m.map = get_map("mremap");
      m.new_len = get_varint();
      const std::uint8_t moved = get_byte();
      if (moved > 1) fail(at, fmt::format("mremap moved flag {}", moved));
      m.moved = moved;
      if (m.new_len == 0 || m.new_len > kMaxMapLen)
        fail(at, fmt::format("mremap length {:#x} out of range", m.new_len));
      if (m.moved) {
        if (map_len_.size() >= kMaxMaps) fail(at, "too many mappings");
        map_len_.push_back(m.new_len);
        z_->cursor.resize(map_len_.size() * 2, 0);
        z_->flags.push_back(z_->flags[m.map]);
      } else {
        map_len_[m.map] = m.new_len;
      }
      return m;
    }
    case kTagFork: {
      TraceFork f;
      f.child = get_u32("fork child stream");
      if (f.child != streams_) fail(at, fmt::format("fork makes stream {}, expected {}", f.child, streams_));
      ++streams_;
      return f;
    }
    case kTagExit: return TraceExit{};
    case kTagStream: {
      TraceStream s;
      s.stream = get_u32("stream");
      if (s.stream >= streams_) fail(at, fmt::format("stream {} does not exist ({} so far)", s.stream, streams_));
      // Each stream has its own program counter and stack: a new fetch
      // cursor. The per-mapping cursors stay (the encoder shares them too).
      cur_map_[0] = cur_map_[1] = ~0u;
      z_->pred.forget();
      return s;
    }
    case kTagBlock:
    case kTagRunBlock:
    case kTagTime:
    case kTagThread:
    case kTagFile:
    case kTagMmapFile:
    case kTagMmapWithinFile:
    case kTagExec:
      if (header_.version < 2) fail(at, fmt::format("record tag {:#x} is not in trace format version 1", tag));
      return read_v2(tag, at);
    case kTagRunNext:
      fail(at, fmt::format("record tag {:#x} is not in trace format version {}", tag, header_.version));
    case kTagEnd: {
      totals_.records = get_varint();
      totals_.accesses = get_varint();
      if (totals_.records != seen_.records || totals_.accesses != seen_.accesses)
        fail(at, fmt::format("end record counts {} records and {} accesses, but the trace has {} and {}",
                             totals_.records, totals_.accesses, seen_.records, seen_.accesses));
      // Nothing may follow the end record, and the zstd frame must end here.
      if (out_pos_ != out_size_ || refill()) fail(pos_, "data after the end record");
      ended_ = true;
      return TraceExit{};
    }
    default: fail(at, fmt::format("unknown record tag {:#x}", tag));
  }
}

// mmap and its variants: inside another mapping (`within`), of a file
// (`file`, version 2).
TraceMmap TraceReader::read_mmap(bool within, bool file, std::uint64_t at) {
  TraceMmap m;
  m.len = get_varint();
  m.prot = get_u32("protection");
  m.flags = get_u32("flags");
  if (m.len == 0 || m.len > kMaxMapLen) fail(at, fmt::format("mmap length {:#x} out of range", m.len));
  if (m.prot > 7) fail(at, fmt::format("mmap protection {:#x} has unknown bits", m.prot));
  if (m.flags & ~trace_map::kAll) fail(at, fmt::format("mmap flags {:#x} have unknown bits", m.flags));
  if (within) {
    m.within = get_map("mmap within");
    m.within_offset = get_varint();
    check_range(*m.within, m.within_offset, m.len, at);
  }
  if (file) {
    m.file = get_u32("file");
    if (*m.file >= files_) fail(at, fmt::format("mmap names file {}, but only {} exist", *m.file, files_));
    m.file_offset = get_varint();
  }
  if (map_len_.size() >= kMaxMaps) fail(at, "too many mappings");
  map_len_.push_back(m.len);
  z_->cursor.resize(map_len_.size() * 2, 0);
  z_->flags.push_back(m.flags);
  return m;
}

std::string TraceReader::get_string(std::uint64_t max, const char* what) {
  const std::uint64_t len = get_varint();
  if (len > max) fail(z_->record_start, fmt::format("{} of {} bytes (at most {})", what, len, max));
  std::string s;
  s.reserve(len);
  for (std::uint64_t k = 0; k < len; ++k) s.push_back(static_cast<char>(get_byte()));
  return s;
}

TraceRecord TraceReader::read_v2(std::uint8_t tag, std::uint64_t at) {
  switch (tag) {
    case kTagBlock: {
      TraceBlock b;
      b.map = get_map("block");
      b.offset = get_varint();
      const std::uint64_t n = get_varint();
      if (n == 0 || n > kMaxBlockInsns) fail(at, fmt::format("block of {} instructions (1 to {})", n, kMaxBlockInsns));
      b.sizes.resize(n);
      std::uint64_t len = 0;
      for (auto& sz : b.sizes) {
        sz = get_byte();
        if (sz == 0) fail(at, "block instruction of size 0");
        len += sz;
      }
      check_range(b.map, b.offset, len, at);
      if (blocks_.size() >= kMaxBlocks) fail(at, "too many blocks");
      blocks_.push_back(std::move(b));
      block_len_.push_back(len);
      z_->pred.define_block();
      return blocks_.back();
    }
    case kTagTime: {
      last_time_ += get_varint();
      return TraceTime{last_time_};
    }
    case kTagThread: {
      // Like a stream switch: the thread has its own program counter.
      cur_map_[0] = cur_map_[1] = ~0u;
      z_->pred.forget();
      return TraceThread{get_u32("thread")};
    }
    case kTagFile: {
      TraceFile f;
      f.size = get_varint();
      f.path = get_string(kMaxPath, "file path");
      ++files_;
      return f;
    }
    case kTagMmapFile:
    case kTagMmapWithinFile: return read_mmap(tag == kTagMmapWithinFile, true, at);
    case kTagExec: {
      TraceExec e;
      const std::uint64_t argc = get_varint();
      if (argc > kMaxArgs) fail(at, fmt::format("exec has {} arguments (at most {})", argc, kMaxArgs));
      for (std::uint64_t i = 0; i < argc; ++i) e.command.push_back(get_string(kMaxArgLen, "exec argument"));
      cur_map_[0] = cur_map_[1] = ~0u;
      z_->pred.forget();
      return e;
    }
    default: break;
  }
  fail(at, fmt::format("unknown record tag {:#x}", tag));
}

TraceContents read_trace_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TraceError::cannot_open(path);
  TraceReader r(in, path);
  TraceContents c;
  c.header = r.header();
  while (auto rec = r.next()) c.records.push_back(std::move(*rec));
  return c;
}

}  // namespace contpte
