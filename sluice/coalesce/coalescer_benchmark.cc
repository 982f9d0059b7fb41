// Benchmarks of sluice::coalesce, each beside a baseline that calls the work directly.
//
//   cmake --build build/release --target sluice_coalesce_benchmark -j2
//   build/release/sluice/coalesce/sluice_coalesce_benchmark
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Sample (2 shared cores, load 5-7, medians of 5; release latencies in us: first/p50/p99/max
// over 1,000 waiters, median over rounds):
//   BM_ThousandTimerWaitersBaseline  6 / 117 / 209 / 211   (Asio's own broadcast)
//   BM_ThousandWaitersOneKey        30 / 161 / 293 / 295   (before this change: 26/157/306/309)
//     with glibc trimming off       21 / 133 / 245 / 247   (before: 25/150/277/280)
//   BM_ThousandWaitersCopiedBody    56 / 269 / 453 / 456   (before: 28/316/588/593)
//   callgrind, release Ir per waiter: 2,025 (before 3,190; Asio timer broadcast 1,696)
// Older sample (load ~17): BM_AsyncCacheHit 291 ns / 107 ns CPU, BM_AsyncFreshKey 2.4 us.
// (see docs/benchmarks/coalesce.md for the measured figures and the heap-trimming caveat)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/base/check.h"
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

// ---- Release latency: 1,000 callers suspended on one key, then the work finishes. ----
//
// Release latency of one waiter = (its `co_await c.run(...)` returning, on its own executor) -
// (the leader's work completing: the instant the factory's coroutine reaches `co_return`, just
// before the coalescer stores and publishes the outcome). It is measured for every one of the
// 1,000 callers of a round (the leader's own caller included); per round we take p50, p99 and
// max over the 1,000, and the counters report the median of those over the rounds of a
// repetition (`--benchmark_repetitions` then gives medians over repetitions). `worst_max_us`
// is the largest max of any round (preemption on a loaded machine shows here).
// T is the gateway's: `std::shared_ptr<const Response>`, so each waiter's copy is one
// reference count increment.

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};
using SharedResponse = std::shared_ptr<const Response>;

SharedResponse make_response() {
  auto r = std::make_shared<Response>();
  r->headers = {{"content-type", "application/json"}, {"x-request-id", "7f3a"}};
  r->body.assign(4096, 'x');
  return r;
}

using BenchClock = std::chrono::steady_clock;

// Per-round release-latency quantiles, summarised over the rounds of one repetition.
class ReleaseLatency {
 public:
  void add_round(BenchClock::time_point finished, const std::vector<BenchClock::time_point>& at) {
    std::vector<double> us;
    us.reserve(at.size());
    for (const auto t : at)
      us.push_back(std::chrono::duration<double, std::micro>(t - finished).count());
    if (us.empty()) return;
    std::sort(us.begin(), us.end());
    p50_.push_back(us[us.size() / 2]);
    p99_.push_back(us[std::min(us.size() - 1, us.size() * 99 / 100)]);
    max_.push_back(us.back());
    first_.push_back(us.front());
  }

  void report(benchmark::State& state) {
    state.counters["release_first_us"] = median(first_);
    state.counters["release_p50_us"] = median(p50_);
    state.counters["release_p99_us"] = median(p99_);
    state.counters["release_max_us"] = median(max_);
    state.counters["worst_max_us"] = max_.empty() ? 0 : *std::max_element(max_.begin(), max_.end());
  }

 private:
  static double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
  }
  std::vector<double> first_, p50_, p99_, max_;
};

constexpr int kWaiters = 1000;
const std::string kChatKey = "POST /v1/chat/completions 9c1d";

