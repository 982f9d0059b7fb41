// Requests per second of the HTTP server for a tiny 200 response over one keep-alive
// connection on loopback, beside a baseline: a raw Asio loop that answers every request head
// it sees with the same canned bytes, without parsing, framing checks, a handler or counters.
// Both servers run one worker thread; the client is a blocking socket in the benchmark thread.
// `depth` is the number of pipelined requests per round trip (1 = request/response ping-pong).
//
//   cmake --build build/release --target sluice_http_benchmark -j2
//   build/release/sluice/http/sluice_http_benchmark --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true   (one command line)
//
// Sample (2 shared cores, another build running; medians of 5):
//   BM_RawAsioCanned/depth:1    items_per_second=26.1k/s
//   BM_SluiceServer/depth:1     items_per_second=22.8k/s   (0.87x)
//   BM_RawAsioCanned/depth:16   items_per_second=339k/s
//   BM_SluiceServer/depth:16    items_per_second=47.2k/s   (0.14x: one write per response)
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include "sluice/http/server.h"

namespace {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr std::string_view kRequest = "GET /tiny HTTP/1.1\r\nHost: bench\r\nUser-Agent: b\r\n\r\n";
constexpr std::string_view kResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

// The baseline: counts request heads by their terminating empty line and writes one canned
// response per head. No parsing, no limits, no handler.
class CannedServer {
 public:
  CannedServer() : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(ioc_, serve(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~CannedServer() {
    ioc_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::awaitable<void> serve() {
    constexpr auto tuple = asio::as_tuple(asio::use_awaitable);
    auto [ec, socket] = co_await acceptor_.async_accept(tuple);
    if (ec) co_return;
    socket.set_option(tcp::no_delay(true));
    char buf[16384];
    std::string out;
    size_t matched = 0;  // bytes of "\r\n\r\n" matched across reads
    while (true) {
      auto [rec, n] = co_await socket.async_read_some(asio::buffer(buf), tuple);
      if (rec) co_return;
      out.clear();
      for (size_t i = 0; i < n; ++i) {
        const char want = (matched % 2 == 0) ? '\r' : '\n';
        matched = buf[i] == want ? matched + 1 : (buf[i] == '\r' ? 1 : 0);
        if (matched == 4) {
          out.append(kResponse);
          matched = 0;
        }
      }
      if (!out.empty()) {
        auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(out), tuple);
        if (wec) co_return;
      }
    }
  }

  asio::io_context ioc_{1};
  tcp::acceptor acceptor_;
  std::thread thread_;
};

class Client {
 public:
  explicit Client(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("connect failed");
    }
  }
  ~Client() { ::close(fd_); }

  // Sends `depth` pipelined requests and reads `depth` responses of known size.
  bool round_trip(const std::string& requests, size_t depth) {
    if (::send(fd_, requests.data(), requests.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(requests.size())) {
      return false;
    }
    size_t want = depth * kResponse.size();
    char buf[65536];
    while (want > 0) {
      const ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, want), 0);
      if (n <= 0) return false;
      want -= static_cast<size_t>(n);
    }
    return true;
  }

 private:
  int fd_ = -1;
};

void run_client(benchmark::State& state, uint16_t port) {
  const auto depth = static_cast<size_t>(state.range(0));
  std::string requests;
  for (size_t i = 0; i < depth; ++i) requests.append(kRequest);
  Client client(port);
  for (auto _ : state) {
    if (!client.round_trip(requests, depth)) {
      state.SkipWithError("connection failed");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * depth));
}

void BM_RawAsioCanned(benchmark::State& state) {
  CannedServer server;
  run_client(state, server.port());
}
BENCHMARK(BM_RawAsioCanned)->ArgName("depth")->Arg(1)->Arg(16)->UseRealTime();

void BM_SluiceServer(benchmark::State& state) {
  sluice::http::ServerOptions options;
  options.workers = 1;
  sluice::http::Server server(
      options,
      [](sluice::http::Request&, sluice::http::ResponseWriter& w) -> asio::awaitable<void> {
        (void)co_await w.send(bh::status::ok, {}, "ok");
      });
  if (server.start()) {
    state.SkipWithError("start failed");
    return;
  }
  run_client(state, server.port());
  server.stop();
  server.wait();
  const auto stats = server.stats();
  state.counters["server_requests"] = static_cast<double>(stats.requests);
}
BENCHMARK(BM_SluiceServer)->ArgName("depth")->Arg(1)->Arg(16)->UseRealTime();

}  // namespace
