#include "sluice/http/server.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/system/errc.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <exception>
#include <limits>
#include <string>
#include <utility>

#include "sluice/base/check.h"
#include "sluice/http/headers.h"

namespace sluice::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = boost::beast::http;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 8 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string_view buffer_view(const beast::flat_buffer& b) noexcept {
  return {static_cast<const char*>(b.data().data()), b.size()};
}

// Appends "<name>: <value>\r\n" with one size change instead of four appends.
void append_field(std::string& out, std::string_view name, std::string_view value) {
  const size_t at = out.size();
  out.resize(at + name.size() + value.size() + 4);
  char* p = out.data() + at;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
}

error_code not_permitted() noexcept {
  return boost::system::errc::make_error_code(boost::system::errc::operation_not_permitted);
}

void append_number(std::string& out, uint64_t value, int base = 10) {
  char digits[24];
  const auto r = std::to_chars(digits, digits + sizeof digits, value, base);
  out.append(digits, r.ptr);
}

}  // namespace

size_t default_worker_count() noexcept {
  return std::max<size_t>(1, std::thread::hardware_concurrency());
}

std::string ServerOptions::validate() const {
  error_code ec;
  (void)asio::ip::make_address(address, ec);
  if (ec) return "address: \"" + address + "\" is not an IP address literal";
  if (workers == 0) return "workers: must be at least 1";
  if (workers > 1024) return "workers: at most 1024, got " + std::to_string(workers);
  if (max_header_bytes < 64) return "max_header_bytes: at least 64";
  if (max_header_bytes > std::numeric_limits<uint32_t>::max() / 2) {
    return "max_header_bytes: too large";
  }
  if (max_connections == 0) return "max_connections: must be at least 1";
  if (header_timeout <= Duration::zero()) return "header_timeout: must be positive";
  if (idle_timeout <= Duration::zero()) return "idle_timeout: must be positive";
  if (body_timeout <= Duration::zero()) return "body_timeout: must be positive";
  if (write_timeout <= Duration::zero()) return "write_timeout: must be positive";
  if (drain_timeout < Duration::zero()) return "drain_timeout: must not be negative";
  if (lingering_close_timeout < Duration::zero()) {
    return "lingering_close_timeout: must not be negative";
  }
  if (listen_backlog <= 0) return "listen_backlog: must be positive";
  return {};
}

uint64_t ServerStats::bad_requests_total() const noexcept {
  uint64_t total = 0;
  for (const uint64_t n : bad_requests) total += n;
  return total;
}

void ServerStats::merge(const ServerStats& o) noexcept {
  connections_accepted += o.connections_accepted;
  connections_active += o.connections_active;
  connections_rejected += o.connections_rejected;
  accept_errors += o.accept_errors;
  requests += o.requests;
  keepalive_reuses += o.keepalive_reuses;
  responses_1xx += o.responses_1xx;
  responses_2xx += o.responses_2xx;
  responses_3xx += o.responses_3xx;
  responses_4xx += o.responses_4xx;
  responses_5xx += o.responses_5xx;
  for (size_t i = 0; i < bad_requests.size(); ++i) bad_requests[i] += o.bad_requests[i];
  header_timeouts += o.header_timeouts;
  body_timeouts += o.body_timeouts;
  headers_too_large += o.headers_too_large;
  bodies_too_large += o.bodies_too_large;
  idle_timeouts += o.idle_timeouts;
  write_timeouts += o.write_timeouts;
  handler_exceptions += o.handler_exceptions;
  handler_no_response += o.handler_no_response;
  drain_forced_closes += o.drain_forced_closes;
  bytes_in += o.bytes_in;
  bytes_out += o.bytes_out;
}

