#include <chrono>
#include <mutex>
#include <ostream>
#include <span>
#include <stdexcept>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/batch/batcher.h"
#include "sluice/batch/micro_batcher.h"
#include "tools/sluice/tour.h"

namespace {

class CountingSink final : public sluice::batch::Sink<int> {
 public:
  boost::system::error_code write(std::span<const int> items) override {
    ++calls_;
    if (down_) return boost::system::errc::make_error_code(boost::system::errc::io_error);
    rows_ += items.size();
    return {};
  }
  bool down_ = false;
  std::size_t calls_ = 0;
  std::size_t rows_ = 0;
};

void tour_batch(std::ostream& out) {
  using namespace std::chrono_literals;
  // Batcher, pumped by hand on a manual clock so the steps are exact.
  sluice::base::ManualClock clock;
  CountingSink sink;
  std::size_t spilled = 0;
  sluice::batch::BatcherOptions o;
  o.mode = sluice::batch::RunMode::manual;
  o.batch_size = 100;
  o.flush_interval = 1s;
  o.max_queue = 1'000;
  o.max_retries = 2;
  sluice::batch::Batcher<int> b(
      sink, o,
      [&](std::span<const int> items) {
        spilled += items.size();
        return boost::system::error_code{};
      },
      clock);
  for (int i = 0; i < 1'050; ++i) (void)b.add(i);
  b.pump();
  out << "batcher: 1050 adds (max_queue 1000, drop_newest) -> " << b.stats().written
      << " written in " << b.stats().batches << " batches of 100, " << b.stats().dropped_full
      << " refused, " << b.stats().queue_depth << " queued\n";
  for (int i = 0; i < 30; ++i) (void)b.add(i);
  clock.advance(1s);
  b.pump();
  out << "batcher: +30 adds, 1 s later the partial batch goes: written " << b.stats().written
      << ", avg batch " << b.stats().avg_batch_size() << "\n";
  sink.down_ = true;
  for (int i = 0; i < 100; ++i) (void)b.add(i);
  b.pump();
  clock.advance(100ms);
  b.pump();
  clock.advance(200ms);
  b.pump();
  const auto s = b.stats();
  out << "batcher: sink down -> " << s.sink_failures << " failed writes, " << s.retries
      << " retries (100 ms, 200 ms), then " << s.spilled << " items spilled; lost uncounted: "
      << (s.added - s.written - s.spilled - s.dropped_oldest - s.dropped_sink_failed - s.pending())
      << "\n";
  if (s.written != 1'030 || spilled != 100) throw std::runtime_error("batcher tour: wrong counts");

  // MicroBatcher: 4 threads x 50 calls to an upstream that handles one call at a time.
  std::mutex upstream_mu;
  auto upstream = [&](std::span<int> reqs) {
    std::lock_guard lk(upstream_mu);
    std::this_thread::sleep_for(200us);
    std::vector<sluice::batch::Result<int>> res;
    for (int r : reqs) res.emplace_back(r + 1);
    return res;
  };
  sluice::batch::MicroBatcherOptions mo;
  mo.max_batch = 8;
  mo.max_wait = 1ms;
  sluice::batch::MicroBatcher<int, int> mb(upstream, mo);
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&mb] {
      for (int i = 0; i < 50; ++i) (void)mb.call(i);
    });
  }
  for (auto& c : callers) c.join();
  mb.stop();
  const auto ms = mb.stats();
  out << "micro-batcher: " << ms.calls << " calls -> " << ms.batches
      << " upstream calls, batch size min " << ms.min_batch_size << " avg " << ms.avg_batch_size()
      << " max " << ms.max_batch_size << "\n";
  if (ms.results_ok != 200) throw std::runtime_error("micro-batcher tour: wrong results");
}

SLUICE_TOUR_STEP(60, "batch", tour_batch);

}  // namespace
