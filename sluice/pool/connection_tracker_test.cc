#include "sluice/pool/connection_tracker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace sluice::pool {
namespace {

using std::chrono::seconds;

constexpr std::string_view kA = "a.example:443";
constexpr std::string_view kB = "b.example:443";

ConnectionId create(ConnectionTracker& t, std::string_view host, TimePoint now) {
  SlotResult r = t.acquire_slot(host, now);
  EXPECT_EQ(r.decision, SlotDecision::kCreate);
  return r.id;
}

TEST(ConnectionTrackerTest, CreatesThenReusesAndCountsReuseRate) {
  base::ManualClock clock;
  ConnectionTracker t;
  const ConnectionId id = create(t, kA, clock.now());
  t.record_request(id, true, 100, 2000);
  EXPECT_FALSE(t.release(id, clock.now()).has_value());
  for (int i = 0; i < 3; ++i) {
    SlotResult r = t.acquire_slot(kA, clock.now());
    EXPECT_EQ(r.decision, SlotDecision::kReuse);
    EXPECT_EQ(r.id, id);
    t.record_request(id, true, 100, 2000);
    EXPECT_FALSE(t.release(id, clock.now()).has_value());
  }
  const ConnectionStats s = t.stats();
  EXPECT_EQ(s.created, 1u);
  EXPECT_EQ(s.reused, 3u);
  EXPECT_DOUBLE_EQ(s.reuse_rate(), 0.75);
  EXPECT_EQ(s.requests, 4u);
  EXPECT_EQ(s.bytes_sent, 400u);
  EXPECT_EQ(s.bytes_received, 8000u);
  EXPECT_EQ(s.idle, 1u);
  EXPECT_EQ(s.active, 0u);
  const auto info = t.info(id);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->host, kA);
  EXPECT_EQ(info->requests, 4u);
  EXPECT_EQ(info->state, ConnectionState::kIdle);
}

TEST(ConnectionTrackerTest, ReusesTheMostRecentlyReleasedConnectionFirst) {
  base::ManualClock clock;
  ConnectionTracker t;
  const ConnectionId c1 = create(t, kA, clock.now());
  const ConnectionId c2 = create(t, kA, clock.now());
  const ConnectionId c3 = create(t, kA, clock.now());
  (void)t.release(c2, clock.now());
  (void)t.release(c1, clock.now());
  (void)t.release(c3, clock.now());
  EXPECT_EQ(t.acquire_slot(kA, clock.now()).id, c3);
  EXPECT_EQ(t.acquire_slot(kA, clock.now()).id, c1);
  EXPECT_EQ(t.acquire_slot(kA, clock.now()).id, c2);
}

TEST(ConnectionTrackerTest, IdleEvictionIsStrictlyAfterMaxIdleTime) {
  base::ManualClock clock;
  ConnectionTracker t({.max_idle_time = seconds(60), .max_age = seconds(1000)});
  const ConnectionId id = create(t, kA, clock.now());
  (void)t.release(id, clock.now());
  clock.advance(seconds(60));
  EXPECT_TRUE(t.cleanup(clock.now()).empty());  // exactly max_idle_time: kept
  clock.advance(std::chrono::nanoseconds(1));
  const auto evicted = t.cleanup(clock.now());
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_EQ(evicted[0].id, id);
  EXPECT_EQ(evicted[0].reason, CloseReason::kIdle);
  EXPECT_EQ(t.stats().destroyed_by(CloseReason::kIdle), 1u);
  EXPECT_EQ(t.connections(), 0u);
  EXPECT_EQ(t.stats().idle, 0u);
}

TEST(ConnectionTrackerTest, ReuseRefreshesIdleTime) {
  base::ManualClock clock;
  ConnectionTracker t({.max_idle_time = seconds(60), .max_age = seconds(1000)});
  const ConnectionId id = create(t, kA, clock.now());
  (void)t.release(id, clock.now());
  clock.advance(seconds(50));
  ASSERT_EQ(t.acquire_slot(kA, clock.now()).id, id);
  (void)t.release(id, clock.now());
  clock.advance(seconds(50));
  EXPECT_TRUE(t.cleanup(clock.now()).empty());
}

TEST(ConnectionTrackerTest, AgeEvictionAppliesToIdleAndOnRelease) {
  base::ManualClock clock;
  ConnectionTracker t({.max_idle_time = seconds(1000), .max_age = seconds(300)});
  const ConnectionId idle = create(t, kA, clock.now());
  const ConnectionId busy = create(t, kA, clock.now());
  (void)t.release(idle, clock.now());
  clock.advance(seconds(300));
  EXPECT_TRUE(t.cleanup(clock.now()).empty());
  EXPECT_FALSE(t.release(busy, clock.now()).has_value());  // exactly max_age: kept
  ASSERT_EQ(t.acquire_slot(kA, clock.now()).id, busy);
  clock.advance(seconds(1));
  const auto evicted = t.cleanup(clock.now());  // the in-use one is not touched
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_EQ(evicted[0].id, idle);
  EXPECT_EQ(evicted[0].reason, CloseReason::kAge);
  EXPECT_EQ(t.release(busy, clock.now()), CloseReason::kAge);
  EXPECT_EQ(t.stats().destroyed_by(CloseReason::kAge), 2u);
  EXPECT_EQ(t.connections(), 0u);
}

