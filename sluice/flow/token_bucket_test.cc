#include "sluice/flow/token_bucket.h"

#include <gtest/gtest.h>

#include <barrier>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::flow {
namespace {

using namespace std::chrono_literals;

TEST(TokenBucket, StartsFullAndAllowsTheBurst) {
  base::ManualClock clock;
  TokenBucket bucket({.rate_per_second = 10, .burst = 5}, clock);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.try_acquire()) << i;
  const RateDecision d = bucket.try_acquire();
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 100ms);
  const auto s = bucket.stats();
  EXPECT_EQ(s.allowed_total, 5u);
  EXPECT_EQ(s.rejected_total, 1u);
  EXPECT_DOUBLE_EQ(s.available, 0.0);
}

TEST(TokenBucket, RefillsExactlyWithTheClock) {
  base::ManualClock clock;
  TokenBucket bucket({.rate_per_second = 10, .burst = 5}, clock);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(bucket.try_acquire());
  clock.advance(99ms);
  RateDecision d = bucket.try_acquire();
  EXPECT_FALSE(d);
  EXPECT_EQ(d.retry_after, 1ms);
  clock.advance(1ms);
  EXPECT_TRUE(bucket.try_acquire());
  EXPECT_FALSE(bucket.try_acquire());
  clock.advance(250ms);  // 2.5 tokens
  EXPECT_NEAR(bucket.available(), 2.5, 1e-9);
  EXPECT_TRUE(bucket.try_acquire(2));
  d = bucket.try_acquire();
  EXPECT_FALSE(d);
  EXPECT_EQ(d.retry_after, 50ms);
}

TEST(TokenBucket, IdlenessRefillsOnlyUpToTheBurst) {
  base::ManualClock clock;
  TokenBucket bucket({.rate_per_second = 100, .burst = 3}, clock);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(bucket.try_acquire());
  clock.advance(1h);
  EXPECT_DOUBLE_EQ(bucket.available(), 3.0);
  EXPECT_TRUE(bucket.try_acquire(3));
  EXPECT_FALSE(bucket.try_acquire());
}

TEST(TokenBucket, RequestLargerThanBurstIsNeverAllowed) {
  base::ManualClock clock;
  TokenBucket bucket({.rate_per_second = 10, .burst = 4}, clock);
  const RateDecision d = bucket.try_acquire(5);
  EXPECT_FALSE(d);
  EXPECT_EQ(d.retry_after, Duration::max());
  EXPECT_DOUBLE_EQ(bucket.available(), 4.0);  // nothing taken
}

TEST(TokenBucket, FractionalRate) {
  base::ManualClock clock;
  TokenBucket bucket({.rate_per_second = 0.5, .burst = 1}, clock);
  EXPECT_TRUE(bucket.try_acquire());
  const RateDecision d = bucket.try_acquire();
  EXPECT_EQ(d.retry_after, 2s);
  clock.advance(2s);
  EXPECT_TRUE(bucket.try_acquire());
}

TEST(TokenBucket, ConcurrentCallersNeverExceedTheBudget) {
  base::ManualClock clock;  // time stands still: exactly `burst` acquisitions can succeed
  TokenBucket bucket({.rate_per_second = 1000, .burst = 1000}, clock);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 1000;
  std::barrier start(kThreads);
  std::vector<int> allowed(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) allowed[t] += bucket.try_acquire() ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  int total = 0;
  for (int a : allowed) total += a;
  EXPECT_EQ(total, 1000);
  EXPECT_EQ(bucket.stats().allowed_total, 1000u);
  EXPECT_EQ(bucket.stats().rejected_total, 3000u);
}

TEST(KeyedTokenBucket, KeysHaveIndependentBuckets) {
  base::ManualClock clock;
  KeyedTokenBucket buckets({.bucket = {.rate_per_second = 1, .burst = 2}, .max_keys = 100}, clock);
  EXPECT_TRUE(buckets.try_acquire("alice"));
  EXPECT_TRUE(buckets.try_acquire("alice"));
  const RateDecision d = buckets.try_acquire("alice");
  EXPECT_FALSE(d);
  EXPECT_EQ(d.retry_after, 1s);
  EXPECT_TRUE(buckets.try_acquire("bob"));
  EXPECT_DOUBLE_EQ(buckets.available("bob"), 1.0);
  EXPECT_DOUBLE_EQ(buckets.available("carol"), 2.0);  // unknown: a full bucket
  clock.advance(1s);
  EXPECT_TRUE(buckets.try_acquire("alice"));
  const auto s = buckets.stats();
  EXPECT_EQ(s.allowed_total, 4u);
  EXPECT_EQ(s.rejected_total, 1u);
  EXPECT_EQ(s.keys, 2u);
}

