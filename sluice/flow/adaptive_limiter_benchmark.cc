// Cost of one admission through AdaptiveLimiter (try_acquire + completion) beside
// BM_Baseline_MutexLockUnlock (async_semaphore_benchmark.cc, same binary).
//
// clang-format off
//   build/h-flow/sluice/flow/sluice_flow_benchmark --benchmark_filter='Mutex|Limiter' --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// clang-format on
//
// Sample (2 shared, heavily loaded cores; CPU-time medians): AcquireIgnore 55.6 ns, Aimd
// AcquireSuccess 75.7 ns, Gradient AcquireSuccess 73.9 ns (mutex baseline 14.3 ns).
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
