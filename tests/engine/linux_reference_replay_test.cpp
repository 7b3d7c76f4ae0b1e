// tests/engine/linux_reference_replay_test.cpp — the engine against Linux
// itself: replays tests/data/linux-reference/engine/*.cpt (random sequences
// that Linux 6.12.117's own arm64 contpte code ran in user space, with the
// stored PTE bits and fold/unfold counts it produced) directly on the engine
// API, without the scenario runner, so a disagreement points at the engine.
//
// Understands only what those files use: granule, contpte, alloc, the
// PTE-level statements of docs/scenario.md, `expect raw` and `expect stat
// folds|unfolds ==`. Anything else is a test error naming file and line.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine_world.h"

namespace contpte::test {
namespace {

namespace fs = std::filesystem;

struct Statement {
  std::string verb;
  std::vector<std::string> args;                 // positional words
  std::map<std::string, std::string> keys;       // key=value
  bool has(const std::string& word) const {
    for (const auto& a : args)
      if (a == word) return true;
    return false;
  }
};

Statement tokenize(const std::string& line) {
  std::istringstream is(line.substr(0, line.find('#')));
  Statement st;
  is >> st.verb;
  for (std::string w; is >> w;) {
    const auto eq = w.find('=');
    if (eq == std::string::npos || eq == 0)
      st.args.push_back(w);
    else
      st.keys[w.substr(0, eq)] = w.substr(eq + 1);
  }
  return st;
}

class Replayer {
 public:
  explicit Replayer(const fs::path& file) : file_(file) {}

  // Runs the file; returns the failures ("file:line: ...").
  std::vector<std::string> run() {
    std::ifstream in(file_);
    std::string line;
    for (line_ = 1; std::getline(in, line); ++line_) {
      const Statement st = tokenize(line);
      if (st.verb.empty()) continue;
      try {
        execute(st);
      } catch (const std::exception& e) {
        fail(std::string("cannot replay: ") + e.what());
        break;
      }
      if (failures_.size() >= 10) break;
    }
    return failures_;
  }

 private:
  void fail(const std::string& msg) {
    std::ostringstream os;
    os << file_.filename().string() << ":" << line_ << ": " << msg;
    failures_.push_back(os.str());
  }

  World& w() {
    if (!world_) {
      world_ = std::make_unique<World>(granule_, variant_);
    }
    return *world_;
  }
  std::uint64_t num(const std::string& s) { return std::stoull(s, nullptr, 0); }
  VirtAddr addr(const Statement& st) {
    if (st.args.empty()) throw std::runtime_error("missing address");
    return VirtAddr{num(st.args[0])};
  }
  PteSlot slot(VirtAddr a) { return w().slot(a); }
  Pfn frame(const std::string& s) {
    const auto plus = s.find('+');
    const std::string name = s.substr(0, plus);
    auto it = folios_.find(name);
    if (it == folios_.end()) throw std::runtime_error("unknown folio " + name);
    return it->second + (plus == std::string::npos ? 0 : num(s.substr(plus + 1)));
  }
  Prot prot(const Statement& st) {
    auto it = st.keys.find("prot");
    if (it == st.keys.end()) throw std::runtime_error("missing prot=");
    auto p = prot_from_name(it->second);
    if (!p) throw std::runtime_error("bad prot " + it->second);
    return *p;
  }
  unsigned nr(const Statement& st) {
    auto it = st.keys.find("nr");
    if (it == st.keys.end()) throw std::runtime_error("missing nr=");
    return static_cast<unsigned>(num(it->second));
  }

