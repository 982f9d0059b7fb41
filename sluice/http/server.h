// The HTTP/1.1 server of sluice: the gateway's front door, usable on its own by any program.
//
// Thread-per-core: `workers` threads, each with its own `io_context` and its own listening
// socket bound with SO_REUSEPORT to the same address and port, so the kernel spreads new
// connections across workers and a request never leaves the worker that accepted it (no lock
// on its path). Each connection is one coroutine that reads a request, hands it to the
// handler, writes the response, and loops (keep-alive); pipelined requests are therefore
// answered in order. Request framing is checked beyond Beast's parser (see
// request_framing.h); hop-by-hop headers are removed before the handler sees the request.
//
// Thread-safety: `start`, `wait` and the destructor from one owning thread; `stop`,
// `stats`, `worker_stats` and `port` from any thread (also from a handler). The handler is
// called concurrently on every worker thread and must be safe for that; one call handles one
// request on the worker's own executor, so what it awaits resumes on that worker.
//
// Bounds, each with a policy and a counter in `ServerStats`:
//   head larger than `max_header_bytes`     -> 431, close            (`headers_too_large`)
//   body larger than `max_body_bytes`       -> 413, close            (`bodies_too_large`)
//   head not complete in `header_timeout`   -> 408, close            (`header_timeouts`)
//   body not complete in `body_timeout`     -> 408, close            (`body_timeouts`)
//   no new request within `idle_timeout`    -> close                 (`idle_timeouts`)
//   a write not accepted in `write_timeout` -> close                 (`write_timeouts`)
//   more than `max_connections` open        -> 503, close            (`connections_rejected`)
//   ambiguous or malformed framing          -> 400 + JSON reason, close (`bad_requests`)
//   handler throws                          -> 500 if no head was sent, close
//   `stop()`: idle connections close now; in-flight requests get up to `drain_timeout`,
//   then their sockets are closed                                  (`drain_forced_closes`)
// Error responses carry `{"error":"...","reason":"..."}` and `Connection: close`; after one,
// the server shuts down its sending side and discards what the client still sends (up to
// `lingering_close_bytes` or `lingering_close_timeout`) so the client reads the answer
// instead of a reset.
//
// Timeouts are Asio steady timers on the worker's event loop (real time); tests configure
// short ones and assert outcomes, never elapsed time.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/http/headers.h"
#include "sluice/http/request_framing.h"

namespace sluice::http {

namespace internal {
class Connection;
class Worker;
}  // namespace internal

// A parsed request as the handler sees it: method, target, version, headers (hop-by-hop
// headers already removed) and the complete body (bounded by `max_body_bytes`). A chunked
// body arrives de-chunked, with `Content-Length` set to its size.
using Request = boost::beast::http::request<boost::beast::http::string_body>;

// One worker per hardware thread (at least one).
[[nodiscard]] size_t default_worker_count() noexcept;

struct ServerOptions {
  // Address to listen on (IPv4 or IPv6 literal).
  std::string address = "127.0.0.1";
  // Port to listen on; 0 picks a free port, readable through `Server::port()` after start.
  uint16_t port = 0;
  // Worker threads, each with its own event loop and SO_REUSEPORT listening socket.
  size_t workers = default_worker_count();
  // Largest request head (request line + headers) accepted; beyond it: 431 and close.
  size_t max_header_bytes = 16 * 1024;
  // Largest request body accepted (Content-Length or de-chunked); beyond it: 413 and close.
  size_t max_body_bytes = 8 * 1024 * 1024;
  // Time allowed from the first byte of a request (or from accept) to the end of its head;
  // beyond it: 408 and close (cuts slowloris clients).
  Duration header_timeout = std::chrono::seconds(10);
  // Time a keep-alive connection may wait for the first byte of its next request; then it is
  // closed silently.
  Duration idle_timeout = std::chrono::seconds(60);
  // Time allowed to receive a request body after its head; beyond it: 408 and close.
  Duration body_timeout = std::chrono::seconds(30);
  // Time allowed for one write (a head, a chunk, a complete response) to be accepted by the
  // socket; beyond it the client is considered gone and the connection is closed.
  Duration write_timeout = std::chrono::seconds(30);
  // Open connections allowed across all workers; past it a new connection gets 503 and is
  // closed.
  size_t max_connections = 10000;
  // Time `stop()` gives in-flight requests to finish before their sockets are closed.
  Duration drain_timeout = std::chrono::seconds(10);
  // After an error response: longest time spent discarding what the client still sends.
  Duration lingering_close_timeout = std::chrono::seconds(2);
  // After an error response: most bytes discarded before the socket is closed.
  size_t lingering_close_bytes = 256 * 1024;
  // Listen backlog of each worker's socket.
  int listen_backlog = 1024;

