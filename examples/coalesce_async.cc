// AsyncCoalescer<T> with coroutines: 1,000 callers on two io_contexts (two threads) ask for
// the same key; the work runs once on the leader's context and every caller resumes on its
// own context. A second wave hits the result cache.
#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sluice/base/units.h"
#include "sluice/coalesce/async_coalescer.h"

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

int main() {
  constexpr int kCallers = 1000;
  sluice::coalesce::CoalescerOptions options;
  options.result_ttl = std::chrono::seconds(30);
  sluice::coalesce::AsyncCoalescer<std::string> coalescer(options);

  asio::io_context loops[2];
  std::atomic<int> executions{0}, wrong_thread{0}, bad{0};
  std::atomic<int64_t> finished_ns{0};
  std::mutex mu;
  std::vector<Clock::time_point> resumed;
  auto slow_upstream = [&]() -> asio::awaitable<std::string> {
    executions.fetch_add(1);
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
    co_await t.async_wait(asio::use_awaitable);
    finished_ns.store(Clock::now().time_since_epoch().count());
    co_return std::string("{\"embedding\":[0.1,0.2,0.3]}");
  };
  std::thread::id loop_thread[2];
  for (int i = 0; i < kCallers; ++i) {
    const int loop = i % 2;
    asio::co_spawn(
        loops[loop],
        [&, loop]() -> asio::awaitable<void> {
          const auto r = co_await coalescer.run("embeddings:hello", slow_upstream);
          const auto now = Clock::now();
          if (std::this_thread::get_id() != loop_thread[loop]) ++wrong_thread;
          if (!r) ++bad;
          std::lock_guard lock(mu);
          resumed.push_back(now);
        },
        asio::detached);
  }
  // Record each loop's thread before any caller can resume.
  std::thread threads[2];
  for (int l = 0; l < 2; ++l) {
    std::promise<void> ready;
    threads[l] = std::thread([&, l] {
      loop_thread[l] = std::this_thread::get_id();
      ready.set_value();
      loops[l].run();
    });
    ready.get_future().wait();
  }
  for (auto& t : threads) t.join();

  const Clock::time_point finished{Clock::duration(finished_ns.load())};
  std::vector<double> release_us;
  for (const auto t : resumed) {
    release_us.push_back(std::chrono::duration<double, std::micro>(t - finished).count());
  }
  std::sort(release_us.begin(), release_us.end());

  // Second wave: served from the cache, the work does not run again.
  asio::io_context again;
  for (int i = 0; i < 100; ++i) {
    asio::co_spawn(again, coalescer.run("embeddings:hello", slow_upstream), asio::detached);
  }
  again.run();

  const auto s = coalescer.stats();
  std::printf("callers: %d on 2 io_contexts + 100 later\n", kCallers);
  std::printf("executions: %d, coalesced: %llu, cache hits: %llu, coalesce rate: %.1f%%\n",
              executions.load(), static_cast<unsigned long long>(s.coalesced),
              static_cast<unsigned long long>(s.cache_hits), 100 * s.coalesce_rate());
  std::printf("resumed on a foreign thread: %d\n", wrong_thread.load());
  std::printf("release latency (work done -> waiter resumed): p50 %.1f us, max %.1f us\n",
              release_us[release_us.size() / 2], release_us.back());
  std::printf("average wait of a coalesced caller: %s\n",
              sluice::base::format_duration(s.average_wait()).c_str());
  const bool ok = executions.load() == 1 && wrong_thread.load() == 0 && bad.load() == 0 &&
                  resumed.size() == kCallers && s.coalesced + s.cache_hits == kCallers + 100 - 1;
  return ok ? 0 : 1;
}
