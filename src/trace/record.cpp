#include "trace/record.h"
#include "trace/record_common.h"

#include "trace/record_space.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <istream>
#include <map>
#include <memory>
#include <optional>

namespace contpte {

namespace {

namespace fs = std::filesystem;

// Linux's CLONE_VM (uapi).
constexpr std::uint64_t kCloneVm = 0x100;

struct PendingFork {
  long pid;
  std::uint32_t stream;
  RecordedSpace space;
};

// One syscall line (or two: the result may follow on its own line).
struct Syscall {
  long tid = 0;
  std::string name;
  std::vector<std::string> args;
  bool done = false;
  bool success = false;
  bool forked = false;  // valgrind says `clone(fork)` (it runs vfork as a fork)
  std::uint64_t result = 0;
};

std::uint64_t parse_num(std::string_view s, int base = 0) {
  std::size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  s.remove_prefix(i);
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
  } else if (base == 0) {
    base = 10;
  }
  std::uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else break;
    v = v * static_cast<std::uint64_t>(base) + static_cast<std::uint64_t>(d);
  }
  return v;
}

// Parses one process's log into trace records.
class StreamParser {
 public:
  StreamParser(TraceWriter& w, RecordedSpace space, std::deque<PendingFork>& forks, RecordResult& res)
      : w_(w), as_(std::move(space)), forks_(forks), res_(res) {}

  void feed(const char* data, std::size_t n) {
    std::size_t start = 0;
    for (const char* nl; (nl = static_cast<const char*>(std::memchr(data + start, '\n', n - start)));) {
      const auto i = static_cast<std::size_t>(nl - data);
      if (carry_.empty()) {
        line(std::string_view(data + start, i - start));
      } else {
        carry_.append(data + start, i - start);
        line(carry_);
        carry_.clear();
      }
      start = i + 1;
    }
    carry_.append(data + start, n - start);
    res_.log_bytes += n;
  }
  void end() {
    if (!carry_.empty()) line(carry_);
    carry_.clear();
    if (pending_) finish_syscall();
    w_.write(TraceExit{});
  }

 private:
  void line(std::string_view l) {
    if (l.substr(0, 5) == " --> ") return result_line(l);
    if (l.size() > 3 && l[0] == 'I' && l[1] == ' ' && l[2] == ' ') return access(TraceAccessType::Instr, l.substr(3));
    if (l.size() > 3 && l[0] == ' ' && l[2] == ' ') {
      switch (l[1]) {
        case 'L': return access(TraceAccessType::Load, l.substr(3));
        case 'S': return access(TraceAccessType::Store, l.substr(3));
        case 'M': return access(TraceAccessType::Modify, l.substr(3));
        default: break;
      }
    }
    if (l.substr(0, 8) == "SYSCALL[") return syscall_line(l);
    if (l.substr(0, 2) == "==" || l.substr(0, 2) == "--" || l.empty()) return;
    ++res_.unparsed_lines;
  }

  void access(TraceAccessType type, std::string_view rest) {
    const auto comma = rest.find(',');
    if (comma == std::string_view::npos) {
      ++res_.unparsed_lines;
      return;
    }
    const std::uint64_t a = parse_num(rest.substr(0, comma), 16);
    const std::uint64_t size = std::max<std::uint64_t>(1, parse_num(rest.substr(comma + 1), 10));
    as_.access(type, a, size);
  }

