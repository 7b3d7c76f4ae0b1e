// report/snapshot_report.cpp — see snapshot_report.h.

#include "report/snapshot_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

namespace contpte {

namespace {

std::string bytes_str(std::uint64_t b) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  return u == 0 ? fmt::format("{:.0f}{}", v, units[u]) : fmt::format("{:.1f}{}", v, units[u]);
}

double pct(std::uint64_t part, std::uint64_t whole) {
  return whole ? 100.0 * static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

// Keys as size names ("64K"), in increasing size (the maps are ordered).
nlohmann::json by_size(const std::map<std::uint64_t, std::uint64_t>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [size, v] : m) j[size_name(size)] = v;
  return j;
}

nlohmann::json splits(const std::map<std::uint64_t, FolioSplit>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [size, s] : m)
    j[size_name(size)] = {{"aligned", s.aligned}, {"unaligned", s.unaligned}, {"partial", s.partial}};
  return j;
}

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

// "anon 2M 1.0G; file 16K 64.0K (16.0K unaligned, 48.0K partial)".
std::string folio_summary(const SnapshotStats& s) {
  std::vector<std::string> sizes;
  for (const auto& [kind, m] : {std::pair{"anon", &s.anon_folios}, std::pair{"file", &s.file_folios}})
    for (const auto& [size, sp] : *m) {
      if (sp.total() == 0) continue;
      std::string line = fmt::format("{} {} {}", kind, size_name(size), bytes_str(sp.total()));
      std::vector<std::string> parts;
      if (sp.unaligned) parts.push_back(bytes_str(sp.unaligned) + " unaligned");
      if (sp.partial) parts.push_back(bytes_str(sp.partial) + " partial");
      if (!parts.empty()) line += fmt::format(" ({})", fmt::join(parts, ", "));
      sizes.push_back(std::move(line));
    }
  return sizes.empty() ? "-" : fmt::format("{}", fmt::join(sizes, "; "));
}

void print_process_head(std::ostream& out, const std::string& who, const SnapshotStats& t, bool pfns) {
  out << fmt::format("{}: resident {} (anon {}, file {}), smaps Rss {}, PMD-mapped {}, PTE-mapped {}", who,
                     bytes_str(t.resident_bytes), bytes_str(t.anon_bytes), bytes_str(t.file_bytes),
                     bytes_str(t.smaps_rss_bytes), bytes_str(t.pmd_mapped_bytes), bytes_str(t.pte_mapped_bytes()));
  if (t.swapped_bytes) out << fmt::format(", swapped {}", bytes_str(t.swapped_bytes));
  if (t.zero_page_bytes) out << fmt::format(", zero page {}", bytes_str(t.zero_page_bytes));
  if (pfns && t.shared_bytes) out << fmt::format(", shared {}", bytes_str(t.shared_bytes));
  out << '\n';
  if (pfns) {
    out << "  cont_bytes:";
    for (const auto& [size, b] : t.cont_bytes)
      out << fmt::format("  {} {} ({:.1f}% of RSS)", size_name(size), bytes_str(b), pct(b, t.resident_bytes));
    out << '\n';
    out << "  folios (size, bytes mapped; aligned unless said):\n";
    for (const auto& [kind, m] : {std::pair{"anon", &t.anon_folios}, std::pair{"file", &t.file_folios}})
      for (const auto& [size, sp] : *m)
        out << fmt::format("    {} {:>5}  {:>8}  aligned {:>8}  unaligned {:>8}  partial {:>8}\n", kind,
                           size_name(size), bytes_str(sp.total()), bytes_str(sp.aligned), bytes_str(sp.unaligned),
                           bytes_str(sp.partial));
  } else {
    out << "  no PFNs (--no-pfn): folio sizes and cont_bytes unknown; fully resident, virtually aligned blocks "
           "(an upper bound of cont_bytes):";
    for (const auto& [size, b] : t.resident_block_bytes)
      out << fmt::format("  {} {} ({:.1f}%)", size_name(size), bytes_str(b), pct(b, t.resident_bytes));
    out << '\n';
  }
}

