#include "sluice/http/client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/system/errc.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <cerrno>
#include <charconv>
#include <limits>
#include <list>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/base/check.h"
#include "sluice/http/headers.h"

namespace sluice::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = boost::beast::http;
namespace ssl = boost::asio::ssl;
using boost::system::error_code;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool has_line_break(std::string_view s) noexcept {
  // A plain loop: `find_first_of` with a two-character set costs a memchr per character.
  for (const char c : s) {
    if (c == '\r' || c == '\n') return true;
  }
  return false;
}

void append_number(std::string& out, uint64_t value) {
  char digits[24];
  const auto r = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, r.ptr);
}

bool is_ipv6_literal(std::string_view host) noexcept {
  return host.find(':') != std::string_view::npos;
}

class ClientCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.http.client"; }
  std::string message(int ev) const override {
    switch (static_cast<ClientError>(ev)) {
      case ClientError::dns_failed:
        return "upstream host name did not resolve";
      case ClientError::connect_failed:
        return "could not connect to the upstream";
      case ClientError::connect_timeout:
        return "connecting to the upstream timed out";
      case ClientError::tls_failed:
        return "TLS handshake with the upstream failed";
      case ClientError::pool_exhausted:
        return "no upstream connection available (pool limit)";
      case ClientError::upstream_closed:
        return "upstream closed the connection before the response was complete";
      case ClientError::response_timeout:
        return "upstream response head timed out";
      case ClientError::read_timeout:
        return "reading the upstream response body timed out";
      case ClientError::bad_response:
        return "malformed upstream response";
      case ClientError::body_too_large:
        return "upstream response body too large";
      case ClientError::response_head_too_large:
        return "upstream response head too large";
      case ClientError::shutting_down:
        return "HTTP client shut down";
      case ClientError::bad_request:
        return "request cannot be sent (invalid target or header)";
    }
    return "unknown HTTP client error";
  }
};

}  // namespace

const boost::system::error_category& client_category() noexcept {
  static const ClientCategory category;
  return category;
}

boost::system::error_code make_error_code(ClientError e) noexcept {
  return {static_cast<int>(e), client_category()};
}

// ---------------------------------------------------------------------------------------------
// Origin

std::string Origin::host_header() const {
  std::string out = is_ipv6_literal(host) ? "[" + host + "]" : host;
  if (port != (tls() ? 443 : 80)) {
    out += ':';
    append_number(out, port);
  }
  return out;
}

std::string Origin::key() const {
  std::string out = scheme;
  out += "://";
  out += is_ipv6_literal(host) ? "[" + host + "]" : host;
  out += ':';
  append_number(out, port);
  return out;
}

