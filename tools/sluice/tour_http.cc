#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <ostream>
#include <stdexcept>
#include <string>

#include "sluice/http/client.h"
#include "sluice/http/server.h"
#include "tools/sluice/tour.h"

namespace {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using tcp = asio::ip::tcp;

void tour_http(std::ostream& out) {
  sluice::http::ServerOptions options;
  options.workers = 2;
  sluice::http::Server server(
      options,
      [](sluice::http::Request& req, sluice::http::ResponseWriter& w) -> asio::awaitable<void> {
        if (req.target() == "/stream") {
          (void)co_await w.write_head(bh::status::ok, {});
          for (int i = 0; i < 4; ++i) (void)co_await w.write_chunk("chunk ");
          (void)co_await w.finish();
          co_return;
        }
        (void)co_await w.send(bh::status::ok, {}, "ok");
      });
  if (const auto ec = server.start()) throw std::runtime_error("http start: " + ec.message());

  asio::io_context ioc;
  tcp::socket socket(ioc);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  boost::beast::flat_buffer buffer;
  const auto start = std::chrono::steady_clock::now();
  constexpr int kRequests = 200;
  size_t streamed = 0;
  for (int i = 0; i < kRequests; ++i) {
    bh::request<bh::empty_body> req{bh::verb::get, i % 50 == 0 ? "/stream" : "/tiny", 11};
    req.set(bh::field::host, "tour");
    bh::write(socket, req);
    bh::response<bh::string_body> res;
    bh::read(socket, buffer, res);
    if (res.chunked()) streamed += res.body().size();
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  tcp::socket attacker(ioc);
  attacker.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  asio::write(attacker,
              asio::buffer(std::string_view("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                                            "Content-Length: 2\r\n\r\nab")));
  boost::beast::flat_buffer attack_buffer;
  bh::response<bh::string_body> rejected;
  bh::read(attacker, attack_buffer, rejected);

  // The pooled client against the same server: 100 GETs over keep-alive connections.
  asio::io_context client_ioc;
  sluice::http::Client client(client_ioc.get_executor(), {});
  const auto origin =
      *sluice::http::Origin::parse("http://127.0.0.1:" + std::to_string(server.port()));
  size_t client_bytes = 0;
  const auto client_start = std::chrono::steady_clock::now();
  asio::co_spawn(
      client_ioc,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 100; ++i) {
          auto r = co_await client.send(origin, sluice::http::Request(bh::verb::get, "/tiny", 11));
          if (!r) co_return;
          auto body = co_await r->read_all(1 << 20);
          if (body) client_bytes += body->size();
        }
      },
      asio::detached);
  client_ioc.run();
  const double client_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - client_start).count();
  const auto cs = client.stats();

  socket.close();
  attacker.close();
  server.stop();
  server.wait();
  const auto s = server.stats();
  out << "server on port " << server.port() << " with " << server.worker_count()
      << " SO_REUSEPORT workers: " << s.requests << " keep-alive requests (" << s.keepalive_reuses
      << " reuses) in " << static_cast<int>(seconds * 1000) << " ms, "
      << static_cast<long>(kRequests / seconds) << " req/s ping-pong\n";
  out << "streamed " << streamed << " bytes in chunks; duplicate Content-Length -> "
      << rejected.result_int() << " " << rejected.body() << "\n";
  out << "stats: 2xx " << s.responses_2xx << ", 4xx " << s.responses_4xx << ", bytes in "
      << s.bytes_in << ", out " << s.bytes_out << ", drain forced closes " << s.drain_forced_closes
      << "\n";
  out << "client: " << cs.responses << " responses (" << client_bytes << " body bytes) over "
      << cs.connections_created << " connection(s), reuse rate " << cs.reuse_rate() << ", "
      << static_cast<long>(static_cast<double>(cs.responses) / client_seconds) << " req/s\n";
}

SLUICE_TOUR_STEP(100, "http", tour_http);

}  // namespace
