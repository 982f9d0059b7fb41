#include "sluice/metrics/histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <thread>
#include <vector>

#include "sluice/base/random.h"
#include "sluice/metrics/internal/log_linear.h"

namespace sluice::metrics {
namespace {

// The nearest-rank quantile of sorted data, the rule HistogramSnapshot::quantile follows.
double exact_quantile(const std::vector<double>& sorted, double q) {
  const auto n = static_cast<double>(sorted.size());
  const auto rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * n)));
  return sorted[rank - 1];
}

double relative_error(double estimate, double exact) { return std::abs(estimate - exact) / exact; }

TEST(LogLinear, BucketsAreContiguousAndNarrow) {
  uint64_t expected_lower = 0;
  for (size_t i = 0; i < 3000; ++i) {
    ASSERT_EQ(internal::bucket_lower(i), expected_lower) << i;
    ASSERT_EQ(internal::bucket_index(internal::bucket_lower(i)), i);
    ASSERT_EQ(internal::bucket_index(internal::bucket_upper(i)), i);
    if (internal::bucket_lower(i) >= 64) {
      // Width at most 1/64 of the lower edge: the midpoint is within 1/128 of any member.
      ASSERT_LE(internal::bucket_width(i) * 64, internal::bucket_lower(i)) << i;
    }
    expected_lower = internal::bucket_upper(i) + 1;
  }
}

TEST(Histogram, QuantilesWithinOnePercentOverTheWholeRange) {
  base::Xoshiro256 rng(42);
  Histogram h(HistogramOptions::seconds());
  std::vector<double> values;
  // Log-uniform from 1 us to 100 s.
  for (int i = 0; i < 200'000; ++i) {
    const double v = std::pow(10.0, -6.0 + 8.0 * rng.uniform01());
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  const HistogramSnapshot snap = h.snapshot();
  ASSERT_EQ(snap.count(), values.size());
  for (double q = 0.0; q <= 1.0; q += 0.001) {
    EXPECT_LE(relative_error(snap.quantile(q), exact_quantile(values, q)), 0.01) << "q=" << q;
  }
  for (const double q : {0.5, 0.9, 0.99, 0.999}) {
    EXPECT_LE(relative_error(snap.quantile(q), exact_quantile(values, q)), 0.01) << "q=" << q;
  }
  EXPECT_DOUBLE_EQ(snap.min(), std::round(values.front() * 1e9) * 1e-9);
  EXPECT_DOUBLE_EQ(snap.max(), std::round(values.back() * 1e9) * 1e-9);
  double sum = 0;
  for (const double v : values) sum += v;
  EXPECT_LE(relative_error(snap.sum(), sum), 1e-6);
  EXPECT_LE(relative_error(snap.mean(), sum / static_cast<double>(values.size())), 1e-6);
  EXPECT_EQ(snap.clamped(), 0u);
}

TEST(Histogram, EveryNarrowDistributionWithinOnePercent) {
  // Tight clusters around many magnitudes: each quantile must fall in the right bucket.
  base::Xoshiro256 rng(7);
  for (double centre = 1e-6; centre < 100; centre *= 3.7) {
    Histogram h;
    std::vector<double> values;
    for (int i = 0; i < 2000; ++i) {
      const double v = centre * (1 + 0.05 * rng.uniform01());
      values.push_back(v);
      h.record(v);
    }
    std::sort(values.begin(), values.end());
    const auto snap = h.snapshot();
    for (const double q : {0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0}) {
      EXPECT_LE(relative_error(snap.quantile(q), exact_quantile(values, q)), 0.01)
          << "centre=" << centre << " q=" << q;
    }
  }
}

TEST(Histogram, DurationsAndSecondsAgree) {
  Histogram a;
  Histogram b;
  a.record(std::chrono::microseconds(1500));
  b.record(0.0015);
  EXPECT_EQ(a.snapshot().sum(), b.snapshot().sum());
  EXPECT_DOUBLE_EQ(a.snapshot().p50(), 0.0015);
}

TEST(Histogram, EmptyIsAllZero) {
  const Histogram h;
  const auto s = h.snapshot();
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(s.quantile(0.5), 0.0);
  EXPECT_EQ(s.min(), 0.0);
  EXPECT_EQ(s.max(), 0.0);
  EXPECT_EQ(s.mean(), 0.0);
}

TEST(Histogram, OutOfRangeValuesAreClampedAndCounted) {
  Histogram h(HistogramOptions::seconds(10.0));
  h.record(1.0);
  h.record(50.0);  // above max_value
  h.record(-3.0);  // negative: recorded as 0
  h.record(std::nan(""));
  const auto s = h.snapshot();
  EXPECT_EQ(s.count(), 4u);
  EXPECT_EQ(s.clamped(), 3u);
  EXPECT_DOUBLE_EQ(s.max(), 50.0);  // max and sum keep the real value
  EXPECT_DOUBLE_EQ(s.min(), 0.0);
  EXPECT_DOUBLE_EQ(s.sum(), 51.0);
  EXPECT_LE(s.quantile(1.0), 50.0);
}

TEST(Histogram, UnitlessSizesWithResolution) {
  Histogram bytes(HistogramOptions::bytes());
  for (int i = 1; i <= 1000; ++i) bytes.record(static_cast<double>(i) * 1024);
  const auto s = bytes.snapshot();
  EXPECT_LE(relative_error(s.p50(), 500 * 1024.0), 0.01);
  EXPECT_EQ(s.unit(), HistogramUnit::kBytes);

  Histogram ratios(HistogramOptions::plain(1.0, 1e-6));
  for (int i = 1; i <= 100; ++i) ratios.record(i / 100.0);
  EXPECT_LE(relative_error(ratios.snapshot().p90(), 0.9), 0.01);
  // Small counts (below 128 ticks) are exact.
  Histogram counts(HistogramOptions::plain(1e6));
  for (int i = 1; i <= 100; ++i) counts.record(static_cast<double>(i));
  EXPECT_EQ(counts.snapshot().p50(), 50.0);
  EXPECT_EQ(counts.snapshot().p99(), 99.0);
}

TEST(Histogram, MergeEqualsRecordingTheUnion) {
  base::Xoshiro256 rng(3);
  Histogram a;
  Histogram b;
  Histogram both;
  for (int i = 0; i < 10'000; ++i) {
    const double v = std::pow(10.0, -6.0 + 8.0 * rng.uniform01());
    (i % 3 == 0 ? a : b).record(v);
    both.record(v);
  }
  a.merge(b);
  const auto merged = a.snapshot();
  const auto expected = both.snapshot();
  EXPECT_EQ(merged.count(), expected.count());
  EXPECT_EQ(merged.sum(), expected.sum());
  EXPECT_EQ(merged.min(), expected.min());
  EXPECT_EQ(merged.max(), expected.max());
  for (double q = 0; q <= 1.0; q += 0.01) EXPECT_EQ(merged.quantile(q), expected.quantile(q));
  EXPECT_EQ(merged.export_counts(), expected.export_counts());

  // Snapshots merge the same way.
  HistogramSnapshot s = b.snapshot();
  s.merge(expected);
  EXPECT_EQ(s.count(), b.count() + expected.count());
}

TEST(Histogram, ResetForgetsEverything) {
  Histogram h;
  h.record(0.5);
  h.record(2.0);
  h.reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.snapshot().sum(), 0.0);
  h.record(0.25);
  EXPECT_EQ(h.snapshot().min(), 0.25);
  EXPECT_EQ(h.snapshot().max(), 0.25);
}

