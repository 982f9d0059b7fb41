// MicroBatcher: 8 threads make 400 single calls each to an upstream that serves one call at a
// time (100 us per call); the micro-batcher merges concurrent calls into batch calls.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "sluice/batch/micro_batcher.h"

int main() {
  using sluice::batch::Result;
  std::mutex upstream_mu;  // the upstream handles one call at a time
  int upstream_calls = 0;
  auto upstream = [&](std::span<int> reqs) {
    std::lock_guard lk(upstream_mu);
    ++upstream_calls;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
    std::vector<Result<int>> out;
    for (int r : reqs) out.emplace_back(r * r);
    return out;
  };
  sluice::batch::MicroBatcherOptions o;
  o.max_batch = 16;
  o.max_wait = std::chrono::microseconds(500);
  sluice::batch::MicroBatcher<int, int> mb(upstream, o);
  std::atomic<int> wrong{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < 400; ++i) {
        const int x = t * 1000 + i;
        Result<int> r = mb.call(x);
        if (!r || *r != x * x) wrong.fetch_add(1);
      }
    });
  }
  for (auto& c : callers) c.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  mb.stop();
  const auto s = mb.stats();
  std::printf("%llu calls in %llu upstream calls (%.1f calls/s), wrong answers: %d\n",
              static_cast<unsigned long long>(s.calls), static_cast<unsigned long long>(s.batches),
              static_cast<double>(s.calls) / secs, wrong.load());
  std::printf("batch size min %llu avg %.1f max %llu; cut full %llu, by max_wait %llu\n",
              static_cast<unsigned long long>(s.min_batch_size), s.avg_batch_size(),
              static_cast<unsigned long long>(s.max_batch_size),
              static_cast<unsigned long long>(s.batches_full),
              static_cast<unsigned long long>(s.batches_waited));
  std::printf("batch sizes [1] %llu, [2,3] %llu, [4,7] %llu, [8,15] %llu, [16,31] %llu\n",
              static_cast<unsigned long long>(s.batch_size_buckets[0]),
              static_cast<unsigned long long>(s.batch_size_buckets[1]),
              static_cast<unsigned long long>(s.batch_size_buckets[2]),
              static_cast<unsigned long long>(s.batch_size_buckets[3]),
              static_cast<unsigned long long>(s.batch_size_buckets[4]));
  return wrong.load() == 0 && s.calls == 3'200 && upstream_calls == static_cast<int>(s.batches) ? 0
                                                                                                : 1;
}
