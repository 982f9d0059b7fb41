// Recording cost of metrics, each beside a baseline.
//
//   cmake --build build/release --target sluice_metrics_benchmark
//   build/release/sluice/metrics/sluice_metrics_benchmark --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true      (one line)
//
// Sample (2-core shared VM, load average 14, medians of CPU ns per item):
//   BM_HistogramRecord/threads:1 14.1   BM_BaselineMutexVectorPush/threads:1 14.0
//   BM_HistogramRecord/threads:2 15.0   BM_BaselineMutexVectorPush/threads:2 16.3
//   BM_CounterInc/threads:1       6.5   BM_BaselineAtomicFetchAdd/threads:1   6.5
// (see docs/benchmarks.md (metrics) for the measured figures).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cmath>
#include <mutex>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/random.h"
#include "sluice/metrics/counter.h"
#include "sluice/metrics/histogram.h"
#include "sluice/metrics/profiler.h"

namespace {

using sluice::Duration;
using sluice::metrics::Counter;
using sluice::metrics::Histogram;

// Log-uniform latencies from 1 us to 1 s, precomputed so that drawing is not measured.
const std::vector<double>& samples() {
  static const std::vector<double> values = [] {
    sluice::base::Xoshiro256 rng(1);
    std::vector<double> v(4096);
    for (double& x : v) x = std::pow(10.0, -6.0 + 6.0 * rng.uniform01());
    return v;
  }();
  return values;
}

Histogram& shared_histogram() {
  static Histogram h;
  return h;
}

void BM_HistogramRecord(benchmark::State& state) {
  Histogram& h = shared_histogram();
  const auto& values = samples();
  size_t i = static_cast<size_t>(state.thread_index()) * 97;
  for (auto _ : state) {
    h.record(values[i++ & 4095]);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramRecord)->Threads(1)->Threads(2);

void BM_HistogramRecordDuration(benchmark::State& state) {
  Histogram& h = shared_histogram();
  int64_t ns = 1000 + state.thread_index();
  for (auto _ : state) {
    h.record(Duration(ns));
    ns = (ns * 7 + 13) & ((int64_t{1} << 30) - 1);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramRecordDuration)->Threads(1)->Threads(2);

// Baseline: the naive "collect every sample" histogram.
void BM_BaselineMutexVectorPush(benchmark::State& state) {
  static std::mutex mutex;
  static std::vector<double> all;
  if (state.thread_index() == 0) {
    all.clear();
    all.reserve(1 << 20);
  }
  const auto& values = samples();
  size_t i = static_cast<size_t>(state.thread_index()) * 97;
  for (auto _ : state) {
    std::lock_guard lock(mutex);
    if (all.size() == (1u << 20)) all.clear();  // keep memory bounded; amortised
    all.push_back(values[i++ & 4095]);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BaselineMutexVectorPush)->Threads(1)->Threads(2);

// Baseline: the floor, one relaxed atomic increment on a shared line.
void BM_BaselineAtomicFetchAdd(benchmark::State& state) {
  static std::atomic<uint64_t> value{0};
  for (auto _ : state) value.fetch_add(1, std::memory_order_relaxed);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BaselineAtomicFetchAdd)->Threads(1)->Threads(2);

void BM_CounterInc(benchmark::State& state) {
  static Counter counter;
  for (auto _ : state) counter.inc();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CounterInc)->Threads(1)->Threads(2);

// Snapshot cost (a scrape reads every bucket of every shard).
void BM_HistogramSnapshot(benchmark::State& state) {
  Histogram h;
  for (const double v : samples()) h.record(v);
  for (auto _ : state) benchmark::DoNotOptimize(h.snapshot().p99());
}
BENCHMARK(BM_HistogramSnapshot);

// A profiler span with the real clock (two clock reads, a name lookup, a record).
void BM_ProfilerSpan(benchmark::State& state) {
  static sluice::metrics::Profiler profiler(sluice::base::SteadyClock::instance());
  for (auto _ : state) {
    sluice::metrics::Span span = profiler.span("hot_path", "bench");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ProfilerSpan)->Threads(1)->Threads(2);

// Baseline for the span: the two clock reads alone.
void BM_BaselineTwoClockReads(benchmark::State& state) {
  const sluice::base::Clock& clock = sluice::base::SteadyClock::instance();
  for (auto _ : state) {
    const auto start = clock.now();
    benchmark::DoNotOptimize(clock.now() - start);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BaselineTwoClockReads)->Threads(1)->Threads(2);

}  // namespace
