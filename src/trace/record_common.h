// trace/record_common.h — what both recorders (trace/record.cpp: valgrind;
// trace/record_qemu.cpp: QEMU) do around a recording, in one place: the
// output file, a temporary directory, Ctrl-C and orphaned descendants, the
// exit status and the result's totals.
#pragma once

#include <sys/types.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>
#include <string>

#include "trace/record.h"

namespace contpte::record_common {

// The trace file, created (truncated); throws RecordError naming it.
std::ofstream create_trace_file(const std::string& path);

// A fresh directory under the temporary directory, named PREFIX-XXXXXX,
// removed with everything in it on every exit path.
class TempDir {
 public:
  explicit TempDir(const char* prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// While it lives: Ctrl-C stops the recorded program (the whole foreground
// group gets it), not the recording, so what the program did until then is
// written as a complete trace; and this process is a child subreaper, so
// descendants that outlive the recorded command are reparented here and
// waited for (their events end when they exit).
class RecordingScope {
 public:
  RecordingScope();
  ~RecordingScope();
  RecordingScope(const RecordingScope&) = delete;
  RecordingScope& operator=(const RecordingScope&) = delete;

 private:
  struct sigaction old_ {};
};

// Forks and executes argv (PATH searched) with Ctrl-C back to its default;
// `in_child` runs in the child first (it may _exit). Exit status 127: it
// could not be executed. Throws RecordError when fork fails.
pid_t spawn_recorded(std::vector<std::string> argv, const std::function<void()>& in_child = {});

// The shell's view of a wait status: the exit code, or 128 + the signal.
int exit_status_of(int wstatus);

// Writes the end record and copies the writer's totals into `res`.
void finish_recording(TraceWriter& writer, RecordResult& res);

}  // namespace contpte::record_common
