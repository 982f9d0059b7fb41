#include "sluice/resilience/circuit_breaker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/random.h"

namespace sluice::resilience {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

// Only the rule under test is enabled unless a test says otherwise.
BreakerOptions rate_only() {
  BreakerOptions o;
  o.window = seconds(10);
  o.window_buckets = 10;
  o.min_requests = 10;
  o.failure_rate_threshold = 0.5;
  o.consecutive_failures = 0;
  o.open_duration = seconds(5);
  o.open_duration_multiplier = 1.0;
  o.max_open_duration = seconds(5);
  return o;
}

BreakerOptions consecutive_only(uint32_t n) {
  BreakerOptions o = rate_only();
  o.min_requests = 1'000'000;
  o.consecutive_failures = n;
  return o;
}

void succeed(CircuitBreaker& b) {
  auto p = b.allow();
  ASSERT_TRUE(p.allowed());
  p.success();
}

void fail(CircuitBreaker& b) {
  auto p = b.allow();
  ASSERT_TRUE(p.allowed());
  p.failure();
}

TEST(CircuitBreaker, StartsClosedAndCountsOutcomes) {
  base::ManualClock clock;
  CircuitBreaker b(rate_only(), clock);
  EXPECT_EQ(b.state(), BreakerState::closed);
  succeed(b);
  fail(b);
  const auto s = b.stats();
  EXPECT_EQ(s.state, BreakerState::closed);
  EXPECT_EQ(s.calls_allowed, 2u);
  EXPECT_EQ(s.successes, 1u);
  EXPECT_EQ(s.failures, 1u);
  EXPECT_EQ(s.window_requests, 2u);
  EXPECT_DOUBLE_EQ(s.window_error_rate, 0.5);
  EXPECT_EQ(s.last_transition, clock.now());
}

TEST(CircuitBreaker, OpensOnConsecutiveFailures) {
  base::ManualClock clock;
  CircuitBreaker b(consecutive_only(3), clock);
  fail(b);
  fail(b);
  succeed(b);  // resets the run
  fail(b);
  fail(b);
  EXPECT_EQ(b.state(), BreakerState::closed);
  fail(b);
  EXPECT_EQ(b.state(), BreakerState::open);
  auto p = b.allow();
  EXPECT_FALSE(p.allowed());
  EXPECT_EQ(p.reason(), RejectReason::open);
  const auto s = b.stats();
  EXPECT_EQ(s.times_opened, 1u);
  EXPECT_EQ(s.opened_by_consecutive, 1u);
  EXPECT_EQ(s.calls_rejected, 1u);
  EXPECT_EQ(s.rejected_open, 1u);
}

TEST(CircuitBreaker, ErrorRateOpensOnlyOnceMinRequestsIsReached) {
  base::ManualClock clock;
  CircuitBreaker b(rate_only(), clock);
  for (int i = 0; i < 9; ++i) fail(b);  // 100% failures, but only 9 outcomes
  EXPECT_EQ(b.state(), BreakerState::closed);
  EXPECT_DOUBLE_EQ(b.stats().window_error_rate, 1.0);
  fail(b);  // the 10th
  EXPECT_EQ(b.state(), BreakerState::open);
  EXPECT_EQ(b.stats().opened_by_rate, 1u);
}

TEST(CircuitBreaker, ErrorRateBelowThresholdStaysClosed) {
  base::ManualClock clock;
  CircuitBreaker b(rate_only(), clock);
  for (int i = 0; i < 6; ++i) succeed(b);
  for (int i = 0; i < 5; ++i) fail(b);  // 5/11 < 0.5
  EXPECT_EQ(b.state(), BreakerState::closed);
  fail(b);  // 6/12 = 0.5
  EXPECT_EQ(b.state(), BreakerState::open);
}

TEST(CircuitBreaker, WindowRollsOutOldBuckets) {
  base::ManualClock clock;
  CircuitBreaker b(rate_only(), clock);  // 10 buckets of 1 s
  for (int i = 0; i < 8; ++i) fail(b);   // bucket 0
  clock.advance(milliseconds(5500));
  for (int i = 0; i < 3; ++i) succeed(b);  // bucket 5
  EXPECT_EQ(b.stats().window_requests, 11u);
  // At 9.999 s bucket 0 is still inside the window.
  clock.advance(milliseconds(4499));
  EXPECT_EQ(b.stats().window_requests, 11u);
  // At 10 s the window is buckets 1..10: the failures are gone.
  clock.advance(milliseconds(1));
  auto s = b.stats();
  EXPECT_EQ(s.window_requests, 3u);
  EXPECT_DOUBLE_EQ(s.window_error_rate, 0.0);
  // 7 more failures reach min_requests (10) with 7/10 failures: open, judged on the new
  // window only (with the old bucket it would have opened at the first of them).
  for (int i = 0; i < 6; ++i) fail(b);
  EXPECT_EQ(b.state(), BreakerState::closed);
  fail(b);
  EXPECT_EQ(b.state(), BreakerState::open);
  // Long after, a reused slot holds only new counts.
  clock.advance(seconds(100));
  s = b.stats();
  EXPECT_EQ(s.window_requests, 0u);
}

TEST(CircuitBreaker, StaysOpenForOpenDurationThenHalfOpens) {
  base::ManualClock clock;
  CircuitBreaker b(consecutive_only(1), clock);
  fail(b);
  const TimePoint opened = clock.now();
  EXPECT_EQ(b.state(), BreakerState::open);
  clock.advance(seconds(5) - nanoseconds(1));
  EXPECT_EQ(b.state(), BreakerState::open);
  EXPECT_FALSE(b.allow().allowed());
  clock.advance(nanoseconds(1));
  EXPECT_EQ(b.state(), BreakerState::half_open);
  const auto s = b.stats();
  EXPECT_EQ(s.last_transition, opened + seconds(5));
  EXPECT_EQ(s.current_open_duration, seconds(5));
}

TEST(CircuitBreaker, HalfOpenCapsConcurrentProbes) {
  base::ManualClock clock;
  BreakerOptions o = consecutive_only(1);
  o.half_open_max_probes = 2;
  o.half_open_successes_to_close = 3;
  CircuitBreaker b(o, clock);
  fail(b);
  clock.advance(seconds(5));
  auto p1 = b.allow();
  auto p2 = b.allow();
  auto p3 = b.allow();
  ASSERT_TRUE(p1.allowed());
  ASSERT_TRUE(p2.allowed());
  EXPECT_TRUE(p1.is_probe());
  ASSERT_FALSE(p3.allowed());
  EXPECT_EQ(p3.reason(), RejectReason::probes_exhausted);
  EXPECT_EQ(b.stats().probes_in_flight, 2u);
  p1.success();  // frees a slot; 1 of 3 successes
  auto p4 = b.allow();
  ASSERT_TRUE(p4.allowed());
  EXPECT_FALSE(b.allow().allowed());
  p2.success();
  EXPECT_EQ(b.state(), BreakerState::half_open);
  p4.success();  // the 3rd success closes
  EXPECT_EQ(b.state(), BreakerState::closed);
  const auto s = b.stats();
  EXPECT_EQ(s.rejected_probes_exhausted, 2u);
  EXPECT_EQ(s.window_requests, 0u);  // a close starts an empty window
}

TEST(CircuitBreaker, AbandonedProbeFreesItsSlot) {
  base::ManualClock clock;
  CircuitBreaker b(consecutive_only(1), clock);
  fail(b);
  clock.advance(seconds(5));
  {
    auto probe = b.allow();
    ASSERT_TRUE(probe.allowed());
    EXPECT_FALSE(b.allow().allowed());
  }  // dropped: a cancelled call
  auto again = b.allow();
  EXPECT_TRUE(again.allowed());
  EXPECT_EQ(b.stats().abandoned, 1u);
  EXPECT_EQ(b.state(), BreakerState::half_open);
  again.success();
  EXPECT_EQ(b.state(), BreakerState::closed);
}

TEST(CircuitBreaker, ProbeFailureReopensWithGrowingOpenDuration) {
  base::ManualClock clock;
  BreakerOptions o = consecutive_only(1);
  o.open_duration = seconds(1);
  o.open_duration_multiplier = 2.0;
  o.max_open_duration = seconds(3);
  CircuitBreaker b(o, clock);
  fail(b);  // trip 1: 1 s
  clock.advance(seconds(1));
  fail(b);  // probe fails: trip 2: 2 s
  EXPECT_EQ(b.state(), BreakerState::open);
  EXPECT_EQ(b.stats().current_open_duration, seconds(2));
  EXPECT_EQ(b.stats().opened_by_probe, 1u);
  clock.advance(seconds(2) - nanoseconds(1));
  EXPECT_EQ(b.state(), BreakerState::open);
  clock.advance(nanoseconds(1));
  fail(b);  // trip 3: 4 s capped to 3 s
  EXPECT_EQ(b.stats().current_open_duration, seconds(3));
  clock.advance(seconds(3) - nanoseconds(1));
  EXPECT_EQ(b.state(), BreakerState::open);
  clock.advance(nanoseconds(1));
  succeed(b);  // closes: the growth resets
  EXPECT_EQ(b.state(), BreakerState::closed);
  fail(b);
  EXPECT_EQ(b.stats().current_open_duration, seconds(1));
  EXPECT_EQ(b.stats().times_opened, 4u);
}

TEST(CircuitBreaker, OutcomesOfCallsFromAnEarlierStateMoveNothing) {
  base::ManualClock clock;
  CircuitBreaker b(consecutive_only(2), clock);
  auto slow = b.allow();  // admitted while closed, completes much later
  fail(b);
  fail(b);
  clock.advance(seconds(5));
  EXPECT_EQ(b.state(), BreakerState::half_open);
  slow.failure();  // would reopen if it counted as a probe
  EXPECT_EQ(b.state(), BreakerState::half_open);
  const auto s = b.stats();
  EXPECT_EQ(s.stale_outcomes, 1u);
  EXPECT_EQ(s.failures, 3u);
}

TEST(CircuitBreaker, RecordsWithoutAPermit) {
  base::ManualClock clock;
  CircuitBreaker b(consecutive_only(2), clock);
  b.on_failure();
  b.on_failure();
  EXPECT_EQ(b.state(), BreakerState::open);
  b.on_failure();  // counted only
  clock.advance(seconds(5));
  b.on_success();  // half-open: counts toward closing
  EXPECT_EQ(b.state(), BreakerState::closed);
  EXPECT_EQ(b.stats().failures, 3u);
}

TEST(CircuitBreaker, CallbacksSeeEveryTransitionInOrder) {
  base::ManualClock clock;
  std::vector<BreakerTransition> seen;
  BreakerOptions o = consecutive_only(1);
  o.on_state_change = [&](const BreakerTransition& t) { seen.push_back(t); };
  CircuitBreaker b(o, clock);
  const TimePoint t0 = clock.now();
  fail(b);
  clock.advance(seconds(5));
  fail(b);  // open -> half_open -> open in one call
  clock.advance(seconds(5));
  succeed(b);
  ASSERT_EQ(seen.size(), 5u);
  const std::vector<std::pair<BreakerState, BreakerState>> expected = {
      {BreakerState::closed, BreakerState::open},
      {BreakerState::open, BreakerState::half_open},
      {BreakerState::half_open, BreakerState::open},
      {BreakerState::open, BreakerState::half_open},
      {BreakerState::half_open, BreakerState::closed}};
  const std::vector<TimePoint> times = {t0, t0 + seconds(5), t0 + seconds(5), t0 + seconds(10),
                                        t0 + seconds(10)};
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].from, expected[i].first) << i;
    EXPECT_EQ(seen[i].to, expected[i].second) << i;
    EXPECT_EQ(seen[i].at, times[i]) << i;
  }
}