boost::system::result<Origin> Origin::parse(std::string_view url) {
  const auto invalid = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  const auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) return invalid;
  const boost::urls::url_view& u = *parsed;
  Origin o;
  o.scheme = lower(u.scheme());
  if (o.scheme != "http" && o.scheme != "https") return invalid;
  if (!u.has_authority() || u.has_userinfo() || u.has_query() || u.has_fragment()) return invalid;
  const auto path = u.encoded_path();
  if (!path.empty() && path != "/") return invalid;
  switch (u.host_type()) {
    case boost::urls::host_type::ipv4:
    case boost::urls::host_type::ipv6:
      o.host = lower(u.host_address());
      break;
    case boost::urls::host_type::name:
      o.host = lower(u.host());
      break;
    default:
      return invalid;
  }
  if (o.host.empty()) return invalid;
  if (u.has_port() && !u.port().empty()) {
    const std::string_view text = u.port();
    uint32_t port = 0;
    const auto r = std::from_chars(text.data(), text.data() + text.size(), port);
    if (r.ec != std::errc{} || r.ptr != text.data() + text.size() || port == 0 || port > 65535) {
      return invalid;
    }
    o.port = static_cast<uint16_t>(port);
  } else {
    o.port = o.tls() ? 443 : 80;
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Internals

namespace internal {

// One upstream connection: the socket (plain or TLS), its read buffer and its deadline timer.
struct ClientConnection {
  ClientConnection(const asio::any_io_executor& executor, ssl::context* tls_context)
      : timer(executor) {
    if (tls_context != nullptr) {
      tls.emplace(executor, *tls_context);
    } else {
      plain.emplace(executor);
    }
  }

  tcp::socket& socket() noexcept { return tls ? tls->next_layer() : *plain; }
  // Runs `f` on the stream the connection speaks (TLS or plain TCP).
  template <class F>
  auto io(F&& f) {
    if (tls) return f(*tls);
    return f(*plain);
  }
  // Called by the deadline timer: makes the pending operation complete with an error.
  void cancel_io() noexcept {
    error_code ignored;
    socket().cancel(ignored);
    if (resolver != nullptr) resolver->cancel();
  }
  void close_socket() noexcept {
    deadline = asio::steady_timer::time_point::max();
    watching = false;
    ++timer_generation;
    timer.cancel();
    error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }
  // No byte waits on an idle connection: readable data or EOF means the peer closed it (or
  // broke the protocol). One non-blocking peek.
  [[nodiscard]] bool idle_and_alive(bool peek) noexcept {
    if (buffer.size() != 0 || !socket().is_open()) return false;
    if (!peek) return true;
    char byte;
    const ssize_t n = ::recv(socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }

  pool::ConnectionId id = 0;
  std::optional<tcp::socket> plain;
  std::optional<ssl::stream<tcp::socket>> tls;
  beast::flat_buffer buffer;
  std::vector<char> body_buffer;
  asio::steady_timer timer;
  // The deadline of the operation in progress (max: none). `timer` waits for at most this
  // long and re-arms itself when the deadline moved later meanwhile.
  asio::steady_timer::time_point deadline = asio::steady_timer::time_point::max();
  uint64_t timer_generation = 0;  // of the outstanding wait; older waits are superseded
  bool watching = false;          // a wait is outstanding on `timer`
  bool timed_out = false;
  TimePoint released_at{};            // when it last went back to the pool (the client's clock)
  tcp::resolver* resolver = nullptr;  // set while resolving, for `cancel_io`
  bool close_after = false;           // the request asked for `Connection: close`
  uint64_t bytes_sent = 0;            // of the current request
  uint64_t bytes_received = 0;        // of the current response
};

// The parser of one response; owned by its `ClientResponse` so the head stays valid after the
// connection went back to the pool.
struct ResponseParser {
  std::optional<bh::response_parser<bh::buffer_body>> parser;
};

class ClientImpl : public std::enable_shared_from_this<ClientImpl> {
 public:
  ClientImpl(asio::any_io_executor executor, ClientOptions options, const base::Clock& clock)
      : executor_(std::move(executor)),
        options_(std::move(options)),
        clock_(clock),
        tracker_(options_.pool),
        dns_(DnsCacheOptions{options_.dns_ttl, options_.dns_max_entries}, clock) {}

  asio::awaitable<boost::system::result<ClientResponse>> send(const Origin& origin,
                                                              const RequestEdits& edits,
                                                              const Request& request);
  // Ends the use of an in-use connection: back to the pool, or closed with `reason`.
  void finish(const std::shared_ptr<ClientConnection>& c, bool reusable, bool success,
              pool::CloseReason reason);
  void arm(const std::shared_ptr<ClientConnection>& c, Duration d);
  // Ends the current deadline. The outstanding wait, if any, is left to fire and finds
  // nothing to do (or a later deadline to re-arm for): no cancellation per request.
  static void disarm(ClientConnection& c) noexcept {
    c.deadline = asio::steady_timer::time_point::max();
  }
  static void watch(const std::shared_ptr<ClientConnection>& c);
  ClientError classify(const ClientConnection& c, error_code ec, bool reading_body);
  void count_error(ClientError e) noexcept;

  void cleanup();
  void close_idle();
  void shutdown();
  ClientStats stats() const;
  std::vector<pool::HostConnectionStats> host_stats() const { return tracker_.host_stats(); }

  const asio::any_io_executor& executor() const noexcept { return executor_; }
  const ClientOptions& options() const noexcept { return options_; }

  // Relaxed-atomic counters: written by the owner thread, read by anyone.
  struct Counters {
    std::atomic<uint64_t> requests{0}, responses{0}, responses_completed{0}, responses_abandoned{0},
        connections_created{0}, connections_reused{0}, stale_closed{0}, stale_retries{0},
        dns_failures{0}, connect_failures{0}, connect_timeouts{0}, tls_failures{0},
        response_timeouts{0}, read_timeouts{0}, upstream_resets{0}, bad_responses{0},
        bodies_too_large{0}, pool_waits{0}, pool_exhausted{0}, bytes_sent{0}, bytes_received{0};
  };
  static void bump(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  Counters counters_;

 private:
  struct Acquired {
    std::shared_ptr<ClientConnection> conn;
    bool reused = false;
  };
  // `idempotent`: the request may be retried on a fresh connection if a reused one turns out
  // closed, so a recently used connection is reused without the liveness peek.
  asio::awaitable<boost::system::result<Acquired>> acquire(const Origin& origin, bool idempotent,
                                                           const std::string& key);
  asio::awaitable<error_code> connect(const std::shared_ptr<ClientConnection>& c,
                                      const Origin& origin);
  ssl::context* tls_context(error_code& ec);
  void close_evicted(const std::vector<pool::ConnectionId>& ids);
  void flush_idle(const std::string& key);
  void notify_waiters() {
    for (asio::steady_timer* t : waiters_) t->cancel();
  }

  asio::any_io_executor executor_;
  const ClientOptions options_;
  const base::Clock& clock_;
  size_t in_use_ = 0;  // connections handed out by `acquire` and not yet finished
  pool::ConnectionTracker tracker_;
  DnsCache dns_;
  std::unordered_map<pool::ConnectionId, std::shared_ptr<ClientConnection>> idle_;
  std::unordered_map<pool::ConnectionId, std::string> keys_;  // origin key of each connection
  std::list<asio::steady_timer*> waiters_;
  std::optional<ssl::context> tls_context_;
  error_code tls_context_error_;
  bool shut_down_ = false;
};

void ClientImpl::arm(const std::shared_ptr<ClientConnection>& c, Duration d) {
  c->timed_out = false;
  c->deadline = asio::steady_timer::clock_type::now() +
                std::chrono::duration_cast<asio::steady_timer::duration>(d);
  // An outstanding wait that fires no later than the new deadline re-arms itself then.
  if (c->watching && c->timer.expiry() <= c->deadline) return;
  c->timer.expires_at(c->deadline);  // supersedes an outstanding later wait
  watch(c);
}

void ClientImpl::watch(const std::shared_ptr<ClientConnection>& c) {
  c->watching = true;
  const uint64_t generation = ++c->timer_generation;
  c->timer.async_wait([weak = std::weak_ptr<ClientConnection>(c), generation](error_code ec) {
    const auto conn = weak.lock();
    if (!conn || conn->timer_generation != generation) return;  // superseded or gone
    conn->watching = false;
    if (ec || conn->deadline == asio::steady_timer::time_point::max()) return;
    if (conn->deadline > asio::steady_timer::clock_type::now()) {
      conn->timer.expires_at(conn->deadline);  // the deadline moved on meanwhile
      watch(conn);
      return;
    }
    conn->deadline = asio::steady_timer::time_point::max();
    conn->timed_out = true;
    conn->cancel_io();
  });
}

ClientError ClientImpl::classify(const ClientConnection& c, error_code ec, bool reading_body) {
  if (c.timed_out) return reading_body ? ClientError::read_timeout : ClientError::response_timeout;
  if (ec == bh::error::header_limit) return ClientError::response_head_too_large;
  if (ec == bh::error::end_of_stream || ec == bh::error::partial_message) {
    return ClientError::upstream_closed;
  }
  if (ec.category() == bh::make_error_code(bh::error::bad_version).category()) {
    return ClientError::bad_response;
  }
  return ClientError::upstream_closed;  // EOF, reset, broken pipe, TLS truncation
}

void ClientImpl::count_error(ClientError e) noexcept {
  switch (e) {
    case ClientError::dns_failed:
      bump(counters_.dns_failures);
      break;
    case ClientError::connect_failed:
      bump(counters_.connect_failures);
      break;
    case ClientError::connect_timeout:
      bump(counters_.connect_timeouts);
      break;
    case ClientError::tls_failed:
      bump(counters_.tls_failures);
      break;
    case ClientError::pool_exhausted:
      bump(counters_.pool_exhausted);
      break;
    case ClientError::upstream_closed:
      bump(counters_.upstream_resets);
      break;
    case ClientError::response_timeout:
      bump(counters_.response_timeouts);
      break;
    case ClientError::read_timeout:
      bump(counters_.read_timeouts);
      break;
    case ClientError::bad_response:
    case ClientError::response_head_too_large:
      bump(counters_.bad_responses);
      break;
    case ClientError::body_too_large:
      bump(counters_.bodies_too_large);
      break;
    default:
      break;
  }
}

ssl::context* ClientImpl::tls_context(error_code& ec) {
  if (!tls_context_) {
    tls_context_.emplace(ssl::context::tls_client);
    auto& ctx = *tls_context_;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                        ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                    tls_context_error_);
    if (options_.tls_verify) {
      if (!tls_context_error_) ctx.set_verify_mode(ssl::verify_peer, tls_context_error_);
      if (!tls_context_error_ && !options_.ca_file.empty()) {
        ctx.load_verify_file(options_.ca_file, tls_context_error_);
      }
      if (!tls_context_error_ && !options_.ca_path.empty()) {
        ctx.add_verify_path(options_.ca_path, tls_context_error_);
      }
      if (!tls_context_error_ && options_.ca_file.empty() && options_.ca_path.empty()) {
        ctx.set_default_verify_paths(tls_context_error_);
      }
    } else {
      ctx.set_verify_mode(ssl::verify_none, tls_context_error_);
    }
  }
  ec = tls_context_error_;
  return ec ? nullptr : &*tls_context_;
}

void ClientImpl::close_evicted(const std::vector<pool::ConnectionId>& ids) {
  for (const pool::ConnectionId id : ids) {
    keys_.erase(id);
    const auto it = idle_.find(id);
    if (it == idle_.end()) continue;
    it->second->close_socket();
    idle_.erase(it);
  }
}

void ClientImpl::flush_idle(const std::string& key) {
  std::vector<pool::ConnectionId> ids;
  for (const auto& [id, conn] : idle_) {
    const auto k = keys_.find(id);
    if (k != keys_.end() && k->second == key) ids.push_back(id);
  }
  for (const pool::ConnectionId id : ids) tracker_.close(id, pool::CloseReason::kClosedByPeer);
  close_evicted(ids);
}

asio::awaitable<boost::system::result<ClientImpl::Acquired>> ClientImpl::acquire(
    const Origin& origin, bool idempotent, const std::string& key) {
  const auto deadline =
      asio::steady_timer::clock_type::now() +
      std::chrono::duration_cast<asio::steady_timer::duration>(options_.pool_wait_timeout);
  bool waited = false;
  for (;;) {
    if (shut_down_) co_return make_error_code(ClientError::shutting_down);
    const TimePoint now = clock_.now();
    pool::SlotResult slot = tracker_.acquire_slot(key, now);
    close_evicted(slot.to_close);
    switch (slot.decision) {
      case pool::SlotDecision::kReuse: {
        const auto it = idle_.find(slot.id);
        SLUICE_CHECK(it != idle_.end(), "tracker handed out a connection the client does not hold");
        auto conn = std::move(it->second);
        idle_.erase(it);
        const bool peek = !idempotent || now - conn->released_at >= options_.liveness_check_after;
        if (!conn->idle_and_alive(peek)) {
          bump(counters_.stale_closed);
          tracker_.close(slot.id, pool::CloseReason::kClosedByPeer);
          keys_.erase(slot.id);
          conn->close_socket();
          continue;
        }
        bump(counters_.connections_reused);
        ++in_use_;
        co_return Acquired{std::move(conn), true};
      }
      case pool::SlotDecision::kCreate: {
        error_code ec;
        ssl::context* ctx = origin.tls() ? tls_context(ec) : nullptr;
        auto conn = std::make_shared<ClientConnection>(executor_, ctx);
        conn->id = slot.id;
        keys_.emplace(slot.id, key);
        if (ec) {
          ec = make_error_code(ClientError::tls_failed);  // unusable CA file or path
        } else {
          ec = co_await connect(conn, origin);
        }
        if (ec) {
          tracker_.close(slot.id, pool::CloseReason::kError);
          keys_.erase(slot.id);
          conn->close_socket();
          notify_waiters();
          co_return ec;
        }
        bump(counters_.connections_created);
        ++in_use_;
        co_return Acquired{std::move(conn), false};
      }
      case pool::SlotDecision::kWait: {
        if (!waited) bump(counters_.pool_waits);
        waited = true;
        if (options_.pool_wait_timeout <= Duration::zero() ||
            asio::steady_timer::clock_type::now() >= deadline) {
          co_return make_error_code(ClientError::pool_exhausted);
        }
        // Woken (cancelled) by any release or close; re-asks the tracker either way.
        asio::steady_timer timer(executor_, deadline);
        const auto it = waiters_.insert(waiters_.end(), &timer);
        tracker_.add_waiter(key);
        (void)co_await timer.async_wait(kUseTuple);
        tracker_.remove_waiter(key);
        waiters_.erase(it);
        break;
      }
      case pool::SlotDecision::kShuttingDown:
        co_return make_error_code(ClientError::shutting_down);
    }
  }
}

asio::awaitable<error_code> ClientImpl::connect(const std::shared_ptr<ClientConnection>& c,
                                                const Origin& origin) {
  arm(c, options_.connect_timeout);
  std::vector<tcp::endpoint> endpoints;
  error_code ec;
  const auto literal = asio::ip::make_address(origin.host, ec);
  const bool ip_literal = !ec;
  if (ip_literal) {
    endpoints.emplace_back(literal, origin.port);
  } else if (auto cached = dns_.find(origin.host)) {
    for (const auto& a : *cached) {
      const auto address = asio::ip::make_address(a, ec);
      if (!ec) endpoints.emplace_back(address, origin.port);
    }
  } else {
    tcp::resolver resolver(executor_);
    c->resolver = &resolver;
    auto [rec, results] = co_await resolver.async_resolve(origin.host, "", kUseTuple);
    c->resolver = nullptr;
    if (c->timed_out) co_return make_error_code(ClientError::connect_timeout);
    if (rec || results.empty()) co_return make_error_code(ClientError::dns_failed);
    std::vector<std::string> addresses;
    for (const auto& entry : results) {
      std::string a = entry.endpoint().address().to_string();
      if (std::find(addresses.begin(), addresses.end(), a) != addresses.end()) continue;
      endpoints.emplace_back(entry.endpoint().address(), origin.port);
      addresses.push_back(std::move(a));
    }
    dns_.insert(origin.host, std::move(addresses));
  }
  if (endpoints.empty()) co_return make_error_code(ClientError::dns_failed);

  auto [cec, endpoint] = co_await asio::async_connect(c->socket(), endpoints, kUseTuple);
  (void)endpoint;
  if (c->timed_out) co_return make_error_code(ClientError::connect_timeout);
  if (cec) co_return make_error_code(ClientError::connect_failed);
  c->socket().set_option(tcp::no_delay(true), ec);

  if (c->tls) {
    SSL* ssl = c->tls->native_handle();
    if (!ip_literal) SSL_set_tlsext_host_name(ssl, origin.host.c_str());
    if (options_.tls_verify) {
      const int ok = ip_literal
                         ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), origin.host.c_str())
                         : SSL_set1_host(ssl, origin.host.c_str());
      if (ok != 1) co_return make_error_code(ClientError::tls_failed);
    }
    auto [hec] = co_await c->tls->async_handshake(ssl::stream_base::client, kUseTuple);
    if (c->timed_out) co_return make_error_code(ClientError::connect_timeout);
    if (hec) co_return make_error_code(ClientError::tls_failed);
  }
  disarm(*c);
  co_return error_code{};
}

asio::awaitable<boost::system::result<ClientResponse>> ClientImpl::send(const Origin& origin,
                                                                        const RequestEdits& edits,
                                                                        const Request& request) {
  auto self = shared_from_this();
  bump(counters_.requests);

  // The request head, formatted once (the request need not outlive the first suspension).
  std::string head;
  head.reserve(256);
  head += request.method_string();
  head += ' ';
  head += request.target();
  head += " HTTP/1.1\r\n";
  bool has_host = false;
  bool close_after = false;
  bool bad = has_line_break(request.target()) || request.target().empty() ||
             request.target().find(' ') != std::string_view::npos;
  const auto add = [&](bh::field name, std::string_view name_string, std::string_view value) {
    if (name == bh::field::host) has_host = true;
    if (name == bh::field::connection) {
      for (const auto token : bh::token_list(value)) {
        if (iequals(token, "close")) close_after = true;
      }
    }
    if (has_line_break(name_string) || has_line_break(value)) bad = true;
    head += name_string;
    head += ": ";
    head += value;
    head += "\r\n";
  };
  for (const auto& field : request.base()) {
    const auto name = field.name();
    if (name == bh::field::content_length || name == bh::field::transfer_encoding) continue;
    if (std::find(edits.drop.begin(), edits.drop.end(), name) != edits.drop.end()) continue;
    const std::string_view name_string = field.name_string();
    if (std::any_of(edits.set.begin(), edits.set.end(),
                    [&](const HeaderView& e) { return iequals(e.name, name_string); })) {
      continue;  // replaced below
    }
    add(name, name_string, field.value());
  }
  for (const HeaderView& e : edits.set) add(bh::string_to_field(e.name), e.name, e.value);
  if (bad) co_return make_error_code(ClientError::bad_request);
  if (!has_host) {
    head += "Host: ";
    head += origin.host_header();
    head += "\r\n";
  }
  const std::string& body = request.body();
  const bh::verb method = request.method();
  if (!body.empty() || method == bh::verb::post || method == bh::verb::put ||
      method == bh::verb::patch) {
    head += "Content-Length: ";
    append_number(head, body.size());
    head += "\r\n";
  }
  head += "\r\n";
  const bool head_request = method == bh::verb::head;
  const bool may_retry = is_idempotent(method);
  const std::string key = origin.key();

  for (int attempt = 0;; ++attempt) {
    // The stale retry always gets the peek: it has no retry of its own.
    auto acquired = co_await acquire(origin, may_retry && attempt == 0, key);
    if (!acquired) {
      if (acquired.error().category() == client_category()) {
        count_error(static_cast<ClientError>(acquired.error().value()));
      }
      co_return acquired.error();
    }
    auto conn = std::move(acquired->conn);
    const bool reused = acquired->reused;
    conn->close_after = close_after;
    conn->bytes_sent = 0;
    conn->bytes_received = 0;
    if (conn->body_buffer.size() != options_.read_chunk_bytes) {
      conn->body_buffer.resize(std::max<size_t>(options_.read_chunk_bytes, 1));
    }
    auto parser = std::make_unique<ResponseParser>();
    const auto fresh_parser = [&] {
      auto& p = parser->parser.emplace();
      p.header_limit(static_cast<uint32_t>(std::min<size_t>(options_.max_response_header_bytes,
                                                            std::numeric_limits<uint32_t>::max())));
      p.body_limit(std::numeric_limits<uint64_t>::max());
      if (head_request) p.skip(true);
    };
    fresh_parser();

    arm(conn, options_.response_timeout);
    const std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(body)};
    auto [wec, written] = co_await conn->io(
        [&](auto& stream) { return asio::async_write(stream, buffers, kUseTuple); });
    conn->bytes_sent += written;
    bump(counters_.bytes_sent, written);
    error_code ec = wec;
    while (!ec) {
      auto [rec, read] = co_await conn->io([&](auto& stream) {
        return bh::async_read_header(stream, conn->buffer, *parser->parser, kUseTuple);
      });
      conn->bytes_received += read;
      bump(counters_.bytes_received, read);
      ec = rec;
      if (!ec && conn->timed_out) ec = asio::error::timed_out;  // fired as the read completed
      if (ec) break;
      const unsigned status = parser->parser->get().result_int();
      if (status == 101) {
        ec = bh::error::bad_version;  // no upgrade was asked for
        break;
      }
      if (status / 100 != 1) break;
      fresh_parser();  // skip 1xx interim responses
    }
    disarm(*conn);
    if (!ec) {
      bump(counters_.responses);
      co_return ClientResponse(self, std::move(conn), std::move(parser), reused);
    }

    const ClientError error = classify(*conn, ec, false);
    const bool nothing_received = !parser->parser->got_some() && conn->buffer.size() == 0;
    finish(conn, false, false,
           error == ClientError::upstream_closed ? pool::CloseReason::kClosedByPeer
                                                 : pool::CloseReason::kError);
    if (reused && attempt == 0 && may_retry && nothing_received &&
        error == ClientError::upstream_closed) {
      // The keep-alive race: the upstream closed this idle connection meanwhile. The other
      // idle connections of this origin are from the same era; try once on a fresh one.
      bump(counters_.stale_retries);
      flush_idle(key);
      continue;
    }
    count_error(error);
    co_return make_error_code(error);
  }
}

