// Adaptive concurrency limiting, in the manner of Netflix concurrency-limits and Envoy's
// adaptive concurrency filter: `AdaptiveLimiter` admits a request only while fewer than
// `limit()` are in flight, and moves that limit from what completed requests report (latency,
// drops, errors) through a pluggable `LimitPolicy`:
//
//  - `AimdPolicy`: additive increase on success while the limit is being used, multiplicative
//    decrease on a drop, an error or a success slower than `timeout` (TCP-like: once per
//    congestion event; requests admitted before the last decrease do not decrease it again).
//  - `GradientPolicy`: Gradient2. Compares each sample's latency with a long-term average
//    latency; when samples get slower than `rtt_tolerance` times the average the limit shrinks
//    (by at most half per step), otherwise it grows by `queue_size`, all smoothed.
//
// Thread-safety: `AdaptiveLimiter` is thread-safe; `try_acquire` is lock-free (one CAS), the
// completion of a token takes a mutex to run the policy. Policies are called under that mutex,
// one sample at a time, so they need no locking of their own.
// Cost: acquire ~ a clock read and a CAS; completion ~ a mutex and a few float operations.
// Lifetime: tokens must be completed or destroyed before the limiter; the clock must outlive it.
// Ordering: the limit moves only when a token completes; `limit()` is read without the lock.
#pragma once

#include <atomic>
#include <boost/system/result.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>

#include "sluice/base/clock.h"
#include "sluice/flow/error.h"

namespace sluice::flow {

// How a request that held a token ended.
enum class Outcome {
  // Completed normally; its latency is a valid sample.
  success,
  // Dropped, timed out or refused by an overloaded upstream: a strong overload signal.
  dropped,
  // Failed for another reason (5xx, reset): AIMD backs off, Gradient ignores the latency.
  error,
};

// What a policy learns from one completed request.
struct Sample {
  // Time from acquire to completion (as measured or as reported by the caller).
  Duration latency{0};
  // Requests in flight when this one was admitted (itself included).
  uint32_t in_flight = 0;
  // How it ended.
  Outcome outcome = Outcome::success;
  // Admitted before the limiter's last decrease: the overload it reports has already been
  // answered, so backoff policies do not decrease again for it (one multiplicative decrease
  // per congestion event, as TCP backs off once per window, not once per lost packet).
  bool admitted_before_last_decrease = false;
};

// The algorithm that moves the limit. Called under the limiter's lock, never concurrently.
class LimitPolicy {
 public:
  virtual ~LimitPolicy() = default;
  // A short name for reports ("aimd", "gradient").
  [[nodiscard]] virtual std::string_view name() const noexcept = 0;
  // Returns the new limit estimate given the current one; the limiter clamps it to its bounds.
  [[nodiscard]] virtual double update(double limit, const Sample& sample) = 0;
};

// Additive increase, multiplicative decrease.
class AimdPolicy final : public LimitPolicy {
 public:
  struct Options {
    // Multiplier applied on a drop, an error or a timeout; in (0, 1).
    double backoff_ratio = 0.9;
    // Added to the limit per successful sample when the limit is being used.
    double increase = 1.0;
    // A success slower than this counts as a drop.
    Duration timeout = std::chrono::seconds(5);
    // Grow only when the sample's in_flight >= limit * this (otherwise the caller, not the
    // limit, is what holds concurrency down, and growing would overshoot); in [0, 1].
    double utilization_to_grow = 0.5;
  };

  AimdPolicy() : AimdPolicy(Options{}) {}
  explicit AimdPolicy(Options options);
  [[nodiscard]] std::string_view name() const noexcept override { return "aimd"; }
  [[nodiscard]] double update(double limit, const Sample& sample) override;

 private:
  Options options_;
};

// Gradient2: limit' = limit * (1 - s) + s * (limit * gradient + queue_size), where
// gradient = clamp(rtt_tolerance * long_rtt / sample_rtt, 0.5, 1) and s is `smoothing`.
class GradientPolicy final : public LimitPolicy {
 public:
  struct Options {
    // Weight of each new estimate, in (0, 1]; smaller is steadier and slower.
    double smoothing = 0.2;
    // How much slower than the long-term average a sample may be before the limit shrinks (>= 1).
    double rtt_tolerance = 1.5;
    // Window (in samples) of the exponential long-term average latency (>= 1).
    uint32_t long_window = 600;
    // Samples averaged plainly before the exponential average starts (>= 1).
    uint32_t warmup_samples = 10;
    // Headroom added each step: the queue allowed beyond what the gradient suggests.
    double queue_size = 4.0;
    // Multiplier applied on a dropped request (Gradient2 itself only sees latency); in (0, 1].
    double drop_backoff = 0.9;
  };

  GradientPolicy() : GradientPolicy(Options{}) {}
  explicit GradientPolicy(Options options);
  [[nodiscard]] std::string_view name() const noexcept override { return "gradient"; }
  [[nodiscard]] double update(double limit, const Sample& sample) override;
  // The long-term average latency in seconds (0 before the first sample).
  [[nodiscard]] double long_rtt_seconds() const noexcept { return long_rtt_; }

