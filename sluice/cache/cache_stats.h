// CacheStats: the one snapshot of counters and gauges every sluice cache returns from `stats()`.
//
// Thread-safety: a plain value; copy it freely. The cache that produced it decides how it was
// read (under its lock, or merged over shards by `ShardedCache`).
// Counters are totals since the cache was created (or since `reset_stats()`); `entries`,
// `bytes` and the capacities are current values. The gateway turns these into
// `sluice_cache_<field>_total` counters and `sluice_cache_<field>` gauges.
#pragma once

#include <cstdint>
#include <iosfwd>

namespace sluice::cache {

struct CacheStats {
  uint64_t hits = 0;         // lookups that found a live entry
  uint64_t misses = 0;       // lookups that found nothing (or an expired entry)
  uint64_t inserts = 0;      // puts that added a new key
  uint64_t updates = 0;      // puts that replaced the value of a present key
  uint64_t evictions = 0;    // entries removed to make room (entry or byte bound)
  uint64_t expirations = 0;  // entries removed because their TTL passed (on get, sweep or put)
  // Puts refused: capacity 0, a value larger than the byte bound, a TTL <= 0, and (W-TinyLFU)
  // window victims refused admission to the main space.
  uint64_t rejections = 0;
  uint64_t entries = 0;           // entries held now
  uint64_t bytes = 0;             // sum of the `bytes` given to put for the entries held now
  uint64_t capacity_entries = 0;  // the entry bound
  uint64_t capacity_bytes = 0;    // the byte bound (0 = none)

  // hits / (hits + misses); 0 when there were no lookups.
  [[nodiscard]] double hit_rate() const noexcept;
  // Adds every field (counters, gauges and capacities): merging shards gives the whole cache.
  CacheStats& operator+=(const CacheStats& other) noexcept;
};

// One line: "hits=.. misses=.. hit_rate=..% inserts=.. ... entries=../.. bytes=../..".
std::ostream& operator<<(std::ostream& out, const CacheStats& stats);

}  // namespace sluice::cache