namespace internal {

// A counter written by one worker thread and read by any: a relaxed load and store (no
// read-modify-write instruction on the hot path).
class Counter {
 public:
  void add(uint64_t n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void sub(uint64_t n = 1) noexcept {
    value_.store(value_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  [[nodiscard]] uint64_t get() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

struct WorkerCounters {
  Counter connections_accepted, connections_active, connections_rejected, accept_errors;
  Counter requests, keepalive_reuses;
  Counter responses[6];  // by status class, index 1..5
  Counter bad_requests[kBadRequestReasonCount];
  Counter header_timeouts, body_timeouts, headers_too_large, bodies_too_large;
  Counter idle_timeouts, write_timeouts, handler_exceptions, handler_no_response;
  Counter drain_forced_closes, bytes_in, bytes_out;

  void count_response(unsigned status) noexcept {
    const unsigned cls = status / 100;
    if (cls >= 1 && cls <= 5) responses[cls].add();
  }

  [[nodiscard]] ServerStats snapshot() const noexcept {
    ServerStats s;
    s.connections_accepted = connections_accepted.get();
    s.connections_active = connections_active.get();
    s.connections_rejected = connections_rejected.get();
    s.accept_errors = accept_errors.get();
    s.requests = requests.get();
    s.keepalive_reuses = keepalive_reuses.get();
    s.responses_1xx = responses[1].get();
    s.responses_2xx = responses[2].get();
    s.responses_3xx = responses[3].get();
    s.responses_4xx = responses[4].get();
    s.responses_5xx = responses[5].get();
    for (size_t i = 0; i < kBadRequestReasonCount; ++i) s.bad_requests[i] = bad_requests[i].get();
    s.header_timeouts = header_timeouts.get();
    s.body_timeouts = body_timeouts.get();
    s.headers_too_large = headers_too_large.get();
    s.bodies_too_large = bodies_too_large.get();
    s.idle_timeouts = idle_timeouts.get();
    s.write_timeouts = write_timeouts.get();
    s.handler_exceptions = handler_exceptions.get();
    s.handler_no_response = handler_no_response.get();
    s.drain_forced_closes = drain_forced_closes.get();
    s.bytes_in = bytes_in.get();
    s.bytes_out = bytes_out.get();
    return s;
  }
};

// One event loop, one listening socket, and the connections it accepted. Everything but the
// counters is touched only on the worker's thread.
class Worker {
 public:
  Worker(Server& server, size_t index)
      : options_(server.options_),
        handler_(server.handler_),
        active_total_(server.active_connections_),
        index_(index),
        acceptor_(ioc_),
        drain_timer_(ioc_) {}

  ~Worker() {
    // Frames of connections still parked in `ioc_` are destroyed with it (after a forced
    // stop); they must not touch the timer or acceptor, destroyed before `ioc_`.
    destroying_ = true;
    error_code ignored;
    acceptor_.close(ignored);
  }

  error_code listen(const tcp::endpoint& endpoint) {
    error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (ec) return ec;
    acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (ec) return ec;
    using ReusePort = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
    acceptor_.set_option(ReusePort(true), ec);
    if (ec) return ec;
    acceptor_.bind(endpoint, ec);
    if (ec) return ec;
    acceptor_.listen(options_.listen_backlog, ec);
    return ec;
  }

  [[nodiscard]] uint16_t local_port() const {
    error_code ec;
    const auto ep = acceptor_.local_endpoint(ec);
    return ec ? 0 : ep.port();
  }

  void watch_signals(const std::vector<int>& signals, Server& server) {
    if (signals.empty()) return;
    signals_.emplace(ioc_);
    for (const int s : signals) signals_->add(s);
    signals_->async_wait([&server](const error_code& ec, int) {
      if (!ec) server.stop();
    });
  }

  void start_accepting() { asio::co_spawn(ioc_, accept_loop(), asio::detached); }
  void run() { ioc_.run(); }
  void post_drain() {
    asio::post(ioc_, [this] { begin_drain(); });
  }

  void add(Connection* c) { connections_.push_back(c); }
  void remove(Connection* c);

  asio::awaitable<void> accept_loop();
  void begin_drain();
  void force_close_all();

  const ServerOptions& options_;
  const Handler& handler_;
  std::atomic<size_t>& active_total_;
  const size_t index_;
  WorkerCounters counters_;
  std::vector<Connection*> connections_;
  bool draining_ = false;
  bool destroying_ = false;
  std::thread::id thread_id_;
  // Declared after what connection destructors touch, so it is destroyed before them.
  asio::io_context ioc_{1};
  tcp::acceptor acceptor_;
  asio::steady_timer drain_timer_;
  std::optional<asio::signal_set> signals_;
};

// One accepted socket, served by one coroutine (`run`) plus a watchdog coroutine that
// enforces the deadline of the current phase by cancelling the socket's operations.
class Connection {
 public:
  enum class Phase : uint8_t { kNone, kHeader, kIdle, kBody, kWrite, kLinger };

  int native_handle() noexcept { return socket_.native_handle(); }
  Connection(Worker& worker, tcp::socket socket, bool counted)
      : worker_(worker),
        counters_(worker.counters_),
        options_(worker.options_),
        socket_(std::move(socket)),
        timer_(worker.ioc_),
        counted_(counted) {
    error_code ec;
    peer_ = socket_.remote_endpoint(ec);
    timer_.expires_at(asio::steady_timer::time_point::max());
    worker_.add(this);
    if (counted_) counters_.connections_active.add();
  }

  ~Connection() {
    if (counted_) {
      counters_.connections_active.sub();
      worker_.active_total_.fetch_sub(1, std::memory_order_relaxed);
    }
    worker_.remove(this);
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  static asio::awaitable<void> serve(std::shared_ptr<Connection> self);
  static asio::awaitable<void> reject(std::shared_ptr<Connection> self);
  static asio::awaitable<void> watchdog(std::shared_ptr<Connection> self);

  // Called by `Worker::begin_drain` for a connection waiting for its next request.
  void request_close() {
    close_requested_ = true;
    error_code ignored;
    socket_.cancel(ignored);
  }
  // Called by `ResponseWriter::abort`: a pending write completes with operation_aborted.
  void cancel_writes() noexcept {
    error_code ignored;
    socket_.cancel(ignored);
  }
  // Called by `ResponseWriter::reset`: the connection closes with RST.
  void reset_on_close() noexcept { reset_on_close_ = true; }
  // Called when the drain timeout expired.
  void force_close() {
    close_requested_ = true;
    error_code ignored;
    socket_.close(ignored);
  }
  // Whether `stop()` may close this connection at once: it waits for its next request, or it
  // is discarding input after an error response.
  [[nodiscard]] bool closable_on_drain() const noexcept {
    return waiting_for_request_ || lingering_;
  }

  // Writes `buffers` within `write_timeout`; counts the bytes.
  template <typename Buffers>
  asio::awaitable<error_code> write(const Buffers& buffers);

  std::string& scratch() noexcept { return scratch_; }
  Worker& worker() noexcept { return worker_; }
  WorkerCounters& counters() noexcept { return counters_; }
  const tcp::endpoint& peer() const noexcept { return peer_; }
  // The peer's address as text, formatted once per connection.
  const std::string& peer_address() {
    if (peer_text_.empty()) peer_text_ = peer_.address().to_string();
    return peer_text_;
  }

 private:
  enum class HeadOutcome : uint8_t {
    kComplete,
    kClosed,  // EOF, error or stop while idle: close quietly
    kIdleTimeout,
    kHeaderTimeout,
    kTooLarge,
    kBareLf,
  };

  void set_deadline(Phase phase, Duration d) {
    phase_ = phase;
    expired_ = Phase::kNone;
    deadline_ = asio::steady_timer::clock_type::now() +
                std::chrono::duration_cast<asio::steady_timer::duration>(d);
    if (deadline_ < timer_.expiry()) timer_.expires_at(deadline_);
  }
  void clear_deadline() {
    phase_ = Phase::kNone;
    deadline_ = asio::steady_timer::time_point::max();
  }

  asio::awaitable<HeadOutcome> read_head(HeadScanner& scanner, bool first);
  asio::awaitable<void> run();
  asio::awaitable<void> respond_error(bh::status status, std::string_view error,
                                      std::string_view reason);
  asio::awaitable<void> lingering_close();
  void bad_request(BadRequestReason reason) {
    counters_.bad_requests[static_cast<size_t>(reason)].add();
  }

  Worker& worker_;
  WorkerCounters& counters_;
  const ServerOptions& options_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  tcp::endpoint peer_;
  std::string peer_text_;  // peer_address(), once asked for
  beast::flat_buffer buffer_;
  std::string scratch_;  // response head being formatted
  asio::steady_timer::time_point deadline_ = asio::steady_timer::time_point::max();
  Phase phase_ = Phase::kNone;
  Phase expired_ = Phase::kNone;  // the phase whose deadline fired
  bool counted_;
  bool closed_ = false;
  bool close_requested_ = false;
  bool waiting_for_request_ = false;
  bool lingering_ = false;
  bool reset_on_close_ = false;  // an aborted response: close with RST
};

void Worker::remove(Connection* c) {
  const auto it = std::find(connections_.begin(), connections_.end(), c);
  SLUICE_CHECK(it != connections_.end(), "connection not registered with its worker");
  *it = connections_.back();
  connections_.pop_back();
  if (draining_ && connections_.empty() && !destroying_) drain_timer_.cancel();
}

asio::awaitable<void> Worker::accept_loop() {
  asio::steady_timer backoff(ioc_);
  while (!draining_) {
    auto [ec, socket] = co_await acceptor_.async_accept(kUseTuple);
    if (draining_) break;
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) break;
      // Out of descriptors or memory: count it and back off briefly instead of spinning.
      counters_.accept_errors.add();
      backoff.expires_after(std::chrono::milliseconds(20));
      (void)co_await backoff.async_wait(kUseTuple);
      continue;
    }
    counters_.connections_accepted.add();
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (active_total_.fetch_add(1, std::memory_order_relaxed) >= options_.max_connections) {
      active_total_.fetch_sub(1, std::memory_order_relaxed);
      counters_.connections_rejected.add();
      auto conn = std::make_shared<Connection>(*this, std::move(socket), /*counted=*/false);
      asio::co_spawn(ioc_, Connection::watchdog(conn), asio::detached);
      asio::co_spawn(ioc_, Connection::reject(std::move(conn)), asio::detached);
      continue;
    }
    auto conn = std::make_shared<Connection>(*this, std::move(socket), /*counted=*/true);
    asio::co_spawn(ioc_, Connection::watchdog(conn), asio::detached);
    asio::co_spawn(ioc_, Connection::serve(std::move(conn)), asio::detached);
  }
}

void Worker::begin_drain() {
  if (draining_) return;
  draining_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  if (signals_) signals_->cancel(ignored);
  for (Connection* c : connections_) {
    if (c->closable_on_drain()) c->request_close();
  }
  if (connections_.empty()) return;
  drain_timer_.expires_after(options_.drain_timeout);
  drain_timer_.async_wait([this](const error_code& ec) {
    if (!ec) force_close_all();
  });
}

void Worker::force_close_all() {
  for (Connection* c : connections_) {
    counters_.drain_forced_closes.add();
    c->force_close();
  }
  // The aborted operations were queued by the closes above and run before this; a handler
  // still waiting on something of its own is abandoned (its frame is destroyed with `ioc_`).
  asio::post(ioc_, [this] { ioc_.stop(); });
}

template <typename Buffers>
asio::awaitable<error_code> Connection::write(const Buffers& buffers) {
  set_deadline(Phase::kWrite, options_.write_timeout);
  auto [ec, n] = co_await asio::async_write(socket_, buffers, kUseTuple);
  counters_.bytes_out.add(n);
  if (expired_ == Phase::kWrite) {
    counters_.write_timeouts.add();
    ec = asio::error::timed_out;
  }
  clear_deadline();
  co_return ec;
}

asio::awaitable<void> Connection::watchdog(std::shared_ptr<Connection> self) {
  while (!self->closed_) {
    (void)co_await self->timer_.async_wait(kUseTuple);
    if (self->closed_) break;
    const auto now = asio::steady_timer::clock_type::now();
    if (self->deadline_ <= now) {
      self->expired_ = self->phase_;
      self->deadline_ = asio::steady_timer::time_point::max();
      error_code ignored;
      self->socket_.cancel(ignored);
    }
    self->timer_.expires_at(self->deadline_);
  }
}

asio::awaitable<Connection::HeadOutcome> Connection::read_head(HeadScanner& scanner, bool first) {
  waiting_for_request_ = buffer_.size() == 0;
  if (waiting_for_request_ && !first) {
    set_deadline(Phase::kIdle, options_.idle_timeout);
  } else {
    set_deadline(Phase::kHeader, options_.header_timeout);
  }
  while (true) {
    if (buffer_.size() > 0) {
      if (waiting_for_request_) {
        waiting_for_request_ = false;
        if (!first) set_deadline(Phase::kHeader, options_.header_timeout);
      }
      const auto result = scanner.scan(buffer_view(buffer_));
      if (result == HeadScanner::Result::kBareLf) co_return HeadOutcome::kBareLf;
      if (result == HeadScanner::Result::kComplete) {
        co_return scanner.head_size() > options_.max_header_bytes ? HeadOutcome::kTooLarge
                                                                  : HeadOutcome::kComplete;
      }
      // Leading empty lines count too, so a stream of CRLFs cannot grow the buffer forever.
      if (buffer_.size() > options_.max_header_bytes) co_return HeadOutcome::kTooLarge;
    }
    if (close_requested_ || (waiting_for_request_ && worker_.draining_)) {
      co_return HeadOutcome::kClosed;
    }
    auto [ec, n] = co_await socket_.async_read_some(buffer_.prepare(kReadChunk), kUseTuple);
    buffer_.commit(n);
    if (expired_ == Phase::kIdle) co_return HeadOutcome::kIdleTimeout;
    if (expired_ == Phase::kHeader) co_return HeadOutcome::kHeaderTimeout;
    if (ec || close_requested_) co_return HeadOutcome::kClosed;
  }
}

asio::awaitable<void> Connection::respond_error(bh::status status, std::string_view error,
                                                std::string_view reason) {
  std::string body;
  body.reserve(48 + error.size() + reason.size());
  body.append(R"({"error":")").append(error).append(R"(","reason":")").append(reason).append("\"}");
  const auto code = static_cast<unsigned>(status);
  scratch_.clear();
  scratch_.append("HTTP/1.1 ");
  append_number(scratch_, code);
  scratch_.push_back(' ');
  scratch_.append(bh::obsolete_reason(status));
  scratch_.append("\r\nContent-Type: application/json\r\nContent-Length: ");
  append_number(scratch_, body.size());
  scratch_.append("\r\nConnection: close\r\n\r\n");
  counters_.count_response(code);
  const std::array<asio::const_buffer, 2> buffers{asio::buffer(scratch_), asio::buffer(body)};
  const error_code ec = co_await write(buffers);
  if (!ec) co_await lingering_close();
}

asio::awaitable<void> Connection::lingering_close() {
  if (close_requested_ || worker_.draining_) co_return;
  lingering_ = true;
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  set_deadline(Phase::kLinger, options_.lingering_close_timeout);
  char discard[4096];
  size_t total = 0;
  while (total < options_.lingering_close_bytes && expired_ == Phase::kNone && !close_requested_) {
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(discard), kUseTuple);
    if (ec) break;
    total += n;
  }
  clear_deadline();
}

asio::awaitable<void> Connection::reject(std::shared_ptr<Connection> self) {
  co_await self->respond_error(bh::status::service_unavailable, "service_unavailable",
                               "max_connections");
  self->closed_ = true;
  error_code ignored;
  self->socket_.close(ignored);
  self->timer_.cancel();
}

asio::awaitable<void> Connection::serve(std::shared_ptr<Connection> self) {
  co_await self->run();
  self->closed_ = true;
  error_code ignored;
  if (self->reset_on_close_) {
    self->socket_.set_option(tcp::socket::linger(true, 0), ignored);  // close sends RST
  }
  self->socket_.close(ignored);
  self->timer_.cancel();
}

asio::awaitable<void> Connection::run() {
  HeadScanner scanner;
  std::optional<bh::request_parser<bh::string_body>> parser;
  for (uint64_t index = 0;; ++index) {
    scanner.reset();
    const HeadOutcome outcome = co_await read_head(scanner, index == 0);
    switch (outcome) {
      case HeadOutcome::kComplete:
        break;
      case HeadOutcome::kClosed:
        co_return;
      case HeadOutcome::kIdleTimeout:
        counters_.idle_timeouts.add();
        co_return;
      case HeadOutcome::kHeaderTimeout:
        counters_.header_timeouts.add();
        co_await respond_error(bh::status::request_timeout, "request_timeout", "header_timeout");
        co_return;
      case HeadOutcome::kTooLarge:
        counters_.headers_too_large.add();
        co_await respond_error(bh::status::request_header_fields_too_large,
                               "request_header_fields_too_large", "header_too_large");
        co_return;
      case HeadOutcome::kBareLf:
        bad_request(BadRequestReason::kBareLf);
        co_await respond_error(bh::status::bad_request, "bad_request",
                               to_string(BadRequestReason::kBareLf));
        co_return;
    }

    // The head is complete: check its framing, then let Beast parse it.
    buffer_.consume(scanner.leading_bytes());
    const std::string_view head = buffer_view(buffer_).substr(0, scanner.head_size());
    if (const auto reason = check_request_head(head)) {
      bad_request(*reason);
      co_await respond_error(bh::status::bad_request, "bad_request", to_string(*reason));
      co_return;
    }
    parser.emplace();
    parser->header_limit(static_cast<uint32_t>(head.size() + 2));
    parser->body_limit(options_.max_body_bytes);
    error_code ec;
    const size_t used = parser->put(asio::buffer(head.data(), head.size()), ec);
    if (ec == bh::error::body_limit) {
      counters_.bodies_too_large.add();
      co_await respond_error(bh::status::payload_too_large, "payload_too_large",
                             "content_length_too_large");
      co_return;
    }
    if (ec || !parser->is_header_done() || used != head.size()) {
      bad_request(BadRequestReason::kMalformed);
      co_await respond_error(bh::status::bad_request, "bad_request",
                             to_string(BadRequestReason::kMalformed));
      co_return;
    }
    buffer_.consume(used);
    counters_.bytes_in.add(scanner.leading_bytes() + used);

    bool expect_continue = false;
    if (!parser->is_done()) {
      const auto expect = parser->get()[bh::field::expect];
      expect_continue = parser->get().version() >= 11 && iequals(expect, "100-continue");
      if (expect_continue && buffer_.size() == 0) {
        counters_.count_response(100);
        if (co_await write(asio::buffer(kContinue))) co_return;
      }
      set_deadline(Phase::kBody, options_.body_timeout);
      auto [read_ec, n] = co_await bh::async_read(socket_, buffer_, *parser, kUseTuple);
      counters_.bytes_in.add(n);
      const Phase expired = expired_;
      clear_deadline();
      if (expired == Phase::kBody) {
        counters_.body_timeouts.add();
        co_await respond_error(bh::status::request_timeout, "request_timeout", "body_timeout");
        co_return;
      }
      if (read_ec == bh::error::body_limit) {
        counters_.bodies_too_large.add();
        co_await respond_error(bh::status::payload_too_large, "payload_too_large",
                               "body_too_large");
        co_return;
      }
      if (read_ec &&
          read_ec.category() == bh::make_error_code(bh::error::end_of_stream).category() &&
          read_ec != bh::error::end_of_stream && read_ec != bh::error::partial_message) {
        bad_request(BadRequestReason::kMalformed);
        co_await respond_error(bh::status::bad_request, "bad_request",
                               to_string(BadRequestReason::kMalformed));
        co_return;
      }
      if (read_ec) co_return;  // the client went away mid-body
    }

    counters_.requests.add();
    if (index > 0) counters_.keepalive_reuses.add();
    const bool chunked = parser->chunked();
    Request request = parser->release();
    const bool keep_alive = request.keep_alive();
    strip_hop_by_hop(request.base());
    if (chunked) request.content_length(request.body().size());
    if (expect_continue) request.erase(bh::field::expect);

    ResponseWriter writer(*this, request.method() == bh::verb::head, request.version(),
                          keep_alive && !worker_.draining_);
    bool threw = false;
    try {
      co_await worker_.handler_(request, writer);
    } catch (...) {
      threw = true;
    }
    if (threw) {
      counters_.handler_exceptions.add();
      if (!writer.head_sent()) {
        co_await respond_error(bh::status::internal_server_error, "internal_error",
                               "handler_exception");
      }
      co_return;
    }
    if (!writer.head_sent()) {
      counters_.handler_no_response.add();
      co_await respond_error(bh::status::internal_server_error, "internal_error", "no_response");
      co_return;
    }
    if (!writer.finished()) (void)co_await writer.finish();
    if (writer.error_ || !writer.keep_alive() || worker_.draining_ || close_requested_) {
      co_return;
    }
  }
}

}  // namespace internal

// ResponseWriter

size_t ResponseWriter::worker_index() const noexcept { return connection_.worker().index_; }

const tcp::endpoint& ResponseWriter::peer() const noexcept { return connection_.peer(); }
const std::string& ResponseWriter::peer_address() const { return connection_.peer_address(); }

bool ResponseWriter::peer_closed() const noexcept {
  if (error_) return true;
  char byte = 0;
  const ssize_t n = ::recv(connection_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;  // the client sent something: still there
  if (n == 0) return true;  // orderly close (FIN)
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;  // reset, ...
}

void ResponseWriter::format_head(bh::status status, const HeadView& head,
                                 std::optional<uint64_t> content_length) {
  const auto code = static_cast<unsigned>(status);
  const bool bodiless_status = code / 100 == 1 || code == 204 || code == 304;
  if (connection_.worker().draining_) keep_alive_ = false;

  std::string& out = connection_.scratch();
  out.clear();
  out.append(version_ >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ");
  append_number(out, code);
  out.push_back(' ');
  out.append(bh::obsolete_reason(status));
  out.append("\r\n", 2);
  std::optional<HopByHop> hop;
  if (head.strip_hop_by_hop) hop.emplace(head.fields);
  for (const auto& field : head.fields) {
    switch (field.name()) {
      case bh::field::content_length:
      case bh::field::transfer_encoding:
      case bh::field::connection:
      case bh::field::keep_alive:
        continue;
      default:
        break;
    }
    if (hop && (*hop)(field)) continue;
    const std::string_view name = field.name_string();
    if (std::any_of(head.extra.begin(), head.extra.end(),
                    [&](const HeaderView& e) { return iequals(e.name, name); })) {
      continue;  // replaced by an extra field
    }
    append_field(out, name, field.value());
  }
  for (const HeaderView& e : head.extra) append_field(out, e.name, e.value);
  if (bodiless_status) {
    framing_ = Framing::kNone;
  } else if (content_length) {
    out.append("Content-Length: ");
    append_number(out, *content_length);
    out.append("\r\n", 2);
    framing_ = head_request_ ? Framing::kNone : Framing::kLength;
    declared_ = *content_length;
  } else if (version_ >= 11) {
    out.append("Transfer-Encoding: chunked\r\n");
    framing_ = head_request_ ? Framing::kNone : Framing::kChunked;
  } else {
    framing_ = head_request_ ? Framing::kNone : Framing::kClose;
    if (!head_request_) keep_alive_ = false;
  }
  if (!keep_alive_) {
    out.append("Connection: close\r\n");
  } else if (version_ < 11) {
    out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n", 2);
  head_sent_ = true;
  connection_.counters().count_response(code);
}

asio::awaitable<error_code> ResponseWriter::send(bh::status status, bh::fields headers,
                                                 std::string body) {
  const HeadView head{headers};
  const std::string_view view = body;
  co_return co_await send(status, head, view);
}

asio::awaitable<error_code> ResponseWriter::send(bh::status status, const HeadView& head,
                                                 std::string_view body) {
  if (error_) co_return error_;
  if (head_sent_) co_return not_permitted();
  format_head(status, head, body.size());
  finished_ = true;
  if (framing_ == Framing::kLength) {
    written_ = body.size();
    const std::array<asio::const_buffer, 2> buffers{asio::buffer(connection_.scratch()),
                                                    asio::buffer(body)};
    error_ = co_await connection_.write(buffers);
  } else {
    error_ = co_await connection_.write(asio::buffer(connection_.scratch()));
  }
  co_return error_;
}

asio::awaitable<error_code> ResponseWriter::write_head(bh::status status, bh::fields headers,
                                                       std::optional<uint64_t> content_length) {
  const HeadView head{headers};
  co_return co_await write_head(status, head, content_length);
}

asio::awaitable<error_code> ResponseWriter::write_head(bh::status status, const HeadView& head,
                                                       std::optional<uint64_t> content_length) {
  if (error_) co_return error_;
  if (head_sent_) co_return not_permitted();
  format_head(status, head, content_length);
  error_ = co_await connection_.write(asio::buffer(connection_.scratch()));
  co_return error_;
}

asio::awaitable<error_code> ResponseWriter::write_chunk(std::string_view data) {
  if (error_) co_return error_;
  if (!head_sent_ || finished_) co_return not_permitted();
  if (data.empty()) co_return error_code{};
  switch (framing_) {
    case Framing::kNone:
      co_return error_code{};
    case Framing::kLength:
      if (written_ + data.size() > declared_) {
        keep_alive_ = false;
        error_ = bh::error::body_limit;
        co_return error_;
      }
      written_ += data.size();
      error_ = co_await connection_.write(asio::buffer(data));
      co_return error_;
    case Framing::kClose:
      error_ = co_await connection_.write(asio::buffer(data));
      co_return error_;
    case Framing::kChunked: {
      char size_line[24];
      auto r = std::to_chars(size_line, size_line + 16, data.size(), 16);
      *r.ptr++ = '\r';
      *r.ptr++ = '\n';
      const std::array<asio::const_buffer, 3> buffers{
          asio::buffer(size_line, static_cast<size_t>(r.ptr - size_line)), asio::buffer(data),
          asio::buffer("\r\n", 2)};
      error_ = co_await connection_.write(buffers);
      co_return error_;
    }
  }
  co_return error_code{};
}

void ResponseWriter::abort() noexcept {
  if (!error_) error_ = asio::error::operation_aborted;
  connection_.cancel_writes();  // a write waiting on a client that does not read ends now
}

void ResponseWriter::reset() noexcept {
  connection_.reset_on_close();
  abort();
}

asio::awaitable<error_code> ResponseWriter::finish() {
  if (error_) co_return error_;
  if (!head_sent_) co_return not_permitted();
  if (finished_) co_return error_code{};
  finished_ = true;
  switch (framing_) {
    case Framing::kNone:
      break;
    case Framing::kLength:
      if (written_ != declared_) {
        keep_alive_ = false;
        error_ = bh::error::partial_message;
      }
      break;
    case Framing::kClose:
      keep_alive_ = false;
      break;
    case Framing::kChunked:
      error_ = co_await connection_.write(asio::buffer("0\r\n\r\n", 5));
      break;
  }
  co_return error_;
}

// Server

Server::Server(ServerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {
  SLUICE_CHECK(static_cast<bool>(handler_), "http::Server needs a handler");
}

Server::~Server() {
  if (started_) {
    stop();
    wait();
  }
}

void Server::stop_on_signals(std::initializer_list<int> signals) {
  SLUICE_CHECK(!started_, "stop_on_signals must be called before start");
  signals_.assign(signals.begin(), signals.end());
}

error_code Server::start() {
  SLUICE_CHECK(!started_, "http::Server::start called twice");
  if (!options_.validate().empty())
    return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  error_code ec;
  const auto address = asio::ip::make_address(options_.address, ec);
  if (ec) return ec;
  tcp::endpoint endpoint(address, options_.port);
  std::vector<std::unique_ptr<internal::Worker>> workers;
  for (size_t i = 0; i < options_.workers; ++i) {
    auto worker = std::make_unique<internal::Worker>(*this, i);
    ec = worker->listen(endpoint);
    if (ec) return ec;  // `workers` closes the sockets bound so far
    if (i == 0) endpoint.port(worker->local_port());
    workers.push_back(std::move(worker));
  }
  workers_ = std::move(workers);
  port_ = endpoint.port();
  workers_.front()->watch_signals(signals_, *this);
  started_ = true;
  threads_.reserve(workers_.size());
  for (auto& worker : workers_) {
    worker->start_accepting();
    internal::Worker* w = worker.get();
    threads_.emplace_back([w] { w->run(); });
    w->thread_id_ = threads_.back().get_id();
  }
  // A stop() that raced with start() (e.g. from a signal) still reaches every worker.
  if (stop_requested_.load(std::memory_order_acquire)) {
    for (auto& worker : workers_) worker->post_drain();
  }
  return {};
}

void Server::stop() {
  if (stop_requested_.exchange(true, std::memory_order_acq_rel)) return;
  if (!started_) return;
  for (auto& worker : workers_) worker->post_drain();
}

void Server::wait() {
  for (auto& worker : workers_) {
    SLUICE_CHECK(worker->thread_id_ != std::this_thread::get_id(),
                 "http::Server::wait called from a worker thread");
  }
  for (auto& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

ServerStats Server::stats() const {
  ServerStats total;
  for (const auto& worker : workers_) total.merge(worker->counters_.snapshot());
  return total;
}

ServerStats Server::worker_stats(size_t index) const {
  SLUICE_CHECK(index < workers_.size(), "worker index out of range");
  return workers_[index]->counters_.snapshot();
}

}  // namespace sluice::http
