#include "trace/trace.h"

#include <gtest/gtest.h>
#include <zstd.h>

#include <random>
#include <sstream>

namespace contpte {
namespace {

std::string write_trace(const TraceHeader& h, const std::vector<TraceRecord>& recs, bool finish = true) {
  std::ostringstream out;
  {
    TraceWriter w(out, h);
    for (const auto& r : recs) w.write(r);
    if (finish) w.finish();
  }
  return out.str();
}

TraceContents read_trace(const std::string& bytes) {
  std::istringstream in(bytes);
  TraceReader r(in, "t.trace");
  TraceContents c;
  c.header = r.header();
  while (auto rec = r.next()) c.records.push_back(*rec);
  return c;
}

// `s` with `bytes` inserted at `at`.
std::string spliced(const std::string& s, std::size_t at, const std::string& bytes) {
  return s.substr(0, at) + bytes + s.substr(at);
}

std::string decompress(const std::string& z) {
  std::string out(ZSTD_DStreamOutSize(), '\0'), all;
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ZSTD_inBuffer in{z.data(), z.size(), 0};
  while (in.pos < in.size) {
    ZSTD_outBuffer o{out.data(), out.size(), 0};
    const std::size_t r = ZSTD_decompressStream(d, &o, &in);
    EXPECT_FALSE(ZSTD_isError(r));
    all.append(out.data(), o.pos);
    if (ZSTD_isError(r)) break;
  }
  ZSTD_freeDCtx(d);
  return all;
}

std::string compress(const std::string& raw) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), 1));
  return out;
}

// One of every record kind, in an order the reader accepts.
std::vector<TraceRecord> every_kind() {
  using namespace trace_map;
  return {
      TraceMmap{0x10000, trace_prot::kRead | trace_prot::kExec, kImplicit, std::nullopt, 0, std::nullopt, 0},
      TraceAccess{TraceAccessType::Instr, 0, 0x100, 4},
      TraceAccess{TraceAccessType::Instr, 0, 0x104, 3},
      TraceMmap{0x200000, trace_prot::kRead | trace_prot::kWrite, 0, std::nullopt, 0, std::nullopt, 0},
      TraceAccess{TraceAccessType::Store, 1, 0x1ffff8, 8},
      TraceAccess{TraceAccessType::Load, 1, 0x10, 32},
      TraceAccess{TraceAccessType::Modify, 1, 0x8, 1},
      TraceMmap{0x1000, trace_prot::kRead, kFixed | kFile, 1u, 0x3000, std::nullopt, 0},
      TraceMprotect{1, 0x1000, 0x1000, 0},
      TraceMadvise{1, 0, 0x100000, trace_madv::kHugepage},
      TraceMunmap{1, 0x100000, 0x100000},
      TraceMmap{0x1000, trace_prot::kRead | trace_prot::kWrite, kHeap, std::nullopt, 0, std::nullopt, 0},
      TraceBrk{3, 0x21000},
      TraceAccess{TraceAccessType::Store, 3, 0x20ff0, 16},
      TraceMremap{1, 0x400000, true},
      TraceMremap{4, 0x300000, false},
      TraceFork{1},
      TraceExit{},
      TraceStream{1},
      TraceAccess{TraceAccessType::Load, 4, 0x2ffff0, 8},
      TraceExit{},
  };
}

TEST(TraceFormat, RoundTripKeepsEveryRecordAndTheCommand) {
  TraceHeader h;
  h.command = {"/bin/echo", "hello world", ""};
  const auto recs = every_kind();
  const auto c = read_trace(write_trace(h, recs));
  EXPECT_EQ(c.header, h);
  ASSERT_EQ(c.records.size(), recs.size());
  for (std::size_t i = 0; i < recs.size(); ++i) EXPECT_EQ(c.records[i], recs[i]) << "record " << i;
}

TEST(TraceFormat, ReaderTracksMappingLengthsAndTotals) {
  std::istringstream in(write_trace({}, every_kind()));
  TraceReader r(in, "t");
  while (r.next()) {
  }
  EXPECT_EQ(r.maps(), 5u);
  EXPECT_EQ(r.map_len(3), 0x21000u);  // brk grew the heap
  EXPECT_EQ(r.map_len(4), 0x300000u);  // shrunk in place after the move
  EXPECT_EQ(r.streams(), 2u);
  EXPECT_EQ(r.totals().accesses, 7u);
  EXPECT_EQ(r.totals().records, every_kind().size());
}

