// Task submit+complete throughput of TaskManager (2 workers) against `std::async`, and the
// overhead of `parallel_map` against a plain loop.
//
//   cmake --build build/release --target sluice_exec_benchmark
//   build/release/sluice/exec/sluice_exec_benchmark --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
//
// Sample (2 shared, heavily loaded cores; real-time medians): BM_StdAsyncSubmitWait 84 us,
// BM_TaskManagerSubmitWait 40 us (0.48x); BM_StdAsyncBatch64 34.6 ms, BM_TaskManagerBatch64
// 0.85 ms (0.025x); see docs/benchmarks.md (exec) for the rest.
#include <benchmark/benchmark.h>

#include <future>
#include <numeric>
#include <vector>

#include "sluice/exec/task_manager.h"

namespace {

int tiny_work(int x) {
  benchmark::DoNotOptimize(x);
  return x + 1;
}

// Baseline: one `std::async(std::launch::async)` per task (a new thread each), then wait.
void BM_StdAsyncSubmitWait(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) {
    auto f = std::async(std::launch::async, tiny_work, i++);
    benchmark::DoNotOptimize(f.get());
  }
}
BENCHMARK(BM_StdAsyncSubmitWait)->UseRealTime();

// One task at a time, submit then wait: the round-trip latency through the pool.
void BM_TaskManagerSubmitWait(benchmark::State& state) {
  sluice::exec::TaskManager tm({.workers = 2});
  int i = 0;
  for (auto _ : state) {
    auto f = tm.try_submit([x = i++] { return tiny_work(x); }).value();
    benchmark::DoNotOptimize(f.get());
  }
}
BENCHMARK(BM_TaskManagerSubmitWait)->UseRealTime();

// Baseline for throughput: 64 `std::async` tasks in flight, then wait for all.
void BM_StdAsyncBatch64(benchmark::State& state) {
  for (auto _ : state) {
    std::vector<std::future<int>> fs;
    fs.reserve(64);
    for (int i = 0; i < 64; ++i) fs.push_back(std::async(std::launch::async, tiny_work, i));
    for (auto& f : fs) benchmark::DoNotOptimize(f.get());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_StdAsyncBatch64)->UseRealTime();

// Throughput: 64 tasks in flight on 2 workers, then wait for all.
void BM_TaskManagerBatch64(benchmark::State& state) {
  sluice::exec::TaskManager tm({.workers = 2});
  for (auto _ : state) {
    std::vector<std::future<int>> fs;
    fs.reserve(64);
    for (int i = 0; i < 64; ++i) fs.push_back(tm.try_submit([i] { return tiny_work(i); }).value());
    for (auto& f : fs) benchmark::DoNotOptimize(f.get());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(BM_TaskManagerBatch64)->UseRealTime();

// Baseline for parallel_map: a sequential loop over 1000 small items.
void BM_SequentialMap1000(benchmark::State& state) {
  std::vector<int> inputs(1000);
  std::iota(inputs.begin(), inputs.end(), 0);
  for (auto _ : state) {
    std::vector<int> out;
    out.reserve(inputs.size());
    for (int x : inputs) out.push_back(tiny_work(x));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_SequentialMap1000);

// parallel_map over the same items with a cap of 2: its fixed cost per call.
void BM_ParallelMap1000(benchmark::State& state) {
  sluice::exec::TaskManager tm({.workers = 2});
  std::vector<int> inputs(1000);
  std::iota(inputs.begin(), inputs.end(), 0);
  for (auto _ : state) {
    auto out = tm.parallel_map(
        inputs, [](const int& x) { return tiny_work(x); }, 2);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_ParallelMap1000)->UseRealTime();

}  // namespace