void ClientImpl::finish(const std::shared_ptr<ClientConnection>& c, bool reusable, bool success,
                        pool::CloseReason reason) {
  disarm(*c);
  SLUICE_CHECK(in_use_ > 0, "Client: a connection finished twice");
  --in_use_;
  tracker_.record_request(c->id, success, c->bytes_sent, c->bytes_received);
  if (reusable && c->buffer.size() == 0) {
    const TimePoint now = clock_.now();
    if (tracker_.release(c->id, now)) {
      keys_.erase(c->id);
      c->close_socket();
    } else {
      c->released_at = now;
      idle_.emplace(c->id, c);
    }
  } else {
    tracker_.close(c->id, reason);
    keys_.erase(c->id);
    c->close_socket();
  }
  notify_waiters();
  if (in_use_ == 0) {
    // Nothing in flight: end the idle connections' outstanding deadline waits, so that the
    // executor's loop has no timer of ours left to wait for (`io_context::run` returns when
    // the work is done, as it would without pooling). Under load this rarely happens, and
    // requests only move deadlines.
    for (auto& [id, conn] : idle_) {
      if (!conn->watching) continue;
      conn->watching = false;
      ++conn->timer_generation;
      conn->timer.cancel();
    }
  }
}

void ClientImpl::cleanup() {
  const auto evictions = tracker_.cleanup(clock_.now());
  std::vector<pool::ConnectionId> ids;
  ids.reserve(evictions.size());
  for (const auto& e : evictions) ids.push_back(e.id);
  close_evicted(ids);
  if (!ids.empty()) notify_waiters();
}

