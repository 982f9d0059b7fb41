// Random sources: injected wherever sluice draws a random number (retry jitter, sampling,
// load generation), so tests can fix the sequence.
//
// `Xoshiro256` is the xoshiro256++ generator (Blackman and Vigna): fast, 256 bits of state,
// good statistical quality, not cryptographic. Thread-safety: NOT thread-safe; give each
// thread its own generator (`thread_local_random()` does that).
// Cost: a few ns per draw.
#pragma once

#include <cstdint>
#include <limits>

#include "sluice/base/hash.h"

namespace sluice::base {

// The interface components take (`RandomSource&`).
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // 64 uniformly distributed bits.
  [[nodiscard]] virtual uint64_t next_u64() noexcept = 0;

  // Uniform in [0, 1).
  [[nodiscard]] double uniform01() noexcept {
    return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  }
  // Uniform in [lo, hi] (inclusive); requires lo <= hi.
  [[nodiscard]] uint64_t uniform(uint64_t lo, uint64_t hi) noexcept {
    const uint64_t span = hi - lo;
    if (span == std::numeric_limits<uint64_t>::max()) return next_u64();
    // Lemire's multiply-shift; the bias is below 2^-64 * span, negligible here.
    const auto wide = static_cast<internal::Uint128>(next_u64()) * (span + 1);
    return lo + static_cast<uint64_t>(wide >> 64);
  }
};

// xoshiro256++ seeded through splitmix64.
class Xoshiro256 final : public RandomSource {
 public:
  explicit Xoshiro256(uint64_t seed = 0x5eed5eed5eedULL) noexcept { reseed(seed); }

  void reseed(uint64_t seed) noexcept {
    for (auto& word : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31);
    }
  }

  [[nodiscard]] uint64_t next_u64() noexcept override {
    const uint64_t result = rotl(s_[0] + s_[3], 23) + s_[0];
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

 private:
  static constexpr uint64_t rotl(uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4]{};
};

// A generator owned by the calling thread, seeded from the thread's identity and the clock.
[[nodiscard]] RandomSource& thread_local_random() noexcept;

}  // namespace sluice::base
