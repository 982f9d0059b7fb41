// Benchmarks of sluice/batch.
//
//   cmake --build build/release --target sluice_batch_benchmark
//   build/release/sluice/batch/sluice_batch_benchmark --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
//
// BM_BatcherAdd vs BM_DirectSinkWrite: the producer-side cost of `Batcher::add` (the flusher
// thread writes to a sink that only counts) beside calling that sink once per item under a
// mutex. BM_MicroBatcher vs BM_UnbatchedCalls: 8 threads call an upstream that serves one call
// at a time and costs 50 us per call plus 0.5 us per item (a model server); the micro-batcher
// merges concurrent calls. Counters: calls/s, and for the micro-batcher the batch sizes formed.
// Sample (2-core shared VM at load 14, medians of 5): BM_BatcherAdd/threads:1 3.57 M items/s
// vs BM_DirectSinkWrite/threads:1 5.81 M items/s; BM_MicroBatcher/8/threads:8 10.3 k calls/s
// (avg batch 7.6) vs BM_UnbatchedCalls/threads:8 3.89 k calls/s. More in docs/benchmarks.md
// (batch).
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "sluice/batch/batcher.h"
#include "sluice/batch/micro_batcher.h"

namespace {

using sluice::batch::AddResult;
using sluice::batch::Batcher;
using sluice::batch::BatcherOptions;
using sluice::batch::MicroBatcher;
using sluice::batch::MicroBatcherOptions;
using sluice::batch::Result;

class CountingSink final : public sluice::batch::Sink<int> {
 public:
  boost::system::error_code write(std::span<const int> items) override {
    std::lock_guard lk(mu_);
    count_ += items.size();
    return {};
  }

 private:
  std::mutex mu_;
  uint64_t count_ = 0;
};

void BM_BatcherAdd(benchmark::State& state) {
  static CountingSink sink;
  static Batcher<int>* batcher = nullptr;
  if (state.thread_index() == 0) {
    BatcherOptions o;
    o.batch_size = 500;
    o.max_queue = 1'000'000;
    o.overflow = sluice::batch::OverflowPolicy::block;
    batcher = new Batcher<int>(sink, o);
  }
  int i = 0;
  for (auto _ : state) {
    if (batcher->add(i++) != AddResult::accepted) state.SkipWithError("not accepted");
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete batcher;  // drains
    batcher = nullptr;
  }
}
BENCHMARK(BM_BatcherAdd)->Threads(1)->Threads(4)->UseRealTime();

void BM_DirectSinkWrite(benchmark::State& state) {
  static CountingSink sink;
  int i = 0;
  for (auto _ : state) {
    const int v = i++;
    benchmark::DoNotOptimize(sink.write(std::span<const int>(&v, 1)));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DirectSinkWrite)->Threads(1)->Threads(4)->UseRealTime();

// An upstream that serves one call at a time: 50 us per call + 0.5 us per item (sleeping, as a
// network round trip does).
class SerialUpstream {
 public:
  std::vector<Result<int>> call(std::span<int> reqs) {
    std::lock_guard lk(mu_);
    std::this_thread::sleep_for(std::chrono::microseconds(50) +
                                std::chrono::nanoseconds(500) * reqs.size());
    ++calls_;
    std::vector<Result<int>> out;
    out.reserve(reqs.size());
    for (int r : reqs) out.emplace_back(r + 1);
    return out;
  }
  uint64_t calls() {
    std::lock_guard lk(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  uint64_t calls_ = 0;
};

constexpr int kCallerThreads = 8;

void BM_UnbatchedCalls(benchmark::State& state) {
  static SerialUpstream* upstream = nullptr;
  if (state.thread_index() == 0) upstream = new SerialUpstream;
  int i = 0;
  for (auto _ : state) {
    int req = i++;
    auto r = upstream->call(std::span<int>(&req, 1));
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    state.counters["upstream_calls"] = static_cast<double>(upstream->calls());
    delete upstream;
    upstream = nullptr;
  }
}
BENCHMARK(BM_UnbatchedCalls)->Threads(kCallerThreads)->UseRealTime();

void BM_MicroBatcher(benchmark::State& state) {
  static SerialUpstream* upstream = nullptr;
  static MicroBatcher<int, int>* mb = nullptr;
  if (state.thread_index() == 0) {
    upstream = new SerialUpstream;
    MicroBatcherOptions o;
    o.max_batch = static_cast<std::size_t>(state.range(0));
    o.max_wait = std::chrono::microseconds(200);
    o.workers = 1;
    mb = new MicroBatcher<int, int>([](std::span<int> reqs) { return upstream->call(reqs); }, o);
  }
  int i = 0;
  for (auto _ : state) {
    auto r = mb->call(i++);
    if (!r) state.SkipWithError("call failed");
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    mb->stop();
    const auto s = mb->stats();
    state.counters["avg_batch"] = s.avg_batch_size();
    state.counters["min_batch"] = static_cast<double>(s.min_batch_size);
    state.counters["max_batch"] = static_cast<double>(s.max_batch_size);
    state.counters["batches_full"] = static_cast<double>(s.batches_full);
    state.counters["batches_waited"] = static_cast<double>(s.batches_waited);
    state.counters["upstream_calls"] = static_cast<double>(upstream->calls());
    delete mb;
    mb = nullptr;
    delete upstream;
    upstream = nullptr;
  }
}
BENCHMARK(BM_MicroBatcher)->Arg(8)->Arg(32)->Threads(kCallerThreads)->UseRealTime();

}  // namespace