// One round on `contexts.size()` io_contexts, each run by its own thread (the caller's thread
// runs the first): `kWaiters` callers split evenly, the first (on contexts[0]) leads.
template <class T, class MakeValue>
void thousand_waiters_round(std::vector<std::unique_ptr<asio::io_context>>& contexts,
                            MakeValue make_value, ReleaseLatency& latency, int64_t& executions) {
  AsyncCoalescer<T> c(with_ttl(Duration::zero()));
  asio::io_context& home = *contexts[0];
  asio::steady_timer gate(home, asio::steady_timer::time_point::max());
  BenchClock::time_point finished;
  std::vector<std::vector<BenchClock::time_point>> resumed(contexts.size());
  for (auto& r : resumed) r.reserve(kWaiters);
  for (int i = 0; i < kWaiters; ++i) {
    const size_t k = static_cast<size_t>(i) % contexts.size();
    asio::co_spawn(
        *contexts[k],
        [&, k]() -> awaitable<void> {
          auto r = co_await c.run(kChatKey, [&]() -> awaitable<T> {
            ++executions;
            co_await gate.async_wait(asio::as_tuple(asio::use_awaitable));
            T value = make_value();
            finished = BenchClock::now();
            co_return value;
          });
          resumed[k].push_back(BenchClock::now());
          benchmark::DoNotOptimize(r);
        },
        asio::detached);
  }
  std::vector<std::thread> threads;
  for (size_t k = 1; k < contexts.size(); ++k) {
    threads.emplace_back([&ctx = *contexts[k]] { ctx.run(); });
  }
  // Start everyone (the leader's work then sits on the gate), then open the gate.
  while (c.stats().coalesced < kWaiters - 1) {
    if (home.poll_one() == 0) std::this_thread::yield();
  }
  gate.cancel();
  home.run();
  for (auto& t : threads) t.join();
  for (auto& ctx : contexts) ctx->restart();
  std::vector<BenchClock::time_point> all;
  for (const auto& r : resumed) all.insert(all.end(), r.begin(), r.end());
  SLUICE_CHECK(all.size() == kWaiters, "every waiter resumed");
  latency.add_round(finished, all);
}

template <class T, class MakeValue>
void thousand_waiters(benchmark::State& state, size_t threads, MakeValue make_value) {
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (size_t k = 0; k < threads; ++k) contexts.push_back(std::make_unique<asio::io_context>(1));
  ReleaseLatency latency;
  int64_t executions = 0;
  for (auto _ : state) thousand_waiters_round<T>(contexts, make_value, latency, executions);
  state.counters["executions"] =
      static_cast<double>(executions) / static_cast<double>(state.iterations());
  latency.report(state);
}

// 1,000 coroutine callers on one key, one io_context thread; T = shared_ptr<const Response>.
void BM_ThousandWaitersOneKey(benchmark::State& state) {
  thousand_waiters<SharedResponse>(state, 1, make_response);
}
BENCHMARK(BM_ThousandWaitersOneKey)->Unit(benchmark::kMicrosecond);

// The same split over two io_contexts, each run by its own thread (500 waiters each).
void BM_ThousandWaitersTwoThreads(benchmark::State& state) {
  thousand_waiters<SharedResponse>(state, 2, make_response);
}
BENCHMARK(BM_ThousandWaitersTwoThreads)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The same as BM_ThousandWaitersOneKey with T = std::string (a 4 KiB body copied to each waiter):
// what the shared_ptr saves.
void BM_ThousandWaitersCopiedBody(benchmark::State& state) {
  thousand_waiters<std::string>(state, 1, [] { return std::string(4096, 'x'); });
}
BENCHMARK(BM_ThousandWaitersCopiedBody)->Unit(benchmark::kMicrosecond);

// Baseline for the release latency: Asio's own broadcast, 1,000 coroutines suspended on one
// steady_timer that is cancelled at once (no coalescer, no result, one io_context thread).
void BM_ThousandTimerWaitersBaseline(benchmark::State& state) {
  ReleaseLatency latency;
  for (auto _ : state) {
    asio::io_context ctx(1);
    asio::steady_timer gate(ctx, asio::steady_timer::time_point::max());
    BenchClock::time_point finished;
    std::vector<BenchClock::time_point> resumed;
    resumed.reserve(kWaiters);
    for (int i = 0; i < kWaiters; ++i) {
      asio::co_spawn(
          ctx,
          [&]() -> awaitable<void> {
            co_await gate.async_wait(asio::as_tuple(asio::use_awaitable));
            resumed.push_back(BenchClock::now());
          },
          asio::detached);
    }
    ctx.poll();
    finished = BenchClock::now();
    gate.cancel();
    ctx.run();
    latency.add_round(finished, resumed);
  }
  latency.report(state);
}
BENCHMARK(BM_ThousandTimerWaitersBaseline)->Unit(benchmark::kMicrosecond);

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
