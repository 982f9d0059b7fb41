#include "sluice/resilience/async_retry.h"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/errc.hpp>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>

#include "sluice/base/clock.h"

namespace sluice::resilience {
namespace {

namespace asio = boost::asio;
namespace errc = boost::system::errc;
using std::chrono::microseconds;
using std::chrono::seconds;

// Tiny real delays: these tests assert attempt counts, never elapsed time.
RetryOptions tiny_delays(uint32_t max_attempts) {
  RetryOptions options;
  options.base_delay = microseconds(50);
  options.max_delay = microseconds(200);
  options.max_attempts = max_attempts;
  return options;
}

template <class R, class Awaitable>
R run(asio::io_context& io, Awaitable awaitable) {
  std::optional<R> out;
  asio::co_spawn(io, std::move(awaitable), [&](std::exception_ptr e, R r) {
    if (e) std::rethrow_exception(e);
    out.emplace(std::move(r));
  });
  io.run();
  EXPECT_TRUE(out.has_value());
  return std::move(*out);
}

TEST(AsyncRetry, RetriesUntilSuccess) {
  asio::io_context io;
  RetryPolicy policy(tiny_delays(5));
  int calls = 0;
  const auto result = run<boost::system::result<int>>(
      io, async_retry(policy, [&](uint32_t attempt) -> asio::awaitable<boost::system::result<int>> {
        ++calls;
        if (attempt < 3) co_return errc::make_error_code(errc::connection_reset);
        co_return 7;
      }));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, 7);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(policy.stats().retries, 2u);
  EXPECT_EQ(policy.stats().successes_after_retry, 1u);
}

TEST(AsyncRetry, GivesUpAfterMaxAttempts) {
  asio::io_context io;
  RetryPolicy policy(tiny_delays(4));
  int calls = 0;
  const auto result =
      run<AttemptResult<int>>(io, async_retry(policy, [&]() -> asio::awaitable<AttemptResult<int>> {
                                ++calls;
                                co_return Failure{{}, 503, std::nullopt};
                              }));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().status, 503);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(policy.stats().stopped_max_attempts, 1u);
}

TEST(AsyncRetry, PermanentFailureIsNotRetried) {
  asio::io_context io;
  RetryPolicy policy(tiny_delays(4));
  int calls = 0;
  const auto result =
      run<AttemptResult<int>>(io, async_retry(policy, [&]() -> asio::awaitable<AttemptResult<int>> {
                                ++calls;
                                co_return Failure{{}, 400, std::nullopt};
                              }));
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(calls, 1);
}

TEST(AsyncRetry, CancellingTheWaitStopsRetryingAndReturnsTheBudgetSlot) {
  asio::io_context io;
  RetryOptions options;
  options.base_delay = seconds(30);  // the wait is only ever ended by cancellation
  options.max_delay = seconds(30);
  options.jitter = JitterMode::none;
  options.max_attempts = 5;
  options.budget = std::make_shared<RetryBudget>();
  RetryPolicy policy(options);
  asio::cancellation_signal cancel;
  int calls = 0;
  std::optional<boost::system::result<int>> out;
  asio::co_spawn(
      io,
      async_retry(policy,
                  [&]() -> asio::awaitable<boost::system::result<int>> {
                    ++calls;
                    // Runs after the retry loop has suspended on its timer.
                    asio::post(io, [&] { cancel.emit(asio::cancellation_type::terminal); });
                    co_return errc::make_error_code(errc::timed_out);
                  }),
      asio::bind_cancellation_slot(cancel.slot(),
                                   [&](std::exception_ptr e, boost::system::result<int> r) {
                                     if (!e) out.emplace(std::move(r));
                                   }));
  io.run();
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->error(), errc::timed_out);
  EXPECT_EQ(options.budget->stats().active_retries, 0u);
  EXPECT_EQ(options.budget->stats().active_requests, 0u);
}

}  // namespace
}  // namespace sluice::resilience
