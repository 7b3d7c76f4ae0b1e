#include "kernel/build.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "kernel/embedded.h"

extern char** environ;

namespace contpte::kernel {

namespace fs = std::filesystem;

namespace {

std::uint64_t fnv1a(std::uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// Runs argv with stdout and stderr to `log`; returns the exit status (-1:
// could not start).
int run(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw KernelError(fmt::format("kernel engine: cannot write {}", path));
}

// The compiler's identity is part of the cache key.
const std::string& compiler_id() {
  static const std::string id = [] {
    const std::string tmp = (fs::temp_directory_path() / fmt::format("contpte-gcc-{}", getpid())).string();
    const int rc = run({"gcc", "-dumpfullversion", "-dumpmachine"}, tmp);
    std::string out = rc == 0 ? slurp(tmp) : std::string();
    std::error_code ec;
    fs::remove(tmp, ec);
    return out;
  }();
  return id;
}

// The compiler's first errors, for the message (the whole log stays on disk).
std::string first_errors(const std::string& log) {
  std::istringstream in(slurp(log));
  std::string line, out;
  unsigned n = 0;
  while (std::getline(in, line) && n < 12) {
    if (line.find("error") == std::string::npos && n == 0) continue;
    out += "  " + line + "\n";
    ++n;
  }
  return out.empty() ? "  (no compiler output)\n" : out;
}

std::vector<std::string> split_names(std::string_view s) {
  std::vector<std::string> out;
  std::istringstream in{std::string(s)};
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

}  // namespace

std::string cache_root() {
  if (const char* d = std::getenv("CONTPTE_CACHE_DIR"); d && *d) return d;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.cache/contpte";
}

std::shared_ptr<const ExternalEngine> load_engine(const TreeFiles& tree, const KernelConfig& cfg,
                                                  std::ostream* progress, BuildInfo* info) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string source = generate_source(tree, cfg);
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::string_view part : {std::string_view(source), std::string_view(embedded::kShim),
                                std::string_view(embedded::kAbi), std::string_view(compiler_id())})
    h = fnv1a(fnv1a(h, part), "\x1f");
  const std::string dir = fmt::format("{}/kernel/{:016x}-{}-contpte{}", cache_root(), h,
                                      cfg.geo->name, cfg.contpte ? "y" : "n");
  const std::string so = dir + "/engine.so";
  bool built = false;
  if (!fs::exists(so)) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw KernelError(fmt::format("kernel engine: cannot create the cache directory {}: {}", dir, ec.message()));
    write_file(dir + "/kshim.h", embedded::kShim);
    write_file(dir + "/kx_abi.h", embedded::kAbi);
    write_file(dir + "/engine.c", source);
    if (progress)
      *progress << fmt::format("contpte: building the kernel engine of {} ({}) ...\n", tree.dir,
                               cfg.describe())
                << std::flush;
    const std::string tmp = fmt::format("{}/engine.so.tmp{}", dir, getpid());
    const int rc = run({"gcc", "-std=gnu11", "-O2", "-fPIC", "-shared", "-fexceptions",
                        "-fvisibility=hidden", "-w", "-Werror=implicit-function-declaration", "-I", dir, "-o", tmp, dir + "/engine.c"},
                       dir + "/build.log");
    if (rc != 0) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      if (rc < 0) throw KernelError("kernel engine: cannot run gcc (install it: scripts/install-deps.sh)");
      throw KernelError(fmt::format(
          "kernel engine: the code of {} does not compile against contpte's shim ({}).\n"
          "generated source: {}/engine.c\ncompiler's first errors:\n{}",
          tree.dir, cfg.describe(), dir, first_errors(dir + "/build.log")));
    }
    fs::rename(tmp, so, ec);  // atomic: a concurrent build of the same key wins either way
    if (ec) throw KernelError(fmt::format("kernel engine: cannot install {}: {}", so, ec.message()));
    built = true;
  }
  void* handle = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) throw KernelError(fmt::format("kernel engine: cannot load {}: {}", so, dlerror()));
  auto api_fn = reinterpret_cast<kx_api_fn>(dlsym(handle, KX_API_SYMBOL));
  const kx_api* api = api_fn ? api_fn() : nullptr;
  if (!api || api->abi_version != KX_ABI_VERSION || api->page_shift != cfg.geo->page_shift ||
      api->cont_ptes != cfg.geo->cont_ptes)
    throw KernelError(fmt::format("kernel engine: {} is not an engine for {} (remove it to rebuild)", so,
                                  cfg.describe()));
  // The handle stays open for the life of the process: the engine's code
  // may be on the stack of any thread until then.
  auto engine = std::make_shared<ExternalEngine>();
  engine->api = api;
  engine->name = fmt::format("{} ({})", tree.dir, cfg.describe());
  engine->fallbacks = split_names(api->fallbacks);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (built && progress) *progress << fmt::format("contpte: built in {:.1f} s (cache: {})\n", secs, dir) << std::flush;
  if (info) *info = BuildInfo{dir, built, secs};
  return engine;
}

KernelEngines::KernelEngines(std::string dir, std::ostream* progress)
    : tree_(read_tree(dir)), progress_(progress) {}

const ExternalEngine& KernelEngines::get(const Geometry& geo, bool contpte) {
  std::lock_guard lock(mu_);
  auto key = std::pair{std::string(geo.name), contpte};
  auto it = engines_.find(key);
  if (it == engines_.end())
    it = engines_.emplace(key, load_engine(tree_, KernelConfig{&geo, contpte, debug_vm_}, progress_)).first;
  return *it->second;
}

}  // namespace contpte::kernel