// Random programs: mappings of random sizes and accesses of every type,
// with mostly-sequential fetches and clustered data as real code makes.
std::vector<TraceRecord> random_records(std::mt19937_64& rng, std::size_t n) {
  std::vector<TraceRecord> out;
  std::vector<std::uint64_t> lens;
  std::uint32_t streams = 1;
  std::uint64_t pc = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned what = lens.empty() ? 0 : static_cast<unsigned>(rng() % 20);
    if (what == 0) {
      const std::uint64_t len = (1 + rng() % 512) << 12;
      out.push_back(TraceMmap{len, static_cast<std::uint32_t>(rng() % 8),
                              static_cast<std::uint32_t>(rng() % 64) & ~trace_map::kHeap, std::nullopt, 0, std::nullopt, 0});
      lens.push_back(len);
      continue;
    }
    const auto map = static_cast<std::uint32_t>(rng() % lens.size());
    if (what == 1) {
      const std::uint64_t off = (rng() % lens[map]) & ~0xfffull;
      out.push_back(TraceMunmap{map, off, std::min<std::uint64_t>(lens[map] - off, 0x1000 * (rng() % 4))});
    } else if (what == 2) {
      out.push_back(TraceMremap{map, (1 + rng() % 64) << 12, rng() % 2 == 0});
      if (std::get<TraceMremap>(out.back()).moved)
        lens.push_back(std::get<TraceMremap>(out.back()).new_len);
      else
        lens[map] = std::get<TraceMremap>(out.back()).new_len;
    } else if (what == 3 && rng() % 4 == 0) {
      out.push_back(TraceFork{streams++});
    } else if (what == 4 && rng() % 4 == 0) {
      out.push_back(TraceStream{static_cast<std::uint32_t>(rng() % streams)});
    } else {
      const auto type = static_cast<TraceAccessType>(rng() % 4);
      const std::uint32_t size = rng() % 3 == 0 ? 1 + static_cast<std::uint32_t>(rng() % 64) : 8;
      if (lens[map] < size) continue;
      std::uint64_t off = rng() % (lens[map] - size + 1);
      if (type == TraceAccessType::Instr) off = pc = std::min(pc + 4, lens[map] - size);
      out.push_back(TraceAccess{type, map, off, size});
    }
  }
  return out;
}

TEST(TraceFormat, PropertyRandomRecordsRoundTrip) {
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 50; ++iter) {
    const auto recs = random_records(rng, 2000);
    TraceHeader h;
    h.command = {"prog", std::to_string(iter)};
    const auto c = read_trace(write_trace(h, recs));
    ASSERT_EQ(c.records.size(), recs.size()) << "iteration " << iter;
    for (std::size_t i = 0; i < recs.size(); ++i) ASSERT_EQ(c.records[i], recs[i]) << iter << ":" << i;
  }
}

TEST(TraceFormat, SequentialAccessesCompactToUnderAByteEach) {
  std::vector<TraceRecord> recs{TraceMmap{1 << 20, 7, 0, std::nullopt, 0, std::nullopt, 0}};
  std::mt19937_64 rng(1);
  for (std::uint64_t i = 0; i < 200000; ++i) {
    recs.push_back(TraceAccess{TraceAccessType::Instr, 0, (i * 4) % (1 << 19), 4});
    if (i % 3 == 0) recs.push_back(TraceAccess{TraceAccessType::Load, 0, (1 << 19) + (rng() % 4096) * 8, 8});
  }
  const std::string bytes = write_trace({}, recs);
  EXPECT_LT(double(bytes.size()) / double(recs.size()), 1.0);
}

// Expects a TraceError whose message names `what`, at `offset`.
void expect_error(const std::string& bytes, const std::string& what, std::optional<std::uint64_t> offset = {}) {
  try {
    read_trace(bytes);
    ADD_FAILURE() << "no error; expected one about '" << what << "'";
  } catch (const TraceError& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("t.trace: error: at"), std::string::npos) << e.what();
    if (offset) {
      EXPECT_EQ(e.offset(), *offset) << e.what();
    }
  }
}

