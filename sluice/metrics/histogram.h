// Histogram: a distribution of values (latencies, sizes) with quantiles, mergeable, cheap to
// record into.
//
// Values are kept in log-linear buckets (see internal/log_linear.h): 64 linear sub-buckets
// per power of two of the resolution, so every quantile is within 0.78% (< 1%) of the exact
// sample quantile for values at least 64 resolutions large; below that, within half a
// resolution (0.5 ns for durations). A seconds histogram covers 1 ns .. 100 s with 2014
// buckets. Count, sum, min and max are exact (sum in whole resolutions).
//
// Thread-safety: `record` is lock-free and safe from any thread; `snapshot`, `merge` and
// `reset` are safe to call concurrently with it (a snapshot taken during recording may see a
// record in the buckets but not yet in the sum; `reset` during recording may keep some of
// the concurrent records).
// Cost: `record` is a bucket-index computation (a `bit_width`) plus three relaxed atomics on
// a per-thread shard: about 5 ns uncontended, and threads recording into the same histogram
// use different shards (threads are assigned shards round-robin) so they do not share cache
// lines. Memory: 8 bytes per bucket per shard; a shard is allocated on the first record from a
// thread mapped to it, so a histogram recorded by one thread holds one shard (16 KiB for
// seconds), and at most `shards` of them. `snapshot` walks every bucket of every shard.
// Lifetime: not copyable or movable (families hand out stable references).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::metrics {

// What a histogram's values measure; decides the default resolution and exported bounds.
enum class HistogramUnit {
  kSeconds,  // durations, recorded as seconds (double) or `Duration`; resolution 1 ns
  kBytes,    // sizes in bytes; resolution 1 byte
  kNone,     // unit-less counts or values (batch sizes, ratios with a chosen resolution)
};

// The name of a unit as used in metric names ("seconds", "bytes", "" for none).
[[nodiscard]] std::string_view unit_suffix(HistogramUnit unit) noexcept;

struct HistogramOptions {
  // What the values measure.
  HistogramUnit unit = HistogramUnit::kSeconds;
  // Size of one tick, in the unit; 0 picks the unit's default (1e-9 for seconds, 1 otherwise).
  // Values of at least 64 ticks are kept within 0.78%; smaller ones within half a tick.
  double resolution = 0;
  // Largest value tracked precisely, in the unit. Policy at the bound: larger values go to
  // the top bucket (sum and max keep the real value), negative values and NaN are recorded as
  // 0; both are counted in `HistogramSnapshot::clamped`.
  double max_value = 100.0;
  // Upper bounds (`le`) exported to Prometheus, ascending, in the unit; empty picks defaults:
  // 1, 2.5, 5 per decade from 1 us to 100 s for seconds, powers of 4 from 64 B for bytes, 1,
  // 2.5, 5 per decade from one tick for unit-less histograms, all up to `max_value`.
  std::vector<double> export_bounds;
  // Most per-thread shards (1 .. 64). More shards: better scaling under many recording
  // threads, more memory (one bucket array per shard actually used).
  uint32_t shards = 4;

  // Durations up to `max_seconds`.
  [[nodiscard]] static HistogramOptions seconds(double max_seconds = 100.0);
  // Sizes up to `max_bytes` (default 1 TiB).
  [[nodiscard]] static HistogramOptions bytes(double max_bytes = 1099511627776.0);
  // Unit-less values up to `max_value`, tick `resolution`.
  [[nodiscard]] static HistogramOptions plain(double max_value, double resolution = 1.0);
};

// A merged, immutable view of a histogram at one moment. Cheap to query; owns its buckets.
class HistogramSnapshot {
 public:
  // An empty snapshot with the layout of `options` (normalised as by `Histogram`).
  explicit HistogramSnapshot(const HistogramOptions& options = {});

  // Number of recorded values.
  [[nodiscard]] uint64_t count() const noexcept { return count_; }
  // Sum of recorded values, in the unit.
  [[nodiscard]] double sum() const noexcept;
  // Smallest and largest recorded value (0 when empty).
  [[nodiscard]] double min() const noexcept;
  [[nodiscard]] double max() const noexcept;
  // sum / count (0 when empty).
  [[nodiscard]] double mean() const noexcept;
  // Values recorded outside [0, max_value] (clamped into the edge buckets).
  [[nodiscard]] uint64_t clamped() const noexcept { return clamped_; }
  // The q-quantile (q in [0, 1]) by the nearest-rank rule: the value v such that
  // ceil(q * count) values are <= v; returned as the midpoint of its bucket, clamped to
  // [min, max]. 0 when empty.
  [[nodiscard]] double quantile(double q) const noexcept;
  [[nodiscard]] double p50() const noexcept { return quantile(0.5); }
  [[nodiscard]] double p90() const noexcept { return quantile(0.9); }
  [[nodiscard]] double p99() const noexcept { return quantile(0.99); }
  [[nodiscard]] double p999() const noexcept { return quantile(0.999); }

