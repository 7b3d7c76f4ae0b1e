// trace/record.h — `contpte record`: runs a command under valgrind's
// lackey tool and turns its memory-access and system-call log into a trace
// (trace/trace.h).
//
// Owns: running valgrind, reading its log as it is written (a FIFO for the
// recorded process; forked children's logs are files, read after they
// exit), parsing lackey's access lines and valgrind's --trace-syscalls
// lines, and the model of the recorded address space that turns absolute
// addresses into mapping ids and offsets.
// Must not know: how a trace is replayed.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "trace/trace.h"

namespace contpte {

// Recording could not run (no valgrind, unwritable output): exit 2.
class RecordError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RecordProgress {
  std::uint64_t log_bytes = 0;  // valgrind log parsed so far
  std::uint64_t accesses = 0;   // accesses written so far
  std::uint32_t streams = 0;    // processes seen so far
};

enum class Recorder { Auto, Qemu, Valgrind };

struct RecordOptions {
  // Auto: qemu where qemu-user (and the plugin) are installed, else valgrind.
  Recorder recorder = Recorder::Auto;
  std::string valgrind = "valgrind";  // the program, looked up in PATH
  // The QEMU recorder (trace/record_qemu.cpp): the plugin (empty: found
  // next to the executable or where it is installed; $CONTPTE_QEMU_PLUGIN
  // overrides), the sysroot for programs of another ISA (-L; empty:
  // $CONTPTE_SYSROOT, else the default one scripts/arm64-sysroot.sh fills).
  std::string qemu_plugin;
  std::string sysroot;
  std::function<void(const RecordProgress&)> progress;
  // Tests only: the QEMU recorder sleeps this long per byte of every chunk
  // it converts, to play a recorder that lags far behind its guests (as it
  // does under ASan), where processes connect in orders a fast one rarely
  // sees. The trace must be the same.
  std::uint32_t lag_ns_per_byte = 0;
  // Tests only: false makes the QEMU plugin send every block run as an
  // event of its own instead of coding it against its prediction
  // (plugins/qemu/record_protocol.h); the trace must be the same.
  bool qemu_predict_blocks = true;
};

struct RecordResult {
  int exit_status = 0;         // the command's (128 + signal when killed)
  TraceTotals totals;
  std::uint32_t streams = 0;
  std::uint64_t compressed_bytes = 0;
  std::uint64_t log_bytes = 0;
  std::uint64_t unparsed_lines = 0;  // log lines neither access nor syscall nor valgrind's own
};

// Records `command` into `out_path`. Throws RecordError.
RecordResult record_command(const std::vector<std::string>& command, const std::string& out_path,
                            const RecordOptions& opts = {});

// The parser on its own, for a log already captured (tests): stream 0 is
// `log`; `child_log(pid)` opens the log of a forked child (null: none).
RecordResult convert_log(std::istream& log, TraceWriter& writer,
                         const std::function<std::unique_ptr<std::istream>(long pid)>& child_log,
                         const std::function<void(const RecordProgress&)>& progress = {});

// True when `program` is an executable in PATH (or a path to one).
bool program_in_path(const std::string& program);
// Its full path ("" when not found).
std::string find_in_path(const std::string& program);

// The QEMU recorder (trace/record_qemu.cpp). `qemu_available` says why
// not (empty: available).
std::string qemu_unavailable(const RecordOptions& opts);
RecordResult record_with_qemu(const std::vector<std::string>& command, const std::string& out_path,
                              const RecordOptions& opts);

}  // namespace contpte
