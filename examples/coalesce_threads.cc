// Coalescer<T> with threads: 16 threads ask for the same slow answer at once; the work runs
// once, the others wait for it, and a second wave is served from the result cache.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "sluice/base/units.h"
#include "sluice/coalesce/coalescer.h"

int main() {
  using Clock = std::chrono::steady_clock;
  constexpr int kThreads = 16;
  sluice::coalesce::CoalescerOptions options;
  options.result_ttl = std::chrono::seconds(30);
  sluice::coalesce::Coalescer<std::string> coalescer(options);

  std::atomic<int> executions{0};
  std::atomic<int64_t> finished_ns{0};
  std::vector<Clock::time_point> returned(kThreads);
  auto slow_upstream = [&] {
    executions.fetch_add(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the slow upstream call
    finished_ns.store(Clock::now().time_since_epoch().count());
    return std::string("{\"answer\":\"Python is a programming language\"}");
  };

  int bad = 0;
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        const auto r = coalescer.run("llm_generate:What is Python?", slow_upstream);
        returned[i] = Clock::now();
        if (!r || r->empty()) ++bad;
      });
    }
  }
  for (int i = 0; i < kThreads; ++i) {  // a second wave, after the first has finished
    if (!coalescer.run("llm_generate:What is Python?", slow_upstream)) ++bad;
  }

  const Clock::time_point finished{Clock::duration(finished_ns.load())};
  sluice::Duration release{0};
  for (const auto t : returned) release = std::max(release, sluice::Duration(t - finished));
  const auto s = coalescer.stats();
  std::printf("callers: %d (two waves of %d)\n", 2 * kThreads, kThreads);
  std::printf("executions: %d, coalesced: %llu, cache hits: %llu, coalesce rate: %.1f%%\n",
              executions.load(), static_cast<unsigned long long>(s.coalesced),
              static_cast<unsigned long long>(s.cache_hits), 100 * s.coalesce_rate());
  std::printf("average wait of a coalesced caller: %s (max %s)\n",
              sluice::base::format_duration(s.average_wait()).c_str(),
              sluice::base::format_duration(s.max_wait).c_str());
  std::printf("release latency (work done -> last thread returned): %s\n",
              sluice::base::format_duration(release).c_str());
  return bad == 0 && executions.load() == 1 && s.coalesced + s.cache_hits == 2 * kThreads - 1 ? 0
                                                                                              : 1;
}
