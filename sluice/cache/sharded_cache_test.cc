#include "sluice/cache/sharded_cache.h"

#include <gtest/gtest.h>

#include <barrier>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/hash.h"
#include "sluice/cache/internal/alloc_counter.h"
#include "sluice/cache/lru_cache.h"
#include "sluice/cache/tinylfu_cache.h"
#include "sluice/cache/ttl_cache.h"

namespace sluice::cache {
namespace {

using namespace std::chrono_literals;
using StringLru = LruCache<std::string, uint64_t, base::StringHash, std::equal_to<>>;

TEST(ShardedCache, RoundsShardsToPowerOfTwoAndSplitsCapacity) {
  ShardedCache<LruCache<int, int>> c(6, {.max_entries = 100, .max_bytes = 1000});
  EXPECT_EQ(c.shard_count(), 8u);
  const CacheStats s = c.stats();
  EXPECT_EQ(s.capacity_entries, 8u * 13);  // ceil(100 / 8) per shard
  EXPECT_EQ(s.capacity_bytes, 8u * 125);
  ShardedCache<LruCache<int, int>> one(0, {.max_entries = 5});
  EXPECT_EQ(one.shard_count(), 1u);
}

TEST(ShardedCache, GetPutWithEraseClear) {
  ShardedCache<StringLru> c(4, {.max_entries = 1000});
  EXPECT_FALSE(c.get("a").has_value());
  EXPECT_TRUE(c.put("a", 1));
  EXPECT_EQ(c.get(std::string_view("a")), std::optional<uint64_t>(1));
  EXPECT_TRUE(c.with("a", [](uint64_t& v) { v += 41; }));
  EXPECT_EQ(c.get("a"), std::optional<uint64_t>(42));
  EXPECT_FALSE(c.with("b", [](uint64_t&) { FAIL(); }));
  EXPECT_TRUE(c.erase("a"));
  EXPECT_FALSE(c.erase("a"));
  for (int i = 0; i < 100; ++i) c.put("k" + std::to_string(i), i);
  EXPECT_EQ(c.size(), 100u);
  std::set<size_t> shards;
  for (int i = 0; i < 100; ++i) shards.insert(c.shard_of("k" + std::to_string(i)));
  EXPECT_EQ(shards.size(), 4u);  // keys spread over every shard
  c.clear();
  EXPECT_EQ(c.size(), 0u);
  const CacheStats s = c.stats();
  EXPECT_EQ(s.inserts, 101u);
  EXPECT_EQ(s.hits, 3u);
  EXPECT_EQ(s.misses, 2u);
}

TEST(ShardedCache, IdentityHashStillSpreadsOverShards) {
  ShardedCache<LruCache<uint64_t, int>> c(16, {.max_entries = 1 << 16});
  std::set<size_t> shards;
  for (uint64_t k = 0; k < 64; k += 16) shards.insert(c.shard_of(k));  // multiples of 16
  EXPECT_GT(shards.size(), 1u);
}

TEST(ShardedCache, TtlShardsTakeTheClockAndSweep) {
  base::ManualClock clock;
  ShardedCache<TtlCache<int, int>> c(4, {.max_entries = 100, .default_ttl = 1s}, clock);
  for (int i = 0; i < 10; ++i) c.put(i, i);       // default ttl
  for (int i = 10; i < 20; ++i) c.put(i, i, 5s);  // explicit ttl
  clock.advance(1s);
  EXPECT_FALSE(c.get(0).has_value());
  EXPECT_EQ(c.sweep(), 9u);
  EXPECT_EQ(c.size(), 10u);
  EXPECT_EQ(c.stats().expirations, 10u);
}

TEST(ShardedCache, HitPathDoesNotAllocate) {
  ShardedCache<StringLru> strings(8, {.max_entries = 1000});
  ShardedCache<LruCache<uint64_t, uint64_t>> ints(8, {.max_entries = 1000});
  ShardedCache<TinyLfuCache<uint64_t, uint64_t>> tiny(8, {.max_entries = 1000});
  std::vector<std::string> keys;
  for (int i = 0; i < 100; ++i) {
    keys.push_back("GET /v1/users/" + std::to_string(i) + "?fields=id,name,email&tenant=acme");
    strings.put(keys.back(), i);
    ints.put(i, i);
    tiny.put(i, i);
  }
  const uint64_t before = internal::thread_allocations();
  uint64_t sum = 0;
  for (int round = 0; round < 10; ++round) {
    for (int i = 0; i < 100; ++i) {
      sum += *strings.get(keys[i]);
      sum += *strings.get(std::string_view(keys[i]));
      sum += *ints.get(uint64_t(i));
      sum += *tiny.get(uint64_t(i));
    }
  }
  EXPECT_EQ(internal::thread_allocations(), before);
  EXPECT_EQ(sum, 10u * 4 * (99 * 100 / 2));
}

TEST(ShardedCache, ConcurrentGetPutKeepsInvariants) {
  constexpr int kThreads = 4;
  constexpr int kOps = 20'000;
  ShardedCache<LruCache<uint64_t, uint64_t>> c(8, {.max_entries = 512, .max_bytes = 512 * 8});
  const size_t capacity = c.stats().capacity_entries;
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  std::vector<uint64_t> hits(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      uint64_t x = 0x9e3779b97f4a7c15ULL * (t + 1);
      for (int i = 0; i < kOps; ++i) {
        x = base::mix64(x);
        const uint64_t key = x % 2048;
        if (auto v = c.get(key)) {
          EXPECT_EQ(*v, key * 3);  // a value is only ever written for its own key
          ++hits[t];
        } else {
          c.put(key, key * 3, 1 + key % 16);
        }
        if (i % 1000 == 0) {
          EXPECT_LE(c.size(), capacity);
          EXPECT_LE(c.stats().bytes, c.stats().capacity_bytes);
        }
        if (i % 5000 == 0) c.erase(key);
      }
    });
  }
  for (auto& th : threads) th.join();
  const CacheStats s = c.stats();
  EXPECT_EQ(s.hits + s.misses, static_cast<uint64_t>(kThreads) * kOps);
  uint64_t total_hits = 0;
  for (uint64_t h : hits) total_hits += h;
  EXPECT_EQ(s.hits, total_hits);
  EXPECT_LE(s.entries, capacity);
  EXPECT_GT(s.evictions, 0u);
}

TEST(ShardedCache, ConcurrentTinyLfuAndTtl) {
  constexpr int kThreads = 3;
  base::ManualClock clock;
  ShardedCache<TinyLfuCache<uint64_t, uint64_t>> tiny(4, {.max_entries = 256});
  ShardedCache<TtlCache<uint64_t, uint64_t>> ttl(4, {.max_entries = 256}, clock);
  std::barrier start(kThreads + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      uint64_t x = 12345 + t;
      for (int i = 0; i < 10'000; ++i) {
        x = base::mix64(x);
        const uint64_t key = x % 1024;
        if (!tiny.get(key)) tiny.put(key, key);
        if (!ttl.get(key)) ttl.put(key, key, std::chrono::milliseconds(1 + key % 50));
      }
    });
  }
  start.arrive_and_wait();
  for (int i = 0; i < 100; ++i) {
    clock.advance(1ms);  // time moves while the workers run
    ttl.sweep();
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(tiny.size(), tiny.stats().capacity_entries);
  EXPECT_LE(ttl.size(), ttl.stats().capacity_entries);
}

}  // namespace
}  // namespace sluice::cache
