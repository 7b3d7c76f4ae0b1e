#include "kernel/source.h"

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "kernel/embedded.h"

namespace contpte::kernel {

namespace {

constexpr std::string_view kHwdef = "arch/arm64/include/asm/pgtable-hwdef.h";
constexpr std::string_view kProt = "arch/arm64/include/asm/pgtable-prot.h";
constexpr std::string_view kPgtable = "arch/arm64/include/asm/pgtable.h";
constexpr std::string_view kFault = "arch/arm64/mm/fault.c";
constexpr std::string_view kMmu = "arch/arm64/mm/mmu.c";
constexpr std::string_view kContpte = "arch/arm64/mm/contpte.c";

bool ident_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// Comments become spaces (newlines kept, so line numbers still hold);
// string and character literals are kept as they are.
std::string strip_comments(const std::string& s) {
  std::string out = s;
  for (std::size_t i = 0; i < s.size();) {
    if (s[i] == '"' || s[i] == '\'') {
      const char q = s[i++];
      while (i < s.size() && s[i] != q && s[i] != '\n') i += s[i] == '\\' ? 2 : 1;
      ++i;
    } else if (s.compare(i, 2, "/*") == 0) {
      const std::size_t end = s.find("*/", i + 2);
      const std::size_t stop = end == std::string::npos ? s.size() : end + 2;
      for (; i < stop; ++i)
        if (out[i] != '\n') out[i] = ' ';
    } else if (s.compare(i, 2, "//") == 0) {
      for (; i < s.size() && s[i] != '\n'; ++i) out[i] = ' ';
    } else {
      ++i;
    }
  }
  return out;
}

std::vector<std::string> identifiers(const std::string& text) {
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] == '"') {  // skip string literals: their words name nothing
      ++i;
      while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
      ++i;
    } else if (ident_start(text[i])) {
      std::size_t j = i;
      while (j < text.size() && ident_char(text[j])) ++j;
      ids.emplace_back(text, i, j - i);
      i = j;
    } else {
      ++i;
    }
  }
  return ids;
}

std::string trim_left(const std::string& s) {
  std::size_t i = s.find_first_not_of(" \t");
  return i == std::string::npos ? std::string() : s.substr(i);
}

// The name a code item defines: the identifier before its first top-level
// '(' (a function or prototype), else before a '[' or the final ';'.
std::string code_item_name(const std::string& text) {
  int depth = 0;
  std::size_t cut = std::string::npos;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '{') ++depth;
    if (c == '}') --depth;
    if (depth == 0 && (c == '(' || c == '[' || c == '=' || c == ';')) {
      cut = i;
      break;
    }
  }
  if (cut == std::string::npos) return {};
  std::size_t j = cut;
  while (j > 0 && std::isspace(static_cast<unsigned char>(text[j - 1]))) --j;
  std::size_t k = j;
  while (k > 0 && ident_char(text[k - 1])) --k;
  return text.substr(k, j - k);
}

bool conditional_directive(const std::string& text) {
  static const std::regex re(R"(^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b)");
  return std::regex_search(text, re);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

unsigned log2u(unsigned v) {
  unsigned r = 0;
  while ((1u << r) < v) ++r;
  return r;
}

}  // namespace

std::string KernelConfig::describe() const {
  return fmt::format("{}, CONFIG_ARM64_CONTPTE={}, CONFIG_DEBUG_VM={}", geo->name,
                     contpte ? 'y' : 'n', debug_vm ? 'y' : 'n');
}

const std::vector<std::string>& tree_file_names() {
  static const std::vector<std::string> names{std::string(kContpte), std::string(kPgtable),
                                              std::string(kHwdef),   std::string(kProt),
                                              std::string(kFault),   std::string(kMmu)};
  return names;
}

const std::string& TreeFiles::text(std::string_view rel) const {
  for (const auto& [name, text] : files)
    if (name == rel) return text;
  throw KernelError(fmt::format("{}: no {} read", dir, rel));
}

