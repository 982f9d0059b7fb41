// Batcher: 4 threads add 10,000 items; the flusher writes them in batches of 256 to a sink
// that fails its first two writes (retried with backoff), then stop() drains the rest.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "sluice/base/units.h"
#include "sluice/batch/batcher.h"

namespace {

class FlakySink final : public sluice::batch::Sink<int> {
 public:
  boost::system::error_code write(std::span<const int> items) override {
    if (failures_left_ > 0) {
      --failures_left_;
      return boost::system::errc::make_error_code(boost::system::errc::io_error);
    }
    sum_ += static_cast<long long>(items.size());
    return {};
  }
  long long sum() const { return sum_; }

 private:
  int failures_left_ = 2;
  long long sum_ = 0;
};

}  // namespace

int main() {
  FlakySink sink;
  sluice::batch::BatcherOptions o;
  o.batch_size = 256;
  o.flush_interval = std::chrono::milliseconds(50);
  o.max_queue = 4'096;
  o.overflow = sluice::batch::OverflowPolicy::block;
  o.retry_base_delay = std::chrono::milliseconds(1);
  sluice::batch::Batcher<int> batcher(sink, o);
  std::vector<std::thread> producers;
  for (int t = 0; t < 4; ++t) {
    producers.emplace_back([&batcher, t] {
      for (int i = 0; i < 2'500; ++i) (void)batcher.add(t * 2'500 + i);
    });
  }
  for (auto& p : producers) p.join();
  batcher.stop();
  const auto s = batcher.stats();
  std::printf("added %llu, written %llu in %llu batches (avg %.1f items)\n",
              static_cast<unsigned long long>(s.added), static_cast<unsigned long long>(s.written),
              static_cast<unsigned long long>(s.batches), s.avg_batch_size());
  std::printf(
      "sink failures %llu, retries %llu, spilled %llu, dropped %llu\n",
      static_cast<unsigned long long>(s.sink_failures), static_cast<unsigned long long>(s.retries),
      static_cast<unsigned long long>(s.spilled), static_cast<unsigned long long>(s.dropped()));
  std::printf("max queue depth %llu, flush latency avg %s max %s\n",
              static_cast<unsigned long long>(s.max_queue_depth),
              sluice::base::format_duration(s.avg_flush_latency()).c_str(),
              sluice::base::format_duration(s.max_flush_latency).c_str());
  return s.written == 10'000 && sink.sum() == 10'000 && s.retries == 2 ? 0 : 1;
}
