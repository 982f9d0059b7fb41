#include <chrono>
#include <ostream>
#include <stdexcept>
#include <string>

#include "sluice/base/clock.h"
#include "sluice/cache/bloom_filter.h"
#include "sluice/cache/lazy.h"
#include "sluice/cache/lru_cache.h"
#include "sluice/cache/memoize.h"
#include "sluice/cache/sharded_cache.h"
#include "sluice/cache/tinylfu_cache.h"
#include "sluice/cache/ttl_cache.h"
#include "sluice/cache/workload.h"
#include "tools/sluice/tour.h"

namespace {

template <class Cache>
double replay(Cache& cache, const std::vector<uint64_t>& trace) {
  uint64_t hits = 0;
  for (const uint64_t key : trace) {
    if (cache.get(key) != nullptr) {
      ++hits;
    } else {
      cache.put(key, key);
    }
  }
  return static_cast<double>(hits) / static_cast<double>(trace.size());
}

void tour_cache(std::ostream& out) {
  using namespace sluice::cache;
  using namespace std::chrono_literals;

  ShardedCache<LruCache<uint64_t, uint64_t>> lru(4, {.max_entries = 100});
  for (uint64_t i = 0; i < 300; ++i) lru.put(i, i);
  uint64_t hits = 0;
  for (uint64_t i = 0; i < 300; ++i) hits += lru.get(i).has_value() ? 1 : 0;
  out << "sharded LRU (4 shards, 100 entries) after 300 puts: " << hits << " hits of 300; "
      << lru.stats() << "\n";

  sluice::base::ManualClock clock;
  TtlCache<std::string, int> ttl({.max_entries = 10}, clock);
  ttl.put("short", 1, 1s);
  ttl.put("long", 2, 1h);
  clock.advance(1s);
  out << "TTL cache at t=1s: short " << (ttl.get("short") ? "live" : "expired") << ", long "
      << (ttl.get("long") ? "live" : "expired") << "; sweep removed " << ttl.sweep() << "\n";

  const auto trace = make_trace({.distinct_keys = 20'000, .length = 100'000, .seed = 1});
  LruCache<uint64_t, uint64_t> plain({.max_entries = 200});
  TinyLfuCache<uint64_t, uint64_t> tiny({.max_entries = 200});
  const double l = replay(plain, trace);
  const double t = replay(tiny, trace);
  out << "Zipf(0.9), 100k accesses, cache = 1% of 20k keys: LRU hit ratio " << l * 100
      << "%, W-TinyLFU " << t * 100 << "%\n";
  if (t < l) throw std::runtime_error("W-TinyLFU below LRU on Zipf");

  BloomFilter bloom({.expected_items = 10'000, .false_positive_rate = 0.01});
  for (int i = 0; i < 10'000; ++i) bloom.add("k" + std::to_string(i));
  int fp = 0;
  for (int i = 0; i < 10'000; ++i) fp += bloom.may_contain("x" + std::to_string(i)) ? 1 : 0;
  out << "Bloom filter: 10k items, " << bloom.bit_count() << " bits, k=" << bloom.hash_count()
      << ", measured FPR " << fp / 100.0 << "% (target 1%, estimated "
      << bloom.estimated_fpr() * 100 << "%)\n";

  int calls = 0;
  LruCache<int, int> memo_cache({.max_entries = 16});
  auto square = memoize(
      [&](const int& x) {
        ++calls;
        return x * x;
      },
      memo_cache);
  int sum = 0;
  for (int i = 0; i < 100; ++i) sum += square(i % 10);
  Lazy<std::string> lazy([] { return std::string("computed once"); });
  out << "memoize: 100 calls over 10 arguments -> " << calls << " computations (sum " << sum
      << "); Lazy: \"" << lazy.get() << "\"\n";
}

SLUICE_TOUR_STEP(20, "cache", tour_cache);

}  // namespace
