#include "sluice/resilience/retry_policy.h"

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

RetryOptions jittered(JitterMode mode) {
  RetryOptions options;
  options.base_delay = milliseconds(100);
  options.max_delay = seconds(1);
  options.multiplier = 2.0;
  options.jitter = mode;
  return options;
}

Failure status(int code) { return Failure{{}, code, std::nullopt}; }

TEST(RetryPolicy, ExponentialGrowthIsCappedAtMaxDelay) {
  base::ManualClock clock;
  RetryPolicy policy(jittered(JitterMode::none), clock);
  base::Xoshiro256 rng(1);
  const std::vector<Duration> expected = {milliseconds(100), milliseconds(200), milliseconds(400),
                                          milliseconds(800), seconds(1),        seconds(1),
                                          seconds(1)};
  for (uint32_t retry = 1; retry <= expected.size(); ++retry) {
    EXPECT_EQ(policy.backoff(retry, Duration::zero(), rng), expected[retry - 1]) << retry;
  }
  // Far past any double/int64 range the cap still holds.
  EXPECT_EQ(policy.exponential(5000), seconds(1));
}

TEST(RetryPolicy, FullJitterIsUniformBetweenZeroAndExponential) {
  base::ManualClock clock;
  RetryPolicy policy(jittered(JitterMode::full), clock);
  base::Xoshiro256 rng(42);
  constexpr int kDraws = 20000;
  const Duration exp = milliseconds(400);  // retry 3
  double sum = 0;
  int lower_quarter = 0;
  for (int i = 0; i < kDraws; ++i) {
    const Duration d = policy.backoff(3, Duration::zero(), rng);
    ASSERT_GE(d, Duration::zero());
    ASSERT_LE(d, exp);
    sum += static_cast<double>(d.count());
    if (d < exp / 4) ++lower_quarter;
  }
  const double mean = sum / kDraws;
  EXPECT_NEAR(mean / static_cast<double>(exp.count()), 0.5, 0.02);
  EXPECT_NEAR(static_cast<double>(lower_quarter) / kDraws, 0.25, 0.02);
}

TEST(RetryPolicy, EqualJitterStaysInUpperHalf) {
  base::ManualClock clock;
  RetryPolicy policy(jittered(JitterMode::equal), clock);
  base::Xoshiro256 rng(7);
  constexpr int kDraws = 20000;
  const Duration exp = milliseconds(800);  // retry 4
  double sum = 0;
  for (int i = 0; i < kDraws; ++i) {
    const Duration d = policy.backoff(4, Duration::zero(), rng);
    ASSERT_GE(d, exp / 2);
    ASSERT_LE(d, exp);
    sum += static_cast<double>(d.count());
  }
  EXPECT_NEAR(sum / kDraws / static_cast<double>(exp.count()), 0.75, 0.02);
}

TEST(RetryPolicy, DecorrelatedJitterGrowsFromThePreviousDelay) {
  base::ManualClock clock;
  RetryPolicy policy(jittered(JitterMode::decorrelated), clock);
  base::Xoshiro256 rng(9);
  // From the base: uniform [100 ms, 300 ms], mean 200 ms.
  double sum = 0;
  constexpr int kDraws = 20000;
  for (int i = 0; i < kDraws; ++i) {
    const Duration d = policy.backoff(1, milliseconds(100), rng);
    ASSERT_GE(d, milliseconds(100));
    ASSERT_LE(d, milliseconds(300));
    sum += static_cast<double>(d.count());
  }
  EXPECT_NEAR(sum / kDraws / 1e6, 200.0, 4.0);
  // A chain: each delay lies in [base, min(max, 3 * previous)].
  Duration previous = milliseconds(100);
  for (uint32_t retry = 1; retry <= 50; ++retry) {
    const Duration d = policy.backoff(retry, previous, rng);
    ASSERT_GE(d, milliseconds(100));
    ASSERT_LE(d, std::min<Duration>(seconds(1), previous * 3));
    previous = d;
  }
  // A large previous delay is capped at max_delay.
  for (int i = 0; i < 100; ++i) ASSERT_LE(policy.backoff(9, seconds(30), rng), seconds(1));
}

