// HTTP server: starts on port 0 with two workers, sends itself a few requests over loopback
// (keep-alive GETs, a streamed chunked response, a POST, and a smuggling attempt that gets
// 400), prints what came back and the server's counters, then stops with draining.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <cstdio>
#include <string>

#include "sluice/http/server.h"

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using tcp = asio::ip::tcp;

namespace {

asio::awaitable<void> handle(sluice::http::Request& req, sluice::http::ResponseWriter& w) {
  bh::fields headers;
  headers.set(bh::field::content_type, "text/plain");
  if (req.target() == "/stream") {
    // Three chunks, each written as it is produced; each write waits for the socket.
    (void)co_await w.write_head(bh::status::ok, std::move(headers));
    for (int i = 1; i <= 3; ++i) (void)co_await w.write_chunk("token" + std::to_string(i) + " ");
    (void)co_await w.finish();
    co_return;
  }
  std::string body = "hello from worker " + std::to_string(w.worker_index());
  if (!req.body().empty()) body += ", you sent " + std::to_string(req.body().size()) + " bytes";
  (void)co_await w.send(bh::status::ok, std::move(headers), std::move(body));
}

}  // namespace

int main() {
  sluice::http::ServerOptions options;
  options.workers = 2;
  sluice::http::Server server(options, handle);
  if (const auto ec = server.start()) {
    std::printf("start failed: %s\n", ec.message().c_str());
    return 1;
  }
  std::printf("listening on 127.0.0.1:%u with %zu workers\n", server.port(), server.worker_count());

  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  boost::beast::flat_buffer buffer;
  auto exchange = [&](bh::request<bh::string_body> req) {
    req.set(bh::field::host, "localhost");
    req.prepare_payload();
    bh::write(socket, req);
    bh::response<bh::string_body> res;
    bh::read(socket, buffer, res);
    std::printf("%-6s %-8s -> %u %s\n", std::string(req.method_string()).c_str(),
                std::string(req.target()).c_str(), res.result_int(), res.body().c_str());
  };
  exchange({bh::verb::get, "/hello", 11});
  exchange({bh::verb::get, "/again", 11});
  exchange({bh::verb::get, "/stream", 11});
  bh::request<bh::string_body> post{bh::verb::post, "/upload", 11};
  post.body() = std::string(1000, 'x');
  exchange(std::move(post));

  // A smuggling attempt on a second connection: Transfer-Encoding and Content-Length together.
  tcp::socket attacker(ioc);
  attacker.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  const std::string attack =
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd";
  asio::write(attacker, asio::buffer(attack));
  boost::beast::flat_buffer attack_buffer;
  bh::response<bh::string_body> rejected;
  bh::read(attacker, attack_buffer, rejected);
  std::printf("smuggle attempt -> %u %s\n", rejected.result_int(), rejected.body().c_str());

  socket.close();
  attacker.close();
  server.stop();
  server.wait();
  const auto s = server.stats();
  std::printf(
      "connections %llu, requests %llu (keep-alive reuses %llu), 2xx %llu, 4xx %llu, "
      "bad requests %llu\n",
      static_cast<unsigned long long>(s.connections_accepted),
      static_cast<unsigned long long>(s.requests),
      static_cast<unsigned long long>(s.keepalive_reuses),
      static_cast<unsigned long long>(s.responses_2xx),
      static_cast<unsigned long long>(s.responses_4xx),
      static_cast<unsigned long long>(s.bad_requests_total()));
  std::printf("bytes in %llu, bytes out %llu\n", static_cast<unsigned long long>(s.bytes_in),
              static_cast<unsigned long long>(s.bytes_out));
  const bool ok = s.requests == 4 && s.responses_2xx == 4 && s.bad_requests_total() == 1 &&
                  rejected.result_int() == 400;
  return ok ? 0 : 1;
}
