#include "sluice/resilience/retry_budget.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/random.h"
#include "sluice/resilience/retry_policy.h"

namespace sluice::resilience {
namespace {

Failure unavailable() { return Failure{{}, 503, std::nullopt}; }

TEST(RetryBudget, FloorAllowsMinRetryConcurrencyWithoutLoad) {
  RetryBudget budget({.budget_percent = 20.0, .min_retry_concurrency = 3});
  EXPECT_EQ(budget.retry_limit(), 3u);
  EXPECT_TRUE(budget.try_acquire_retry());
  EXPECT_TRUE(budget.try_acquire_retry());
  EXPECT_TRUE(budget.try_acquire_retry());
  EXPECT_FALSE(budget.try_acquire_retry());
  budget.release_retry();
  EXPECT_TRUE(budget.try_acquire_retry());
  const auto stats = budget.stats();
  EXPECT_EQ(stats.active_retries, 3u);
  EXPECT_EQ(stats.retries_granted, 4u);
  EXPECT_EQ(stats.budget_exhausted, 1u);
  for (int i = 0; i < 3; ++i) budget.release_retry();
}

TEST(RetryBudget, LimitIsAPercentageOfActiveRequests) {
  RetryBudget budget({.budget_percent = 20.0, .min_retry_concurrency = 3});
  for (int i = 0; i < 100; ++i) budget.request_started();
  EXPECT_EQ(budget.retry_limit(), 20u);
  for (int i = 0; i < 50; ++i) budget.request_finished();
  EXPECT_EQ(budget.retry_limit(), 10u);
  for (int i = 0; i < 40; ++i) budget.request_finished();
  EXPECT_EQ(budget.retry_limit(), 3u);  // 20% of 10 is 2: the floor wins
  for (int i = 0; i < 10; ++i) budget.request_finished();
  EXPECT_EQ(budget.stats().active_requests, 0u);
}

TEST(RetryBudget, ValidateRejectsOutOfRangePercent) {
  EXPECT_FALSE(RetryBudgetOptions{}.validate());
  EXPECT_TRUE(RetryBudgetOptions{.budget_percent = 120.0}.validate());
  EXPECT_TRUE(RetryBudgetOptions{.budget_percent = -1.0}.validate());
}

TEST(RetryBudget, RetryStatesShareTheBudget) {
  base::ManualClock clock;
  auto budget = std::make_shared<RetryBudget>(
      RetryBudgetOptions{.budget_percent = 20.0, .min_retry_concurrency = 1});
  RetryOptions options;
  options.budget = budget;
  options.max_attempts = 5;
  RetryPolicy policy(options, clock);
  base::Xoshiro256 rng(1);
  // 50 requests in flight, each failing once: 20% of 50 = 10 may retry.
  std::vector<std::unique_ptr<RetryState>> states;
  for (int i = 0; i < 50; ++i) states.push_back(std::make_unique<RetryState>(policy, rng));
  EXPECT_EQ(budget->stats().active_requests, 50u);
  int granted = 0;
  int refused = 0;
  for (auto& state : states) {
    ASSERT_TRUE(state->start_attempt());
    const auto d = state->next_delay(unavailable());
    if (d.should_retry()) {
      ++granted;
    } else {
      EXPECT_EQ(d.stop_reason(), StopReason::budget);
      ++refused;
    }
  }
  EXPECT_EQ(granted, 10);
  EXPECT_EQ(refused, 40);
  EXPECT_EQ(budget->stats().active_retries, 10u);
  EXPECT_EQ(budget->stats().budget_exhausted, 40u);
  EXPECT_EQ(policy.stats().stopped_budget, 40u);

  // A retry's slot is returned when its attempt completes ...
  ASSERT_TRUE(states[0]->start_attempt());
  states[0]->on_success();
  EXPECT_EQ(budget->stats().active_retries, 9u);
  // ... or when the request is dropped mid-wait.
  states.clear();
  EXPECT_EQ(budget->stats().active_retries, 0u);
  EXPECT_EQ(budget->stats().active_requests, 0u);
}

TEST(RetryBudget, LimitsRetriesUnderConcurrency) {
  // 8 threads each hold one request and fail at the same moment: exactly
  // max(min_retry_concurrency, 25% of 8) = 2 may retry, in every round.
  constexpr int kThreads = 8;
  constexpr int kRounds = 50;
  base::ManualClock clock;
  auto budget = std::make_shared<RetryBudget>(
      RetryBudgetOptions{.budget_percent = 25.0, .min_retry_concurrency = 1});
  RetryOptions options;
  options.budget = budget;
  RetryPolicy policy(options, clock);
  std::barrier sync(kThreads);
  std::atomic<int> granted_total{0};
  std::vector<int> granted_per_round(kRounds, 0);
  std::atomic<int> granted_this_round{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      base::Xoshiro256 rng(static_cast<uint64_t>(t) + 1);
      for (int round = 0; round < kRounds; ++round) {
        {
          RetryState state(policy, rng);
          sync.arrive_and_wait();  // all 8 requests are active
          if (state.start_attempt() && state.next_delay(unavailable()).should_retry()) {
            granted_this_round.fetch_add(1);
            granted_total.fetch_add(1);
          }
          sync.arrive_and_wait();  // nobody releases before everyone has asked
        }
        sync.arrive_and_wait();  // all states are gone
        if (t == 0) granted_per_round[round] = granted_this_round.exchange(0);
        sync.arrive_and_wait();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int round = 0; round < kRounds; ++round) EXPECT_EQ(granted_per_round[round], 2) << round;
  EXPECT_EQ(granted_total.load(), 2 * kRounds);
  const auto stats = budget->stats();
  EXPECT_EQ(stats.active_requests, 0u);
  EXPECT_EQ(stats.active_retries, 0u);
  EXPECT_EQ(stats.budget_exhausted, static_cast<uint64_t>((kThreads - 2) * kRounds));
}

}  // namespace
}  // namespace sluice::resilience
