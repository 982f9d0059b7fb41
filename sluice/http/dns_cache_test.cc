#include "sluice/http/dns_cache.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace sluice::http {
namespace {

using std::chrono::seconds;

TEST(DnsCache, HitUntilTtlThenMiss) {
  base::ManualClock clock;
  DnsCache cache({.ttl = seconds(30), .max_entries = 8}, clock);
  EXPECT_FALSE(cache.find("api.example.com"));
  cache.insert("api.example.com", {"10.0.0.1", "10.0.0.2"});
  clock.advance(seconds(29));
  const auto hit = cache.find("api.example.com");
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, (std::vector<std::string>{"10.0.0.1", "10.0.0.2"}));
  clock.advance(seconds(1));
  EXPECT_FALSE(cache.find("api.example.com"));
  EXPECT_EQ(cache.size(), 0u);
  const auto s = cache.stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.expired, 1u);
  EXPECT_EQ(s.inserts, 1u);
  EXPECT_EQ(s.entries, 0u);
}

TEST(DnsCache, InsertRefreshesTtlAndReplacesAddresses) {
  base::ManualClock clock;
  DnsCache cache({.ttl = seconds(10), .max_entries = 8}, clock);
  cache.insert("a", {"10.0.0.1"});
  clock.advance(seconds(8));
  cache.insert("a", {"10.0.0.9"});
  clock.advance(seconds(8));
  const auto hit = cache.find("a");
  ASSERT_TRUE(hit);
  EXPECT_EQ(*hit, std::vector<std::string>{"10.0.0.9"});
}

TEST(DnsCache, BoundEvictsExpiredFirstThenClosestToExpiry) {
  base::ManualClock clock;
  DnsCache cache({.ttl = seconds(10), .max_entries = 2}, clock);
  cache.insert("a", {"10.0.0.1"});
  clock.advance(seconds(1));
  cache.insert("b", {"10.0.0.2"});
  cache.insert("c", {"10.0.0.3"});  // full, nothing expired: "a" expires first and goes
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_FALSE(cache.find("a"));
  EXPECT_TRUE(cache.find("b"));
  EXPECT_TRUE(cache.find("c"));
  EXPECT_EQ(cache.stats().evictions, 1u);
  clock.advance(seconds(20));       // both expired
  cache.insert("d", {"10.0.0.4"});  // drops both expired entries
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.stats().evictions, 3u);
}

TEST(DnsCache, ZeroTtlAndEmptyListsStoreNothing) {
  base::ManualClock clock;
  DnsCache off({.ttl = Duration::zero(), .max_entries = 8}, clock);
  off.insert("a", {"10.0.0.1"});
  EXPECT_FALSE(off.find("a"));
  DnsCache cache({.ttl = seconds(10), .max_entries = 8}, clock);
  cache.insert("a", {});
  EXPECT_EQ(cache.size(), 0u);
  cache.insert("a", {"10.0.0.1"});
  cache.erase("a");
  EXPECT_FALSE(cache.find("a"));
  cache.insert("b", {"10.0.0.1"});
  cache.clear();
  EXPECT_EQ(cache.stats().entries, 0u);
}

}  // namespace
}  // namespace sluice::http
