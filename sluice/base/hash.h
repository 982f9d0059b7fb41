// Fast non-cryptographic 64-bit hashing for table lookups, sharding and sketches.
//
// `hash_bytes` reads 16 bytes per step and mixes with 64x64->128 bit multiplies (the
// "multiply and fold" construction of the wyhash family). It is for distributing keys, not
// for secrets: where an attacker could choose keys to collide, tables hash with a per-process
// random seed (`process_seed()`), and credentials are digested with SHA-256 elsewhere.
//
// Thread-safety: pure functions. Cost: about 1 ns per 8 bytes plus a few ns of setup.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace sluice::base {

namespace internal {

// 128-bit unsigned integer (a GCC/Clang extension; `__extension__` keeps -Wpedantic quiet).
__extension__ typedef unsigned __int128 Uint128;

inline uint64_t load64(const unsigned char* p) noexcept {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline uint64_t load32(const unsigned char* p) noexcept {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
// 128-bit product of a and b, folded to 64 bits by xor.
inline uint64_t fold_multiply(uint64_t a, uint64_t b) noexcept {
  const auto r = static_cast<Uint128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline constexpr uint64_t kMix0 = 0xa0761d6478bd642fULL;
inline constexpr uint64_t kMix1 = 0xe7037ed1a0b428dbULL;
inline constexpr uint64_t kMix2 = 0x8ebc6af09c88c6e3ULL;

}  // namespace internal

// Finalizer of splitmix64: turns a weak 64-bit value (a counter, a pointer) into a well mixed
// one. Bijective.
[[nodiscard]] constexpr uint64_t mix64(uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// Hashes `len` bytes at `data` with `seed`.
[[nodiscard]] inline uint64_t hash_bytes(const void* data, size_t len, uint64_t seed = 0) noexcept {
  using internal::fold_multiply;
  using internal::kMix0;
  using internal::kMix1;
  using internal::kMix2;
  using internal::load32;
  using internal::load64;
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = seed ^ fold_multiply(seed ^ kMix0, kMix1 ^ len);
  size_t n = len;
  while (n > 16) {
    h = fold_multiply(load64(p) ^ kMix1, load64(p + 8) ^ h);
    p += 16;
    n -= 16;
  }
  uint64_t a = 0;
  uint64_t b = 0;
  if (n >= 8) {
    a = load64(p);
    b = load64(p + n - 8);
  } else if (n >= 4) {
    a = load32(p);
    b = load32(p + n - 4);
  } else if (n > 0) {
    a = (static_cast<uint64_t>(p[0]) << 16) | (static_cast<uint64_t>(p[n >> 1]) << 8) | p[n - 1];
  }
  h = fold_multiply(a ^ kMix1 ^ n, b ^ h);
  return fold_multiply(h ^ kMix2, kMix0 ^ len);
}

[[nodiscard]] inline uint64_t hash_string(std::string_view s, uint64_t seed = 0) noexcept {
  return hash_bytes(s.data(), s.size(), seed);
}

// Combines a running hash with another value (order-sensitive).
[[nodiscard]] inline uint64_t hash_combine(uint64_t seed, uint64_t value) noexcept {
  return mix64(seed ^ (value + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2)));
}

// A random seed chosen once per process, for tables whose keys come from the network.
[[nodiscard]] uint64_t process_seed() noexcept;

// Transparent hasher for `std::string`/`std::string_view` keys in unordered containers
// (enables heterogeneous lookup with a string_view, no temporary string).
struct StringHash {
  using is_transparent = void;
  [[nodiscard]] size_t operator()(std::string_view s) const noexcept { return hash_string(s); }
};

// Whether `a` and `b` are equal, in a time that depends only on their lengths, not on where
// they first differ: for comparing secrets (bearer tokens) without a timing side channel.
[[nodiscard]] bool constant_time_equals(std::string_view a, std::string_view b) noexcept;

}  // namespace sluice::base
