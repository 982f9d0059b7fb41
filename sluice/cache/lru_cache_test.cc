#include "sluice/cache/lru_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/base/hash.h"

namespace sluice::cache {
namespace {

using IntCache = LruCache<int, int>;

std::vector<int> keys_mru_first(const IntCache& c) {
  std::vector<int> keys;
  c.for_each([&](const int& k, const int&) { keys.push_back(k); });
  return keys;
}

TEST(LruCache, GetPutMissAndStats) {
  IntCache c({.max_entries = 3});
  EXPECT_EQ(c.get(1), nullptr);
  EXPECT_TRUE(c.put(1, 10));
  ASSERT_NE(c.get(1), nullptr);
  EXPECT_EQ(*c.get(1), 10);
  const CacheStats s = c.stats();
  EXPECT_EQ(s.hits, 2u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.inserts, 1u);
  EXPECT_EQ(s.entries, 1u);
  EXPECT_EQ(s.capacity_entries, 3u);
  EXPECT_DOUBLE_EQ(s.hit_rate(), 2.0 / 3.0);
}

TEST(LruCache, EvictsLeastRecentlyUsedAndPromotesOnGet) {
  IntCache c({.max_entries = 3});
  c.put(1, 1);
  c.put(2, 2);
  c.put(3, 3);
  EXPECT_EQ(keys_mru_first(c), (std::vector<int>{3, 2, 1}));
  ASSERT_NE(c.get(1), nullptr);  // 1 becomes most recent; 2 is now the LRU
  EXPECT_EQ(keys_mru_first(c), (std::vector<int>{1, 3, 2}));
  c.put(4, 4);
  EXPECT_EQ(c.peek(2), nullptr);
  EXPECT_EQ(keys_mru_first(c), (std::vector<int>{4, 1, 3}));
  EXPECT_EQ(c.stats().evictions, 1u);
  EXPECT_EQ(c.size(), 3u);
}

TEST(LruCache, PeekDoesNotPromoteOrCount) {
  IntCache c({.max_entries = 2});
  c.put(1, 1);
  c.put(2, 2);
  ASSERT_NE(c.peek(1), nullptr);
  c.put(3, 3);  // 1 is still the LRU
  EXPECT_EQ(c.peek(1), nullptr);
  EXPECT_EQ(c.stats().hits + c.stats().misses, 0u);
}

TEST(LruCache, UpdateReplacesValuePromotesAndCounts) {
  IntCache c({.max_entries = 2});
  c.put(1, 1);
  c.put(2, 2);
  EXPECT_TRUE(c.put(1, 100));  // update: 1 becomes MRU, no eviction
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(*c.peek(1), 100);
  c.put(3, 3);  // evicts 2, not 1
  EXPECT_EQ(c.peek(2), nullptr);
  EXPECT_NE(c.peek(1), nullptr);
  const CacheStats s = c.stats();
  EXPECT_EQ(s.inserts, 3u);
  EXPECT_EQ(s.updates, 1u);
  EXPECT_EQ(s.evictions, 1u);
}

TEST(LruCache, ZeroCapacityRejectsEveryPut) {
  IntCache c({.max_entries = 0});
  EXPECT_FALSE(c.put(1, 1));
  EXPECT_FALSE(c.put(2, 2));
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.get(1), nullptr);
  EXPECT_EQ(c.stats().rejections, 2u);
  EXPECT_EQ(c.stats().evictions, 0u);
}

TEST(LruCache, ByteBoundEvictsToFit) {
  IntCache c({.max_entries = 100, .max_bytes = 100});
  c.put(1, 1, 40);
  c.put(2, 2, 40);
  EXPECT_EQ(c.bytes(), 80u);
  c.put(3, 3, 40);  // 120 > 100: evicts 1
  EXPECT_EQ(c.peek(1), nullptr);
  EXPECT_EQ(c.bytes(), 80u);
  c.put(4, 4, 100);  // needs everything else gone
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.bytes(), 100u);
  EXPECT_EQ(c.stats().evictions, 3u);
  EXPECT_EQ(c.stats().bytes, 100u);
}

TEST(LruCache, ValueLargerThanByteBoundIsRejectedWithoutEvicting) {
  IntCache c({.max_entries = 100, .max_bytes = 100});
  c.put(1, 1, 30);
  c.put(2, 2, 30);
  EXPECT_FALSE(c.put(3, 3, 101));
  EXPECT_EQ(c.size(), 2u);
  EXPECT_EQ(c.bytes(), 60u);
  EXPECT_EQ(c.stats().rejections, 1u);
  EXPECT_EQ(c.stats().evictions, 0u);
  // A rejected replacement drops the stale value and keeps the others.
  EXPECT_FALSE(c.put(1, 11, 1000));
  EXPECT_EQ(c.peek(1), nullptr);
  EXPECT_NE(c.peek(2), nullptr);
  EXPECT_EQ(c.bytes(), 30u);
}

