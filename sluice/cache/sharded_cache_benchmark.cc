// Throughput of ShardedCache<LruCache> beside a std::unordered_map + std::mutex baseline, on
// the same keys: request-like string keys (~48-60 bytes) and uint64 keys, 1 and 2 threads.
//
//   cmake --build build/release --target sluice_cache_benchmark
//   build/release/sluice/cache/sluice_cache_benchmark --benchmark_filter='Get|Put'
//   --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Sample (shared 2-core VM at load average ~13, medians of 5; noisy, compare ratios only):
//   BM_GetHit<MutexMap<U64Keys>, U64Keys>/real_time/threads:1      3.78 M items/s
//   BM_GetHit<ShardedLru<U64Keys>, U64Keys>/real_time/threads:1    1.04 M items/s
//   BM_GetHit<MutexMap<StringKeys>, StringKeys>/real_time/threads:1    0.49 M items/s
//   BM_GetHit<ShardedLru<StringKeys>, StringKeys>/real_time/threads:1  0.56 M items/s
// (full table and discussion in docs/benchmarks.md (cache))
// Every benchmark reports `items_per_second` (operations) in total over its threads.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sluice/base/hash.h"
#include "sluice/base/random.h"
#include "sluice/cache/lru_cache.h"
#include "sluice/cache/sharded_cache.h"

