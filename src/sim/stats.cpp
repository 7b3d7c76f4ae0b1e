// sim/stats.cpp — see stats.h.

#include "sim/stats.h"

#include <fmt/format.h>

#include <array>

#include "arch/pte_format.h"
#include "hw/checker.h"
#include "sim/estimate.h"
#include "sim/machine.h"

namespace contpte {

StatReader::StatReader(Machine& m) : m_(m), mmu_(m.mmu().stats()), engine_(m.engine_counters()) {}

const Geometry& StatReader::geometry() const { return m_.geometry(); }
const MmStats& StatReader::mm() const { return m_.system().stats(); }

const StatReader::Coverage& StatReader::coverage() {
  if (coverage_) return *coverage_;
  Coverage c;
  const unsigned n = m_.geometry().ptrs_per_table();
  for (std::size_t pid = 0; pid < m_.processes(); ++pid) {
    if (!m_.alive(pid)) continue;
    c.pmd_pages += m_.mm(pid).pmd_mapped_pages();
    m_.mm(pid).page_table().for_each_pte_page([&](VirtAddr, PteSlot s) {
      for (unsigned i = 0; i < n; ++i) {
        const Pte pte = s.ptr()[i];
        if (!pte_present(pte)) continue;
        ++c.present;
        c.cont += pte_valid_cont(pte);
      }
    });
  }
  return *(coverage_ = c);
}

double StatReader::estimate(std::size_t i) {
  if (estimate_.empty())
    for (const auto& [name, v] : estimate_time(m_.mmu().config(), m_.geometry().page_size(),
                                               [this](std::string_view n) { return stat_value(*this, n).value_or(0.0); }))
      estimate_.push_back(v);
  return estimate_.at(i);
}

namespace {

double ratio(std::uint64_t a, std::uint64_t b) { return b ? double(a) / double(b) : 0.0; }
double violations_of(StatReader& r, Rule rule) { return double(r.machine().checker().count(rule)); }

// Report order: the first ten are docs/design.md's stable keys.
constexpr std::array kStats = {
    StatDef{"accesses", "user accesses the program made (a retried access counts once)",
            "the denominator of the rates below",
            [](StatReader& r) { return double(r.mmu().accesses); }},
    StatDef{"tlb_misses", "accesses that missed every TLB level and walked",
            "lower is better; per 1000 accesses in tlb_mpki",
            [](StatReader& r) { return double(r.mmu().tlb_misses); }},
    StatDef{"walks", "page-table walks the MMU made: one per TLB miss (a faulting access's retries included)",
            "equal to tlb_misses in this model; walk_mem_accesses says how deep they went",
            [](StatReader& r) { return double(r.mmu().walks); }},
    StatDef{"walk_cycles", "descriptor reads during walks times the core's cost of one",
            "the miss cost; divide by walks for the mean walk",
            [](StatReader& r) { return double(r.mmu().walk_cycles); }},
    StatDef{"faults", "MMU faults taken (translation, access flag, permission)",
            "each goes to the memory manager (mm_faults), then the access is retried",
            [](StatReader& r) { return double(r.mmu().faults); }},
    StatDef{"folds", "contpte_convert calls that set PTE_CONT on a block",
            "each costs a break-before-make of 16 (4K), 128 (16K) or 32 (64K) PTEs and a TLBI",
            [](StatReader& r) { return double(r.engine().folds); }},
    StatDef{"unfolds", "contpte_convert calls that cleared PTE_CONT from a block",
            "a block written in part (mprotect, COW, munmap of part); each costs as a fold",
            [](StatReader& r) { return double(r.engine().unfolds); }},
    StatDef{"tlbi", "flush requests the engine made: one per page, range or mm call",
            "requests, not instructions: see tlbi_instructions for what the CPU executed",
            [](StatReader& r) { return double(r.engine().tlbi); }},
    StatDef{"cont_coverage", "the fraction of present PTEs (level 3) with PTE_CONT at the end of the run",
            "0 to 1; higher means more of the mapped memory is in contiguous blocks",
            [](StatReader& r) { return ratio(r.coverage().cont, r.coverage().present); }},
    StatDef{"rss_bytes", "bytes mapped at the end of the run: present PTEs and pages of huge PMDs",
            "every live process's, shared pages counted per mapping",
            [](StatReader& r) {
              const auto& c = r.coverage();
              return double((c.present + c.pmd_pages) * r.geometry().page_size());
            }},
    StatDef{"pte_stores", "stores, exchanges and compare-exchanges the engine made that wrote a PTE",
            "the engine's write traffic on page tables", [](StatReader& r) { return double(r.engine().pte_stores); }},
    StatDef{"tlbi_pages", "pages the engine's flush requests covered (an mm flush counts 0)",
            "with tlbi, the mean flush size", [](StatReader& r) { return double(r.engine().tlbi_pages); }},
    StatDef{"tlb_hits_l1", "accesses that hit an L1 (data or instruction) TLB", "higher is better",
            [](StatReader& r) { return double(r.mmu().l1_hits); }},
    StatDef{"tlb_hits_l2", "accesses that missed L1 and hit the L2 TLB", "an L2 hit costs the core's L2 latency",
            [](StatReader& r) { return double(r.mmu().l2_hits); }},
    StatDef{"walk_mem_accesses", "descriptor reads during walks",
            "1 per walk when the walk cache holds the table; up to 4 from the root",
            [](StatReader& r) { return double(r.mmu().walk_mem_accesses); }},
    StatDef{"translation_cycles", "translation cycles: TLB hit latencies plus walk cycles",
            "the model's cost of address translation for the whole run",
            [](StatReader& r) { return double(r.mmu().cycles); }},
    StatDef{"hw_af_updates", "access flags the MMU set in hardware (FEAT_HAFDBS)",
            "0 with `hafdbs off`: the kernel takes an access-flag fault instead",
            [](StatReader& r) { return double(r.mmu().hw_af_updates); }},
    StatDef{"hw_dirty_updates", "dirty states the MMU set in hardware (DBM: clearing AP[2] on a write)",
            "0 with `hafdbs off`", [](StatReader& r) { return double(r.mmu().hw_dirty_updates); }},
    StatDef{"caller_tlbi", "flushes core mm issued around the engine's calls (mmu_gather, fork, COW, PTE-level "
                           "statements' callers)",
            "apart from tlbi, which counts the engine's own",
            [](StatReader& r) { return double(r.machine().caller_tlbi() + r.mm().caller_tlbi); }},
    StatDef{"tlbi_instructions", "TLBI instructions the CPU executed, of every kind",
            "what the flushes cost in instructions; by kind below",
            [](StatReader& r) {
              const MmuStats& m = r.mmu();
              return double(m.tlbi_va + m.tlbi_range + m.tlbi_asid + m.tlbi_all);
            }},
    StatDef{"tlbi_instructions_va", "TLBI VAE1IS / VALE1IS instructions (one page each)",
            "a range without TLB range instructions costs one per page up to Linux's limit",
            [](StatReader& r) { return double(r.mmu().tlbi_va); }},
    StatDef{"tlbi_instructions_range", "TLBI RVAE1IS / RVALE1IS instructions (FEAT_TLBIRANGE)",
            "one covers up to 32 x 2^(5s+1) pages", [](StatReader& r) { return double(r.mmu().tlbi_range); }},
    StatDef{"tlbi_instructions_asid", "TLBI ASIDE1IS instructions (a whole address space)",
            "flush_tlb_mm, or a range past Linux's limit", [](StatReader& r) { return double(r.mmu().tlbi_asid); }},
    StatDef{"tlbi_instructions_all", "TLBI VMALLE1IS instructions (everything)", "rare",
            [](StatReader& r) { return double(r.mmu().tlbi_all); }},
    StatDef{"tlb_overlaps", "overlapping TLB entries the core tolerated (FEAT_BBML2_NOABORT)",
            "nonzero only when convert skipped its invalidation (contpte bbml2)",
            [](StatReader& r) { return double(r.mmu().tlb_overlaps); }},
    StatDef{"violations", "conformance-checker findings of every rule (claimed or not)",
            "0 on a correct engine; by rule below",
            [](StatReader& r) { return double(r.machine().checker().violations().size()); }},
    StatDef{"violations_misprogrammed", "findings of rule misprogrammed (a block's PTEs disagree)",
            "see docs/transparency.md", [](StatReader& r) { return violations_of(r, Rule::Misprogrammed); }},
    StatDef{"violations_tlb_conflict", "findings of rule tlb_conflict (overlapping TLB entries)",
            "see docs/transparency.md", [](StatReader& r) { return violations_of(r, Rule::TlbConflict); }},
    StatDef{"violations_stale_translation", "findings of rule stale_translation (a TLB entry outlived its PTE)",
            "see docs/transparency.md", [](StatReader& r) { return violations_of(r, Rule::StaleTranslation); }},
    StatDef{"violations_lost_dirty", "findings of rule lost_dirty (a dirty state core mm never saw)",
            "see docs/transparency.md", [](StatReader& r) { return violations_of(r, Rule::LostDirty); }},
    StatDef{"violations_lost_young", "findings of rule lost_young (an access flag core mm never saw)",
            "see docs/transparency.md", [](StatReader& r) { return violations_of(r, Rule::LostYoung); }},
    StatDef{"mm_faults", "faults the memory manager handled (handle_mm_fault)", "by kind below",
            [](StatReader& r) { return double(r.mm().faults); }},
    StatDef{"faults_anon", "do_anonymous_page with a new folio", "one per folio, whatever its size",
            [](StatReader& r) { return double(r.mm().faults_anon); }},
    StatDef{"faults_zero", "read faults that mapped the zero page", "no memory allocated",
            [](StatReader& r) { return double(r.mm().faults_zero); }},
    StatDef{"faults_cow", "write faults that copied the page (wp_page_copy)", "bytes in bytes_copied",
            [](StatReader& r) { return double(r.mm().faults_cow); }},
    StatDef{"faults_reuse", "write faults that reused an exclusive folio (wp_page_reuse)", "no copy",
            [](StatReader& r) { return double(r.mm().faults_reuse); }},
    StatDef{"faults_access", "faults that only set the access flag or dirty state (ptep_set_access_flags)",
            "with `hafdbs on` the hardware does these (hw_af_updates)",
            [](StatReader& r) { return double(r.mm().faults_access); }},
    StatDef{"reuse_unfolds", "reuses of a large folio that unfolded its block",
            "the write-protect fault of a forked block", [](StatReader& r) { return double(r.mm().reuse_unfolds); }},
    StatDef{"folios_freed", "folios returned to the buddy allocator", "munmap, exit, madvise, COW",
            [](StatReader& r) { return double(r.mm().folios_freed); }},
    StatDef{"bytes_zeroed", "bytes zeroed for new anonymous folios (and copies of the zero page)",
            "the cost of first touch", [](StatReader& r) { return double(r.mm().bytes_zeroed); }},
    StatDef{"bytes_copied", "bytes copy-on-write copied", "the cost of COW after fork",
            [](StatReader& r) { return double(r.mm().bytes_copied); }},
    StatDef{"tlb_mpki", "TLB misses per 1000 accesses", "the headline rate of the comparison table",
            [](StatReader& r) {
              const MmuStats& m = r.mmu();
              return m.accesses ? 1000.0 * double(m.tlb_misses) / double(m.accesses) : 0.0;
            }},
    StatDef{"thp_fault_alloc", "PMD-mapped folios a fault allocated (vmstat thp_fault_alloc)", "PMD-sized THP",
            [](StatReader& r) { return double(r.mm().thp_fault_alloc); }},
    StatDef{"thp_fault_fallback", "PMD-sized allocations that failed: PTE fault instead (vmstat)",
            "fragmented memory", [](StatReader& r) { return double(r.mm().thp_fault_fallback); }},
    StatDef{"thp_split_pmd", "huge PMDs split to PTE mappings (vmstat)", "partial munmap, mprotect or madvise",
            [](StatReader& r) { return double(r.mm().thp_split_pmd); }},
    StatDef{"thp_zero_page_alloc", "the huge zero folio allocated (vmstat)", "at most 1",
            [](StatReader& r) { return double(r.mm().thp_zero_page_alloc); }},
    StatDef{"folio_splits", "large folios split to order 0 (split_folio)", "by size in split_<size>",
            [](StatReader& r) { return double(r.mm().folio_splits); }},
    StatDef{"pglazyfree", "pages MADV_FREE marked lazily freeable (vmstat)", "",
            [](StatReader& r) { return double(r.mm().pglazyfree); }},
    StatDef{"pglazyfreed", "lazyfree pages MADV_PAGEOUT discarded (vmstat)", "",
            [](StatReader& r) { return double(r.mm().pglazyfreed); }},
    StatDef{"pgdeactivate", "pages MADV_COLD / MADV_PAGEOUT took off the active list (vmstat)", "",
            [](StatReader& r) { return double(r.mm().pgdeactivate); }},
    StatDef{"faults_file", "read faults served from the page cache", "file mappings",
            [](StatReader& r) { return double(r.mm().faults_file); }},
    StatDef{"faultaround_pages", "PTEs filemap_map_pages set around a fault", "mapped ahead of the program",
            [](StatReader& r) { return double(r.mm().faultaround_pages); }},
    StatDef{"pagecache_folios", "folios readahead added to the page cache", "by size in pagecache_alloc_<size>",
            [](StatReader& r) { return double(r.mm().pagecache_folios); }},
    StatDef{"pagecache_bytes", "bytes read into the page cache", "",
            [](StatReader& r) { return double(r.mm().pagecache_bytes); }},
    StatDef{"shmem_folios", "zeroed folios shared anonymous memory allocated", "one 4K folio at a time",
            [](StatReader& r) { return double(r.mm().shmem_folios); }},
    StatDef{"pgtables_freed", "page-table pages free_pgtables released", "munmap and exit",
            [](StatReader& r) { return double(r.mm().pgtables_freed); }},
    StatDef{"pgtable_bytes", "page-table memory in use at the end of the run, every process's (PageTables in "
                             "meminfo)",
            "the PT column of the main job's table",
            [](StatReader& r) {
              return double(r.machine().memory().live_tables() * r.geometry().page_size());
            }},
    StatDef{"instructions", "the program's instructions: counted from a replayed trace's instruction fetches, "
                            "else accesses x the header's insns_per_access",
            "the user work of the time estimate (docs/estimate.md)",
            [](StatReader& r) { return r.machine().instructions(); }},
    StatDef{"peak_rss_bytes", "the most memory allocated to folios at once: anonymous, shmem and page cache, each "
                              "folio whole, at the granule's page size (the zero pages left out)",
            "the memory a configuration costs; a peak, so a replay whose processes exited still shows it",
            [](StatReader& r) { return double(r.machine().buddy().peak_used_frames() * r.geometry().page_size()); }},
    StatDef{"peak_pgtable_bytes", "the most page-table memory in use at once", "with peak_rss_bytes, the memory cost",
            [](StatReader& r) {
              return double(r.machine().memory().peak_live_tables() * r.geometry().page_size());
            }},
    StatDef{"pgtable_allocs", "page-table pages allocated", "each is zeroed: part of est_zero_ns",
            [](StatReader& r) { return double(r.machine().memory().tables_allocated()); }},
    StatDef{"reclaim_entries", "PTEs and huge PMDs reclaim's aging test-and-cleared", "the work of est_reclaim_ns",
            [](StatReader& r) { return double(r.mm().reclaim_entries); }},
    StatDef{kEstimateStats[0], "estimated run time: est_user_ns + est_kernel_ns (docs/estimate.md)",
            "`time`'s real for one thread on an idle core", [](StatReader& r) { return r.estimate(0); }},
    StatDef{kEstimateStats[1], "estimated user time: est_work_ns + est_translation_ns", "`time`'s user",
            [](StatReader& r) { return r.estimate(1); }},
    StatDef{kEstimateStats[2], "estimated kernel time: faults, PTEs, zeroing, copying, TLBI and reclaim",
            "`time`'s sys", [](StatReader& r) { return r.estimate(2); }},
    StatDef{kEstimateStats[3], "the program's own work: instructions x base_cpi / clock_ghz",
            "equal in every configuration", [](StatReader& r) { return r.estimate(3); }},
    StatDef{kEstimateStats[4], "what translation adds beyond an L1 TLB hit: (walk_cycles + tlb_hits_l2 x L2 hit "
                               "cycles) / clock_ghz",
            "", [](StatReader& r) { return r.estimate(4); }},
    StatDef{kEstimateStats[5], "mm_faults x fault_ns", "exception entry and exit and handle_mm_fault",
            [](StatReader& r) { return r.estimate(5); }},
    StatDef{kEstimateStats[6], "pte_stores x pte_ns", "every PTE the kernel wrote",
            [](StatReader& r) { return r.estimate(6); }},
    StatDef{kEstimateStats[7], "(bytes_zeroed + pgtable_allocs x page size) / zero_bytes_per_ns",
            "zeroing new folios and page-table pages", [](StatReader& r) { return r.estimate(7); }},
    StatDef{kEstimateStats[8], "bytes_copied / copy_bytes_per_ns", "copy-on-write copies",
            [](StatReader& r) { return r.estimate(8); }},
    StatDef{kEstimateStats[9], "tlbi_instructions x tlbi_ns", "TLB maintenance",
            [](StatReader& r) { return r.estimate(9); }},
    StatDef{kEstimateStats[10], "reclaim_entries x reclaim_page_ns", "reclaim's aging",
            [](StatReader& r) { return r.estimate(10); }},
    StatDef{"replay_unresolved_accesses", "`run --replay` only: accesses no mapping of the replay resolved",
            "the trace's addresses outside what the replay placed", nullptr},
    StatDef{"replay_failed_mmaps", "`run --replay` only: mmaps of the trace the replay could not place", "",
            nullptr},
};

constexpr std::array kFamilies = {
    StatFamily{"anon_fault_alloc_", "anonymous faults that allocated a folio of this size "
                                    "(hugepages-<size>/stats/anon_fault_alloc)",
               "sizes from two pages to the PMD size", 1,
               [](const MmStats& s) -> const std::map<unsigned, std::uint64_t>& { return s.anon_fault_alloc; }},
    StatFamily{"anon_fault_fallback_", "anonymous faults that could not allocate a folio of this size and fell "
                                       "back to a smaller one (anon_fault_fallback)",
               "fragmented memory", 1,
               [](const MmStats& s) -> const std::map<unsigned, std::uint64_t>& { return s.anon_fault_fallback; }},
    StatFamily{"split_", "folios of this size split to order 0 (hugepages-<size>/stats/split)", "", 1,
               [](const MmStats& s) -> const std::map<unsigned, std::uint64_t>& { return s.split; }},
    StatFamily{"pagecache_alloc_", "readahead folios of this size added to the page cache", "sizes from one page",
               0, [](const MmStats& s) -> const std::map<unsigned, std::uint64_t>& { return s.pagecache_alloc; }},
};

std::string size_suffix(const Geometry& g, unsigned order) { return format_size(g.page_size() << order); }

// The order `name` names in family `f` under `g`, if it is a member.
std::optional<unsigned> family_order(const StatFamily& f, std::string_view name, const Geometry& g) {
  if (!name.starts_with(f.prefix)) return std::nullopt;
  for (unsigned order = f.min_order; g.page_shift + order <= g.pmd_shift(); ++order)
    if (name.substr(f.prefix.size()) == size_suffix(g, order)) return order;
  return std::nullopt;
}

}  // namespace

std::span<const StatDef> stat_table() { return kStats; }
std::span<const StatFamily> stat_families() { return kFamilies; }

std::optional<double> stat_value(StatReader& r, std::string_view name) {
  for (const StatDef& d : kStats)
    if (d.name == name) return d.value ? std::optional(d.value(r)) : std::nullopt;
  for (const StatFamily& f : kFamilies)
    if (auto order = family_order(f, name, r.geometry())) {
      const auto& counts = f.per_order(r.mm());
      const auto it = counts.find(*order);
      return it == counts.end() ? 0.0 : double(it->second);
    }
  return std::nullopt;
}

bool is_scenario_stat(std::string_view name, const Geometry& g) {
  for (const StatDef& d : kStats)
    if (d.name == name) return d.value != nullptr;
  for (const StatFamily& f : kFamilies)
    if (family_order(f, name, g)) return true;
  return false;
}

std::vector<std::string> scenario_stat_names(const Geometry& g) {
  std::vector<std::string> out;
  for (const StatDef& d : kStats)
    if (d.value) out.emplace_back(d.name);
  for (const StatFamily& f : kFamilies)
    for (unsigned order = f.min_order; g.page_shift + order <= g.pmd_shift(); ++order)
      out.push_back(std::string(f.prefix) + size_suffix(g, order));
  return out;
}

std::vector<std::pair<std::string, double>> collect_stats(Machine& m) {
  StatReader r(m);
  std::vector<std::pair<std::string, double>> out;
  for (const StatDef& d : kStats)
    if (d.value) out.emplace_back(d.name, d.value(r));
  for (const StatFamily& f : kFamilies)
    for (const auto& [order, n] : f.per_order(r.mm()))
      out.emplace_back(std::string(f.prefix) + size_suffix(r.geometry(), order), double(n));
  return out;
}

std::string stats_markdown() {
  std::string s =
      "# Stats\n\n"
      "Every stat a run reports: the keys of the JSON report's `stats`, the\n"
      "names `expect stat` accepts, in report order. Generated from the table in\n"
      "`src/sim/stats.cpp` (see `src/sim/stats.h` for how to add one); a test\n"
      "checks this page matches it.\n\n"
      "| stat | counts | how to read it |\n|---|---|---|\n";
  for (const StatDef& d : kStats) s += fmt::format("| `{}` | {} | {} |\n", d.name, d.counts, d.reading);
  s += "\nPer folio size (`<size>` as `64K`, `2M`: the sizes of the granule from\n"
       "the family's smallest to the PMD size), reported for the sizes that occurred:\n\n"
       "| stat | counts | how to read it |\n|---|---|---|\n";
  for (const StatFamily& f : kFamilies)
    s += fmt::format("| `{}<size>` | {} | {} |\n", f.prefix, f.counts, f.reading);
  return s;
}

}  // namespace contpte
