// The pooled HTTP/1.1 client of sluice: the gateway's way to call upstreams.
//
// `Client::send` writes one request to an origin on a pooled keep-alive connection (or a new
// one, within the pool limits), and returns a `ClientResponse` as soon as the response head
// has arrived; the body is then read piece by piece (`read_some`) or at once (`read_all`), so
// the gateway can stream it. Connections are kept per origin ("scheme://host:port"); their
// bookkeeping (reuse LIFO, total and per-host limits, eviction by idle time, age and error
// rate) is `pool::ConnectionTracker`'s, the sockets are the client's. Host names are resolved
// asynchronously and kept in a `DnsCache` for `dns_ttl`. `https` origins use OpenSSL through
// Asio SSL with SNI and certificate + host name verification (on by default).
//
// Thread-safety: one `Client` per worker event loop, used only from coroutines on that loop
// (the executor must be single-threaded: an `io_context` run by one thread, or a strand).
// `stats()` may be called from any thread.
//
// Bounds and policies, each with a counter in `ClientStats`:
//   DNS + connect + TLS handshake longer than `connect_timeout` -> connect_timeout
//   request written -> response head not complete in `response_timeout` -> response_timeout
//   a gap longer than `read_timeout` while reading the body         -> read_timeout
//   response head larger than `max_response_header_bytes`          -> response_head_too_large
//   pool at `max_total` / `max_per_host`: wait up to `pool_wait_timeout` for a slot (0 = fail
//     at once), then                                                -> pool_exhausted
//   a reused connection that fails before any response byte (the keep-alive race) -> one retry
//     on a fresh connection for idempotent methods (`stale_retries`); other methods get
//     upstream_closed (the request may have been processed).
// Every timeout is an Asio steady timer (real time), one per connection, armed lazily: a
// request only moves the connection's deadline, and the timer re-arms itself to it when it
// fires early (no timer operation or cancellation per request). The injected clock drives only the
// pool's idle/age rules and the DNS TTL, so tests can age connections and DNS entries with a
// `ManualClock`.
//
// Lifetime: a `ClientResponse` keeps the client's internals alive, so it may outlive the
// `Client` (its connection is then closed, not pooled). Destroying the `Client` closes idle
// connections and makes connections in use close when their response ends. Both must be
// destroyed before their executor's `io_context`.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "sluice/base/clock.h"
#include "sluice/http/dns_cache.h"
#include "sluice/http/server.h"
#include "sluice/pool/connection_tracker.h"

namespace sluice::http {

namespace internal {
class ClientImpl;
struct ClientConnection;
struct ResponseParser;
}  // namespace internal

// Where requests go, parsed from "http://host[:port]" or "https://host[:port]". A trailing "/"
// is accepted; any other path, a query, a fragment or user info is rejected (an origin is not
// a URL). IPv6 literals are written in brackets ("http://[::1]:8080") and stored without them.
// Scheme and host are lower-cased.
struct Origin {
  std::string scheme;  // "http" or "https"
  std::string host;    // DNS name or IP literal, without brackets
  uint16_t port = 0;   // defaulted to 80/443

