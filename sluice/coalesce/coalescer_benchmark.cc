// Benchmarks of sluice::coalesce, each beside a baseline that calls the work directly.
//
//   cmake --build build/h-coalesce --target sluice_coalesce_benchmark -j2
//   build/h-coalesce/sluice/coalesce/sluice_coalesce_benchmark
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Sample (2 shared cores, load ~17, medians of 5; wall / CPU):
//   BM_DirectCall                   0.92 ns / 0.34 ns
//   BM_CoalescerCacheHit             155 ns / 62 ns
//   BM_CoalescerFreshKey             476 ns / 187 ns
//   BM_AsyncDirectAwait               41 ns / 17 ns
//   BM_AsyncCacheHit                 291 ns / 107 ns
//   BM_AsyncFreshKey                 2.4 us / 0.92 us
//   BM_ThousandWaitersOneKey         2.6 ms / 1.0 ms  executions=1 release_p50_us=211
// (see docs/benchmarks.md (coalesce) for the measured figures)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "sluice/coalesce/async_coalescer.h"
#include "sluice/coalesce/coalescer.h"

namespace {

namespace asio = boost::asio;
using asio::awaitable;
using sluice::Duration;
using sluice::coalesce::AsyncCoalescer;
using sluice::coalesce::Coalescer;
using sluice::coalesce::CoalescerOptions;

CoalescerOptions with_ttl(Duration ttl, size_t max_cached = 10'000) {
  CoalescerOptions o;
  o.result_ttl = ttl;
  o.max_cached_results = max_cached;
  return o;
}

int work_value = 42;
int work() {
  benchmark::DoNotOptimize(work_value);
  return work_value;
}

std::vector<std::string> make_keys(size_t n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; ++i) keys.push_back("GET /v1/models/" + std::to_string(i));
  return keys;
}

// Baseline: the work itself.
void BM_DirectCall(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(work());
}
BENCHMARK(BM_DirectCall);

// `run` answered from the result cache.
void BM_CoalescerCacheHit(benchmark::State& state) {
  Coalescer<int> c(with_ttl(std::chrono::hours(1)));
  const std::string key = "GET /v1/models/7";
  (void)c.run(key, work);
  for (auto _ : state) benchmark::DoNotOptimize(c.run(key, work));
}
BENCHMARK(BM_CoalescerCacheHit);

// `run` leading a fresh execution with no result cache (pure single-flight bookkeeping).
void BM_CoalescerFreshKey(benchmark::State& state) {
  Coalescer<int> c(with_ttl(Duration::zero()));
  const std::string key = "GET /v1/models/7";
  for (auto _ : state) benchmark::DoNotOptimize(c.run(key, work));
}
BENCHMARK(BM_CoalescerFreshKey);

// `run` leading a fresh execution and caching its result (every key is new to the cache;
// the bounded cache evicts as it goes).
void BM_CoalescerFreshKeyCached(benchmark::State& state) {
  Coalescer<int> c(with_ttl(std::chrono::hours(1), 1024));
  const auto keys = make_keys(1 << 16);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(c.run(keys[i], work));
    i = (i + 1) & (keys.size() - 1);
  }
}
BENCHMARK(BM_CoalescerFreshKeyCached);

// Runs `body` as one coroutine on a fresh io_context.
template <class Body>
void in_coroutine(Body body) {
  asio::io_context ctx;
  asio::co_spawn(ctx, std::move(body), asio::detached);
  ctx.run();
}

awaitable<int> async_work() { co_return work(); }

// Baseline: a coroutine awaiting the work directly.
void BM_AsyncDirectAwait(benchmark::State& state) {
  in_coroutine([&]() -> awaitable<void> {
    for (auto _ : state) benchmark::DoNotOptimize(co_await async_work());
  });
}
BENCHMARK(BM_AsyncDirectAwait);

void BM_AsyncCacheHit(benchmark::State& state) {
  AsyncCoalescer<int> c(with_ttl(std::chrono::hours(1)));
  in_coroutine([&]() -> awaitable<void> {
    (void)co_await c.run("GET /v1/models/7", async_work);
    for (auto _ : state) benchmark::DoNotOptimize(co_await c.run("GET /v1/models/7", async_work));
  });
}
BENCHMARK(BM_AsyncCacheHit);

// Leader path: spawn the work detached, wait for it, resume through a post.
void BM_AsyncFreshKey(benchmark::State& state) {
  AsyncCoalescer<int> c(with_ttl(Duration::zero()));
  in_coroutine([&]() -> awaitable<void> {
    for (auto _ : state) benchmark::DoNotOptimize(co_await c.run("GET /v1/models/7", async_work));
  });
}
BENCHMARK(BM_AsyncFreshKey);

// 1,000 concurrent coroutine callers on one key (one io_context thread). Counters: how many
// times the work ran per round, and the release latency from the work finishing to each
// waiter resuming (p50 and max over the waiters of all rounds, microseconds).
void BM_ThousandWaitersOneKey(benchmark::State& state) {
  constexpr int kCallers = 1000;
  using Clock = std::chrono::steady_clock;
  std::vector<double> release_us;
  int64_t executions = 0;
  for (auto _ : state) {
    asio::io_context ctx;
    AsyncCoalescer<int> c(with_ttl(Duration::zero()));
    asio::steady_timer gate(ctx, asio::steady_timer::time_point::max());
    Clock::time_point finished;
    std::vector<Clock::time_point> resumed;
    resumed.reserve(kCallers);
    for (int i = 0; i < kCallers; ++i) {
      asio::co_spawn(
          ctx,
          [&]() -> awaitable<void> {
            auto r = co_await c.run("GET /v1/chat", [&]() -> awaitable<int> {
              ++executions;
              co_await gate.async_wait(asio::as_tuple(asio::use_awaitable));
              finished = Clock::now();
              co_return 42;
            });
            resumed.push_back(Clock::now());
            benchmark::DoNotOptimize(r);
          },
          asio::detached);
    }
    while (c.stats().coalesced < kCallers - 1) ctx.run_one();
    gate.cancel();
    ctx.run();
    for (const auto t : resumed) {
      release_us.push_back(std::chrono::duration<double, std::micro>(t - finished).count());
    }
  }
  std::sort(release_us.begin(), release_us.end());
  const double rounds = static_cast<double>(state.iterations());
  state.counters["executions"] = static_cast<double>(executions) / rounds;
  state.counters["release_p50_us"] = release_us.empty() ? 0 : release_us[release_us.size() / 2];
  state.counters["release_max_us"] = release_us.empty() ? 0 : release_us.back();
}
BENCHMARK(BM_ThousandWaitersOneKey)->Unit(benchmark::kMicrosecond);

// Baseline for the above: 1,000 coroutines each running the work themselves.
void BM_ThousandCallersNoCoalescing(benchmark::State& state) {
  constexpr int kCallers = 1000;
  int64_t executions = 0;
  for (auto _ : state) {
    asio::io_context ctx;
    for (int i = 0; i < kCallers; ++i) {
      asio::co_spawn(
          ctx,
          [&]() -> awaitable<void> {
            ++executions;
            benchmark::DoNotOptimize(co_await async_work());
          },
          asio::detached);
    }
    ctx.run();
  }
  state.counters["executions"] =
      static_cast<double>(executions) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_ThousandCallersNoCoalescing)->Unit(benchmark::kMicrosecond);

}  // namespace
