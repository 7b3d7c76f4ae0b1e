// trace/record_qemu.cpp — `contpte record --recorder qemu`: runs the
// command under qemu-user with the contpte plugin (plugins/qemu/) and turns
// the plugin's event streams, one connection per guest process, into a
// trace of format version 2 (docs/trace.md "The QEMU recorder").
//
// Owns: choosing qemu-x86_64 or qemu-aarch64 from the program's ELF header,
// the socket the plugin instances connect to, decoding their messages,
// merging the processes' chunks by time, following fork and exec (the
// plugin re-runs qemu for an exec'd program), and resolving the plugin's
// translation blocks into trace blocks.
// The address-space rules are RecordedSpace's (trace/record_space.h).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "record_protocol.h"
#include "trace/record.h"
#include "trace/record_common.h"
#include "trace/record_space.h"

namespace contpte {

namespace {

namespace fs = std::filesystem;

constexpr std::uint64_t kCloneVm = 0x100, kCloneVfork = 0x4000;
// ELF e_machine values.
constexpr unsigned kEmX86_64 = 62, kEmAarch64 = 183;
// A process whose next chunk has not come for this long is taken to be
// blocked (it sends everything before each system call): the others go on.
constexpr std::uint64_t kMergeSlackNs = 50'000'000;

std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

using trace_detail::unzigzag;

// The program and the ISA it needs; a "#!" script runs its interpreter.
struct Guest {
  std::vector<std::string> argv;  // what qemu runs
  TraceIsa isa = TraceIsa::Unknown;
};

TraceIsa elf_isa(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char h[20] = {};
  if (!f.read(reinterpret_cast<char*>(h), sizeof h)) return TraceIsa::Unknown;
  if (h[0] != 0x7f || h[1] != 'E' || h[2] != 'L' || h[3] != 'F') return TraceIsa::Unknown;
  const unsigned machine = h[18] | (h[19] << 8);
  if (machine == kEmX86_64) return TraceIsa::X86_64;
  if (machine == kEmAarch64) return TraceIsa::Aarch64;
  return TraceIsa::Unknown;
}

Guest guest_of(const std::vector<std::string>& command, const std::string& sysroot) {
  Guest g;
  std::string prog = find_in_path(command[0]);
  if (prog.empty()) throw RecordError(fmt::format("'{}' not found (or not executable)", command[0]));
  g.argv = command;
  g.argv[0] = prog;
  std::ifstream f(prog, std::ios::binary);
  std::string first;
  std::getline(f, first);
  if (first.rfind("#!", 0) == 0) {
    // The kernel's binfmt_script: interpreter, one optional argument, the script.
    std::string_view l = std::string_view(first).substr(2);
    while (!l.empty() && (l[0] == ' ' || l[0] == '\t')) l.remove_prefix(1);
    const auto sp = l.find_first_of(" \t");
    std::vector<std::string> interp{std::string(l.substr(0, sp))};
    if (sp != std::string_view::npos) {
      std::string_view rest = l.substr(sp);
      while (!rest.empty() && (rest[0] == ' ' || rest[0] == '\t')) rest.remove_prefix(1);
      while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t' || rest.back() == '\r')) rest.remove_suffix(1);
      if (!rest.empty()) interp.emplace_back(rest);
    }
    g.argv.insert(g.argv.begin(), interp.begin(), interp.end());
    prog = interp[0];
  }
  g.isa = elf_isa(prog);
  if (g.isa == TraceIsa::Unknown && !sysroot.empty()) g.isa = elf_isa(sysroot + prog);
  if (g.isa == TraceIsa::Unknown)
    throw RecordError(fmt::format("'{}' is not an x86-64 or aarch64 ELF program", prog));
  return g;
}

std::string exe_dir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : self.parent_path().string();
}

std::string plugin_path(const RecordOptions& opts) {
  if (const char* e = std::getenv("CONTPTE_QEMU_PLUGIN"); e && *e) return e;
  if (!opts.qemu_plugin.empty()) return opts.qemu_plugin;
  const std::string dir = exe_dir();
  for (const std::string& p : {dir + "/contpte-qemu-record.so", dir + "/../lib/contpte/contpte-qemu-record.so"})
    if (access(p.c_str(), R_OK) == 0) return p;
  return "";
}

std::string sysroot_of(const RecordOptions& opts) {
  if (!opts.sysroot.empty()) return opts.sysroot;
  if (const char* e = std::getenv("CONTPTE_SYSROOT"); e && *e) return e;
  const char* data = std::getenv("XDG_DATA_HOME");
  const char* home = std::getenv("HOME");
  const std::string base = data && *data ? data : std::string(home ? home : "/root") + "/.local/share";
  return base + "/contpte/sysroot-arm64";
}

const char* qemu_for(TraceIsa isa) { return isa == TraceIsa::Aarch64 ? "qemu-aarch64" : "qemu-x86_64"; }

// ---- one guest process --------------------------------------------------------

struct Chunk {
  std::uint64_t t = 0;
  std::uint32_t tid = 0;
  std::string bytes;
};

// A translation block the plugin defined, and the trace blocks it became in
// this process (resolved when it first runs).
struct PluginBlock {
  std::uint64_t vaddr = 0;
  std::vector<std::uint8_t> sizes;
  std::vector<std::uint32_t> trace_blocks;  // empty: not resolved yet
  std::vector<std::uint32_t> insns;         // instructions in each
  // Resolved into exactly one trace block (the common case): that block
  // and its instructions, so running it reads no vector.
  bool single = false;
  std::uint32_t single_block = 0, single_insns = 0;
};

struct PendingSyscall {
  unsigned code = 0;
  std::uint64_t args[6] = {};
  std::optional<TraceFile> file;
};

struct Proc {
  int fd = -1;
  long pid = 0;
  long ppid = 0;
  bool hello = false;
  bool closed = false;
  std::vector<std::string> command;  // what the guest runs (from HELLO)
  std::optional<std::uint32_t> stream;  // once its place in the trace is known
  std::optional<RecordedSpace> space;
  std::vector<PluginBlock> blocks;      // by plugin index
  std::vector<bool> own_block;          // defined on this connection (before matching)
  std::map<std::uint32_t, PendingSyscall> syscalls;  // by tid
  std::deque<Chunk> queue;
  // Bytes received, not yet a whole message: [begin, end) of buf. Read
  // into in place (no copy through a stack buffer) and compacted only when
  // the room after end runs short.
  struct Inbox {
    std::unique_ptr<char[]> buf;
    std::size_t begin = 0, end = 0, cap = 0;
    std::size_t size() const { return end - begin; }
    const char* data() const { return buf.get() + begin; }
    // At least `k` bytes of room after end.
    char* room(std::size_t k) {
      if (cap - end >= k) return buf.get() + end;
      if (begin > 0) {
        std::memmove(buf.get(), buf.get() + begin, end - begin);
        end -= begin, begin = 0;
      }
      if (cap - end < k) {
        const std::size_t c = std::max(cap * 2, end + k);
        auto b = std::make_unique_for_overwrite<char[]>(c);
        if (end) std::memcpy(b.get(), buf.get(), end);
        buf = std::move(b), cap = c;
      }
      return buf.get() + end;
    }
    void consume(std::size_t k) {
      begin += k;
      if (begin == end) begin = end = 0;
    }
  } in;
  bool exec_pending = false;
};

// What a fork left for the child's connection.
struct ForkedChild {
  std::uint32_t stream;
  RecordedSpace space;
  std::vector<PluginBlock> blocks;
};

class Merger {
 public:
  Merger(TraceWriter& w, RecordResult& res, std::uint32_t lag_ns_per_byte)
      : w_(w), res_(res), lag_ns_per_byte_(lag_ns_per_byte) {}

