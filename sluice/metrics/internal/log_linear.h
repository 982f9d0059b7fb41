// Log-linear bucket arithmetic shared by `Histogram` and `HistogramSnapshot`.
//
// A value is first converted to an unsigned number of ticks (one tick = the histogram's
// resolution, 1 ns for durations). Ticks below 128 get one bucket each; above, every power of
// two [2^k, 2^(k+1)) is split into 64 equal sub-buckets. A bucket is therefore at most 1/64
// of its lower edge wide, and its midpoint is within 1/128 (0.78%) of any value inside it.
// index(t) = shift * 64 + (t >> shift), where shift = max(0, bit_width(t) - 7).
// Thread-safety: pure constexpr functions.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace sluice::metrics::internal {

// Sub-buckets per power of two (2^kSubBits).
inline constexpr int kSubBits = 6;
inline constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBits;

// The shift applied to `ticks` to find its sub-bucket (0 for the exact region below 128).
[[nodiscard]] constexpr int bucket_shift(uint64_t ticks) noexcept {
  const int width = std::bit_width(ticks);
  return width > kSubBits + 1 ? width - (kSubBits + 1) : 0;
}

// The bucket holding `ticks`.
[[nodiscard]] constexpr size_t bucket_index(uint64_t ticks) noexcept {
  const int shift = bucket_shift(ticks);
  return static_cast<size_t>(static_cast<uint64_t>(shift) * kSubBuckets + (ticks >> shift));
}

// The smallest tick count in bucket `index`.
[[nodiscard]] constexpr uint64_t bucket_lower(size_t index) noexcept {
  if (index < 2 * kSubBuckets) return index;
  const uint64_t shift = index / kSubBuckets - 1;
  const uint64_t sub = index % kSubBuckets + kSubBuckets;
  return sub << shift;
}

// The width of bucket `index` in ticks (1 in the exact region).
[[nodiscard]] constexpr uint64_t bucket_width(size_t index) noexcept {
  if (index < 2 * kSubBuckets) return 1;
  return uint64_t{1} << (index / kSubBuckets - 1);
}

// The largest tick count in bucket `index` (inclusive).
[[nodiscard]] constexpr uint64_t bucket_upper(size_t index) noexcept {
  return bucket_lower(index) + (bucket_width(index) - 1);
}

static_assert(bucket_index(127) == 127);
static_assert(bucket_index(128) == 128);
static_assert(bucket_index(255) == 191);
static_assert(bucket_index(256) == 192);
static_assert(bucket_lower(192) == 256 && bucket_upper(191) == 255);
static_assert(bucket_lower(bucket_index(1'000'000)) <= 1'000'000 &&
              bucket_upper(bucket_index(1'000'000)) >= 1'000'000);

}  // namespace sluice::metrics::internal
