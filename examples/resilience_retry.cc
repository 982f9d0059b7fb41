// Retry delays for each jitter mode (seeded, so the output is the same on every run), then a
// retry_call against a flaky dependency with a fake sleeper driving a ManualClock.
#include <boost/system/errc.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "sluice/base/clock.h"
#include "sluice/base/random.h"
#include "sluice/base/units.h"
#include "sluice/resilience/retry_call.h"
#include "sluice/resilience/retry_policy.h"

namespace {

namespace res = sluice::resilience;
using std::chrono::milliseconds;

const char* name(res::JitterMode mode) {
  switch (mode) {
    case res::JitterMode::none:
      return "none";
    case res::JitterMode::full:
      return "full";
    case res::JitterMode::equal:
      return "equal";
    case res::JitterMode::decorrelated:
      return "decorrelated";
  }
  return "?";
}

}  // namespace

int main() {
  sluice::base::ManualClock clock;
  std::printf("delays before retries 1..8 (base 100ms, x2, cap 5s), seed 7:\n");
  for (const auto mode : {res::JitterMode::none, res::JitterMode::full, res::JitterMode::equal,
                          res::JitterMode::decorrelated}) {
    res::RetryOptions options;
    options.base_delay = milliseconds(100);
    options.max_delay = std::chrono::seconds(5);
    options.jitter = mode;
    res::RetryPolicy policy(options, clock);
    sluice::base::Xoshiro256 rng(7);
    sluice::Duration previous = options.base_delay;
    sluice::Duration total{0};
    std::string line;
    for (uint32_t retry = 1; retry <= 8; ++retry) {
      previous = policy.backoff(retry, previous, rng);
      total += previous;
      line += " " + sluice::base::format_duration(previous);
    }
    std::printf("  %-12s%s  (sum %s)\n", name(mode), line.c_str(),
                sluice::base::format_duration(total).c_str());
  }

  // A dependency that fails three times (503, a reset, 503 with Retry-After: 1), then works.
  res::RetryOptions options;
  options.max_attempts = 5;
  options.timeout = std::chrono::seconds(10);
  res::RetryPolicy policy(options, clock);
  sluice::base::Xoshiro256 rng(7);
  const sluice::TimePoint start = clock.now();
  res::RetryState state(policy, rng);
  const auto result = res::retry_call(
      state,
      [](uint32_t attempt) -> res::AttemptResult<std::string> {
        switch (attempt) {
          case 1:
            return res::Failure{{}, 503, std::nullopt};
          case 2:
            return res::Failure{
                boost::system::errc::make_error_code(boost::system::errc::connection_reset), 0,
                std::nullopt};
          case 3:
            return res::Failure{{}, 503, res::parse_retry_after("1")};
          default:
            return std::string("200 OK");
        }
      },
      [&](sluice::Duration d) {
        std::printf("  attempt %u failed; waiting %s\n", state.attempts(),
                    sluice::base::format_duration(d).c_str());
        clock.advance(d);
      });
  if (!result) return 1;
  const auto stats = policy.stats();
  std::printf("retry_call: %s after %u attempts, %s of (fake) waiting; retries=%llu\n",
              result->c_str(), state.attempts(),
              sluice::base::format_duration(clock.now() - start).c_str(),
              static_cast<unsigned long long>(stats.retries));
  return state.attempts() == 4 && stats.successes_after_retry == 1 ? 0 : 1;
}
