#include "sluice/cache/workload.h"

#include <algorithm>
#include <cmath>

#include "sluice/base/check.h"
#include "sluice/base/hash.h"

namespace sluice::cache {

ZipfGenerator::ZipfGenerator(size_t n, double s) {
  SLUICE_CHECK(n >= 1, "ZipfGenerator: n must be >= 1");
  SLUICE_CHECK(s >= 0.0, "ZipfGenerator: s must be >= 0");
  cdf_.resize(n);
  double sum = 0.0;
  for (size_t r = 0; r < n; ++r) {
    sum += 1.0 / std::pow(static_cast<double>(r + 1), s);
    cdf_[r] = sum;
  }
  for (double& c : cdf_) c /= sum;
  cdf_.back() = 1.0;
}

uint64_t ZipfGenerator::next(base::RandomSource& rng) const noexcept {
  const double u = rng.uniform01();
  const auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
  return static_cast<uint64_t>(std::min<size_t>(it - cdf_.begin(), cdf_.size() - 1));
}

double ZipfGenerator::probability(size_t rank) const noexcept {
  if (rank >= cdf_.size()) return 0.0;
  return rank == 0 ? cdf_[0] : cdf_[rank] - cdf_[rank - 1];
}

std::vector<uint64_t> make_trace(const TraceOptions& options) {
  const ZipfGenerator zipf(options.distinct_keys, options.zipf_s);
  base::Xoshiro256 rng(options.seed);
  std::vector<uint64_t> trace;
  const size_t scans = options.scan_every == 0 ? 0 : options.length / options.scan_every;
  trace.reserve(options.length + scans * options.scan_length);
  // Zipf keys are mix64(rank) with the top bit clear; scan keys have it set: never equal.
  constexpr uint64_t kScanBit = uint64_t{1} << 63;
  uint64_t next_scan_key = 0;
  for (size_t i = 0; i < options.length; ++i) {
    trace.push_back(base::mix64(zipf.next(rng)) & ~kScanBit);
    if (options.scan_every != 0 && (i + 1) % options.scan_every == 0) {
      for (size_t j = 0; j < options.scan_length; ++j) trace.push_back(kScanBit | next_scan_key++);
    }
  }
  return trace;
}

}  // namespace sluice::cache