  // `SYSCALL[pid,tid](nr) sys_NAME ( ARGS ) ... --> [..] Success(0xR)`, or
  // `SYSCALL[pid,tid](nr) ... [async] --> Success(0xR)` completing an
  // earlier `[async] ...` line of the same thread.
  void syscall_line(std::string_view l) {
    if (pending_ && pending_->done) finish_syscall();
    const auto comma = l.find(',');
    const auto close = l.find(']');
    if (comma == std::string_view::npos || close == std::string_view::npos) return void(++res_.unparsed_lines);
    const long tid = static_cast<long>(parse_num(l.substr(comma + 1, close - comma - 1), 10));
    const auto paren = l.find(") ", close);
    if (paren == std::string_view::npos) return void(++res_.unparsed_lines);
    std::string_view rest = l.substr(paren + 2);
    if (rest.substr(0, 3) == "...") {
      auto it = async_.find(tid);
      if (it == async_.end()) return;
      Syscall sc = std::move(it->second);
      async_.erase(it);
      const auto after = parse_result(sc, rest);
      apply(sc);
      return trailing(after);
    }
    if (pending_) finish_syscall();
    Syscall sc;
    sc.tid = tid;
    const auto sp = rest.find_first_of(" (");
    sc.name = std::string(rest.substr(0, sp));
    const auto open = rest.find('(');
    const auto end = rest.find(')', open == std::string_view::npos ? 0 : open);
    if (open != std::string_view::npos && end != std::string_view::npos) {
      std::string_view args = rest.substr(open + 1, end - open - 1);
      while (!args.empty()) {
        const auto c = args.find(',');
        sc.args.emplace_back(args.substr(0, c));
        if (c == std::string_view::npos) break;
        args.remove_prefix(c + 1);
      }
    }
    // `--> [async] ...`: a blocking call, completed by a later line of the
    // same thread (other threads may run in between).
    if (const auto async = rest.find("[async] ..."); async != std::string_view::npos) {
      async_[tid] = std::move(sc);
      return trailing(rest.substr(async + 11));
    }
    const auto arrow = rest.find("-->");
    if (arrow != std::string_view::npos) {
      const auto after = parse_result(sc, rest.substr(arrow));
      apply(sc);
      return trailing(after);
    }
    sc.forked = rest.find("clone(fork)") != std::string_view::npos;
    pending_ = std::move(sc);  // the result comes on the next ` --> ` line
  }

  void result_line(std::string_view l) {
    if (!pending_) return trailing(after_result(l));
    const auto after = parse_result(*pending_, l);
    finish_syscall();
    trailing(after);
  }

  // Valgrind switches threads between a syscall's text and its newline, so
  // another thread's output may follow on the same line ("... Success(0x0)
  // I  04b89b42,3"): the rest after the syscall's trailing space.
  void trailing(std::string_view rest) {
    if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
    if (rest.find_first_not_of(' ') != std::string_view::npos) line(rest);
  }

  // What follows `Success(...)` / `Failure(...)`.
  static std::string_view after_result(std::string_view r) {
    const auto at = r.find_first_of("SF", r.find("-->"));
    if (at == std::string_view::npos) return {};
    const auto close = r.find(')', at);
    return close == std::string_view::npos ? std::string_view{} : r.substr(close + 1);
  }

  void finish_syscall() {
    Syscall sc = std::move(*pending_);
    pending_.reset();
    if (sc.done) apply(sc);
  }

  // Returns the text after the result.
  static std::string_view parse_result(Syscall& sc, std::string_view r) {
    sc.done = true;
    const auto ok = r.find("Success(");
    sc.success = ok != std::string_view::npos;
    if (sc.success) sc.result = parse_num(r.substr(ok + 8));
    return after_result(r);
  }

  std::uint64_t arg(const Syscall& sc, std::size_t i, int base = 0) const {
    return i < sc.args.size() ? parse_num(sc.args[i], base) : 0;
  }

  void apply(const Syscall& sc) {
    if (!sc.success) return;
    const std::string_view n = sc.name;
    if (n == "sys_mmap" || n == "sys_mmap2")
      return as_.mmap(sc.result, arg(sc, 1), arg(sc, 2), arg(sc, 3),
                      static_cast<std::int32_t>(static_cast<std::uint32_t>(arg(sc, 4))));
    if (n == "sys_munmap") return as_.munmap(arg(sc, 0), arg(sc, 1));
    if (n == "sys_mprotect") return as_.mprotect(arg(sc, 0), arg(sc, 1), arg(sc, 2));
    if (n == "sys_madvise") return as_.madvise(arg(sc, 0), arg(sc, 1), arg(sc, 2));
    if (n == "sys_brk") return as_.brk(arg(sc, 0), sc.result);
    if (n == "sys_mremap") return as_.mremap(arg(sc, 0), arg(sc, 1), arg(sc, 2), sc.result);
    if (n == "sys_clone" || n == "sys_fork" || n == "sys_vfork") {
      // A clone sharing the address space is a thread: same stream.
      const std::uint64_t flags = n == "sys_clone" ? arg(sc, 0, 16) : 0;
      if ((flags & kCloneVm && !sc.forked) || sc.result == 0) return;
      const std::uint32_t stream = w_.next_stream();
      w_.write(TraceFork{stream});
      forks_.push_back(PendingFork{static_cast<long>(sc.result), stream, as_});
    }
  }