  // Number of values <= `bound` (in the unit), to the precision of one bucket: every value
  // <= `bound` is counted, and so are values in the bucket holding `bound` that exceed it
  // (by less than 1/64 of `bound`). A value recorded exactly at a bound is always below it.
  [[nodiscard]] uint64_t count_at_or_below(double bound) const noexcept;
  // `count_at_or_below` for every export bound, in one pass (cumulative, ascending).
  [[nodiscard]] std::vector<uint64_t> export_counts() const;
  // The Prometheus `le` bounds of this histogram (ascending, without +Inf).
  [[nodiscard]] const std::vector<double>& export_bounds() const noexcept { return bounds_; }
  [[nodiscard]] HistogramUnit unit() const noexcept { return unit_; }
  [[nodiscard]] double resolution() const noexcept { return resolution_; }

  // Adds `other` (which must have the same unit, resolution and max_value) to this snapshot.
  void merge(const HistogramSnapshot& other);

 private:
  friend class Histogram;

  // Ticks to the unit; divides by the ticks per unit when that is a whole number, so that
  // 1500000 ns reads back as exactly 0.0015 s.
  // The bucket holding `bound` (SIZE_MAX for a negative bound).
  [[nodiscard]] size_t last_bucket_at_or_below(double bound) const noexcept;
  [[nodiscard]] double to_value(double ticks) const noexcept {
    return ticks_per_unit_ > 0 ? ticks / ticks_per_unit_ : ticks * resolution_;
  }

  HistogramUnit unit_;
  double resolution_;
  double ticks_per_unit_;  // 1 / resolution when whole, else 0
  std::vector<uint64_t> buckets_;
  std::vector<double> bounds_;
  uint64_t count_ = 0;
  uint64_t sum_ticks_ = 0;
  uint64_t min_ticks_ = UINT64_MAX;
  uint64_t max_ticks_ = 0;
  uint64_t clamped_ = 0;
};

// The live histogram.
class Histogram {
 public:
  explicit Histogram(HistogramOptions options = {});
  ~Histogram();
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Records one value, in the unit.
  void record(double value) noexcept { record_ticks(to_ticks(value)); }
  // Records a duration (for seconds histograms; other units receive the seconds as a value).
  void record(Duration d) noexcept {
    if (ns_ticks_) [[likely]] {
      record_ticks(d.count() < 0 ? kNegative : static_cast<uint64_t>(d.count()));
    } else {
      record(base::to_seconds(d));
    }
  }

  // A merged view of every shard.
  [[nodiscard]] HistogramSnapshot snapshot() const;
  // Shorthands for `snapshot().count()` etc.
  [[nodiscard]] uint64_t count() const noexcept;
  [[nodiscard]] double quantile(double q) const { return snapshot().quantile(q); }

  // Adds everything `other` holds (same unit, resolution and max_value, else SLUICE_CHECK).
  void merge(const Histogram& other);
  // Adds a snapshot (same layout) into this histogram.
  void merge(const HistogramSnapshot& other);
  // Forgets every value.
  void reset() noexcept;

  [[nodiscard]] const HistogramOptions& options() const noexcept { return options_; }
  // Number of bucket arrays (shards) allocated so far.
  [[nodiscard]] uint32_t shards_in_use() const noexcept;

 private:
  // Marks a negative or NaN value: recorded as 0 and counted as clamped.
  static constexpr uint64_t kNegative = UINT64_MAX;
  static constexpr uint32_t kMaxShards = 64;

  struct Shard;

  [[nodiscard]] uint64_t to_ticks(double value) const noexcept;
  void record_ticks(uint64_t ticks) noexcept;
  Shard& shard_for_this_thread() noexcept;
  Shard& install_shard(uint32_t slot) noexcept;

  HistogramOptions options_;
  double inv_resolution_;
  uint64_t max_ticks_;
  size_t num_buckets_;
  bool ns_ticks_;
  std::array<std::atomic<Shard*>, kMaxShards> shards_{};
};

// Records the time from construction to destruction (or `stop()`) into a histogram.
// Thread-safety: one timer belongs to one scope; the histogram may be shared.
// Cost: two `clock.now()` calls plus one `Histogram::record`.
class ScopedTimer {
 public:
  [[nodiscard]] ScopedTimer(Histogram& histogram, const base::Clock& clock) noexcept
      : histogram_(&histogram), clock_(&clock), start_(clock.now()) {}
  ~ScopedTimer() { stop(); }
  ScopedTimer(const ScopedTimer&) = delete;
  ScopedTimer& operator=(const ScopedTimer&) = delete;

  // Records now (once) and returns the elapsed time; later calls return zero.
  Duration stop() noexcept {
    if (histogram_ == nullptr) return Duration::zero();
    const Duration elapsed = clock_->now() - start_;
    histogram_->record(elapsed);
    histogram_ = nullptr;
    return elapsed;
  }
  // Records nothing (e.g. the operation failed and only successes are timed).
  void cancel() noexcept { histogram_ = nullptr; }
  // Time since construction, without recording.
  [[nodiscard]] Duration elapsed() const noexcept { return clock_->now() - start_; }

 private:
  Histogram* histogram_;
  const base::Clock* clock_;
  TimePoint start_;
};

}  // namespace sluice::metrics
