// rate: open-loop constant request rate over keep-alive connections (the wrk2 model), or closed
// loop with `rate == 0`; Zipf keys and tenants optional.
#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <latch>
#include <memory>
#include <stdexcept>

#include "bench/loadgen/connection.h"
#include "bench/loadgen/io_pool.h"
#include "bench/loadgen/loadgen.h"
#include "sluice/base/random.h"
#include "sluice/cache/workload.h"

namespace sluice::loadgen {

using internal::Connection;
using internal::Exchange;
using internal::IoPool;
namespace asio = internal::asio;
using Clock = std::chrono::steady_clock;

namespace {

// What one connection saw; merged into the report after the threads stop.
struct ConnectionTally {
  uint64_t sent = 0;
  uint64_t completed = 0;
  uint64_t unsent = 0;  // scheduled before the end but never sent (the run fell behind)
  uint64_t body_bytes = 0;
  std::map<std::string, uint64_t> errors;
  std::map<int, uint64_t> statuses;
  std::map<std::string, uint64_t> x_cache;
  Clock::time_point last_done{};
};

std::chrono::nanoseconds to_ns(double seconds) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(seconds));
}

}  // namespace

Report run_rate(const RateOptions& options) {
  std::string error;
  auto target = Target::parse(options.common.url, error);
  if (!target) throw std::invalid_argument(error);
  if (options.connections == 0) throw std::invalid_argument("--connections must be >= 1");
  if (options.rate < 0 || options.duration_s <= 0) {
    throw std::invalid_argument("--rate must be >= 0 and --duration > 0");
  }
  const auto endpoints = internal::resolve(target->host, target->port);
  const auto timeout = to_ns(options.common.timeout_s);
  const unsigned n = options.connections;
  const bool open_loop = options.rate > 0;
  const uint64_t keys = std::max<uint64_t>(options.keys, 1);
  const cache::ZipfGenerator zipf(keys, options.zipf_s);
  // Falling behind by more than this past the end stops sending (those requests are `unsent`).
  const auto grace = std::chrono::seconds(1);

  IoPool pool(options.common.threads);
  std::vector<std::unique_ptr<Connection>> connections;
  for (unsigned i = 0; i < n; ++i) {
    connections.push_back(std::make_unique<Connection>(pool.context(i).get_executor()));
  }
  std::latch connected(n);
  for (unsigned i = 0; i < n; ++i) {
    asio::co_spawn(
        pool.context(i),
        [&, i]() -> asio::awaitable<void> {
          co_await connections[i]->connect(endpoints);
          connected.count_down();
        },
        asio::detached);
  }
  pool.start();
  connected.wait();

  metrics::Histogram latency(metrics::HistogramOptions::seconds(1000));
  metrics::Histogram service(metrics::HistogramOptions::seconds(1000));
  std::vector<ConnectionTally> tallies(n);
  std::atomic<uint64_t> budget{options.requests};  // closed loop with a request count
  std::latch done(n);
  // Open loop starts a little later, so that every connection's coroutine is waiting on time.
  const auto start =
      Clock::now() + (open_loop ? std::chrono::milliseconds(20) : std::chrono::milliseconds(0));
  const auto end = start + to_ns(options.duration_s);
  // Each connection sends every `interval`; connection i is offset by i / rate so that the
  // sends of all connections are evenly spread.
  const auto interval = open_loop ? to_ns(n / options.rate) : std::chrono::nanoseconds(0);
  const auto offset = open_loop ? to_ns(1.0 / options.rate) : std::chrono::nanoseconds(0);

  for (unsigned i = 0; i < n; ++i) {
    asio::co_spawn(
        pool.context(i),
        [&, i]() -> asio::awaitable<void> {
          Connection& conn = *connections[i];
          ConnectionTally& tally = tallies[i];
          base::Xoshiro256 rng(options.seed * 1000003 + i);
          asio::steady_timer timer(co_await asio::this_coro::executor);
          auto next = start + offset * i;
          while (true) {
            Clock::time_point intended;
            if (open_loop) {
              if (next >= end) break;
              if (Clock::now() > end + grace) {
                tally.unsent += static_cast<uint64_t>((end - next) / interval) + 1;
                break;
              }
              timer.expires_at(next);
              co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
              intended = next;
              next += interval;
            } else {
              if (Clock::now() >= end) break;
              if (options.requests > 0) {
                uint64_t left = budget.load(std::memory_order_relaxed);
                do {
                  if (left == 0) break;
                } while (!budget.compare_exchange_weak(left, left - 1));
                if (left == 0) break;
              }
              intended = Clock::now();
            }
            if (!conn.is_open() && !co_await conn.connect(endpoints)) {
              ++tally.errors["connect"];
              if (!open_loop) {  // do not spin on a refused port
                timer.expires_after(std::chrono::milliseconds(10));
                co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
              }
              continue;
            }
            std::optional<uint64_t> key;
            if (keys > 1) key = zipf.next(rng);
            const int tenant =
                options.tenants > 0 ? static_cast<int>(rng.uniform(0, options.tenants - 1)) : -1;
            const std::string request = build_request(*target, options.common, key, tenant);
            const auto sent_at = Clock::now();
            ++tally.sent;
            const Exchange r = co_await conn.exchange(request, timeout);
            const auto now = Clock::now();
            if (!r.ok) {
              ++tally.errors[r.error];
              continue;
            }
            latency.record(now - intended);
            service.record(now - sent_at);
            ++tally.completed;
            ++tally.statuses[r.status];
            ++tally.x_cache[r.x_cache];
            tally.body_bytes += r.body_bytes;
            tally.last_done = now;
          }
          conn.close();
          done.count_down();
        },
        asio::detached);
  }
  done.wait();
  pool.stop();
  pool.join();

  Report report;
  report.mode = "rate";
  report.label = options.common.label;
  Clock::time_point last_done = start;
  uint64_t unsent = 0;
  for (const auto& t : tallies) {
    report.sent += t.sent;
    report.completed += t.completed;
    report.body_bytes += t.body_bytes;
    unsent += t.unsent;
    for (const auto& [k, v] : t.errors) report.errors[k] += v;
    for (const auto& [k, v] : t.statuses) report.statuses[k] += v;
    for (const auto& [k, v] : t.x_cache) report.x_cache[k] += v;
    last_done = std::max(last_done, t.last_done);
  }
  report.elapsed_s = seconds_between(start, last_done);
  report.latency = latency.snapshot();
  report.service_time = service.snapshot();
  report.extra["target_rate"] = options.rate;
  report.extra["achieved_rate"] =
      report.elapsed_s > 0 ? static_cast<double>(report.completed) / report.elapsed_s : 0.0;
  report.extra["unsent"] = unsent;
  report.extra["connections"] = n;
  report.extra["threads"] = pool.size();
  report.extra["keys"] = keys;
  report.extra["zipf_s"] = options.zipf_s;
  report.extra["tenants"] = options.tenants;
  report.extra["url"] = options.common.url;
  return report;
}

}  // namespace sluice::loadgen
