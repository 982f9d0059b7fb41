// The stand-in upstream (see stand_in_upstream.h) and its command-line entry.
#include "bench/loadgen/stand_in_upstream.h"

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "bench/loadgen/connection.h"
#include "bench/loadgen/loadgen.h"

namespace sluice::loadgen {

namespace asio = internal::asio;
namespace beast = internal::beast;
namespace http = internal::http;
using internal::tcp;

namespace {

std::string percent_decode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      int value = 0;
      auto [p, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, value, 16);
      if (ec == std::errc() && p == in.data() + i + 3) {
        out.push_back(static_cast<char>(value));
        i += 2;
        continue;
      }
    }
    out.push_back(in[i] == '+' ? ' ' : in[i]);
  }
  return out;
}

// The knob `name` of `target`'s query, decoded; empty when absent.
std::string knob(std::string_view target, std::string_view name) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

uint64_t number(const std::string& s, uint64_t fallback) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty() ? v : fallback;
}

asio::awaitable<void> session(tcp::socket socket, std::atomic<uint64_t>& requests) {
  beast::flat_buffer buffer;
  asio::steady_timer timer(socket.get_executor());
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  while (true) {
    http::request<http::string_body> request;
    std::tie(ec, std::ignore) =
        co_await http::async_read(socket, buffer, request, asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    const std::string_view target = request.target();
    const bool keep_alive = request.keep_alive();
    if (target == "/__sim/stats") {
      http::response<http::string_body> stats(http::status::ok, request.version());
      stats.set(http::field::content_type, "application/json");
      stats.set(http::field::cache_control, "no-store");
      stats.body() = "{\"requests\":" + std::to_string(requests.load()) + "}";
      stats.keep_alive(keep_alive);
      stats.prepare_payload();
      std::tie(ec, std::ignore) =
          co_await http::async_write(socket, stats, asio::as_tuple(asio::use_awaitable));
      if (ec || !keep_alive) break;
      continue;
    }
    requests.fetch_add(1, std::memory_order_relaxed);
    if (const uint64_t delay = number(knob(target, "delay_ms"), 0); delay > 0) {
      timer.expires_after(std::chrono::milliseconds(delay));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    const auto status = static_cast<unsigned>(number(knob(target, "status"), 200));
    const std::string cc = knob(target, "cc");
    const uint64_t chunks = number(knob(target, "chunks"), 0);
    if (chunks > 0) {  // streaming: chunked encoding, one chunk every chunk_ms
      const uint64_t chunk_ms = number(knob(target, "chunk_ms"), 20);
      const uint64_t chunk_size = number(knob(target, "size"), 1024);
      http::response<http::empty_body> head(static_cast<http::status>(status), request.version());
      head.set(http::field::content_type, "text/plain");
      if (!cc.empty()) head.set(http::field::cache_control, cc);
      head.chunked(true);
      head.keep_alive(keep_alive);
      http::response_serializer<http::empty_body> sr(head);
      std::tie(ec, std::ignore) =
          co_await http::async_write_header(socket, sr, asio::as_tuple(asio::use_awaitable));
      const std::string payload(chunk_size, 'x');
      for (uint64_t i = 0; i < chunks && !ec; ++i) {
        if (i > 0 && chunk_ms > 0) {
          timer.expires_after(std::chrono::milliseconds(chunk_ms));
          co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        std::tie(ec, std::ignore) = co_await asio::async_write(
            socket, http::make_chunk(asio::buffer(payload)), asio::as_tuple(asio::use_awaitable));
      }
      if (!ec) {
        std::tie(ec, std::ignore) = co_await asio::async_write(socket, http::make_chunk_last(),
                                                               asio::as_tuple(asio::use_awaitable));
      }
      if (ec || !keep_alive) break;
      continue;
    }
    http::response<http::string_body> response(static_cast<http::status>(status),
                                               request.version());
    response.set(http::field::content_type, "text/plain");
    if (!cc.empty()) response.set(http::field::cache_control, cc);
    if (const uint64_t size = number(knob(target, "size"), 0); size > 0) {
      response.body().assign(size, 'x');
    } else {
      response.body() = "ok " + std::string(target) + "\n";
    }
    response.keep_alive(keep_alive);
    response.prepare_payload();
    std::tie(ec, std::ignore) =
        co_await http::async_write(socket, response, asio::as_tuple(asio::use_awaitable));
    if (ec || !keep_alive) break;
  }
  socket.shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, std::atomic<uint64_t>& requests) {
  while (acceptor.is_open()) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted) break;
      continue;
    }
    asio::co_spawn(acceptor.get_executor(), session(std::move(socket), requests), asio::detached);
  }
}

}  // namespace

uint16_t StandInUpstream::start(const std::string& address, uint16_t port, unsigned workers) {
  auto acceptor = std::make_shared<tcp::acceptor>(
      ctx_, tcp::endpoint(asio::ip::make_address(address), port), /*reuse_address=*/true);
  acceptor->listen(asio::socket_base::max_listen_connections);
  const uint16_t bound = acceptor->local_endpoint().port();
  asio::co_spawn(
      ctx_,
      [acceptor, this]() -> asio::awaitable<void> { co_await accept_loop(*acceptor, requests_); },
      asio::detached);
  for (unsigned i = 0; i < std::max(workers, 1U); ++i) {
    threads_.emplace_back([this] { ctx_.run(); });
  }
  return bound;
}

void StandInUpstream::stop() {
  ctx_.stop();
  wait();
}

void StandInUpstream::wait() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

int run_stand_in_upstream(const StandInOptions& options) {
  const size_t colon = options.listen.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "stand-in-upstream: --listen wants ADDR:PORT, got %s\n",
                 options.listen.c_str());
    return 2;
  }
  std::string address = options.listen.substr(0, colon);
  if (address.size() > 1 && address.front() == '[') address = address.substr(1, address.size() - 2);
  const auto port = static_cast<uint16_t>(number(options.listen.substr(colon + 1), 0));
  StandInUpstream server;
  // Stop on SIGINT/SIGTERM: the signal set lives on the server's context.
  asio::signal_set signals(server.context(), SIGINT, SIGTERM);
  signals.async_wait([&server](const boost::system::error_code&, int) { server.context().stop(); });
  uint16_t bound = 0;
  try {
    bound = server.start(address, port, options.workers);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stand-in-upstream: cannot listen on %s: %s\n", options.listen.c_str(),
                 e.what());
    return 1;
  }
  const std::string listen = address + ":" + std::to_string(bound);
  if (!options.ready_file.empty()) {
    const std::string tmp = options.ready_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << "{\"listen\":\"" << listen << "\",\"pid\":" << ::getpid() << "}\n";
    }
    std::filesystem::rename(tmp, options.ready_file);
  }
  std::printf("stand-in-upstream listening on %s\n", listen.c_str());
  std::fflush(stdout);
  server.wait();
  return 0;
}

}  // namespace sluice::loadgen
