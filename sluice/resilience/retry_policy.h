// RetryPolicy and RetryState: when to retry a failed call, and how long to wait first.
//
// `RetryPolicy` is the long-lived, shared part (one per upstream or route): the options,
// the classifier, an optional shared `RetryBudget`, the clock and the counters.
// `RetryState` is the per-request part: it counts attempts, keeps the previous delay (for
// decorrelated jitter), holds the request's deadline and its retry-budget slot, and answers
// `next_delay(failure)` with either a delay or a reason to stop. Nothing here sleeps or
// schedules: the caller waits (a thread sleep, an Asio timer, a coroutine), so the same policy
// serves threads and coroutines. `retry_call.h` and `async_retry.h` are ready-made loops.
//
// Delays follow the AWS Architecture Blog post "Exponential Backoff And Jitter" (2015):
// with exp(n) = min(max_delay, base_delay * multiplier^(n-1)) for the n-th retry,
//   none          delay = exp(n)
//   full          delay = uniform[0, exp(n)]
//   equal         delay = exp(n)/2 + uniform[0, exp(n)/2]
//   decorrelated  delay = min(max_delay, uniform[base_delay, 3 * previous delay]), previous
//                 starting at base_delay (the post's factor 3; `multiplier` is not used).
// A server hint (`Failure::retry_after`) on a retryable failure replaces the computed delay,
// capped at `max_delay`.
//
// Thread-safety: `RetryPolicy` is thread-safe (immutable options, relaxed atomic counters, a
// thread-safe budget). `RetryState` is NOT thread-safe: one request, one state, used by one
// thread or coroutine at a time.
// Cost: `next_delay` is a few ns of arithmetic, one clock read, one random draw and, with a
// budget, one CAS; the classifier is a `std::function` call.
// Lifetime: the policy (and its clock) must outlive every `RetryState` made from it.
#pragma once

#include <atomic>
#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/base/check.h"
#include "sluice/base/clock.h"
#include "sluice/base/random.h"
#include "sluice/resilience/retry_budget.h"

namespace sluice::resilience {

// How the computed exponential delay is randomised (AWS Architecture Blog definitions).
enum class JitterMode : uint8_t {
  none,          // exactly exp(n): synchronised clients retry in lock-step
  full,          // uniform in [0, exp(n)]: the least total work in AWS's simulation
  equal,         // half of exp(n) plus uniform in [0, exp(n)/2]: never shorter than half
  decorrelated,  // uniform in [base, 3 * previous delay], capped: grows from the last delay
};

// Why a request stops retrying.
enum class StopReason : uint8_t {
  max_attempts,   // `max_attempts` attempts were made
  deadline,       // the next attempt would start at or after the request's deadline
  budget,         // the shared retry budget had no slot
  not_retryable,  // the classifier said the failure is permanent
};

// Whether a failure is worth another attempt.
enum class Retryability : uint8_t {
  retryable,      // transient: try again after a delay
  not_retryable,  // permanent: stop now
};

// What a failed attempt reports. Any combination of fields may be set.
struct Failure {
  boost::system::error_code error;      // transport or local error, if any
  int status = 0;                       // HTTP-like status, 0 when there is none
  std::optional<Duration> retry_after;  // server-provided delay (Retry-After), if any
};

// Lets `boost::system::result<T, Failure>::value()` throw (a `system_error` for `error`, or
// a `std::runtime_error` naming the status).
[[noreturn]] void throw_exception_from_error(const Failure& failure,
                                             const boost::source_location& location);

// The result type attempts may return to report status codes and hints, not only errors.
template <class T>
using AttemptResult = boost::system::result<T, Failure>;

// Decides whether a failure is retryable. Must be thread-safe (it is shared by requests).
using RetryClassifier = std::function<Retryability(const Failure&)>;

// True for 429 (Too Many Requests), 502, 503 and 504: statuses that say "try again later".
[[nodiscard]] bool is_retryable_status(int status) noexcept;
// True for errors that usually pass: timeouts, refused/reset/aborted connections,
// unreachable networks or hosts, broken pipes, EAGAIN.
[[nodiscard]] bool is_transient_error(const boost::system::error_code& error) noexcept;
// The default classifier: a failure with a status is retryable iff `is_retryable_status`;
// otherwise one with an error iff `is_transient_error`; a failure with neither is not
// retryable (retrying needs evidence that the failure passes).
[[nodiscard]] Retryability default_retry_classifier(const Failure& failure) noexcept;
// Parses the delta-seconds form of an HTTP `Retry-After` value ("120"). The HTTP-date form
// needs the wall clock and is left to the caller: it returns nothing, as does any other text.
// Values above 10^9 s are clamped.
[[nodiscard]] std::optional<Duration> parse_retry_after(std::string_view value) noexcept;

struct RetryOptions {
  // Total attempts per request, the first included (1 disables retries). At least 1.
  uint32_t max_attempts = 3;
  // Delay before the first retry (and the lower bound of decorrelated jitter). Positive.
  Duration base_delay = std::chrono::milliseconds(100);
  // Cap on every delay, including server hints. At least `base_delay`.
  Duration max_delay = std::chrono::seconds(10);
  // Growth factor of the exponential delay per retry. At least 1.
  double multiplier = 2.0;
  // How delays are randomised; full jitter is AWS's recommendation.
  JitterMode jitter = JitterMode::full;
  // Overall deadline of a request, counted from its `RetryState`'s construction; zero means
  // none. No attempt starts, and no delay is handed out that would end, at or past it.
  Duration timeout = Duration::zero();
  // Shared cap on concurrent retries across requests; null means unlimited.
  std::shared_ptr<RetryBudget> budget;
  // Retryable or not; empty means `default_retry_classifier`.
  RetryClassifier classifier;

