// Pooled keep-alive client vs a new connection per request, against sluice::http::Server on
// loopback (one worker thread), one request in flight at a time.
//
//   cmake --build build/release --target sluice_http_benchmark
//   build/release/sluice/http/sluice_http_benchmark --benchmark_filter=BM_Client
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true   (one line)
//
// Sample (release, shared 2-core machine, load average 14, medians of 5, min_time 0.3 s):
//   BM_ClientNewConnectionPerRequest  276.9 us/request   3.6 k req/s   (baseline)
//   BM_ClientPooledKeepAlive          118.6 us/request   8.4 k req/s   2.33x the baseline
// (also in docs/modules/http.md, section Client).
#include <benchmark/benchmark.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <stdexcept>
#include <string>

#include "sluice/http/client.h"

namespace {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using sluice::http::Client;
using sluice::http::ClientOptions;
using sluice::http::Origin;
using sluice::http::Request;

std::unique_ptr<sluice::http::Server> start_server() {
  sluice::http::ServerOptions options;
  options.workers = 1;
  auto server = std::make_unique<sluice::http::Server>(
      options, [](Request&, sluice::http::ResponseWriter& w) -> asio::awaitable<void> {
        (void)co_await w.send(bh::status::ok, {}, "hello");
      });
  if (server->start()) throw std::runtime_error("server start failed");
  return server;
}

// Runs `state`'s iterations as sequential requests; `pooled` false closes the idle connection
// after each request so the next one connects again.
void run_requests(benchmark::State& state, bool pooled) {
  auto server = start_server();
  const Origin origin = *Origin::parse("http://127.0.0.1:" + std::to_string(server->port()));
  asio::io_context ioc;
  Client client(ioc.get_executor(), ClientOptions{});
  const Request request(bh::verb::get, "/", 11);
  bool failed = false;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        for (auto _ : state) {
          auto r = co_await client.send(origin, request);
          if (!r) {
            failed = true;
            break;
          }
          auto body = co_await r->read_all(1024);
          benchmark::DoNotOptimize(body);
          if (!pooled) client.close_idle();
        }
      },
      asio::detached);
  ioc.run();
  if (failed) state.SkipWithError("request failed");
  const auto s = client.stats();
  state.counters["reuse_rate"] = s.reuse_rate();
  state.counters["connections"] = static_cast<double>(s.connections_created);
  state.SetItemsProcessed(state.iterations());
  server->stop();
  server->wait();
}

// Baseline: a new TCP connection for every request.
void BM_ClientNewConnectionPerRequest(benchmark::State& state) { run_requests(state, false); }
BENCHMARK(BM_ClientNewConnectionPerRequest)->UseRealTime();

void BM_ClientPooledKeepAlive(benchmark::State& state) { run_requests(state, true); }
BENCHMARK(BM_ClientPooledKeepAlive)->UseRealTime();

}  // namespace
