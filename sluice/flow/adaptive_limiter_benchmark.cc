// Cost of one admission through AdaptiveLimiter (try_acquire + completion) beside
// BM_Baseline_MutexLockUnlock (async_semaphore_benchmark.cc, same binary).
//
//   build/h-flow/sluice/flow/sluice_flow_benchmark --benchmark_filter='Mutex|Limiter' \
//     --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Sample (2 shared cores, medians): AcquireIgnore 12 ns, Aimd AcquireSuccess 35 ns,
// Gradient AcquireSuccess 45 ns (see docs/benchmarks/flow.md).
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>

#include "sluice/base/clock.h"
#include "sluice/flow/adaptive_limiter.h"

namespace {

using namespace std::chrono_literals;
using sluice::base::SteadyClock;
using sluice::flow::AdaptiveLimiter;
using sluice::flow::AimdPolicy;
using sluice::flow::GradientPolicy;

// Lock-free path only: acquire, release without a sample.
void BM_AdaptiveLimiter_AcquireIgnore(benchmark::State& state) {
  static AdaptiveLimiter limiter(std::make_unique<AimdPolicy>(), {.initial_limit = 1000},
                                 SteadyClock::instance());
  for (auto _ : state) {
    auto token = limiter.try_acquire();
    benchmark::DoNotOptimize(token);
  }
}
BENCHMARK(BM_AdaptiveLimiter_AcquireIgnore)->Threads(1)->Threads(2);

void BM_AdaptiveLimiter_Aimd_AcquireSuccess(benchmark::State& state) {
  static AdaptiveLimiter limiter(std::make_unique<AimdPolicy>(),
                                 {.initial_limit = 1000, .max_limit = 1000},
                                 SteadyClock::instance());
  for (auto _ : state) {
    auto token = limiter.try_acquire();
    if (token) token->on_success(5ms);
  }
}
BENCHMARK(BM_AdaptiveLimiter_Aimd_AcquireSuccess)->Threads(1)->Threads(2);

void BM_AdaptiveLimiter_Gradient_AcquireSuccess(benchmark::State& state) {
  static AdaptiveLimiter limiter(std::make_unique<GradientPolicy>(),
                                 {.initial_limit = 1000, .max_limit = 1000},
                                 SteadyClock::instance());
  for (auto _ : state) {
    auto token = limiter.try_acquire();
    if (token) token->on_success(5ms);
  }
}
BENCHMARK(BM_AdaptiveLimiter_Gradient_AcquireSuccess)->Threads(1)->Threads(2);

}  // namespace
