// TtlCache: a bounded LRU map whose entries each carry their own time to live.
//
// Thread-safety: NOT thread-safe; wrap it in `ShardedCache` to share it between threads.
// Time comes from the injected `base::Clock` (a `ManualClock` in tests); the clock must
// outlive the cache.
// Expiry: an entry put at time t with ttl d is live while now < t + d and expired from
// now >= t + d exactly. Expiry is lazy: `get` removes an expired entry it finds (a miss, and
// an expiration), `put` drops expired entries before evicting live ones, and `sweep()`
// removes expired entries in order of expiry. Nothing runs in the background.
// Cost: get is O(1) plus one clock read; put and erase are O(log n) (an intrusive binary
// min-heap of expiry times, one slot per entry, so it never holds stale items); sweep is
// O(k log n) for k expired entries. A hit never allocates.
// Lifetime: a `V*` returned by `get` stays valid until that entry is removed or replaced.
// Policies at the bounds are those of `LruCache` (evict least recently used to fit; reject a
// charge larger than `max_bytes`, or any put when `max_entries` is 0), with two additions:
// when room is needed, already expired entries go first (counted as expirations); and a put
// with ttl <= 0 stores nothing and is counted as a rejection (a replacement also drops the
// old value).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/cache/cache_stats.h"
#include "sluice/cache/internal/node_table.h"

namespace sluice::cache {

namespace internal {
struct TtlMeta {
  TimePoint expires_at;   // the entry is expired from this instant on
  uint32_t heap_pos = 0;  // position of the node in the expiry heap
};
}  // namespace internal

template <class K, class V, class Hash = std::hash<K>, class Eq = std::equal_to<K>>
class TtlCache {
 public:
  using key_type = K;
  using mapped_type = V;
  using hasher = Hash;
  using key_equal = Eq;

  struct Options {
    size_t max_entries;    // entry bound; 0 = every put is rejected
    size_t max_bytes = 0;  // bound on the sum of byte charges; 0 = no byte bound
    Duration default_ttl = std::chrono::seconds(60);  // the ttl of `put(key, value)`
  };

  explicit TtlCache(Options options, const base::Clock& clock = base::SteadyClock::instance(),
                    Hash hash = Hash(), Eq eq = Eq())
      : options_(options),
        clock_(&clock),
        table_(std::make_unique<Table>(std::move(hash), std::move(eq))) {
    SLUICE_CHECK(options_.max_entries <= internal::kMaxNodes, "TtlCache: max_entries > 2^31");
  }

  // The live value for `key`, promoted to most recently used; nullptr if absent or expired
  // (an expired entry is removed and counted as a miss and an expiration).
  [[nodiscard]] V* get(const auto& key) {
    const auto& k = internal::lookup_key<K, Hash, Eq>(key);
    return get_hashed(k, table_->hash_of(k));
  }

  // Inserts or replaces with time to live `ttl` from now. Returns false if rejected.
  bool put(K key, V value, Duration ttl, size_t bytes = 0) {
    const size_t h = table_->hash_of(key);
    return put_hashed(h, std::move(key), std::move(value), ttl, bytes);
  }
  // Inserts or replaces with `Options::default_ttl`.
  bool put(K key, V value) {
    const size_t h = table_->hash_of(key);
    return put_hashed(h, std::move(key), std::move(value), options_.default_ttl, 0);
  }

  // Removes `key` (live or expired); returns whether a live entry was removed.
  bool erase(const auto& key) {
    const auto& k = internal::lookup_key<K, Hash, Eq>(key);
    return erase_hashed(k, table_->hash_of(k));
  }

  // Removes up to `max_items` expired entries, soonest expiry first; returns how many.
  size_t sweep(size_t max_items = SIZE_MAX) noexcept {
    const TimePoint now = clock_->now();
    size_t removed = 0;
    while (removed < max_items && expire_one(now)) ++removed;
    return removed;
  }

  // The time `key` expires at, if present and live (no promotion, not counted).
  [[nodiscard]] const TimePoint* expires_at(const auto& key) const {
    const auto& k = internal::lookup_key<K, Hash, Eq>(key);
    const uint32_t i = table_->find(k, table_->hash_of(k));
    if (i == internal::kNil) return nullptr;
    const auto& n = table_->node(i);
    return clock_->now() >= n.meta.expires_at ? nullptr : &n.meta.expires_at;
  }

  // Removes every entry (not counted); counters are kept.
  void clear() noexcept {
    table_->clear();
    lru_ = {};
    heap_.clear();
    bytes_ = 0;
  }

  // Entries held, including expired ones not yet removed.
  [[nodiscard]] size_t size() const noexcept { return table_->size(); }
  [[nodiscard]] size_t bytes() const noexcept { return bytes_; }
  [[nodiscard]] const Options& options() const noexcept { return options_; }

  [[nodiscard]] CacheStats stats() const noexcept {
    CacheStats s = counters_;
    s.entries = table_->size();
    s.bytes = bytes_;
    s.capacity_entries = options_.max_entries;
    s.capacity_bytes = options_.max_bytes;
    return s;
  }
  void reset_stats() noexcept { counters_ = {}; }

