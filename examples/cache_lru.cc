// LruCache and ShardedCache: a bounded cache of upstream responses keyed by request, bounded by
// entries and bytes; shows promotion, eviction, the byte bound and the stats.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "sluice/base/hash.h"
#include "sluice/cache/lru_cache.h"
#include "sluice/cache/sharded_cache.h"

using sluice::cache::LruCache;
using sluice::cache::ShardedCache;

int main() {
  using Body = std::shared_ptr<const std::string>;  // shared: a hit copies a pointer
  LruCache<std::string, Body, sluice::base::StringHash, std::equal_to<>> cache(
      {.max_entries = 3, .max_bytes = 64 * 1024});
  auto body = [](size_t n) { return std::make_shared<const std::string>(n, 'x'); };

  cache.put("GET /v1/models", body(2000), 2000);
  cache.put("GET /v1/users/1", body(1000), 1000);
  cache.put("GET /v1/users/2", body(1000), 1000);
  (void)cache.get("GET /v1/models");               // promoted: now most recent
  cache.put("GET /v1/users/3", body(1000), 1000);  // evicts the LRU: /v1/users/1
  std::cout << "after 4 puts into 3 slots: ";
  cache.for_each([](const std::string& k, const Body&) { std::cout << k << " | "; });
  std::cout << "\n";
  const bool huge = cache.put("GET /v1/export", body(100'000), 100'000);  // > 64 KiB
  std::cout << "100 KB body " << (huge ? "stored" : "rejected (larger than the byte bound)")
            << ", entries kept: " << cache.size() << "\n";
  std::cout << "LruCache stats: " << cache.stats() << "\n";

  // The thread-safe form: 8 shards, each an LruCache behind its own mutex.
  ShardedCache<LruCache<uint64_t, uint64_t>> shared(8, {.max_entries = 1000});
  for (uint64_t i = 0; i < 2000; ++i) shared.put(i, i * i);
  uint64_t hits = 0;
  for (uint64_t i = 0; i < 2000; ++i) hits += shared.get(i).has_value() ? 1 : 0;
  std::cout << "ShardedCache (" << shared.shard_count() << " shards, 1000 entries): " << hits
            << " of 2000 keys still cached; " << shared.stats() << "\n";
  return cache.size() == 3 && !huge && hits <= 1000 ? 0 : 1;
}
