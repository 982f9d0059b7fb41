#include <ostream>
#include <string>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/pool/buffer_pool.h"
#include "sluice/pool/connection_tracker.h"
#include "sluice/pool/object_pool.h"
#include "tools/sluice/tour.h"

namespace {

void tour_pool(std::ostream& out) {
  using namespace sluice::pool;
  using std::chrono::seconds;

  ObjectPool<std::string> strings([] { return std::make_unique<std::string>(); },
                                  [](std::string& s) { s.clear(); }, {.max_idle = 2});
  for (int i = 0; i < 100; ++i) {
    auto a = strings.acquire().value();
    auto b = strings.acquire().value();
    a->assign("request scratch");
  }
  const auto os = strings.stats();
  out << "ObjectPool: 200 acquires, " << os.created << " created, " << os.reused
      << " reused (reuse " << static_cast<int>(100 * os.reuse_rate()) << "%)\n";

  BufferPool buffers;
  for (size_t size : {700u, 3000u, 3000u, 60000u, 60000u, 3'000'000u}) {
    auto b = buffers.acquire(size);
  }
  const auto bs = buffers.stats();
  out << "BufferPool: 6 chunks (700 B .. 3 MB) -> classes 1 KiB, 4 KiB, 64 KiB; reused "
      << bs.total.reused << ", oversized " << bs.oversized << ", idle " << bs.idle_bytes
      << " bytes\n";

  sluice::base::ManualClock clock;
  ConnectionTracker tracker({.max_idle_time = seconds(60), .max_per_host = 2});
  for (int i = 0; i < 50; ++i) {
    auto slot = tracker.acquire_slot("upstream:443", clock.now());
    tracker.record_request(slot.id, true, 500, 5000);
    (void)tracker.release(slot.id, clock.now());
    clock.advance(seconds(1));
  }
  clock.advance(seconds(61));
  const auto evicted = tracker.cleanup(clock.now());
  const auto cs = tracker.stats();
  out << "ConnectionTracker: 50 requests on " << cs.created << " connection(s), reuse "
      << static_cast<int>(100 * cs.reuse_rate()) << "%; after 61 s idle, cleanup closed "
      << evicted.size() << " ("
      << to_string(evicted.empty() ? CloseReason::kIdle : evicted[0].reason) << ")\n";
}

SLUICE_TOUR_STEP(70, "pool", tour_pool);

}  // namespace