TreeFiles read_tree(const std::string& dir) {
  TreeFiles t;
  t.dir = dir;
  std::ifstream probe(dir + "/.");
  for (const auto& rel : tree_file_names()) {
    const std::string path = dir + "/" + rel;
    std::ifstream in(path, std::ios::binary);
    if (!in)
      throw KernelError(fmt::format("{}: not a Linux tree with the arm64 contpte code: missing {}",
                                    dir, path));
    t.files.emplace_back(rel, read_file(path));
  }
  return t;
}

std::vector<CItem> split_items(const std::string& raw) {
  const std::string text = strip_comments(raw);
  std::vector<CItem> items;
  std::istringstream in(text);
  std::string line;
  unsigned lineno = 0;
  CItem cur{CItem::Kind::Code, {}, {}, 0, {}};
  bool in_code = false;
  int depth = 0;
  bool is_function = false;  // a '(' came before the first '{'
  bool seen_brace = false;
  auto finish_code = [&] {
    cur.name = code_item_name(cur.text);
    cur.idents = identifiers(cur.text);
    items.push_back(std::move(cur));
    cur = CItem{CItem::Kind::Code, {}, {}, 0, {}};
    in_code = false;
    depth = 0;
    is_function = seen_brace = false;
  };
  while (std::getline(in, line)) {
    ++lineno;
    const std::string t = trim_left(line);
    if (!in_code && !t.empty() && t[0] == '#') {
      CItem d{CItem::Kind::Directive, {}, line + "\n", lineno, {}};
      while (!line.empty() && line.back() == '\\' && std::getline(in, line)) {
        ++lineno;
        d.text += line + "\n";
      }
      static const std::regex def(R"(^\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*))");
      static const std::regex inc(R"(^\s*#\s*include\b)");
      std::smatch m;
      if (std::regex_search(d.text, m, def)) {
        d.kind = CItem::Kind::Define;
        d.name = m[1];
        d.idents = identifiers(d.text.substr(static_cast<std::size_t>(m.position(0) + m.length(0))));
      } else if (std::regex_search(d.text, inc) || !conditional_directive(d.text)) {
        continue;  // includes, #undef, #error, #pragma: not carried over
      }
      items.push_back(std::move(d));
      continue;
    }
    if (!in_code) {
      if (t.empty()) continue;
      in_code = true;
      cur.line = lineno;
    }
    cur.text += line + "\n";
    if (!t.empty() && t[0] == '#') continue;  // a directive inside a body
    bool done = false;
    for (std::size_t i = 0; i < line.size() && !done; ++i) {
      const char c = line[i];
      if (c == '"' || c == '\'') {
        const char q = c;
        for (++i; i < line.size() && line[i] != q; i += line[i] == '\\' ? 2 : 1) {}
        continue;
      }
      if (c == '(' && depth == 0 && !seen_brace) is_function = true;
      if (c == '=' && depth == 0 && !seen_brace) is_function = false;
      if (c == '{') {
        seen_brace = true;
        ++depth;
      } else if (c == '}') {
        if (--depth == 0 && is_function) done = true;
      } else if (c == ';' && depth == 0) {
        done = true;
      }
    }
    if (done) finish_code();
  }
  if (in_code) finish_code();
  return items;
}

