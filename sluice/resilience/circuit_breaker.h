// CircuitBreaker: stops calling an upstream that is failing, then probes it to see when it
// has recovered.
//
//   closed     calls pass; outcomes go into a rolling window. The breaker opens when the
//              window holds at least `min_requests` outcomes and the failure rate reaches
//              `failure_rate_threshold`, or after `consecutive_failures` failures in a row.
//   open       calls are rejected for the open duration (`open_duration`, multiplied by
//              `open_duration_multiplier` on every further trip without a close in between,
//              capped at `max_open_duration`), then the breaker turns half-open.
//   half_open  at most `half_open_max_probes` calls (probes) run at a time; after
//              `half_open_successes_to_close` probe successes the breaker closes (with an
//              empty window), and one probe failure opens it again.
//
// The rolling window is a ring of `window_buckets` counters, each covering
// `window / window_buckets`; a bucket older than the window is cleared when its slot is
// reused, so the window spans between `window - window/window_buckets` and `window` of time.
// Transitions happen on calls (`allow`, the outcome records, `state`, `stats`): there is no
// timer thread. Time comes from the injected clock.
//
// Thread-safety: thread-safe; one `std::mutex` guards the state. Each call takes it twice
// (`allow`, then the record), uncontended about 2 x 20 ns plus a clock read; under contention
// it serialises callers (see docs/benchmarks.md (resilience)). A breaker per upstream keeps the
// contention per upstream.
// Ordering: `on_state_change` is called outside the lock, one call at a time, in transition
// order, possibly on another thread that is delivering earlier transitions; it may call the
// breaker and must not throw.
// Lifetime: a `Permit` must not outlive its breaker.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::resilience {

// The breaker's state.
enum class BreakerState : uint8_t {
  closed,     // calls pass; failures are counted
  open,       // calls are rejected until the open duration has passed
  half_open,  // a few probe calls pass to test recovery
};

// Why `allow` refused a call.
enum class RejectReason : uint8_t {
  open,              // the breaker is open
  probes_exhausted,  // half-open and `half_open_max_probes` probes are already running
};

// What ended a call admitted by the breaker.
enum class Outcome : uint8_t {
  success,  // the call worked; counts toward closing
  failure,  // the call failed in a way that says the upstream is unhealthy
};

[[nodiscard]] const char* to_string(BreakerState state) noexcept;
[[nodiscard]] const char* to_string(RejectReason reason) noexcept;

// One state change, as delivered to `on_state_change`.
struct BreakerTransition {
  BreakerState from;  // state before
  BreakerState to;    // state after
  TimePoint at;       // clock time of the change
};

struct BreakerOptions {
  // Length of the rolling window the failure rate is computed over. Positive.
  Duration window = std::chrono::seconds(10);
  // Buckets in the window; the window rolls one bucket at a time. In [1, 1000].
  uint32_t window_buckets = 10;
  // Outcomes the window must hold before the failure rate can open the breaker.
  uint32_t min_requests = 20;
  // Failure rate (failures / outcomes in the window) at or above which the breaker opens.
  // In (0, 1].
  double failure_rate_threshold = 0.5;
  // Failures in a row (while closed) that open the breaker; 0 disables the rule.
  uint32_t consecutive_failures = 5;
  // How long the breaker stays open after its first trip. Positive.
  Duration open_duration = std::chrono::seconds(5);
  // Growth of the open duration on each further trip without a close; 1 keeps it fixed.
  double open_duration_multiplier = 2.0;
  // Cap on the grown open duration. At least `open_duration`.
  Duration max_open_duration = std::chrono::seconds(60);
  // Probes allowed to run at the same time while half-open. At least 1.
  uint32_t half_open_max_probes = 1;
  // Probe successes that close the breaker. At least 1.
  uint32_t half_open_successes_to_close = 1;
  // Called on every state change (see Ordering above); may be empty.
  std::function<void(const BreakerTransition&)> on_state_change;

  // An error message naming the bad field, or nothing when the options are valid.
  [[nodiscard]] std::optional<std::string> validate() const;
};

class CircuitBreaker {
 public:
  // A snapshot read under the lock; counters are totals since construction.
  struct Stats {
    BreakerState state = BreakerState::closed;  // current state
    uint64_t calls_allowed = 0;                 // permits granted (probes included)
    uint64_t calls_rejected = 0;                // permits refused, all reasons
    uint64_t rejected_open = 0;                 // ... because the breaker was open
    uint64_t rejected_probes_exhausted = 0;     // ... because the probe cap was reached
    uint64_t successes = 0;                     // success outcomes recorded
    uint64_t failures = 0;                      // failure outcomes recorded
    uint64_t abandoned = 0;                     // permits dropped without an outcome
    uint64_t stale_outcomes = 0;                // outcomes of calls admitted in an earlier state
    uint64_t times_opened = 0;                  // transitions into open, all causes
    uint64_t opened_by_rate = 0;                // ... by the window failure rate
    uint64_t opened_by_consecutive = 0;         // ... by consecutive failures
    uint64_t opened_by_probe = 0;               // ... by a failed half-open probe
    uint64_t probes_in_flight = 0;              // probes running now (half-open only)
    uint64_t window_requests = 0;               // outcomes in the rolling window now
    double window_error_rate = 0.0;             // failures / outcomes in the window, 0 if none
    Duration current_open_duration{0};          // length of the current (or last) open
                                                // period; `open_duration` after a close
    TimePoint last_transition{};                // time of the last state change (construction
                                                // time if none)
  };

