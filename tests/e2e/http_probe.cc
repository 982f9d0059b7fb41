#include "tests/e2e/http_probe.h"

#include <strings.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <memory>

namespace sluice::e2e {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kBodyLimit = 256 * 1024 * 1024;

tcp::endpoint loopback(uint16_t port) {
  return tcp::endpoint(asio::ip::address_v4::loopback(), port);
}

bh::request<bh::string_body> build(const HttpRequest& r) {
  bh::request<bh::string_body> req;
  req.method_string(r.method);
  req.target(r.target);
  req.version(11);
  bool has_host = false;
  for (const auto& [k, v] : r.headers) {
    if (strcasecmp(k.c_str(), "host") == 0) has_host = true;
    req.insert(k, v);
  }
  if (!has_host) req.set(bh::field::host, "127.0.0.1");
  req.body() = r.body;
  if (!r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH") {
    req.content_length(r.body.size());
  }
  return req;
}

void fill(HttpResponse& out, const bh::response_parser<bh::string_body>& parser) {
  if (!parser.is_header_done()) return;
  const auto& res = parser.get();
  out.status = res.result_int();
  for (const auto& f : res) out.headers.emplace_back(f.name_string(), f.value());
  out.body = res.body();
}

// One request on its own connection. When `arrived` is given, waits on `gate` after
// connecting until every sibling has connected (`arrived` reaching `total`).
asio::awaitable<void> one_request(uint16_t port, const HttpRequest& request, HttpResponse& out,
                                  Clock::time_point deadline, size_t* arrived, size_t total,
                                  asio::steady_timer* gate) {
  auto ex = co_await asio::this_coro::executor;
  beast::tcp_stream stream(ex);
  stream.expires_at(deadline);
  auto [cec] = co_await stream.async_connect(loopback(port), kTuple);
  if (arrived != nullptr) {
    if (++*arrived == total) {
      gate->cancel();
    } else {
      (void)co_await gate->async_wait(kTuple);
    }
  }
  if (cec) {
    out.ec = cec;
    co_return;
  }
  stream.expires_at(deadline);
  auto req = build(request);
  auto [wec, wn] = co_await bh::async_write(stream, req, kTuple);
  // A write error does not end the exchange: the server may have answered (431/413) and
  // closed before reading everything; read what it sent.
  beast::flat_buffer buffer;
  bh::response_parser<bh::string_body> parser;
  parser.body_limit(kBodyLimit);
  if (request.method == "HEAD") parser.skip(true);
  stream.expires_at(deadline);
  auto [rec, rn] = co_await bh::async_read(stream, buffer, parser, kTuple);
  fill(out, parser);
  out.ec = rec ? rec : wec;
  if (rec == beast::error::timeout) out.ec = asio::error::timed_out;
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

// A request that cannot even be built (Beast throws `std::length_error` for a header field
// of 64 KiB or more) fails with `invalid_argument` instead of vanishing.
auto record_exception(HttpResponse& out) {
  return [&out](const std::exception_ptr& e) {
    if (e) out.ec = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  };
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return {};
}

bool HttpResponse::has_header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return true;
  }
  return false;
}

HttpResponse http_request(uint16_t port, const HttpRequest& request,
                          std::chrono::milliseconds bound) {
  asio::io_context ioc;
  HttpResponse out;
  asio::co_spawn(ioc, one_request(port, request, out, Clock::now() + bound, nullptr, 0, nullptr),
                 record_exception(out));
  ioc.run();
  return out;
}

HttpResponse http_get(uint16_t port, const std::string& target, const Headers& headers,
                      std::chrono::milliseconds bound) {
  HttpRequest r;
  r.target = target;
  r.headers = headers;
  return http_request(port, r, bound);
}

std::vector<HttpResponse> fire_concurrently(uint16_t port, const std::vector<HttpRequest>& requests,
                                            std::chrono::milliseconds bound) {
  std::vector<HttpResponse> out(requests.size());
  if (requests.empty()) return out;
  asio::io_context ioc(1);
  const auto deadline = Clock::now() + bound;
  // Released when the last connection is made, or at the deadline at the latest.
  asio::steady_timer gate(ioc, deadline);
  size_t arrived = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    asio::co_spawn(
        ioc, one_request(port, requests[i], out[i], deadline, &arrived, requests.size(), &gate),
        record_exception(out[i]));
  }
  ioc.run();
  return out;
}