  // An error message naming the bad field, or nothing when the options are valid.
  [[nodiscard]] std::optional<std::string> validate() const;
};

class RetryState;

class RetryPolicy {
 public:
  // A snapshot; counters are totals since construction.
  struct Stats {
    uint64_t requests = 0;               // RetryStates created
    uint64_t attempts = 0;               // attempts started (first attempts and retries)
    uint64_t retries = 0;                // retries granted (delays handed out)
    uint64_t successes = 0;              // requests that ended in success
    uint64_t successes_after_retry = 0;  // ... of which needed at least one retry
    uint64_t stopped_max_attempts = 0;   // requests stopped by `max_attempts`
    uint64_t stopped_deadline = 0;       // requests stopped by the deadline
    uint64_t stopped_budget = 0;         // requests stopped by the retry budget
    uint64_t stopped_not_retryable = 0;  // requests stopped by the classifier
  };

  // Aborts (SLUICE_CHECK) on invalid options: call `options.validate()` first on user input.
  explicit RetryPolicy(RetryOptions options,
                       const base::Clock& clock = base::SteadyClock::instance());
  RetryPolicy(const RetryPolicy&) = delete;
  RetryPolicy& operator=(const RetryPolicy&) = delete;

  // The delay before retry number `retry` (1 = the first retry) by the jitter mode, with
  // `previous` the delay before the previous retry (`base_delay` for the first). Pure apart
  // from the random draw; no stop conditions, no hints.
  [[nodiscard]] Duration backoff(uint32_t retry, Duration previous,
                                 base::RandomSource& random) const noexcept;
  // The un-jittered exponential delay exp(retry), capped at `max_delay`.
  [[nodiscard]] Duration exponential(uint32_t retry) const noexcept;
  // Runs the configured classifier.
  [[nodiscard]] Retryability classify(const Failure& failure) const;

  [[nodiscard]] const RetryOptions& options() const noexcept { return options_; }
  [[nodiscard]] const base::Clock& clock() const noexcept { return clock_; }
  [[nodiscard]] Stats stats() const noexcept;

 private:
  friend class RetryState;
  void count_stop(StopReason reason) const noexcept;