  // Reads what `p` has sent; false at its end.
  bool receive(Proc& p) {
    constexpr std::size_t kRead = 1 << 16;
    for (;;) {
      const ssize_t n = read(p.fd, p.in.room(kRead), kRead);
      if (n > 0) {
        p.in.end += static_cast<std::size_t>(n);
        res_.log_bytes += static_cast<std::uint64_t>(n);
        if (p.in.size() > (4u << 20)) break;  // let the others in
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      p.closed = true;
      break;
    }
    parse_messages(p);
    return !p.closed;
  }

  // Converts the queued chunks that are due, in time order.
  void drain(std::vector<std::unique_ptr<Proc>>& procs, bool all) {
    for (;;) {
      Proc* best = nullptr;
      bool waiting = false;
      for (auto& up : procs) {
        Proc& p = *up;
        if (!p.stream) continue;
        if (p.queue.empty()) {
          if (!p.closed && procs.size() > 1) waiting = true;
          continue;
        }
        if (!best || p.queue.front().t < best->queue.front().t) best = &p;
      }
      if (!best) break;
      // Another running process may still send an earlier chunk, unless
      // it has been quiet for a while (blocked: it sends all it did before
      // each system call).
      if (waiting && !all && monotonic_ns() - best->queue.front().t < kMergeSlackNs) break;
      Chunk c = std::move(best->queue.front());
      best->queue.pop_front();
      convert(*best, c);
    }
    for (auto& up : procs) finish_if_done(*up);
  }

  // The first process, or a fork's or an exec's. `final`: no more data will
  // come, place it even if its parent never reported its fork.
  void place(Proc& p, bool final = false) {
    if (p.stream || !p.hello) return;
    place_once(p, final);
  }

  void place_once(Proc& p, bool final) {
    if (auto it = forked_.find(p.pid); it != forked_.end()) {
      ForkedChild f = std::move(it->second);
      forked_.erase(it);
      p.stream = f.stream;
      p.space = std::move(f.space);
      // The child runs the blocks its parent translated, and its own.
      std::vector<PluginBlock> own = std::move(p.blocks);
      p.blocks = std::move(f.blocks);
      for (std::size_t i = 0; i < own.size(); ++i)
        if (i < p.own_block.size() && p.own_block[i]) {
          if (p.blocks.size() <= i) p.blocks.resize(i + 1);
          p.blocks[i] = std::move(own[i]);
        }
      return;
    }
    if (auto it = exec_waiting_.find(p.pid); it != exec_waiting_.end()) {
      // exec: the plugin ran a new qemu for the new program, same pid.
      p.stream = it->second;
      exec_waiting_.erase(it);
      p.space.emplace(w_);
      switch_to(*p.stream, 0);
      w_.write(TraceExec{p.command});
      return;
    }
    // An exec's new program can connect before the connection of the
    // program it replaces has been drained: wait for that (this connection
    // counts itself once).
    if (!final && unfinished_.count(p.pid) > 1) return;
    if (!root_done_) {
      root_done_ = true;
      p.stream = 0;
      p.space.emplace(w_);
      return;
    }
    // A child can connect before its parent's fork has been merged (the
    // parent's chunk holding the fork's return is still queued, or not yet
    // read, or the parent itself is not placed yet because the recorder is
    // behind): wait while the parent's connection is unfinished, else the
    // child would become an unrelated process and the fork would be
    // recorded twice.
    if (!final && unfinished_.count(p.ppid)) return;
    // A process whose parent was not recorded: a new stream, forked from
    // the first one and then exec'd (it shares nothing).
    switch_to(0, 0);
    p.stream = w_.next_stream();
    w_.write(TraceFork{*p.stream});
    p.space.emplace(w_);
    switch_to(*p.stream, 0);
    w_.write(TraceExec{p.command});
  }

  // Every stream not yet ended (an exec that never connected).
  void finish_all() {
    for (auto& [pid, stream] : exec_waiting_) {
      switch_to(stream, 0);
      w_.write(TraceExit{});
    }
    exec_waiting_.clear();
    for (auto& [pid, f] : forked_) {
      switch_to(f.stream, 0);
      w_.write(TraceExit{});
    }
    forked_.clear();
  }

  std::uint64_t start_ns = 0;
  std::uint64_t foreign_protocol = 0;  // a HELLO of another protocol version (0: none)

 private:
  // The guest command of a HELLO: qemu's arguments after `-plugin SPEC`.
  // After an exec the plugin started, they are `-0 ARGV0 PROGRAM ARGS`: the
  // program sees ARGV0 as its argv[0], so that is the command.
  static std::vector<std::string> guest_command(std::string_view bytes) {
    std::vector<std::string> cmd;
    while (!bytes.empty()) {
      const auto nul = bytes.find('\0');
      cmd.emplace_back(bytes.substr(0, nul));
      if (nul == std::string_view::npos) break;
      bytes.remove_prefix(nul + 1);
    }
    if (cmd.size() >= 3 && cmd[0] == "-0") {
      cmd.erase(cmd.begin() + 2);  // the program's path; its argv[0] stays
      cmd.erase(cmd.begin());
    }
    return cmd;
  }

  void finish_if_done(Proc& p) {
    if (!p.closed || !p.queue.empty() || !p.stream || p.fd < 0) return;
    close(p.fd);
    p.fd = -1;
    if (auto it = unfinished_.find(p.pid); it != unfinished_.end()) unfinished_.erase(it);
    if (p.exec_pending) {
      exec_waiting_[p.pid] = *p.stream;  // its next program connects with the same pid
      return;
    }
    switch_to(*p.stream, 0);
    w_.write(TraceExit{});
  }

  void parse_messages(Proc& p) {
    std::size_t at = 0;
    while (p.in.size() - at >= 8) {
      std::uint64_t h;
      std::memcpy(&h, p.in.data() + at, 8);
      const unsigned kind = static_cast<unsigned>(h >> 56);
      const std::uint64_t len = h & ((std::uint64_t{1} << 56) - 1);
      if (p.in.size() - at - 8 < len) break;
      const char* m = p.in.data() + at + 8;
      if (kind == CPT_MSG_HELLO && len >= 40) {
        std::uint64_t w[5];
        std::memcpy(w, m, sizeof w);
        if (w[0] != CPT_REC_PROTOCOL) {
          // A plugin from another build: its messages cannot be trusted.
          foreign_protocol = w[0];
          p.closed = true;
          return;
        }
        p.pid = static_cast<long>(w[1]);
        p.ppid = static_cast<long>(w[2]);
        p.command = guest_command(std::string_view(m + 40, len - 40));
        p.hello = true;
        unfinished_.insert(p.pid);
        if (!start_ns) start_ns = w[4];
      } else if (kind == CPT_MSG_CHUNK && len >= 16) {
        Chunk c;
        std::uint64_t w[2];
        std::memcpy(w, m, sizeof w);
        c.tid = static_cast<std::uint32_t>(w[0]);
        c.t = w[1];
        c.bytes.assign(m + 16, len - 16);
        p.queue.push_back(std::move(c));
      } else if (kind == CPT_MSG_DEFS) {
        defs(p, m, len);
      } else {
        ++res_.unparsed_lines;
      }
      at += 8 + len;
    }
    p.in.consume(at);
  }

  void defs(Proc& p, const char* m, std::uint64_t len) {
    const std::uint64_t words = len / 8;
    std::vector<std::uint64_t> w(words);
    std::memcpy(w.data(), m, words * 8);
    for (std::size_t i = 0; i + 3 <= words;) {
      const std::uint64_t index = w[i] & ((std::uint64_t{1} << 56) - 1);
      const std::uint64_t n = w[i + 2];
      const std::size_t need = 3 + (n + 7) / 8;
      if (w[i] >> 60 != CPT_EV_DEF || i + need > words || n > 4096 || index > (1u << 28)) {
        ++res_.unparsed_lines;
        return;
      }
      // (A forked child, once placed, holds its parent's blocks: the two
      // tables grow separately.)
      if (p.blocks.size() <= index) p.blocks.resize(index + 1);
      if (p.own_block.size() <= index) p.own_block.resize(index + 1);
      PluginBlock b;
      b.vaddr = w[i + 1];
      b.sizes.resize(n);
      for (std::size_t k = 0; k < n; ++k) b.sizes[k] = static_cast<std::uint8_t>(w[i + 3 + k / 8] >> (8 * (k % 8)));
      p.blocks[index] = std::move(b);
      p.own_block[index] = true;
      i += need;
    }
  }

  void switch_to(std::uint32_t stream, std::uint32_t tid) {
    if (stream != cur_stream_) {
      w_.write(TraceStream{stream});
      cur_stream_ = stream;
      cur_tid_ = 0;
    }
    if (tid && tid != cur_tid_) {
      w_.write(TraceThread{tid});
      cur_tid_ = tid;
    }
  }

  void convert(Proc& p, const Chunk& c) {
    if (lag_ns_per_byte_) {
      const std::uint64_t ns = std::uint64_t{lag_ns_per_byte_} * c.bytes.size();
      const timespec lag{static_cast<time_t>(ns / 1'000'000'000u), static_cast<long>(ns % 1'000'000'000u)};
      nanosleep(&lag, nullptr);
    }
    switch_to(*p.stream, c.tid);
    w_.write(TraceTime{c.t > start_ns ? c.t - start_ns : 0});
    RecordedSpace& sp = *p.space;
    const auto* b = reinterpret_cast<const std::uint8_t*>(c.bytes.data());
    const auto* e = b + c.bytes.size();
    std::uint64_t addr = 0, block = 0;
    // The plugin's block-run prediction (record_protocol.h), afresh in
    // every chunk: a new generation invalidates every slot.
    if (++pred_gen_ == 0) {
      std::fill(pred_.begin(), pred_.end(), PredSlot{});
      pred_gen_ = 1;
    }
    std::uint32_t pred_last = kNoBlock;
    auto ran = [&](std::uint64_t index) {
      const auto i = static_cast<std::uint32_t>(index);
      if (pred_last != kNoBlock) pred_[pred_last & (CPT_PRED_SLOTS - 1)] = PredSlot{pred_last, i, pred_gen_};
      pred_last = i;
      block = index;
      run(p, index);
    };
    // The predicted block ran; false when nothing predicts one.
    auto ran_predicted = [&]() -> bool {
      if (pred_last == kNoBlock) return false;
      const PredSlot& s = pred_[pred_last & (CPT_PRED_SLOTS - 1)];
      if (s.gen != pred_gen_ || s.from != pred_last) return false;
      ran(s.next);
      return true;
    };
    auto varint = [&]() -> std::uint64_t {
      std::uint64_t v = 0;
      for (unsigned shift = 0; b < e && shift < 64; shift += 7) {
        const std::uint8_t x = *b++;
        v |= std::uint64_t{x & 0x7fu} << shift;
        if (!(x & 0x80)) return v;
      }
      return v;
    };
    while (b < e) {
      const std::uint8_t tag = *b++;
      if ((tag & CPT_MEM_AFTER_NEXT) && (tag & 7) != CPT_EV_LOAD && (tag & 7) != CPT_EV_STORE)
        return void(++res_.unparsed_lines);
      switch (tag & 7) {
        case CPT_EV_LOAD:
        case CPT_EV_STORE: {
          if ((tag & CPT_MEM_AFTER_NEXT) && !ran_predicted()) return void(++res_.unparsed_lines);
          addr += static_cast<std::uint64_t>(unzigzag(varint()));
          sp.access((tag & 7) == CPT_EV_LOAD ? TraceAccessType::Load : TraceAccessType::Store, addr,
                    std::uint64_t{1} << ((tag >> 3) & 0xf));
          break;
        }
        case CPT_EV_EXEC: {
          ran(block + static_cast<std::uint64_t>(unzigzag(varint())));
          break;
        }
        case CPT_EV_NEXT: {
          if (!ran_predicted()) return void(++res_.unparsed_lines);
          break;
        }
        case CPT_EV_SYSCALL: {
          PendingSyscall& s = p.syscalls[c.tid];
          std::optional<TraceFile> file = std::move(s.file);
          s = PendingSyscall{};
          s.file = std::move(file);
          s.code = static_cast<unsigned>(varint());
          for (auto& a : s.args) a = varint();
          if (s.code == CPT_SYS_EXECVE || s.code == CPT_SYS_EXECVEAT) p.exec_pending = true;
          break;
        }
        case CPT_EV_SYSRET: {
          const auto code = static_cast<unsigned>(varint());
          const std::int64_t ret = unzigzag(varint());
          auto it = p.syscalls.find(c.tid);
          if (it != p.syscalls.end() && it->second.code == code) {
            syscall(p, it->second, ret);
            p.syscalls.erase(it);
          }
          if (code == CPT_SYS_EXECVE || code == CPT_SYS_EXECVEAT) p.exec_pending = false;  // it failed
          break;
        }
        case CPT_EV_FILE: {
          TraceFile f;
          f.size = varint();
          const std::uint64_t len = varint();
          if (len > static_cast<std::uint64_t>(e - b)) return void(++res_.unparsed_lines);
          f.path.assign(reinterpret_cast<const char*>(b), len);
          b += len;
          p.syscalls[c.tid].file = std::move(f);
          break;
        }
        default: ++res_.unparsed_lines; return;
      }
    }
  }

  void run(Proc& p, std::uint64_t index) {
    if (index < p.blocks.size() && p.blocks[index].single) {
      const PluginBlock& pb = p.blocks[index];
      return w_.run_block(pb.single_block, pb.single_insns);
    }
    if (index >= p.blocks.size() || p.blocks[index].sizes.empty()) return void(++res_.unparsed_lines);
    PluginBlock& pb = p.blocks[index];
    if (pb.trace_blocks.empty()) resolve(p, pb);
    for (std::size_t i = 0; i < pb.trace_blocks.size(); ++i) w_.run_block(pb.trace_blocks[i], pb.insns[i]);
  }

  // The block's instructions as trace blocks: one, or one per mapping it
  // spans.
  void resolve(Proc& p, PluginBlock& pb) {
    std::uint64_t a = pb.vaddr;
    std::size_t i = 0;
    while (i < pb.sizes.size()) {
      const RecordedSpace::Place pl = p.space->place(a);
      TraceBlock tb{pl.map, pl.offset, {}};
      std::uint64_t used = 0;
      while (i < pb.sizes.size() && (tb.sizes.empty() || used + pb.sizes[i] <= pl.room)) {
        used += pb.sizes[i];
        tb.sizes.push_back(pb.sizes[i++]);
      }
      // An instruction past the mapping's end is cut at it (as accesses are).
      if (used > pl.room) tb.sizes.back() = static_cast<std::uint8_t>(tb.sizes.back() - (used - pl.room));
      a += used;
      pb.trace_blocks.push_back(w_.next_block());
      pb.insns.push_back(static_cast<std::uint32_t>(tb.sizes.size()));
      w_.write(tb);
    }
    pb.single = pb.trace_blocks.size() == 1;
    if (pb.single) pb.single_block = pb.trace_blocks[0], pb.single_insns = pb.insns[0];
  }

  std::uint32_t file_id(const TraceFile& f) {
    auto key = std::make_pair(f.path, f.size);
    if (auto it = files_.find(key); it != files_.end()) return it->second;
    const std::uint32_t id = w_.next_file();
    w_.write(f);
    files_.emplace(std::move(key), id);
    return id;
  }

  void syscall(Proc& p, const PendingSyscall& s, std::int64_t ret) {
    const auto* a = s.args;
    if (ret < 0 && ret > -4096 && s.code != CPT_SYS_BRK) return;  // failed: changed nothing
    const auto r = static_cast<std::uint64_t>(ret);
    RecordedSpace& sp = *p.space;
    switch (s.code) {
      case CPT_SYS_MMAP: {
        const auto fd = static_cast<std::int32_t>(static_cast<std::uint32_t>(a[4]));
        std::optional<std::uint32_t> file;
        if (s.file && fd >= 0) file = file_id(*s.file);
        return sp.mmap(r, a[1], a[2], a[3], fd, file, a[5]);
      }
      case CPT_SYS_MUNMAP: return sp.munmap(a[0], a[1]);
      case CPT_SYS_MPROTECT: return sp.mprotect(a[0], a[1], a[2]);
      case CPT_SYS_MADVISE: return sp.madvise(a[0], a[1], a[2]);
      case CPT_SYS_BRK: return sp.brk(a[0], r);
      case CPT_SYS_MREMAP: return sp.mremap(a[0], a[1], a[2], r);
      case CPT_SYS_CLONE:
      case CPT_SYS_FORK:
      case CPT_SYS_VFORK: {
        // qemu-user runs a vfork as a fork (the child gets a copy).
        const bool thread = s.code == CPT_SYS_CLONE && (a[0] & kCloneVm) && !(a[0] & kCloneVfork);
        if (thread || ret <= 0) return;
        const std::uint32_t stream = w_.next_stream();
        w_.write(TraceFork{stream});
        std::vector<PluginBlock> blocks = p.blocks;
        forked_.insert_or_assign(static_cast<long>(ret), ForkedChild{stream, sp, std::move(blocks)});
        return;
      }
      default: return;
    }
  }

  static constexpr std::uint32_t kNoBlock = ~0u;
  struct PredSlot {
    std::uint32_t from = 0, next = 0, gen = 0;
  };
  std::vector<PredSlot> pred_ = std::vector<PredSlot>(CPT_PRED_SLOTS);
  std::uint32_t pred_gen_ = 0;

  TraceWriter& w_;
  RecordResult& res_;
  std::uint32_t lag_ns_per_byte_;
  std::map<long, ForkedChild> forked_;              // by child pid
  // The pids of connections that said hello and are not finished (placed
  // or not): an exec's program and a child wait while they are here.
  std::multiset<long> unfinished_;
  std::map<long, std::uint32_t> exec_waiting_;      // by pid: the stream an exec continues
  std::map<std::pair<std::string, std::uint64_t>, std::uint32_t> files_;
  std::uint32_t cur_stream_ = 0, cur_tid_ = 0;
  bool root_done_ = false;
};

// The socket the plugin instances connect to, in a temporary directory
// removed on every exit path.
struct Socket {
  record_common::TempDir dir{"contpte-qemu"};
  int fd = -1;
  Socket() {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string p = path();
    if (fd < 0 || p.size() >= sizeof a.sun_path) throw RecordError("cannot create the recorder's socket");
    std::memcpy(a.sun_path, p.c_str(), p.size() + 1);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 64) != 0)
      throw RecordError(fmt::format("cannot listen on {}: {}", p, strerror(errno)));
  }
  ~Socket() {
    if (fd >= 0) close(fd);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  std::string path() const { return (dir.path() / "s").string(); }
};

}  // namespace