  TraceWriter& w_;
  RecordedSpace as_;
  std::deque<PendingFork>& forks_;
  RecordResult& res_;
  std::string carry_;
  std::optional<Syscall> pending_;
  std::map<long, Syscall> async_;
};

void parse_stream(std::istream& in, StreamParser& p, const std::function<void()>& tick) {
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    p.feed(buf.data(), n);
    tick();
  }
  p.end();
}

// The children's streams, in the order their forks were seen.
void convert_children(TraceWriter& w, std::deque<PendingFork>& forks, RecordResult& res,
                      const std::function<std::unique_ptr<std::istream>(long pid)>& child_log,
                      const std::function<void()>& tick) {
  while (!forks.empty()) {
    PendingFork f = std::move(forks.front());
    forks.pop_front();
    w.write(TraceStream{f.stream});
    StreamParser p(w, std::move(f.space), forks, res);
    if (auto in = child_log(f.pid)) {
      parse_stream(*in, p, tick);
    } else {
      p.end();  // no log (the child was not traced): it just exits
    }
  }
}

}  // namespace

std::string find_in_path(const std::string& program) {
  if (program.find('/') != std::string::npos) return access(program.c_str(), X_OK) == 0 ? program : "";
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/bin:/bin";
  while (!dirs.empty()) {
    const auto c = dirs.find(':');
    const fs::path p = fs::path(std::string(dirs.substr(0, c))) / program;
    if (access(p.c_str(), X_OK) == 0 && !fs::is_directory(p)) return p.string();
    if (c == std::string_view::npos) break;
    dirs.remove_prefix(c + 1);
  }
  return "";
}

bool program_in_path(const std::string& program) { return !find_in_path(program).empty(); }

RecordResult convert_log(std::istream& log, TraceWriter& writer,
                         const std::function<std::unique_ptr<std::istream>(long pid)>& child_log,
                         const std::function<void(const RecordProgress&)>& progress) {
  RecordResult res;
  std::deque<PendingFork> forks;
  auto tick = [&] {
    if (progress) progress(RecordProgress{res.log_bytes, writer.totals().accesses, writer.next_stream()});
  };
  {
    StreamParser p(writer, RecordedSpace(writer), forks, res);
    parse_stream(log, p, tick);
  }
  convert_children(writer, forks, res, child_log, tick);
  writer.finish();
  res.totals = writer.totals();
  res.streams = writer.next_stream();
  res.compressed_bytes = writer.compressed_bytes();
  return res;
}

namespace {

// Valgrind runs programs of the host's instruction set.
constexpr TraceIsa host_isa() {
#if defined(__x86_64__)
  return TraceIsa::X86_64;
#elif defined(__aarch64__)
  return TraceIsa::Aarch64;
#else
  return TraceIsa::Unknown;
#endif
}

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

// Starts valgrind on `command` with its log going to `dir/vg.<pid>`, where
// the recorded process's log is a FIFO this process reads while it runs.
pid_t start_valgrind(const std::vector<std::string>& command, const RecordOptions& opts, const fs::path& dir,
                     fs::path& fifo) {
  int sync[2];
  if (pipe(sync) != 0) throw RecordError(fmt::format("pipe: {}", strerror(errno)));
  std::vector<std::string> argv{opts.valgrind, "--tool=lackey", "--trace-mem=yes", "--trace-syscalls=yes",
                                "--trace-children=no", fmt::format("--log-file={}/vg.%p", dir.string())};
  argv.insert(argv.end(), command.begin(), command.end());
  const pid_t pid = record_common::spawn_recorded(argv, [&] {
    // Wait until the parent made the FIFO valgrind will open as its log.
    close(sync[1]);
    char c;
    if (read(sync[0], &c, 1) != 1) _exit(127);
    close(sync[0]);
  });
  close(sync[0]);
  fifo = dir / fmt::format("vg.{}", pid);
  const bool made = mkfifo(fifo.c_str(), 0600) == 0;
  const int err = errno;
  const char go = 1;
  if (!made || write(sync[1], &go, 1) != 1) {
    close(sync[1]);
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    throw RecordError(fmt::format("cannot create the log FIFO {}: {}", fifo.string(), strerror(err)));
  }
  close(sync[1]);
  return pid;
}

}  // namespace