TEST(KeyedTokenBucket, EvictsLeastRecentlyUsedAtTheBoundAndCountsLossyEvictions) {
  base::ManualClock clock;
  // One shard so that LRU order is global and the test is deterministic.
  KeyedTokenBucket buckets(
      {.bucket = {.rate_per_second = 1, .burst = 1}, .max_keys = 3, .shards = 1}, clock);
  ASSERT_TRUE(buckets.try_acquire("a"));
  ASSERT_TRUE(buckets.try_acquire("b"));
  ASSERT_TRUE(buckets.try_acquire("c"));
  EXPECT_FALSE(buckets.try_acquire("a"));  // touches "a": "b" is now least recently used
  EXPECT_TRUE(buckets.try_acquire("d"));   // evicts "b", whose bucket was empty: lossy
  auto s = buckets.stats();
  EXPECT_EQ(s.keys, 3u);
  EXPECT_EQ(s.max_keys, 3u);
  EXPECT_EQ(s.evictions_total, 1u);
  EXPECT_EQ(s.evictions_not_full_total, 1u);
  EXPECT_DOUBLE_EQ(buckets.available("b"), 1.0);  // forgotten: a fresh full bucket
  EXPECT_DOUBLE_EQ(buckets.available("a"), 0.0);  // kept

  clock.advance(10s);                     // every bucket full again
  EXPECT_TRUE(buckets.try_acquire("e"));  // evicts "c" (full): lossless
  s = buckets.stats();
  EXPECT_EQ(s.evictions_total, 2u);
  EXPECT_EQ(s.evictions_not_full_total, 1u);
  EXPECT_LE(s.keys, s.max_keys);
}

TEST(KeyedTokenBucket, PruneRemovesOnlyFullBuckets) {
  base::ManualClock clock;
  KeyedTokenBucket buckets({.bucket = {.rate_per_second = 1, .burst = 2}, .max_keys = 1000}, clock);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(buckets.try_acquire("k" + std::to_string(i)));
  clock.advance(500ms);
  ASSERT_TRUE(buckets.try_acquire("hot", 2));
  clock.advance(500ms);  // the ten "k" buckets are full again; "hot" holds 0.5 tokens
  EXPECT_EQ(buckets.prune(), 10u);
  const auto s = buckets.stats();
  EXPECT_EQ(s.keys, 1u);
  EXPECT_EQ(s.pruned_total, 10u);
  EXPECT_NEAR(buckets.available("hot"), 0.5, 1e-9);
}

TEST(KeyedTokenBucket, KeyCountStaysWithinTheBoundUnderManyKeys) {
  base::ManualClock clock;
  KeyedTokenBucket buckets(
      {.bucket = {.rate_per_second = 10, .burst = 10}, .max_keys = 64, .shards = 8}, clock);
  for (int i = 0; i < 10'000; ++i) {
    ASSERT_TRUE(buckets.try_acquire("client-" + std::to_string(i)));
    ASSERT_LE(buckets.stats().keys, 64u);
  }
  const auto s = buckets.stats();
  EXPECT_EQ(s.evictions_total, 10'000u - s.keys);
}

TEST(KeyedTokenBucket, ConcurrentCallersOnSharedAndPrivateKeys) {
  base::ManualClock clock;
  KeyedTokenBucket buckets({.bucket = {.rate_per_second = 1, .burst = 100}, .max_keys = 1000},
                           clock);
  constexpr int kThreads = 4;
  std::barrier start(kThreads);
  std::vector<int> shared_allowed(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      const std::string own = "thread-" + std::to_string(t);
      for (int i = 0; i < 200; ++i) {
        shared_allowed[t] += buckets.try_acquire("shared") ? 1 : 0;
        EXPECT_EQ(static_cast<bool>(buckets.try_acquire(own)), i < 100);
      }
    });
  }
  for (auto& th : threads) th.join();
  int total = 0;
  for (int a : shared_allowed) total += a;
  EXPECT_EQ(total, 100);
  EXPECT_EQ(buckets.stats().keys, 5u);
}

}  // namespace
}  // namespace sluice::flow
