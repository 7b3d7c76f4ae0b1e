// report/trace_printer.cpp — see trace_printer.h.

#include "report/trace_printer.h"

#include <fmt/format.h>

#include <ostream>
#include <string>
#include <string_view>

#include "arch/pte_format.h"
#include "hw/page_table.h"
#include "report/step_format.h"

namespace contpte {

// One process's PTE accesses and TLB invalidations: what a kernel engineer
// reads to see why a block folded or not.
class TracePrinter::ProcessTrace final : public SimObserver {
 public:
  ProcessTrace(const TracePrinter& printer, const PageTable& pt) : printer_(printer), pt_(pt) {}
  // A process forked by a statement shows that statement's accesses
  // without a location: it learns of statements from the next one on.
  void set_statement(const Statement* s) { cur_ = s; }

  void on_pte_access(const PteAccess& a) override {
    if (printer_.paused_) return;
    static constexpr std::string_view kOps[] = {"load", "store", "xchg", "cmpxchg"};
    const unsigned shift = pt_.geometry().page_shift;
    const auto va = pt_.va_of(a.slot);
    std::string where = va ? fmt::format("{:#x}", va->val) : std::string("?");
    if (!va)
      if (const auto pmd = pt_.pmd_va_of(a.slot)) where = fmt::format("pmd {:#x}", pmd->val);
    std::string what = fmt::format("{:<7} {}", kOps[static_cast<int>(a.op)], where);
    std::ostream& out = printer_.out_;
    if (a.op == PteAccessOp::Load)
      out << prefix() << what << "  " << format_pte(a.before, shift) << '\n';
    else if (a.op == PteAccessOp::Cmpxchg && a.before != a.expected)
      out << prefix() << what << "  failed, found " << format_pte(a.before, shift) << '\n';
    else
      out << prefix() << what << "  " << format_pte(a.before, shift) << "\n"
          << prefix() << std::string(9 + where.size(), ' ') << "-> " << format_pte(a.after, shift) << '\n';
  }
  void on_tlbi(const TlbiRequest& r) override {
    if (printer_.paused_) return;
    std::ostream& out = printer_.out_;
    switch (r.kind) {
      case TlbiKind::Page:
        out << prefix() << fmt::format("tlbi    page {:#x}{}\n", r.start.val, r.sync ? "" : " (nosync)");
        break;
      case TlbiKind::Range:
        out << prefix()
            << fmt::format("tlbi    range {:#x} pages={}{}{}\n", r.start.val, r.nr_pages,
                           r.sync ? "" : " (nosync)", r.last_level ? "" : " +walk caches");
        break;
      case TlbiKind::Mm:
        out << prefix() << "tlbi    mm\n";
        break;
    }
  }

 private:
  std::string prefix() const {
    if (!cur_) return "  ";
    return fmt::format("  {}:{}: ", cur_->loc.file, cur_->loc.line);
  }
  const TracePrinter& printer_;
  const PageTable& pt_;
  const Statement* cur_ = nullptr;
};

TracePrinter::TracePrinter(std::ostream& out) : out_(out) {}
TracePrinter::~TracePrinter() = default;

SimObserver* TracePrinter::watch(std::size_t pid, const PageTable& pt) {
  // Process 0 is a new machine's first: the last run's processes are gone
  // (runs under --trace go one at a time).
  if (pid == 0) procs_.clear();
  procs_.push_back(std::make_unique<ProcessTrace>(*this, pt));
  return procs_.back().get();
}

void TracePrinter::on_statement(const Statement& st) {
  for (auto& p : procs_) p->set_statement(&st);
  out_ << st.loc.file << ':' << st.loc.line << ": " << st.text << '\n';
}

void TracePrinter::on_block_step(const Statement& st, const SourceLoc& branch, const StepRecord& r,
                                 unsigned page_shift) {
  out_ << fmt::format("  {}:{}: {}{}\n", st.loc.file, branch.line, format_step(r, page_shift),
                      r.note.empty() ? "" : "  ; " + r.note);
}

}  // namespace contpte
