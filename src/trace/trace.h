// trace/trace.h — the recorded-program trace file (docs/trace-format.md):
// a zstd-compressed stream holding a versioned header, the recorded command
// line, then records in program order.
//
// Owns: the byte format (tags, varints, delta encoding of access offsets),
// its writer and its reader, and every structural check a trace can fail:
// truncation, corruption, an unknown version, a record that names a mapping
// or stream that does not exist or an offset past its mapping.
// Must not know: how a trace is produced (valgrind) or replayed (mm, MMU).
//
// Addresses are never absolute: a program's mappings are placed by valgrind's
// address-space manager, not the kernel, so every address is a mapping id
// plus an offset, and replay places the mappings as Linux would.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "trace/trace_predict.h"

namespace contpte {

// The version the writer writes by default. The reader reads 1 to 3; an
// older header writes an older file (version 1: no record of version 2 in
// it; version 2: data accesses coded without version 3's prediction).
inline constexpr std::uint32_t kTraceVersion = 3;
inline constexpr std::uint32_t kTraceVersionMin = 1;

// The instruction set of the recorded program (version 2; version 1 traces
// say nothing: Unknown).
enum class TraceIsa : std::uint8_t { Unknown = 0, X86_64 = 1, Aarch64 = 2 };
std::string_view trace_isa_name(TraceIsa isa);  // "x86-64", "aarch64", "unknown"

// Linux's PROT_* bits, as the program passed them.
namespace trace_prot {
inline constexpr std::uint32_t kRead = 1, kWrite = 2, kExec = 4;
}
// The MAP_* facts replay needs (not Linux's bit values: a stable set).
namespace trace_map {
inline constexpr std::uint32_t kShared = 1;     // MAP_SHARED
inline constexpr std::uint32_t kFile = 2;       // backed by a file (fd >= 0, not MAP_ANONYMOUS)
inline constexpr std::uint32_t kFixed = 4;      // MAP_FIXED / MAP_FIXED_NOREPLACE
inline constexpr std::uint32_t kStack = 8;      // MAP_STACK / MAP_GROWSDOWN
inline constexpr std::uint32_t kImplicit = 16;  // not made by a recorded syscall (the loaded image,
                                                // the initial stack): seen first by an access
inline constexpr std::uint32_t kHeap = 32;      // the brk heap
inline constexpr std::uint32_t kAll = 63;
}  // namespace trace_map

// Linux's MADV_* values for the advices replay models; others are kept as
// recorded and ignored by replay.
namespace trace_madv {
inline constexpr std::uint32_t kDontNeed = 4, kFree = 8, kHugepage = 14, kNoHugepage = 15,
                               kPopulateWrite = 23;
}

enum class TraceAccessType : std::uint8_t { Instr, Load, Store, Modify };

// A memory access of `size` bytes at `offset` into mapping `map`.
struct TraceAccess {
  TraceAccessType type = TraceAccessType::Load;
  std::uint32_t map = 0;
  std::uint64_t offset = 0;
  std::uint32_t size = 1;
  friend bool operator==(const TraceAccess&, const TraceAccess&) = default;
};

// A new mapping. Its id is implied: mappings are numbered 0, 1, 2, ... in the
// order they appear in the trace (across all streams). `within`: a fixed
// mapping placed inside an existing one (the dynamic loader maps segments
// into a region it reserved), at `within_offset` from its start.
// `file` (version 2): the TraceFile it maps, from byte `file_offset`.
struct TraceMmap {
  std::uint64_t len = 0;
  std::uint32_t prot = 0;
  std::uint32_t flags = 0;
  std::optional<std::uint32_t> within;
  std::uint64_t within_offset = 0;
  std::optional<std::uint32_t> file;
  std::uint64_t file_offset = 0;
  friend bool operator==(const TraceMmap&, const TraceMmap&) = default;
};

// munmap / mprotect / madvise of [offset, offset + len) of mapping `map`;
// a syscall spanning several mappings is one record per mapping.
struct TraceMunmap {
  std::uint32_t map = 0;
  std::uint64_t offset = 0, len = 0;
  friend bool operator==(const TraceMunmap&, const TraceMunmap&) = default;
};
struct TraceMprotect {
  std::uint32_t map = 0;
  std::uint64_t offset = 0, len = 0;
  std::uint32_t prot = 0;
  friend bool operator==(const TraceMprotect&, const TraceMprotect&) = default;
};
struct TraceMadvise {
  std::uint32_t map = 0;
  std::uint64_t offset = 0, len = 0;
  std::uint32_t advice = 0;
  friend bool operator==(const TraceMadvise&, const TraceMadvise&) = default;
};
// The brk heap `map` (a kHeap mapping) is now `len` bytes long.
struct TraceBrk {
  std::uint32_t map = 0;
  std::uint64_t len = 0;
  friend bool operator==(const TraceBrk&, const TraceBrk&) = default;
};
// mremap of mapping `map` to `new_len` bytes. `moved`: the kernel moved it,
// and the result is a new mapping (the next id); else it grew or shrank in
// place and keeps its id.
struct TraceMremap {
  std::uint32_t map = 0;
  std::uint64_t new_len = 0;
  bool moved = false;
  friend bool operator==(const TraceMremap&, const TraceMremap&) = default;
};
// fork (clone without CLONE_VM): the child's records are stream `child`.
struct TraceFork {
  std::uint32_t child = 0;
  friend bool operator==(const TraceFork&, const TraceFork&) = default;
};
// The current stream's process exits (exit_group, or the end of its log).
struct TraceExit {
  friend bool operator==(const TraceExit&, const TraceExit&) = default;
};
// The following records belong to stream `stream` (0 is the recorded command).
struct TraceStream {
  std::uint32_t stream = 0;
  friend bool operator==(const TraceStream&, const TraceStream&) = default;
};

// ---- version 2 ----
// A basic block of instructions at `offset` in mapping `map`, one after
// another, of the given sizes. Its id is implied (0, 1, 2, ... in trace
// order). Executing it (TraceRunBlock) fetches each instruction in order.
struct TraceBlock {
  std::uint32_t map = 0;
  std::uint64_t offset = 0;
  std::vector<std::uint8_t> sizes;
  friend bool operator==(const TraceBlock&, const TraceBlock&) = default;
};
// Block `block` executes: one fetch access per instruction.
struct TraceRunBlock {
  std::uint32_t block = 0;
  friend bool operator==(const TraceRunBlock&, const TraceRunBlock&) = default;
};
// The recording's monotonic clock: `ns` since the recording started. The
// records of all streams are in time order (docs/trace-format.md).
struct TraceTime {
  std::uint64_t ns = 0;
  friend bool operator==(const TraceTime&, const TraceTime&) = default;
};
// The following records are thread `tid`'s (the recorded thread id) of the
// current stream's process.
struct TraceThread {
  std::uint32_t tid = 0;
  friend bool operator==(const TraceThread&, const TraceThread&) = default;
};
// A file a mapping maps: its size when mapped and its path. Its id is
// implied (0, 1, 2, ... in trace order).
struct TraceFile {
  std::uint64_t size = 0;
  std::string path;
  friend bool operator==(const TraceFile&, const TraceFile&) = default;
};
// execve in the current stream: its address space is replaced by an empty
// one (the new program's mappings follow); `command` is what it ran.
struct TraceExec {
  std::vector<std::string> command;
  friend bool operator==(const TraceExec&, const TraceExec&) = default;
};

using TraceRecord = std::variant<TraceAccess, TraceMmap, TraceMunmap, TraceMprotect, TraceMadvise, TraceBrk,
                                 TraceMremap, TraceFork, TraceExit, TraceStream, TraceBlock, TraceRunBlock,
                                 TraceTime, TraceThread, TraceFile, TraceExec>;

// A trace that cannot be read. `offset`: the byte of the uncompressed stream
// where the bad record starts, or of the compressed file when zstd itself
// failed (`compressed()`).
class TraceError : public std::runtime_error {
 public:
  TraceError(std::string file, std::uint64_t offset, bool compressed, const std::string& message);
  // The file cannot be opened: "FILE: error: cannot open: REASON", the OS's
  // reason for the last failed open (errno).
  static TraceError cannot_open(const std::string& file);
  std::uint64_t offset() const { return offset_; }
  bool compressed() const { return compressed_; }

