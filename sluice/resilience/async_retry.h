// async_retry: the coroutine form of the retry loop, waiting on an Asio `steady_timer`.
//
//   auto r = co_await async_retry(policy, [&](uint32_t attempt) -> asio::awaitable<Result> {
//     co_return co_await client.get(url);
//   });
//
// The work returns `asio::awaitable<R>` with R a `boost::system::result<T>` or
// `AttemptResult<T>`; it is called with the attempt number (1-based) if it accepts one. The
// waits never block the event loop: the timer runs on the coroutine's executor. Returns the
// last attempt's result (see `retry_call.h` for the rules; they are the same). If the wait is
// cancelled (the coroutine's cancellation slot, or the executor stopping), no further attempt
// starts and the last result is returned.
//
// Thread-safety: one call, one coroutine; the policy may be shared with other threads.
// The policy's clock decides deadlines, the timer waits in real (steady) time: give the
// policy `SteadyClock` when you use this. Lifetime: the policy must outlive the coroutine;
// the work is moved into the coroutine frame.
// Include cost: this header pulls in Asio; synchronous code includes `retry_policy.h` only.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <type_traits>
#include <utility>

#include "sluice/base/random.h"
#include "sluice/resilience/retry_call.h"
#include "sluice/resilience/retry_policy.h"

namespace sluice::resilience {

namespace internal {

template <class Work>
using AsyncAttemptReturn =
    typename std::remove_cvref_t<decltype(invoke_attempt(std::declval<Work&>(), 1u))>::value_type;

}  // namespace internal

// The retry loop over a caller-owned state, which must outlive the returned awaitable.
template <class Work>
[[nodiscard]] boost::asio::awaitable<internal::AsyncAttemptReturn<Work>> async_retry(
    RetryState& state, Work work) {
  using R = internal::AsyncAttemptReturn<Work>;
  static_assert(internal::IsResult<R>::value,
                "the work must return asio::awaitable of boost::system::result<T> or "
                "AttemptResult<T>");
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  std::optional<R> last;
  while (state.start_attempt()) {
    R result = co_await internal::invoke_attempt(work, state.attempts());
    if (result.has_value()) {
      state.on_success();
      co_return result;
    }
    const RetryDecision decision = state.next_delay(internal::failure_of(result.error()));
    if (!decision.should_retry()) co_return result;
    last.emplace(std::move(result));
    timer.expires_after(decision.delay());
    boost::system::error_code wait_error;
    co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, wait_error));
    if (wait_error) break;  // cancelled: the state's destructor returns its budget slot
  }
  if (last) co_return std::move(*last);
  co_return internal::timed_out_result<R>();
}

// The retry loop with a fresh state; jitter comes from a generator owned by the coroutine
// (seeded from the calling thread's), so the coroutine may resume on any thread.
template <class Work>
[[nodiscard]] boost::asio::awaitable<internal::AsyncAttemptReturn<Work>> async_retry(
    const RetryPolicy& policy, Work work) {
  base::Xoshiro256 random(base::thread_local_random().next_u64());
  RetryState state(policy, random);
  co_return co_await async_retry(state, std::move(work));
}

}  // namespace sluice::resilience