void ClientImpl::close_idle() {
  std::vector<pool::ConnectionId> ids;
  ids.reserve(idle_.size());
  for (const auto& [id, conn] : idle_) ids.push_back(id);
  for (const pool::ConnectionId id : ids) tracker_.close(id, pool::CloseReason::kIdle);
  close_evicted(ids);
  if (!ids.empty()) notify_waiters();
}

void ClientImpl::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  const auto evictions = tracker_.shutdown();
  std::vector<pool::ConnectionId> ids;
  for (const auto& e : evictions) ids.push_back(e.id);
  close_evicted(ids);
  for (auto& [id, conn] : idle_) conn->close_socket();  // none expected; be thorough
  idle_.clear();
  notify_waiters();
}

ClientStats ClientImpl::stats() const {
  const auto load = [](const std::atomic<uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  ClientStats s;
  s.requests = load(counters_.requests);
  s.responses = load(counters_.responses);
  s.responses_completed = load(counters_.responses_completed);
  s.responses_abandoned = load(counters_.responses_abandoned);
  s.connections_created = load(counters_.connections_created);
  s.connections_reused = load(counters_.connections_reused);
  s.stale_closed = load(counters_.stale_closed);
  s.stale_retries = load(counters_.stale_retries);
  s.dns = dns_.stats();
  s.dns_hits = s.dns.hits;
  s.dns_misses = s.dns.misses;
  s.dns_failures = load(counters_.dns_failures);
  s.connect_failures = load(counters_.connect_failures);
  s.connect_timeouts = load(counters_.connect_timeouts);
  s.tls_failures = load(counters_.tls_failures);
  s.response_timeouts = load(counters_.response_timeouts);
  s.read_timeouts = load(counters_.read_timeouts);
  s.upstream_resets = load(counters_.upstream_resets);
  s.bad_responses = load(counters_.bad_responses);
  s.bodies_too_large = load(counters_.bodies_too_large);
  s.pool_waits = load(counters_.pool_waits);
  s.pool_exhausted = load(counters_.pool_exhausted);
  s.bytes_sent = load(counters_.bytes_sent);
  s.bytes_received = load(counters_.bytes_received);
  s.pool = tracker_.stats();
  return s;
}

}  // namespace internal