RecordResult record_command(const std::vector<std::string>& command, const std::string& out_path,
                            const RecordOptions& opts) {
  if (command.empty()) throw RecordError("no command to record");
  if (opts.recorder == Recorder::Qemu || (opts.recorder == Recorder::Auto && qemu_unavailable(opts).empty()))
    return record_with_qemu(command, out_path, opts);
  if (!program_in_path(opts.valgrind))
    throw RecordError(fmt::format("'{}' not found: install valgrind (scripts/install-deps.sh)", opts.valgrind));
  std::ofstream out = record_common::create_trace_file(out_path);

  // valgrind's logs; removed on every exit path (Ctrl-C included: it stops
  // the recorded program, not the recording).
  const record_common::TempDir dir("contpte-record");
  const record_common::RecordingScope scope;
  fs::path fifo;
  const pid_t pid = start_valgrind(command, opts, dir.path(), fifo);
  Fd fd(open(fifo.c_str(), O_RDONLY | O_NONBLOCK));
  if (fd.fd < 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    throw RecordError(fmt::format("cannot open the log FIFO: {}", strerror(errno)));
  }

  TraceHeader header;
  header.command = command;
  header.isa = host_isa();
  TraceWriter writer(out, header);
  RecordResult res;
  std::deque<PendingFork> forks;
  auto tick = [&] {
    if (opts.progress) opts.progress(RecordProgress{res.log_bytes, writer.totals().accesses, writer.next_stream()});
  };
  int wstatus = 0;
  bool exited = false;
  {
    StreamParser p(writer, RecordedSpace(writer), forks, res);
    std::vector<char> buf(1 << 20);
    for (;;) {
      pollfd pfd{fd.fd, POLLIN, 0};
      const int ready = poll(&pfd, 1, 200);
      if (ready > 0) {
        const ssize_t n = read(fd.fd, buf.data(), buf.size());
        if (n > 0) {
          p.feed(buf.data(), static_cast<std::size_t>(n));
          tick();
          continue;
        }
        // EOF after a writer was there (POLLHUP): valgrind closed its log.
        if (n == 0 && (pfd.revents & POLLHUP)) break;
      }
      // No writer yet, or a slow program: is valgrind still running? (It
      // may have failed before ever opening its log.)
      if (!exited && waitpid(pid, &wstatus, WNOHANG) == pid) exited = true;
      if (exited && ready <= 0) break;
    }
    p.end();
  }
  if (!exited) waitpid(pid, &wstatus, 0);
  while (waitpid(-1, nullptr, 0) > 0) {  // the forked children, reparented to us
  }
  res.exit_status = record_common::exit_status_of(wstatus);
  if (res.exit_status == 127 && res.log_bytes == 0)
    throw RecordError(fmt::format("could not run {} (exit 127)", opts.valgrind));

  convert_children(
      writer, forks, res,
      [&](long child) -> std::unique_ptr<std::istream> {
        auto in = std::make_unique<std::ifstream>(dir.path() / fmt::format("vg.{}", child), std::ios::binary);
        if (!*in) return nullptr;
        return in;
      },
      tick);
  record_common::finish_recording(writer, res);
  return res;
}

}  // namespace contpte