TEST(RetryPolicy, SameSeedGivesTheSameSequence) {
  base::ManualClock clock;
  for (const auto mode : {JitterMode::full, JitterMode::equal, JitterMode::decorrelated}) {
    RetryPolicy policy(jittered(mode), clock);
    base::Xoshiro256 a(123);
    base::Xoshiro256 b(123);
    for (uint32_t retry = 1; retry < 10; ++retry) {
      EXPECT_EQ(policy.backoff(retry, milliseconds(150), a),
                policy.backoff(retry, milliseconds(150), b));
    }
  }
}

TEST(RetryState, StopsAfterMaxAttempts) {
  base::ManualClock clock;
  RetryOptions options = jittered(JitterMode::none);
  options.max_attempts = 3;
  RetryPolicy policy(options, clock);
  base::Xoshiro256 rng(1);
  RetryState state(policy, rng);
  ASSERT_TRUE(state.start_attempt());
  auto d = state.next_delay(status(503));
  ASSERT_TRUE(d.should_retry());
  EXPECT_EQ(d.delay(), milliseconds(100));
  ASSERT_TRUE(state.start_attempt());
  d = state.next_delay(status(503));
  ASSERT_TRUE(d.should_retry());
  EXPECT_EQ(d.delay(), milliseconds(200));
  ASSERT_TRUE(state.start_attempt());
  d = state.next_delay(status(503));
  ASSERT_FALSE(d.should_retry());
  EXPECT_EQ(d.stop_reason(), StopReason::max_attempts);
  EXPECT_EQ(state.attempts(), 3u);
  EXPECT_EQ(state.stop_reason(), StopReason::max_attempts);
  const auto stats = policy.stats();
  EXPECT_EQ(stats.requests, 1u);
  EXPECT_EQ(stats.attempts, 3u);
  EXPECT_EQ(stats.retries, 2u);
  EXPECT_EQ(stats.stopped_max_attempts, 1u);
  EXPECT_EQ(stats.successes, 0u);
}

TEST(RetryState, DeadlineStopsRetriesBeforeTheSleepWouldCrossIt) {
  base::ManualClock clock;
  RetryOptions options = jittered(JitterMode::none);
  options.base_delay = milliseconds(300);
  options.max_delay = seconds(10);
  options.max_attempts = 10;
  options.timeout = seconds(1);
  RetryPolicy policy(options, clock);
  base::Xoshiro256 rng(1);
  RetryState state(policy, rng);
  EXPECT_EQ(state.deadline(), clock.now() + seconds(1));
  ASSERT_TRUE(state.start_attempt());
  auto d = state.next_delay(status(502));  // t=0: 0 + 300 ms < 1 s
  ASSERT_TRUE(d.should_retry());
  clock.advance(d.delay());
  ASSERT_TRUE(state.start_attempt());
  d = state.next_delay(status(502));  // t=300: 300 + 600 ms < 1 s
  ASSERT_TRUE(d.should_retry());
  EXPECT_EQ(d.delay(), milliseconds(600));
  clock.advance(d.delay());
  ASSERT_TRUE(state.start_attempt());
  d = state.next_delay(status(502));  // t=900: 900 + 1200 ms > 1 s
  ASSERT_FALSE(d.should_retry());
  EXPECT_EQ(d.stop_reason(), StopReason::deadline);
  EXPECT_EQ(state.attempts(), 3u);
  EXPECT_EQ(policy.stats().stopped_deadline, 1u);
}

