#include "sluice/flow/adaptive_limiter.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "sluice/base/check.h"

namespace sluice::flow {

// ---------------------------------------------------------------------------------------------
// Policies

AimdPolicy::AimdPolicy(Options options) : options_(options) {
  SLUICE_CHECK(options.backoff_ratio > 0 && options.backoff_ratio < 1,
               "AimdPolicy backoff_ratio must be in (0, 1)");
  SLUICE_CHECK(options.increase >= 0, "AimdPolicy increase must be >= 0");
  SLUICE_CHECK(options.utilization_to_grow >= 0 && options.utilization_to_grow <= 1,
               "AimdPolicy utilization_to_grow must be in [0, 1]");
}

double AimdPolicy::update(double limit, const Sample& sample) {
  const bool overload = sample.outcome != Outcome::success || sample.latency > options_.timeout;
  if (overload) {
    return sample.admitted_before_last_decrease ? limit : limit * options_.backoff_ratio;
  }
  if (static_cast<double>(sample.in_flight) >= limit * options_.utilization_to_grow) {
    return limit + options_.increase;
  }
  return limit;
}

GradientPolicy::GradientPolicy(Options options) : options_(options) {
  SLUICE_CHECK(options.smoothing > 0 && options.smoothing <= 1,
               "GradientPolicy smoothing must be in (0, 1]");
  SLUICE_CHECK(options.rtt_tolerance >= 1, "GradientPolicy rtt_tolerance must be >= 1");
  SLUICE_CHECK(options.long_window >= 1, "GradientPolicy long_window must be >= 1");
  SLUICE_CHECK(options.warmup_samples >= 1, "GradientPolicy warmup_samples must be >= 1");
  SLUICE_CHECK(options.queue_size >= 0, "GradientPolicy queue_size must be >= 0");
  SLUICE_CHECK(options.drop_backoff > 0 && options.drop_backoff <= 1,
               "GradientPolicy drop_backoff must be in (0, 1]");
}

double GradientPolicy::update(double limit, const Sample& sample) {
  if (sample.outcome == Outcome::dropped) {
    return sample.admitted_before_last_decrease ? limit : limit * options_.drop_backoff;
  }
  if (sample.outcome == Outcome::error) return limit;  // no latency information
  // A zero latency (a clock that did not move) would divide by zero; one nanosecond is the
  // finest the clocks resolve anyway.
  const double rtt = std::max(base::to_seconds(sample.latency), 1e-9);

  // Long-term average: plain mean during warm-up, then exponential over `long_window`.
  ++samples_;
  if (samples_ <= options_.warmup_samples) {
    long_rtt_ += (rtt - long_rtt_) / static_cast<double>(samples_);
  } else {
    const double factor = 2.0 / (static_cast<double>(options_.long_window) + 1.0);
    long_rtt_ = long_rtt_ * (1 - factor) + rtt * factor;
  }
  // When latency has come back down after a long overload, the average is far above the
  // samples: let it decay faster so the limit is not held high by stale history.
  if (long_rtt_ / rtt > 2.0) long_rtt_ *= 0.95;

  // Application-limited (far below the limit): the samples say nothing about the limit.
  if (static_cast<double>(sample.in_flight) < limit / 2) return limit;

  const double gradient = std::clamp(options_.rtt_tolerance * long_rtt_ / rtt, 0.5, 1.0);
  const double target = limit * gradient + options_.queue_size;
  return limit * (1 - options_.smoothing) + target * options_.smoothing;
}

// ---------------------------------------------------------------------------------------------
// LimiterToken

LimiterToken& LimiterToken::operator=(LimiterToken&& other) noexcept {
  if (this != &other) {
    on_ignore();
    limiter_ = std::exchange(other.limiter_, nullptr);
    start_ = other.start_;
    in_flight_ = other.in_flight_;
    epoch_ = other.epoch_;
  }
  return *this;
}

void LimiterToken::on_success() {
  SLUICE_CHECK(limiter_ != nullptr, "LimiterToken completed twice or empty");
  finish(Outcome::success, limiter_->clock_.now() - start_);
}

void LimiterToken::on_success(Duration latency) { finish(Outcome::success, latency); }

void LimiterToken::on_dropped() {
  SLUICE_CHECK(limiter_ != nullptr, "LimiterToken completed twice or empty");
  finish(Outcome::dropped, limiter_->clock_.now() - start_);
}

void LimiterToken::on_error() {
  SLUICE_CHECK(limiter_ != nullptr, "LimiterToken completed twice or empty");
  finish(Outcome::error, limiter_->clock_.now() - start_);
}

void LimiterToken::on_ignore() noexcept {
  if (limiter_ == nullptr) return;
  std::exchange(limiter_, nullptr)->release_only();
}

void LimiterToken::finish(Outcome outcome, Duration latency) {
  SLUICE_CHECK(limiter_ != nullptr, "LimiterToken completed twice or empty");
  std::exchange(limiter_, nullptr)->complete(Sample{latency, in_flight_, outcome, false}, epoch_);
}

// ---------------------------------------------------------------------------------------------
// AdaptiveLimiter

AdaptiveLimiter::AdaptiveLimiter(std::unique_ptr<LimitPolicy> policy, Options options,
                                 const base::Clock& clock)
    : policy_(std::move(policy)), options_(std::move(options)), clock_(clock) {
  SLUICE_CHECK(policy_ != nullptr, "AdaptiveLimiter needs a policy");
  SLUICE_CHECK(options_.min_limit >= 1, "AdaptiveLimiter min_limit must be >= 1");
  SLUICE_CHECK(options_.max_limit >= options_.min_limit,
               "AdaptiveLimiter max_limit must be >= min_limit");
  const uint32_t initial =
      std::clamp(options_.initial_limit, options_.min_limit, options_.max_limit);
  limit_.store(initial, std::memory_order_relaxed);
  estimated_ = initial;
}

boost::system::result<LimiterToken> AdaptiveLimiter::try_acquire() noexcept {
  uint32_t current = in_flight_.load(std::memory_order_relaxed);
  do {
    if (current >= limit_.load(std::memory_order_relaxed)) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return make_error_code(Errc::over_limit);
    }
  } while (!in_flight_.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
  acquired_.fetch_add(1, std::memory_order_relaxed);
  return LimiterToken(this, clock_.now(), current + 1,
                      decrease_epoch_.load(std::memory_order_relaxed));
}

void AdaptiveLimiter::release_only() noexcept {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  ignored_.fetch_add(1, std::memory_order_relaxed);
}

void AdaptiveLimiter::complete(Sample sample, uint64_t epoch) noexcept {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  sample.admitted_before_last_decrease = epoch < decrease_epoch_.load(std::memory_order_relaxed);
  switch (sample.outcome) {
    case Outcome::success:
      ++successes_;
      last_rtt_ = sample.latency;
      if (min_rtt_.count() == 0 || sample.latency < min_rtt_) min_rtt_ = sample.latency;
      break;
    case Outcome::dropped:
      ++dropped_;
      break;
    case Outcome::error:
      ++errors_;
      break;
  }
  const double next = policy_->update(estimated_, sample);
  // A NaN from a policy would poison the limit for good: keep the old estimate instead.
  if (std::isnan(next)) return;
  if (next < estimated_) decrease_epoch_.fetch_add(1, std::memory_order_relaxed);
  estimated_ = std::clamp(next, static_cast<double>(options_.min_limit),
                          static_cast<double>(options_.max_limit));
  const auto new_limit = static_cast<uint32_t>(estimated_);
  const uint32_t old_limit = limit_.load(std::memory_order_relaxed);
  if (new_limit == old_limit) return;
  limit_.store(new_limit, std::memory_order_relaxed);
  if (new_limit > old_limit) {
    ++increases_;
  } else {
    ++decreases_;
  }
  if (options_.on_limit_change) options_.on_limit_change(old_limit, new_limit);
}

AdaptiveLimiter::Stats AdaptiveLimiter::stats() const {
  Stats s;
  s.policy = policy_->name();
  s.limit = limit();
  s.in_flight = in_flight();
  s.acquired_total = acquired_.load(std::memory_order_relaxed);
  s.rejected_total = rejected_.load(std::memory_order_relaxed);
  s.ignored_total = ignored_.load(std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  s.estimated_limit = estimated_;
  s.successes_total = successes_;
  s.dropped_total = dropped_;
  s.errors_total = errors_;
  s.limit_increases_total = increases_;
  s.limit_decreases_total = decreases_;
  s.min_rtt = min_rtt_;
  s.last_rtt = last_rtt_;
  return s;
}

}  // namespace sluice::flow
