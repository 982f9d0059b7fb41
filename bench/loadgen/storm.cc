// storm: N warmed connections, one identical request each, released at one instant.
#include <atomic>
#include <barrier>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <latch>
#include <memory>
#include <stdexcept>

#include "bench/loadgen/connection.h"
#include "bench/loadgen/io_pool.h"
#include "bench/loadgen/loadgen.h"

namespace sluice::loadgen {

using internal::Connection;
using internal::Exchange;
using internal::IoPool;
using internal::tcp;
using internal::asio::awaitable;
namespace asio = internal::asio;
using SteadyTime = std::chrono::steady_clock::time_point;

Report run_storm(const StormOptions& options) {
  std::string error;
  auto target = Target::parse(options.common.url, error);
  if (!target) throw std::invalid_argument(error);
  const auto endpoints = internal::resolve(target->host, target->port);
  const std::string request = build_request(*target, options.common, std::nullopt, -1);
  const auto timeout = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(options.common.timeout_s));
  const unsigned n = options.connections;

  IoPool pool(options.common.threads);
  std::vector<std::unique_ptr<Connection>> connections;
  connections.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    connections.push_back(std::make_unique<Connection>(pool.context(i).get_executor()));
  }

  // Phase 1: open every connection.
  std::latch connected(n);
  for (unsigned i = 0; i < n; ++i) {
    asio::co_spawn(
        pool.context(i),
        [&, i]() -> awaitable<void> {
          co_await connections[i]->connect(endpoints);
          connected.count_down();
        },
        asio::detached);
  }
  pool.start();
  connected.wait();

  // Phase 2: every I/O thread meets at the barrier; its completion takes the common instant;
  // then each thread writes its connections' requests back to back and starts their reads.
  SteadyTime t0;
  std::atomic<int64_t> last_write_ns{0};
  auto on_release = [&t0]() noexcept { t0 = std::chrono::steady_clock::now(); };
  std::barrier release(static_cast<std::ptrdiff_t>(pool.size()), on_release);
  std::latch done(n);
  std::vector<Exchange> results(n);
  // One byte per connection (not vector<bool>: threads write neighbouring entries).
  std::vector<uint8_t> written(n, 0);
  metrics::Histogram latency(metrics::HistogramOptions::seconds(1000));
  for (size_t t = 0; t < pool.size(); ++t) {
    asio::post(pool.context(t), [&, t] {
      release.arrive_and_wait();
      for (unsigned i = static_cast<unsigned>(t); i < n; i += static_cast<unsigned>(pool.size())) {
        Connection& c = *connections[i];
        boost::system::error_code ec;
        if (c.is_open()) asio::write(c.socket(), asio::buffer(request), ec);
        written[i] = c.is_open() && !ec;
      }
      const auto spread = std::chrono::steady_clock::now() - t0;
      int64_t prev = last_write_ns.load();
      while (prev < spread.count() && !last_write_ns.compare_exchange_weak(prev, spread.count())) {
      }
      for (unsigned i = static_cast<unsigned>(t); i < n; i += static_cast<unsigned>(pool.size())) {
        if (!written[i]) {
          results[i].error = connections[i]->is_open() ? "write" : "connect";
          done.count_down();
          continue;
        }
        asio::co_spawn(
            pool.context(t),
            [&, i]() -> awaitable<void> {
              results[i] = co_await connections[i]->exchange(request, timeout, true);
              if (results[i].ok) latency.record(std::chrono::steady_clock::now() - t0);
              done.count_down();
            },
            asio::detached);
      }
    });
  }
  done.wait();
  const auto finished = std::chrono::steady_clock::now();
  pool.stop();
  pool.join();

  Report report;
  report.mode = "storm";
  report.label = options.common.label;
  for (unsigned i = 0; i < n; ++i) {
    if (written[i]) ++report.sent;
    const Exchange& r = results[i];
    if (r.ok) {
      ++report.completed;
      ++report.statuses[r.status];
      ++report.x_cache[r.x_cache];
      report.body_bytes += r.body_bytes;
    } else {
      ++report.errors[r.error];
    }
  }
  report.elapsed_s = seconds_between(t0, finished);
  report.latency = latency.snapshot();
  report.extra["connections"] = n;
  report.extra["threads"] = pool.size();
  report.extra["release_spread_ms"] = static_cast<double>(last_write_ns.load()) / 1e6;
  report.extra["url"] = options.common.url;
  return report;
}

}  // namespace sluice::loadgen
