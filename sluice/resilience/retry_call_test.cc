#include "sluice/resilience/retry_call.h"

#include <gtest/gtest.h>

#include <boost/system/errc.hpp>
#include <chrono>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/random.h"

namespace sluice::resilience {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
namespace errc = boost::system::errc;

// A sleeper that moves the fake clock instead of sleeping, and remembers the delays.
struct FakeSleeper {
  base::ManualClock& clock;
  std::vector<Duration>& delays;
  void operator()(Duration d) const {
    delays.push_back(d);
    clock.advance(d);
  }
};

RetryOptions no_jitter() {
  RetryOptions options;
  options.base_delay = milliseconds(100);
  options.max_delay = seconds(1);
  options.jitter = JitterMode::none;
  options.max_attempts = 4;
  return options;
}

boost::system::error_code timed_out() { return errc::make_error_code(errc::timed_out); }

TEST(RetryCall, SucceedsAfterTransientFailures) {
  base::ManualClock clock;
  RetryPolicy policy(no_jitter(), clock);
  base::Xoshiro256 rng(1);
  std::vector<Duration> delays;
  std::vector<uint32_t> seen;
  RetryState state(policy, rng);
  const auto result = retry_call(
      state,
      [&](uint32_t attempt) -> boost::system::result<int> {
        seen.push_back(attempt);
        if (attempt < 3) return timed_out();
        return 42;
      },
      FakeSleeper{clock, delays});
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, 42);
  EXPECT_EQ(seen, (std::vector<uint32_t>{1, 2, 3}));
  EXPECT_EQ(delays, (std::vector<Duration>{milliseconds(100), milliseconds(200)}));
  EXPECT_EQ(state.attempts(), 3u);
  EXPECT_FALSE(state.stop_reason());
  EXPECT_EQ(policy.stats().successes_after_retry, 1u);
}

TEST(RetryCall, ReturnsTheLastFailureWhenAttemptsRunOut) {
  base::ManualClock clock;
  RetryPolicy policy(no_jitter(), clock);
  base::Xoshiro256 rng(1);
  std::vector<Duration> delays;
  int calls = 0;
  RetryState state(policy, rng);
  const auto result = retry_call(
      state,
      [&]() -> boost::system::result<void> {
        ++calls;
        return errc::make_error_code(errc::connection_refused);
      },
      FakeSleeper{clock, delays});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error(), errc::connection_refused);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(delays.size(), 3u);
  EXPECT_EQ(state.stop_reason(), StopReason::max_attempts);
}

TEST(RetryCall, StopsAtOnceOnAPermanentFailure) {
  base::ManualClock clock;
  RetryPolicy policy(no_jitter(), clock);
  base::Xoshiro256 rng(1);
  std::vector<Duration> delays;
  int calls = 0;
  const auto result = retry_call(
      policy,
      [&]() -> AttemptResult<int> {
        ++calls;
        return Failure{{}, 404, std::nullopt};
      },
      FakeSleeper{clock, delays}, rng);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().status, 404);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(delays.empty());
  EXPECT_EQ(policy.stats().stopped_not_retryable, 1u);
}

TEST(RetryCall, HonoursRetryAfterHints) {
  base::ManualClock clock;
  RetryOptions options = no_jitter();
  options.max_delay = seconds(5);
  RetryPolicy policy(options, clock);
  base::Xoshiro256 rng(1);
  std::vector<Duration> delays;
  const auto result = retry_call(
      policy,
      [&](uint32_t attempt) -> AttemptResult<std::string> {
        if (attempt == 1) return Failure{{}, 429, seconds(3)};
        if (attempt == 2) return Failure{{}, 503, seconds(30)};
        return std::string("ok");
      },
      FakeSleeper{clock, delays}, rng);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, "ok");
  EXPECT_EQ(delays, (std::vector<Duration>{seconds(3), seconds(5)}));
}

TEST(RetryCall, DeadlineBoundsTheWholeCall) {
  base::ManualClock clock;
  RetryOptions options = no_jitter();
  options.max_attempts = 100;
  options.timeout = milliseconds(1000);
  RetryPolicy policy(options, clock);
  base::Xoshiro256 rng(1);
  std::vector<Duration> delays;
  const TimePoint start = clock.now();
  RetryState state(policy, rng);
  const auto result = retry_call(
      state, []() -> boost::system::result<int> { return timed_out(); },
      FakeSleeper{clock, delays});
  ASSERT_FALSE(result.has_value());
  // 100 + 200 + 400 = 700 ms of sleep; the next (800 ms) would cross the 1 s deadline.
  EXPECT_EQ(delays.size(), 3u);
  EXPECT_EQ(state.attempts(), 4u);
  EXPECT_EQ(state.stop_reason(), StopReason::deadline);
  EXPECT_LT(clock.now() - start, milliseconds(1000));
}

TEST(RetryCall, NoAttemptWhenTheDeadlineHasPassed) {
  base::ManualClock clock;
  RetryPolicy policy(no_jitter(), clock);
  base::Xoshiro256 rng(1);
  std::vector<Duration> delays;
  int calls = 0;
  RetryState state(policy, rng, clock.now());
  const auto result = retry_call(
      state,
      [&]() -> AttemptResult<int> {
        ++calls;
        return 1;
      },
      FakeSleeper{clock, delays});
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().error, errc::timed_out);
  EXPECT_EQ(calls, 0);
}

}  // namespace
}  // namespace sluice::resilience