std::vector<HttpResponse> fire_identical(uint16_t port, const HttpRequest& request, size_t n,
                                         std::chrono::milliseconds bound) {
  return fire_concurrently(port, std::vector<HttpRequest>(n, request), bound);
}

unsigned RawResult::status() const {
  // "HTTP/1.1 408 Request Timeout"
  if (received.size() < 12 || received.compare(0, 5, "HTTP/") != 0) return 0;
  const size_t sp = received.find(' ');
  if (sp == std::string::npos || sp + 4 > received.size()) return 0;
  unsigned v = 0;
  for (size_t i = sp + 1; i < sp + 4; ++i) {
    const char c = received[i];
    if (c < '0' || c > '9') return 0;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v;
}

namespace {

// Reads until EOF/error into `out`; sets `done` when the connection ended.
asio::awaitable<void> read_all(tcp::socket& socket, RawResult& out, bool& done,
                               asio::steady_timer& bound_timer) {
  std::string buf(16 * 1024, '\0');
  for (;;) {
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), kTuple);
    out.received.append(buf.data(), n);
    if (ec) {
      if (ec != asio::error::operation_aborted) out.closed_by_peer = true;
      break;
    }
  }
  done = true;
  bound_timer.cancel();
}

asio::awaitable<void> expire(tcp::socket& socket, RawResult& out, bool& done,
                             asio::steady_timer& bound_timer) {
  auto [ec] = co_await bound_timer.async_wait(kTuple);
  if (!ec && !done) {
    out.bound_expired = true;
    error_code ignored;
    socket.cancel(ignored);
  }
}

}  // namespace

RawResult raw_exchange(uint16_t port, const std::string& bytes, std::chrono::milliseconds bound) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  RawResult out;
  socket.connect(loopback(port), out.connect_ec);
  if (out.connect_ec) return out;
  asio::steady_timer bound_timer(ioc);
  bound_timer.expires_after(bound);
  bool done = false;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        // Write in pieces so a server that answers early can still be read.
        size_t at = 0;
        while (at < bytes.size() && !done) {
          const size_t n = std::min<size_t>(16 * 1024, bytes.size() - at);
          auto [ec, w] =
              co_await asio::async_write(socket, asio::buffer(bytes.data() + at, n), kTuple);
          if (ec) break;
          at += w;
        }
      },
      asio::detached);
  asio::co_spawn(ioc, read_all(socket, out, done, bound_timer), asio::detached);
  asio::co_spawn(ioc, expire(socket, out, done, bound_timer), asio::detached);
  ioc.run();
  return out;
}

RawResult slowloris(uint16_t port, const std::string& partial_head,
                    std::chrono::milliseconds interval, std::chrono::milliseconds bound) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  RawResult out;
  socket.connect(loopback(port), out.connect_ec);
  if (out.connect_ec) return out;
  asio::steady_timer bound_timer(ioc);
  bound_timer.expires_after(bound);
  bool done = false;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        auto [ec, w] = co_await asio::async_write(socket, asio::buffer(partial_head), kTuple);
        if (ec) co_return;
        // One byte of an endless header value per interval.
        static constexpr std::string_view kTrickle = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        asio::steady_timer tick(socket.get_executor());
        for (size_t i = 0; !done; ++i) {
          tick.expires_after(interval);
          (void)co_await tick.async_wait(kTuple);
          if (done) break;
          const char c = kTrickle[i % kTrickle.size()];
          auto [wec, n] = co_await asio::async_write(socket, asio::buffer(&c, 1), kTuple);
          if (wec) break;
        }
      },
      asio::detached);
  asio::co_spawn(ioc, read_all(socket, out, done, bound_timer), asio::detached);
  asio::co_spawn(ioc, expire(socket, out, done, bound_timer), asio::detached);
  ioc.run();
  return out;
}

}  // namespace sluice::e2e
