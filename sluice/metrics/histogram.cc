#include "sluice/metrics/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "sluice/base/check.h"
#include "sluice/metrics/internal/log_linear.h"

namespace sluice::metrics {
namespace {

using internal::bucket_index;
using internal::bucket_lower;
using internal::bucket_upper;

// Exact m * 10^e for the small exponents used here (division keeps 2.5e-6 the nearest double).
double decimal(double m, int e) {
  double p = 1;
  for (int i = 0; i < std::abs(e); ++i) p *= 10;
  return e < 0 ? m / p : m * p;
}

std::vector<double> default_bounds(HistogramUnit unit, double resolution, double max_value) {
  std::vector<double> bounds;
  const double limit = max_value * (1 + 1e-12);
  if (unit == HistogramUnit::kBytes) {
    for (double b = 64; b <= limit; b *= 4) bounds.push_back(b);
    return bounds;
  }
  const int first = unit == HistogramUnit::kSeconds
                        ? -6
                        : static_cast<int>(std::floor(std::log10(resolution) + 1e-9));
  for (int e = first; e <= 30; ++e) {
    for (const double m : {1.0, 2.5, 5.0}) {
      const double b = decimal(m, e);
      if (b > limit) return bounds;
      if (b >= resolution) bounds.push_back(b);
    }
  }
  return bounds;
}

struct Layout {
  HistogramOptions options;
  uint64_t max_ticks;
  size_t num_buckets;
};

Layout normalise(HistogramOptions o) {
  if (o.resolution == 0) o.resolution = o.unit == HistogramUnit::kSeconds ? 1e-9 : 1.0;
  SLUICE_CHECK(o.resolution > 0 && std::isfinite(o.resolution),
               "HistogramOptions::resolution must be positive");
  SLUICE_CHECK(o.max_value >= o.resolution && o.max_value / o.resolution < 0x1p62,
               "HistogramOptions::max_value must be >= resolution and < 2^62 resolutions");
  o.shards = std::bit_ceil(std::clamp<uint32_t>(o.shards, 1, 64));
  if (o.export_bounds.empty()) o.export_bounds = default_bounds(o.unit, o.resolution, o.max_value);
  for (size_t i = 1; i < o.export_bounds.size(); ++i) {
    SLUICE_CHECK(o.export_bounds[i - 1] < o.export_bounds[i],
                 "HistogramOptions::export_bounds must be strictly ascending");
  }
  const auto top = static_cast<uint64_t>(std::ceil(o.max_value / o.resolution));
  const size_t index = bucket_index(top);
  return Layout{std::move(o), bucket_upper(index), index + 1};
}

double midpoint_ticks(size_t index) {
  return (static_cast<double>(bucket_lower(index)) + static_cast<double>(bucket_upper(index))) /
         2.0;
}

void atomic_min(std::atomic<uint64_t>& a, uint64_t v) noexcept {
  uint64_t cur = a.load(std::memory_order_relaxed);
  while (v < cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

void atomic_max(std::atomic<uint64_t>& a, uint64_t v) noexcept {
  uint64_t cur = a.load(std::memory_order_relaxed);
  while (v > cur && !a.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

// Round-robin shard slots: each thread takes the next slot the first time it records.
std::atomic<uint32_t> g_next_slot{0};
thread_local uint32_t t_slot = UINT32_MAX;

}  // namespace

std::string_view unit_suffix(HistogramUnit unit) noexcept {
  switch (unit) {
    case HistogramUnit::kSeconds:
      return "seconds";
    case HistogramUnit::kBytes:
      return "bytes";
    case HistogramUnit::kNone:
      return "";
  }
  return "";
}

HistogramOptions HistogramOptions::seconds(double max_seconds) {
  HistogramOptions o;
  o.unit = HistogramUnit::kSeconds;
  o.max_value = max_seconds;
  return o;
}

HistogramOptions HistogramOptions::bytes(double max_bytes) {
  HistogramOptions o;
  o.unit = HistogramUnit::kBytes;
  o.max_value = max_bytes;
  return o;
}

HistogramOptions HistogramOptions::plain(double max_value, double resolution) {
  HistogramOptions o;
  o.unit = HistogramUnit::kNone;
  o.max_value = max_value;
  o.resolution = resolution;
  return o;
}

// ---------------------------------------------------------------------------------------------
// HistogramSnapshot

HistogramSnapshot::HistogramSnapshot(const HistogramOptions& options) {
  Layout layout = normalise(options);
  unit_ = layout.options.unit;
  resolution_ = layout.options.resolution;
  const double per_unit = std::round(1.0 / resolution_);
  ticks_per_unit_ =
      resolution_ < 1 && std::abs(per_unit * resolution_ - 1.0) < 1e-12 ? per_unit : 0.0;
  buckets_.assign(layout.num_buckets, 0);
  bounds_ = std::move(layout.options.export_bounds);
}

double HistogramSnapshot::sum() const noexcept { return to_value(static_cast<double>(sum_ticks_)); }

double HistogramSnapshot::min() const noexcept {
  return count_ == 0 ? 0.0 : to_value(static_cast<double>(min_ticks_));
}

double HistogramSnapshot::max() const noexcept {
  return count_ == 0 ? 0.0 : to_value(static_cast<double>(max_ticks_));
}

double HistogramSnapshot::mean() const noexcept {
  return count_ == 0 ? 0.0 : sum() / static_cast<double>(count_);
}

double HistogramSnapshot::quantile(double q) const noexcept {
  if (count_ == 0) return 0.0;
  if (!(q >= 0)) q = 0;  // also NaN
  q = std::min(q, 1.0);
  const auto rank =
      std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  size_t index = buckets_.size() - 1;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) {
      index = i;
      break;
    }
  }
  const double ticks = std::clamp(midpoint_ticks(index), static_cast<double>(min_ticks_),
                                  static_cast<double>(max_ticks_));
  return to_value(ticks);
}

uint64_t HistogramSnapshot::count_at_or_below(double bound) const noexcept {
  const size_t last = last_bucket_at_or_below(bound);
  uint64_t total = 0;
  for (size_t i = 0; i <= last && i < buckets_.size(); ++i) total += buckets_[i];
  return total;
}

size_t HistogramSnapshot::last_bucket_at_or_below(double bound) const noexcept {
  if (!(bound >= 0)) return SIZE_MAX;  // nothing is below a negative bound
  // The bound's tick, rounded as `record` rounds values: every value <= bound lands at or
  // before this bucket.
  const double ticks = std::floor(bound / resolution_ + 0.5);
  if (ticks >= 0x1p62) return buckets_.size() - 1;
  return std::min(bucket_index(static_cast<uint64_t>(ticks)), buckets_.size() - 1);
}

std::vector<uint64_t> HistogramSnapshot::export_counts() const {
  std::vector<uint64_t> out;
  out.reserve(bounds_.size());
  uint64_t total = 0;
  size_t i = 0;
  for (const double bound : bounds_) {
    const size_t last = last_bucket_at_or_below(bound);
    for (; last != SIZE_MAX && i <= last; ++i) total += buckets_[i];
    out.push_back(total);
  }
  return out;
}

void HistogramSnapshot::merge(const HistogramSnapshot& other) {
  SLUICE_CHECK(unit_ == other.unit_ && resolution_ == other.resolution_ &&
                   buckets_.size() == other.buckets_.size(),
               "merging histograms of different unit, resolution or max_value");
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ticks_ += other.sum_ticks_;
  min_ticks_ = std::min(min_ticks_, other.min_ticks_);
  max_ticks_ = std::max(max_ticks_, other.max_ticks_);
  clamped_ += other.clamped_;
}

// ---------------------------------------------------------------------------------------------
// Histogram

struct alignas(64) Histogram::Shard {
  explicit Shard(size_t buckets) : counts(std::make_unique<std::atomic<uint64_t>[]>(buckets)) {}

  std::atomic<uint64_t> sum{0};
  std::atomic<uint64_t> min{UINT64_MAX};
  std::atomic<uint64_t> max{0};
  std::atomic<uint64_t> clamped{0};
  std::unique_ptr<std::atomic<uint64_t>[]> counts;
};

Histogram::Histogram(HistogramOptions options) {
  Layout layout = normalise(std::move(options));
  options_ = std::move(layout.options);
  inv_resolution_ = 1.0 / options_.resolution;
  max_ticks_ = layout.max_ticks;
  num_buckets_ = layout.num_buckets;
  ns_ticks_ = options_.unit == HistogramUnit::kSeconds && options_.resolution == 1e-9;
}

Histogram::~Histogram() {
  for (auto& slot : shards_) delete slot.load(std::memory_order_acquire);
}

uint64_t Histogram::to_ticks(double value) const noexcept {
  if (!(value >= 0)) return kNegative;  // negative or NaN
  const double ticks = value * inv_resolution_ + 0.5;
  return ticks >= 0x1p63 ? uint64_t{1} << 63 : static_cast<uint64_t>(ticks);
}

Histogram::Shard& Histogram::install_shard(uint32_t slot) noexcept {
  auto fresh = std::make_unique<Shard>(num_buckets_);
  Shard* expected = nullptr;
  if (shards_[slot].compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
    return *fresh.release();
  }
  return *expected;  // another thread mapped to this slot installed it first
}

Histogram::Shard& Histogram::shard_for_this_thread() noexcept {
  uint32_t slot = t_slot;
  if (slot == UINT32_MAX) [[unlikely]] {
    slot = g_next_slot.fetch_add(1, std::memory_order_relaxed) & (kMaxShards - 1);
    t_slot = slot;
  }
  slot &= options_.shards - 1;
  Shard* shard = shards_[slot].load(std::memory_order_acquire);
  return shard != nullptr ? *shard : install_shard(slot);
}

void Histogram::record_ticks(uint64_t ticks) noexcept {
  Shard& shard = shard_for_this_thread();
  size_t index;
  if (ticks <= max_ticks_) [[likely]] {
    index = bucket_index(ticks);
  } else {
    shard.clamped.fetch_add(1, std::memory_order_relaxed);
    if (ticks == kNegative) {
      ticks = 0;
      index = 0;
    } else {
      index = num_buckets_ - 1;
    }
  }
  shard.counts[index].fetch_add(1, std::memory_order_relaxed);
  shard.sum.fetch_add(ticks, std::memory_order_relaxed);
  if (ticks < shard.min.load(std::memory_order_relaxed)) atomic_min(shard.min, ticks);
  if (ticks > shard.max.load(std::memory_order_relaxed)) atomic_max(shard.max, ticks);
}

HistogramSnapshot Histogram::snapshot() const {
  HistogramSnapshot snap(options_);
  for (const auto& slot : shards_) {
    const Shard* shard = slot.load(std::memory_order_acquire);
    if (shard == nullptr) continue;
    for (size_t i = 0; i < num_buckets_; ++i) {
      const uint64_t n = shard->counts[i].load(std::memory_order_relaxed);
      snap.buckets_[i] += n;
      snap.count_ += n;
    }
    snap.sum_ticks_ += shard->sum.load(std::memory_order_relaxed);
    snap.min_ticks_ = std::min(snap.min_ticks_, shard->min.load(std::memory_order_relaxed));
    snap.max_ticks_ = std::max(snap.max_ticks_, shard->max.load(std::memory_order_relaxed));
    snap.clamped_ += shard->clamped.load(std::memory_order_relaxed);
  }
  return snap;
}

uint64_t Histogram::count() const noexcept {
  uint64_t total = 0;
  for (const auto& slot : shards_) {
    const Shard* shard = slot.load(std::memory_order_acquire);
    if (shard == nullptr) continue;
    for (size_t i = 0; i < num_buckets_; ++i) {
      total += shard->counts[i].load(std::memory_order_relaxed);
    }
  }
  return total;
}

void Histogram::merge(const Histogram& other) {
  if (&other == this) {
    merge(snapshot());
    return;
  }
  merge(other.snapshot());
}

void Histogram::merge(const HistogramSnapshot& other) {
  SLUICE_CHECK(options_.unit == other.unit_ && options_.resolution == other.resolution_ &&
                   num_buckets_ == other.buckets_.size(),
               "merging histograms of different unit, resolution or max_value");
  if (other.count_ == 0) return;
  Shard& shard = shard_for_this_thread();
  for (size_t i = 0; i < num_buckets_; ++i) {
    if (other.buckets_[i] != 0) {
      shard.counts[i].fetch_add(other.buckets_[i], std::memory_order_relaxed);
    }
  }
  shard.sum.fetch_add(other.sum_ticks_, std::memory_order_relaxed);
  shard.clamped.fetch_add(other.clamped_, std::memory_order_relaxed);
  atomic_min(shard.min, other.min_ticks_);
  atomic_max(shard.max, other.max_ticks_);
}

void Histogram::reset() noexcept {
  for (auto& slot : shards_) {
    Shard* shard = slot.load(std::memory_order_acquire);
    if (shard == nullptr) continue;
    for (size_t i = 0; i < num_buckets_; ++i) shard->counts[i].store(0, std::memory_order_relaxed);
    shard->sum.store(0, std::memory_order_relaxed);
    shard->min.store(UINT64_MAX, std::memory_order_relaxed);
    shard->max.store(0, std::memory_order_relaxed);
    shard->clamped.store(0, std::memory_order_relaxed);
  }
}

uint32_t Histogram::shards_in_use() const noexcept {
  uint32_t n = 0;
  for (const auto& slot : shards_) n += slot.load(std::memory_order_acquire) != nullptr ? 1 : 0;
  return n;
}

}  // namespace sluice::metrics
