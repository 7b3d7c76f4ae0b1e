#include "trace/record_common.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace contpte::record_common {

std::ofstream create_trace_file(const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw RecordError(fmt::format("cannot create '{}': {}", path, std::strerror(errno)));
  return out;
}

TempDir::TempDir(const char* prefix) {
  std::string t = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
  if (!mkdtemp(t.data()))
    throw RecordError(fmt::format("cannot create a temporary directory: {}", std::strerror(errno)));
  path_ = t;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

RecordingScope::RecordingScope() {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGINT, &ign, &old_);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
}

RecordingScope::~RecordingScope() { sigaction(SIGINT, &old_, nullptr); }

pid_t spawn_recorded(std::vector<std::string> argv, const std::function<void()>& in_child) {
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw RecordError(fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) {
    // The recorder ignores Ctrl-C while recording; the program must not.
    signal(SIGINT, SIG_DFL);
    if (in_child) in_child();
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
  return pid;
}

int exit_status_of(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return 1;
}

void finish_recording(TraceWriter& writer, RecordResult& res) {
  writer.finish();
  res.totals = writer.totals();
  res.streams = writer.next_stream();
  res.compressed_bytes = writer.compressed_bytes();
}

}  // namespace contpte::record_common
