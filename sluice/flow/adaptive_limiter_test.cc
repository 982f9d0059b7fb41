#include "sluice/flow/adaptive_limiter.h"

#include <gtest/gtest.h>

#include <barrier>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::flow {
namespace {

using namespace std::chrono_literals;

// Holds as many tokens as the limiter admits, then completes the newest one (whose in_flight
// equals the limit, so the policy sees a fully used limit), `steps` times.
template <typename Complete>
void drive_at_limit(AdaptiveLimiter& limiter, std::vector<LimiterToken>& held, int steps,
                    Complete complete) {
  for (int i = 0; i < steps; ++i) {
    while (auto token = limiter.try_acquire()) held.push_back(std::move(*token));
    ASSERT_FALSE(held.empty());
    LimiterToken token = std::move(held.back());
    held.pop_back();
    complete(token);
  }
}

TEST(AimdPolicy, GrowsAdditivelyAndShrinksMultiplicatively) {
  AimdPolicy policy({.backoff_ratio = 0.5, .increase = 2, .timeout = 1s});
  EXPECT_DOUBLE_EQ(policy.update(10, {10ms, 10, Outcome::success}), 12);
  EXPECT_DOUBLE_EQ(policy.update(10, {10ms, 4, Outcome::success}), 10);  // app-limited
  EXPECT_DOUBLE_EQ(policy.update(10, {10ms, 10, Outcome::dropped}), 5);
  EXPECT_DOUBLE_EQ(policy.update(10, {10ms, 10, Outcome::error}), 5);
  EXPECT_DOUBLE_EQ(policy.update(10, {2s, 10, Outcome::success}), 5);  // timeout
  // Already answered by an earlier decrease: no second backoff.
  EXPECT_DOUBLE_EQ(policy.update(10, {10ms, 10, Outcome::dropped, true}), 10);
}

TEST(AdaptiveLimiter, RejectsOverTheLimitWithAReason) {
  base::ManualClock clock;
  AdaptiveLimiter limiter(std::make_unique<AimdPolicy>(),
                          {.initial_limit = 2, .min_limit = 1, .max_limit = 10}, clock);
  auto a = limiter.try_acquire();
  auto b = limiter.try_acquire();
  ASSERT_TRUE(a && b);
  auto c = limiter.try_acquire();
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), Errc::over_limit);
  EXPECT_EQ(limiter.in_flight(), 2u);
  a->on_ignore();
  EXPECT_EQ(limiter.in_flight(), 1u);
  EXPECT_TRUE(limiter.try_acquire());  // a temporary token: released (ignored) at once
  const auto s = limiter.stats();
  EXPECT_EQ(s.acquired_total, 3u);
  EXPECT_EQ(s.rejected_total, 1u);
  EXPECT_EQ(s.ignored_total, 2u);
  EXPECT_EQ(s.limit, 2u);  // ignored tokens do not move the limit
  EXPECT_EQ(s.policy, "aimd");
}

TEST(AdaptiveLimiter, AimdGrowsUnderSuccessAndShrinksOnErrors) {
  base::ManualClock clock;
  std::vector<std::pair<uint32_t, uint32_t>> changes;
  AdaptiveLimiter limiter(
      std::make_unique<AimdPolicy>(AimdPolicy::Options{.backoff_ratio = 0.5}),
      {.initial_limit = 4,
       .min_limit = 2,
       .max_limit = 12,
       .on_limit_change = [&](uint32_t from, uint32_t to) { changes.emplace_back(from, to); }},
      clock);
  std::vector<LimiterToken> held;
  drive_at_limit(limiter, held, 20, [&](LimiterToken& t) {
    clock.advance(10ms);
    t.on_success();
  });
  EXPECT_EQ(limiter.limit(), 12u);  // 4 + 8 successes, then capped at max_limit
  ASSERT_GE(changes.size(), 8u);
  EXPECT_EQ(changes.front(), std::make_pair(4u, 5u));

  drive_at_limit(limiter, held, 1, [](LimiterToken& t) { t.on_error(); });
  EXPECT_EQ(limiter.limit(), 6u);
  // The other requests admitted before that decrease fail too: same congestion event, no
  // further decrease.
  drive_at_limit(limiter, held, 3, [](LimiterToken& t) { t.on_dropped(); });
  EXPECT_EQ(limiter.limit(), 6u);
  held.clear();  // releases without samples
  EXPECT_EQ(limiter.in_flight(), 0u);
  // Requests admitted after the decrease report new congestion: each event backs off once.
  drive_at_limit(limiter, held, 1, [](LimiterToken& t) { t.on_dropped(); });
  EXPECT_EQ(limiter.limit(), 3u);
  held.clear();
  drive_at_limit(limiter, held, 1, [](LimiterToken& t) { t.on_dropped(); });
  EXPECT_EQ(limiter.limit(), 2u);  // min_limit
  held.clear();

  const auto s = limiter.stats();
  EXPECT_EQ(s.successes_total, 20u);
  EXPECT_EQ(s.errors_total, 1u);
  EXPECT_EQ(s.dropped_total, 5u);
  EXPECT_EQ(s.limit_increases_total, 8u);
  EXPECT_EQ(s.limit_decreases_total, 3u);
  EXPECT_EQ(s.min_rtt, 10ms);
  EXPECT_EQ(changes.back(), std::make_pair(3u, 2u));
}

