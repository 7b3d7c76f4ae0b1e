#include "trace/record.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "trace/replay.h"

namespace contpte {
namespace {

using A = TraceAccessType;

// Converts a canned valgrind log; `children` by pid.
TraceContents convert(const std::string& log, const std::map<long, std::string>& children = {},
                      RecordResult* res = nullptr) {
  std::ostringstream out;
  TraceWriter w(out, TraceHeader{kTraceVersion, {"prog"}});
  std::istringstream in(log);
  const RecordResult r = convert_log(in, w, [&](long pid) -> std::unique_ptr<std::istream> {
    auto it = children.find(pid);
    if (it == children.end()) return nullptr;
    return std::make_unique<std::istringstream>(it->second);
  });
  if (res) *res = r;
  std::istringstream back(out.str());
  TraceReader rd(back, "converted");
  TraceContents c;
  c.header = rd.header();
  while (auto rec = rd.next()) c.records.push_back(*rec);
  return c;
}

template <class T>
std::vector<T> all(const TraceContents& c) {
  std::vector<T> v;
  for (const auto& r : c.records)
    if (const auto* x = std::get_if<T>(&r)) v.push_back(*x);
  return v;
}

TEST(RecordParser, AccessesBecomeMappingRelative) {
  const auto c = convert(
      "==1== Lackey, an example Valgrind tool\n"
      "I  04001000,3\n"
      " L 04001ff8,8\n"
      "SYSCALL[1,1](9) sys_mmap ( 0x0, 8192, 3, 34, 4294967295, 0 ) --> [pre-success] Success(0x4835000) \n"
      " S 04836000,8\n"
      " M 04835010,4\n"
      "I  04001003,2\n");
  const auto maps = all<TraceMmap>(c);
  ASSERT_EQ(maps.size(), 2u);
  // The loader's text: an implicit 2 MiB window, seen first by a fetch.
  EXPECT_EQ(maps[0], (TraceMmap{2 << 20, 7, trace_map::kImplicit, std::nullopt, 0, std::nullopt, 0}));
  EXPECT_EQ(maps[1], (TraceMmap{8192, 3, 0, std::nullopt, 0, std::nullopt, 0}));
  const auto acc = all<TraceAccess>(c);
  ASSERT_EQ(acc.size(), 5u);
  EXPECT_EQ(acc[0], (TraceAccess{A::Instr, 0, 0x1000, 3}));
  EXPECT_EQ(acc[1], (TraceAccess{A::Load, 0, 0x1ff8, 8}));
  EXPECT_EQ(acc[2], (TraceAccess{A::Store, 1, 0x1000, 8}));
  EXPECT_EQ(acc[3], (TraceAccess{A::Modify, 1, 0x10, 4}));
  EXPECT_EQ(acc[4], (TraceAccess{A::Instr, 0, 0x1003, 2}));
  EXPECT_EQ(c.header.command, std::vector<std::string>{"prog"});
}

TEST(RecordParser, SyscallsSplitPerMappingAndAsyncResultsComplete) {
  const auto c = convert(
      "SYSCALL[1,1](9) sys_mmap ( 0x0, 8192, 3, 34, 4294967295, 0 ) --> [pre-success] Success(0x10000) \n"
      "SYSCALL[1,1](9) sys_mmap ( 0x0, 4096, 1, 2, 4, 0 ) --> [pre-success] Success(0x12000) \n"
      // mprotect across both mappings: one record each.
      "SYSCALL[1,1](10) sys_mprotect ( 0x11000, 8192, 0 )[sync] --> Success(0x0) \n"
      "SYSCALL[1,1](28) sys_madvise ( 0x10000, 4096, 4 ) --> [async] ... \n"
      " S 00010008,8\n"
      "SYSCALL[1,1](28) ... [async] --> Success(0x0) \n"
      // A failed call changes nothing.
      "SYSCALL[1,1](11) sys_munmap ( 0x10000, 4096 )[sync] --> Failure(0x16) \n"
      "SYSCALL[1,1](11) sys_munmap ( 0x11000, 8192 )[sync] --> Success(0x0) \n");
  const auto maps = all<TraceMmap>(c);
  ASSERT_EQ(maps.size(), 2u);
  EXPECT_EQ(maps[1].flags, trace_map::kFile);
  EXPECT_EQ(all<TraceMprotect>(c),
            (std::vector<TraceMprotect>{{0, 0x1000, 0x1000, 0}, {1, 0, 0x1000, 0}}));
  EXPECT_EQ(all<TraceMadvise>(c), (std::vector<TraceMadvise>{{0, 0, 0x1000, 4}}));
  EXPECT_EQ(all<TraceMunmap>(c), (std::vector<TraceMunmap>{{0, 0x1000, 0x1000}, {1, 0, 0x1000}}));
  // The madvise completed after the store: records keep program order.
  std::size_t store = 0, madv = 0;
  for (std::size_t i = 0; i < c.records.size(); ++i) {
    if (std::holds_alternative<TraceAccess>(c.records[i])) store = i;
    if (std::holds_alternative<TraceMadvise>(c.records[i])) madv = i;
  }
  EXPECT_LT(store, madv);
}

TEST(RecordParser, LoaderSegmentsStayInsideTheirReservation) {
  const auto c = convert(
      "SYSCALL[1,1](9) sys_mmap ( 0x0, 1974096, 1, 2050, 4, 0 ) --> [pre-success] Success(0x4847000) \n"
      "SYSCALL[1,1](9) sys_mmap ( 0x486d000, 1400832, 5, 2066, 4, 155648 ) --> [pre-success] Success(0x486d000) \n"
      "I  0486d010,4\n");
  const auto maps = all<TraceMmap>(c);
  ASSERT_EQ(maps.size(), 2u);
  ASSERT_TRUE(maps[1].within.has_value());
  EXPECT_EQ(*maps[1].within, 0u);
  EXPECT_EQ(maps[1].within_offset, 0x26000u);
  EXPECT_EQ(maps[1].flags, trace_map::kFile | trace_map::kFixed);
  EXPECT_EQ(all<TraceAccess>(c), (std::vector<TraceAccess>{{A::Instr, 1, 0x10, 4}}));
}

TEST(RecordParser, BrkMremapAndFork) {
  RecordResult res;
  const auto c = convert(
      "SYSCALL[1,1](12) sys_brk ( 0x0 ) --> [pre-success] Success(0x4035000) \n"
      "SYSCALL[1,1](12) sys_brk ( 0x4045000 ) --> [pre-success] Success(0x4045000) \n"
      " S 04044ff8,8\n"
      "SYSCALL[1,1](12) sys_brk ( 0x4056100 ) --> [pre-success] Success(0x4056100) \n"
      "SYSCALL[1,1](9) sys_mmap ( 0x0, 524288, 3, 34, 4294967295, 0 ) --> [pre-success] Success(0x4a2c000) \n"
      "SYSCALL[1,1](25) sys_mremap ( 0x4a2c000, 524288, 2097152, 0x1 ) --> [pre-success] Success(0x4a2c000) \n"
      "SYSCALL[1,1](25) sys_mremap ( 0x4a2c000, 2097152, 4194304, 0x1 ) --> [pre-success] Success(0x5000000) \n"
      // A thread (CLONE_VM) shares the stream; a fork gets its own.
      "SYSCALL[1,1](56) sys_clone ( 3d0f00, 0x0, 0x0, 0x0, 0x0 ) --> [pre-success] Success(0x3) \n"
      "SYSCALL[1,1](56) sys_clone ( 1200011, 0x0, 0x0, 0x4a29a10, 0x0 )   clone(fork): process 1 created child 2\n"
      " --> [pre-success] Success(0x2) \n"
      " S 05000000,8\n"
      "SYSCALL[1,1](231) exit_group( 0 ) --> [pre-success] Success(0x0) \n",
      {{2, "==2== \n --> [pre-success] Success(0x0) \n S 05000008,8\n S 04035000,8\n"}}, &res);
  const auto maps = all<TraceMmap>(c);
  ASSERT_EQ(maps.size(), 2u);
  EXPECT_EQ(maps[0], (TraceMmap{0x10000, 3, trace_map::kHeap, std::nullopt, 0, std::nullopt, 0}));
  EXPECT_EQ(all<TraceBrk>(c), (std::vector<TraceBrk>{{0, 0x22000}}));
  EXPECT_EQ(all<TraceMremap>(c), (std::vector<TraceMremap>{{1, 2 << 20, false}, {1, 4 << 20, true}}));
  EXPECT_EQ(all<TraceFork>(c), (std::vector<TraceFork>{{1}}));
  EXPECT_EQ(all<TraceStream>(c), (std::vector<TraceStream>{{1}}));
  EXPECT_EQ(all<TraceExit>(c).size(), 2u);
  // Parent then child, each relative to the mapping they inherited.
  EXPECT_EQ(all<TraceAccess>(c), (std::vector<TraceAccess>{{A::Store, 0, 0xfff8, 8},
                                                            {A::Store, 2, 0, 8},
                                                            {A::Store, 2, 8, 8},
                                                            {A::Store, 0, 0, 8}}));
  EXPECT_EQ(res.streams, 2u);
  EXPECT_EQ(res.unparsed_lines, 0u);
}

TEST(RecordParser, AnotherThreadsOutputMayFollowASyscallOnItsLine) {
  RecordResult res;
  const auto c = convert(
      "SYSCALL[1,1](9) sys_mmap ( 0x0, 8192, 3, 34, 4294967295, 0 ) --> [pre-success] Success(0x10000) \n"
      "SYSCALL[1,1](28) sys_madvise ( 0x10000, 4096, 4 ) --> [async] ... \n"
      "SYSCALL[1,1](56) sys_clone ( 3d0f00, 0x0, 0x0, 0x0, 0x0 ) --> [pre-success] Success(0xe9b) I  00010010,3\n"
      "SYSCALL[1,1](56) sys_clone ( 3d0f00, 0x0 ) --> [pre-success] Success(0xea8)  S 00010020,8\n"
      "SYSCALL[1,1](56) sys_clone ( 3d0f00 ) --> [pre-success] Success(0xeec) SYSCALL[1,2](28) ... [async] --> "
      "Success(0x0) \n"
      // vfork has CLONE_VM, but valgrind runs it as a fork.
      "SYSCALL[1,1](56) sys_clone ( 4111, 0x4844ff0, 0x0, 0x0, 0x0 )   clone(fork): process 1 created child 7\n"
      " --> [pre-success] Success(0x7) \n",
      {}, &res);
  EXPECT_EQ(all<TraceAccess>(c), (std::vector<TraceAccess>{{A::Instr, 0, 0x10, 3}, {A::Store, 0, 0x20, 8}}));
  EXPECT_TRUE(all<TraceMadvise>(c).empty());  // thread 1's madvise is still pending; thread 2 had none
  EXPECT_EQ(all<TraceFork>(c).size(), 1u);
  EXPECT_EQ(res.streams, 2u);
  EXPECT_EQ(res.unparsed_lines, 0u);
}

// The whole path: a real program under valgrind, recorded and replayed.
TEST(Record, SmallProgramRecordsAndReplaysClean) {
  if (!program_in_path("valgrind")) GTEST_SKIP() << "valgrind is not installed (scripts/install-deps.sh)";
  const auto path = std::filesystem::temp_directory_path() / ("contpte_record_test-" + std::to_string(::getpid()) + ".trace");
  RecordOptions o;
  o.recorder = Recorder::Valgrind;
  const RecordResult r = record_command({CONTPTE_RECORD_HELPER}, path.string(), o);
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_EQ(r.streams, 2u);  // the helper forks once
  EXPECT_GT(r.totals.accesses, 10000u);
  const TraceContents c = read_trace_file(path.string());
  EXPECT_EQ(c.header.command, std::vector<std::string>{CONTPTE_RECORD_HELPER});
  // The helper's own calls are all there.
  bool mmap_1m = false;
  for (const auto& m : all<TraceMmap>(c)) mmap_1m |= m.len == (1 << 20) && m.flags == 0;
  EXPECT_TRUE(mmap_1m);
  bool dontneed = false;
  for (const auto& m : all<TraceMadvise>(c)) dontneed |= m.advice == trace_madv::kDontNeed && m.len == (1 << 19);
  EXPECT_TRUE(dontneed);
  EXPECT_FALSE(all<TraceMprotect>(c).empty());
  EXPECT_FALSE(all<TraceMunmap>(c).empty());
  EXPECT_FALSE(all<TraceMremap>(c).empty());
  bool heap = false;
  for (const auto& m : all<TraceMmap>(c)) heap |= (m.flags & trace_map::kHeap) != 0;
  EXPECT_TRUE(heap);  // made by the first sbrk, grown by the second
  EXPECT_FALSE(all<TraceBrk>(c).empty());
  EXPECT_EQ(all<TraceFork>(c).size(), 1u);
  const RunResult run = replay_records(c, *find_config("contpte-64k"), {});
  EXPECT_EQ(run.stat("replay_unresolved_accesses"), 0);
  EXPECT_EQ(run.stat("replay_failed_mmaps"), 0);
  EXPECT_GE(run.stat("faults_cow"), 1);  // the child's writes after fork
  EXPECT_EQ(run.exit_status(), 0);
  std::filesystem::remove(path);
}

TEST(Record, MissingValgrindIsAnError) {
  RecordOptions o;
  o.recorder = Recorder::Valgrind;
  o.valgrind = "contpte-no-such-valgrind";
  EXPECT_THROW(record_command({"/bin/true"}, "/dev/null", o), RecordError);
}

// The QEMU recorder (plugins/qemu/): the same program, the same system
// calls, and the instruction stream as blocks.
RecordOptions qemu_options() {
  RecordOptions o;
  o.recorder = Recorder::Qemu;
  o.qemu_plugin = CONTPTE_QEMU_PLUGIN_FILE;
  return o;
}

TEST(RecordQemu, SmallProgramRecordsAndReplaysClean) {
  if (const std::string why = qemu_unavailable(qemu_options()); !why.empty()) GTEST_SKIP() << why;
  const auto path = std::filesystem::temp_directory_path() / ("contpte_record_qemu_test-" + std::to_string(::getpid()) + ".trace");
  const RecordResult r = record_command({CONTPTE_RECORD_HELPER}, path.string(), qemu_options());
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_EQ(r.unparsed_lines, 0u);
  EXPECT_EQ(r.streams, 2u);  // the helper forks once
  EXPECT_GT(r.totals.accesses, 10000u);
  const TraceContents c = read_trace_file(path.string());
  EXPECT_EQ(c.header.version, kTraceVersion);
  EXPECT_EQ(c.header.isa, TraceIsa::X86_64);
  EXPECT_EQ(c.header.command, std::vector<std::string>{CONTPTE_RECORD_HELPER});
  bool mmap_1m = false;
  for (const auto& m : all<TraceMmap>(c)) mmap_1m |= m.len == (1 << 20) && m.flags == 0;
  EXPECT_TRUE(mmap_1m);
  bool dontneed = false;
  for (const auto& m : all<TraceMadvise>(c)) dontneed |= m.advice == trace_madv::kDontNeed && m.len == (1 << 19);
  EXPECT_TRUE(dontneed);
  EXPECT_FALSE(all<TraceMprotect>(c).empty());
  EXPECT_FALSE(all<TraceMunmap>(c).empty());
  EXPECT_FALSE(all<TraceMremap>(c).empty());
  EXPECT_FALSE(all<TraceBrk>(c).empty());
  EXPECT_EQ(all<TraceFork>(c).size(), 1u);
  // Version 2: fetches come as blocks; the loader's file mappings name
  // their files (libc); time never goes backwards.
  EXPECT_FALSE(all<TraceBlock>(c).empty());
  EXPECT_GT(all<TraceRunBlock>(c).size(), 1000u);
  EXPECT_TRUE(all<TraceAccess>(c).size() > 1000u);
  bool libc = false;
  for (const auto& f : all<TraceFile>(c)) libc |= f.path.find("libc.so") != std::string::npos && f.size > 0;
  EXPECT_TRUE(libc);
  std::uint64_t t = 0;
  for (const auto& x : all<TraceTime>(c)) {
    EXPECT_GE(x.ns, t);
    t = x.ns;
  }
  EXPECT_EQ(all<TraceExit>(c).size(), 2u);
  const RunResult run = replay_records(c, *find_config("contpte-64k"), {});
  EXPECT_EQ(run.stat("replay_unresolved_accesses"), 0);
  EXPECT_EQ(run.stat("replay_failed_mmaps"), 0);
  EXPECT_GE(run.stat("faults_cow"), 1);
  EXPECT_EQ(run.exit_status(), 0);
  EXPECT_EQ(run.isa, "x86-64");
  std::filesystem::remove(path);
}

// The plugin codes a block run that repeats what followed the previous
// block last time as a bit of the next access (record_protocol.h): the
// trace must be exactly the one of a plugin that sends every run, on real
// programs (gzip's and sort's loops). Time and thread records (the
// recorded tid) differ between two runs and are left out; nothing else may. (Single-process programs: the
// streams of a forking one interleave by time, differently in each run.)
std::vector<TraceRecord> untimed(const TraceContents& c) {
  std::vector<TraceRecord> v;
  for (const auto& r : c.records)
    if (!std::holds_alternative<TraceTime>(r) && !std::holds_alternative<TraceThread>(r)) v.push_back(r);
  return v;
}

TEST(RecordQemu, PredictedBlockRunsGiveTheSameTrace) {
  if (const std::string why = qemu_unavailable(qemu_options()); !why.empty()) GTEST_SKIP() << why;
  const auto dir = std::filesystem::temp_directory_path() / ("contpte_record_predict-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream in(dir / "in.txt");
    for (int i = 0; i < 3000; ++i) in << "line " << i * 7919 % 10007 << " of the gzip input\n";
  }
  const std::vector<std::vector<std::string>> commands{
      {"/bin/sh", "-c", "exec gzip -c " + (dir / "in.txt").string() + " > " + (dir / "out").string()},
      {"/bin/sh", "-c", "exec sort --parallel=1 -o " + (dir / "out").string() + " " + (dir / "in.txt").string()},
  };
  for (const auto& cmd : commands) {
    RecordOptions plain = qemu_options();
    plain.qemu_predict_blocks = false;
    const RecordResult a = record_command(cmd, (dir / "plain.trace").string(), plain);
    const RecordResult b = record_command(cmd, (dir / "predicted.trace").string(), qemu_options());
    EXPECT_EQ(a.unparsed_lines, 0u) << cmd[2];
    EXPECT_EQ(b.unparsed_lines, 0u) << cmd[2];
    EXPECT_LT(b.log_bytes, a.log_bytes) << cmd[2];  // the point of predicting
    const auto ra = untimed(read_trace_file((dir / "plain.trace").string()));
    const auto rb = untimed(read_trace_file((dir / "predicted.trace").string()));
    ASSERT_GT(ra.size(), 10000u) << cmd[2];
    ASSERT_EQ(ra.size(), rb.size()) << cmd[2];
    std::size_t diff = 0, first = 0;
    for (std::size_t i = 0; i < ra.size(); ++i)
      if (!(ra[i] == rb[i]) && diff++ == 0) first = i;
    EXPECT_EQ(diff, 0u) << cmd[2] << ": first at record " << first << " of " << ra.size() << " (record kinds "
                        << ra[first].index() << ", " << rb[first].index() << ")";
  }
  std::filesystem::remove_all(dir);
}

// An arm64 sysroot: $CONTPTE_SYSROOT, else one scripts/arm64-sysroot.sh
// fills under the temporary directory (once; it downloads ~4 MB). Empty
// when neither works (the reason in `why`).
std::string arm64_sysroot(std::string& why) {
  if (const char* e = std::getenv("CONTPTE_SYSROOT"); e && *e) return e;
  const auto dir = std::filesystem::temp_directory_path() / ("contpte-test-sysroot-arm64-" + std::to_string(::getpid()));
  if (std::filesystem::exists(dir / "bin/busybox") && std::filesystem::exists(dir / "bin/gzip")) return dir.string();
  const std::string cmd = std::string(CONTPTE_SOURCE_DIR "/scripts/arm64-sysroot.sh ") + dir.string() + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0 || !std::filesystem::exists(dir / "bin/busybox")) {
    why = "scripts/arm64-sysroot.sh could not download Debian's arm64 packages (no network?)";
    return "";
  }
  return dir.string();
}

// Records an arm64 program from the sysroot and replays it.
void record_arm64(const std::vector<std::string>& command, const std::string& sysroot, bool dynamic) {
  RecordOptions o = qemu_options();
  o.sysroot = sysroot;
  const auto path = std::filesystem::temp_directory_path() / ("contpte_record_arm64_test-" + std::to_string(::getpid()) + ".trace");
  const RecordResult r = record_command(command, path.string(), o);
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_EQ(r.unparsed_lines, 0u);
  EXPECT_GT(r.totals.accesses, 1000u);
  const TraceContents c = read_trace_file(path.string());
  EXPECT_EQ(c.header.isa, TraceIsa::Aarch64);
  EXPECT_FALSE(all<TraceBlock>(c).empty());
  // A64 instructions: every block's instructions are 4 bytes.
  for (const auto& b : all<TraceBlock>(c))
    for (auto sz : b.sizes) ASSERT_EQ(sz, 4u);
  bool libc = false;
  for (const auto& f : all<TraceFile>(c)) libc |= f.path.find("aarch64-linux-gnu/libc.so") != std::string::npos;
  EXPECT_EQ(libc, dynamic);  // the sysroot's C library, mapped by the arm64 loader
  const RunResult run = replay_records(c, *find_config("contpte-64k"), {});
  EXPECT_EQ(run.stat("replay_unresolved_accesses"), 0);
  EXPECT_EQ(run.isa, "aarch64");
  std::filesystem::remove(path);
}

TEST(RecordQemu, Arm64StaticBusybox) {
  if (const std::string why = qemu_unavailable(qemu_options()); !why.empty()) GTEST_SKIP() << why;
  if (!program_in_path("qemu-aarch64")) GTEST_SKIP() << "qemu-aarch64 is not installed (qemu-user)";
  std::string why;
  const std::string root = arm64_sysroot(why);
  if (root.empty()) GTEST_SKIP() << why;
  record_arm64({root + "/bin/busybox", "echo", "hello"}, root, false);
}

TEST(RecordQemu, Arm64DynamicGzip) {
  if (const std::string why = qemu_unavailable(qemu_options()); !why.empty()) GTEST_SKIP() << why;
  if (!program_in_path("qemu-aarch64")) GTEST_SKIP() << "qemu-aarch64 is not installed (qemu-user)";
  std::string why;
  const std::string root = arm64_sysroot(why);
  if (root.empty()) GTEST_SKIP() << why;
  record_arm64({root + "/bin/gzip", "--version"}, root, true);
}

// A whole process tree: `make -j2` of three small C files. The plugin runs
// every program a process executes under QEMU again (plugins/qemu/
// contpte_record.c, follow_exec), so the trace holds make, the compiler
// driver, cc1, as, collect2 and ld, each an exec in its stream, and the
// two compiler jobs interleaved by time, not one after another.
TEST(RecordQemu, MakeBuildRecordsEveryProcess) {
  if (const std::string why = qemu_unavailable(qemu_options()); !why.empty()) GTEST_SKIP() << why;
  if (!program_in_path("make")) GTEST_SKIP() << "make is not installed (scripts/install-deps.sh --test)";
  if (!program_in_path("gcc")) GTEST_SKIP() << "gcc is not installed";
  const auto dir = std::filesystem::temp_directory_path() / ("contpte_record_make-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (const char* f : {"a", "b", "c"}) {
    std::ofstream(dir / (std::string(f) + ".c"))
        << "int " << f << "(int x) { int s = 0; for (int i = 0; i < x; ++i) s += i * " << (f[0] - 'a' + 2)
        << "; return s; }\n"
        << (f[0] == 'a' ? "int b(int); int c(int);\nint main(void) { return a(3) + b(4) + c(5) > 1000; }\n" : "");
  }
  std::ofstream(dir / "Makefile") << "prog: a.o b.o c.o\n\tgcc -o prog a.o b.o c.o\n"
                                  << "%.o: %.c\n\tgcc -O0 -c $< -o $@\n";
  const auto path = dir / "make.trace";
  const RecordResult r = record_command({"make", "-s", "-j2", "-C", dir.string()}, path.string(), qemu_options());
  EXPECT_EQ(r.exit_status, 0);
  EXPECT_EQ(r.unparsed_lines, 0u);
  EXPECT_TRUE(std::filesystem::exists(dir / "prog"));
  // Every program of the build, by the basename of what it executed; and
  // interleaving: the records of two cc1 processes alternate while both
  // are alive (the compiles of -j2 run at once, and replay follows the
  // file order). Streamed: the trace is large.
  std::ifstream in(path, std::ios::binary);
  TraceReader rd(in, path.string());
  constexpr std::uint32_t kNone = ~0u;
  std::map<std::string, int> ran;
  std::map<std::uint32_t, std::string> program;  // by stream
  std::set<std::uint32_t> exited, cc1_ran;
  std::uint32_t cur = 0, prev_cc1 = kNone;
  bool cur_cc1 = false, interleaved = false;
  while (auto rec = rd.next()) {
    if (const auto* e = std::get_if<TraceExec>(&*rec); e && !e->command.empty()) {
      program[cur] = std::filesystem::path(e->command[0]).filename().string();
      ++ran[program[cur]];
      cur_cc1 = program[cur] == "cc1";
    } else if (const auto* s = std::get_if<TraceStream>(&*rec)) {
      cur = s->stream;
      cur_cc1 = program[cur] == "cc1";
    } else if (std::holds_alternative<TraceExit>(*rec)) {
      exited.insert(cur);
    } else if (cur_cc1 && (std::holds_alternative<TraceAccess>(*rec) || std::holds_alternative<TraceRunBlock>(*rec))) {
      if (prev_cc1 != kNone && prev_cc1 != cur && cc1_ran.count(cur) && !exited.count(prev_cc1)) interleaved = true;
      cc1_ran.insert(cur);
      prev_cc1 = cur;
    }
  }
  EXPECT_EQ(ran["gcc"], 4) << "3 compiles and a link";
  EXPECT_EQ(ran["cc1"], 3);
  EXPECT_EQ(ran["as"], 3);
  EXPECT_EQ(ran["collect2"], 1);
  EXPECT_EQ(ran["ld"], 1);
  EXPECT_TRUE(interleaved);
  EXPECT_EQ(rd.streams(), 1u + 4 + 3 + 3 + 2);  // make's children, then gcc's (cc1, as; collect2, ld)
  ReplayOptions ro;
  ro.run.check = false;  // the replay's address resolution is the point here
  const RunResult run = replay_trace(path.string(), *find_config("contpte-64k"), ro);
  EXPECT_EQ(run.stat("replay_unresolved_accesses"), 0);
  EXPECT_EQ(run.stat("replay_failed_mmaps"), 0);
  std::filesystem::remove_all(dir);
}

// exec of a "#!" script runs its interpreter under QEMU, as the kernel's
// binfmt_script would: the stream's exec records name the interpreter,
// then the script, then the program the script executes.
TEST(RecordQemu, ExecOfAScriptRunsItsInterpreter) {
  if (const std::string why = qemu_unavailable(qemu_options()); !why.empty()) GTEST_SKIP() << why;
  const auto dir = std::filesystem::temp_directory_path() / ("contpte_record_script-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto script = dir / "s.sh";
  std::ofstream(script) << "#!/bin/sh -e\nexec /bin/true\n";
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  const auto path = dir / "s.trace";
  const RecordResult r = record_command({"/bin/sh", "-c", "exec " + script.string() + " arg"}, path.string(),
                                        qemu_options());
  EXPECT_EQ(r.exit_status, 0);
  const TraceContents c = read_trace_file(path.string());
  const auto execs = all<TraceExec>(c);
  ASSERT_EQ(execs.size(), 2u);
  // The plugin sends each program's command line itself when it starts, so
  // it is right however far behind the recorder is (it used to be read from
  // /proc after the fact: empty, or the next program's, under ASan).
  EXPECT_EQ(execs[0].command, (std::vector<std::string>{"/bin/sh", "-e", script.string(), "arg"}));
  EXPECT_EQ(execs[1].command, (std::vector<std::string>{"/bin/true"}));
  EXPECT_EQ(r.streams, 1u);  // exec continues the process's stream
  std::filesystem::remove_all(dir);
}

TEST(RecordQemu, NonElfProgramIsAnError) {
  if (const std::string why = qemu_unavailable(qemu_options()); !why.empty()) GTEST_SKIP() << why;
  const auto dir = std::filesystem::temp_directory_path();
  std::ofstream((dir / "contpte_not_a_program").string()) << "plain text\n";
  std::filesystem::permissions(dir / "contpte_not_a_program", std::filesystem::perms::owner_all);
  try {
    record_command({(dir / "contpte_not_a_program").string()}, (dir / "contpte_x.trace").string(), qemu_options());
    ADD_FAILURE() << "no error";
  } catch (const RecordError& e) {
    EXPECT_NE(std::string(e.what()).find("is not an x86-64 or aarch64 ELF program"), std::string::npos) << e.what();
  }
  std::filesystem::remove(dir / "contpte_not_a_program");
}

}  // namespace
}  // namespace contpte
