// Token-bucket rate limiting: `TokenBucket` for one stream of requests and `KeyedTokenBucket`
// for one bucket per key (client, API key, route) with a bounded number of keys.
//
// Thread-safety: both are thread-safe. `TokenBucket` is lock-free (one CAS on success);
// `KeyedTokenBucket` is sharded, one small mutex per shard.
//
// Model: a bucket holds at most `burst` tokens and refills at `rate_per_second`; `try_acquire(n)`
// takes n tokens if they are there and otherwise says how long until they will be (it never
// takes a partial amount and never waits). The state is one number, the time at which the
// bucket was (or will be) empty ("zero time", the GCRA form of the algorithm): tokens now =
// min(burst, (now - zero_time) * rate). Refill is exact with a `ManualClock`: the cost of one
// token is 1e9 / rate ns, rounded to the nearest nanosecond. A fresh bucket starts full.
//
// Cost: `TokenBucket::try_acquire` is one clock read plus one CAS (a few ns uncontended);
// `KeyedTokenBucket::try_acquire` adds a hash, a shard lock and a hash-table lookup.
// Lifetime: the clock must outlive the bucket.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::flow {

// The answer of a rate limiter: allowed now, or how long until the same request would be.
struct [[nodiscard]] RateDecision {
  // True when the tokens were taken.
  bool allowed = false;
  // When not allowed: time until `n` tokens are available (for a Retry-After header).
  // `Duration::max()` when `n` exceeds the burst, which can never be satisfied. Zero if allowed.
  Duration retry_after{0};

  explicit operator bool() const noexcept { return allowed; }
};

// Rate and burst, shared by `TokenBucket` and `KeyedTokenBucket`.
struct TokenBucketOptions {
  // Tokens added per second; must be > 0 (fractions allowed: 0.5 is one token every 2 s).
  double rate_per_second = 100.0;
  // Capacity of the bucket, the largest burst allowed after idleness; must be >= 1.
  uint32_t burst = 100;
};

// A single token bucket. Lock-free.
class TokenBucket {
 public:
  struct Stats {
    uint64_t allowed_total = 0;   // try_acquire calls that took tokens
    uint64_t rejected_total = 0;  // try_acquire calls refused (not enough tokens, or n > burst)
    double available = 0;         // tokens in the bucket now
    double rate_per_second = 0;   // configured rate
    uint32_t burst = 0;           // configured burst
  };

  TokenBucket(TokenBucketOptions options, const base::Clock& clock);
  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Takes `n` tokens if available now; otherwise takes nothing and returns the wait.
  RateDecision try_acquire(uint32_t n = 1) noexcept;
  // Tokens available now (fractional).
  [[nodiscard]] double available() const noexcept;
  [[nodiscard]] Stats stats() const noexcept;

 private:
  TokenBucketOptions options_;
  const base::Clock& clock_;
  double interval_ns_;  // cost of one token
  int64_t burst_ns_;    // time to refill the whole bucket
  alignas(64) std::atomic<int64_t> zero_time_ns_;
  alignas(64) std::atomic<uint64_t> allowed_{0};
  std::atomic<uint64_t> rejected_{0};
};

// One token bucket per key, for at most `max_keys` keys. Thread-safe (sharded).
//
// Bound: when a shard is full, the least recently used key is evicted (`evictions_total`). An
// evicted key whose bucket had refilled completely loses nothing (a new bucket starts full);
// one evicted while still below full would get a fresh full bucket on its next request, so
// these are counted apart (`evictions_not_full_total`): if that counter grows, raise
// `max_keys`. `prune()` removes every full bucket (lossless) and can run periodically to keep
// the tables small. Keys are hashed with a per-process random seed (keys come from clients).
class KeyedTokenBucket {
 public:
  struct Options {
    // Rate and burst of every key's bucket.
    TokenBucketOptions bucket;
    // Most keys kept at once (split evenly across shards, rounded up); must be >= 1.
    size_t max_keys = 100'000;
    // Number of independently locked shards (more shards, less contention); must be >= 1.
    size_t shards = 16;
  };

  struct Stats {
    uint64_t allowed_total = 0;             // try_acquire calls that took tokens
    uint64_t rejected_total = 0;            // try_acquire calls refused
    uint64_t keys = 0;                      // keys tracked now
    uint64_t max_keys = 0;                  // the bound on `keys` (shards * per-shard bound)
    uint64_t evictions_total = 0;           // keys evicted (LRU) to make room
    uint64_t evictions_not_full_total = 0;  // of those, keys whose bucket was not full (lossy)
    uint64_t pruned_total = 0;              // full buckets removed by prune()
  };

  KeyedTokenBucket(Options options, const base::Clock& clock);
  ~KeyedTokenBucket();
  KeyedTokenBucket(const KeyedTokenBucket&) = delete;
  KeyedTokenBucket& operator=(const KeyedTokenBucket&) = delete;

  // Takes `n` tokens from `key`'s bucket (created full on first use) if available now.
  RateDecision try_acquire(std::string_view key, uint32_t n = 1);
  // Tokens available now for `key` (burst for an unknown key). Does not create the key.
  [[nodiscard]] double available(std::string_view key) const;
  // Removes every key whose bucket is full again; returns how many were removed.
  size_t prune();
  [[nodiscard]] Stats stats() const;

 private:
  struct Shard;

  Shard& shard_for(std::string_view key) const;

  Options options_;
  const base::Clock& clock_;
  double interval_ns_;
  int64_t burst_ns_;
  size_t per_shard_max_;
  uint64_t seed_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace sluice::flow
