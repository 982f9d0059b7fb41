// Counter and Gauge: the two scalar metric kinds.
//
// `Counter` is a monotonic 64-bit total (requests served, bytes sent); `Gauge` is a value that
// goes up and down (queue depth, open connections, temperature), as a double (`Gauge`) or as
// an int64 (`IntGauge`).
// Thread-safety: every operation is a single relaxed atomic and safe from any thread.
// Cost: `inc` is one relaxed `fetch_add` (about 1 ns uncontended; when several cores hammer
// one counter, the cache line bounces and it costs what a plain atomic costs). Reads are
// relaxed loads: a scrape sees each metric at some recent value, not a consistent cut across
// metrics. Neither type is copyable or movable: families hand out stable references.
#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>

namespace sluice::metrics {

// A monotonic total. Wraps at 2^64, which a counter incremented 10^9 times a second reaches
// after 584 years.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `n` (default 1).
  void inc(uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  // The current total.
  [[nodiscard]] uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }
  // Back to zero (the admin "reset metrics" action; scrapers see a counter reset).
  void reset() noexcept { value_.store(0, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that can go up and down. `T` is `double` or `int64_t`.
template <class T>
class BasicGauge {
  static_assert(std::is_same_v<T, double> || std::is_same_v<T, int64_t>,
                "a gauge holds a double or an int64_t");

 public:
  BasicGauge() = default;
  BasicGauge(const BasicGauge&) = delete;
  BasicGauge& operator=(const BasicGauge&) = delete;

  // Replaces the value.
  void set(T v) noexcept { value_.store(v, std::memory_order_relaxed); }
  // Adds `d` (may be negative).
  void add(T d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
  // Subtracts `d`.
  void sub(T d) noexcept { value_.fetch_sub(d, std::memory_order_relaxed); }
  // The current value.
  [[nodiscard]] T value() const noexcept { return value_.load(std::memory_order_relaxed); }
  // Back to zero.
  void reset() noexcept { set(T{}); }

 private:
  std::atomic<T> value_{T{}};
};

// A floating-point gauge (ratios, seconds, temperatures).
using Gauge = BasicGauge<double>;
// An integer gauge (queue depth, connections, bytes in use).
using IntGauge = BasicGauge<int64_t>;

}  // namespace sluice::metrics