TEST(RetryState, NoAttemptStartsAtOrPastTheDeadline) {
  base::ManualClock clock;
  RetryPolicy policy(jittered(JitterMode::none), clock);
  base::Xoshiro256 rng(1);
  {
    RetryState state(policy, rng, clock.now());  // already due
    EXPECT_FALSE(state.start_attempt());
    EXPECT_EQ(state.attempts(), 0u);
    EXPECT_EQ(state.stop_reason(), StopReason::deadline);
  }
  {
    // The sleep overshot (a real timer is late): the next attempt does not start.
    RetryState state(policy, rng, clock.now() + milliseconds(150));
    ASSERT_TRUE(state.start_attempt());
    const auto d = state.next_delay(status(503));
    ASSERT_TRUE(d.should_retry());  // 100 ms < 150 ms
    clock.advance(milliseconds(150));
    EXPECT_FALSE(state.start_attempt());
    EXPECT_EQ(state.stop_reason(), StopReason::deadline);
  }
  EXPECT_EQ(policy.stats().stopped_deadline, 2u);
}

TEST(RetryState, ExplicitDeadlineAndTimeoutTakeTheEarlier) {
  base::ManualClock clock;
  RetryOptions options = jittered(JitterMode::none);
  options.timeout = seconds(5);
  RetryPolicy policy(options, clock);
  base::Xoshiro256 rng(1);
  RetryState early(policy, rng, clock.now() + seconds(2));
  EXPECT_EQ(early.deadline(), clock.now() + seconds(2));
  RetryState late(policy, rng, clock.now() + seconds(20));
  EXPECT_EQ(late.deadline(), clock.now() + seconds(5));
}

TEST(RetryClassifier, DefaultRetriesTransientStatusesAndErrors) {
  for (const int code : {429, 502, 503, 504}) {
    EXPECT_EQ(default_retry_classifier(status(code)), Retryability::retryable) << code;
  }
  for (const int code : {200, 400, 401, 404, 409, 500, 501}) {
    EXPECT_EQ(default_retry_classifier(status(code)), Retryability::not_retryable) << code;
  }
  for (const auto e : {errc::timed_out, errc::connection_refused, errc::connection_reset,
                       errc::host_unreachable, errc::broken_pipe}) {
    EXPECT_EQ(default_retry_classifier(Failure{errc::make_error_code(e), 0, std::nullopt}),
              Retryability::retryable)
        << errc::make_error_code(e).message();
  }
  EXPECT_EQ(default_retry_classifier(
                Failure{errc::make_error_code(errc::invalid_argument), 0, std::nullopt}),
            Retryability::not_retryable);
  EXPECT_EQ(default_retry_classifier(Failure{}), Retryability::not_retryable);
  // A status wins over an error code.
  EXPECT_EQ(default_retry_classifier(Failure{errc::make_error_code(errc::timed_out), 404, {}}),
            Retryability::not_retryable);
}

TEST(RetryClassifier, CustomClassifierDecides) {
  base::ManualClock clock;
  RetryOptions options = jittered(JitterMode::none);
  options.classifier = [](const Failure& f) {
    return f.status == 500 ? Retryability::retryable : Retryability::not_retryable;
  };
  RetryPolicy policy(options, clock);
  base::Xoshiro256 rng(1);
  RetryState a(policy, rng);
  ASSERT_TRUE(a.start_attempt());
  EXPECT_TRUE(a.next_delay(status(500)).should_retry());
  RetryState b(policy, rng);
  ASSERT_TRUE(b.start_attempt());
  const auto d = b.next_delay(status(503));
  ASSERT_FALSE(d.should_retry());
  EXPECT_EQ(d.stop_reason(), StopReason::not_retryable);
  EXPECT_EQ(policy.stats().stopped_not_retryable, 1u);
}