 private:
  explicit TraceError(const std::string& whole_message);
  std::uint64_t offset_ = 0;
  bool compressed_;
};

struct TraceHeader {
  std::uint32_t version = kTraceVersion;
  std::vector<std::string> command;
  TraceIsa isa = TraceIsa::Unknown;  // version 2
  friend bool operator==(const TraceHeader&, const TraceHeader&) = default;
};

// Totals the end record carries (replay's progress bar knows its length).
struct TraceTotals {
  std::uint64_t records = 0;   // every record but the end record
  std::uint64_t accesses = 0;
};

class TraceWriter {
 public:
  // Throws std::runtime_error when the file cannot be created.
  TraceWriter(std::ostream& out, const TraceHeader& header, int level = 3);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // The caller keeps the ids consistent (the reader checks them):
  // next_map() is the id the next TraceMmap (or moved TraceMremap) gets.
  void write(const TraceRecord& r);
  inline void access(const TraceAccess& a);  // the hot path: no variant, inline
  inline void run_block(std::uint32_t block, std::uint32_t insns);  // ditto; `insns`: the block's size
  // The end record and the zstd frame's end; nothing may follow.
  void finish();

  std::uint32_t next_map() const { return maps_; }
  std::uint32_t next_stream() const { return streams_; }
  std::uint32_t next_block() const { return blocks_; }
  std::uint32_t next_file() const { return files_; }
  const TraceTotals& totals() const { return totals_; }
  std::uint64_t compressed_bytes() const { return compressed_; }