TEST(TraceFormat, ErrorsNameTheProblemAndTheOffset) {
  const std::string good = write_trace({}, every_kind());
  std::string raw = decompress(good);
  // Not zstd at all; empty.
  expect_error("hello, world", "zstd");
  expect_error("", "empty");
  // Truncated compressed stream.
  expect_error(good.substr(0, good.size() / 2), "truncated");
  expect_error(good.substr(0, good.size() - 1), "truncated");
  // Writer dropped without finish(): the frame never ends.
  expect_error(write_trace({}, every_kind(), false), "truncated");
  // Wrong magic, wrong version (byte 8 is the version varint).
  {
    std::string r = raw;
    r[0] = 'X';
    expect_error(compress(r), "bad magic", 0);
    r = raw;
    r[8] = 4;
    expect_error(compress(r), "version 4 is not supported", 8);
    r[8] = 0;
    expect_error(compress(r), "version 0 is not supported", 8);
  }
  // The uncompressed stream ends inside the last record.
  expect_error(compress(raw.substr(0, raw.size() - 1)), "truncated: the trace ends inside a record");
  // Without the end record.
  expect_error(compress(raw.substr(0, raw.size() - 3)), "truncated");
  // Garbage after the end record.
  expect_error(compress(raw + "x"), "after the end record");
  // A compressed file followed by more data.
  expect_error(good + good, "after the end");
}

TEST(TraceFormat, BadRecordsAreRejectedAtTheirOffset) {
  TraceHeader h;  // no command: records start at byte 11 (magic, version, isa, argc)
  const std::uint64_t first = 11;
  auto payload = [&](std::vector<TraceRecord> recs) { return decompress(write_trace(h, recs, true)); };
  // An access before any mapping: tag 0x05 = load, map changed, map 0.
  {
    std::string r = decompress(write_trace(h, {}, true));
    r = spliced(r, first, std::string("\x0d\x00\x00", 3));  // load size 1, map 0, delta 0
    expect_error(compress(r), "names mapping 0, but only 0 exist", first);
  }
  // An access past the end of its mapping.
  {
    std::string r = payload({TraceMmap{0x1000, 3, 0, std::nullopt, 0, std::nullopt, 0}});
    const std::uint64_t at = r.size() - 3;  // the end record: 0xff, records=1, accesses=0
    r = spliced(r, at, std::string("\x45\x00\x80\x40", 4));  // load size 8, map 0, offset 0x1000 (zigzag 0x2000)
    expect_error(compress(r), "past the end of mapping 0", at);
  }
  // Unknown tag.
  {
    std::string r = payload({});
    r = spliced(r, first, "\x93");
    expect_error(compress(r), "unknown record tag 0x93", first);
  }
  // Counts in the end record disagree.
  {
    std::string r = payload({TraceMmap{0x1000, 3, 0, std::nullopt, 0, std::nullopt, 0}});
    r[r.size() - 2] = 5;
    expect_error(compress(r), "end record counts 5 records");
  }
  // A fork that skips a stream id; a switch to a stream that does not exist.
  expect_error(compress(payload({TraceFork{2}})), "fork makes stream 2, expected 1", first);
  expect_error(compress(payload({TraceStream{1}})), "stream 1 does not exist", first);
  // brk of a mapping that is not the heap.
  expect_error(compress(payload({TraceMmap{0x1000, 3, 0, std::nullopt, 0, std::nullopt, 0}, TraceBrk{0, 0x2000}})), "not the heap");
}

// Random byte flips and truncations, of the compressed file and of the
// uncompressed stream: an error or a valid parse, never a crash or a hang
// (run under ASan in CI).
TEST(TraceFormat, FuzzedTracesGiveAnErrorOrAValidParse) {
  std::mt19937_64 rng(99);
  TraceHeader h;
  h.command = {"fuzz", "me"};
  const std::string good = write_trace(h, random_records(rng, 400));
  const std::string raw = decompress(good);
  unsigned errors = 0, parses = 0;
  for (int iter = 0; iter < 600; ++iter) {
    const bool compressed_side = iter % 2 == 0;
    std::string b = compressed_side ? good : raw;
    const unsigned flips = 1 + static_cast<unsigned>(rng() % 4);
    for (unsigned f = 0; f < flips; ++f) b[rng() % b.size()] ^= static_cast<char>(1u << (rng() % 8));
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    // Early bytes hold the header: bias some flips there.
    if (rng() % 4 == 0 && !compressed_side) b[rng() % std::min<std::size_t>(b.size(), 16)] ^= 0x7f;
    try {
      read_trace(compressed_side ? b : compress(b));
      ++parses;
    } catch (const TraceError& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find("error: at"), std::string::npos);
    }
  }
  EXPECT_GT(errors, 300u);  // the checksum catches nearly every flip of the compressed file
}