  [[nodiscard]] bool tls() const noexcept { return scheme == "https"; }
  // "host" or "host:port" when not the default port (IPv6 literals in brackets).
  [[nodiscard]] std::string host_header() const;
  // "scheme://host:port" (IPv6 literals in brackets), the pool key.
  [[nodiscard]] std::string key() const;
  // Parses an origin; errors: `std::errc::invalid_argument` (with no more detail).
  [[nodiscard]] static boost::system::result<Origin> parse(std::string_view url);
};

// Changes `Client::send` makes while formatting a request head: `set` fields replace the
// request's same-named fields (or are added), fields named in `drop` are left out. Views;
// they must stay valid until `send` completes.
struct RequestEdits {
  std::span<const HeaderView> set;
  std::span<const boost::beast::http::field> drop;
};

struct ClientOptions {
  // DNS resolution + TCP connect + TLS handshake of one new connection.
  Duration connect_timeout = std::chrono::seconds(5);
  // From the start of writing the request to the end of the response head.
  Duration response_timeout = std::chrono::seconds(60);
  // Longest gap while reading the body (each `read_some`).
  Duration read_timeout = std::chrono::seconds(60);
  // How long a resolved address list is reused (0: resolve for every new connection).
  Duration dns_ttl = std::chrono::seconds(30);
  // Most host names in the DNS cache.
  size_t dns_max_entries = 1024;
  // Pool limits (total and per origin) and idle/age/error-rate eviction.
  pool::ConnectionTrackerOptions pool;
  // How long `send` waits for a connection slot when the pool is at a limit; 0 fails at once
  // with `pool_exhausted`.
  Duration pool_wait_timeout = std::chrono::seconds(1);
  // Verify the upstream's certificate chain and host name (https origins).
  bool tls_verify = true;
  // PEM bundle of trusted CAs; empty = the system default paths.
  std::string ca_file;
  // Hashed CA directory (c_rehash); empty = the system default paths.
  std::string ca_path;
  // Largest response head (status line + headers) accepted.
  size_t max_response_header_bytes = 64 * 1024;
  // Size of the buffer each `read_some` fills (the largest piece it returns).
  size_t read_chunk_bytes = 16 * 1024;
  // A pooled connection idle for longer than this is checked for a peer close or stray bytes
  // (one non-blocking peek) before reuse; one idle for less is reused without the system call
  // by idempotent requests (a close meanwhile is covered by the stale retry). Other methods
  // and the stale retry itself always get the check. 0 checks every reuse.
  Duration liveness_check_after = std::chrono::milliseconds(250);
};

enum class ClientError {
  dns_failed = 1,           // the host name did not resolve
  connect_failed,           // every address refused or was unreachable
  connect_timeout,          // DNS + connect + handshake exceeded `connect_timeout`
  tls_failed,               // TLS handshake failed (including certificate/host verification)
  pool_exhausted,           // no connection slot within `pool_wait_timeout`
  upstream_closed,          // closed or reset before the response was complete
  response_timeout,         // no complete response head within `response_timeout`
  read_timeout,             // a body read waited longer than `read_timeout`
  bad_response,             // malformed response (status line, headers, chunking)
  body_too_large,           // `read_all` past its limit (the connection is closed)
  response_head_too_large,  // response head larger than `max_response_header_bytes`
  shutting_down,            // the `Client` was destroyed (a response outliving it)
  bad_request,              // the request cannot be sent (e.g. a line break in a header value)
};

[[nodiscard]] const boost::system::error_category& client_category() noexcept;
[[nodiscard]] boost::system::error_code make_error_code(ClientError e) noexcept;

struct ClientStats {
  uint64_t requests = 0;             // `send` calls
  uint64_t responses = 0;            // response heads returned by `send`
  uint64_t responses_completed = 0;  // bodies read to their end
  uint64_t responses_abandoned = 0;  // responses destroyed before their end (connection closed)
  uint64_t connections_created = 0;  // connections opened (TCP + TLS done)
  uint64_t connections_reused = 0;   // requests sent on a pooled connection
  uint64_t stale_closed = 0;         // pooled connections found closed by the peer before use
  uint64_t stale_retries = 0;        // requests retried after a reused connection failed
  uint64_t dns_hits = 0;             // resolutions answered by the DNS cache
  uint64_t dns_misses = 0;           // resolutions that went to the resolver
  uint64_t dns_failures = 0;         // resolver errors (`dns_failed`)
  uint64_t connect_failures = 0;     // `connect_failed`
  uint64_t connect_timeouts = 0;     // `connect_timeout`
  uint64_t tls_failures = 0;         // `tls_failed`
  uint64_t response_timeouts = 0;    // `response_timeout`
  uint64_t read_timeouts = 0;        // `read_timeout`
  uint64_t upstream_resets = 0;      // `upstream_closed` (closed/reset mid-exchange)
  uint64_t bad_responses = 0;        // `bad_response` and `response_head_too_large`
  uint64_t bodies_too_large = 0;     // `read_all` calls past their limit
  uint64_t pool_waits = 0;           // `send` calls that waited for a slot
  uint64_t pool_exhausted = 0;       // `pool_exhausted`
  uint64_t bytes_sent = 0;           // request bytes written (heads and bodies)
  uint64_t bytes_received = 0;       // response bytes received (heads and bodies)
  DnsCacheStats dns;                 // the DNS cache's own counters
  pool::ConnectionStats pool;        // the tracker's: open (active/idle), destroyed by reason

  // Share of requests sent on a pooled connection, in [0, 1].
  [[nodiscard]] double reuse_rate() const noexcept {
    const uint64_t n = connections_created + connections_reused;
    return n == 0 ? 0.0 : static_cast<double>(connections_reused) / static_cast<double>(n);
  }
};

class ClientResponse;

class Client {
 public:
  Client(boost::asio::any_io_executor executor, ClientOptions options,
         const base::Clock& clock = base::SteadyClock::instance());
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `request` to `origin` and returns once the response head has been read. The request
  // goes out as given (method, target, headers, body) over HTTP/1.1; Host is set from the
  // origin when absent; Content-Length is set from the body (any Content-Length or
  // Transfer-Encoding in the request is replaced), and is sent as 0 for an empty POST/PUT/PATCH.
  // `Connection: close` in the request makes the connection close after the response. 1xx
  // interim responses (other than 101) are skipped. `origin` and `request` must stay valid
  // until the call completes (as they do in `co_await client.send(o, r)`); the response does
  // not refer to them.
  // `edits` change the head as it is formatted (see `RequestEdits`), so a proxy forwards a
  // request without copying it; what they view must stay valid like `request`.
  [[nodiscard]] boost::asio::awaitable<boost::system::result<ClientResponse>> send(
      const Origin& origin, const Request& request, RequestEdits edits = {});