  const RetryOptions options_;
  const base::Clock& clock_;
  mutable std::atomic<uint64_t> requests_{0};
  mutable std::atomic<uint64_t> attempts_{0};
  mutable std::atomic<uint64_t> retries_{0};
  mutable std::atomic<uint64_t> successes_{0};
  mutable std::atomic<uint64_t> successes_after_retry_{0};
  mutable std::atomic<uint64_t> stopped_[4]{};
};

// The answer of `RetryState::next_delay`: wait `delay()` and try again, or stop.
class RetryDecision {
 public:
  [[nodiscard]] static RetryDecision retry_after(Duration delay) noexcept {
    return RetryDecision(delay, std::nullopt);
  }
  [[nodiscard]] static RetryDecision stop(StopReason reason) noexcept {
    return RetryDecision(Duration::zero(), reason);
  }
  // True when the caller should wait `delay()` and start another attempt.
  [[nodiscard]] bool should_retry() const noexcept { return !reason_.has_value(); }
  // The wait before the next attempt; zero when stopping.
  [[nodiscard]] Duration delay() const noexcept { return delay_; }
  // Why to stop; calling it when `should_retry()` is a bug (SLUICE_CHECK).
  [[nodiscard]] StopReason stop_reason() const noexcept {
    SLUICE_CHECK(reason_.has_value(), "RetryDecision::stop_reason on a retry decision");
    return *reason_;
  }

 private:
  RetryDecision(Duration delay, std::optional<StopReason> reason)
      : delay_(delay), reason_(reason) {}
  Duration delay_;
  std::optional<StopReason> reason_;
};

// One request's retry bookkeeping. Use it as
//   for (RetryState s(policy, rng); s.start_attempt();) {
//     auto r = call(); if (r) { s.on_success(); break; }
//     auto d = s.next_delay(failure_of(r)); if (!d.should_retry()) break; sleep(d.delay());
//   }
// Calling the members out of this order is a bug (SLUICE_CHECK).
class RetryState {
 public:
  // Starts a request: counts it as active in the policy's budget. The deadline is the
  // earlier of `deadline` and now + `options.timeout` (when set). `random` must outlive the
  // state and not be used concurrently elsewhere.
  explicit RetryState(const RetryPolicy& policy,
                      base::RandomSource& random = base::thread_local_random(),
                      TimePoint deadline = TimePoint::max());
  ~RetryState();
  RetryState(const RetryState&) = delete;
  RetryState& operator=(const RetryState&) = delete;

  // Call before every attempt. False when the deadline has passed: the request stops with
  // `StopReason::deadline` and no attempt may start.
  [[nodiscard]] bool start_attempt();
  // Call after a failed attempt: classifies it and returns the delay before the next attempt
  // or why to stop. A granted retry holds a budget slot until the next attempt completes.
  [[nodiscard]] RetryDecision next_delay(const Failure& failure);
  // Call after a successful attempt; ends the request.
  void on_success();

  // Attempts started so far.
  [[nodiscard]] uint32_t attempts() const noexcept { return attempts_; }
  // Why the request stopped retrying, if it did.
  [[nodiscard]] std::optional<StopReason> stop_reason() const noexcept { return stop_reason_; }
  // The effective deadline (`TimePoint::max()` when none).
  [[nodiscard]] TimePoint deadline() const noexcept { return deadline_; }
  [[nodiscard]] const RetryPolicy& policy() const noexcept { return policy_; }

 private:
  enum class Phase : uint8_t { ready, in_attempt, waiting, done };

  RetryDecision stop(StopReason reason);
  void release_slot() noexcept;
  void finish() noexcept;

  const RetryPolicy& policy_;
  base::RandomSource& random_;
  TimePoint deadline_;
  Duration previous_delay_;
  uint32_t attempts_ = 0;
  Phase phase_ = Phase::ready;
  bool holds_slot_ = false;
  bool active_ = false;
  std::optional<StopReason> stop_reason_;
};

}  // namespace sluice::resilience
