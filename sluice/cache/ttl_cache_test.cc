#include "sluice/cache/ttl_cache.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>

#include "sluice/base/clock.h"

namespace sluice::cache {
namespace {

using namespace std::chrono_literals;
using Cache = TtlCache<int, int>;

TEST(TtlCache, ExpiresExactlyAtTtlNotBefore) {
  base::ManualClock clock;
  Cache c({.max_entries = 10}, clock);
  ASSERT_TRUE(c.put(1, 10, 100ms));
  clock.advance(100ms - 1ns);
  ASSERT_NE(c.get(1), nullptr);  // one nanosecond before the deadline: live
  clock.advance(1ns);
  EXPECT_EQ(c.get(1), nullptr);  // at exactly put time + ttl: expired
  const CacheStats s = c.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.expirations, 1u);
  EXPECT_EQ(s.entries, 0u);
}

TEST(TtlCache, TtlZeroOrNegativeIsNotStored) {
  base::ManualClock clock;
  Cache c({.max_entries = 10}, clock);
  EXPECT_FALSE(c.put(1, 1, 0ns));
  EXPECT_FALSE(c.put(2, 2, -5s));
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.get(1), nullptr);
  EXPECT_EQ(c.stats().rejections, 2u);
  // A ttl-0 replacement removes the old value.
  ASSERT_TRUE(c.put(3, 3, 1s));
  EXPECT_FALSE(c.put(3, 33, 0ns));
  EXPECT_EQ(c.get(3), nullptr);
}

TEST(TtlCache, DefaultTtlFromOptions) {
  base::ManualClock clock;
  Cache c({.max_entries = 10, .default_ttl = 5s}, clock);
  ASSERT_TRUE(c.put(1, 1));
  ASSERT_NE(c.expires_at(1), nullptr);
  EXPECT_EQ(*c.expires_at(1), clock.now() + 5s);
  clock.advance(5s);
  EXPECT_EQ(c.expires_at(1), nullptr);
  EXPECT_EQ(c.get(1), nullptr);
}

TEST(TtlCache, UpdateResetsTtlAndValue) {
  base::ManualClock clock;
  Cache c({.max_entries = 10}, clock);
  c.put(1, 1, 10s);
  clock.advance(8s);
  c.put(1, 2, 10s);  // now expires 18 s after the start
  clock.advance(8s);
  ASSERT_NE(c.get(1), nullptr);
  EXPECT_EQ(*c.get(1), 2);
  c.put(1, 3, 1s);  // a shorter ttl moves the expiry earlier
  clock.advance(1s);
  EXPECT_EQ(c.get(1), nullptr);
  EXPECT_EQ(c.stats().updates, 2u);
}

TEST(TtlCache, SweepRemovesExpiredInExpiryOrderAndRespectsLimit) {
  base::ManualClock clock;
  Cache c({.max_entries = 100}, clock);
  for (int i = 0; i < 10; ++i) c.put(i, i, std::chrono::seconds(10 - i));  // 9 expires first
  clock.advance(3s);  // 9 (1 s), 8 (2 s) and 7 (3 s) have expired
  EXPECT_EQ(c.sweep(2), 2u);
  EXPECT_EQ(c.size(), 8u);
  EXPECT_EQ(c.expires_at(9), nullptr);
  EXPECT_EQ(c.sweep(), 1u);
  EXPECT_EQ(c.size(), 7u);
  EXPECT_EQ(c.sweep(), 0u);
  clock.advance(100s);
  EXPECT_EQ(c.sweep(), 7u);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.stats().expirations, 10u);
  EXPECT_EQ(c.stats().evictions, 0u);
}

TEST(TtlCache, FullCacheDropsExpiredBeforeLiveLru) {
  base::ManualClock clock;
  Cache c({.max_entries = 3}, clock);
  c.put(1, 1, 100s);  // the LRU, but long-lived
  c.put(2, 2, 1s);
  c.put(3, 3, 100s);
  clock.advance(1s);  // 2 has expired
  c.put(4, 4, 100s);
  EXPECT_NE(c.get(1), nullptr);  // the expired entry made room, not the LRU
  EXPECT_EQ(c.stats().expirations, 1u);
  EXPECT_EQ(c.stats().evictions, 0u);
  c.put(5, 5, 100s);  // nothing expired: evicts the LRU (3)
  EXPECT_EQ(c.get(3), nullptr);
  EXPECT_EQ(c.stats().evictions, 1u);
}

TEST(TtlCache, ByteBoundAndHugeValue) {
  base::ManualClock clock;
  Cache c({.max_entries = 10, .max_bytes = 50}, clock);
  c.put(1, 1, 10s, 20);
  c.put(2, 2, 10s, 20);
  EXPECT_FALSE(c.put(3, 3, 10s, 51));
  EXPECT_EQ(c.size(), 2u);
  c.put(3, 3, 10s, 20);  // evicts 1
  EXPECT_EQ(c.get(1), nullptr);
  EXPECT_EQ(c.bytes(), 40u);
  EXPECT_EQ(c.stats().rejections, 1u);
  EXPECT_EQ(c.stats().evictions, 1u);
}

TEST(TtlCache, EraseReportsOnlyLiveEntries) {
  base::ManualClock clock;
  Cache c({.max_entries = 10}, clock);
  c.put(1, 1, 1s);
  c.put(2, 2, 10s);
  clock.advance(1s);
  EXPECT_FALSE(c.erase(1));  // present but expired: removed, reported as absent
  EXPECT_TRUE(c.erase(2));
  EXPECT_EQ(c.size(), 0u);
}

TEST(TtlCache, HeapStaysConsistentUnderChurn) {
  base::ManualClock clock;
  Cache c({.max_entries = 64}, clock);
  // Pseudo-random ttls, updates and erases, checked against a model of the expiry times.
  std::map<int, TimePoint> model;
  uint64_t x = 1;
  auto rnd = [&x] { return (x = x * 6364136223846793005ULL + 1442695040888963407ULL) >> 1; };
  auto count_live = [&] {
    size_t n = 0;
    for (const auto& [k, t] : model) n += t > clock.now() ? 1 : 0;
    return n;
  };
  for (int step = 0; step < 5000; ++step) {
    const int key = static_cast<int>(rnd() % 64);
    const auto ttl = std::chrono::milliseconds(1 + rnd() % 1000);
    if (rnd() % 16 == 0) {
      c.erase(key);
      model.erase(key);
    } else {
      c.put(key, step, ttl);
      model[key] = clock.now() + ttl;
    }
    clock.advance(std::chrono::microseconds(rnd() % 200));
    c.sweep(1);
    if (step % 100 == 0) {
      c.sweep();  // after a full sweep, exactly the live entries remain
      ASSERT_EQ(c.size(), count_live()) << "step " << step;
      for (const auto& [k, t] : model) {
        const TimePoint* got = c.expires_at(k);
        if (t > clock.now()) {
          ASSERT_NE(got, nullptr) << k;
          EXPECT_EQ(*got, t) << k;
        } else {
          EXPECT_EQ(got, nullptr) << k;
        }
      }
    }
  }
  clock.advance(2s);
  c.sweep();
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.stats().entries, 0u);
}

TEST(TtlCache, StringKeysWithLongTtlDoNotOverflow) {
  base::ManualClock clock;
  TtlCache<std::string, std::string> c({.max_entries = 2}, clock);
  EXPECT_TRUE(c.put("k", "v", Duration::max()));
  clock.advance(std::chrono::hours(24 * 365));
  ASSERT_NE(c.get("k"), nullptr);
}

}  // namespace
}  // namespace sluice::cache
