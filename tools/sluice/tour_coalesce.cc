#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <latch>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/units.h"
#include "sluice/coalesce/async_coalescer.h"
#include "sluice/coalesce/coalescer.h"
#include "tools/sluice/tour.h"

namespace {

namespace asio = boost::asio;
using sluice::base::format_duration;

void tour_coalesce(std::ostream& out) {
  // Threads: 8 callers on one key while the work is held open, then a cached second call.
  {
    sluice::coalesce::Coalescer<std::string> c;
    std::atomic<int> executions{0};
    std::latch release(1);
    std::vector<std::jthread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&] {
        (void)c.run("GET /v1/models", [&] {
          ++executions;
          release.wait();
          return std::string("[\"gpt\",\"llama\"]");
        });
      });
    }
    while (c.stats().coalesced < 7) std::this_thread::yield();
    release.count_down();
    threads.clear();
    (void)c.run("GET /v1/models", [] { return std::string(); });
    const auto s = c.stats();
    out << "Coalescer<string>: " << s.total_requests << " calls -> " << executions.load()
        << " execution, " << s.coalesced << " coalesced, " << s.cache_hits
        << " cache hit; coalesce rate " << static_cast<int>(100 * s.coalesce_rate())
        << "%, mean wait " << format_duration(s.average_wait()) << "\n";
    if (executions.load() != 1) throw std::runtime_error("coalesce: work ran more than once");
  }
  // Coroutines: 500 callers on one io_context; the work awaits a 2 ms timer.
  {
    sluice::coalesce::AsyncCoalescer<int> c;
    asio::io_context ctx;
    int executions = 0, resumed = 0;
    for (int i = 0; i < 500; ++i) {
      asio::co_spawn(
          ctx,
          [&]() -> asio::awaitable<void> {
            auto r = co_await c.run("POST /v1/embeddings#9f2c", [&]() -> asio::awaitable<int> {
              ++executions;
              asio::steady_timer t(ctx, std::chrono::milliseconds(2));
              co_await t.async_wait(asio::use_awaitable);
              co_return 768;
            });
            if (r && *r == 768) ++resumed;
          },
          asio::detached);
    }
    ctx.run();
    const auto s = c.stats();
    out << "AsyncCoalescer<int>: " << s.total_requests << " coroutines -> " << executions
        << " execution, " << resumed << " resumed with the result, max wait "
        << format_duration(s.max_wait) << "\n";
    if (executions != 1 || resumed != 500) throw std::runtime_error("coalesce: async fan-out");
  }
}

SLUICE_TOUR_STEP(30, "coalesce", tour_coalesce);

}  // namespace
