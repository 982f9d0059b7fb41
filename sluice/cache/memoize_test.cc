#include "sluice/cache/memoize.h"

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "sluice/base/clock.h"
#include "sluice/cache/lru_cache.h"
#include "sluice/cache/sharded_cache.h"
#include "sluice/cache/ttl_cache.h"

namespace sluice::cache {
namespace {

TEST(Memoize, CallsTheFunctionOncePerKey) {
  int calls = 0;
  LruCache<int, int> cache({.max_entries = 10});
  auto square = memoize(
      [&](const int& x) {
        ++calls;
        return x * x;
      },
      cache);
  EXPECT_EQ(square(3), 9);
  EXPECT_EQ(square(3), 9);
  EXPECT_EQ(square(4), 16);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().misses, 2u);
}

TEST(Memoize, ExceptionsPropagateAndAreNotCached) {
  int calls = 0;
  LruCache<std::string, std::string> cache({.max_entries = 10});
  auto fetch = memoize(
      [&](const std::string& key) -> std::string {
        if (++calls == 1) throw std::runtime_error("upstream down");
        return "value of " + key;
      },
      cache);
  EXPECT_THROW(fetch("a"), std::runtime_error);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(fetch("a"), "value of a");
  EXPECT_EQ(fetch("a"), "value of a");
  EXPECT_EQ(calls, 2);
}

TEST(Memoize, WorksWithShardedAndTtlCaches) {
  using namespace std::chrono_literals;
  base::ManualClock clock;
  int calls = 0;
  ShardedCache<TtlCache<int, int>> cache(2, {.max_entries = 10, .default_ttl = 1s}, clock);
  auto twice = memoize(
      [&](const int& x) {
        ++calls;
        return 2 * x;
      },
      cache);
  EXPECT_EQ(twice(5), 10);
  EXPECT_EQ(twice(5), 10);
  EXPECT_EQ(calls, 1);
  clock.advance(1s);  // expired: computed again
  EXPECT_EQ(twice(5), 10);
  EXPECT_EQ(calls, 2);
}

}  // namespace
}  // namespace sluice::cache