void print_vma_rows(std::ostream& out, const ProcessSnapshot& p, std::size_t top = 0) {
  std::string cont_head;
  const auto& blocks = p.pfns ? p.total.cont_bytes : p.total.resident_block_bytes;
  for (const auto& [size, b] : blocks) cont_head += fmt::format(" {:>7}", (p.pfns ? "cont" : "res") + size_name(size));
  out << fmt::format("  {:<33} {:<5} {:>8}{}  {}\n", "VMA", "perms", "resident", cont_head,
                     p.pfns ? "folios / name" : "name");
  std::size_t hidden = 0;
  // The `top` largest by resident bytes, in address order.
  std::vector<const VmaSnapshot*> rows;
  for (const auto& v : p.vmas) {
    if (v.stats.resident_bytes == 0) ++hidden;
    else rows.push_back(&v);
  }
  const std::size_t more = top && rows.size() > top ? rows.size() - top : 0;
  if (more) {
    std::stable_sort(rows.begin(), rows.end(), [](const VmaSnapshot* a, const VmaSnapshot* b) {
      return a->stats.resident_bytes > b->stats.resident_bytes;
    });
    rows.resize(top);
    std::sort(rows.begin(), rows.end(), [](const VmaSnapshot* a, const VmaSnapshot* b) {
      return a->vma.start < b->vma.start;
    });
  }
  for (const VmaSnapshot* vp : rows) {
    const VmaSnapshot& v = *vp;
    const SnapshotStats& s = v.stats;
    std::string cont;
    for (const auto& [size, b] : p.pfns ? s.cont_bytes : s.resident_block_bytes)
      cont += fmt::format(" {:>6.1f}%", pct(b, s.resident_bytes));
    const std::string name = v.vma.name.empty() ? "[anon]" : v.vma.name;
    out << fmt::format("  {:016x}-{:016x} {:<5} {:>8}{}  {}{}\n", v.vma.start, v.vma.end, v.vma.perms,
                       bytes_str(s.resident_bytes), cont, p.pfns ? folio_summary(s) + "  " : "", name);
  }
  if (more) out << fmt::format("  ({} more VMAs with resident pages, smaller; --all-vmas shows them)\n", more);
  if (hidden) out << fmt::format("  ({} VMAs without resident pages not shown)\n", hidden);
}

// Why the memory is not in B folios, from the setting anonymous faults
// apply to B, and the setting that would change it.
std::string setting_answer(std::uint64_t b, const ThpHostSettings& thp) {
  const std::string n = size_name(b);
  const std::string file = fmt::format("hugepages-{}kB/enabled", b >> 10);
  if (!thp.present)
    return fmt::format("this host has no THP ({} is missing): the kernel was built without "
                       "CONFIG_TRANSPARENT_HUGEPAGE, and only such a kernel could give {} folios",
                       thp.dir, n);
  const auto it = thp.sizes.find(b);
  if (it == thp.sizes.end())
    return fmt::format("this kernel offers no {} THP size (no {}/{}): a kernel with mTHP (6.8+) "
                       "for this page size would be needed",
                       n, thp.dir, file.substr(0, file.find('/')));
  const std::string how = it->second == "inherit" ? fmt::format("{} = inherit, enabled = {}", file, thp.enabled)
                                                  : fmt::format("{} = {}", file, it->second);
  const std::string eff = thp.effective(b);
  if (eff == "never")
    return fmt::format("{} THP is off ({}): setting {} to always (or madvise, with MADV_HUGEPAGE on the "
                       "ranges) would let new anonymous faults get {} folios",
                       n, how, file, n);
  if (eff == "madvise")
    return fmt::format("{} THP is madvise-only ({}): ranges without MADV_HUGEPAGE get smaller folios; "
                       "madvise(MADV_HUGEPAGE) them or set {} to always",
                       n, how, file);
  return fmt::format("{} THP is already on ({}): the rest was faulted before the setting, is file or shmem "
                     "memory (page-cache folio sizes come from the filesystem, shmem's from shmem_enabled), "
                     "or fell back to smaller folios (fragmentation; defrag = {})",
                     n, how, thp.defrag.empty() ? "unknown" : thp.defrag);
}

}  // namespace

nlohmann::json snapshot_stats_json(const SnapshotStats& s, bool pfns) {
  nlohmann::json j{{"resident_bytes", s.resident_bytes},
                   {"anon_bytes", s.anon_bytes},
                   {"file_bytes", s.file_bytes},
                   {"swapped_bytes", s.swapped_bytes},
                   {"smaps_rss_bytes", s.smaps_rss_bytes},
                   {"pmd_mapped_bytes", s.pmd_mapped_bytes},
                   {"pte_mapped_bytes", s.pte_mapped_bytes()},
                   {"resident_block_bytes", by_size(s.resident_block_bytes)}};
  if (!pfns) return j;
  j["zero_page_bytes"] = s.zero_page_bytes;
  j["special_bytes"] = s.special_bytes;
  j["shared_bytes"] = s.shared_bytes;
  j["inconsistent_pages"] = s.inconsistent_pages;
  j["folio_bytes"] = by_size(s.folio_bytes());
  j["folios"] = {{"anon", splits(s.anon_folios)}, {"file", splits(s.file_folios)}};
  j["cont_bytes"] = by_size(s.cont_bytes);
  nlohmann::json p = nlohmann::json::object();
  for (const auto& [size, b] : s.cont_bytes) p[size_name(size)] = std::round(pct(b, s.resident_bytes) * 100) / 100;
  j["cont_pct_of_rss"] = p;
  return j;
}