std::string qemu_unavailable(const RecordOptions& opts) {
  if (!program_in_path("qemu-x86_64") && !program_in_path("qemu-aarch64"))
    return "qemu-user is not installed (scripts/install-deps.sh installs it)";
  if (plugin_path(opts).empty()) return "the contpte QEMU plugin (contpte-qemu-record.so) was not found";
  return "";
}

RecordResult record_with_qemu(const std::vector<std::string>& command, const std::string& out_path,
                              const RecordOptions& opts) {
  if (command.empty()) throw RecordError("no command to record");
  if (const std::string why = qemu_unavailable(opts); !why.empty()) throw RecordError(why);
  const std::string sysroot = sysroot_of(opts);
  const Guest guest = guest_of(command, sysroot);
  const char* qemu = qemu_for(guest.isa);
  if (!program_in_path(qemu)) throw RecordError(fmt::format("'{}' not found: install qemu-user", qemu));
  std::vector<std::string> argv{qemu};
  if (guest.isa != elf_isa("/proc/self/exe")) {
    if (!fs::is_directory(sysroot))
      throw RecordError(fmt::format("{} programs run from a sysroot, and '{}' does not exist (fill it with "
                                    "scripts/arm64-sysroot.sh, or set CONTPTE_SYSROOT)",
                                    trace_isa_name(guest.isa), sysroot));
    argv.insert(argv.end(), {"-L", sysroot});
  }
  std::ofstream out = record_common::create_trace_file(out_path);

  Socket sock;
  // exec=follow: the plugin runs every program the guest executes under
  // this same qemu command line (plugins/qemu/contpte_record.c).
  std::string spec = fmt::format("{},sock={},exec=follow", plugin_path(opts), sock.path());
  if (!opts.qemu_predict_blocks) spec += ",predict=off";
  argv.insert(argv.end(), {"-plugin", spec});
  argv.insert(argv.end(), guest.argv.begin(), guest.argv.end());

  const record_common::RecordingScope scope;

  TraceHeader header;
  header.command = command;
  header.isa = guest.isa;
  // zstd's fast level -4: on gzip's trace 1.4x faster to compress than
  // level 1 for 1.28x the bytes (0.16 bytes per access, the bound
  // being 0.26): compression is a quarter of the recorder's CPU time
  // (docs/trace.md "Recording speed").
  TraceWriter writer(out, header, -4);
  RecordResult res;
  Merger merger(writer, res, opts.lag_ns_per_byte);
  std::vector<std::unique_ptr<Proc>> procs;
  const pid_t pid = record_common::spawn_recorded(argv);
  int wstatus = 0, wstatus_any = 0;
  bool exited = false;
  std::uint64_t last_tick = 0;
  for (;;) {
    std::vector<pollfd> fds{{sock.fd, POLLIN, 0}};
    for (auto& p : procs)
      if (!p->closed) fds.push_back({p->fd, POLLIN, 0});
    const int ready = poll(fds.data(), fds.size(), 20);
    if (ready > 0 && (fds[0].revents & POLLIN))
      for (int c; (c = accept4(sock.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0;) {
        auto p = std::make_unique<Proc>();
        p->fd = c;
        procs.push_back(std::move(p));
      }
    for (auto& p : procs) {
      if (!p->closed) merger.receive(*p);
      merger.place(*p);
    }
    merger.drain(procs, false);
    if (opts.progress && res.log_bytes - last_tick > (64u << 20)) {
      last_tick = res.log_bytes;
      opts.progress(RecordProgress{res.log_bytes, writer.totals().accesses, writer.next_stream()});
    }
    // Reaps reparented descendants too. The recorded command may be among
    // them: reaped here, a later waitpid(pid) would fail (ECHILD) and the
    // loop would wait for it forever.
    for (pid_t w; (w = waitpid(-1, exited ? nullptr : &wstatus_any, WNOHANG)) > 0;)
      if (w == pid) exited = true, wstatus = wstatus_any;
    bool open = false;
    for (auto& p : procs) open |= !p->closed;
    if (exited && !open && ready <= 0) break;
  }
  // What is still queued. A recorder behind its guests ends the loop with
  // chunks queued and processes unplaced: converting a parent's chunks
  // records its forks, which lets its children be placed, whose chunks
  // record theirs. So alternate until nothing moves; only then is a process
  // still unplaced one nobody recorded forking (placed one at a time, the
  // earliest connection first, as each may let others follow).
  for (;;) {
    merger.drain(procs, true);
    bool moved = false;
    for (auto& p : procs)
      if (!p->stream) {
        merger.place(*p);
        moved |= p->stream.has_value();
      }
    if (moved) continue;
    for (auto& p : procs)
      if (!p->stream && p->hello) {
        merger.place(*p, /*final=*/true);
        moved = true;
        break;
      }
    if (!moved) break;
  }
  merger.finish_all();
  while (waitpid(-1, nullptr, 0) > 0) {
  }
  res.exit_status = record_common::exit_status_of(wstatus);
  if (merger.foreign_protocol)
    throw RecordError(fmt::format("the QEMU plugin {} speaks protocol {}, this recorder {}: build them together",
                                  plugin_path(opts), merger.foreign_protocol, int{CPT_REC_PROTOCOL}));
  if (procs.empty())
    throw RecordError(fmt::format("{} recorded nothing (exit status {}): did the plugin load?", qemu,
                                  res.exit_status));
  record_common::finish_recording(writer, res);
  return res;
}

}  // namespace contpte