TEST(ConnectionTrackerTest, ErrorRateEvictsOnlyAfterMinRequests) {
  base::ManualClock clock;
  ConnectionTracker t({.max_error_rate = 0.5, .min_requests_for_error_rate = 4});
  const ConnectionId id = create(t, kA, clock.now());
  // 3 requests, all failed: 100% errors, but below min requests.
  for (int i = 0; i < 3; ++i) t.record_request(id, false, 10, 0);
  EXPECT_FALSE(t.release(id, clock.now()).has_value());
  ASSERT_EQ(t.acquire_slot(kA, clock.now()).id, id);
  // 4th request succeeds: 3/4 = 75% > 50% with enough requests.
  t.record_request(id, true, 10, 10);
  EXPECT_EQ(t.release(id, clock.now()), CloseReason::kErrorRate);
  EXPECT_EQ(t.stats().destroyed_by(CloseReason::kErrorRate), 1u);
  EXPECT_EQ(t.stats().errors, 3u);
}

TEST(ConnectionTrackerTest, ErrorRateExactlyAtTheThresholdIsKept) {
  base::ManualClock clock;
  ConnectionTracker t({.max_error_rate = 0.5, .min_requests_for_error_rate = 4});
  const ConnectionId id = create(t, kA, clock.now());
  t.record_request(id, false, 0, 0);
  t.record_request(id, false, 0, 0);
  t.record_request(id, true, 0, 0);
  t.record_request(id, true, 0, 0);  // 2/4 = 50%: not above
  EXPECT_FALSE(t.release(id, clock.now()).has_value());
  EXPECT_TRUE(t.cleanup(clock.now()).empty());
}

TEST(ConnectionTrackerTest, StaleIdleConnectionsAreEvictedWhenAcquiring) {
  base::ManualClock clock;
  ConnectionTracker t({.max_idle_time = seconds(10), .max_age = seconds(1000)});
  const ConnectionId old_id = create(t, kA, clock.now());
  (void)t.release(old_id, clock.now());
  clock.advance(seconds(11));
  SlotResult r = t.acquire_slot(kA, clock.now());
  EXPECT_EQ(r.decision, SlotDecision::kCreate);
  EXPECT_NE(r.id, old_id);
  ASSERT_EQ(r.to_close.size(), 1u);
  EXPECT_EQ(r.to_close[0], old_id);
  EXPECT_EQ(t.stats().destroyed_by(CloseReason::kIdle), 1u);
}

TEST(ConnectionTrackerTest, PerHostLimitMakesCallersWait) {
  base::ManualClock clock;
  ConnectionTracker t({.max_total = 10, .max_per_host = 2});
  const ConnectionId c1 = create(t, kA, clock.now());
  create(t, kA, clock.now());
  SlotResult r = t.acquire_slot(kA, clock.now());
  EXPECT_EQ(r.decision, SlotDecision::kWait);
  EXPECT_TRUE(r.at_host_limit);
  EXPECT_FALSE(r.at_total_limit);
  EXPECT_EQ(r.host_connections, 2u);
  EXPECT_EQ(t.acquire_slot(kB, clock.now()).decision, SlotDecision::kCreate);
  t.add_waiter(kA);
  EXPECT_EQ(t.stats().waiters, 1u);
  (void)t.release(c1, clock.now());
  t.remove_waiter(kA);
  EXPECT_EQ(t.acquire_slot(kA, clock.now()).id, c1);
  const auto hosts = t.host_stats();
  ASSERT_EQ(hosts.size(), 2u);
  EXPECT_EQ(hosts[0].host, kA);
  EXPECT_EQ(hosts[0].stats.waits, 1u);
  EXPECT_EQ(hosts[0].stats.created, 2u);
  EXPECT_EQ(hosts[0].stats.reused, 1u);
  EXPECT_EQ(hosts[0].stats.active, 2u);
  EXPECT_EQ(hosts[0].stats.waiters, 0u);
  EXPECT_EQ(hosts[1].stats.created, 1u);
}