// ---------------------------------------------------------------------------------------------
// Client

Client::Client(asio::any_io_executor executor, ClientOptions options, const base::Clock& clock)
    : impl_(
          std::make_shared<internal::ClientImpl>(std::move(executor), std::move(options), clock)) {}

Client::~Client() { impl_->shutdown(); }

asio::awaitable<boost::system::result<ClientResponse>> Client::send(const Origin& origin,
                                                                    const Request& request,
                                                                    RequestEdits edits) {
  auto impl = impl_;
  co_return co_await impl->send(origin, edits, request);
}

void Client::cleanup() { impl_->cleanup(); }
void Client::close_idle() { impl_->close_idle(); }
ClientStats Client::stats() const { return impl_->stats(); }
std::vector<pool::HostConnectionStats> Client::pool_stats() const { return impl_->host_stats(); }
asio::any_io_executor Client::executor() const { return impl_->executor(); }
const ClientOptions& Client::options() const noexcept { return impl_->options(); }

// ---------------------------------------------------------------------------------------------
// ClientResponse

ClientResponse::ClientResponse(std::shared_ptr<internal::ClientImpl> impl,
                               std::shared_ptr<internal::ClientConnection> conn,
                               std::unique_ptr<internal::ResponseParser> parser,
                               bool reused) noexcept
    : impl_(std::move(impl)), conn_(std::move(conn)), parser_(std::move(parser)), reused_(reused) {}

