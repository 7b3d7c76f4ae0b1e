// scenario/scale.cpp — see scale.h.
#include "scenario/scale.h"

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <string_view>
#include <type_traits>

#include <fmt/format.h>

namespace contpte {
namespace {

constexpr std::array<std::string_view, 3> kExtensiveStats{"accesses", "rss_bytes", "pagecache_bytes"};

std::string hex(std::uint64_t v) { return fmt::format("{:#x}", v); }

// The lowest address a statement gives literally: the centre of the zoom, so
// that a scenario that places its mappings at 0x4000000000, 0x4040000000, ...
// keeps them there, N times further apart.
std::optional<std::uint64_t> lowest_literal_address(const Scenario& sc) {
  std::optional<std::uint64_t> low;
  auto see = [&](std::uint64_t va) { low = low ? std::min(*low, va) : va; };
  auto see_expr = [&](const AddrExpr& a) {
    if (!a.mapping) see(a.offset);
  };
  for (const Statement& st : sc.statements)
    std::visit(
        [&](const auto& op) {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, Mmap>) {
            if (op.addr) see(op.addr->val);
          } else if constexpr (requires { op.addr.mapping; }) {
            see_expr(op.addr);
          }
        },
        st.op);
  return low;
}

class Scaler {
 public:
  Scaler(const Scenario& sc, std::uint64_t n) : n_(n), centre_(lowest_literal_address(sc).value_or(0)) {}

  void scale(Statement& st) const {
    std::visit([&](auto& op) { scale_op(st.loc, op); }, st.op);
  }

 private:
  // N x v, or an error at `at` naming what overflowed.
  std::uint64_t times_n(const SourceLoc& at, std::uint64_t v, std::string_view what) const {
    if (v > std::numeric_limits<std::uint64_t>::max() / n_)
      throw ScenarioError(at, fmt::format("--scale {}: {} {} overflows", n_, what, v));
    return v * n_;
  }

  std::uint64_t zoom_address(const SourceLoc& at, std::uint64_t va) const {
    const std::uint64_t z = centre_ + times_n(at, va - centre_, "address distance");
    if (z >= kUserVaEnd || z < centre_)
      throw ScenarioError(at, fmt::format("--scale {}: address {} becomes {}, past the 48-bit user "
                                          "address space ({})",
                                          n_, hex(va), hex(z), hex(kUserVaEnd)));
    return z;
  }

  // ADDR, or NAME+OFF, and the range's length: both zoomed, and the range
  // still inside the user address space.
  void zoom_range(const SourceLoc& at, AddrExpr& a, std::uint64_t& len) const {
    a.offset = a.mapping ? times_n(at, a.offset, "offset") : zoom_address(a.loc, a.offset);
    len = times_n(at, len, "length");
    if (a.offset > kUserVaEnd || len > kUserVaEnd - a.offset)
      throw ScenarioError(at, fmt::format("--scale {}: the range becomes {} + {:#x}, past the 48-bit "
                                          "user address space ({})",
                                          n_, hex(a.offset), len, hex(kUserVaEnd)));
  }

  void scale_op(const SourceLoc& at, Mmap& m) const {
    m.size = times_n(at, m.size, "size");
    if (m.addr) m.addr = VirtAddr{zoom_address(at, m.addr->val)};
    const std::uint64_t start = m.addr ? m.addr->val : 0;
    if (m.size > kUserVaEnd - start)
      throw ScenarioError(at, fmt::format("--scale {}: mapping '{}' becomes {} + {:#x}, past the 48-bit "
                                          "user address space ({})",
                                          n_, m.name, hex(start), m.size, hex(kUserVaEnd)));
  }
  void scale_op(const SourceLoc& at, Munmap& m) const { zoom_range(at, m.addr, m.len); }
  void scale_op(const SourceLoc& at, Brk& b) const { b.size = times_n(at, b.size, "size"); }
  void scale_op(const SourceLoc& at, Mprotect& m) const { zoom_range(at, m.addr, m.len); }
  void scale_op(const SourceLoc& at, Madvise& m) const { zoom_range(at, m.addr, m.len); }
  void scale_op(const SourceLoc& at, Dump& d) const { zoom_range(at, d.addr, d.len); }
  void scale_op(const SourceLoc& at, ExpectCont& e) const { zoom_range(at, e.addr, e.len); }
  void scale_op(const SourceLoc& at, ExpectPte& e) const {
    std::uint64_t one_page = 1;  // only the address moves
    zoom_range(at, e.addr, one_page);
  }
  // Same stride, N times the length and N times the draws: the same access
  // density over a region N times larger.
  void scale_op(const SourceLoc& at, Access& a) const {
    zoom_range(at, a.addr, a.len);
    a.count = times_n(at, a.count, "count");
  }
  void scale_op(const SourceLoc& at, Reclaim& r) const {
    if (r.pages) r.pages = times_n(at, *r.pages, "pages");
  }
  void scale_op(const SourceLoc&, ExpectStat& e) const {
    if (stat_scales_with_size(e.name)) e.value *= double(n_);
  }
  // Nothing to grow: the process structure and the violation counts.
  void scale_op(const SourceLoc&, Fork&) const {}
  void scale_op(const SourceLoc&, Process&) const {}
  void scale_op(const SourceLoc&, Exit&) const {}
  void scale_op(const SourceLoc&, ExpectViolations&) const {}
  void scale_op(const SourceLoc&, ExpectViolation&) const {}
  // PTE-level statements and parallel blocks act on single PTEs at fixed
  // addresses: there is no larger version of them.
  template <class T>
  void scale_op(const SourceLoc& at, T&) const {
    throw ScenarioError(at, fmt::format("--scale {} applies to memory-manager scenarios; PTE-level "
                                        "statements and parallel blocks cannot be scaled",
                                        n_));
  }

  std::uint64_t n_;
  std::uint64_t centre_;
};

}  // namespace

bool stat_scales_with_size(std::string_view name) {
  return std::find(kExtensiveStats.begin(), kExtensiveStats.end(), name) != kExtensiveStats.end();
}

Scenario scale_scenario(const Scenario& sc, std::uint64_t n) {
  if (n <= 1) return sc;
  Scenario out = sc;
  const Scaler scaler(sc, n);
  for (Statement& st : out.statements) scaler.scale(st);
  out.header.memory = sc.header.memory > kMaxScenarioMemory / n ? kMaxScenarioMemory : sc.header.memory * n;
  return out;
}

}  // namespace contpte
