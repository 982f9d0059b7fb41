#include "sluice/resilience/retry_policy.h"

#include <algorithm>
#include <boost/system/errc.hpp>
#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "sluice/base/check.h"

namespace sluice::resilience {

namespace {

constexpr int64_t kMaxRetryAfterSeconds = 1'000'000'000;

[[nodiscard]] Duration clamp_ns(double ns) noexcept {
  if (!(ns > 0.0)) return Duration::zero();
  // Keep clear of int64 overflow; any delay this long is capped by max_delay anyway.
  constexpr double kLimit = static_cast<double>(std::numeric_limits<int64_t>::max() / 2);
  return Duration(static_cast<int64_t>(std::min(ns, kLimit)));
}

[[nodiscard]] Duration uniform_between(base::RandomSource& random, Duration lo, Duration hi) {
  if (hi <= lo) return lo;
  return Duration(static_cast<int64_t>(
      random.uniform(static_cast<uint64_t>(lo.count()), static_cast<uint64_t>(hi.count()))));
}

}  // namespace

void throw_exception_from_error(const Failure& failure, const boost::source_location& location) {
  if (failure.error) {
    boost::throw_exception(boost::system::system_error(failure.error), location);
  }
  boost::throw_exception(
      std::runtime_error("attempt failed with status " + std::to_string(failure.status)), location);
}

bool is_retryable_status(int status) noexcept {
  return status == 429 || status == 502 || status == 503 || status == 504;
}

bool is_transient_error(const boost::system::error_code& error) noexcept {
  namespace errc = boost::system::errc;
  if (!error) return false;
  for (const auto transient :
       {errc::timed_out, errc::connection_refused, errc::connection_reset, errc::connection_aborted,
        errc::network_unreachable, errc::network_down, errc::network_reset, errc::host_unreachable,
        errc::broken_pipe, errc::resource_unavailable_try_again}) {
    if (error == transient) return true;
  }
  return false;
}

Retryability default_retry_classifier(const Failure& failure) noexcept {
  if (failure.status != 0) {
    return is_retryable_status(failure.status) ? Retryability::retryable
                                               : Retryability::not_retryable;
  }
  return is_transient_error(failure.error) ? Retryability::retryable : Retryability::not_retryable;
}

std::optional<Duration> parse_retry_after(std::string_view value) noexcept {
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_space(value.back())) value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  int64_t seconds = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    seconds = std::min(seconds * 10 + (c - '0'), kMaxRetryAfterSeconds);
  }
  return std::chrono::seconds(seconds);
}

std::optional<std::string> RetryOptions::validate() const {
  if (max_attempts < 1) return std::string("retry: max_attempts must be at least 1, found 0");
  if (base_delay <= Duration::zero()) {
    return "retry: base_delay must be positive, found " + std::to_string(base_delay.count()) +
           " ns";
  }
  if (max_delay < base_delay) {
    return "retry: max_delay (" + std::to_string(max_delay.count()) +
           " ns) must be at least base_delay (" + std::to_string(base_delay.count()) + " ns)";
  }
  if (!(multiplier >= 1.0) || !std::isfinite(multiplier)) {
    return "retry: multiplier must be a finite number >= 1, found " + std::to_string(multiplier);
  }
  if (timeout < Duration::zero()) return std::string("retry: timeout must not be negative");
  return std::nullopt;
}

RetryPolicy::RetryPolicy(RetryOptions options, const base::Clock& clock)
    : options_(std::move(options)), clock_(clock) {
  const auto error = options_.validate();
  SLUICE_CHECK(!error, error ? *error : "");
}

Duration RetryPolicy::exponential(uint32_t retry) const noexcept {
  const double base_ns = static_cast<double>(options_.base_delay.count());
  const double exp_ns =
      base_ns * std::pow(options_.multiplier, static_cast<double>(retry > 0 ? retry - 1 : 0));
  return std::min(clamp_ns(exp_ns), options_.max_delay);
}

Duration RetryPolicy::backoff(uint32_t retry, Duration previous,
                              base::RandomSource& random) const noexcept {
  switch (options_.jitter) {
    case JitterMode::none:
      return exponential(retry);
    case JitterMode::full:
      return uniform_between(random, Duration::zero(), exponential(retry));
    case JitterMode::equal: {
      const Duration exp = exponential(retry);
      const Duration half = exp / 2;
      return half + uniform_between(random, Duration::zero(), exp - half);
    }
    case JitterMode::decorrelated: {
      const Duration upper =
          std::max(options_.base_delay, clamp_ns(static_cast<double>(previous.count()) * 3.0));
      return std::min(options_.max_delay, uniform_between(random, options_.base_delay, upper));
    }
  }
  return exponential(retry);
}