namespace {

// What the exported wrappers call: the arch API core-mm uses.
const std::vector<std::string>& api_roots() {
  static const std::vector<std::string> roots{
      "ptep_get", "ptep_get_lockless", "set_ptes", "pte_clear", "ptep_get_and_clear",
      "clear_full_ptes", "get_and_clear_full_ptes", "ptep_test_and_clear_young",
      "ptep_clear_flush_young", "wrprotect_ptes", "ptep_set_wrprotect", "ptep_set_access_flags",
      "clear_young_dirty_ptes", "ptep_modify_prot_start", "ptep_modify_prot_commit",
      "modify_prot_start_ptes", "modify_prot_commit_ptes", "pte_batch_hint",
      "__ptep_set_access_flags", "pgattr_change_is_safe", "pte_advance_pfn", "pte_valid_cont",
      "pte_cont", "pte_dirty", "pte_young", "pte_mkdirty", "pte_mkyoung", "pte_pfn",
      "pte_pgprot", "pfn_pte", "CONT_PTES", "CONT_PTE_SIZE"};
  return roots;
}

// Names the shim defines itself (kshim.h's macros and functions): never
// taken from the tree, where they are declarations of code not read.
const std::set<std::string>& shim_names() {
  static const std::set<std::string> names = [] {
    std::set<std::string> n;
    for (const CItem& it : split_items(embedded::kShim))
      if (!it.name.empty()) n.insert(it.name);
    return n;
  }();
  return names;
}

struct SourceFile {
  std::string_view path;
  std::vector<CItem> items;
  std::vector<bool> selected;
};

// The small instrumentation the simulator needs from contpte.c: every
// convert counted as a fold or unfold, every lockless restart announced
// (the explorer bounds a spinning reader by it). Inserted on the same
// line, so the tree's line numbers still hold.
void instrument(CItem& item) {
  if (item.name == "contpte_convert") {
    const std::size_t brace = item.text.find('{');
    if (brace != std::string::npos)
      item.text.insert(brace + 1, " kx_convert_hook(pte_cont(pte));");
  } else if (item.name == "contpte_ptep_get_lockless") {
    static const std::regex re(R"(goto\s+retry\s*;)");
    item.text = std::regex_replace(item.text, re, "{ kx_lockless_retry_hook(); goto retry; }");
  }
}

constexpr std::string_view kWrappers = R"KX(
/* ---- exported wrappers (generated by contpte src/kernel) ---- */
#define KX_P(p) ((pte_t *)(p))
static const struct kx_env *kx_swap_env(const struct kx_env *e) {
  const struct kx_env *prev = kx_cur;
  kx_cur = e;
  return prev;
}
static u64 kx_ptep_get(u64 *p) { return pte_val(ptep_get(KX_P(p))); }
#ifdef ptep_get_lockless
static u64 kx_ptep_get_lockless(u64 *p) { return pte_val(ptep_get_lockless(KX_P(p))); }
#define KX_FB_LOCKLESS ""
#else
/* core-mm's generic version on a 64-bit PTE: one READ_ONCE, as ptep_get */
static u64 kx_ptep_get_lockless(u64 *p) {
  kx_fallback("ptep_get_lockless");
  return pte_val(ptep_get(KX_P(p)));
}
#define KX_FB_LOCKLESS "ptep_get_lockless "
#endif
static void kx_set_ptes(u64 addr, u64 *p, u64 pte, unsigned nr) {
  set_ptes(&kx_mm, addr, KX_P(p), __pte(pte), nr);
}
static void kx_pte_clear(u64 addr, u64 *p) { pte_clear(&kx_mm, addr, KX_P(p)); }
static u64 kx_ptep_get_and_clear(u64 addr, u64 *p) {
  return pte_val(ptep_get_and_clear(&kx_mm, addr, KX_P(p)));
}
#ifdef clear_full_ptes
static void kx_clear_full_ptes(u64 addr, u64 *p, unsigned nr, int full) {
  clear_full_ptes(&kx_mm, addr, KX_P(p), nr, full);
}
#else
#define kx_clear_full_ptes NULL
#endif
#ifdef get_and_clear_full_ptes
static u64 kx_get_and_clear_full_ptes(u64 addr, u64 *p, unsigned nr, int full) {
  return pte_val(get_and_clear_full_ptes(&kx_mm, addr, KX_P(p), nr, full));
}
#else
#define kx_get_and_clear_full_ptes NULL
#endif
static int kx_ptep_test_and_clear_young(u64 addr, u64 *p) {
  return ptep_test_and_clear_young(&kx_vma, addr, KX_P(p));
}
static int kx_ptep_clear_flush_young(u64 addr, u64 *p) {
  return ptep_clear_flush_young(&kx_vma, addr, KX_P(p));
}
#ifdef wrprotect_ptes
static void kx_wrprotect_ptes(u64 addr, u64 *p, unsigned nr) {
  wrprotect_ptes(&kx_mm, addr, KX_P(p), nr);
}
#else
#define kx_wrprotect_ptes NULL
#endif
static void kx_ptep_set_wrprotect(u64 addr, u64 *p) { ptep_set_wrprotect(&kx_mm, addr, KX_P(p)); }
#ifdef clear_young_dirty_ptes
static void kx_clear_young_dirty_ptes(u64 addr, u64 *p, unsigned nr, unsigned flags) {
  clear_young_dirty_ptes(&kx_vma, addr, KX_P(p), nr, (cydp_t)flags);
}
#else
#define kx_clear_young_dirty_ptes NULL
#endif
static int kx_ptep_set_access_flags(u64 addr, u64 *p, u64 entry, int dirty) {
  return ptep_set_access_flags(&kx_vma, addr, KX_P(p), __pte(entry), dirty);
}
static u64 kx_ptep_modify_prot_start(u64 addr, u64 *p) {
  return pte_val(ptep_modify_prot_start(&kx_vma, addr, KX_P(p)));
}
static void kx_ptep_modify_prot_commit(u64 addr, u64 *p, u64 old, u64 pte) {
  ptep_modify_prot_commit(&kx_vma, addr, KX_P(p), __pte(old), __pte(pte));
}
#ifdef modify_prot_start_ptes
static u64 kx_modify_prot_start_ptes(u64 addr, u64 *p, unsigned nr) {
  return pte_val(modify_prot_start_ptes(&kx_vma, addr, KX_P(p), nr));
}
#define KX_FB_START ""
#else
/* core-mm's generic batched start (Linux 6.17): one start per PTE, the
 * access/dirty state of all of them gathered into the first. */
static u64 kx_modify_prot_start_ptes(u64 addr, u64 *p, unsigned nr) {
  kx_fallback("modify_prot_start_ptes");
  pte_t first = ptep_modify_prot_start(&kx_vma, addr, KX_P(p));
  for (unsigned i = 1; i < nr; i++) {
    pte_t next = ptep_modify_prot_start(&kx_vma, addr + i * PAGE_SIZE, KX_P(p) + i);
    if (pte_dirty(next)) first = pte_mkdirty(first);
    if (pte_young(next)) first = pte_mkyoung(first);
  }
  return pte_val(first);
}
#define KX_FB_START "modify_prot_start_ptes "
#endif
#ifdef modify_prot_commit_ptes
static void kx_modify_prot_commit_ptes(u64 addr, u64 *p, u64 old, u64 pte, unsigned nr) {
  modify_prot_commit_ptes(&kx_vma, addr, KX_P(p), __pte(old), __pte(pte), nr);
}
#define KX_FB_COMMIT ""
#else
/* core-mm's generic batched commit: one commit per PTE, PFNs advancing. */
static void kx_modify_prot_commit_ptes(u64 addr, u64 *p, u64 old, u64 pte, unsigned nr) {
  kx_fallback("modify_prot_commit_ptes");
  pte_t o = __pte(old), n = __pte(pte);
  for (unsigned i = 0; i < nr; i++) {
    ptep_modify_prot_commit(&kx_vma, addr + i * PAGE_SIZE, KX_P(p) + i, o, n);
    o = pte_next_pfn(o);
    n = pte_next_pfn(n);
  }
}
#define KX_FB_COMMIT "modify_prot_commit_ptes "
#endif
#ifdef pte_batch_hint
static unsigned kx_pte_batch_hint(u64 *p, u64 pte) { return pte_batch_hint(KX_P(p), __pte(pte)); }
#define KX_FB_HINT ""
#else
/* core-mm's generic hint: no batching. */
static unsigned kx_pte_batch_hint(u64 *p, u64 pte) { (void)p, (void)pte; return 1; }
#define KX_FB_HINT "pte_batch_hint "
#endif

static const struct kx_api kx_the_api = {
    KX_ABI_VERSION, PAGE_SHIFT, CONT_PTES,
    KX_FB_LOCKLESS KX_FB_START KX_FB_COMMIT KX_FB_HINT,
    kx_swap_env, kx_ptep_get, kx_ptep_get_lockless, kx_set_ptes, kx_pte_clear,
    kx_ptep_get_and_clear, kx_clear_full_ptes, kx_get_and_clear_full_ptes,
    kx_ptep_test_and_clear_young, kx_ptep_clear_flush_young, kx_wrprotect_ptes,
    kx_ptep_set_wrprotect, kx_clear_young_dirty_ptes, kx_ptep_set_access_flags,
    kx_ptep_modify_prot_start, kx_ptep_modify_prot_commit, kx_modify_prot_start_ptes,
    kx_modify_prot_commit_ptes, kx_pte_batch_hint};

__attribute__((visibility("default"))) const struct kx_api *contpte_kx_api(void) {
  return &kx_the_api;
}
)KX";

}  // namespace