TEST(ConnectionTrackerTest, TotalLimitWaitsWhenNothingIsIdle) {
  base::ManualClock clock;
  ConnectionTracker t({.max_total = 2, .max_per_host = 5});
  create(t, kA, clock.now());
  create(t, kB, clock.now());
  SlotResult r = t.acquire_slot(kA, clock.now());
  EXPECT_EQ(r.decision, SlotDecision::kWait);
  EXPECT_TRUE(r.at_total_limit);
  EXPECT_FALSE(r.at_host_limit);
  EXPECT_EQ(r.total_connections, 2u);
  EXPECT_EQ(t.stats().waits, 1u);
}

TEST(ConnectionTrackerTest, TotalLimitClosesTheColdestIdleConnectionOfAnotherHost) {
  base::ManualClock clock;
  ConnectionTracker t({.max_total = 3, .max_per_host = 5});
  const ConnectionId b1 = create(t, kB, clock.now());
  const ConnectionId b2 = create(t, kB, clock.now());
  create(t, kA, clock.now());
  (void)t.release(b1, clock.now());
  clock.advance(seconds(1));
  (void)t.release(b2, clock.now());  // b1 is the colder one
  SlotResult r = t.acquire_slot(kA, clock.now());
  EXPECT_EQ(r.decision, SlotDecision::kCreate);
  ASSERT_EQ(r.to_close.size(), 1u);
  EXPECT_EQ(r.to_close[0], b1);
  EXPECT_EQ(r.total_connections, 3u);
  EXPECT_EQ(t.stats().destroyed_by(CloseReason::kMakeRoom), 1u);
  EXPECT_EQ(t.connections(kB), 1u);
}

TEST(ConnectionTrackerTest, CloseByPeerAndErrorAreCountedByReason) {
  base::ManualClock clock;
  ConnectionTracker t;
  const ConnectionId idle = create(t, kA, clock.now());
  const ConnectionId busy = create(t, kA, clock.now());
  (void)t.release(idle, clock.now());
  t.close(idle, CloseReason::kClosedByPeer);
  t.close(busy, CloseReason::kError);
  const ConnectionStats s = t.stats();
  EXPECT_EQ(s.destroyed_by(CloseReason::kClosedByPeer), 1u);
  EXPECT_EQ(s.destroyed_by(CloseReason::kError), 1u);
  EXPECT_EQ(s.destroyed_total(), 2u);
  EXPECT_EQ(s.idle, 0u);
  EXPECT_EQ(s.active, 0u);
  EXPECT_EQ(t.acquire_slot(kA, clock.now()).decision, SlotDecision::kCreate);
}

TEST(ConnectionTrackerTest, ShutdownClosesIdleNowAndInUseOnRelease) {
  base::ManualClock clock;
  ConnectionTracker t;
  const ConnectionId idle = create(t, kA, clock.now());
  const ConnectionId busy = create(t, kB, clock.now());
  (void)t.release(idle, clock.now());
  const auto evicted = t.shutdown();
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_EQ(evicted[0].id, idle);
  EXPECT_EQ(evicted[0].reason, CloseReason::kShutdown);
  EXPECT_EQ(t.acquire_slot(kA, clock.now()).decision, SlotDecision::kShuttingDown);
  EXPECT_EQ(t.release(busy, clock.now()), CloseReason::kShutdown);
  EXPECT_EQ(t.stats().destroyed_by(CloseReason::kShutdown), 2u);
  EXPECT_EQ(t.connections(), 0u);
}

TEST(ConnectionTrackerTest, ReasonNames) {
  EXPECT_EQ(to_string(CloseReason::kIdle), "idle");
  EXPECT_EQ(to_string(CloseReason::kErrorRate), "error_rate");
  EXPECT_EQ(to_string(CloseReason::kClosedByPeer), "closed_by_peer");
  EXPECT_EQ(to_string(CloseReason::kShutdown), "shutdown");
}

TEST(ConnectionTrackerTest, StatsAreReadableFromAnotherThread) {
  base::ManualClock clock;
  ConnectionTracker t({.max_total = 0, .max_per_host = 0});
  std::atomic<bool> done{false};
  std::thread reader([&] {
    uint64_t last = 0;
    while (!done.load(std::memory_order_acquire)) {
      const ConnectionStats s = t.stats();
      EXPECT_GE(s.created, last);  // a single writer: counters never go back
      last = s.created;
      for (const auto& h : t.host_stats()) EXPECT_FALSE(h.host.empty());
    }
  });
  for (int i = 0; i < 2000; ++i) {
    const std::string host = "h" + std::to_string(i % 50);
    SlotResult r = t.acquire_slot(host, clock.now());
    t.record_request(r.id, i % 7 != 0, 10, 10);
    (void)t.release(r.id, clock.now());
    if (i % 10 == 0) t.close(r.id, CloseReason::kClosedByPeer);
  }
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_EQ(t.stats().requests, 2000u);
  EXPECT_EQ(t.host_stats().size(), 50u);
}

}  // namespace
}  // namespace sluice::pool
