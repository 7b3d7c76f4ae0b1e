// CPU features are properties of the core (TlbConfig: presets and JSON
// cores), apart from the kernel behaviour the `contpte` variant names:
// FEAT_HAFDBS decides whether an old PTE takes an access-flag fault;
// FEAT_BBML2_NOABORT lets Linux 6.17 (`contpte bbml2`) skip the
// invalidation inside a fold, and only on such a core. The header's
// `hafdbs on|off` overrides the core; `contpte bbml2` turns BBML2_NOABORT on
// for the run, so scenarios written before behave as they did.

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "engine/pgtable.h"
#include "engine/engine_world.h"
#include "support/scenario_run.h"

namespace contpte::test {
namespace {

using contpte::testing::describe;
using contpte::testing::ran_ok;
using contpte::testing::run;

// A JSON core in a file of its own (removed with the object).
class CoreFile {
 public:
  explicit CoreFile(const std::string& json) {
    static std::atomic<unsigned> n{0};
    path_ = std::filesystem::temp_directory_path() /
            ("contpte-core-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + ".json");
    std::ofstream(path_) << json;
  }
  ~CoreFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// A THP made old by reclaim, then read: one access-flag fault without
// hardware A/D, none with it.
std::string aging(const std::string& header) {
  return header +
         "thp 2M=always\n"
         "mmap A 2M addr=0x4000000000\n"
         "write A 4K\n"
         "reclaim\n"
         "read A 4K\n"
         "expect pte A huge=1 young=1\n";
}

TEST(CpuFeatures, HafdbsComesFromTheCore) {
  CoreFile off(R"({"hafdbs": false})");
  RunResult r = run(aging("tlb " + off.path() + "\n") + "expect stat faults_access == 1\n");
  EXPECT_TRUE(ran_ok(r)) << describe(r);
  RunResult preset = run(aging("tlb neoverse-n1\n") + "expect stat faults_access == 0\n");
  EXPECT_TRUE(ran_ok(preset)) << describe(preset);
}

TEST(CpuFeatures, TheHeaderOverridesTheCoresHafdbs) {
  CoreFile off(R"({"hafdbs": false})");
  RunResult on = run(aging("tlb " + off.path() + "\nhafdbs on\n") + "expect stat faults_access == 0\n");
  EXPECT_TRUE(ran_ok(on)) << describe(on);
  RunResult forced = run(aging("tlb neoverse-n1\nhafdbs off\n") + "expect stat faults_access == 1\n");
  EXPECT_TRUE(ran_ok(forced)) << describe(forced);
}

// Folding a written block: upstream invalidates inside convert; bbml2
// elides that TLBI when the core has BBML2_NOABORT, which `contpte bbml2`
// turns on for the run even on a core without it.
std::string fold(const std::string& header) {
  return header +
         "alloc F order=4\n"
         "set_ptes 0x40000000 F nr=15 prot=rw\n"
         "set_ptes 0x4000f000 F+15 nr=1 prot=rw\n"  // the last PTE: a fold
         "expect cont 0x40000000 64K\n"
         "expect stat folds == 1\n";
}

TEST(CpuFeatures, ContpteBbml2IsTheElisionOnACoreWithBbml2Noabort) {
  RunResult up = run(fold("contpte upstream\n") + "expect stat tlbi == 1\n");
  EXPECT_TRUE(ran_ok(up)) << describe(up);
  RunResult b = run(fold("contpte bbml2\n") + "expect stat tlbi == 0\n");
  EXPECT_TRUE(ran_ok(b)) << describe(b);
  // The feature alone is the core's: Linux 6.12 still invalidates.
  CoreFile bbml2(R"({"bbml2_noabort": true})");
  RunResult core = run(fold("tlb " + bbml2.path() + "\ncontpte upstream\n") + "expect stat tlbi == 1\n");
  EXPECT_TRUE(ran_ok(core)) << describe(core);
}

// The engine asks the Env: bbml2 behaviour without the feature is upstream's.
TEST(CpuFeatures, TheEngineElidesOnlyWhenTheCpuHasTheFeature) {
  for (bool noabort : {false, true}) {
    World w(Granule::k4K, Variant::Bbml2);
    Features f = w.env().features();
    ASSERT_TRUE(f.bbml2_noabort) << "the test world follows the shorthand";
    f.bbml2_noabort = noabort;
    SimEnv env(w.mem(), w.pt(), f);
    const Pfn pfn = w.alloc(4);
    set_ptes(env, w.va(0), w.slot_of_page(0), w.mk(pfn, Prot::RW), 15);
    set_ptes(env, w.va(15), w.slot_of_page(15), w.mk(pfn + 15, Prot::RW), 1);
    EXPECT_TRUE(w.all_cont(0, 16));
    EXPECT_EQ(env.counters().folds, 1u);
    EXPECT_EQ(env.counters().tlbi, noabort ? 0u : 1u) << "bbml2_noabort=" << noabort;
  }
}

}  // namespace
}  // namespace contpte::test