  void execute(const Statement& st) {
    const std::string& v = st.verb;
    if (v == "granule") {
      granule_ = granule_from_name(st.args.at(0)).value();
      return;
    }
    if (v == "contpte") {
      variant_ = variant_from_name(st.args.at(0)).value();
      return;
    }
    if (v == "alloc") {
      folios_[st.args.at(0)] = w().alloc(static_cast<unsigned>(num(st.keys.at("order"))));
      return;
    }
    if (v == "expect") return expect(st);
    SimEnv& env = w().env();
    const VirtAddr a = addr(st);
    const PteSlot s = slot(a);
    if (v == "set_ptes") {
      // docs/scenario.md: pfn_pte(F+I, P), made old unless `young`, pte_mkdirty() if `dirty`.
      contpte::set_ptes(env, a, s, w().mk(frame(st.args.at(1)), prot(st), st.has("young"), st.has("dirty")),
                        nr(st));
    } else if (v == "pte_clear") {
      contpte::pte_clear(env, a, s);
    } else if (v == "ptep_get_and_clear") {
      contpte::ptep_get_and_clear(env, a, s);
    } else if (v == "get_and_clear_full_ptes") {
      contpte::get_and_clear_full_ptes(env, a, s, nr(st), st.has("full"));
    } else if (v == "clear_full_ptes") {
      contpte::clear_full_ptes(env, a, s, nr(st), st.has("full"));
    } else if (v == "ptep_set_wrprotect") {
      contpte::ptep_set_wrprotect(env, a, s);
    } else if (v == "wrprotect_ptes") {
      contpte::wrprotect_ptes(env, a, s, nr(st));
    } else if (v == "ptep_test_and_clear_young") {
      contpte::ptep_test_and_clear_young(env, a, s);
    } else if (v == "ptep_clear_flush_young") {
      contpte::ptep_clear_flush_young(env, a, s);
    } else if (v == "clear_young_dirty_ptes") {
      unsigned flags = 0;
      if (st.has("young")) flags |= CYDP_CLEAR_YOUNG;
      if (st.has("dirty")) flags |= CYDP_CLEAR_DIRTY;
      contpte::clear_young_dirty_ptes(env, a, s, nr(st), flags);
    } else if (v == "ptep_set_access_flags") {
      // docs/scenario.md: the PFN of ptep_get(ADDR) with protection P (PAGE_* carry
      // AF), pte_mkyoung() if young, pte_mkdirty() if dirty; dirty = 1 iff given.
      const Pfn pfn = pte_pfn(contpte::ptep_get(env, s), w().shift());
      Pte entry = pfn_pte(pfn, pgprot_of(prot(st)), w().shift());
      if (st.has("young")) entry = pte_mkyoung(entry);
      if (st.has("dirty")) entry = pte_mkdirty(entry);
      contpte::ptep_set_access_flags(env, a, s, entry, st.has("dirty"));
    } else if (v == "modify_prot") {
      const unsigned n = nr(st);
      for (unsigned k = 0; k < n; ++k) {
        const VirtAddr ak = a + k * w().page();
        const PteSlot sk = slot(ak);
        if (!pte_present(contpte::ptep_get(env, sk))) continue;
        const Pte old = contpte::ptep_modify_prot_start(env, ak, sk);
        contpte::ptep_modify_prot_commit(env, ak, sk, old, pte_modify(old, pgprot_of(prot(st))));
      }
    } else {
      throw std::runtime_error("statement not understood here: " + v);
    }
    if (auto inv = contpte_invariant_all(w()); !inv) fail(inv.message());
  }

  void expect(const Statement& st) {
    const std::string& what = st.args.at(0);
    if (what == "stat") {
      const std::string& name = st.args.at(1);
      if (st.args.at(2) != "==") throw std::runtime_error("only == is used");
      const std::uint64_t want = num(st.args.at(3));
      const auto& c = w().counters();
      const std::uint64_t got = name == "folds" ? c.folds : name == "unfolds" ? c.unfolds : ~0ull;
      if (got == ~0ull) throw std::runtime_error("unknown stat " + name);
      if (got != want)
        fail("expect stat " + name + " == " + std::to_string(want) + ": found " + std::to_string(got));
      return;
    }
    if (what != "raw") throw std::runtime_error("only `expect raw` and `expect stat` are used");
    const VirtAddr a{num(st.args.at(1))};
    const Pte p = *slot(a).ptr();
    const unsigned shift = w().shift();
    std::ostringstream os;
    auto check = [&](const char* key, bool got) {
      auto it = st.keys.find(key);
      if (it != st.keys.end() && num(it->second) != static_cast<std::uint64_t>(got))
        os << " " << key << ": expected " << it->second << ", found " << got << ";";
    };
    check("present", pte_present(p));
    if (pte_present(p)) {
      auto it = st.keys.find("pfn");
      if (it != st.keys.end() && frame(it->second) != pte_pfn(p, shift))
        os << " pfn: expected " << it->second << ";";
      check("write", pte_write(p));
      check("dirty", pte_dirty(p));
      check("young", pte_young(p));
      check("cont", pte_cont(p));
    }
    if (!os.str().empty()) {
      std::ostringstream msg;
      msg << "expect raw 0x" << std::hex << a.val << std::dec << ":" << os.str() << " word "
          << describe_pte(p, shift);
      fail(msg.str());
    }
  }

  fs::path file_;
  unsigned line_ = 0;
  Granule granule_ = Granule::k4K;
  Variant variant_ = Variant::Upstream;
  std::unique_ptr<World> world_;
  std::map<std::string, Pfn> folios_;
  std::vector<std::string> failures_;
};

fs::path reference_dir() {
  return fs::path(CONTPTE_SOURCE_DIR) / "tests" / "data" / "linux-reference" / "engine";
}

TEST(LinuxReferenceReplay, EngineReproducesLinuxOnEveryRecordedSequence) {
  const fs::path dir = reference_dir();
  if (!fs::is_directory(dir)) GTEST_SKIP() << "no reference data at " << dir;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".cpt") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    SCOPED_TRACE(f.filename().string());
    for (const auto& msg : Replayer(f).run()) ADD_FAILURE() << msg;
  }
}

}  // namespace
}  // namespace contpte::test