  // Empty when the options are usable, otherwise what is wrong (for a person to read).
  [[nodiscard]] std::string validate() const;
};

// Counters of one worker, or of all workers merged. Prometheus names in docs/modules/http.md.
struct ServerStats {
  uint64_t connections_accepted = 0;  // connections accepted (including rejected ones)
  uint64_t connections_active = 0;    // connections open now (gauge; rejected ones excluded)
  uint64_t connections_rejected = 0;  // connections answered 503 past `max_connections`
  uint64_t accept_errors = 0;         // failed accepts (e.g. out of file descriptors)
  uint64_t requests = 0;              // complete requests handed to the handler
  uint64_t keepalive_reuses = 0;      // requests that were not the first on their connection
  uint64_t responses_1xx = 0;         // responses by status class (including error responses)
  uint64_t responses_2xx = 0;
  uint64_t responses_3xx = 0;
  uint64_t responses_4xx = 0;
  uint64_t responses_5xx = 0;
  std::array<uint64_t, kBadRequestReasonCount> bad_requests{};  // 400s, by `BadRequestReason`
  uint64_t header_timeouts = 0;      // 408: head not complete in `header_timeout`
  uint64_t body_timeouts = 0;        // 408: body not complete in `body_timeout`
  uint64_t headers_too_large = 0;    // 431
  uint64_t bodies_too_large = 0;     // 413
  uint64_t idle_timeouts = 0;        // keep-alive connections closed after `idle_timeout`
  uint64_t write_timeouts = 0;       // connections closed after `write_timeout`
  uint64_t handler_exceptions = 0;   // handlers that threw (500 or a cut response)
  uint64_t handler_no_response = 0;  // handlers that returned without writing a head (500)
  uint64_t drain_forced_closes = 0;  // connections still busy when `drain_timeout` expired
  uint64_t bytes_in = 0;             // request bytes parsed (heads and bodies)
  uint64_t bytes_out = 0;            // response bytes accepted by sockets

  [[nodiscard]] uint64_t bad_requests_total() const noexcept;
  [[nodiscard]] uint64_t bad_requests_for(BadRequestReason r) const noexcept {
    return bad_requests[static_cast<size_t>(r)];
  }
  // All 408 answers.
  [[nodiscard]] uint64_t request_timeouts() const noexcept {
    return header_timeouts + body_timeouts;
  }
  void merge(const ServerStats& other) noexcept;
};

// The response side of one request, given to the handler. Either `send` a complete response,
// or stream: `write_head`, any number of `write_chunk`, then `finish`. Without a declared
// length the body goes out with chunked transfer encoding (HTTP/1.1) or is delimited by
// closing the connection (HTTP/1.0). Each call suspends until the socket accepted the bytes
// (bounded by `write_timeout`): that is how a slow client pushes back on the producer.
//
// Every call returns an error code instead of throwing: a client that went away is expected.
// After an error, later calls return it again and the connection is closed after the handler.
// The server owns framing: Content-Length, Transfer-Encoding, Connection and Keep-Alive in
// the handler's headers are ignored. For HEAD requests and 1xx/204/304 statuses the body bytes
// are dropped. If the handler returns after `write_head` without `finish`, the server
// finishes the response. Not thread-safe: use it from the handler's coroutine only; it lives
// as long as the handler call.
// A response head written without copying it: `fields` as stored (minus its hop-by-hop
// fields with `strip_hop_by_hop`), then `extra`, whose names replace same-named stored fields.
// The framing fields (Content-Length, Transfer-Encoding, Connection, Keep-Alive) are always
// the writer's own. Everything viewed must stay valid until the write completes.
struct HeadView {
  const boost::beast::http::fields& fields;
  std::span<const HeaderView> extra = {};
  bool strip_hop_by_hop = false;
};

class ResponseWriter {
 public:
  ResponseWriter(const ResponseWriter&) = delete;
  ResponseWriter& operator=(const ResponseWriter&) = delete;

  // Writes a complete response (head and body in one write).
  [[nodiscard]] boost::asio::awaitable<boost::system::error_code> send(
      boost::beast::http::status status, boost::beast::http::fields headers, std::string body);
  // The same for a head viewed in place; `body` must stay valid until the call completes.
  [[nodiscard]] boost::asio::awaitable<boost::system::error_code> send(
      boost::beast::http::status status, const HeadView& head, std::string_view body);
  // Writes the status line and headers. With `content_length`, exactly that many body bytes
  // must follow; otherwise the body is chunked (or close-delimited for HTTP/1.0).
  [[nodiscard]] boost::asio::awaitable<boost::system::error_code> write_head(
      boost::beast::http::status status, boost::beast::http::fields headers,
      std::optional<uint64_t> content_length = std::nullopt);
  [[nodiscard]] boost::asio::awaitable<boost::system::error_code> write_head(
      boost::beast::http::status status, const HeadView& head,
      std::optional<uint64_t> content_length = std::nullopt);
  // Writes body bytes as one chunk; `data` must stay valid until the call completes. Empty
  // data is a no-op. Writing past a declared length fails with `http::error::body_limit`.
  [[nodiscard]] boost::asio::awaitable<boost::system::error_code> write_chunk(
      std::string_view data);
  // Ends the body (the last chunk for chunked bodies). Fails with
  // `http::error::partial_message` if fewer bytes than declared were written (the connection is
  // then closed, since the client cannot tell where the response ends).
  [[nodiscard]] boost::asio::awaitable<boost::system::error_code> finish();
  // Gives up on a response whose head was sent but whose body cannot be completed (the
  // upstream it streams from failed): the body is left unterminated and the connection is
  // closed after the handler, so the client sees a truncated response, never a complete
  // one. Later calls fail with `operation_aborted`, and a write in progress (another coroutine
  // of the handler waiting on a client that does not read) completes with it at once.
  void abort() noexcept;
  // `abort()`, and the connection closes with a reset (RST) rather than a FIN: what the kernel
  // still holds for the client is discarded at once instead of being drained through a window
  // that may never open. For a client cut as too slow.
  void reset() noexcept;

