// A latency histogram: record log-uniform latencies, read quantiles, compare with the exact
// sorted values, merge two histograms, and time a scope with a fake clock.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/random.h"
#include "sluice/metrics/histogram.h"

int main() {
  using sluice::metrics::Histogram;
  sluice::base::Xoshiro256 rng(2024);
  Histogram latency;  // seconds, 1 ns resolution, up to 100 s
  std::vector<double> exact;
  for (int i = 0; i < 100'000; ++i) {
    const double v = std::pow(10.0, -5.0 + 4.0 * rng.uniform01());  // 10 us .. 100 ms
    latency.record(v);
    exact.push_back(v);
  }
  std::sort(exact.begin(), exact.end());
  const auto snap = latency.snapshot();
  std::printf("recorded %llu latencies, mean %.3f ms, min %.3f ms, max %.3f ms\n",
              static_cast<unsigned long long>(snap.count()), snap.mean() * 1e3, snap.min() * 1e3,
              snap.max() * 1e3);
  double worst = 0;
  for (const double q : {0.5, 0.9, 0.99, 0.999}) {
    const double truth = exact[static_cast<size_t>(std::ceil(q * exact.size())) - 1];
    const double err = std::abs(snap.quantile(q) - truth) / truth;
    worst = std::max(worst, err);
    std::printf("  p%-5g histogram %.4f ms  exact %.4f ms  error %.3f%%\n", q * 100,
                snap.quantile(q) * 1e3, truth * 1e3, err * 100);
  }

  Histogram other;
  for (int i = 0; i < 1000; ++i) other.record(std::chrono::milliseconds(250));
  latency.merge(other);
  std::printf("after merging 1000 x 250 ms: count %llu, p99 %.1f ms\n",
              static_cast<unsigned long long>(latency.count()), latency.quantile(0.99) * 1e3);

  sluice::base::ManualClock clock;
  Histogram timed;
  {
    sluice::metrics::ScopedTimer timer(timed, clock);
    clock.advance(std::chrono::microseconds(1234));
  }
  std::printf("ScopedTimer recorded %.3f ms with a manual clock\n", timed.snapshot().sum() * 1e3);
  return worst <= 0.01 && timed.count() == 1 ? 0 : 1;
}
