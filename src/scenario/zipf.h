// scenario/zipf.h — the Zipf-distributed ranks of the `zipf` access
// pattern (docs/scenario.md), apart from the runner that draws them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

namespace contpte {

// Zipf-distributed ranks over [0, n) with exponent 0.99, as YCSB's
// ZipfianGenerator draws them (Gray et al., "Quickly generating
// billion-record synthetic databases"): rank 0 is the most popular slot.
class ZipfGenerator {
 public:
  explicit ZipfGenerator(std::uint64_t n, double theta = 0.99) : n_(n), theta_(theta) {
    for (std::uint64_t i = 1; i <= n; ++i) zetan_ += 1.0 / std::pow(double(i), theta);
    const double zeta2 = 1.0 + 1.0 / std::pow(2.0, theta);
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1.0 - std::pow(2.0 / double(n), 1.0 - theta)) / (1.0 - zeta2 / zetan_);
  }
  template <class Rng>
  std::uint64_t next(Rng& rng) {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    const double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < 1.0 + std::pow(0.5, theta_)) return std::min<std::uint64_t>(1, n_ - 1);
    const auto r = static_cast<std::uint64_t>(double(n_) * std::pow(eta_ * u - eta_ + 1.0, alpha_));
    return std::min(r, n_ - 1);
  }

 private:
  std::uint64_t n_;
  double theta_;
  double zetan_ = 0, alpha_ = 0, eta_ = 0;
};

}  // namespace contpte