TEST(Histogram, ExportBoundsAreCumulativeToTheBucket) {
  Histogram h;
  for (int i = 0; i < 10; ++i) h.record(0.0009);  // below 1 ms
  for (int i = 0; i < 5; ++i) h.record(0.003);    // between 2.5 ms and 5 ms
  const auto s = h.snapshot();
  EXPECT_EQ(s.count_at_or_below(0.001), 10u);
  EXPECT_EQ(s.count_at_or_below(0.0025), 10u);
  EXPECT_EQ(s.count_at_or_below(0.005), 15u);
  const auto& bounds = s.export_bounds();
  ASSERT_EQ(bounds.front(), 1e-6);
  ASSERT_EQ(bounds.back(), 100.0);
  EXPECT_EQ(bounds.size(), 25u);
  const auto counts = s.export_counts();
  for (size_t i = 0; i < bounds.size(); ++i) EXPECT_EQ(counts[i], s.count_at_or_below(bounds[i]));
}

TEST(Histogram, ValuesRecordedExactlyAtABoundAreBelowIt) {
  Histogram h;
  const std::vector<double> bounds = h.options().export_bounds;
  for (const double b : bounds) h.record(b);
  const auto counts = h.snapshot().export_counts();
  for (size_t i = 0; i < bounds.size(); ++i) EXPECT_EQ(counts[i], i + 1) << bounds[i];
}

TEST(Histogram, ConcurrentRecordingLosesNothing) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20'000;
  Histogram h;
  std::barrier start(kThreads + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) h.record(Duration(1000 * (t + 1)));
    });
  }
  start.arrive_and_wait();
  // Snapshots while recording are safe (and see a prefix of the records).
  for (int i = 0; i < 20; ++i) EXPECT_LE(h.snapshot().count(), uint64_t{kThreads} * kPerThread);
  for (auto& th : threads) th.join();
  const auto s = h.snapshot();
  EXPECT_EQ(s.count(), uint64_t{kThreads} * kPerThread);
  EXPECT_NEAR(s.sum(), kPerThread * (1 + 2 + 3 + 4) * 1e-6, 1e-9);
  EXPECT_EQ(s.min(), 1e-6);
  EXPECT_EQ(s.max(), 4e-6);
  EXPECT_GE(h.shards_in_use(), 1u);
  EXPECT_LE(h.shards_in_use(), h.options().shards);
}

TEST(ScopedTimer, RecordsElapsedOnScopeExit) {
  base::ManualClock clock;
  Histogram h;
  {
    ScopedTimer timer(h, clock);
    clock.advance(std::chrono::milliseconds(42));
    EXPECT_EQ(timer.elapsed(), std::chrono::milliseconds(42));
    EXPECT_EQ(h.count(), 0u);
  }
  EXPECT_EQ(h.count(), 1u);
  EXPECT_DOUBLE_EQ(h.snapshot().sum(), 0.042);

  {
    ScopedTimer timer(h, clock);
    clock.advance(std::chrono::milliseconds(5));
    EXPECT_EQ(timer.stop(), std::chrono::milliseconds(5));
    clock.advance(std::chrono::milliseconds(5));
    EXPECT_EQ(timer.stop(), Duration::zero());  // only once
  }
  {
    ScopedTimer timer(h, clock);
    timer.cancel();
  }
  EXPECT_EQ(h.count(), 2u);
}

}  // namespace
}  // namespace sluice::metrics