TEST(CircuitBreaker, CallbacksRunOutsideTheLockAndMayCallTheBreaker) {
  base::ManualClock clock;
  CircuitBreaker* self = nullptr;
  std::vector<BreakerState> states_seen;
  BreakerOptions o = consecutive_only(1);
  o.on_state_change = [&](const BreakerTransition&) {
    states_seen.push_back(self->state());  // would deadlock under the lock
    (void)self->stats();
  };
  CircuitBreaker b(o, clock);
  self = &b;
  fail(b);
  ASSERT_EQ(states_seen.size(), 1u);
  EXPECT_EQ(states_seen[0], BreakerState::open);
}

TEST(CircuitBreaker, ValidateNamesTheBadField) {
  EXPECT_FALSE(BreakerOptions{}.validate());
  auto bad = [](auto mutate) {
    BreakerOptions o;
    mutate(o);
    return o.validate().value_or("");
  };
  EXPECT_NE(bad([](BreakerOptions& o) { o.window_buckets = 0; }).find("window_buckets"),
            std::string::npos);
  EXPECT_NE(
      bad([](BreakerOptions& o) { o.failure_rate_threshold = 0; }).find("failure_rate_threshold"),
      std::string::npos);
  EXPECT_NE(
      bad([](BreakerOptions& o) { o.max_open_duration = seconds(1); }).find("max_open_duration"),
      std::string::npos);
  EXPECT_NE(bad([](BreakerOptions& o) { o.half_open_max_probes = 0; }).find("probes"),
            std::string::npos);
}

