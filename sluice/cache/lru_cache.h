// LruCache: a bounded map that evicts the least recently used entry, bounded by a number of
// entries and, optionally, by a total of byte charges given with each put.
//
// Thread-safety: NOT thread-safe; wrap it in `ShardedCache` to share it between threads.
// Cost: get, put and erase are O(1): one hash of the key, one probe of a Boost flat hash set
// of node indices, and a few index writes to relink the recency list. A hit never allocates;
// an insert allocates only what constructing the key and value needs (node storage grows in
// doubling chunks and is reused).
// Lifetime: a `V*` returned by `get` stays valid until that entry is erased, evicted, replaced
// or the cache is cleared or destroyed (nodes never move).
// Policies at the bounds: a put that needs room evicts from the least recently used end until
// the new entry fits both bounds (counted in `evictions`). A put whose byte charge exceeds
// `max_bytes` on its own, or any put when `max_entries` is 0, is rejected without evicting
// anything (counted in `rejections`); a rejected replacement also drops the old value, which
// the caller has declared stale.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include "sluice/cache/cache_stats.h"
#include "sluice/cache/internal/node_table.h"

namespace sluice::cache {

template <class K, class V, class Hash = std::hash<K>, class Eq = std::equal_to<K>>
class LruCache {
 public:
  using key_type = K;
  using mapped_type = V;
  using hasher = Hash;
  using key_equal = Eq;

  struct Options {
    size_t max_entries;    // entry bound; 0 = every put is rejected
    size_t max_bytes = 0;  // bound on the sum of byte charges; 0 = no byte bound
  };

  explicit LruCache(Options options, Hash hash = Hash(), Eq eq = Eq())
      : options_(options), table_(std::make_unique<Table>(std::move(hash), std::move(eq))) {
    SLUICE_CHECK(options_.max_entries <= internal::kMaxNodes, "LruCache: max_entries > 2^31");
  }

  // The value for `key`, promoted to most recently used; nullptr on a miss. Heterogeneous
  // lookup (e.g. `std::string_view` for `std::string` keys) when Hash and Eq are transparent.
  [[nodiscard]] V* get(const auto& key) {
    const auto& k = internal::lookup_key<K, Hash, Eq>(key);
    return get_hashed(k, table_->hash_of(k));
  }

  // Like `get`, but neither promotes nor counts: for inspection and tests.
  [[nodiscard]] const V* peek(const auto& key) const {
    const auto& k = internal::lookup_key<K, Hash, Eq>(key);
    const uint32_t i = table_->find(k, table_->hash_of(k));
    return i == internal::kNil ? nullptr : &table_->node(i).value();
  }

  // Inserts or replaces; the entry becomes most recently used. `bytes` is the entry's charge
  // against `max_bytes`. Returns false if rejected (see the policies above).
  bool put(K key, V value, size_t bytes = 0) {
    const size_t h = table_->hash_of(key);
    return put_hashed(h, std::move(key), std::move(value), bytes);
  }

  // Removes `key`; returns whether it was present.
  bool erase(const auto& key) {
    const auto& k = internal::lookup_key<K, Hash, Eq>(key);
    return erase_hashed(k, table_->hash_of(k));
  }

  // Removes every entry (not counted as evictions); counters are kept.
  void clear() noexcept {
    table_->clear();
    lru_ = {};
    bytes_ = 0;
  }

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
  // Zeroes the counters (not the entries).
  void reset_stats() noexcept { counters_ = {}; }

  // Calls f(const K&, const V&) for each entry, most recently used first.
  template <class F>
  void for_each(F&& f) const {
    for (uint32_t i = lru_.head; i != internal::kNil; i = table_->next_of(i)) {
      auto& n = table_->node(i);
      f(static_cast<const K&>(n.key()), static_cast<const V&>(n.value()));
    }
  }

  // Forms that take the key's hash (`hash_of`) computed by the caller; `ShardedCache` hashes
  // once to pick a shard and passes the hash down. `hash` must be `hash_of(key)`.
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
    ++counters_.hits;
    table_->move_to_front(lru_, i);
    return &table_->node(i).value();
  }
  bool put_hashed(size_t hash, K key, V value, size_t bytes = 0) {
    const uint32_t existing = table_->find(key, hash);
    if (options_.max_entries == 0 || (options_.max_bytes != 0 && bytes > options_.max_bytes)) {
      if (existing != internal::kNil) remove(existing);
      ++counters_.rejections;
      return false;
    }
    if (existing != internal::kNil) {
      auto& n = table_->node(existing);
      n.value() = std::move(value);
      bytes_ = bytes_ - n.bytes + bytes;
      n.bytes = bytes;
      table_->move_to_front(lru_, existing);
      ++counters_.updates;
      evict_to_fit(0, 0, existing);
      return true;
    }
    evict_to_fit(1, bytes, internal::kNil);
    const uint32_t i = table_->insert(std::move(key), std::move(value), hash, bytes);
    table_->push_front(lru_, i);
    bytes_ += bytes;
    ++counters_.inserts;
    return true;
  }
  template <class Q>
  bool erase_hashed(const Q& key, size_t hash) {
    const uint32_t i = table_->find(key, hash);
    if (i == internal::kNil) return false;
    remove(i);
    return true;
  }

 private:
  using Table = internal::NodeTable<K, V, Hash, Eq>;

  // Evicts from the LRU end until `extra_entries` more entries and `extra_bytes` more bytes
  // fit. Never evicts `keep` (an entry just updated, which fits on its own).
  void evict_to_fit(size_t extra_entries, size_t extra_bytes, uint32_t keep) noexcept {
    while (lru_.tail != internal::kNil && lru_.tail != keep &&
           (table_->size() + extra_entries > options_.max_entries ||
            (options_.max_bytes != 0 && bytes_ + extra_bytes > options_.max_bytes))) {
      remove(lru_.tail);
      ++counters_.evictions;
    }
  }
  void remove(uint32_t i) noexcept {
    bytes_ -= table_->node(i).bytes;
    table_->unlink(lru_, i);
    table_->remove(i);
  }

  Options options_;
  std::unique_ptr<Table> table_;
  internal::List lru_;
  size_t bytes_ = 0;
  CacheStats counters_;
};

}  // namespace sluice::cache
