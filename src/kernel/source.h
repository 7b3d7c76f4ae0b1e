// kernel/source.h — from a Linux tree to one C translation unit.
//
// Owns: which files of the tree are read (and that they exist), splitting
// them into top-level items (macros, functions, declarations), choosing the
// items the exported arch functions need (by name, transitively), the
// small instrumentation (fold/unfold counting, lockless retry), the
// exported wrappers and the core-mm fallbacks for helpers the tree lacks.
// Must not know: compiling, caching, loading (kernel/build.h).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "arch/granule.h"

namespace contpte::kernel {

// Bad tree or failed build: exit 2 with this message.
class KernelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct KernelConfig {
  const Geometry* geo = nullptr;
  bool contpte = true;   // CONFIG_ARM64_CONTPTE
  bool debug_vm = true;  // CONFIG_DEBUG_VM
  std::string describe() const;  // "4K, CONFIG_ARM64_CONTPTE=y, CONFIG_DEBUG_VM=y"
};

// The files read from the tree, with their paths relative to its root.
struct TreeFiles {
  std::string dir;
  std::vector<std::pair<std::string, std::string>> files;  // (relative path, text)
  const std::string& text(std::string_view rel) const;
};

// The files src/kernel reads, relative to the tree's root.
const std::vector<std::string>& tree_file_names();

// Reads them; throws KernelError naming the first one missing.
TreeFiles read_tree(const std::string& dir);

// The translation unit (it includes "kshim.h").
std::string generate_source(const TreeFiles& tree, const KernelConfig& cfg);

// Splitting of C text into top-level items (exposed for tests).
struct CItem {
  enum class Kind : std::uint8_t { Directive, Define, Code } kind;
  std::string name;  // the macro, function or object it defines ("" for directives)
  std::string text;
  unsigned line = 0;  // first line in the file (1-based)
  std::vector<std::string> idents;
};
std::vector<CItem> split_items(const std::string& text);

}  // namespace contpte::kernel