namespace sluice::cache {
namespace {

constexpr size_t kKeys = 100'000;      // distinct keys; the caches hold them all (hit benchmarks)
constexpr size_t kShards = 16;         // shards of the sharded cache
constexpr size_t kAccesses = 1 << 16;  // length of each thread's (random) access sequence

struct StringKeys {
  using Key = std::string;
  using Hash = base::StringHash;
  using Eq = std::equal_to<>;
  static Key make(size_t i) {
    // A request key: method, host, path, query and tenant, 48-64 bytes.
    return "GET api.example.com/v1/users/" + std::to_string(i * 7919 % 1'000'003) +
           "/orders?page=2&tenant=acme";
  }
};
struct U64Keys {
  using Key = uint64_t;
  using Hash = std::hash<uint64_t>;
  using Eq = std::equal_to<>;
  static Key make(size_t i) { return base::mix64(i); }
};

template <class Keys>
const std::vector<typename Keys::Key>& keys() {
  static const std::vector<typename Keys::Key> k = [] {
    std::vector<typename Keys::Key> v;
    v.reserve(kKeys);
    for (size_t i = 0; i < kKeys; ++i) v.push_back(Keys::make(i));
    return v;
  }();
  return k;
}

// A per-thread random order over the keys (indices), so threads do not walk in lockstep.
std::vector<uint32_t> access_order(int thread) {
  base::Xoshiro256 rng(1000 + thread);
  std::vector<uint32_t> order(kAccesses);
  for (auto& i : order) i = static_cast<uint32_t>(rng.uniform(0, kKeys - 1));
  return order;
}

template <class Keys>
using Lru = LruCache<typename Keys::Key, uint64_t, typename Keys::Hash, typename Keys::Eq>;

// The baseline: an unbounded std::unordered_map behind one mutex.
template <class Keys>
struct MutexMap {
  std::mutex mu;
  std::unordered_map<typename Keys::Key, uint64_t, typename Keys::Hash, typename Keys::Eq> map;
  std::optional<uint64_t> get(const typename Keys::Key& k) {
    std::lock_guard lock(mu);
    const auto it = map.find(k);
    if (it == map.end()) return std::nullopt;
    return it->second;
  }
  bool put(typename Keys::Key k, uint64_t v) {
    std::lock_guard lock(mu);
    map.insert_or_assign(std::move(k), v);
    return true;
  }
};

template <class Keys>
struct ShardedLru {
  ShardedCache<Lru<Keys>> cache{kShards, {.max_entries = kKeys}};
  std::optional<uint64_t> get(const typename Keys::Key& k) { return cache.get(k); }
  bool put(typename Keys::Key k, uint64_t v) { return cache.put(std::move(k), v); }
};

// Shared between the threads of one benchmark run (created by thread 0 before the start
// barrier of the timing loop, destroyed by thread 0 after the end barrier).
template <class Impl>
Impl*& shared_instance() {
  static Impl* instance = nullptr;
  return instance;
}

template <class Impl, class Keys>
void BM_GetHit(benchmark::State& state) {
  const auto& k = keys<Keys>();
  if (state.thread_index() == 0) {
    shared_instance<Impl>() = new Impl();
    for (size_t i = 0; i < kKeys; ++i) shared_instance<Impl>()->put(k[i], i);
  }
  const std::vector<uint32_t> order = access_order(state.thread_index());
  size_t pos = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    const auto v = shared_instance<Impl>()->get(k[order[pos]]);
    sum += *v;
    pos = (pos + 1) & (kAccesses - 1);
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete shared_instance<Impl>();
    shared_instance<Impl>() = nullptr;
  }
}

// Puts that replace the value of present keys (no allocation in either implementation).
template <class Impl, class Keys>
void BM_PutUpdate(benchmark::State& state) {
  const auto& k = keys<Keys>();
  if (state.thread_index() == 0) {
    shared_instance<Impl>() = new Impl();
    for (size_t i = 0; i < kKeys; ++i) shared_instance<Impl>()->put(k[i], i);
  }
  const std::vector<uint32_t> order = access_order(state.thread_index());
  size_t pos = 0;
  for (auto _ : state) {
    const uint32_t i = order[pos];
    benchmark::DoNotOptimize(shared_instance<Impl>()->put(k[i], i));
    pos = (pos + 1) & (kAccesses - 1);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete shared_instance<Impl>();
    shared_instance<Impl>() = nullptr;
  }
}

#define SLUICE_CACHE_BENCH(fn, impl, keys) \
  BENCHMARK_TEMPLATE(fn, impl<keys>, keys)->Threads(1)->Threads(2)->UseRealTime()

SLUICE_CACHE_BENCH(BM_GetHit, MutexMap, StringKeys);
SLUICE_CACHE_BENCH(BM_GetHit, ShardedLru, StringKeys);
SLUICE_CACHE_BENCH(BM_GetHit, MutexMap, U64Keys);
SLUICE_CACHE_BENCH(BM_GetHit, ShardedLru, U64Keys);
SLUICE_CACHE_BENCH(BM_PutUpdate, MutexMap, StringKeys);
SLUICE_CACHE_BENCH(BM_PutUpdate, ShardedLru, StringKeys);
SLUICE_CACHE_BENCH(BM_PutUpdate, MutexMap, U64Keys);
SLUICE_CACHE_BENCH(BM_PutUpdate, ShardedLru, U64Keys);

// A single-threaded LruCache without the shard lock, for the cost of the wrapper.
template <class Keys>
void BM_LruCacheNoLock_GetHit(benchmark::State& state) {
  const auto& k = keys<Keys>();
  Lru<Keys> cache({.max_entries = kKeys});
  for (size_t i = 0; i < kKeys; ++i) cache.put(k[i], i);
  const std::vector<uint32_t> order = access_order(0);
  size_t pos = 0;
  uint64_t sum = 0;
  for (auto _ : state) {
    sum += *cache.get(k[order[pos]]);
    pos = (pos + 1) & (kAccesses - 1);
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_TEMPLATE(BM_LruCacheNoLock_GetHit, StringKeys);
BENCHMARK_TEMPLATE(BM_LruCacheNoLock_GetHit, U64Keys);

// Puts of fresh keys into a full cache: every put evicts (LRU) - beside a map that erases the
// key inserted kKeys puts earlier (a FIFO bound), the cheapest bounded baseline.
std::vector<std::string> churn_keys() {
  std::vector<std::string> v;
  for (size_t i = 0; i < 2 * kKeys; ++i) v.push_back(StringKeys::make(i + 5'000'000));
  return v;
}

void BM_MutexMapFifo_PutEvict(benchmark::State& state) {
  static const std::vector<std::string> k = churn_keys();
  MutexMap<StringKeys> m;
  for (size_t i = 0; i < kKeys; ++i) m.put(k[i], i);
  size_t next = kKeys;
  for (auto _ : state) {
    std::lock_guard lock(m.mu);
    m.map.erase(k[(next + k.size() - kKeys) % k.size()]);
    m.map.insert_or_assign(k[next], next);
    next = next + 1 == k.size() ? 0 : next + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MutexMapFifo_PutEvict);

void BM_ShardedLru_PutEvict(benchmark::State& state) {
  static const std::vector<std::string> k = churn_keys();
  ShardedCache<Lru<StringKeys>> c(kShards, {.max_entries = kKeys});
  for (size_t i = 0; i < kKeys; ++i) c.put(k[i], i);
  size_t next = kKeys;
  for (auto _ : state) {
    benchmark::DoNotOptimize(c.put(k[next], next));
    next = next + 1 == k.size() ? 0 : next + 1;
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["evictions"] = static_cast<double>(c.stats().evictions);
}
BENCHMARK(BM_ShardedLru_PutEvict);

}  // namespace
}  // namespace sluice::cache
