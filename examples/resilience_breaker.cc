// A circuit breaker in front of a dependency that fails for a while and then recovers,
// driven by a ManualClock (one call every 100 ms of fake time); prints every transition.
#include <chrono>
#include <cstdio>

#include "sluice/base/clock.h"
#include "sluice/base/units.h"
#include "sluice/resilience/circuit_breaker.h"

namespace res = sluice::resilience;
using std::chrono::milliseconds;
using std::chrono::seconds;

int main() {
  sluice::base::ManualClock clock;
  const sluice::TimePoint t0 = clock.now();
  int transitions = 0;
  res::BreakerOptions options;
  options.window = seconds(10);
  options.min_requests = 10;
  options.failure_rate_threshold = 0.5;
  options.consecutive_failures = 5;
  options.open_duration = seconds(1);
  options.open_duration_multiplier = 2.0;
  options.max_open_duration = seconds(8);
  options.half_open_max_probes = 1;
  options.half_open_successes_to_close = 2;
  options.on_state_change = [&](const res::BreakerTransition& t) {
    ++transitions;
    std::printf("  t=%-8s %s -> %s\n", sluice::base::format_duration(t.at - t0).c_str(),
                res::to_string(t.from), res::to_string(t.to));
  };
  res::CircuitBreaker breaker(options, clock);

  // The dependency is down from t=1 s to t=5 s.
  const auto healthy = [&] {
    const auto at = clock.now() - t0;
    return at < seconds(1) || at >= seconds(5);
  };
  int upstream_calls = 0;
  int failed_calls = 0;
  for (int tick = 0; tick < 100; ++tick) {  // 10 s
    auto permit = breaker.allow();
    if (permit) {
      ++upstream_calls;
      if (healthy()) {
        permit.success();
      } else {
        ++failed_calls;
        permit.failure();
      }
    }
    clock.advance(milliseconds(100));
  }
  const auto s = breaker.stats();
  std::printf(
      "100 calls over 10 s: %d reached the upstream (%d failed), %llu rejected "
      "(%llu open, %llu probe cap); opened %llu times (%llu consecutive, %llu probe); "
      "state %s, window error rate %.2f\n",
      upstream_calls, failed_calls, static_cast<unsigned long long>(s.calls_rejected),
      static_cast<unsigned long long>(s.rejected_open),
      static_cast<unsigned long long>(s.rejected_probes_exhausted),
      static_cast<unsigned long long>(s.times_opened),
      static_cast<unsigned long long>(s.opened_by_consecutive),
      static_cast<unsigned long long>(s.opened_by_probe), res::to_string(s.state),
      s.window_error_rate);
  return s.state == res::BreakerState::closed && s.times_opened >= 2 && transitions >= 5 ? 0 : 1;
}