ClientResponse::ClientResponse(ClientResponse&&) noexcept = default;

ClientResponse& ClientResponse::operator=(ClientResponse&& other) noexcept {
  if (this != &other) {
    abandon();
    impl_ = std::move(other.impl_);
    conn_ = std::move(other.conn_);
    parser_ = std::move(other.parser_);
    error_ = other.error_;
    body_bytes_ = other.body_bytes_;
    read_timeout_ = other.read_timeout_;
    deferred_error_ = other.deferred_error_;
    done_ = other.done_;
    cancelled_ = other.cancelled_;
    reused_ = other.reused_;
  }
  return *this;
}

ClientResponse::~ClientResponse() { abandon(); }

void ClientResponse::abandon() noexcept {
  if (!conn_) return;
  if (parser_->parser->is_done()) {
    finish({});  // the last piece was read but not the end: still a complete response
  } else {
    internal::ClientImpl::bump(impl_->counters_.responses_abandoned);
    impl_->finish(conn_, false, true, pool::CloseReason::kError);
    conn_.reset();
    done_ = true;
  }
}

const bh::response_header<>& ClientResponse::head() const { return parser_->parser->get().base(); }

unsigned ClientResponse::status() const { return parser_->parser->get().result_int(); }

bool ClientResponse::done() const noexcept { return done_; }