TEST(AdaptiveLimiter, AimdDoesNotGrowWhenAppLimited) {
  base::ManualClock clock;
  AdaptiveLimiter limiter(std::make_unique<AimdPolicy>(), {.initial_limit = 10}, clock);
  for (int i = 0; i < 50; ++i) {
    auto token = limiter.try_acquire();  // one request at a time: in_flight 1 of 10
    ASSERT_TRUE(token);
    token->on_success(5ms);
  }
  EXPECT_EQ(limiter.limit(), 10u);
  EXPECT_EQ(limiter.stats().successes_total, 50u);
}

TEST(GradientPolicy, ShrinksWhenLatencyRisesAndGrowsBackWhenItFalls) {
  base::ManualClock clock;
  auto policy = std::make_unique<GradientPolicy>();
  GradientPolicy* gradient = policy.get();
  AdaptiveLimiter limiter(std::move(policy),
                          {.initial_limit = 50, .min_limit = 5, .max_limit = 200}, clock);
  std::vector<LimiterToken> held;
  // Steady 10 ms: the gradient is 1, the limit grows by queue_size * smoothing per sample.
  drive_at_limit(limiter, held, 20, [](LimiterToken& t) { t.on_success(10ms); });
  const uint32_t steady = limiter.limit();
  EXPECT_GT(steady, 50u);
  EXPECT_NEAR(gradient->long_rtt_seconds(), 0.010, 1e-9);

  // Latency rises to 50 ms: every sample shrinks the limit.
  uint32_t previous = steady;
  drive_at_limit(limiter, held, 30, [&](LimiterToken& t) {
    t.on_success(50ms);
    EXPECT_LE(limiter.limit(), previous);
    previous = limiter.limit();
  });
  const uint32_t congested = limiter.limit();
  EXPECT_LT(congested, steady / 2);

  // Latency falls back to 10 ms: the limit grows again.
  drive_at_limit(limiter, held, 40, [](LimiterToken& t) { t.on_success(10ms); });
  EXPECT_GT(limiter.limit(), congested + 20);
  const auto s = limiter.stats();
  EXPECT_GT(s.limit_decreases_total, 0u);
  EXPECT_GT(s.limit_increases_total, 0u);
  EXPECT_EQ(s.min_rtt, 10ms);
  EXPECT_EQ(s.last_rtt, 10ms);
  EXPECT_EQ(s.policy, "gradient");
}

TEST(GradientPolicy, DropBacksOffAndErrorIsIgnored) {
  GradientPolicy policy({.drop_backoff = 0.5});
  EXPECT_DOUBLE_EQ(policy.update(40, {1ms, 40, Outcome::dropped}), 20);
  EXPECT_DOUBLE_EQ(policy.update(40, {1ms, 40, Outcome::error}), 40);
  EXPECT_DOUBLE_EQ(policy.long_rtt_seconds(), 0.0);  // neither is a latency sample
  // App-limited samples feed the average but leave the limit alone.
  EXPECT_DOUBLE_EQ(policy.update(40, {1ms, 3, Outcome::success}), 40);
  EXPECT_NEAR(policy.long_rtt_seconds(), 0.001, 1e-12);
}

TEST(AdaptiveLimiter, ConcurrentAcquireAndCompleteKeepsCountsConsistent) {
  base::ManualClock clock;
  AdaptiveLimiter limiter(std::make_unique<AimdPolicy>(),
                          {.initial_limit = 8, .min_limit = 2, .max_limit = 64}, clock);
  constexpr int kThreads = 4;
  constexpr int kIterations = 2000;
  std::barrier start(kThreads);
  std::vector<uint64_t> acquired(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kIterations; ++i) {
        auto token = limiter.try_acquire();
        if (!token) continue;
        ++acquired[t];
        EXPECT_LE(limiter.in_flight(), 64u);
        switch ((i + t) % 10) {
          case 0:
            token->on_dropped();
            break;
          case 1:
            token->on_error();
            break;
          case 2:
            token->on_ignore();
            break;
          default:
            token->on_success(1ms);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto s = limiter.stats();
  uint64_t total = 0;
  for (auto a : acquired) total += a;
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.acquired_total, total);
  EXPECT_EQ(s.acquired_total + s.rejected_total, uint64_t{kThreads} * kIterations);
  EXPECT_EQ(s.successes_total + s.dropped_total + s.errors_total + s.ignored_total, total);
  EXPECT_GE(s.limit, 2u);
  EXPECT_LE(s.limit, 64u);
}

TEST(LimiterToken, MoveTransfersOwnership) {
  base::ManualClock clock;
  AdaptiveLimiter limiter(std::make_unique<AimdPolicy>(), {.initial_limit = 1}, clock);
  auto r = limiter.try_acquire();
  ASSERT_TRUE(r);
  LimiterToken a = std::move(*r);
  EXPECT_FALSE(r->active());
  LimiterToken b;
  b = std::move(a);
  EXPECT_TRUE(b.active());
  EXPECT_EQ(limiter.in_flight(), 1u);
  clock.advance(7ms);
  b.on_success();
  EXPECT_FALSE(b.active());
  EXPECT_EQ(limiter.in_flight(), 0u);
  EXPECT_EQ(limiter.stats().last_rtt, 7ms);
}

}  // namespace
}  // namespace sluice::flow
