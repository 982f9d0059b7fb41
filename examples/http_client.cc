// HTTP client: starts a sluice::http::Server on port 0 as the upstream, then calls it through a
// pooled sluice::http::Client: 20 keep-alive GETs (one connection, reused), a chunked response
// streamed piece by piece, a POST, and a call to a port where nothing listens. Prints what came
// back and the client's counters; exits 0 when everything behaved as expected.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdio>
#include <string>

#include "sluice/http/client.h"

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using sluice::http::Client;
using sluice::http::ClientOptions;
using sluice::http::Origin;
using sluice::http::Request;

namespace {

asio::awaitable<void> upstream(Request& req, sluice::http::ResponseWriter& w) {
  if (req.target() == "/stream") {
    (void)co_await w.write_head(bh::status::ok, {});
    for (int i = 1; i <= 4; ++i) (void)co_await w.write_chunk("token" + std::to_string(i) + " ");
    (void)co_await w.finish();
    co_return;
  }
  // A named body: GCC 12 mishandles a temporary from `?:` inside a co_await expression.
  std::string body = req.method() == bh::verb::post ? "got " + req.body() : "hello";
  (void)co_await w.send(bh::status::ok, {}, std::move(body));
}

asio::awaitable<bool> calls(Client& client, const Origin& origin, uint16_t closed_port) {
  bool ok = true;
  for (int i = 0; i < 20; ++i) {
    auto r = co_await client.send(origin, Request(bh::verb::get, "/", 11));
    if (!r) co_return false;
    auto body = co_await r->read_all(1024);
    ok = ok && body && *body == "hello";
  }
  std::printf("20 GETs: %s\n", ok ? "all answered \"hello\"" : "FAILED");

  auto stream = co_await client.send(origin, Request(bh::verb::get, "/stream", 11));
  if (!stream) co_return false;
  std::printf("streamed (%s):", std::string(stream->head()[bh::field::transfer_encoding]).c_str());
  for (;;) {
    auto piece = co_await stream->read_some();
    if (!piece) co_return false;
    if (piece->empty()) break;
    std::printf(" [%.*s]", static_cast<int>(piece->size()), piece->data());
  }
  std::printf("\n");

  Request post(bh::verb::post, "/submit", 11);
  post.body() = "payload";
  auto posted = co_await client.send(origin, post);
  if (!posted) co_return false;
  auto answer = co_await posted->read_all(1024);
  std::printf("POST -> %u %s\n", posted->status(), answer ? answer->c_str() : "?");
  ok = ok && answer && *answer == "got payload";

  auto refused =
      co_await client.send(*Origin::parse("http://127.0.0.1:" + std::to_string(closed_port)),
                           Request(bh::verb::get, "/", 11));
  std::printf("closed port -> %s\n", refused ? "answered?!" : refused.error().message().c_str());
  co_return ok && !refused;
}

}  // namespace

int main() {
  sluice::http::ServerOptions server_options;
  server_options.workers = 1;
  sluice::http::Server server(server_options, upstream);
  if (const auto ec = server.start()) {
    std::fprintf(stderr, "server: %s\n", ec.message().c_str());
    return 1;
  }
  asio::io_context ioc;
  uint16_t closed_port = 0;
  {
    asio::ip::tcp::acceptor probe(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    closed_port = probe.local_endpoint().port();
  }
  const Origin origin = *Origin::parse("http://127.0.0.1:" + std::to_string(server.port()));
  ClientOptions options;
  options.pool.max_per_host = 4;
  Client client(ioc.get_executor(), options);
  bool ok = false;
  asio::co_spawn(ioc, calls(client, origin, closed_port),
                 [&](std::exception_ptr e, bool result) { ok = !e && result; });
  ioc.run();
  server.stop();
  server.wait();

  const auto s = client.stats();
  std::printf(
      "client: %llu requests, %llu connections created, %llu reused (reuse rate %.2f), "
      "%llu connect failures\n",
      static_cast<unsigned long long>(s.requests),
      static_cast<unsigned long long>(s.connections_created),
      static_cast<unsigned long long>(s.connections_reused), s.reuse_rate(),
      static_cast<unsigned long long>(s.connect_failures));
  std::printf("bytes sent %llu, received %llu; pool: %zu idle, %zu in use\n",
              static_cast<unsigned long long>(s.bytes_sent),
              static_cast<unsigned long long>(s.bytes_received), s.pool.idle, s.pool.active);
  ok = ok && s.connections_created == 1 && s.connect_failures == 1;
  std::printf("%s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