 private:
  struct Zstd;
  void put_byte(std::uint8_t b) { buf_[n_++] = static_cast<char>(b); }
  void put_varint(std::uint64_t v) {
    while (v >= 0x80) {
      buf_[n_++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    buf_[n_++] = static_cast<char>(v);
  }
  // Room for `k` more bytes (fixed-size records always have it: the buffer
  // keeps slack past kChunk).
  void reserve(std::size_t k) {
    if (n_ + k > buf_.size()) buf_.resize(n_ + k);
  }
  void put_bytes(const char* p, std::size_t k);
  void flush_buffer(bool end);
  void write_other(const TraceRecord& r);
  void grow_cursors(std::uint32_t map);

  std::ostream& out_;
  std::unique_ptr<Zstd> z_;
  std::string buf_;  // uncompressed bytes [0, n_) not yet handed to zstd
  std::size_t n_ = 0;
  std::string zout_;
  // The mapping of the previous fetch and of the previous data access (the
  // per-mapping offset cursors are in Zstd).
  std::uint32_t cur_map_[2] = {~0u, ~0u};
  // Per mapping: the fetch and data cursors of the delta coding.
  std::vector<std::uint64_t> cursors_;
  trace_detail::Predictor pred_;  // version 3
  std::uint32_t maps_ = 0;
  std::uint32_t streams_ = 1;
  std::uint32_t blocks_ = 0, files_ = 0;
  std::vector<std::uint32_t> block_insns_;  // instructions of each block
  std::uint64_t last_time_ = 0;
  std::uint32_t version_ = kTraceVersion;
  TraceTotals totals_;
  std::uint64_t compressed_ = 0;
  bool finished_ = false;
};

// Record tags and access-tag bits the inline writer needs
// (docs/trace-format.md).
namespace trace_detail {
inline constexpr std::uint8_t kTagRunBlock = 0x8b, kTagRunNext = 0x92;
inline constexpr std::uint8_t kAccessMapChanged = 0x04;
inline constexpr unsigned kAccessSizeShift = 3;
inline constexpr std::size_t kChunk = 1 << 17;  // uncompressed bytes handed to zstd at once
// Signed deltas as varints: small magnitudes of either sign stay short.
constexpr std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
constexpr std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

// The hot paths write through a local pointer: a store of a char may alias
// any object, so buf_[n_++] would reload buf_'s pointer and n_ for every byte.
inline char* trace_put_varint(char* p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<char>(v);
  return p;
}
}  // namespace trace_detail

void TraceWriter::access(const TraceAccess& a) {
  using namespace trace_detail;
  // Fetches continue where the previous one ended; data accesses are coded
  // against the previous data access of the same mapping, or in version 3
  // against their context's prediction (docs/trace-format.md).
  const unsigned c = a.type == TraceAccessType::Instr ? 0 : 1;
  if (cursors_.size() <= std::size_t{a.map} * 2 + 1) grow_cursors(a.map);
  std::uint64_t& cursor = cursors_[std::size_t{a.map} * 2 + c];
  const bool predict = c == 1 && version_ >= 3;
  Predictor::Context* ctx = predict ? pred_.context() : nullptr;
  const std::uint32_t expected_map = ctx && ctx->map != Predictor::kNone ? ctx->map : cur_map_[c];
  const bool changed = a.map != expected_map;
  const std::uint64_t base = !changed && Predictor::same_map(ctx, a.map) ? ctx->offset + ctx->stride : cursor;
  const std::uint8_t size_code = a.size < 16 ? static_cast<std::uint8_t>(a.size) : 0;
  char* p = buf_.data() + n_;
  *p++ = static_cast<char>(static_cast<unsigned>(a.type) | (changed ? kAccessMapChanged : 0) |
                           (size_code << kAccessSizeShift));
  if (size_code == 0) p = trace_put_varint(p, a.size);
  if (changed) p = trace_put_varint(p, a.map);
  const auto d = static_cast<std::int64_t>(a.offset - base);
  p = trace_put_varint(p, zigzag(d));
  n_ = static_cast<std::size_t>(p - buf_.data());
  if (predict) {
    Predictor::learn(ctx, a.map, a.offset);
    ++pred_.k;
  }
  cur_map_[c] = a.map;
  cursor = c == 0 ? a.offset + a.size : a.offset;
  ++totals_.records;
  ++totals_.accesses;
  if (n_ >= kChunk) flush_buffer(false);
}

void TraceWriter::run_block(std::uint32_t block, std::uint32_t insns) {
  using namespace trace_detail;
  char* p = buf_.data() + n_;
  if (version_ >= 3 && pred_.predicts(block)) {
    *p++ = static_cast<char>(kTagRunNext);
  } else {
    *p++ = static_cast<char>(kTagRunBlock);
    p = trace_put_varint(p, block);
  }
  n_ = static_cast<std::size_t>(p - buf_.data());
  if (version_ >= 3) pred_.run(block);
  ++totals_.records;
  totals_.accesses += insns;
  if (n_ >= kChunk) flush_buffer(false);
}

class TraceReader {
 public:
  // Reads and checks the header; throws TraceError. `name` is for messages.
  TraceReader(std::istream& in, std::string name);
  ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  const TraceHeader& header() const { return header_; }
  // The next record, or nullopt after the end record (then totals() holds
  // the end record's totals, checked against what was read). Throws
  // TraceError on anything malformed or a stream that ends early.
  std::optional<TraceRecord> next();
  // Uncompressed bytes consumed so far, and compressed bytes read from the
  // file so far (for progress).
  std::uint64_t offset() const { return pos_; }
  std::uint64_t compressed_offset() const { return in_pos_; }
  const TraceTotals& totals() const { return totals_; }
  // The current mapping length of `map` (the reader tracks brk and mremap).
  std::uint64_t map_len(std::uint32_t map) const { return map_len_[map]; }
  std::uint32_t maps() const { return static_cast<std::uint32_t>(map_len_.size()); }
  std::uint32_t streams() const { return streams_; }
  // Version 2: the blocks defined so far (their instruction sizes), and the
  // files.
  const TraceBlock& block(std::uint32_t id) const { return blocks_[id]; }
  std::uint32_t blocks() const { return static_cast<std::uint32_t>(blocks_.size()); }

 private:
  struct Zstd;
  [[noreturn]] void fail(std::uint64_t at, const std::string& message) const;
  void check_zstd_magic() const;
  bool refill();  // false at the end of the uncompressed stream
  std::uint8_t get_byte();
  std::uint64_t get_varint();
  std::uint32_t get_u32(const char* what);
  std::uint32_t get_map(const char* what);
  void check_range(std::uint32_t map, std::uint64_t offset, std::uint64_t len, std::uint64_t at);
  TraceRecord read_other(std::uint8_t tag, std::uint64_t at);
  TraceRecord read_v2(std::uint8_t tag, std::uint64_t at);
  TraceMmap read_mmap(bool within, bool file, std::uint64_t at);
  std::string get_string(std::uint64_t max, const char* what);

  std::istream& in_;
  std::string name_;
  std::unique_ptr<Zstd> z_;
  std::string inbuf_, outbuf_;
  std::size_t in_used_ = 0, in_size_ = 0;
  std::size_t out_pos_ = 0, out_size_ = 0;
  std::uint64_t pos_ = 0;       // uncompressed offset of outbuf_[out_pos_]
  std::uint64_t in_pos_ = 0;    // compressed bytes handed to zstd
  bool in_eof_ = false;
  bool frame_done_ = false;
  TraceHeader header_;
  std::uint32_t cur_map_[2] = {~0u, ~0u};
  std::vector<std::uint64_t> map_len_;
  std::uint32_t streams_ = 1;
  std::vector<TraceBlock> blocks_;
  std::vector<std::uint64_t> block_len_;  // bytes of each block's instructions
  std::uint32_t files_ = 0;
  std::uint64_t last_time_ = 0;
  TraceTotals totals_;
  TraceTotals seen_;
  bool ended_ = false;
};

// Reads a whole trace file (tests, small traces); throws TraceError.
struct TraceContents {
  TraceHeader header;
  std::vector<TraceRecord> records;
};
TraceContents read_trace_file(const std::string& path);

std::string_view trace_access_name(TraceAccessType t);

}  // namespace contpte
