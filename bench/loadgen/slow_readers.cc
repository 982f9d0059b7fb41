// slow-readers: M connections read a large or streaming response at B bytes/s each.
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <chrono>
#include <latch>
#include <memory>
#include <stdexcept>

#include "bench/loadgen/connection.h"
#include "bench/loadgen/io_pool.h"
#include "bench/loadgen/loadgen.h"

namespace sluice::loadgen {

namespace asio = internal::asio;
namespace beast = internal::beast;
namespace http = internal::http;
using internal::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct ReaderTally {
  bool written = false;
  bool finished = false;  // the whole response was read
  bool cut = false;       // stopped at the deadline
  const char* error = nullptr;
  int status = 0;
  uint64_t bytes = 0;
  double seconds = 0;  // from the send to the last byte read
};

}  // namespace

Report run_slow_readers(const SlowReaderOptions& options) {
  std::string error;
  auto target = Target::parse(options.common.url, error);
  if (!target) throw std::invalid_argument(error);
  if (options.bytes_per_second <= 0 || options.chunk == 0) {
    throw std::invalid_argument("--bytes-per-second and --chunk must be > 0");
  }
  const auto endpoints = internal::resolve(target->host, target->port);
  const std::string request = build_request(*target, options.common, std::nullopt, -1);
  const unsigned n = options.connections;

  internal::IoPool pool(options.common.threads);
  metrics::Histogram ttfb(metrics::HistogramOptions::seconds(1000));
  std::vector<ReaderTally> tallies(n);
  std::latch done(n);
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(options.duration_s));

  for (unsigned i = 0; i < n; ++i) {
    asio::co_spawn(
        pool.context(i),
        [&, i]() -> asio::awaitable<void> {
          ReaderTally& tally = tallies[i];
          auto executor = co_await asio::this_coro::executor;
          tcp::socket socket(executor);
          asio::steady_timer timer(executor);
          boost::system::error_code ec;
          // A small receive buffer, so that the server feels the slow reader at once.
          socket.open(endpoints.begin()->endpoint().protocol(), ec);
          if (!ec) {
            socket.set_option(asio::socket_base::receive_buffer_size(
                                  static_cast<int>(std::max<size_t>(options.chunk, 1024))),
                              ec);
          }
          if (!ec) {
            std::tie(ec) = co_await socket.async_connect(*endpoints.begin(),
                                                         asio::as_tuple(asio::use_awaitable));
          }
          if (ec) {
            tally.error = "connect";
            done.count_down();
            co_return;
          }
          const auto sent_at = Clock::now();
          std::tie(ec, std::ignore) = co_await asio::async_write(
              socket, asio::buffer(request), asio::as_tuple(asio::use_awaitable));
          if (ec) {
            tally.error = "write";
            done.count_down();
            co_return;
          }
          tally.written = true;
          beast::flat_buffer buffer(std::max<size_t>(options.chunk, 8192));
          http::response_parser<http::buffer_body> parser;
          parser.body_limit(boost::none);
          std::tie(ec, std::ignore) = co_await http::async_read_header(
              socket, buffer, parser, asio::as_tuple(asio::use_awaitable));
          if (ec) {
            tally.error = "read";
            done.count_down();
            co_return;
          }
          ttfb.record(Clock::now() - sent_at);
          tally.status = static_cast<int>(parser.get().result_int());
          std::vector<char> chunk(options.chunk);
          while (!parser.is_done()) {
            if (Clock::now() >= deadline) {
              tally.cut = true;
              break;
            }
            parser.get().body().data = chunk.data();
            parser.get().body().size = chunk.size();
            std::tie(ec, std::ignore) = co_await http::async_read(
                socket, buffer, parser, asio::as_tuple(asio::use_awaitable));
            if (ec == http::error::need_buffer) ec = {};
            tally.bytes += chunk.size() - parser.get().body().size;
            if (ec) {
              tally.error = "read";
              break;
            }
            // Pace: do not read past bytes_per_second since the send.
            const auto due =
                sent_at + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                              static_cast<double>(tally.bytes) / options.bytes_per_second));
            if (due > Clock::now()) {
              timer.expires_at(std::min(due, deadline));
              co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
            }
          }
          tally.finished = parser.is_done();
          tally.seconds = std::chrono::duration<double>(Clock::now() - sent_at).count();
          socket.close(ec);
          done.count_down();
        },
        asio::detached);
  }
  pool.start();
  done.wait();
  const auto finished_at = Clock::now();
  pool.stop();
  pool.join();

  Report report;
  report.mode = "slow-readers";
  report.label = options.common.label;
  uint64_t finished = 0, cut = 0;
  double rate_sum = 0;
  for (const auto& t : tallies) {
    if (t.written) ++report.sent;
    if (t.error) ++report.errors[t.error];
    if (t.status) ++report.statuses[t.status];
    if (t.finished) ++report.completed;
    finished += t.finished ? 1 : 0;
    cut += t.cut ? 1 : 0;
    report.body_bytes += t.bytes;
    if (t.seconds > 0) rate_sum += static_cast<double>(t.bytes) / t.seconds;
  }
  report.elapsed_s = seconds_between(start, finished_at);
  report.latency = ttfb.snapshot();  // time to the response head
  report.extra["latency_is"] = "time to response head";
  report.extra["cut_at_deadline"] = cut;
  report.extra["mean_read_rate_Bps"] = n > 0 ? rate_sum / n : 0.0;
  report.extra["target_rate_Bps"] = options.bytes_per_second;
  report.extra["connections"] = n;
  report.extra["url"] = options.common.url;
  return report;
}

}  // namespace sluice::loadgen
