// The adaptive limiter finding an upstream's capacity, on a simulated clock (1 ms ticks, 3 s).
// The upstream serves 20 requests at once in 10 ms; beyond that requests queue (latency grows
// with load) and beyond 40 in flight it refuses them at once (a 503). 100 clients want a
// request in flight all the time. Without a limiter 100 would pile up; AIMD and Gradient2
// settle the limit near the capacity, shedding the excess before it reaches the upstream.
#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>

#include "sluice/base/clock.h"
#include "sluice/flow/adaptive_limiter.h"

namespace flow = sluice::flow;
using namespace std::chrono_literals;

namespace {

constexpr uint32_t kCapacity = 20;
constexpr uint32_t kRefuseAbove = 40;
constexpr uint32_t kClients = 100;

struct Request {
  flow::LimiterToken token;
  sluice::TimePoint done;
  bool refused;
};

// Prints the limit every 500 ms; returns the mean number in flight.
double simulate(const char* name, std::unique_ptr<flow::LimitPolicy> policy) {
  sluice::base::ManualClock clock;
  flow::AdaptiveLimiter limiter(std::move(policy),
                                {.initial_limit = 10, .min_limit = 1, .max_limit = 200}, clock);
  std::deque<Request> in_flight;  // completion times are not ordered: scan
  uint64_t in_flight_sum = 0;
  std::printf("%-8s limit every 500 ms:", name);
  for (int tick = 1; tick <= 3000; ++tick) {
    clock.advance(1ms);
    const auto now = clock.now();
    for (auto it = in_flight.begin(); it != in_flight.end();) {
      if (it->done > now) {
        ++it;
        continue;
      }
      if (it->refused) {
        it->token.on_dropped();
      } else {
        it->token.on_success();
      }
      it = in_flight.erase(it);
    }
    while (in_flight.size() < kClients) {
      auto token = limiter.try_acquire();
      if (!token) break;  // shed: the gateway answers 503 itself, the upstream never sees it
      const uint32_t n = limiter.in_flight();
      const bool refused = n > kRefuseAbove;
      const sluice::Duration latency =
          n <= kCapacity ? sluice::Duration(10ms) : 10ms * n / kCapacity;
      in_flight.push_back(
          {std::move(*token), now + (refused ? sluice::Duration(1ms) : latency), refused});
    }
    in_flight_sum += in_flight.size();
    if (tick % 500 == 0) std::printf(" %u", limiter.limit());
  }
  const auto s = limiter.stats();
  std::printf(
      "\n         %llu admitted, %llu shed, %llu refused upstream, mean in flight %.1f, "
      "min_rtt %.1f ms\n",
      static_cast<unsigned long long>(s.acquired_total),
      static_cast<unsigned long long>(s.rejected_total),
      static_cast<unsigned long long>(s.dropped_total), static_cast<double>(in_flight_sum) / 3000.0,
      std::chrono::duration<double, std::milli>(s.min_rtt).count());
  return static_cast<double>(in_flight_sum) / 3000.0;
}

}  // namespace

int main() {
  const double aimd = simulate("aimd", std::make_unique<flow::AimdPolicy>(flow::AimdPolicy::Options{
                                           .backoff_ratio = 0.9, .timeout = 15ms}));
  const double gradient = simulate("gradient", std::make_unique<flow::GradientPolicy>());
  // Without a limiter all 100 clients would be in flight. Both policies must hold the upstream
  // near its capacity: AIMD reacts to the 15 ms timeout; Gradient2 tolerates up to 1.5x its
  // long-term average latency, and that average follows sustained load, so it sits higher.
  return aimd < 50 && gradient < 50 ? 0 : 1;
}