  // Forms taking the caller's `hash_of(key)`, for `ShardedCache`.
  template <class Q>
  [[nodiscard]] size_t hash_of(const Q& key) const {
    return table_->hash_of(internal::lookup_key<K, Hash, Eq>(key));
  }
  template <class Q>
  [[nodiscard]] V* get_hashed(const Q& key, size_t hash) {
    const uint32_t i = table_->find(key, hash);
    if (i == internal::kNil) {
      ++counters_.misses;
      return nullptr;
    }
    if (clock_->now() >= table_->node(i).meta.expires_at) {
      remove(i);
      ++counters_.expirations;
      ++counters_.misses;
      return nullptr;
    }
    ++counters_.hits;
    table_->move_to_front(lru_, i);
    return &table_->node(i).value();
  }
  bool put_hashed(size_t hash, K key, V value, Duration ttl, size_t bytes = 0) {
    const uint32_t existing = table_->find(key, hash);
    if (options_.max_entries == 0 || ttl <= Duration::zero() ||
        (options_.max_bytes != 0 && bytes > options_.max_bytes)) {
      if (existing != internal::kNil) remove(existing);
      ++counters_.rejections;
      return false;
    }
    const TimePoint now = clock_->now();
    const TimePoint expires = saturating_add(now, ttl);
    if (existing != internal::kNil) {
      auto& n = table_->node(existing);
      n.value() = std::move(value);
      bytes_ = bytes_ - n.bytes + bytes;
      n.bytes = bytes;
      n.meta.expires_at = expires;
      heap_fix(n.meta.heap_pos);
      table_->move_to_front(lru_, existing);
      ++counters_.updates;
      make_room(0, 0, existing, now);
      return true;
    }
    make_room(1, bytes, internal::kNil, now);
    const uint32_t i = table_->insert(std::move(key), std::move(value), hash, bytes);
    try {
      heap_.push_back(i);
    } catch (...) {
      table_->remove(i);
      throw;
    }
    auto& n = table_->node(i);
    n.meta.expires_at = expires;
    n.meta.heap_pos = static_cast<uint32_t>(heap_.size() - 1);
    heap_up(n.meta.heap_pos);
    table_->push_front(lru_, i);
    bytes_ += bytes;
    ++counters_.inserts;
    return true;
  }
  bool put_hashed(size_t hash, K key, V value) {
    return put_hashed(hash, std::move(key), std::move(value), options_.default_ttl, 0);
  }
  template <class Q>
  bool erase_hashed(const Q& key, size_t hash) {
    const uint32_t i = table_->find(key, hash);
    if (i == internal::kNil) return false;
    const bool live = clock_->now() < table_->node(i).meta.expires_at;
    remove(i);
    return live;
  }

 private:
  using Table = internal::NodeTable<K, V, Hash, Eq, internal::TtlMeta>;

  static TimePoint saturating_add(TimePoint now, Duration ttl) noexcept {
    return ttl >= TimePoint::max() - now ? TimePoint::max() : now + ttl;
  }

  bool over(size_t extra_entries, size_t extra_bytes) const noexcept {
    return table_->size() + extra_entries > options_.max_entries ||
           (options_.max_bytes != 0 && bytes_ + extra_bytes > options_.max_bytes);
  }
  // Frees room for `extra_entries`/`extra_bytes`: expired entries first, then the least
  // recently used; never removes `keep` (which was just given a ttl > 0, so is not expired).
  void make_room(size_t extra_entries, size_t extra_bytes, uint32_t keep, TimePoint now) noexcept {
    while (over(extra_entries, extra_bytes) && expire_one(now)) {
    }
    while (over(extra_entries, extra_bytes) && lru_.tail != internal::kNil && lru_.tail != keep) {
      remove(lru_.tail);
      ++counters_.evictions;
    }
  }
  // Removes the entry that expires first if it has expired at `now`.
  bool expire_one(TimePoint now) noexcept {
    if (heap_.empty() || now < table_->node(heap_.front()).meta.expires_at) return false;
    remove(heap_.front());
    ++counters_.expirations;
    return true;
  }
  void remove(uint32_t i) noexcept {
    auto& n = table_->node(i);
    bytes_ -= n.bytes;
    heap_erase(n.meta.heap_pos);
    table_->unlink(lru_, i);
    table_->remove(i);
  }

  // The expiry heap: heap_[0] expires first; each node knows its position.
  TimePoint key_at(size_t pos) const noexcept { return table_->node(heap_[pos]).meta.expires_at; }
  void place(size_t pos, uint32_t index) noexcept {
    heap_[pos] = index;
    table_->node(index).meta.heap_pos = static_cast<uint32_t>(pos);
  }
  void heap_up(size_t pos) noexcept {
    const uint32_t index = heap_[pos];
    const TimePoint t = table_->node(index).meta.expires_at;
    while (pos > 0) {
      const size_t parent = (pos - 1) / 2;
      if (key_at(parent) <= t) break;
      place(pos, heap_[parent]);
      pos = parent;
    }
    place(pos, index);
  }
  void heap_down(size_t pos) noexcept {
    const uint32_t index = heap_[pos];
    const TimePoint t = table_->node(index).meta.expires_at;
    const size_t n = heap_.size();
    for (;;) {
      size_t child = 2 * pos + 1;
      if (child >= n) break;
      if (child + 1 < n && key_at(child + 1) < key_at(child)) ++child;
      if (t <= key_at(child)) break;
      place(pos, heap_[child]);
      pos = child;
    }
    place(pos, index);
  }
  void heap_fix(size_t pos) noexcept {
    if (pos > 0 && key_at(pos) < key_at((pos - 1) / 2)) {
      heap_up(pos);
    } else {
      heap_down(pos);
    }
  }
  void heap_erase(size_t pos) noexcept {
    const uint32_t last = heap_.back();
    heap_.pop_back();
    if (pos == heap_.size()) return;
    place(pos, last);
    heap_fix(pos);
  }

  Options options_;
  const base::Clock* clock_;
  std::unique_ptr<Table> table_;
  internal::List lru_;
  std::vector<uint32_t> heap_;
  size_t bytes_ = 0;
  CacheStats counters_;
};

}  // namespace sluice::cache