Retryability RetryPolicy::classify(const Failure& failure) const {
  return options_.classifier ? options_.classifier(failure) : default_retry_classifier(failure);
}

void RetryPolicy::count_stop(StopReason reason) const noexcept {
  stopped_[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

RetryPolicy::Stats RetryPolicy::stats() const noexcept {
  const auto load = [](const std::atomic<uint64_t>& a) {
    return a.load(std::memory_order_relaxed);
  };
  Stats s;
  s.requests = load(requests_);
  s.attempts = load(attempts_);
  s.retries = load(retries_);
  s.successes = load(successes_);
  s.successes_after_retry = load(successes_after_retry_);
  s.stopped_max_attempts = load(stopped_[static_cast<size_t>(StopReason::max_attempts)]);
  s.stopped_deadline = load(stopped_[static_cast<size_t>(StopReason::deadline)]);
  s.stopped_budget = load(stopped_[static_cast<size_t>(StopReason::budget)]);
  s.stopped_not_retryable = load(stopped_[static_cast<size_t>(StopReason::not_retryable)]);
  return s;
}

RetryState::RetryState(const RetryPolicy& policy, base::RandomSource& random, TimePoint deadline)
    : policy_(policy), random_(random), deadline_(deadline), previous_delay_(0) {
  const RetryOptions& options = policy_.options();
  previous_delay_ = options.base_delay;
  if (options.timeout > Duration::zero()) {
    const TimePoint now = policy_.clock().now();
    if (now < TimePoint::max() - options.timeout) {
      deadline_ = std::min(deadline_, now + options.timeout);
    }
  }
  policy_.requests_.fetch_add(1, std::memory_order_relaxed);
  if (options.budget) {
    options.budget->request_started();
    active_ = true;
  }
}

RetryState::~RetryState() { finish(); }

void RetryState::release_slot() noexcept {
  if (holds_slot_) {
    holds_slot_ = false;
    policy_.options().budget->release_retry();
  }
}

void RetryState::finish() noexcept {
  release_slot();
  if (active_) {
    active_ = false;
    policy_.options().budget->request_finished();
  }
  phase_ = Phase::done;
}

RetryDecision RetryState::stop(StopReason reason) {
  stop_reason_ = reason;
  policy_.count_stop(reason);
  finish();
  return RetryDecision::stop(reason);
}

bool RetryState::start_attempt() {
  SLUICE_CHECK(phase_ == Phase::ready || phase_ == Phase::waiting,
               "RetryState::start_attempt after the request ended or during an attempt");
  if (policy_.clock().now() >= deadline_) {
    (void)stop(StopReason::deadline);
    return false;
  }
  ++attempts_;
  policy_.attempts_.fetch_add(1, std::memory_order_relaxed);
  phase_ = Phase::in_attempt;
  return true;
}

RetryDecision RetryState::next_delay(const Failure& failure) {
  SLUICE_CHECK(phase_ == Phase::in_attempt, "RetryState::next_delay without a started attempt");
  // The attempt that held the budget slot (if any) has completed.
  release_slot();
  if (policy_.classify(failure) == Retryability::not_retryable) {
    return stop(StopReason::not_retryable);
  }
  const RetryOptions& options = policy_.options();
  if (attempts_ >= options.max_attempts) return stop(StopReason::max_attempts);

  Duration delay = failure.retry_after
                       ? std::clamp(*failure.retry_after, Duration::zero(), options.max_delay)
                       : policy_.backoff(attempts_, previous_delay_, random_);
  if (deadline_ != TimePoint::max()) {
    const TimePoint now = policy_.clock().now();
    if (deadline_ - now <= delay) return stop(StopReason::deadline);
  }
  if (options.budget) {
    if (!options.budget->try_acquire_retry()) return stop(StopReason::budget);
    holds_slot_ = true;
  }
  previous_delay_ = delay;
  policy_.retries_.fetch_add(1, std::memory_order_relaxed);
  phase_ = Phase::waiting;
  return RetryDecision::retry_after(delay);
}

void RetryState::on_success() {
  SLUICE_CHECK(phase_ == Phase::in_attempt, "RetryState::on_success without a started attempt");
  policy_.successes_.fetch_add(1, std::memory_order_relaxed);
  if (attempts_ > 1) policy_.successes_after_retry_.fetch_add(1, std::memory_order_relaxed);
  finish();
}

}  // namespace sluice::resilience