 private:
  Options options_;
  double long_rtt_ = 0;  // seconds
  uint64_t samples_ = 0;
};

class AdaptiveLimiter;

// The right to run one request, from `AdaptiveLimiter::try_acquire`. Move-only. Report how
// the request ended with exactly one of `on_success`, `on_dropped`, `on_error`, or
// `on_ignore`; destroying an unreported token is `on_ignore` (released, no sample).
class [[nodiscard]] LimiterToken {
 public:
  LimiterToken() = default;
  LimiterToken(LimiterToken&& other) noexcept { *this = std::move(other); }
  LimiterToken& operator=(LimiterToken&& other) noexcept;
  LimiterToken(const LimiterToken&) = delete;
  LimiterToken& operator=(const LimiterToken&) = delete;
  ~LimiterToken() { on_ignore(); }

  // Success; latency measured with the limiter's clock since acquire.
  void on_success();
  // Success with a latency measured by the caller.
  void on_success(Duration latency);
  // Dropped or timed out: decreases the limit.
  void on_dropped();
  // Failed: AIMD decreases, Gradient ignores.
  void on_error();
  // Released without a sample (e.g. the client went away). No-op on an empty token.
  void on_ignore() noexcept;
  // True until one of the above has been called.
  [[nodiscard]] bool active() const noexcept { return limiter_ != nullptr; }

 private:
  friend class AdaptiveLimiter;
  LimiterToken(AdaptiveLimiter* limiter, TimePoint start, uint32_t in_flight, uint64_t epoch)
      : limiter_(limiter), start_(start), in_flight_(in_flight), epoch_(epoch) {}
  void finish(Outcome outcome, Duration latency);

  AdaptiveLimiter* limiter_ = nullptr;
  TimePoint start_{};
  uint32_t in_flight_ = 0;
  uint64_t epoch_ = 0;  // the limiter's decrease count when this token was acquired
};

class AdaptiveLimiter {
 public:
  struct Options {
    // Limit before any sample; clamped to [min_limit, max_limit].
    uint32_t initial_limit = 20;
    // The limit never goes below this (>= 1).
    uint32_t min_limit = 1;
    // The limit never goes above this (>= min_limit).
    uint32_t max_limit = 1000;
    // Called with (old, new) each time the integer limit changes, under the limiter's lock
    // (so calls arrive in order): keep it short and do not call back into the limiter. The
    // gateway uses it to resize an `AsyncSemaphore`. Optional.
    std::function<void(uint32_t old_limit, uint32_t new_limit)> on_limit_change = nullptr;
  };

  struct Stats {
    std::string_view policy;             // policy name
    uint32_t limit = 0;                  // current limit
    double estimated_limit = 0;          // the policy's real-valued estimate behind `limit`
    uint32_t in_flight = 0;              // tokens held now
    uint64_t acquired_total = 0;         // tokens handed out
    uint64_t rejected_total = 0;         // try_acquire refused with Errc::over_limit
    uint64_t successes_total = 0;        // tokens completed with on_success
    uint64_t dropped_total = 0;          // tokens completed with on_dropped
    uint64_t errors_total = 0;           // tokens completed with on_error
    uint64_t ignored_total = 0;          // tokens released without a sample
    uint64_t limit_increases_total = 0;  // changes of the integer limit upwards
    uint64_t limit_decreases_total = 0;  // and downwards
    Duration min_rtt{0};                 // smallest success latency seen (0 before any)
    Duration last_rtt{0};                // latency of the last success
  };

  AdaptiveLimiter(std::unique_ptr<LimitPolicy> policy, Options options, const base::Clock& clock);
  AdaptiveLimiter(const AdaptiveLimiter&) = delete;
  AdaptiveLimiter& operator=(const AdaptiveLimiter&) = delete;

  // A token if fewer than `limit()` requests are in flight, else `Errc::over_limit` (the
  // caller sheds the request: 503 or 429 with Retry-After).
  [[nodiscard]] boost::system::result<LimiterToken> try_acquire() noexcept;

  [[nodiscard]] uint32_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }
  [[nodiscard]] uint32_t in_flight() const noexcept {
    return in_flight_.load(std::memory_order_relaxed);
  }
  [[nodiscard]] Stats stats() const;

 private:
  friend class LimiterToken;
  void complete(Sample sample, uint64_t epoch) noexcept;
  void release_only() noexcept;

  std::unique_ptr<LimitPolicy> policy_;
  Options options_;
  const base::Clock& clock_;
  alignas(64) std::atomic<uint32_t> in_flight_{0};
  std::atomic<uint32_t> limit_;
  std::atomic<uint64_t> acquired_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> decrease_epoch_{0};  // bumped (under mu_) each time the estimate falls
  alignas(64) mutable std::mutex mu_;
  double estimated_;  // guarded by mu_
  uint64_t successes_ = 0;
  uint64_t dropped_ = 0;
  uint64_t errors_ = 0;
  std::atomic<uint64_t> ignored_{0};
  uint64_t increases_ = 0;
  uint64_t decreases_ = 0;
  Duration min_rtt_{0};
  Duration last_rtt_{0};
};

}  // namespace sluice::flow