  [[nodiscard]] bool head_sent() const noexcept { return head_sent_; }
  [[nodiscard]] bool finished() const noexcept { return finished_; }
  // Whether the connection will stay open after this response.
  [[nodiscard]] bool keep_alive() const noexcept { return keep_alive_; }
  // Index of the worker (0 .. workers-1) serving this request.
  [[nodiscard]] size_t worker_index() const noexcept;
  // The client's address.
  [[nodiscard]] const boost::asio::ip::tcp::endpoint& peer() const noexcept;
  // The client's address as text ("127.0.0.1", "::1"), formatted once per connection.
  [[nodiscard]] const std::string& peer_address() const;
  // Whether the client is known to be gone: an earlier write failed, or the socket reports an
  // orderly close or a reset (a non-blocking peek; no syscall blocks). A long-lived stream
  // (SSE) asks this at each heartbeat, so a vanished client is found without writing to it.
  [[nodiscard]] bool peer_closed() const noexcept;

 private:
  friend class internal::Connection;
  enum class Framing : uint8_t {
    kNone,     // no body may be sent (HEAD, 1xx, 204, 304)
    kLength,   // Content-Length declared
    kChunked,  // Transfer-Encoding: chunked
    kClose,    // HTTP/1.0 without a length: the body ends when the connection closes
  };
  ResponseWriter(internal::Connection& connection, bool head_request, unsigned version,
                 bool keep_alive) noexcept
      : connection_(connection),
        head_request_(head_request),
        version_(version),
        keep_alive_(keep_alive) {}
  // Formats the head into the connection's scratch buffer; sets framing and counters.
  void format_head(boost::beast::http::status status, const HeadView& head,
                   std::optional<uint64_t> content_length);

  internal::Connection& connection_;
  bool head_request_;
  unsigned version_;  // 10 or 11
  bool keep_alive_;
  bool head_sent_ = false;
  bool finished_ = false;
  Framing framing_ = Framing::kNone;
  uint64_t declared_ = 0;
  uint64_t written_ = 0;
  boost::system::error_code error_;
};

// The handler: one call per request. It must write a response through the writer (or throw,
// which the server answers with 500).
using Handler = std::function<boost::asio::awaitable<void>(Request&, ResponseWriter&)>;

class Server {
 public:
  // `handler` must not be empty.
  Server(ServerOptions options, Handler handler);
  // Stops (with draining) and waits if still running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Makes `stop()` run when one of `signals` arrives (e.g. SIGTERM). Call before `start()`.
  void stop_on_signals(std::initializer_list<int> signals);

  // Validates the options, binds every worker's socket and starts the worker threads.
  // Returns `std::errc::invalid_argument` for bad options (see `ServerOptions::validate`) or
  // the bind/listen error. Call once.
  [[nodiscard]] boost::system::error_code start();
  // The bound port (valid after a successful `start`).
  [[nodiscard]] uint16_t port() const noexcept { return port_; }
  // Stops accepting, closes idle connections, lets in-flight requests finish for up to
  // `drain_timeout`, then closes the rest. Returns at once; idempotent; any thread.
  void stop();
  // Returns when every worker thread has finished. Not from a worker thread.
  void wait();

  [[nodiscard]] size_t worker_count() const noexcept { return workers_.size(); }
  // Counters merged across workers (each read is relaxed: a recent, not atomic, snapshot).
  [[nodiscard]] ServerStats stats() const;
  // Counters of one worker.
  [[nodiscard]] ServerStats worker_stats(size_t index) const;
  [[nodiscard]] const ServerOptions& options() const noexcept { return options_; }

 private:
  friend class internal::Worker;
  ServerOptions options_;
  Handler handler_;
  std::vector<int> signals_;
  // Declared before `workers_`: connections still parked in a worker's loop when it is
  // destroyed update these.
  std::atomic<size_t> active_connections_{0};  // across workers, for `max_connections`
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> started_{false};
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<internal::Worker>> workers_;
  std::vector<std::thread> threads_;
};

}  // namespace sluice::http
