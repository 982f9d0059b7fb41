// retry_call: the synchronous retry loop over a `RetryPolicy`, with the wait injected.
//
//   auto r = retry_call(policy, [&](uint32_t attempt) { return fetch(); },
//                       [](Duration d) { std::this_thread::sleep_for(d); });
//
// The attempt returns `boost::system::result<T>` (an error code is the failure) or
// `AttemptResult<T>` (= `boost::system::result<T, Failure>`, to report an HTTP-like status
// and a Retry-After hint). It is called with the attempt number (1-based) if it accepts one,
// else with no arguments. The sleeper is called with each delay: tests pass one that advances
// a `ManualClock`; a thread passes `std::this_thread::sleep_for`. Never use this loop on an
// event-loop thread: use `async_retry` there.
//
// Returns the last attempt's result. When the deadline has passed before the first attempt,
// no attempt runs and the result holds `errc::timed_out`. Pass your own `RetryState` to read
// `attempts()` and `stop_reason()` afterwards.
// Thread-safety: as for `RetryState` (one call, one thread); the policy may be shared.
#pragma once

#include <boost/system/errc.hpp>
#include <boost/system/result.hpp>
#include <type_traits>
#include <utility>

#include "sluice/resilience/retry_policy.h"

namespace sluice::resilience {

namespace internal {

template <class R>
struct IsResult : std::false_type {};
template <class T, class E>
struct IsResult<boost::system::result<T, E>> : std::true_type {};

[[nodiscard]] inline Failure failure_of(const boost::system::error_code& error) {
  return Failure{error, 0, std::nullopt};
}
[[nodiscard]] inline const Failure& failure_of(const Failure& failure) { return failure; }

template <class R>
[[nodiscard]] R timed_out_result() {
  const auto error = boost::system::errc::make_error_code(boost::system::errc::timed_out);
  if constexpr (std::is_same_v<typename R::error_type, Failure>) {
    return R(boost::system::in_place_error, Failure{error, 0, std::nullopt});
  } else {
    return R(boost::system::in_place_error, error);
  }
}

template <class Fn>
decltype(auto) invoke_attempt(Fn& fn, uint32_t attempt) {
  if constexpr (std::is_invocable_v<Fn&, uint32_t>) {
    return fn(attempt);
  } else {
    return fn();
  }
}

template <class Fn>
using AttemptReturn = std::remove_cvref_t<decltype(invoke_attempt(std::declval<Fn&>(), 1u))>;

}  // namespace internal

// The retry loop over a caller-owned state.
template <class Fn, class Sleeper>
[[nodiscard]] internal::AttemptReturn<Fn> retry_call(RetryState& state, Fn&& fn,
                                                     Sleeper&& sleeper) {
  using R = internal::AttemptReturn<Fn>;
  static_assert(internal::IsResult<R>::value,
                "the attempt must return boost::system::result<T> or AttemptResult<T>");
  std::optional<R> last;
  while (state.start_attempt()) {
    R result = internal::invoke_attempt(fn, state.attempts());
    if (result.has_value()) {
      state.on_success();
      return result;
    }
    const RetryDecision decision = state.next_delay(internal::failure_of(result.error()));
    if (!decision.should_retry()) return result;
    last.emplace(std::move(result));
    sleeper(decision.delay());
  }
  return last ? std::move(*last) : internal::timed_out_result<R>();
}

// The retry loop with a fresh state drawing jitter from `random`.
template <class Fn, class Sleeper>
[[nodiscard]] internal::AttemptReturn<Fn> retry_call(
    const RetryPolicy& policy, Fn&& fn, Sleeper&& sleeper,
    base::RandomSource& random = base::thread_local_random()) {
  RetryState state(policy, random);
  return retry_call(state, std::forward<Fn>(fn), std::forward<Sleeper>(sleeper));
}

}  // namespace sluice::resilience
