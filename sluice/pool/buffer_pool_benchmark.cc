// Buffer pool against malloc/free for body-chunk sized buffers (4 KiB and 64 KiB), and the
// connection tracker's reuse path.
//
//   build/release/sluice/pool/sluice_pool_benchmark --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
//
// Sample (2 shared, heavily loaded cores; CPU-time medians): BM_Malloc/65536 13.8 ns,
// BM_BufferPool/65536 12.6 ns (0.91x); see docs/benchmarks.md (pool) for the rest.
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "sluice/base/clock.h"
#include "sluice/pool/buffer_pool.h"
#include "sluice/pool/connection_tracker.h"

namespace {

void BM_Malloc(benchmark::State& state) {
  const auto size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void* p = std::malloc(size);
    static_cast<char*>(p)[0] = 1;
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}
BENCHMARK(BM_Malloc)->Arg(4096)->Arg(65536)->Arg(1 << 20);

void BM_BufferPool(benchmark::State& state) {
  const auto size = static_cast<size_t>(state.range(0));
  sluice::pool::BufferPool pool;
  for (auto _ : state) {
    sluice::pool::PooledBuffer b = pool.acquire(size);
    b.data()[0] = std::byte{1};
    benchmark::DoNotOptimize(b.data());
  }
}
BENCHMARK(BM_BufferPool)->Arg(4096)->Arg(65536)->Arg(1 << 20);

// Tracker reuse cycle (acquire_slot + record_request + release) on a warm host: the
// bookkeeping cost an HTTP client adds per request.
void BM_ConnectionTrackerReuseCycle(benchmark::State& state) {
  sluice::base::ManualClock clock;
  sluice::pool::ConnectionTracker tracker;
  for (auto _ : state) {
    auto slot = tracker.acquire_slot("api.example.com:443", clock.now());
    tracker.record_request(slot.id, true, 512, 4096);
    auto closed = tracker.release(slot.id, clock.now());
    benchmark::DoNotOptimize(closed);
  }
}
BENCHMARK(BM_ConnectionTrackerReuseCycle);

}  // namespace