nlohmann::json snapshot_json(const SnapshotSet& set, bool rollup) {
  nlohmann::json procs = nlohmann::json::array();
  bool pfns = true;
  for (const auto& p : set.processes) {
    pfns = pfns && p.pfns;
    nlohmann::json jp{{"pid", p.pid}, {"comm", p.comm}, {"pfns", p.pfns}};
    if (!rollup) {
      nlohmann::json vmas = nlohmann::json::array();
      for (const auto& v : p.vmas) {
        nlohmann::json jv{{"start", hex(v.vma.start)}, {"end", hex(v.vma.end)}, {"perms", v.vma.perms},
                          {"name", v.vma.name}};
        jv.update(snapshot_stats_json(v.stats, p.pfns));
        vmas.push_back(std::move(jv));
      }
      jp["vmas"] = std::move(vmas);
    }
    jp["total"] = snapshot_stats_json(p.total, p.pfns);
    jp["notes"] = p.notes;
    procs.push_back(std::move(jp));
  }
  return {{"version", 1}, {"processes", procs}, {"total", snapshot_stats_json(set.total, pfns)}, {"notes", set.notes}};
}

nlohmann::json snapshot_sample_json(const SnapshotSet& set, double t_ms, bool rollup) {
  nlohmann::json j = snapshot_json(set, rollup);
  j.erase("version");
  j["t_ms"] = t_ms;
  return j;
}

void print_snapshot(std::ostream& out, const SnapshotSet& set, bool rollup) {
  print_snapshot(out, set, SnapshotPrint{rollup, 0, nullptr});
}

void print_snapshot(std::ostream& out, const SnapshotSet& set, const SnapshotPrint& how) {
  for (const auto& p : set.processes) {
    print_process_head(out, fmt::format("pid {} ({})", p.pid, p.comm), p.total, p.pfns);
    if (!how.rollup) print_vma_rows(out, p, how.top_vmas);
    out << '\n';
  }
  const bool pfns = std::all_of(set.processes.begin(), set.processes.end(), [](const auto& p) { return p.pfns; });
  if (set.processes.size() > 1)
    print_process_head(out, fmt::format("all {} processes", set.processes.size()), set.total, pfns);
  for (const auto& n : set.notes) out << "note: " << n << '\n';
  if (how.thp && !set.processes.empty()) {
    out << fmt::format("verdict{}:\n", set.processes.size() > 1 ? " (all processes)" : "");
    for (const auto& line : snapshot_verdict(set.total, pfns, *how.thp)) out << "  " << line << '\n';
  }
}

nlohmann::json thp_settings_json(const ThpHostSettings& thp) {
  nlohmann::json sizes = nlohmann::json::object();
  for (const auto& [b, v] : thp.sizes) sizes[size_name(b)] = v;
  return {{"dir", thp.dir}, {"present", thp.present}, {"enabled", thp.enabled}, {"defrag", thp.defrag},
          {"sizes", sizes}};
}

std::vector<std::string> snapshot_verdict(const SnapshotStats& s, bool pfns, const ThpHostSettings& thp) {
  std::vector<std::string> lines;
  for (const auto& [b, room] : s.resident_block_bytes) {
    const std::string n = size_name(b);
    const auto c = s.cont_bytes.find(b);
    const std::uint64_t covered = pfns && c != s.cont_bytes.end() ? c->second : 0;
    std::string line =
        pfns ? fmt::format("{}: contpte maps {} ({:.1f}% of RSS) with one TLB entry per {} block; the resident "
                           "layout has {} ({:.1f}%) in fully resident, {}-aligned blocks, ",
                           n, bytes_str(covered), pct(covered, s.resident_bytes), n, bytes_str(room),
                           pct(room, s.resident_bytes), n)
             : fmt::format("{}: without PFNs contpte's share is unknown; the resident layout has {} ({:.1f}% of "
                           "RSS) in fully resident, {}-aligned blocks, ",
                           n, bytes_str(room), pct(room, s.resident_bytes), n);
    if (room == 0)
      line += fmt::format("so no setting changes the answer: the mappings are too small or too sparsely "
                          "touched for {} blocks",
                          n);
    else if (pfns && covered >= room)
      line += "all of them already one folio each: no setting would add more";
    else
      line += fmt::format("the most {} folios could cover. {}", n, setting_answer(b, thp));
    lines.push_back(std::move(line));
  }
  return lines;
}

void print_sample_line(std::ostream& out, const SnapshotSet& set, double t_ms) {
  auto line = [&](const std::string& who, const SnapshotStats& s, bool pfns) {
    out << fmt::format("{:>10.0f}ms {:<24} rss {:>8}", t_ms, who, bytes_str(s.resident_bytes));
    for (const auto& [size, b] : pfns ? s.cont_bytes : s.resident_block_bytes)
      out << fmt::format("  {}{} {:>5.1f}%", pfns ? "cont" : "res", size_name(size), pct(b, s.resident_bytes));
    out << '\n';
  };
  for (const auto& p : set.processes) line(fmt::format("{} ({})", p.pid, p.comm), p.total, p.pfns);
  if (set.processes.size() > 1)
    line("all", set.total,
         std::all_of(set.processes.begin(), set.processes.end(), [](const auto& p) { return p.pfns; }));
  for (const auto& n : set.notes) out << "note: " << n << '\n';
}

}  // namespace contpte