std::string generate_source(const TreeFiles& tree, const KernelConfig& cfg) {
  const Geometry& g = *cfg.geo;
  std::string out = fmt::format(
      "/* Generated by contpte from {} ({}). Not Linux code of the project:\n"
      " * the items below are read from the user's tree at run time. */\n"
      "#define KX_PAGE_SHIFT {}\n#define KX_CONT_PTE_SHIFT {}\n#define KX_CONT_PMD_SHIFT {}\n"
      "#define KX_PGTABLE_LEVELS {}\n#define CONFIG_ARM64_{}_PAGES 1\n",
      tree.dir, cfg.describe(), g.page_shift, log2u(g.cont_ptes), log2u(g.cont_pmds), g.levels,
      g.name);
  if (cfg.contpte) out += "#define CONFIG_ARM64_CONTPTE 1\n";
  if (cfg.debug_vm) out += "#define CONFIG_DEBUG_VM 1\n";
  out += "#include \"kshim.h\"\n";

  std::vector<SourceFile> files;
  for (std::string_view p : {kHwdef, kProt, kPgtable, kFault, kMmu, kContpte}) {
    if (p == kContpte && !cfg.contpte) continue;  // obj-$(CONFIG_ARM64_CONTPTE)
    SourceFile f{p, split_items(tree.text(p)), {}};
    f.selected.assign(f.items.size(), false);
    files.push_back(std::move(f));
  }

  // Every definition by name; contpte.c is taken whole.
  std::multimap<std::string, std::pair<std::size_t, std::size_t>> defs;
  std::vector<std::string> work(api_roots().begin(), api_roots().end());
  for (std::size_t fi = 0; fi < files.size(); ++fi)
    for (std::size_t ii = 0; ii < files[fi].items.size(); ++ii) {
      const CItem& it = files[fi].items[ii];
      if (it.kind == CItem::Kind::Directive) continue;
      if (files[fi].path == kContpte) {
        files[fi].selected[ii] = true;
        work.insert(work.end(), it.idents.begin(), it.idents.end());
      } else if (!it.name.empty()) {
        defs.emplace(it.name, std::pair{fi, ii});
      }
    }
  std::set<std::string> seen;
  while (!work.empty()) {
    std::string id = std::move(work.back());
    work.pop_back();
    if (shim_names().count(id) || !seen.insert(id).second) continue;
    auto [lo, hi] = defs.equal_range(id);
    for (auto it = lo; it != hi; ++it) {
      auto [fi, ii] = it->second;
      if (files[fi].selected[ii]) continue;
      files[fi].selected[ii] = true;
      const CItem& item = files[fi].items[ii];
      work.insert(work.end(), item.idents.begin(), item.idents.end());
    }
  }

  for (SourceFile& f : files) {
    out += fmt::format("\n/* ---- from {} ---- */\n", f.path);
    for (std::size_t i = 0; i < f.items.size(); ++i) {
      CItem& it = f.items[i];
      if (it.kind == CItem::Kind::Directive) {
        out += it.text;
      } else if (f.selected[i]) {
        if (f.path == kContpte) instrument(it);
        out += fmt::format("#line {} \"{}\"\n", it.line, f.path);
        out += it.text;
      }
    }
  }
  out += "#line 1 \"<contpte wrappers>\"\n";
  out += kWrappers;
  return out;
}

}  // namespace contpte::kernel
