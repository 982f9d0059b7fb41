// ShardedCache: a thread-safe cache made of N independent shards, each a `Cache` (LruCache,
// TtlCache or TinyLfuCache) behind its own mutex. Threads that touch different shards do not
// contend; the shard of a key is chosen from its hash.
//
// Thread-safety: every member function is thread-safe. `with` runs the caller's function
// under the shard's lock: it must be short and must not call back into this cache.
// Sharding: the shard count is rounded up to a power of two; the key is hashed once with the
// Cache's Hash, then `base::mix64` of that hash picks the shard (so an identity hash like
// `std::hash<uint64_t>` still spreads), and the shard reuses the hash for its table.
// Each shard sits on its own 128-byte aligned allocation (two cache lines: no false sharing,
// also under adjacent-line prefetch).
// Bounds: `options` describe the whole cache; each shard gets max_entries/shards and
// max_bytes/shards, rounded up, so the total capacity may exceed the request by < shards.
// Eviction is per shard (approximately LRU overall), with the Cache's policies and counters.
// Cost: one hash, one uncontended mutex lock/unlock, one Cache operation. `get` copies the
// value out under the lock (use `V = std::shared_ptr<const T>` for large values so the copy
// is a pointer); it never allocates when copying V does not.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "sluice/base/hash.h"
#include "sluice/cache/cache_stats.h"
#include "sluice/cache/internal/node_table.h"

namespace sluice::cache {

template <class Cache>
class ShardedCache {
 public:
  using K = typename Cache::key_type;
  using V = typename Cache::mapped_type;
  using Options = typename Cache::Options;
  using key_type = K;
  using mapped_type = V;
  using hasher = typename Cache::hasher;
  using key_equal = typename Cache::key_equal;

  // `extra` are passed to every shard's constructor after its Options (e.g. the clock of a
  // TtlCache, then a Hash and an Eq instance).
  template <class... Extra>
  ShardedCache(size_t shards, Options options, const Extra&... extra)
      : mask_(std::bit_ceil(std::max<size_t>(shards, 1)) - 1) {
    const size_t n = mask_ + 1;
    Options per_shard = options;
    per_shard.max_entries = (options.max_entries + n - 1) / n;
    per_shard.max_bytes = (options.max_bytes + n - 1) / n;
    shards_.reserve(n);
    for (size_t i = 0; i < n; ++i) shards_.push_back(std::make_unique<Shard>(per_shard, extra...));
  }
  ShardedCache(const ShardedCache&) = delete;
  ShardedCache& operator=(const ShardedCache&) = delete;

  // A copy of the value for `key` (counted and promoted as the Cache's get), or nullopt.
  [[nodiscard]] std::optional<V> get(const auto& key) {
    const auto& k = lookup(key);
    const size_t h = shards_[0]->cache.hash_of(k);
    Shard& s = shard_for(h);
    std::lock_guard lock(s.mu);
    V* v = s.cache.get_hashed(k, h);
    if (v == nullptr) return std::nullopt;
    return std::optional<V>(*v);
  }

  // Runs f(V&) under the shard's lock if `key` is present (a hit); returns whether it was.
  template <class F>
  bool with(const auto& key, F&& f) {
    const auto& k = lookup(key);
    const size_t h = shards_[0]->cache.hash_of(k);
    Shard& s = shard_for(h);
    std::lock_guard lock(s.mu);
    V* v = s.cache.get_hashed(k, h);
    if (v == nullptr) return false;
    std::forward<F>(f)(*v);
    return true;
  }

  // Cache::put with the same extra arguments (bytes; or ttl and bytes for a TtlCache).
  template <class... Args>
  bool put(K key, V value, Args&&... args) {
    const size_t h = shards_[0]->cache.hash_of(key);
    Shard& s = shard_for(h);
    std::lock_guard lock(s.mu);
    return s.cache.put_hashed(h, std::move(key), std::move(value), std::forward<Args>(args)...);
  }

  bool erase(const auto& key) {
    const auto& k = lookup(key);
    const size_t h = shards_[0]->cache.hash_of(k);
    Shard& s = shard_for(h);
    std::lock_guard lock(s.mu);
    return s.cache.erase_hashed(k, h);
  }

  void clear() {
    for (auto& s : shards_) {
      std::lock_guard lock(s->mu);
      s->cache.clear();
    }
  }

  // Removes expired entries from every shard (TtlCache only); returns how many.
  size_t sweep() requires requires(Cache& c) { c.sweep(); }
  {
    size_t removed = 0;
    for (auto& s : shards_) {
      std::lock_guard lock(s->mu);
      removed += s->cache.sweep();
    }
    return removed;
  }

  // Entries over all shards (each shard read under its lock; not one atomic snapshot).
  [[nodiscard]] size_t size() const {
    size_t n = 0;
    for (const auto& s : shards_) {
      std::lock_guard lock(s->mu);
      n += s->cache.size();
    }
    return n;
  }

  // Stats merged over shards (capacities are the sums of the shards' bounds).
  [[nodiscard]] CacheStats stats() const {
    CacheStats total;
    for (const auto& s : shards_) {
      std::lock_guard lock(s->mu);
      total += s->cache.stats();
    }
    return total;
  }

  [[nodiscard]] size_t shard_count() const noexcept { return shards_.size(); }
  // The shard `key` lives in (for tests and diagnostics).
  [[nodiscard]] size_t shard_of(const auto& key) const {
    return base::mix64(shards_[0]->cache.hash_of(lookup(key))) & mask_;
  }

 private:
  struct alignas(128) Shard {
    template <class... Extra>
    explicit Shard(const Options& options, const Extra&... extra) : cache(options, extra...) {}
    mutable std::mutex mu;
    Cache cache;
  };

  template <class Q>
  static decltype(auto) lookup(const Q& key) {
    return internal::lookup_key<K, typename Cache::hasher, typename Cache::key_equal>(key);
  }
  Shard& shard_for(size_t hash) noexcept { return *shards_[base::mix64(hash) & mask_]; }

  size_t mask_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace sluice::cache