  // The right to make one call, or a refusal. Move-only. Record the outcome once with
  // `success()`/`failure()`/`record()`; a permit dropped without an outcome (a cancelled
  // call) frees its probe slot and counts as `abandoned`, not as a failure. An outcome of a
  // call admitted before the last state change is counted in Stats but moves no state.
  class [[nodiscard]] Permit {
   public:
    Permit(Permit&& other) noexcept;
    Permit& operator=(Permit&& other) noexcept;
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit();

    // True when the call may proceed.
    [[nodiscard]] bool allowed() const noexcept { return breaker_ != nullptr; }
    explicit operator bool() const noexcept { return allowed(); }
    // Why the call was refused; only valid when `!allowed()`.
    [[nodiscard]] RejectReason reason() const noexcept { return reason_; }
    // True when this call is a half-open probe.
    [[nodiscard]] bool is_probe() const noexcept { return probe_; }

    // Records the outcome; the permit becomes empty. Requires `allowed()`.
    void record(Outcome outcome);
    void success() { record(Outcome::success); }
    void failure() { record(Outcome::failure); }

   private:
    friend class CircuitBreaker;
    Permit(CircuitBreaker* breaker, uint64_t generation, bool probe) noexcept
        : breaker_(breaker), generation_(generation), probe_(probe) {}
    explicit Permit(RejectReason reason) noexcept : reason_(reason) {}
    void release() noexcept;

    CircuitBreaker* breaker_ = nullptr;
    uint64_t generation_ = 0;
    bool probe_ = false;
    RejectReason reason_ = RejectReason::open;
  };

  // Aborts (SLUICE_CHECK) on invalid options: call `options.validate()` first on user input.
  explicit CircuitBreaker(BreakerOptions options,
                          const base::Clock& clock = base::SteadyClock::instance());
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Asks to make a call. Turns open into half-open when the open duration has passed.
  [[nodiscard]] Permit allow();

  // Records an outcome observed without a permit (e.g. a passive health signal), as if from
  // a call admitted now: closed feeds the window, half-open counts toward closing or
  // reopens, open only counts it.
  void on_success() { record_now(Outcome::success); }
  void on_failure() { record_now(Outcome::failure); }

  // The current state (after any due open -> half-open change).
  [[nodiscard]] BreakerState state();
  [[nodiscard]] Stats stats();
  [[nodiscard]] const BreakerOptions& options() const noexcept { return options_; }

 private:
  struct Bucket {
    int64_t index = -1;  // absolute bucket number (time since origin / bucket width)
    uint32_t successes = 0;
    uint32_t failures = 0;
  };
  enum class TripCause : uint8_t { rate, consecutive, probe };

  // All private members below run with `mu_` held, except `deliver`.
  void refresh(TimePoint now);
  void transition(BreakerState to, TimePoint now);
  void trip(TripCause cause, TimePoint now);
  void record_locked(Outcome outcome, uint64_t generation, bool probe, TimePoint now);
  void record(Outcome outcome, uint64_t generation, bool probe);
  void record_now(Outcome outcome);
  void abandon(uint64_t generation, bool probe);
  Bucket& bucket_at(TimePoint now);
  void window_totals(TimePoint now, uint64_t& successes, uint64_t& failures) const;
  void clear_window();
  // Runs pending callbacks outside the lock; `lock` is held on entry and on return.
  void deliver(std::unique_lock<std::mutex>& lock);
  void notify(const BreakerTransition& transition) const noexcept;

  const BreakerOptions options_;
  const base::Clock& clock_;
  const TimePoint origin_;
  const Duration bucket_width_;

  std::mutex mu_;
  BreakerState state_ = BreakerState::closed;
  uint64_t generation_ = 0;  // bumped on every transition
  std::vector<Bucket> buckets_;
  uint32_t consecutive_failures_ = 0;
  uint32_t consecutive_trips_ = 0;  // trips since the last close
  Duration open_for_;
  TimePoint open_until_{};
  uint32_t probes_in_flight_ = 0;
  uint32_t probe_successes_ = 0;
  Stats counters_;  // the counter fields of Stats; the others are filled by stats()
  std::vector<BreakerTransition> pending_;
  bool delivering_ = false;
};

}  // namespace sluice::resilience
