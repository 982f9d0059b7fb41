// One client connection of the load generator: connect, write a prepared request, read one
// response (Beast parser), with a deadline. Header-only because every mode uses it inline.
//
// Thread-safety: NOT thread-safe; a connection is used by one coroutine on one io_context.
// Cost: one socket, one flat buffer (grows to the largest response head + body read).
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <string>
#include <string_view>

namespace sluice::loadgen::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

// What became of one request/response exchange.
struct Exchange {
  bool ok = false;         // a full response was read
  const char* error = "";  // when !ok: "write", "read", "timeout", "eof"
  int status = 0;          // HTTP status when ok
  std::string x_cache;     // X-Cache header value ("" when absent)
  size_t body_bytes = 0;   // body size when ok
  bool keep_alive = true;  // the server keeps the connection open
};

// Resolves once, synchronously, at start-up.
inline tcp::resolver::results_type resolve(const std::string& host, const std::string& port) {
  asio::io_context ctx;
  tcp::resolver resolver(ctx);
  return resolver.resolve(host, port);
}

class Connection {
 public:
  explicit Connection(asio::any_io_executor executor) : socket_(executor), timer_(executor) {}

  // Connects to the first endpoint that accepts; false on failure.
  asio::awaitable<bool> connect(const tcp::resolver::results_type& endpoints) {
    close();
    auto [ec, endpoint] =
        co_await asio::async_connect(socket_, endpoints, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return false;
    socket_.set_option(tcp::no_delay(true), ec);
    buffer_.clear();
    co_return true;
  }

  [[nodiscard]] bool is_open() const { return socket_.is_open(); }
  tcp::socket& socket() { return socket_; }
  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  // Writes `request` (unless `already_written`) and reads one response within `timeout`.
  asio::awaitable<Exchange> exchange(std::string_view request, std::chrono::nanoseconds timeout,
                                     bool already_written = false) {
    using namespace asio::experimental::awaitable_operators;
    timer_.expires_after(timeout);
    auto outcome =
        co_await (round_trip(request, already_written) || timer_.async_wait(asio::use_awaitable));
    if (outcome.index() == 1) {
      close();
      Exchange timed_out;
      timed_out.error = "timeout";
      co_return timed_out;
    }
    Exchange result = std::get<0>(std::move(outcome));
    if (!result.ok || !result.keep_alive) close();
    co_return result;
  }

 private:
  asio::awaitable<Exchange> round_trip(std::string_view request, bool already_written) {
    Exchange result;
    if (!already_written) {
      auto [wec, n] = co_await asio::async_write(socket_, asio::buffer(request),
                                                 asio::as_tuple(asio::use_awaitable));
      if (wec) {
        result.error = "write";
        co_return result;
      }
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ULL << 30);
    auto [rec, n] =
        co_await http::async_read(socket_, buffer_, parser, asio::as_tuple(asio::use_awaitable));
    if (rec) {
      result.error =
          (rec == http::error::end_of_stream || rec == asio::error::eof) ? "eof" : "read";
      co_return result;
    }
    const auto& response = parser.get();
    result.ok = true;
    result.status = static_cast<int>(response.result_int());
    if (auto it = response.find("X-Cache"); it != response.end()) {
      result.x_cache = std::string(it->value());
    }
    result.body_bytes = response.body().size();
    result.keep_alive = response.keep_alive();
    co_return result;
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
};

}  // namespace sluice::loadgen::internal
