// Clocks: the one source of "now" for everything in sluice that measures or expires time.
//
// Components take a `const Clock&` so that TTL, backoff and breaker tests advance a
// `ManualClock` instead of sleeping (the habit of Envoy's TimeSource). Production code uses
// `SteadyClock::instance()`.
//
// Thread-safety: both clocks are safe to read from any thread; `ManualClock::advance` and
// `set` may race with readers (readers see either the old or the new time).
// Cost: `SteadyClock::now()` is one virtual call plus `clock_gettime(CLOCK_MONOTONIC)` in
// the vDSO (about 20 ns); `ManualClock::now()` is one relaxed atomic load.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace sluice {

// Monotonic time; never goes backwards, unrelated to wall-clock time.
using TimePoint = std::chrono::steady_clock::time_point;
using Duration = std::chrono::nanoseconds;

}  // namespace sluice

namespace sluice::base {

// The interface every time-aware component is given.
class Clock {
 public:
  virtual ~Clock() = default;
  // The current monotonic time.
  [[nodiscard]] virtual TimePoint now() const noexcept = 0;
};

// The real monotonic clock. Stateless; use the shared instance.
class SteadyClock final : public Clock {
 public:
  [[nodiscard]] TimePoint now() const noexcept override { return std::chrono::steady_clock::now(); }
  // A process-wide instance, valid for the whole life of the program.
  static const SteadyClock& instance() noexcept;
};

// A clock that moves only when told to. Starts at an arbitrary fixed point (1000 s after the
// steady clock's epoch) so that `now() - some_duration` never underflows in tests.
class ManualClock final : public Clock {
 public:
  ManualClock() = default;
  explicit ManualClock(TimePoint start) : ns_(start.time_since_epoch().count()) {}

  [[nodiscard]] TimePoint now() const noexcept override {
    return TimePoint(Duration(ns_.load(std::memory_order_acquire)));
  }
  // Moves time forward by `d` (which may be zero; negative durations are ignored).
  void advance(Duration d) noexcept {
    if (d.count() > 0) ns_.fetch_add(d.count(), std::memory_order_acq_rel);
  }
  // Sets the time; callers must not move it backwards.
  void set(TimePoint t) noexcept {
    ns_.store(t.time_since_epoch().count(), std::memory_order_release);
  }

 private:
  std::atomic<int64_t> ns_{int64_t{1000} * 1000 * 1000 * 1000};
};

// Seconds as a double, for reports and JSON.
[[nodiscard]] inline double to_seconds(Duration d) noexcept {
  return std::chrono::duration<double>(d).count();
}

}  // namespace sluice::base
