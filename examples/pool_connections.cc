// ConnectionTracker: a simulated upstream connection lifecycle on a ManualClock. Two hosts,
// per-host and total limits, one flaky connection evicted for its error rate, idle and age
// evictions by `cleanup`, and the reuse rate at the end.
#include <cstdio>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/pool/connection_tracker.h"

int main() {
  using namespace sluice::pool;
  using std::chrono::seconds;
  sluice::base::ManualClock clock;
  ConnectionTracker tracker({.max_idle_time = seconds(60),
                             .max_age = seconds(300),
                             .max_error_rate = 0.5,
                             .min_requests_for_error_rate = 10,
                             .max_total = 6,
                             .max_per_host = 4});
  size_t closed_by_tracker = 0;
  size_t waits = 0;
  // 20 minutes of traffic: every second, 3 concurrent requests to "llm", 1 to "search"; the
  // third connection ever made to "llm" fails 60% of its requests.
  for (int tick = 0; tick < 1200; ++tick) {
    if (tick == 400) clock.advance(seconds(90));  // a quiet spell: idle connections expire
    std::vector<ConnectionId> in_use;
    for (const char* host : {"llm:443", "llm:443", "llm:443", "search:443"}) {
      SlotResult slot = tracker.acquire_slot(host, clock.now());
      closed_by_tracker += slot.to_close.size();
      if (slot.decision == SlotDecision::kWait) {
        ++waits;
        continue;
      }
      const bool flaky = slot.id == 3;
      const bool ok = !flaky || (tick % 5 < 2);
      tracker.record_request(slot.id, ok, 800, 12'000);
      in_use.push_back(slot.id);
    }
    for (ConnectionId id : in_use) {
      if (tracker.release(id, clock.now())) ++closed_by_tracker;
    }
    if (tick % 30 == 0) closed_by_tracker += tracker.cleanup(clock.now()).size();
    clock.advance(seconds(1));
  }
  closed_by_tracker += tracker.shutdown().size();

  const ConnectionStats s = tracker.stats();
  std::printf("requests %llu, connections created %llu, reused %llu: reuse rate %.1f%%\n",
              static_cast<unsigned long long>(s.requests),
              static_cast<unsigned long long>(s.created), static_cast<unsigned long long>(s.reused),
              100 * s.reuse_rate());
  std::printf("destroyed %llu:", static_cast<unsigned long long>(s.destroyed_total()));
  for (size_t r = 0; r < kCloseReasonCount; ++r) {
    if (s.destroyed[r] != 0) {
      std::printf(" %s=%llu", std::string(to_string(static_cast<CloseReason>(r))).c_str(),
                  static_cast<unsigned long long>(s.destroyed[r]));
    }
  }
  std::printf("\n");
  for (const auto& h : tracker.host_stats()) {
    std::printf("  %-11s created %llu, reuse %.1f%%, errors %llu, waits %llu\n", h.host.c_str(),
                static_cast<unsigned long long>(h.stats.created), 100 * h.stats.reuse_rate(),
                static_cast<unsigned long long>(h.stats.errors),
                static_cast<unsigned long long>(h.stats.waits));
  }
  const bool ok = s.destroyed_total() == s.created && closed_by_tracker == s.created &&
                  s.destroyed_by(CloseReason::kErrorRate) >= 1 &&
                  s.destroyed_by(CloseReason::kIdle) >= 1 &&
                  s.destroyed_by(CloseReason::kAge) >= 1 && s.reuse_rate() > 0.9 && waits == 0;
  return ok ? 0 : 1;
}