// Version 2's records: blocks and their runs, time, threads, files, file
// mappings, exec; the header's ISA.
std::vector<TraceRecord> every_v2_kind() {
  using namespace trace_map;
  return {
      TraceFile{123456, "/usr/lib/x86_64-linux-gnu/libc.so.6"},
      TraceMmap{0x10000, trace_prot::kRead | trace_prot::kExec, kFile, std::nullopt, 0, 0u, 0x2000},
      TraceTime{1000},
      TraceThread{4242},
      TraceBlock{0, 0x100, {4, 3, 5}},
      TraceRunBlock{0},
      TraceAccess{TraceAccessType::Load, 0, 0x10, 8},
      TraceBlock{0, 0x10c, {2}},
      TraceRunBlock{1},
      TraceRunBlock{0},
      TraceTime{1000},
      TraceTime{250000},
      TraceMmap{0x1000, trace_prot::kRead, kFixed | kFile, 0u, 0x3000, 0u, 0x5000},
      TraceExec{{"/bin/sh", "-c", "true"}},
      TraceExit{},
  };
}

TEST(TraceFormat, Version2RecordsRoundTrip) {
  TraceHeader h;
  h.command = {"prog"};
  h.isa = TraceIsa::Aarch64;
  const auto recs = every_v2_kind();
  std::istringstream in(write_trace(h, recs));
  TraceReader r(in, "t.trace");
  EXPECT_EQ(r.header(), h);
  std::vector<TraceRecord> got;
  while (auto rec = r.next()) got.push_back(*rec);
  ASSERT_EQ(got.size(), recs.size());
  for (std::size_t i = 0; i < recs.size(); ++i) EXPECT_EQ(got[i], recs[i]) << "record " << i;
  // A block run is one access per instruction.
  EXPECT_EQ(r.totals().accesses, 3u + 1 + 1 + 3);
  EXPECT_EQ(trace_isa_name(r.header().isa), "aarch64");
}

TEST(TraceFormat, Version2RecordsAreRejectedInVersion1) {
  TraceHeader h;
  h.version = 1;
  std::ostringstream out;
  TraceWriter w(out, h);
  EXPECT_THROW(w.write(TraceTime{5}), std::logic_error);
  // A version-1 stream holding a version-2 tag: an error naming it.
  std::string raw = decompress(write_trace(h, {}));
  raw = spliced(raw, 10, "\x8c\x05");
  expect_error(compress(raw), "record tag 0x8c is not in trace format version 1", 10);
}

TEST(TraceFormat, Version2BadRecordsNameTheProblem) {
  TraceHeader h;
  auto raw_of = [&](std::vector<TraceRecord> recs) { return decompress(write_trace(h, recs)); };
  // A run of a block that was never defined.
  {
    std::string r = raw_of({});
    r = spliced(r, 11, std::string("\x8b\x00", 2));
    expect_error(compress(r), "runs block 0, but only 0 exist", 11);
  }
  // A block past its mapping's end.
  {
    std::string r = raw_of({TraceMmap{0x1000, 5, 0, std::nullopt, 0, std::nullopt, 0}});
    const std::uint64_t at = r.size() - 3;
    r = spliced(r, at, std::string("\x8a\x00\xfe\x1f\x01\x04", 6));  // map 0, offset 0xffe, 1 insn of 4
    expect_error(compress(r), "past the end of mapping 0", at);
  }
  // A mapping of a file that was not defined.
  {
    std::string r = raw_of({});
    r = spliced(r, 11, std::string("\x8f\x80\x20\x01\x02\x00\x00", 7));
    expect_error(compress(r), "mmap names file 0, but only 0 exist", 11);
  }
  // An unknown ISA in the header (byte 9).
  {
    std::string r = raw_of({});
    r[9] = 7;
    expect_error(compress(r), "unknown ISA 7", 9);
  }
}