TEST(RetryState, RetryAfterOverridesTheComputedDelayCappedAtMax) {
  base::ManualClock clock;
  RetryOptions options = jittered(JitterMode::none);
  options.max_delay = seconds(10);
  options.max_attempts = 5;
  RetryPolicy policy(options, clock);
  base::Xoshiro256 rng(1);
  RetryState state(policy, rng);
  ASSERT_TRUE(state.start_attempt());
  auto d = state.next_delay(Failure{{}, 503, seconds(2)});
  ASSERT_TRUE(d.should_retry());
  EXPECT_EQ(d.delay(), seconds(2));
  ASSERT_TRUE(state.start_attempt());
  d = state.next_delay(Failure{{}, 429, seconds(60)});
  ASSERT_TRUE(d.should_retry());
  EXPECT_EQ(d.delay(), seconds(10));
  ASSERT_TRUE(state.start_attempt());
  d = state.next_delay(status(503));  // back to the computed delay for retry 3
  ASSERT_TRUE(d.should_retry());
  EXPECT_EQ(d.delay(), milliseconds(400));
  // A hint on a permanent failure does not make it retryable.
  ASSERT_TRUE(state.start_attempt());
  d = state.next_delay(Failure{{}, 400, seconds(1)});
  ASSERT_FALSE(d.should_retry());
  EXPECT_EQ(d.stop_reason(), StopReason::not_retryable);
}

TEST(RetryState, SuccessIsCounted) {
  base::ManualClock clock;
  RetryPolicy policy(jittered(JitterMode::full), clock);
  base::Xoshiro256 rng(1);
  {
    RetryState state(policy, rng);
    ASSERT_TRUE(state.start_attempt());
    state.on_success();
    EXPECT_FALSE(state.stop_reason().has_value());
  }
  {
    RetryState state(policy, rng);
    ASSERT_TRUE(state.start_attempt());
    ASSERT_TRUE(state.next_delay(status(503)).should_retry());
    ASSERT_TRUE(state.start_attempt());
    state.on_success();
  }
  const auto stats = policy.stats();
  EXPECT_EQ(stats.successes, 2u);
  EXPECT_EQ(stats.successes_after_retry, 1u);
  EXPECT_EQ(stats.attempts, 3u);
}

TEST(ParseRetryAfter, DeltaSecondsOnly) {
  EXPECT_EQ(parse_retry_after("120"), seconds(120));
  EXPECT_EQ(parse_retry_after(" 5\t"), seconds(5));
  EXPECT_EQ(parse_retry_after("0"), seconds(0));
  EXPECT_EQ(parse_retry_after("99999999999999999999999"), seconds(1'000'000'000));
  EXPECT_FALSE(parse_retry_after(""));
  EXPECT_FALSE(parse_retry_after("-1"));
  EXPECT_FALSE(parse_retry_after("1.5"));
  EXPECT_FALSE(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"));
}

TEST(RetryOptions, ValidateNamesTheBadField) {
  EXPECT_FALSE(RetryOptions{}.validate());
  auto bad = [](auto mutate) {
    RetryOptions o;
    mutate(o);
    return o.validate().value_or("");
  };
  EXPECT_NE(bad([](RetryOptions& o) { o.max_attempts = 0; }).find("max_attempts"),
            std::string::npos);
  EXPECT_NE(bad([](RetryOptions& o) { o.base_delay = Duration::zero(); }).find("base_delay"),
            std::string::npos);
  EXPECT_NE(bad([](RetryOptions& o) { o.max_delay = milliseconds(1); }).find("max_delay"),
            std::string::npos);
  EXPECT_NE(bad([](RetryOptions& o) { o.multiplier = 0.5; }).find("multiplier"), std::string::npos);
  EXPECT_NE(bad([](RetryOptions& o) { o.timeout = -seconds(1); }).find("timeout"),
            std::string::npos);
}

TEST(AttemptResult, ValueThrowsOnFailure) {
  AttemptResult<int> failed(boost::system::in_place_error, status(503));
  EXPECT_THROW((void)failed.value(), std::runtime_error);
  AttemptResult<int> errored(boost::system::in_place_error,
                             Failure{errc::make_error_code(errc::timed_out), 0, {}});
  EXPECT_THROW((void)errored.value(), boost::system::system_error);
}

}  // namespace
}  // namespace sluice::resilience