TEST(LruCache, UpdateThatGrowsChargeEvictsOthersButNotItself) {
  IntCache c({.max_entries = 10, .max_bytes = 100});
  c.put(1, 1, 30);
  c.put(2, 2, 30);
  c.put(3, 3, 30);
  EXPECT_TRUE(c.put(1, 1, 90));  // 1 is MRU; 2 and 3 must go
  EXPECT_EQ(c.size(), 1u);
  EXPECT_EQ(c.bytes(), 90u);
  EXPECT_EQ(c.stats().evictions, 2u);
}

TEST(LruCache, EraseAndClear) {
  IntCache c({.max_entries = 4, .max_bytes = 10});
  c.put(1, 1, 3);
  c.put(2, 2, 3);
  EXPECT_TRUE(c.erase(1));
  EXPECT_FALSE(c.erase(1));
  EXPECT_EQ(c.bytes(), 3u);
  c.clear();
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.bytes(), 0u);
  EXPECT_EQ(c.get(2), nullptr);
  // Reuse after clear: nodes are recycled.
  for (int i = 0; i < 10; ++i) c.put(i, i, 1);
  EXPECT_EQ(c.size(), 4u);
  EXPECT_EQ(keys_mru_first(c), (std::vector<int>{9, 8, 7, 6}));
}

// Every key hashes to the same value: the table must still tell keys apart by equality.
struct CollidingHash {
  size_t operator()(int) const noexcept { return 7; }
};

TEST(LruCache, AllKeysCollideStillCorrect) {
  LruCache<int, int, CollidingHash> c({.max_entries = 200});
  for (int i = 0; i < 300; ++i) EXPECT_TRUE(c.put(i, i * 2));
  EXPECT_EQ(c.size(), 200u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(c.get(i), nullptr) << i;
  for (int i = 100; i < 300; ++i) {
    ASSERT_NE(c.get(i), nullptr) << i;
    EXPECT_EQ(*c.get(i), i * 2);
  }
  for (int i = 100; i < 300; i += 2) EXPECT_TRUE(c.erase(i));
  for (int i = 101; i < 300; i += 2) EXPECT_NE(c.get(i), nullptr) << i;
  EXPECT_EQ(c.size(), 100u);
}

TEST(LruCache, HeterogeneousLookupWithStringView) {
  LruCache<std::string, int, base::StringHash, std::equal_to<>> c({.max_entries = 8});
  c.put("GET /v1/models", 1);
  const std::string_view key = "GET /v1/models";
  ASSERT_NE(c.get(key), nullptr);
  EXPECT_EQ(*c.get(key), 1);
  EXPECT_TRUE(c.erase(key));
  EXPECT_EQ(c.get("GET /v1/models"), nullptr);
}

TEST(LruCache, NonTransparentHashConvertsKey) {
  LruCache<std::string, int> c({.max_entries = 8});
  c.put("a", 1);
  ASSERT_NE(c.get("a"), nullptr);  // const char* -> std::string temporary
  EXPECT_TRUE(c.erase(std::string_view("a")));
  EXPECT_EQ(c.size(), 0u);
}

TEST(LruCache, PointersStayValidWhileOtherEntriesComeAndGo) {
  LruCache<int, std::string> c({.max_entries = 1000});
  c.put(0, "zero");
  std::string* p = c.get(0);
  for (int i = 1; i < 999; ++i) c.put(i, std::to_string(i));  // grows the node chunks
  EXPECT_EQ(*p, "zero");
  EXPECT_EQ(p, c.get(0));
}

TEST(LruCache, MoveOnlyValuesAndDestructionReleasesThem) {
  auto tracked = std::make_shared<int>(5);
  {
    LruCache<int, std::unique_ptr<int>> c({.max_entries = 2});
    c.put(1, std::make_unique<int>(1));
    c.put(2, std::make_unique<int>(2));
    c.put(3, std::make_unique<int>(3));
    ASSERT_NE(c.get(3), nullptr);
    EXPECT_EQ(**c.get(3), 3);
    LruCache<int, std::shared_ptr<int>> d({.max_entries = 2});
    d.put(1, tracked);
    EXPECT_EQ(tracked.use_count(), 2);
    d.put(2, tracked);
    d.put(3, nullptr);  // evicts 1
    EXPECT_EQ(tracked.use_count(), 2);
    LruCache<int, std::shared_ptr<int>> moved = std::move(d);  // movable
    EXPECT_NE(moved.get(2), nullptr);
  }
  EXPECT_EQ(tracked.use_count(), 1);
}

TEST(LruCache, ResetStatsKeepsEntries) {
  IntCache c({.max_entries = 2});
  c.put(1, 1);
  (void)c.get(1);
  c.reset_stats();
  EXPECT_EQ(c.stats().hits, 0u);
  EXPECT_EQ(c.stats().entries, 1u);
}

}  // namespace
}  // namespace sluice::cache