  // Closes idle connections that broke a tracker rule (idle time, age, error rate). Call it
  // periodically (e.g. every 30 s); `send` also evicts stale idle connections of its origin.
  void cleanup();
  // Closes every idle connection now.
  void close_idle();

  // Counters; any thread.
  [[nodiscard]] ClientStats stats() const;
  // Per-origin pool counters (keys as `Origin::key()`); any thread.
  [[nodiscard]] std::vector<pool::HostConnectionStats> pool_stats() const;
  [[nodiscard]] boost::asio::any_io_executor executor() const;
  [[nodiscard]] const ClientOptions& options() const noexcept;

 private:
  std::shared_ptr<internal::ClientImpl> impl_;
};

// A response whose head has arrived; the body is read piece by piece. Move-only. Destroying it
// before the body ended closes the connection (it cannot be reused); reading a keep-alive
// response to its end returns the connection to the pool at once. Use it on the client's
// executor only.
class ClientResponse {
 public:
  ClientResponse(ClientResponse&&) noexcept;
  ClientResponse& operator=(ClientResponse&&) noexcept;
  ClientResponse(const ClientResponse&) = delete;
  ClientResponse& operator=(const ClientResponse&) = delete;
  ~ClientResponse();

  // Status line and fields as received (hop-by-hop headers included; see strip_hop_by_hop).
  [[nodiscard]] const boost::beast::http::response_header<>& head() const;
  [[nodiscard]] unsigned status() const;
  // Next piece of the body: a non-empty view valid until the next call; an empty view = body
  // complete (and the connection is back in the pool if it may be kept). Errors:
  // read_timeout, upstream_closed, bad_response; after an error, the connection is closed and
  // every later call returns the same error.
  [[nodiscard]] boost::asio::awaitable<boost::system::result<std::string_view>> read_some();
  // Reads the rest of the body into one string; past `limit` bytes fails with body_too_large.
  [[nodiscard]] boost::asio::awaitable<boost::system::result<std::string>> read_all(size_t limit);
  // The body ended (or failed): no more reads.
  [[nodiscard]] bool done() const noexcept;
  // Replaces the client's `read_timeout` for the rest of this body (e.g. a stream's stall
  // timeout: the longest silence allowed between two pieces).
  void set_read_timeout(Duration timeout) noexcept { read_timeout_ = timeout; }
  // Ends the body now: a pending `read_some` completes with `upstream_closed`, the connection
  // is closed (counted as abandoned, not as an upstream error), and later reads return that
  // error. For a reader that must stop while waiting
  // on a silent upstream. Same executor as the reads; no effect once done.
  void cancel() noexcept;
  // Body bytes returned so far.
  [[nodiscard]] uint64_t body_bytes() const noexcept { return body_bytes_; }
  // Whether the connection was taken from the pool (not opened for this request).
  [[nodiscard]] bool reused_connection() const noexcept { return reused_; }

 private:
  friend class internal::ClientImpl;
  ClientResponse(std::shared_ptr<internal::ClientImpl> impl,
                 std::shared_ptr<internal::ClientConnection> conn,
                 std::unique_ptr<internal::ResponseParser> parser, bool reused) noexcept;
  // Ends the response: the connection goes back to the pool (no error) or is closed.
  void finish(boost::system::error_code error);
  // Destruction or move-assignment before the end: closes the connection.
  void abandon() noexcept;

  std::shared_ptr<internal::ClientImpl> impl_;
  std::shared_ptr<internal::ClientConnection> conn_;  // null once finished
  std::unique_ptr<internal::ResponseParser> parser_;  // holds the head
  boost::system::error_code error_;
  uint64_t body_bytes_ = 0;
  std::optional<Duration> read_timeout_;
  boost::system::error_code deferred_error_;  // found while parsing ahead; returned next
  bool done_ = false;
  bool cancelled_ = false;
  bool reused_ = false;
};

}  // namespace sluice::http

template <>
struct boost::system::is_error_code_enum<sluice::http::ClientError> : std::true_type {};