// A version-1 file written by the version-1 recorder (tests/data/trace/
// v1-fork.trace, kept as it was) still reads and replays.
TEST(TraceFormat, Version1FileStillReads) {
  const TraceContents c = read_trace_file(CONTPTE_SOURCE_DIR "/tests/data/trace/v1-fork.trace");
  EXPECT_EQ(c.header.version, 1u);
  EXPECT_EQ(c.header.isa, TraceIsa::Unknown);
  EXPECT_EQ(c.header.command, (std::vector<std::string>{"v1", "fork"}));
  const auto recs = every_kind();
  ASSERT_EQ(c.records.size(), recs.size());
  for (std::size_t i = 0; i < recs.size(); ++i) EXPECT_EQ(c.records[i], recs[i]) << "record " << i;
}

// A version-2 file written by the version-2 writer (tests/data/trace/
// v2-loop.trace, kept as it was): it still reads after version 3.
TEST(TraceFormat, Version2FileStillReads) {
  using namespace trace_map;
  const TraceContents c = read_trace_file(CONTPTE_SOURCE_DIR "/tests/data/trace/v2-loop.trace");
  EXPECT_EQ(c.header.version, 2u);
  EXPECT_EQ(c.header.isa, TraceIsa::X86_64);
  EXPECT_EQ(c.header.command, (std::vector<std::string>{"v2", "loop"}));
  const std::vector<TraceRecord> want{
      TraceFile{123456, "/usr/lib/x86_64-linux-gnu/libc.so.6"},
      TraceMmap{0x10000, trace_prot::kRead | trace_prot::kExec, kFile, std::nullopt, 0, 0u, 0x2000},
      TraceMmap{0x10000, trace_prot::kRead | trace_prot::kWrite, 0, std::nullopt, 0, std::nullopt, 0},
      TraceTime{1000},
      TraceThread{4242},
      TraceBlock{0, 0x100, {4, 3, 5}},
      TraceRunBlock{0},
      TraceAccess{TraceAccessType::Load, 1, 0x10, 8},
      TraceAccess{TraceAccessType::Store, 1, 0x800, 4},
      TraceRunBlock{0},
      TraceAccess{TraceAccessType::Load, 1, 0x18, 8},
      TraceAccess{TraceAccessType::Store, 1, 0x804, 4},
      TraceRunBlock{0},
      TraceAccess{TraceAccessType::Load, 1, 0x20, 8},
      TraceAccess{TraceAccessType::Store, 1, 0x808, 4},
      TraceExit{},
  };
  ASSERT_EQ(c.records.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(c.records[i], want[i]) << "record " << i;
}

// Programs of blocks: loops whose data accesses stride (what version 3
// predicts), mixed with random accesses, other mappings, fetches of their
// own (valgrind's), threads, forks and stream switches (which forget the
// prediction).
std::vector<TraceRecord> random_block_program(std::mt19937_64& rng, std::size_t n) {
  constexpr std::uint64_t kLen = 1 << 20;
  std::vector<TraceRecord> out;
  for (int m = 0; m < 3; ++m) out.push_back(TraceMmap{kLen, 7, 0, std::nullopt, 0, std::nullopt, 0});
  struct Slot {
    TraceAccessType type;
    std::uint32_t map, size;
    std::uint64_t at;
    std::int64_t stride;
  };
  std::vector<std::vector<Slot>> blocks;
  std::uint32_t streams = 1;
  std::size_t cur = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned what = static_cast<unsigned>(rng() % 100);
    if (blocks.empty() || what < 3) {
      out.push_back(TraceBlock{0, (rng() % 4096) * 4, std::vector<std::uint8_t>(1 + rng() % 6, 4)});
      std::vector<Slot> slots(rng() % 20);
      for (auto& sl : slots)
        sl = Slot{static_cast<TraceAccessType>(1 + rng() % 3), static_cast<std::uint32_t>(rng() % 3),
                  static_cast<std::uint32_t>(1u << (rng() % 5)), (rng() % 1024) * 64,
                  static_cast<std::int64_t>(rng() % 5) * 8 - 16};
      blocks.push_back(std::move(slots));
      continue;
    }
    if (what < 5) {
      out.push_back(TraceFork{streams++});
    } else if (what < 8) {
      out.push_back(TraceStream{static_cast<std::uint32_t>(rng() % streams)});
    } else if (what < 10) {
      out.push_back(TraceThread{static_cast<std::uint32_t>(1 + rng() % 3)});
    } else if (what < 12) {
      out.push_back(TraceAccess{TraceAccessType::Instr, 0, (rng() % 1000) * 4, 4});
    } else {
      // Mostly the next block in a cycle, sometimes another.
      cur = rng() % 8 == 0 ? rng() % blocks.size() : (cur + 1) % blocks.size();
      out.push_back(TraceRunBlock{static_cast<std::uint32_t>(cur)});
      for (auto& sl : blocks[cur]) {
        if (rng() % 16 == 0) sl.map = static_cast<std::uint32_t>(rng() % 3);
        sl.at = rng() % 32 == 0 ? (rng() % 1024) * 64
                                : (sl.at + static_cast<std::uint64_t>(sl.stride)) % (kLen - 64);
        out.push_back(TraceAccess{sl.type, sl.map, sl.at, sl.size});
      }
    }
  }
  return out;
}