void ClientResponse::cancel() noexcept {
  if (done_ || !conn_) return;
  cancelled_ = true;
  conn_->cancel_io();  // a pending read completes now; read_some turns it into the error
}

void ClientResponse::finish(error_code error) {
  done_ = true;
  if (!conn_) return;
  error_ = error;
  auto& p = *parser_->parser;
  if (error && cancelled_) {
    // The reader gave up (its client went away): not an upstream failure.
    internal::ClientImpl::bump(impl_->counters_.responses_abandoned);
    impl_->finish(conn_, false, true, pool::CloseReason::kError);
  } else if (error) {
    const auto e = static_cast<ClientError>(error.value());
    impl_->count_error(e);
    impl_->finish(conn_, false, false,
                  e == ClientError::upstream_closed ? pool::CloseReason::kClosedByPeer
                                                    : pool::CloseReason::kError);
  } else {
    internal::ClientImpl::bump(impl_->counters_.responses_completed);
    const bool reusable = p.keep_alive() && !p.need_eof() && !conn_->close_after;
    impl_->finish(conn_, reusable, true, pool::CloseReason::kClosedByPeer);
  }
  conn_.reset();
}

asio::awaitable<boost::system::result<std::string_view>> ClientResponse::read_some() {
  if (error_) co_return error_;
  if (done_ || !conn_) co_return std::string_view{};
  if (cancelled_) {
    finish(make_error_code(ClientError::upstream_closed));
    co_return error_;
  }
  if (deferred_error_) {  // the previous piece was followed by malformed framing
    finish(deferred_error_);
    co_return error_;
  }
  auto& p = *parser_->parser;
  auto conn = conn_;
  auto impl = impl_;
  if (p.is_done()) {
    finish({});
    co_return std::string_view{};
  }
  impl->arm(conn, read_timeout_.value_or(impl->options().read_timeout));
  for (;;) {
    auto& body = p.get().body();
    body.data = conn->body_buffer.data();
    body.size = conn->body_buffer.size();
    body.more = true;
    auto [ec, read] = co_await conn->io(
        [&](auto& stream) { return bh::async_read_some(stream, conn->buffer, p, kUseTuple); });
    conn->bytes_received += read;
    internal::ClientImpl::bump(impl->counters_.bytes_received, read);
    if (ec == bh::error::need_buffer) ec = {};
    if (!ec && conn->timed_out) ec = asio::error::timed_out;  // fired as the read completed
    if (!ec && cancelled_) ec = asio::error::operation_aborted;
    if (ec) {
      finish(make_error_code(cancelled_ ? ClientError::upstream_closed
                                        : impl->classify(*conn, ec, true)));
      co_return error_;
    }
    size_t got = conn->body_buffer.size() - p.get().body().size;
    if (got > 0) {
      internal::ClientImpl::disarm(*conn);
      // What the same read brought beyond this piece (more chunks of a chunked stream) is
      // parsed into the rest of the body buffer now, without another asynchronous read: one
      // piece per read, not one per chunk.
      while (conn->buffer.size() > 0 && p.get().body().size > 0 && !p.is_done()) {
        error_code more;
        const size_t used = p.put(conn->buffer.data(), more);
        conn->buffer.consume(used);
        if (more == bh::error::need_more || more == bh::error::need_buffer) break;
        if (more) {
          deferred_error_ = make_error_code(ClientError::bad_response);  // after this piece
          break;
        }
        if (used == 0) break;
      }
      got = conn->body_buffer.size() - p.get().body().size;
      body_bytes_ += got;
      co_return std::string_view(conn->body_buffer.data(), got);
    }
    if (p.is_done()) {
      finish({});
      co_return std::string_view{};
    }
  }
}

asio::awaitable<boost::system::result<std::string>> ClientResponse::read_all(size_t limit) {
  std::string out;
  if (parser_ && parser_->parser->content_length() && *parser_->parser->content_length() <= limit) {
    out.reserve(static_cast<size_t>(*parser_->parser->content_length()));
  }
  for (;;) {
    auto piece = co_await read_some();
    if (!piece) co_return piece.error();
    if (piece->empty()) co_return out;
    if (out.size() + piece->size() > limit) {
      finish(make_error_code(ClientError::body_too_large));
      co_return error_;
    }
    out.append(*piece);
  }
}

}  // namespace sluice::http