TEST(CircuitBreaker, ConcurrentUseKeepsCountsAndTransitionsConsistent) {
  constexpr int kThreads = 4;
  constexpr int kCalls = 20000;
  base::ManualClock clock;
  std::mutex seen_mu;
  std::vector<BreakerTransition> seen;
  BreakerOptions o;
  o.window = seconds(1);
  o.min_requests = 20;
  o.consecutive_failures = 8;
  o.open_duration = milliseconds(2);
  o.max_open_duration = milliseconds(20);
  o.half_open_max_probes = 2;
  o.half_open_successes_to_close = 2;
  o.on_state_change = [&](const BreakerTransition& t) {
    std::lock_guard lock(seen_mu);
    seen.push_back(t);
  };
  CircuitBreaker b(o, clock);
  std::latch start(kThreads + 1);
  std::atomic<uint64_t> allowed{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      base::Xoshiro256 rng(static_cast<uint64_t>(t) + 11);
      start.arrive_and_wait();
      for (int i = 0; i < kCalls; ++i) {
        auto permit = b.allow();
        if (!permit) {
          rejected.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        allowed.fetch_add(1, std::memory_order_relaxed);
        const uint64_t roll = rng.uniform(0, 99);
        if (roll < 40) {
          permit.failure();
        } else if (roll < 98) {
          permit.success();
        }  // else: abandoned
      }
    });
  }
  std::thread ticker([&] {
    start.arrive_and_wait();
    while (!done.load(std::memory_order_relaxed)) {
      clock.advance(std::chrono::microseconds(100));
      std::this_thread::yield();
    }
  });
  for (auto& thread : threads) thread.join();
  done.store(true);
  ticker.join();

  const auto s = b.stats();
  EXPECT_EQ(s.calls_allowed, allowed.load());
  EXPECT_EQ(s.calls_rejected, rejected.load());
  EXPECT_EQ(s.calls_allowed + s.calls_rejected, uint64_t{kThreads} * kCalls);
  EXPECT_EQ(s.successes + s.failures + s.abandoned, s.calls_allowed);
  EXPECT_EQ(s.rejected_open + s.rejected_probes_exhausted, s.calls_rejected);
  EXPECT_EQ(s.opened_by_rate + s.opened_by_consecutive + s.opened_by_probe, s.times_opened);
  EXPECT_EQ(s.probes_in_flight, 0u);
  // 40% failures make runs of 8 in a row common: the breaker must have cycled.
  EXPECT_GT(s.times_opened, 0u);
  std::lock_guard lock(seen_mu);
  // Delivered in order: each transition starts where the previous one ended.
  BreakerState current = BreakerState::closed;
  uint64_t opens = 0;
  for (const auto& t : seen) {
    EXPECT_EQ(t.from, current);
    EXPECT_NE(t.from, t.to);
    current = t.to;
    if (t.to == BreakerState::open) ++opens;
  }
  EXPECT_EQ(current, s.state);
  EXPECT_EQ(opens, s.times_opened);
}

}  // namespace
}  // namespace sluice::resilience