// Version 3 codes data accesses against a prediction and may name the
// next block implicitly: every record reads back as written, in versions
// 2 and 3 alike, and the prediction makes strided loops smaller.
TEST(TraceFormat, PropertyVersion3ReadsBackAsVersion2) {
  std::mt19937_64 rng(23);
  for (int iter = 0; iter < 30; ++iter) {
    const auto recs = random_block_program(rng, 3000);
    for (std::uint32_t version : {2u, 3u}) {
      TraceHeader h;
      h.version = version;
      const auto c = read_trace(write_trace(h, recs));
      ASSERT_EQ(c.header.version, version);
      ASSERT_EQ(c.records.size(), recs.size()) << "iteration " << iter;
      for (std::size_t i = 0; i < recs.size(); ++i)
        ASSERT_EQ(c.records[i], recs[i]) << "version " << version << ", iteration " << iter << ", record " << i;
    }
  }
  // A loop striding through two arrays: before compression, version 3
  // codes an iteration in 5 bytes (the next block, then per access its tag
  // and a zero), version 2 in 10 (the block's id; offsets against the
  // mapping's previous data access, 2 bytes away).
  std::vector<TraceRecord> loop{TraceMmap{1 << 20, 7, 0, std::nullopt, 0, std::nullopt, 0},
                                TraceBlock{0, 0, {4, 4, 4}}};
  for (std::uint64_t i = 0; i < 10000; ++i) {
    loop.push_back(TraceRunBlock{0});
    loop.push_back(TraceAccess{TraceAccessType::Load, 0, 0x1000 + i * 8, 8});
    loop.push_back(TraceAccess{TraceAccessType::Store, 0, 0x80000 + i * 8, 8});
  }
  TraceHeader v2;
  v2.version = 2;
  const std::size_t raw2 = decompress(write_trace(v2, loop)).size(), raw3 = decompress(write_trace({}, loop)).size();
  EXPECT_LT(raw3, 10000u * 5 + 100) << raw3 << " vs " << raw2;
  EXPECT_GT(raw2, 10000u * 9) << raw3 << " vs " << raw2;
}

TEST(TraceFormat, Version3BadRecordsNameTheProblem) {
  TraceHeader h;
  // "Run the next block" with no block run before it in this thread.
  {
    std::string r = decompress(write_trace(h, {}));
    r = spliced(r, 11, "\x92");
    expect_error(compress(r), "runs the next block, but no block ran before it", 11);
  }
  // ... nor after a thread switch (which forgets the previous block).
  {
    std::string r = decompress(write_trace(h, {TraceMmap{0x1000, 5, 0, std::nullopt, 0, std::nullopt, 0},
                                               TraceBlock{0, 0, {4}}, TraceRunBlock{0}, TraceRunBlock{0},
                                               TraceThread{7}}));
    const std::uint64_t at = r.size() - 3;
    r = spliced(r, at, "\x92");
    expect_error(compress(r), "runs the next block, but no block ran before it", at);
  }
  // Version 3's tag in a version-2 file.
  {
    TraceHeader v2;
    v2.version = 2;
    std::string r = decompress(write_trace(v2, {}));
    r = spliced(r, 11, "\x92");
    expect_error(compress(r), "record tag 0x92 is not in trace format version 2", 11);
  }
}

}  // namespace
}  // namespace contpte
