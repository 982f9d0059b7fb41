// Cost of computing a retry delay: `RetryPolicy::backoff` per jitter mode and the full
// `RetryState::next_delay` (classifier, deadline, budget CAS), beside a bare random draw.
//
//   build/release/sluice/resilience/sluice_resilience_benchmark
//   --benchmark_filter='Random|Backoff|NextDelay' --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
//
// Sample (2-core shared VM under load, medians, CPU time): BM_RandomDraw 1.2 ns,
// BM_Backoff none 11 ns / full 23 ns / equal 25 ns / decorrelated 9 ns, BM_NextDelay 81 ns.
// See docs/benchmarks.md (resilience).
#include <benchmark/benchmark.h>

#include <memory>

#include "sluice/base/clock.h"
#include "sluice/base/random.h"
#include "sluice/resilience/retry_policy.h"

namespace {

using sluice::resilience::Failure;
using sluice::resilience::JitterMode;
using sluice::resilience::RetryOptions;
using sluice::resilience::RetryPolicy;
using sluice::resilience::RetryState;

void BM_RandomDraw(benchmark::State& state) {
  sluice::base::Xoshiro256 rng(1);
  for (auto _ : state) benchmark::DoNotOptimize(rng.uniform(0, 1'000'000'000));
}
BENCHMARK(BM_RandomDraw);

void BM_Backoff(benchmark::State& state) {
  sluice::base::ManualClock clock;
  RetryOptions options;
  options.jitter = static_cast<JitterMode>(state.range(0));
  RetryPolicy policy(options, clock);
  sluice::base::Xoshiro256 rng(1);
  uint32_t retry = 0;
  sluice::Duration previous = options.base_delay;
  for (auto _ : state) {
    retry = retry % 8 + 1;
    previous = policy.backoff(retry, previous, rng);
    benchmark::DoNotOptimize(previous);
  }
}
BENCHMARK(BM_Backoff)
    ->Arg(static_cast<int>(JitterMode::none))
    ->Arg(static_cast<int>(JitterMode::full))
    ->Arg(static_cast<int>(JitterMode::equal))
    ->Arg(static_cast<int>(JitterMode::decorrelated))
    ->ArgName("jitter(0=none,1=full,2=equal,3=decorr)");

// One full request cycle per iteration: state, attempt, next_delay (granted), attempt,
// success. With a deadline and a shared budget, the gateway's configuration.
void BM_NextDelay(benchmark::State& state) {
  sluice::base::ManualClock clock;
  RetryOptions options;
  options.timeout = std::chrono::seconds(30);
  options.budget = std::make_shared<sluice::resilience::RetryBudget>();
  RetryPolicy policy(options, clock);
  sluice::base::Xoshiro256 rng(1);
  const Failure unavailable{{}, 503, std::nullopt};
  for (auto _ : state) {
    RetryState retry(policy, rng);
    benchmark::DoNotOptimize(retry.start_attempt());
    const auto decision = retry.next_delay(unavailable);
    benchmark::DoNotOptimize(decision.delay());
    benchmark::DoNotOptimize(retry.start_attempt());
    retry.on_success();
  }
}
BENCHMARK(BM_NextDelay);

}  // namespace
