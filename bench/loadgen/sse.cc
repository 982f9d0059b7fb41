// sse: N subscribers on one event stream, one publisher, publish-to-receive latency.
//
// Subscribers: raw sockets (`GET <url>`, `Accept: text/event-stream`) spread over the I/O
// threads; the stream is scanned for `data: t=<ns> seq=<n>` (framing-agnostic: chunk sizes
// and other fields are skipped), so any SSE server can be measured (sluice's broadcaster,
// nchan). Each event carries the publisher's send time (steady clock, same host), so the
// latency of every delivery is known exactly. `slow` of the subscribers never read (their
// server must not grow); `churn` subscribers per second disconnect and reconnect (soak).
// Publisher: one keep-alive connection POSTing `--events` events at `--rate` per second
// (0 = each as soon as the previous was answered), each padded to `--size` bytes.
#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <latch>
#include <memory>
#include <stdexcept>
#include <thread>

#include "bench/loadgen/connection.h"
#include "bench/loadgen/io_pool.h"
#include "bench/loadgen/loadgen.h"

namespace sluice::loadgen {

namespace asio = internal::asio;
using internal::tcp;
using Clock = std::chrono::steady_clock;

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct SseShared {
  std::atomic<uint64_t> deliveries{0};
  std::atomic<uint64_t> connected{0};
  std::atomic<uint64_t> reconnects{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> out_of_order{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<bool> stop{false};
  metrics::Histogram latency{metrics::HistogramOptions::seconds(1000)};
};

// Scans SSE text for `data: t=<ns> seq=<n>`; keeps the unscanned tail between reads.
class Scanner {
 public:
  template <typename OnEvent>
  void feed(const char* data, size_t n, OnEvent on_event) {
    tail_.append(data, n);
    size_t at = 0;
    while (true) {
      const size_t hit = tail_.find("data: t=", at);
      if (hit == std::string::npos) {
        // Keep the last bytes: a marker may straddle two reads.
        if (tail_.size() > 8) at = std::max(at, tail_.size() - 8);
        break;
      }
      const size_t end = tail_.find('\n', hit);
      if (end == std::string::npos) {
        at = hit;
        break;
      }
      int64_t t = 0;
      uint64_t seq = 0;
      const char* p = tail_.data() + hit + 8;
      const char* line_end = tail_.data() + end;
      auto r = std::from_chars(p, line_end, t);
      if (r.ec == std::errc() &&
          std::string_view(r.ptr, static_cast<size_t>(line_end - r.ptr)).starts_with(" seq=")) {
        std::from_chars(r.ptr + 5, line_end, seq);
        on_event(t, seq);
      }
      at = end + 1;
    }
    tail_.erase(0, at);
  }

 private:
  std::string tail_;
};

asio::awaitable<void> subscriber(const tcp::resolver::results_type& endpoints,
                                 const std::string& request, SseShared& shared, bool slow,
                                 Clock::time_point leave_at, std::latch* ready) {
  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  boost::system::error_code ec;
  socket.open(endpoints.begin()->endpoint().protocol(), ec);
  if (!ec && slow) socket.set_option(asio::socket_base::receive_buffer_size(4096), ec);
  if (!ec) {
    std::tie(ec) =
        co_await socket.async_connect(*endpoints.begin(), asio::as_tuple(asio::use_awaitable));
  }
  if (!ec) {
    std::tie(ec, std::ignore) = co_await asio::async_write(socket, asio::buffer(request),
                                                           asio::as_tuple(asio::use_awaitable));
  }
  if (ready != nullptr) ready->count_down();
  if (ec) {
    shared.errors.fetch_add(1);
    co_return;
  }
  shared.connected.fetch_add(1);
  asio::steady_timer timer(executor);
  if (slow) {  // never reads: holds its connection until the end
    while (!shared.stop.load() && Clock::now() < leave_at) {
      timer.expires_after(std::chrono::milliseconds(100));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    shared.connected.fetch_sub(1);
    co_return;
  }
  Scanner scanner;
  uint64_t last_seq = 0;
  std::vector<char> buf(64 * 1024);
  using namespace asio::experimental::awaitable_operators;
  while (!shared.stop.load() && Clock::now() < leave_at) {
    timer.expires_after(std::chrono::milliseconds(200));
    auto got =
        co_await (socket.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable)) ||
                  timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (got.index() == 1) continue;  // no data: check stop / leave time
    auto [rec, n] = std::get<0>(got);
    if (rec) {
      if (!shared.stop.load()) shared.errors.fetch_add(1);
      break;
    }
    shared.bytes.fetch_add(n, std::memory_order_relaxed);
    const int64_t at = now_ns();
    scanner.feed(buf.data(), n, [&](int64_t t, uint64_t seq) {
      shared.latency.record(std::chrono::nanoseconds(at - t));
      shared.deliveries.fetch_add(1, std::memory_order_relaxed);
      if (seq <= last_seq) shared.out_of_order.fetch_add(1, std::memory_order_relaxed);
      last_seq = seq;
    });
  }
  shared.connected.fetch_sub(1);
}

}  // namespace

Report run_sse(const SseOptions& options) {
  std::string error;
  auto target = Target::parse(options.common.url, error);
  if (!target) throw std::invalid_argument(error);
  auto publish = Target::parse(options.publish_url, error);
  if (!publish) throw std::invalid_argument("--publish-url: " + error);
  if (options.size < 48) throw std::invalid_argument("--size must be at least 48 bytes");
  const auto endpoints = internal::resolve(target->host, target->port);
  const auto pub_endpoints = internal::resolve(publish->host, publish->port);
  CommonOptions sub_common = options.common;
  sub_common.headers.push_back("Accept: text/event-stream");
  const std::string request = build_request(*target, sub_common, std::nullopt, -1);

  internal::IoPool pool(options.common.threads);
  SseShared shared;
  const unsigned n = options.subscribers;
  const auto far = Clock::now() + std::chrono::hours(24);
  std::latch ready(n);
  for (unsigned i = 0; i < n; ++i) {
    const bool slow = i < options.slow;
    asio::co_spawn(pool.context(i), subscriber(endpoints, request, shared, slow, far, &ready),
                   asio::detached);
  }
  pool.start();
  ready.wait();
  // Let the server register every subscriber before the first event.
  for (int i = 0; i < 100 && shared.connected.load() < n - std::min<uint64_t>(n, shared.errors);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(options.settle_ms));

  // Churn: every 1/churn s one more subscriber joins for a few seconds and leaves.
  std::atomic<bool> churning{options.churn > 0};
  std::thread churn_thread;
  if (options.churn > 0) {
    churn_thread = std::thread([&] {
      uint64_t k = 0;
      while (churning.load()) {
        const auto leave = Clock::now() + std::chrono::seconds(2 + k % 5);
        asio::co_spawn(pool.context(k),
                       subscriber(endpoints, request, shared, k % 10 == 0, leave, nullptr),
                       asio::detached);
        shared.reconnects.fetch_add(1);
        ++k;
        std::this_thread::sleep_for(std::chrono::duration<double>(1.0 / options.churn));
      }
    });
  }

  // The publisher: one keep-alive connection, open loop at `rate` (or closed loop).
  Report report;
  report.mode = "sse";
  report.label = options.common.label;
  const auto start = Clock::now();
  uint64_t sent = 0, failed = 0;
  {
    asio::io_context io;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          internal::Connection conn(co_await asio::this_coro::executor);
          if (!co_await conn.connect(pub_endpoints)) {
            failed = options.events;
            co_return;
          }
          asio::steady_timer timer(co_await asio::this_coro::executor);
          for (uint64_t seq = 1; seq <= options.events; ++seq) {
            if (options.rate > 0) {
              const auto due =
                  start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                              static_cast<double>(seq - 1) / options.rate));
              if (due > Clock::now()) {
                timer.expires_at(due);
                co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
              }
            }
            std::string body =
                "t=" + std::to_string(now_ns()) + " seq=" + std::to_string(seq) + " ";
            if (body.size() < options.size) body.append(options.size - body.size(), 'x');
            const std::string post =
                "POST " + publish->path + " HTTP/1.1\r\nHost: " + publish->authority() +
                "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
            const auto exchange = co_await conn.exchange(post, std::chrono::seconds(10));
            ++sent;
            if (!exchange.ok || exchange.status / 100 != 2) {
              ++failed;
              if (!exchange.ok && !co_await conn.connect(pub_endpoints)) co_return;
            }
          }
        },
        asio::detached);
    io.run();
  }
  const auto published_at = Clock::now();
  // Wait for the deliveries to drain (at most `drain_ms`).
  const uint64_t readers = n - std::min<uint64_t>(n, options.slow);
  const uint64_t expected = (sent - failed) * readers;
  const auto drain_until = Clock::now() + std::chrono::milliseconds(options.drain_ms);
  while (Clock::now() < drain_until && options.churn == 0 && shared.deliveries.load() < expected) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto end = Clock::now();
  churning.store(false);
  if (churn_thread.joinable()) churn_thread.join();
  shared.stop.store(true);
  pool.release();
  pool.join();

  report.sent = sent;
  report.completed = shared.deliveries.load();
  if (failed > 0) report.errors["publish"] = failed;
  if (shared.errors.load() > 0) report.errors["subscriber"] = shared.errors.load();
  report.elapsed_s = std::chrono::duration<double>(end - start).count();
  report.body_bytes = shared.bytes.load();
  report.latency = shared.latency.snapshot();
  const double publish_s = std::chrono::duration<double>(published_at - start).count();
  report.extra["subscribers"] = n;
  report.extra["slow_subscribers"] = options.slow;
  report.extra["events"] = options.events;
  report.extra["rate"] = options.rate;
  report.extra["size"] = options.size;
  report.extra["expected_deliveries"] = options.churn == 0 ? expected : 0;
  report.extra["missing_deliveries"] =
      options.churn == 0 && expected > report.completed ? expected - report.completed : 0;
  report.extra["out_of_order"] = shared.out_of_order.load();
  report.extra["publish_seconds"] = publish_s;
  report.extra["deliveries_per_second"] =
      report.elapsed_s > 0 ? static_cast<double>(report.completed) / report.elapsed_s : 0.0;
  report.extra["churn_joins"] = shared.reconnects.load();
  return report;
}

}  // namespace sluice::loadgen
