#include <boost/system/errc.hpp>
#include <chrono>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>

#include "sluice/base/clock.h"
#include "sluice/base/random.h"
#include "sluice/base/units.h"
#include "sluice/resilience/circuit_breaker.h"
#include "sluice/resilience/retry_call.h"
#include "sluice/resilience/retry_policy.h"
#include "tools/sluice/tour.h"

namespace {

namespace res = sluice::resilience;
using sluice::base::format_duration;
using std::chrono::milliseconds;
using std::chrono::seconds;

void tour_retry(std::ostream& out) {
  sluice::base::ManualClock clock;
  res::RetryOptions options;
  options.base_delay = milliseconds(100);
  options.max_delay = seconds(2);
  options.max_attempts = 4;
  options.budget = std::make_shared<res::RetryBudget>(
      res::RetryBudgetOptions{.budget_percent = 20.0, .min_retry_concurrency = 2});
  res::RetryPolicy policy(options, clock);
  sluice::base::Xoshiro256 rng(3);

  out << "retry, full jitter, base 100ms x2 cap 2s:";
  sluice::Duration previous = options.base_delay;
  for (uint32_t retry = 1; retry <= 6; ++retry) {
    previous = policy.backoff(retry, previous, rng);
    out << " " << format_duration(previous);
  }
  out << "\n";

  // A call that fails twice with 503 then succeeds, slept on a fake clock.
  const auto start = clock.now();
  const auto result = res::retry_call(
      policy,
      [](uint32_t attempt) -> res::AttemptResult<int> {
        if (attempt < 3) return res::Failure{{}, 503, std::nullopt};
        return 200;
      },
      [&](sluice::Duration d) { clock.advance(d); }, rng);
  if (!result) throw std::runtime_error("tour: retry_call did not succeed");

  // Five requests fail at once with a budget of max(2, 20% of 5): two may retry.
  int granted = 0;
  {
    std::unique_ptr<res::RetryState> states[5];
    for (auto& s : states) s = std::make_unique<res::RetryState>(policy, rng);
    for (auto& s : states) {
      if (s->start_attempt() && s->next_delay(res::Failure{{}, 502, {}}).should_retry()) {
        ++granted;
      }
    }
  }
  const auto stats = policy.stats();
  out << "retry_call: status " << *result << " after 3 attempts and "
      << format_duration(clock.now() - start) << " of backoff; budget let " << granted
      << " of 5 simultaneous failures retry (budget_exhausted="
      << options.budget->stats().budget_exhausted << ", stopped_budget=" << stats.stopped_budget
      << ")\n";
}

void tour_breaker(std::ostream& out) {
  sluice::base::ManualClock clock;
  const auto t0 = clock.now();
  res::BreakerOptions options;
  options.consecutive_failures = 3;
  options.open_duration = seconds(1);
  std::string transitions;
  std::string open_periods;
  sluice::TimePoint opened_at{};
  options.on_state_change = [&](const res::BreakerTransition& t) {
    transitions += std::string(" ") + res::to_string(t.to) + "@" + format_duration(t.at - t0);
    if (t.to == res::BreakerState::open) opened_at = t.at;
    if (t.to == res::BreakerState::half_open) {
      open_periods += (open_periods.empty() ? "" : ", ") + format_duration(t.at - opened_at);
    }
  };
  res::CircuitBreaker breaker(options, clock);
  // Down for the first 2 s, healthy after; one call every 100 ms for 4 s.
  for (int tick = 0; tick < 40; ++tick) {
    if (auto permit = breaker.allow()) {
      if (clock.now() - t0 < seconds(2)) {
        permit.failure();
      } else {
        permit.success();
      }
    }
    clock.advance(milliseconds(100));
  }
  const auto s = breaker.stats();
  out << "breaker: closed ->" << transitions << "\n";
  out << "breaker: 40 calls, " << s.calls_allowed << " allowed, " << s.calls_rejected
      << " rejected while open, opened " << s.times_opened << " times (open for " << open_periods
      << "), now " << res::to_string(s.state) << "\n";
  if (s.state != res::BreakerState::closed) throw std::runtime_error("tour: breaker not closed");
}

void tour_resilience(std::ostream& out) {
  tour_retry(out);
  tour_breaker(out);
}

SLUICE_TOUR_STEP(50, "resilience", tour_resilience);

}  // namespace
