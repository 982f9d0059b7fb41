// Synthetic cache workloads: a Zipf-distributed key generator and deterministic access traces
// (Zipf, and Zipf polluted by sequential scans of one-off keys), for tests, benchmarks,
// examples and load generation. Same seed, same trace, on every machine.
//
// Thread-safety: `ZipfGenerator` is immutable after construction (`next` takes the caller's
// RandomSource); the trace functions are pure.
// Cost: `ZipfGenerator` precomputes the CDF (8 bytes per key, O(n) at construction); `next`
// is one uniform draw and a binary search (O(log n)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "sluice/base/random.h"

namespace sluice::cache {

// Ranks 0..n-1 with P(rank r) proportional to 1 / (r + 1)^s (rank 0 the most popular).
class ZipfGenerator {
 public:
  // `n` >= 1 keys, exponent `s` >= 0 (0 = uniform; 0.9 is typical of web and request keys).
  ZipfGenerator(size_t n, double s);

  [[nodiscard]] uint64_t next(base::RandomSource& rng) const noexcept;
  // P(rank r).
  [[nodiscard]] double probability(size_t rank) const noexcept;
  [[nodiscard]] size_t size() const noexcept { return cdf_.size(); }

 private:
  std::vector<double> cdf_;  // cdf_[r] = P(rank <= r); the last is 1
};

struct TraceOptions {
  size_t distinct_keys = 100'000;  // keys of the Zipf part
  size_t length = 1'000'000;       // accesses of the Zipf part
  double zipf_s = 0.9;             // Zipf exponent
  uint64_t seed = 42;              // Xoshiro256 seed
  size_t scan_every = 0;           // Zipf accesses between two scans; 0 = no scans
  size_t scan_length = 0;          // one-off keys per scan (never repeated, never Zipf keys)
};

// The access sequence: Zipf keys (ranks scrambled by `base::mix64`, so popularity is not
// ordered by key value), with a scan of `scan_length` fresh keys after every `scan_every` Zipf
// accesses. Total length = length + (length / scan_every) * scan_length.
[[nodiscard]] std::vector<uint64_t> make_trace(const TraceOptions& options);

}  // namespace sluice::cache
