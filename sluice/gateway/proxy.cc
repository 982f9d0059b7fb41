#include "sluice/gateway/proxy.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "sluice/base/hash.h"
#include "sluice/cache/sharded_cache.h"
#include "sluice/cache/ttl_cache.h"
#include "sluice/coalesce/async_coalescer.h"
#include "sluice/flow/adaptive_limiter.h"
#include "sluice/flow/token_bucket.h"
#include "sluice/gateway/broadcast_endpoint.h"
#include "sluice/gateway/cache_policy.h"
#include "sluice/gateway/cached_response.h"
#include "sluice/gateway/encoding.h"
#include "sluice/gateway/logger.h"
#include "sluice/gateway/streaming.h"
#include "sluice/http/client.h"
#include "sluice/http/headers.h"
#include "sluice/metrics/counter.h"
#include "sluice/metrics/histogram.h"
#include "sluice/metrics/writer.h"
#include "sluice/resilience/circuit_breaker.h"
#include "sluice/resilience/retry_budget.h"
#include "sluice/resilience/retry_policy.h"

namespace sluice::gateway {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using boost::system::error_code;

std::string_view to_string(CacheStatus status) noexcept {
  switch (status) {
    case CacheStatus::hit:
      return "HIT";
    case CacheStatus::miss:
      return "MISS";
    case CacheStatus::coalesced:
      return "COALESCED";
    case CacheStatus::bypass:
      return "BYPASS";
  }
  return "BYPASS";
}

namespace {

constexpr size_t kCacheShards = 32;
// Bodies up to this size with a declared length are passed through in one write.
constexpr uint64_t kSmallBody = 64 * 1024;

// An answer the gateway makes itself (routing, limits, upstream failures).
struct GatewayError {
  unsigned status = 502;
  std::string code;    // short machine-readable code: "upstream_unreachable", ...
  std::string reason;  // one sentence for a person
};

std::string error_json(std::string_view code, std::string_view reason) {
  boost::json::object body;
  body["error"] = code;
  body["reason"] = reason;
  return boost::json::serialize(body);
}

bool is_unsafe(bh::verb method) noexcept {
  return method == bh::verb::post || method == bh::verb::put || method == bh::verb::delete_ ||
         method == bh::verb::patch;
}

std::string_view path_of(std::string_view target) noexcept {
  const size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

std::string_view host_without_port(std::string_view host) noexcept {
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(1, close - 1);
  }
  const size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

using http::iequals;

// Seconds with microsecond digits ("0.000037"), without printf's floating-point path.
std::string format_seconds(Duration d) {
  const auto us =
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  char text[32];
  auto [end, ec] = std::to_chars(text, text + 20, us / 1'000'000);
  *end++ = '.';
  char frac[6];
  int64_t rest = us % 1'000'000;
  for (int i = 5; i >= 0; --i, rest /= 10) frac[i] = static_cast<char>('0' + rest % 10);
  std::memcpy(end, frac, sizeof(frac));
  return std::string(text, end + sizeof(frac));
}

// The body length a head declares (Content-Length), if it declares a valid one.
std::optional<uint64_t> declared_length(const bh::fields& headers) {
  const auto it = headers.find(bh::field::content_length);
  if (it == headers.end()) return std::nullopt;
  uint64_t n = 0;
  const auto text = it->value();
  if (std::from_chars(text.data(), text.data() + text.size(), n).ec != std::errc()) {
    return std::nullopt;
  }
  return n;
}

// The request's Accept-Encoding ("" when absent; several fields are rare and only the first
// is read).
std::string_view accept_encoding(const http::Request& request) {
  const auto it = request.find(bh::field::accept_encoding);
  return it == request.end() ? std::string_view() : std::string_view(it->value());
}

bool is_event_stream(const bh::fields& headers) {
  const auto it = headers.find(bh::field::content_type);
  return it != headers.end() && it->value().starts_with("text/event-stream");
}

int64_t unix_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

GatewayError error_from_client(const error_code& ec, std::string_view upstream) {
  using http::ClientError;
  const std::string name(upstream);
  if (ec == ClientError::connect_timeout || ec == ClientError::response_timeout ||
      ec == ClientError::read_timeout) {
    return {504, "upstream_timeout",
            "upstream '" + name + "' did not answer in time (" + ec.message() + ")"};
  }
  if (ec == ClientError::pool_exhausted) {
    return {503, "upstream_pool_exhausted",
            "no connection to upstream '" + name + "' is free (" + ec.message() + ")"};
  }
  return {502, "upstream_unreachable", "upstream '" + name + "' failed: " + ec.message()};
}

bool is_timeout(const error_code& ec) {
  using http::ClientError;
  return ec == ClientError::connect_timeout || ec == ClientError::response_timeout ||
         ec == ClientError::read_timeout;
}

resilience::JitterMode jitter_of(std::string_view name) {
  if (name == "none") return resilience::JitterMode::none;
  if (name == "equal") return resilience::JitterMode::equal;
  if (name == "decorrelated") return resilience::JitterMode::decorrelated;
  return resilience::JitterMode::full;
}

// Identity of the caller whose factory ran: only it may take over a live upstream body.
struct LeaderTicket {};

// The rest of an upstream body the leader could not buffer whole; only the ticket holder
// reads it, on the leader's worker.
struct LiveBody {
  explicit LiveBody(asio::any_io_executor ex) : executor(std::move(ex)) {}
  LiveBody(const LiveBody&) = delete;
  LiveBody& operator=(const LiveBody&) = delete;
  // The response belongs to the leader worker's client: whoever drops the last reference,
  // it is closed on that worker's loop.
  ~LiveBody() {
    if (response) {
      asio::post(executor,
                 [leftover = std::make_shared<http::ClientResponse>(std::move(*response))] {});
    }
  }
  asio::any_io_executor executor;
  std::optional<http::ClientResponse> response;
};

// What one shared upstream call produced, as the coalescer hands it to every caller.
struct Fetched {
  ResponsePtr response;            // head and body (complete unless `live` is set); null on error
  std::shared_ptr<LiveBody> live;  // the rest of the body, for `owner` only
  // A coalesced stream (route.stream.coalesce / cache): every caller joins it; `response`
  // holds its head only. The leader's joiner was made before the reader started (so the
  // leader always gets the whole stream); `hold` keeps the stream for waiters until they
  // joined (every copy of this result holds it).
  std::shared_ptr<SharedStream> shared;
  mutable std::optional<SharedStream::Joiner> leader_joiner;
  std::shared_ptr<void> hold;

  Fetched() = default;
  Fetched(const Fetched&) = delete;
  Fetched& operator=(const Fetched&) = delete;
  // A leader that never answered (its client went away first) leaves the stream here.
  ~Fetched() {
    if (shared && leader_joiner) shared->leave(leader_joiner->id);
  }
  const LeaderTicket* owner = nullptr;
  bool shareable = false;       // waiters may use it (error answers are shareable too)
  bool stale_on_error = false;  // `response` is a stored answer served because the upstream
                                // failed (stale-if-error)
  GatewayError error;           // when `response` is null
  Duration upstream_latency{};
};
using FetchedPtr = std::shared_ptr<const Fetched>;

using L1Cache = cache::ShardedCache<cache::TtlCache<std::string, ResponsePtr, base::StringHash>>;
using MarkCache = cache::ShardedCache<cache::TtlCache<std::string, TimePoint, base::StringHash>>;
using Coalescer = coalesce::AsyncCoalescer<FetchedPtr>;

struct Counters {
  std::atomic<uint64_t> requests{0}, hits{0}, misses{0}, coalesced{0}, bypassed{0}, not_modified{0},
      no_route{0}, rate_limited{0}, over_limit{0}, breaker_rejected{0}, upstream_requests{0},
      upstream_errors{0}, upstream_timeouts{0}, upstream_aborted{0}, retries{0}, waiter_overflow{0},
      waiter_timeouts{0}, not_shared{0}, vary_mismatch{0}, in_flight_rejected{0},
      hit_for_miss_marked{0}, hit_for_miss_bypass{0}, handed_off{0}, stored{0}, not_stored{0},
      invalidations{0}, client_disconnects{0}, slow_requests{0}, access_log_dropped{0},
      revalidated{0}, stale_if_error{0}, encoded_gzip{0}, encoded_zstd{0}, encoded_bytes_in{0},
      encoded_bytes_out{0}, encode_runs{0};
};

inline void bump(std::atomic<uint64_t>& c, uint64_t n = 1) noexcept {
  c.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace

// ---------------------------------------------------------------------------------------

struct UpstreamRuntime {
  std::string name;
  std::string url;
  http::Origin origin;
  std::string host_header;  // origin.host_header(), the Host every forwarded request carries
  http::ClientOptions client_options;
  std::unique_ptr<resilience::CircuitBreaker> breaker;  // null when disabled
  std::unique_ptr<flow::AdaptiveLimiter> limiter;       // null when disabled
  // One client per worker, created by that worker on first use.
  std::unique_ptr<std::atomic<http::Client*>[]> clients;
  size_t workers = 0;
  metrics::Histogram* latency = nullptr;
};

struct RouteRuntime {
  size_t index = 0;
  std::string name;
  UpstreamRuntime* upstream = nullptr;
  KeyPolicy key_policy;
  std::unique_ptr<resilience::RetryPolicy> retry;
  std::atomic<std::shared_ptr<Coalescer>> coalescer;
  std::atomic<std::shared_ptr<flow::KeyedTokenBucket>> rate;
  size_t coalescer_max_waiters = 0;
  double rate_per_second = 0;
  double rate_burst = 0;
  std::array<metrics::Counter*, 4> by_cache{};  // indexed by CacheStatus
  std::array<metrics::Counter*, 5> by_class{};  // 1xx .. 5xx
  metrics::Histogram* latency = nullptr;
};

// How a client's request goes upstream: as received (the server already removed its
// hop-by-hop headers), with the upstream's Host, the client's address appended to
// X-Forwarded-For, and without Expect (answered here). Applied while the client formats the
// head (`edits`), or onto a copy a detached leader owns (`apply`).
class Forwarding {
 public:
  Forwarding(const http::Request& request, const UpstreamRuntime& upstream,
             const http::ResponseWriter& writer)
      : forwarded_for_(writer.peer_address()) {
    if (auto it = request.find("X-Forwarded-For"); it != request.end()) {
      forwarded_for_ = std::string(it->value()) + ", " + forwarded_for_;
    }
    set_ = {http::HeaderView{"Host", upstream.host_header},
            http::HeaderView{"X-Forwarded-For", forwarded_for_}};
  }
  Forwarding(const Forwarding&) = delete;
  Forwarding& operator=(const Forwarding&) = delete;

  [[nodiscard]] http::RequestEdits edits() const noexcept { return {set_, kDrop}; }
  void apply(http::Request& up) const {
    up.version(11);
    for (const auto& h : set_) up.set(h.name, h.value);
    for (const auto f : kDrop) up.erase(f);
  }

 private:
  static constexpr std::array<bh::field, 1> kDrop{bh::field::expect};
  std::string forwarded_for_;
  std::array<http::HeaderView, 2> set_;
};

// What RFC 9111 (and the route) allow for an answer with this status and these headers to
// the upstream request `up`; one place, for fresh answers and for revalidated ones.
static StoreDecision decide_for(const RouteRuntime& route, const RouteConfig& rc,
                                const http::Request& up, unsigned status,
                                const bh::fields& response_headers, Duration delay) {
  StoreInputs in;
  in.method = up.method_string();
  in.request_headers = &up.base();
  in.status = status;
  in.response_headers = &response_headers;
  in.now = std::chrono::system_clock::now();
  in.response_delay = delay;
  in.default_ttl = rc.cache_ttl;
  in.max_ttl = rc.max_ttl;
  in.key_has_tenant = key_has_tenant(route.key_policy);
  if (!route.key_policy.include_credentials) {
    // A route whose key omits the credentials (public_answers): any credential header the
    // request carries asks, as Authorization does, for the answer's explicit permission.
    for (const std::string& name : route.key_policy.credential_headers) {
      if (!iequals(name, "authorization") && up.find(name) != up.end()) {
        in.other_credentials = true;
        break;
      }
    }
  }
  in.post_opted_in = rc.coalesce_post;
  in.cache_errors = rc.cache_errors;
  in.error_ttl = rc.error_ttl;
  return decide_store(in);
}

class Proxy::Impl {
 public:
  Impl(std::shared_ptr<const Config> config, size_t workers, AccessLog* access_log,
       metrics::Registry& registry);

  asio::awaitable<void> handle(http::Request& request, http::ResponseWriter& writer);

  std::shared_ptr<const Config> config() const { return config_.load(); }
  void set_config(std::shared_ptr<const Config> config);
  Explanation explain(const http::Request& request) const;
  ProxyStats stats() const;
  void reset_stats();
  void clear_cache() {
    l1_.clear();
    hit_for_miss_.clear();
  }
  void sweep() {
    (void)l1_.sweep();
    (void)hit_for_miss_.sweep();
    (void)invalidations_.sweep();
  }
  std::vector<std::pair<std::string, coalesce::CoalescerStats>> coalescer_stats() const;
  const StreamRegistry& streams() const { return streams_; }
  BroadcastEndpoint* broadcast() const { return broadcast_.get(); }
  boost::json::array upstreams_json() const;
  void cleanup_pools();
  void release_connections();
  void collect(metrics::Writer& w) const;

 private:
  struct Request;  // per-request state

  const RouteRuntime* match(const http::Request& request, const Config& config) const;
  std::shared_ptr<Coalescer> make_coalescer(size_t max_waiters) const;
  std::shared_ptr<flow::KeyedTokenBucket> make_bucket(const RateLimitConfig& rl) const;
  http::Client& client_for(UpstreamRuntime& upstream, size_t worker,
                           const asio::any_io_executor& executor);
  std::shared_ptr<http::Request> upstream_request(const http::Request& request,
                                                  const UpstreamRuntime& upstream,
                                                  const http::ResponseWriter& writer) const;

  struct Attempt {
    std::optional<http::ClientResponse> response;
    GatewayError error;
    Duration latency{};
  };
  // Sends `up` (changed by `edits`) to the route's upstream, with the breaker, the limiter
  // and the retries.
  asio::awaitable<Attempt> call_upstream(RouteRuntime& route, const RouteConfig& rc,
                                         const http::Request& up, const http::RequestEdits& edits,
                                         size_t worker);
  asio::awaitable<FetchedPtr> fetch_shared(RouteRuntime* route, std::shared_ptr<const Config> cfg,
                                           std::shared_ptr<const http::Request> up, std::string key,
                                           std::string uri, std::shared_ptr<LeaderTicket> ticket,
                                           size_t worker, bool may_store,
                                           ResponsePtr stale = nullptr);

  asio::awaitable<void> send_error(Request& r, http::ResponseWriter& w, const GatewayError& e,
                                   std::optional<Duration> retry_after = std::nullopt);
  asio::awaitable<void> send_cached(Request& r, http::ResponseWriter& w, const CachedResponse& c,
                                    CacheStatus status, bool from_cache);
  asio::awaitable<void> stream(Request& r, http::ResponseWriter& w, http::ClientResponse& response,
                               std::string_view prefix, CacheStatus status);
  // Answers as the leader; false when nothing was written and the caller must go upstream
  // alone (the coalesced stream could not be joined whole).
  asio::awaitable<bool> answer_as_leader(Request& r, http::ResponseWriter& writer,
                                         FetchedPtr fetched);
  // Joins the coalesced stream `shared` whose head is `head` and streams it to the client;
  // false when it cannot be joined whole (nothing written).
  // `joiner`: the leader's, made before the reader started (else one is made here); `hold`
  // (see SharedStream::hold) is dropped once joined.
  asio::awaitable<bool> join_shared(Request& r, http::ResponseWriter& w, const CachedResponse& head,
                                    SharedStream& shared, CacheStatus status,
                                    std::optional<SharedStream::Joiner> joiner,
                                    std::shared_ptr<void> hold);
  // Reads a coalesced stream's upstream body into `shared` (detached, on the leader's
  // worker); at its end, stores a completed body when `store` allows.
  asio::awaitable<void> read_shared(std::shared_ptr<SharedStream> shared,
                                    http::ClientResponse response,
                                    std::shared_ptr<const Config> cfg, RouteRuntime* route,
                                    std::string key, std::shared_ptr<CachedResponse> head,
                                    bool store);
  // The registry entry of one streamed answer to `w`'s client.
  std::shared_ptr<StreamEntry> make_entry(const Request& r, const http::ResponseWriter& w,
                                          bool event_stream, bool flush_each_chunk,
                                          std::shared_ptr<flow::BoundedStream> stream,
                                          bool shared = false);
  // Counts how a streamed answer ended and takes it off the registry.
  void account_stream(Request& r, const StreamEntry& entry, const PumpResult& pumped,
                      const http::StreamCompressor* coder);
  // Forwards the client's request as is and streams the answer back (no coalescing, no
  // storing).
  asio::awaitable<void> pass_through(Request& r, http::ResponseWriter& w, RouteRuntime& route,
                                     const RouteConfig& rc, CacheStatus status);
  void finish(Request& r);
  void count_encoded(http::Coding coding, uint64_t in, uint64_t out) {
    bump(coding == http::Coding::gzip ? counters_.encoded_gzip : counters_.encoded_zstd);
    bump(counters_.encoded_bytes_in, in);
    bump(counters_.encoded_bytes_out, out);
  }
  void make_broadcast(const BroadcastConfig& bc);
  void mark_hit_for_miss(const std::string& key, Duration ttl);
  // How long the L1 keeps an answer: its freshness, plus as long again (at least a minute)
  // when it carries a validator (ETag or Last-Modified), so a stale entry can be revalidated
  // with a conditional request instead of fetched whole; and at least its stale-if-error
  // window past its freshness.
  static Duration keep_for(const CachedResponse& c) {
    const bool validators =
        c.headers.count(bh::field::etag) > 0 || c.headers.count(bh::field::last_modified) > 0;
    Duration keep = c.ttl;
    if (validators) keep = c.ttl + std::max<Duration>(c.ttl, std::chrono::minutes(1));
    if (const auto window = stale_if_error_of(c)) keep = std::max(keep, c.ttl + *window);
    return keep;
  }
  // How long past its freshness a stored answer may still serve when the upstream fails
  // (RFC 5861 stale-if-error); nullopt without it, or when the answer forbids stale use
  // (must-revalidate, proxy-revalidate, no-cache).
  static std::optional<Duration> stale_if_error_of(const CachedResponse& c) {
    const CacheControl cc = parse_cache_control(c.headers);
    if (!cc.stale_if_error || cc.must_revalidate || cc.proxy_revalidate || cc.no_cache) {
      return std::nullopt;
    }
    return cc.stale_if_error;
  }
  bool invalidated(const CachedResponse& c);
  void invalidate(const http::Request& request, unsigned status,
                  const bh::fields& response_headers);

  std::atomic<std::shared_ptr<const Config>> config_;
  std::mutex set_config_mu_;
  size_t workers_;
  AccessLog* access_log_;
  std::vector<std::unique_ptr<UpstreamRuntime>> upstreams_;
  std::vector<std::unique_ptr<RouteRuntime>> routes_;
  mutable L1Cache l1_;
  mutable MarkCache hit_for_miss_;
  mutable MarkCache invalidations_;
  std::atomic<size_t> invalidation_marks_{0};
  Counters counters_;
  Encoder encoder_;
  StreamRegistry streams_;
  // Coalesced streams in progress that late joiners may join, by key.
  struct LiveStream {
    ResponsePtr head;
    std::shared_ptr<SharedStream> shared;
  };
  std::mutex live_mu_;
  std::unordered_map<std::string, LiveStream, base::StringHash, std::equal_to<>> live_;
  std::atomic<uint64_t> shared_upstream_bytes_{0};
  std::atomic<uint64_t> shared_events_{0};
  std::unique_ptr<BroadcastEndpoint> broadcast_;  // null unless [broadcast] is enabled
  std::shared_ptr<resilience::RetryBudget> retry_budget_;
  metrics::CollectorHandle collector_;
  std::atomic<uint64_t> next_request_id_{1};
};

struct Proxy::Impl::Request {
  TimePoint start;
  int64_t start_unix_ns = 0;
  const http::Request* request = nullptr;
  const RouteRuntime* route = nullptr;
  std::shared_ptr<const Config> config;
  CacheStatus cache = CacheStatus::bypass;
  unsigned status = 0;
  Duration upstream_latency{};
  uint64_t bytes_out = 0;
  std::string tenant;
  std::string request_id;
  std::string debug_key;    // "name=value; ..." of the key parts, with cache.debug_header
  bool long_lived = false;  // a broadcast subscription: never a "slow request"
};

// ---------------------------------------------------------------------------------------

Proxy::Impl::Impl(std::shared_ptr<const Config> config, size_t workers, AccessLog* access_log,
                  metrics::Registry& registry)
    : workers_(std::max<size_t>(workers, 1)),
      access_log_(access_log),
      l1_(kCacheShards, {.max_entries = config->cache.enabled ? config->cache.max_entries : 0,
                         .max_bytes = config->cache.max_bytes,
                         .default_ttl = std::chrono::seconds(60)}),
      hit_for_miss_(
          kCacheShards,
          {.max_entries = 100'000, .max_bytes = 0, .default_ttl = std::chrono::seconds(30)}),
      invalidations_(
          kCacheShards,
          {.max_entries = 100'000, .max_bytes = 0, .default_ttl = std::chrono::hours(24)}),
      encoder_(config->compression),
      retry_budget_(std::make_shared<resilience::RetryBudget>()) {
  auto& request_family =
      registry.counter_family("sluice_gateway_requests_total",
                              "Requests answered, by route and cache outcome", {"route", "cache"});
  auto& class_family =
      registry.counter_family("sluice_gateway_responses_total",
                              "Responses sent, by route and status class", {"route", "code"});
  auto& latency_family = registry.histogram_family(
      "sluice_gateway_request_duration_seconds",
      "Time from a request's arrival to its last byte written, by route", {"route"});
  auto& upstream_family = registry.histogram_family(
      "sluice_gateway_upstream_duration_seconds",
      "Time from sending a request upstream to its response head, by upstream", {"upstream"});

  for (const auto& uc : config->upstreams) {
    auto up = std::make_unique<UpstreamRuntime>();
    up->name = uc.name;
    up->url = uc.url;
    auto origin = http::Origin::parse(uc.url);
    SLUICE_CHECK(origin.has_value(), "Proxy: upstream url was validated by the config");
    up->origin = *origin;
    up->host_header = origin->host_header();
    http::ClientOptions& co = up->client_options;
    co.connect_timeout = uc.connect_timeout;
    co.response_timeout = uc.response_timeout;
    co.read_timeout = uc.read_timeout;
    co.dns_ttl = uc.dns_ttl;
    // The limits are for the whole gateway: each worker's client gets its share.
    auto share = [&](size_t total) { return total == 0 ? 0 : (total + workers_ - 1) / workers_; };
    co.pool.max_total = share(uc.max_connections);
    co.pool.max_per_host = share(uc.max_connections_per_host);
    co.pool.max_idle_time = uc.max_idle_time;
    co.pool.max_age = uc.max_age;
    co.pool.max_error_rate = uc.max_error_rate;
    co.tls_verify = uc.tls_verify;
    co.ca_file = uc.ca_file;
    if (uc.breaker.enabled) {
      resilience::BreakerOptions bo;
      bo.window = uc.breaker.window;
      bo.min_requests = static_cast<uint32_t>(uc.breaker.min_requests);
      bo.failure_rate_threshold = uc.breaker.failure_rate;
      bo.consecutive_failures = static_cast<uint32_t>(uc.breaker.consecutive_failures);
      bo.open_duration = uc.breaker.open_for;
      bo.max_open_duration = std::max(bo.max_open_duration, uc.breaker.open_for);
      bo.half_open_max_probes =
          static_cast<uint32_t>(std::max<size_t>(uc.breaker.half_open_probes, 1));
      const std::string name = uc.name;
      bo.on_state_change = [name](const resilience::BreakerTransition& t) {
        log(t.to == resilience::BreakerState::open ? LogLevel::warn : LogLevel::info,
            "upstream '" + name + "' circuit breaker " + resilience::to_string(t.from) + " -> " +
                resilience::to_string(t.to));
      };
      up->breaker = std::make_unique<resilience::CircuitBreaker>(std::move(bo));
    }
    if (uc.concurrency.enabled) {
      flow::AdaptiveLimiter::Options lo;
      lo.initial_limit = static_cast<uint32_t>(uc.concurrency.initial);
      lo.min_limit = static_cast<uint32_t>(uc.concurrency.min);
      lo.max_limit = static_cast<uint32_t>(uc.concurrency.max);
      std::unique_ptr<flow::LimitPolicy> policy;
      if (uc.concurrency.policy == "aimd") {
        policy = std::make_unique<flow::AimdPolicy>();
      } else {
        policy = std::make_unique<flow::GradientPolicy>();
      }
      up->limiter = std::make_unique<flow::AdaptiveLimiter>(std::move(policy), lo,
                                                            base::SteadyClock::instance());
    }
    up->workers = workers_;
    up->clients = std::make_unique<std::atomic<http::Client*>[]>(workers_);
    for (size_t i = 0; i < workers_; ++i) up->clients[i].store(nullptr);
    up->latency = &upstream_family.with({up->name});
    upstreams_.push_back(std::move(up));
  }

  for (size_t i = 0; i < config->routes.size(); ++i) {
    const RouteConfig& rc = config->routes[i];
    auto route = std::make_unique<RouteRuntime>();
    route->index = i;
    route->name = rc.name;
    for (auto& up : upstreams_) {
      if (up->name == rc.upstream) route->upstream = up.get();
    }
    SLUICE_CHECK(route->upstream != nullptr, "Proxy: route upstream was validated by the config");
    route->key_policy.route = rc.name;
    route->key_policy.include_query = rc.key_query;
    route->key_policy.headers = rc.key_headers;
    route->key_policy.include_credentials = !rc.public_answers;
    route->key_policy.credential_headers = config->cache.credential_headers;
    route->key_policy.body = rc.coalesce_post ? BodyDigest::canonical_json : BodyDigest::none;

    resilience::RetryOptions ro;
    ro.max_attempts = static_cast<uint32_t>(std::max<size_t>(rc.retry.max_attempts, 1));
    ro.base_delay = rc.retry.initial_backoff;
    ro.max_delay = std::max(rc.retry.max_backoff, rc.retry.initial_backoff);
    ro.jitter = jitter_of(rc.retry.jitter);
    ro.budget = retry_budget_;
    std::vector<int> on_status = rc.retry.on_status;
    ro.classifier = [on_status](const resilience::Failure& f) {
      if (f.status != 0) {
        return std::find(on_status.begin(), on_status.end(), f.status) != on_status.end()
                   ? resilience::Retryability::retryable
                   : resilience::Retryability::not_retryable;
      }
      // Connection-level failures pass; a timeout is not retried (it would double the wait).
      if (f.error == http::ClientError::connect_failed ||
          f.error == http::ClientError::upstream_closed ||
          f.error == http::ClientError::dns_failed) {
        return resilience::Retryability::retryable;
      }
      return resilience::default_retry_classifier(f) == resilience::Retryability::retryable &&
                     !is_timeout(f.error)
                 ? resilience::Retryability::retryable
                 : resilience::Retryability::not_retryable;
    };
    route->retry = std::make_unique<resilience::RetryPolicy>(std::move(ro));
    route->coalescer_max_waiters = rc.max_waiters;
    route->coalescer.store(make_coalescer(rc.max_waiters));
    route->rate_per_second = rc.rate_limit.rate;
    route->rate_burst = rc.rate_limit.burst;
    route->rate.store(make_bucket(rc.rate_limit));
    for (CacheStatus s :
         {CacheStatus::hit, CacheStatus::miss, CacheStatus::coalesced, CacheStatus::bypass}) {
      std::string label(to_string(s));
      for (auto& ch : label) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      route->by_cache[static_cast<size_t>(s)] = &request_family.with({rc.name, label});
    }
    for (size_t c = 0; c < 5; ++c) {
      const std::string label = std::to_string(c + 1) + "xx";
      route->by_class[c] = &class_family.with({rc.name, label});
    }
    route->latency = &latency_family.with({rc.name});
    routes_.push_back(std::move(route));
  }
  if (config->broadcast.enabled) make_broadcast(config->broadcast);
  config_.store(std::move(config));
  collector_ = registry.add_collector("gateway", [this](metrics::Writer& w) { collect(w); });
}

void Proxy::Impl::make_broadcast(const BroadcastConfig& bc) {
  BroadcastEndpoint::AuthCheck auth;
  if (!bc.auth_upstream.empty()) {
    UpstreamRuntime* upstream = nullptr;
    for (auto& up : upstreams_) {
      if (up->name == bc.auth_upstream) upstream = up.get();
    }
    SLUICE_CHECK(upstream != nullptr, "Proxy: broadcast.auth_upstream was validated by the config");
    // The subscriber's credentials go to the upstream's check path; a 2xx admits it.
    auth =
        [this, upstream, path = bc.auth_path](
            const http::Request& subscriber, const std::string& channel,
            http::ResponseWriter& w) -> asio::awaitable<std::optional<BroadcastEndpoint::Refusal>> {
      http::Request check;
      check.version(11);
      check.method(bh::verb::get);
      check.target(path);
      check.set(bh::field::host, upstream->host_header);
      for (const auto name : {bh::field::authorization, bh::field::cookie}) {
        if (auto it = subscriber.find(name); it != subscriber.end()) check.set(name, it->value());
      }
      if (auto it = subscriber.find("X-Api-Key"); it != subscriber.end()) {
        check.set("X-Api-Key", it->value());
      }
      check.set("X-Sluice-Channel", channel);
      const asio::any_io_executor executor = co_await asio::this_coro::executor;
      http::Client& client = client_for(*upstream, w.worker_index(), executor);
      auto response = co_await client.send(upstream->origin, check);
      if (!response) {
        BroadcastEndpoint::Refusal unreachable{502, "auth_unreachable",
                                               "the subscriber check at upstream '" +
                                                   upstream->name +
                                                   "' failed: " + response.error().message()};
        co_return unreachable;
      }
      (void)co_await response->read_all(64 * 1024);  // lets the connection go back to its pool
      const unsigned status = response->status();
      if (status / 100 == 2) co_return std::nullopt;
      BroadcastEndpoint::Refusal refused{status >= 400 ? status : 403u, "subscribe_refused",
                                         "the subscriber check at upstream '" + upstream->name +
                                             "' answered " + std::to_string(status)};
      co_return refused;
    };
  }
  broadcast_ = std::make_unique<BroadcastEndpoint>(bc, std::move(auth));
}

std::shared_ptr<Coalescer> Proxy::Impl::make_coalescer(size_t max_waiters) const {
  coalesce::CoalescerOptions co;
  co.result_ttl = Duration::zero();  // the L1 cache keeps answers, with per-answer TTLs
  co.max_in_flight = 100'000;
  co.max_waiters_per_key = max_waiters;
  co.max_cached_results = 0;
  co.shards = kCacheShards;
  return std::make_shared<Coalescer>(co);
}

std::shared_ptr<flow::KeyedTokenBucket> Proxy::Impl::make_bucket(const RateLimitConfig& rl) const {
  if (!rl.enabled) return nullptr;
  flow::KeyedTokenBucket::Options bo;
  bo.bucket.rate_per_second = rl.rate;
  bo.bucket.burst = static_cast<uint32_t>(std::max(1.0, rl.burst));
  return std::make_shared<flow::KeyedTokenBucket>(bo, base::SteadyClock::instance());
}

void Proxy::Impl::set_config(std::shared_ptr<const Config> config) {
  std::lock_guard lock(set_config_mu_);  // the admin API and SIGHUP may both call it
  for (auto& route : routes_) {
    if (route->index >= config->routes.size()) continue;
    const RouteConfig& rc = config->routes[route->index];
    if (rc.max_waiters != route->coalescer_max_waiters) {
      // Calls in flight finish on the old coalescer; new ones join the new one.
      route->coalescer.store(make_coalescer(rc.max_waiters));
      route->coalescer_max_waiters = rc.max_waiters;
    }
    const bool had = route->rate.load() != nullptr;
    if (rc.rate_limit.enabled != had || rc.rate_limit.rate != route->rate_per_second ||
        rc.rate_limit.burst != route->rate_burst) {
      route->rate.store(make_bucket(rc.rate_limit));
      route->rate_per_second = rc.rate_limit.rate;
      route->rate_burst = rc.rate_limit.burst;
    }
  }
  if (auto level = parse_log_level(config->log.level)) set_log_level(*level);
  config_.store(std::move(config));
}

const RouteRuntime* Proxy::Impl::match(const http::Request& request, const Config& config) const {
  const std::string_view path = path_of(request.target());
  std::string_view host;
  if (auto it = request.find(bh::field::host); it != request.end()) {
    host = host_without_port(it->value());
  }
  const std::string_view method = request.method_string();
  for (const auto& route : routes_) {
    const RouteConfig& rc = config.routes[route->index];
    if (!path.starts_with(rc.path_prefix)) continue;
    if (!rc.host.empty() && !iequals(rc.host, host)) continue;
    if (!rc.methods.empty() &&
        std::none_of(rc.methods.begin(), rc.methods.end(),
                     [&](const std::string& m) { return iequals(m, method); })) {
      continue;
    }
    return route.get();
  }
  return nullptr;
}

http::Client& Proxy::Impl::client_for(UpstreamRuntime& upstream, size_t worker,
                                      const asio::any_io_executor& executor) {
  SLUICE_CHECK(worker < upstream.workers, "Proxy: worker index out of range");
  http::Client* client = upstream.clients[worker].load(std::memory_order_acquire);
  if (client == nullptr) {
    client = new http::Client(executor, upstream.client_options);
    upstream.clients[worker].store(client, std::memory_order_release);
  }
  return *client;
}

namespace {
// What one L1 entry charges to `cache.max_bytes`: the answer, its key (held by the cache's
// index), and the entry's fixed cost (index and LRU nodes, shared_ptr control block, TTL).
size_t charge(const std::string& key, const CachedResponse& c) noexcept {
  constexpr size_t kEntryOverhead = 160;
  return c.weight() + key.size() + kEntryOverhead;
}
}  // namespace

std::shared_ptr<http::Request> Proxy::Impl::upstream_request(
    const http::Request& request, const UpstreamRuntime& upstream,
    const http::ResponseWriter& writer) const {
  auto up = std::make_shared<http::Request>(request);
  Forwarding(request, upstream, writer).apply(*up);
  return up;
}

// ---------------------------------------------------------------------------------------
// Upstream calls

asio::awaitable<Proxy::Impl::Attempt> Proxy::Impl::call_upstream(RouteRuntime& route,
                                                                 const RouteConfig& rc,
                                                                 const http::Request& up,
                                                                 const http::RequestEdits& edits,
                                                                 size_t worker) {
  UpstreamRuntime& upstream = *route.upstream;
  Attempt out;
  std::optional<resilience::CircuitBreaker::Permit> permit;
  if (upstream.breaker) {
    auto p = upstream.breaker->allow();
    if (!p.allowed()) {
      bump(counters_.breaker_rejected);
      out.error = {
          503, "upstream_unavailable",
          "circuit breaker for upstream '" + upstream.name + "' is open after repeated failures"};
      co_return out;
    }
    permit.emplace(std::move(p));
  }
  flow::LimiterToken token;
  if (upstream.limiter) {
    auto t = upstream.limiter->try_acquire();
    if (!t) {
      bump(counters_.over_limit);
      out.error = {503, "over_limit",
                   "upstream '" + upstream.name + "' is at its concurrency limit"};
      co_return out;
    }
    token = std::move(*t);
  }
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  http::Client& client = client_for(upstream, worker, executor);
  const bool may_retry = http::is_idempotent(up.method()) || rc.retry.non_idempotent;
  resilience::RetryState state(*route.retry);
  std::optional<asio::steady_timer> timer;  // made on the first retry: most calls have none
  error_code last_error;
  while (state.start_attempt()) {
    if (state.attempts() > 1) bump(counters_.retries);
    bump(counters_.upstream_requests);
    const TimePoint sent = base::SteadyClock::instance().now();
    auto result = co_await client.send(upstream.origin, up, edits);
    const Duration latency = base::SteadyClock::instance().now() - sent;
    if (result) {
      const unsigned status = result->status();
      upstream.latency->record(latency);
      bool retry = false;
      if (may_retry && std::find(rc.retry.on_status.begin(), rc.retry.on_status.end(),
                                 static_cast<int>(status)) != rc.retry.on_status.end()) {
        resilience::Failure failure;
        failure.status = static_cast<int>(status);
        if (auto it = result->head().find(bh::field::retry_after); it != result->head().end()) {
          failure.retry_after = resilience::parse_retry_after(it->value());
        }
        const auto decision = state.next_delay(failure);
        if (decision.should_retry()) {
          retry = true;
          if (!timer) timer.emplace(executor);
          timer->expires_after(decision.delay());
          result = boost::system::result<http::ClientResponse>(error_code{});  // drops it
          co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
        }
      } else {
        state.on_success();
      }
      if (retry) continue;
      const bool failed = status >= 500;
      if (permit) failed ? permit->failure() : permit->success();
      if (token.active()) failed ? token.on_error() : token.on_success(latency);
      out.latency = latency;
      out.response.emplace(std::move(*result));
      co_return out;
    }
    last_error = result.error();
    out.latency = latency;
    bump(counters_.upstream_errors);
    if (!may_retry) break;
    resilience::Failure failure;
    failure.error = last_error;
    const auto decision = state.next_delay(failure);
    if (!decision.should_retry()) break;
    if (!timer) timer.emplace(executor);
    timer->expires_after(decision.delay());
    co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  }
  if (is_timeout(last_error)) bump(counters_.upstream_timeouts);
  if (permit) permit->failure();
  if (token.active()) is_timeout(last_error) ? token.on_dropped() : token.on_error();
  out.error = last_error ? error_from_client(last_error, upstream.name)
                         : GatewayError{504, "upstream_timeout",
                                        "upstream '" + upstream.name + "' retries ran out"};
  co_return out;
}

asio::awaitable<FetchedPtr> Proxy::Impl::fetch_shared(
    RouteRuntime* route, std::shared_ptr<const Config> cfg, std::shared_ptr<const http::Request> up,
    std::string key, std::string uri, std::shared_ptr<LeaderTicket> ticket, size_t worker,
    bool may_store, ResponsePtr stale) {
  auto fetched = std::make_shared<Fetched>();
  fetched->owner = ticket.get();
  const RouteConfig& rc = cfg->routes[route->index];
  if (stale) {
    // Revalidate the stored answer (RFC 9111 4.3.1): ask the upstream whether it changed.
    auto conditional = std::make_shared<http::Request>(*up);
    if (auto it = stale->headers.find(bh::field::etag); it != stale->headers.end()) {
      conditional->set(bh::field::if_none_match, it->value());
    }
    if (auto it = stale->headers.find(bh::field::last_modified); it != stale->headers.end()) {
      conditional->set(bh::field::if_modified_since, it->value());
    }
    up = std::move(conditional);
  }
  const http::RequestEdits as_is;
  Attempt attempt = co_await call_upstream(*route, rc, *up, as_is, worker);
  if (stale && attempt.response && attempt.response->status() == 304) {
    // Not modified: the stored body with the 304's headers merged in (RFC 9111 4.3.4).
    bump(counters_.revalidated);
    auto refreshed = std::make_shared<CachedResponse>(*stale);
    bh::fields fresh_headers = attempt.response->head();
    http::strip_hop_by_hop(fresh_headers);
    for (const auto& field : fresh_headers) {
      if (field.name() == bh::field::content_length) continue;
      refreshed->headers.set(field.name_string(), field.value());
    }
    const StoreDecision decision =
        decide_for(*route, rc, *up, refreshed->status, refreshed->headers, attempt.latency);
    refreshed->stored_at = base::SteadyClock::instance().now();
    refreshed->initial_age = decision.initial_age;
    refreshed->ttl = decision.ttl;
    refreshed->upstream_latency = attempt.latency;
    attempt.response.reset();  // a 304 has no body: the connection goes back to the pool
    if (decision.verdict == StoreVerdict::store && may_store && decision.ttl > Duration::zero()) {
      (void)l1_.put(key, ResponsePtr(refreshed), keep_for(*refreshed), charge(key, *refreshed));
    } else {
      (void)l1_.erase(key);
    }
    fetched->upstream_latency = attempt.latency;
    fetched->shareable = true;
    fetched->response = std::move(refreshed);
    co_return fetched;
  }
  fetched->upstream_latency = attempt.latency;
  if (stale && (!attempt.response || attempt.response->status() >= 500)) {
    // The upstream failed: a stored answer whose stale-if-error window is still open serves
    // instead (RFC 5861), to this request and its waiters.
    const auto window = stale_if_error_of(*stale);
    if (window && base::SteadyClock::instance().now() <= stale->stored_at + stale->ttl + *window) {
      bump(counters_.stale_if_error);
      attempt.response.reset();
      fetched->shareable = true;
      fetched->stale_on_error = true;
      fetched->response = std::move(stale);
      co_return fetched;
    }
  }
  if (!attempt.response) {
    fetched->error = std::move(attempt.error);
    fetched->shareable = true;  // everyone waiting would meet the same failure
    co_return fetched;
  }
  http::ClientResponse& response = *attempt.response;
  auto cached = std::make_shared<CachedResponse>();
  cached->status = response.status();
  cached->headers = response.head();  // copies the fields
  http::strip_hop_by_hop(cached->headers);
  cached->uri = std::move(uri);
  cached->upstream_latency = attempt.latency;

  // What RFC 9111 allows is known from the head: decide before reading the body.
  const StoreDecision decision =
      decide_for(*route, rc, *up, cached->status, cached->headers, attempt.latency);
  bool shareable = false;
  switch (decision.verdict) {
    case StoreVerdict::store:
    case StoreVerdict::error_status:
    case StoreVerdict::zero_lifetime:
    case StoreVerdict::method_not_cacheable:
      shareable = true;  // a concurrent identical request may have it
      break;
    case StoreVerdict::status_not_cacheable:
      // 206 and 304 answer one request's own conditions; other odd statuses may be shared.
      shareable = cached->status != 206 && cached->status != 304;
      break;
    default:  // no-store, no-cache, private, Set-Cookie, Vary: *, credentials without permission
      shareable = false;
      break;
  }

  const size_t max_object = cfg->cache.max_object_bytes;
  bool whole = shareable;  // an answer nobody else may have is streamed, never buffered
  const std::optional<uint64_t> declared = declared_length(response.head());
  const bool event_stream = is_event_stream(response.head());
  if (event_stream || (declared && *declared > max_object)) whole = false;
  if (whole) {
    if (declared && up->method() != bh::verb::head) cached->body.reserve(*declared);
    while (true) {
      auto piece = co_await response.read_some();
      if (!piece) {
        bump(counters_.upstream_aborted);
        fetched->error = {502, "upstream_aborted",
                          "upstream '" + route->upstream->name +
                              "' closed the connection mid-response: " + piece.error().message()};
        fetched->shareable = true;
        co_return fetched;
      }
      if (piece->empty()) break;
      cached->body.append(piece->data(), piece->size());
      if (cached->body.size() > max_object) {
        whole = false;
        break;
      }
    }
  }
  const bool live_stream = event_stream || !declared;
  // `no-cache` (what LLM APIs put on their event streams) forbids reusing a stored answer
  // without revalidation, not sharing one in flight: such a stream is shared, as a max-age=0
  // answer is, and never stored.
  const bool stream_shareable = shareable || decision.verdict == StoreVerdict::no_cache_response;
  if (!whole && stream_shareable && live_stream && cached->body.empty() &&
      (rc.stream.coalesce || rc.stream.cache) && up->method() != bh::verb::head) {
    // A coalesced stream: one upstream read, joined by the leader, its waiters and (with
    // stream.coalesce) identical requests that arrive while it runs.
    const bool store = decision.verdict == StoreVerdict::store && may_store && rc.stream.cache &&
                       rc.cache && cfg->cache.enabled && decision.ttl > Duration::zero();
    SharedStream::Options so;
    // The history serves late joiners and the cache; without either it is not kept.
    so.history_bytes = rc.stream.coalesce || store ? max_object : 0;
    so.joiner.buffer_size = rc.stream.buffer_chunks;
    so.joiner.max_buffered_bytes = rc.stream.buffer_bytes;
    // Dropping chunks keeps a body whole only when they are whole events.
    so.joiner.overflow = rc.stream.slow_client == "drop_oldest" && event_stream
                             ? flow::OverflowPolicy::drop_oldest
                             : flow::OverflowPolicy::fail;
    auto shared = std::make_shared<SharedStream>(so);
    cached->vary = vary_names(cached->headers);
    cached->vary_fingerprint = vary_fingerprint(cached->vary, up->base());
    cached->initial_age = decision.initial_age;
    cached->ttl = decision.ttl;
    cached->stored_at = base::SteadyClock::instance().now();  // freshness counts from the head
    fetched->leader_joiner = shared->join();  // before the reader: the leader gets it all
    fetched->hold = shared->hold();
    streams_.shared_started(shared);
    if (rc.stream.coalesce) {
      std::lock_guard lock(live_mu_);
      live_[key] = LiveStream{cached, shared};
    }
    const asio::any_io_executor executor = co_await asio::this_coro::executor;
    asio::co_spawn(executor,
                   read_shared(shared, std::move(response), cfg, route, key, cached, store),
                   asio::detached);
    fetched->shared = std::move(shared);
    fetched->shareable = rc.stream.coalesce;
    fetched->response = std::move(cached);
    co_return fetched;
  }
  if (!whole) {
    // The leader streams it; everyone else goes upstream alone, and so will the next ones
    // for a while.
    bump(counters_.handed_off);
    fetched->live = std::make_shared<LiveBody>(co_await asio::this_coro::executor);
    fetched->live->response.emplace(std::move(response));
    fetched->shareable = false;
    mark_hit_for_miss(key, rc.hit_for_miss_ttl);
    fetched->response = std::move(cached);
    co_return fetched;
  }
  fetched->shareable = shareable;
  bump(counters_.encode_runs, encoder_.encode_stored(*cached));  // once, for every later hit
  cached->vary = vary_names(cached->headers);
  cached->vary_fingerprint = vary_fingerprint(cached->vary, up->base());
  cached->initial_age = decision.initial_age;
  cached->stored_at = base::SteadyClock::instance().now();
  cached->ttl = decision.ttl;
  if (decision.verdict == StoreVerdict::store && may_store && rc.cache && cfg->cache.enabled &&
      decision.ttl > Duration::zero()) {
    const size_t weight = charge(key, *cached);
    if (l1_.put(key, ResponsePtr(cached), keep_for(*cached), weight)) bump(counters_.stored);
  } else if (decision.verdict != StoreVerdict::store) {
    bump(counters_.not_stored);
  }
  fetched->response = std::move(cached);
  co_return fetched;
}

void Proxy::Impl::mark_hit_for_miss(const std::string& key, Duration ttl) {
  if (ttl <= Duration::zero()) return;
  bump(counters_.hit_for_miss_marked);
  (void)hit_for_miss_.put(key, base::SteadyClock::instance().now(), ttl);
}

bool Proxy::Impl::invalidated(const CachedResponse& c) {
  if (invalidation_marks_.load(std::memory_order_relaxed) == 0) return false;
  auto at = invalidations_.get(c.uri);
  return at && *at >= c.stored_at;
}

void Proxy::Impl::invalidate(const http::Request& request, unsigned status,
                             const bh::fields& response_headers) {
  std::string_view host;
  if (auto it = request.find(bh::field::host); it != request.end()) host = it->value();
  const auto targets = invalidation_targets(request.method_string(), status, host, request.target(),
                                            response_headers);
  if (targets.empty()) return;
  const TimePoint now = base::SteadyClock::instance().now();
  for (const auto& target : targets) {
    (void)invalidations_.put(normalize_host(host) + target, now, std::chrono::hours(24));
    bump(counters_.invalidations);
  }
  invalidation_marks_.fetch_add(targets.size(), std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------
// Writing answers

asio::awaitable<void> Proxy::Impl::send_error(Request& r, http::ResponseWriter& w,
                                              const GatewayError& e,
                                              std::optional<Duration> retry_after) {
  bh::fields headers;
  headers.set(bh::field::content_type, "application/json");
  headers.set(bh::field::cache_control, "no-store");
  headers.set("X-Cache", to_string(r.cache));
  if (retry_after) {
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(*retry_after).count();
    headers.set(bh::field::retry_after, std::to_string(std::max<int64_t>(seconds, 1)));
  }
  headers.set("X-Process-Time", format_seconds(base::SteadyClock::instance().now() - r.start));
  std::string body = error_json(e.code, e.reason);
  r.status = e.status;
  r.bytes_out += body.size();
  if (co_await w.send(static_cast<bh::status>(e.status), std::move(headers), std::move(body))) {
    bump(counters_.client_disconnects);
  }
}

asio::awaitable<void> Proxy::Impl::send_cached(Request& r, http::ResponseWriter& w,
                                               const CachedResponse& c, CacheStatus status,
                                               bool from_cache) {
  r.cache = status;
  // The stored head goes out as stored, with these added (no copy of it per answer).
  const TimePoint now = base::SteadyClock::instance().now();
  const std::string age = from_cache ? age_header(c.initial_age, now - c.stored_at) : "";
  const std::string process_time = format_seconds(now - r.start);
  std::array<http::HeaderView, 7> extra;
  size_t n = 0;
  if (from_cache) extra[n++] = {"Age", age};
  extra[n++] = {"X-Cache", to_string(status)};
  if (!r.debug_key.empty()) extra[n++] = {"X-Sluice-Key", r.debug_key};
  extra[n++] = {"X-Process-Time", process_time};
  // A compressible answer was compressed when it was stored: pick the variant the client takes.
  std::string_view body = c.body;
  EncodingHeaders encoding;
  if (!c.encoded.empty()) {
    const http::Coding coding = encoder_.choose(accept_encoding(*r.request), c);
    encoding = encoding_headers(c.headers, coding);
    extra[n++] = {"Vary", encoding.vary};
    for (const auto& e : c.encoded) {
      if (e.coding != coding) continue;
      body = e.body;
      extra[n++] = {"Content-Encoding", encoding.content_encoding};
      if (!encoding.etag.empty()) extra[n++] = {"ETag", encoding.etag};
      count_encoded(coding, c.body.size(), e.body.size());
    }
  }
  const http::HeadView head{c.headers, std::span(extra.data(), n)};
  r.status = c.status;
  error_code ec;
  if (r.request->method() == bh::verb::head) {
    // The length a GET would get: a stored HEAD answer has no body but keeps the upstream's
    // Content-Length.
    const std::optional<uint64_t> length =
        body.empty() ? declared_length(c.headers) : std::optional<uint64_t>(body.size());
    ec = co_await w.write_head(static_cast<bh::status>(c.status), head, length);
    if (!ec) ec = co_await w.finish();
  } else if (body.size() <= 64 * 1024) {
    r.bytes_out += body.size();
    ec = co_await w.send(static_cast<bh::status>(c.status), head, body);
  } else {
    ec = co_await w.write_head(static_cast<bh::status>(c.status), head, body.size());
    if (!ec) ec = co_await w.write_chunk(body);
    if (!ec) ec = co_await w.finish();
    if (!ec) r.bytes_out += body.size();
  }
  if (ec) bump(counters_.client_disconnects);
}

asio::awaitable<void> Proxy::Impl::stream(Request& r, http::ResponseWriter& w,
                                          http::ClientResponse& response, std::string_view prefix,
                                          CacheStatus status) {
  r.cache = status;
  r.status = response.status();
  // The upstream's head goes out as received, minus its hop-by-hop fields and its framing
  // (the writer frames the body itself), plus these (no copy of it per answer).
  const bh::fields& upstream_head = response.head();
  std::optional<uint64_t> length = declared_length(upstream_head);
  const bool event_stream = is_event_stream(upstream_head);
  if (event_stream) length.reset();  // chunked, so an error event can still end it cleanly
  std::array<http::HeaderView, 6> extra;
  size_t n = 0;
  extra[n++] = {"X-Cache", to_string(status)};
  if (!r.debug_key.empty()) extra[n++] = {"X-Sluice-Key", r.debug_key};
  // Compression (encoding.h): decided from the head, before the head goes out.
  // Cheapest tests first: most pass-through answers are small or the client asks for none.
  const bool encodable = encoder_.enabled() && r.request->method() != bh::verb::head &&
                         (!length || *length >= encoder_.min_bytes()) &&
                         !accept_encoding(*r.request).empty() &&
                         encoder_.eligible(r.status, upstream_head);
  EncodingHeaders encoding;
  const auto add_encoding = [&](http::Coding coding) {
    encoding = encoding_headers(upstream_head, coding);
    extra[n++] = {"Vary", encoding.vary};
    if (coding == http::Coding::identity) return;
    extra[n++] = {"Content-Encoding", encoding.content_encoding};
    if (!encoding.etag.empty()) extra[n++] = {"ETag", encoding.etag};
  };
  std::string process_time;
  const auto head = [&] {
    process_time = format_seconds(base::SteadyClock::instance().now() - r.start);
    extra[n] = {"X-Process-Time", process_time};
    return http::HeadView{upstream_head, std::span(extra.data(), n + 1), true};
  };
  if (r.request->method() == bh::verb::head) {
    // No body follows; the head declares the length a GET would get.
    const http::HeadView head_only = head();
    error_code ec = co_await w.write_head(static_cast<bh::status>(r.status), head_only, length);
    if (!ec) ec = co_await w.finish();
    if (ec) bump(counters_.client_disconnects);
    while (!response.done()) {  // lets the upstream connection go back to its pool
      auto piece = co_await response.read_some();
      if (!piece || piece->empty()) break;
    }
    co_return;
  }
  if (length && *length <= kSmallBody && prefix.empty()) {
    // A small body of declared length goes out in one write with its head (one syscall, as
    // for a cached answer), and an upstream that fails before its end still gets a 502.
    std::string body;
    body.reserve(static_cast<size_t>(*length));
    while (true) {
      auto piece = co_await response.read_some();
      if (!piece) {
        bump(counters_.upstream_aborted);
        const GatewayError aborted{
            502, "upstream_aborted",
            "upstream '" + r.route->upstream->name +
                "' closed the connection mid-response: " + piece.error().message()};
        co_await send_error(r, w, aborted);
        co_return;
      }
      if (piece->empty() || body.size() + piece->size() > *length) {
        if (!piece->empty()) body.append(piece->data(), piece->size());
        break;
      }
      body.append(piece->data(), piece->size());
    }
    std::string_view body_view = body;
    std::string coded;
    if (encodable) {
      http::Coding coding = encoder_.choose_for_body(accept_encoding(*r.request));
      if (coding != http::Coding::identity) {
        auto compressed = http::compress(coding, body, encoder_.level(coding));
        if (compressed && compressed->size() < body.size()) {
          coded = std::move(*compressed);
          count_encoded(coding, body.size(), coded.size());
          body_view = coded;
        } else {
          coding = http::Coding::identity;
        }
      }
      add_encoding(coding);
    }
    r.bytes_out += body_view.size();
    const http::HeadView small_head = head();
    if (co_await w.send(static_cast<bh::status>(r.status), small_head, body_view)) {
      bump(counters_.client_disconnects);
    }
    co_return;
  }
  std::optional<http::StreamCompressor> compressor;
  if (encodable) {
    const http::Coding coding = encoder_.choose_for_stream(accept_encoding(*r.request));
    if (coding != http::Coding::identity) {
      compressor.emplace(coding, encoder_.stream_options(coding));
      length.reset();  // the coded length is known only at the end: chunked
    }
    add_encoding(coding);
  }
  const http::HeadView stream_head = head();
  if (co_await w.write_head(static_cast<bh::status>(r.status), stream_head, length)) {
    bump(counters_.client_disconnects);
    co_return;
  }
  if (!prefix.empty()) {
    std::string coded;
    std::string_view first = prefix;
    if (compressor) {
      if (compressor->write(prefix, http::Flush::none, coded)) {
        w.abort();
        co_return;
      }
      first = coded;
    }
    if (!first.empty() && co_await w.write_chunk(first)) {
      bump(counters_.client_disconnects);
      co_return;
    }
    r.bytes_out += first.size();
  }
  const RouteConfig& rc = r.config->routes[r.route->index];
  const flow::OverflowPolicy overflow =
      rc.stream.slow_client == "disconnect" ? flow::OverflowPolicy::fail
      // Dropping chunks keeps a body whole only when they are whole events.
      : rc.stream.slow_client == "drop_oldest" && event_stream
          ? flow::OverflowPolicy::drop_oldest
          : flow::OverflowPolicy::block_producer;
  // A body of unknown length is a live stream (SSE, NDJSON tokens): coded with a flush per
  // chunk, so nothing waits in the compressor for more.
  auto entry = make_entry(r, w, event_stream, event_stream || !declared_length(upstream_head),
                          std::make_shared<flow::BoundedStream>(flow::BoundedStreamOptions{
                              .buffer_size = rc.stream.buffer_chunks,
                              .max_buffered_bytes = rc.stream.buffer_bytes,
                              .overflow = overflow}));
  http::StreamCompressor* coder = compressor ? &*compressor : nullptr;
  const PumpResult pumped =
      co_await pump(response, w, rc.stream, *entry, r.route->upstream->name, coder);
  account_stream(r, *entry, pumped, coder);
}

std::shared_ptr<StreamEntry> Proxy::Impl::make_entry(const Request& r,
                                                     const http::ResponseWriter& w,
                                                     bool event_stream, bool flush_each_chunk,
                                                     std::shared_ptr<flow::BoundedStream> stream,
                                                     bool shared) {
  auto entry = std::make_shared<StreamEntry>();
  entry->shared = shared;
  entry->route = r.route->name;
  entry->client = w.peer_address();
  entry->target = std::string(r.request->target());
  entry->policy = r.config->routes[r.route->index].stream.slow_client;
  entry->event_stream = event_stream;
  entry->flush_each_chunk = flush_each_chunk;
  entry->started_unix_ms = r.start_unix_ns / 1'000'000;
  entry->stream = std::move(stream);
  return streams_.add(std::move(entry));
}

void Proxy::Impl::account_stream(Request& r, const StreamEntry& entry, const PumpResult& pumped,
                                 const http::StreamCompressor* coder) {
  if (coder != nullptr) count_encoded(coder->coding(), coder->bytes_in(), coder->bytes_out());
  streams_.remove(entry, pumped.outcome);
  r.bytes_out += entry.client_bytes.load(std::memory_order_relaxed);
  switch (pumped.outcome) {
    case StreamOutcome::completed:
      break;
    case StreamOutcome::client_gone:
    case StreamOutcome::slow_client:
      bump(counters_.client_disconnects);
      break;
    case StreamOutcome::upstream_error:
    case StreamOutcome::stalled:
      if (!entry.shared) {  // a shared stream's failure is counted and logged once, by its reader
        bump(counters_.upstream_aborted);
        log(LogLevel::warn, "upstream '" + r.route->upstream->name + "' " +
                                (pumped.outcome == StreamOutcome::stalled ? "stalled" : "failed") +
                                " mid-stream: " + pumped.upstream_error.message());
      }
      break;
  }
}

asio::awaitable<void> Proxy::Impl::read_shared(std::shared_ptr<SharedStream> shared,
                                               http::ClientResponse response,
                                               std::shared_ptr<const Config> cfg,
                                               RouteRuntime* route, std::string key,
                                               std::shared_ptr<CachedResponse> head, bool store) {
  const RouteConfig& rc = cfg->routes[route->index];
  co_await feed_shared(response, *shared, is_event_stream(head->headers), rc.stream,
                       shared_upstream_bytes_, shared_events_);
  bool stored = false;
  const SharedStream::End end = shared->state();
  if (end == SharedStream::End::failed) {
    bump(counters_.upstream_aborted);
    log(LogLevel::warn, "upstream '" + route->upstream->name + "' failed mid-stream (" +
                            std::to_string(shared->stats().joiners) +
                            " clients on the shared stream): " + shared->error().message());
  } else if (end == SharedStream::End::completed && store) {
    if (std::optional<std::string> body = shared->body()) {
      // Replayed later as the same body, with its length declared; fresh from its head's
      // arrival, as any answer. Stored before the stream leaves the live table, so a request
      // in between finds one or the other.
      auto complete = std::make_shared<CachedResponse>(*head);
      complete->body = std::move(*body);
      bump(counters_.encode_runs, encoder_.encode_stored(*complete));
      const size_t weight = charge(key, *complete);
      stored = l1_.put(key, ResponsePtr(complete), keep_for(*complete), weight);
      if (stored) bump(counters_.stored);
    }
  }
  {
    std::lock_guard lock(live_mu_);
    if (auto it = live_.find(key); it != live_.end() && it->second.shared == shared) {
      live_.erase(it);
    }
  }
  streams_.shared_ended(shared, stored);
}

asio::awaitable<bool> Proxy::Impl::join_shared(Request& r, http::ResponseWriter& w,
                                               const CachedResponse& head, SharedStream& shared,
                                               CacheStatus status,
                                               std::optional<SharedStream::Joiner> joiner,
                                               std::shared_ptr<void> hold) {
  // A joiner that falls behind under `fail` is cut by the reader, from the reader's thread:
  // the reset is posted to this worker, and only while this coroutine still has the writer.
  const auto writer_alive = std::make_shared<http::ResponseWriter*>(&w);
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  auto on_ejected = [writer_alive, executor] {
    asio::post(executor, [writer_alive] {
      if (*writer_alive != nullptr) (*writer_alive)->reset();
    });
  };
  if (joiner) {
    // Already ejected when this returns false: its stream reports the overflow.
    (void)shared.set_on_ejected(joiner->id, std::move(on_ejected));
  } else {
    joiner = shared.join(std::move(on_ejected));
  }
  hold.reset();  // joined (or refused): no longer expected
  if (!joiner) co_return false;
  struct Leave {
    SharedStream& shared;
    uint64_t id;
    const std::shared_ptr<http::ResponseWriter*>& writer;
    ~Leave() {
      *writer = nullptr;
      shared.leave(id);
    }
  } leave{shared, joiner->id, writer_alive};
  r.cache = status;
  r.status = head.status;
  const bool event_stream = is_event_stream(head.headers);
  std::array<http::HeaderView, 6> extra;
  size_t n = 0;
  extra[n++] = {"X-Cache", to_string(status)};
  if (!r.debug_key.empty()) extra[n++] = {"X-Sluice-Key", r.debug_key};
  std::optional<http::StreamCompressor> compressor;
  EncodingHeaders encoding;
  if (encoder_.enabled() && !accept_encoding(*r.request).empty() &&
      encoder_.eligible(r.status, head.headers)) {
    const http::Coding coding = encoder_.choose_for_stream(accept_encoding(*r.request));
    encoding = encoding_headers(head.headers, coding);
    extra[n++] = {"Vary", encoding.vary};
    if (coding != http::Coding::identity) {
      compressor.emplace(coding, encoder_.stream_options(coding));
      extra[n++] = {"Content-Encoding", encoding.content_encoding};
      if (!encoding.etag.empty()) extra[n++] = {"ETag", encoding.etag};
    }
  }
  const std::string process_time = format_seconds(base::SteadyClock::instance().now() - r.start);
  extra[n++] = {"X-Process-Time", process_time};
  const http::HeadView view{head.headers, std::span(extra.data(), n), true};
  const std::optional<uint64_t> chunked;
  if (co_await w.write_head(static_cast<bh::status>(r.status), view, chunked)) {
    bump(counters_.client_disconnects);
    co_return true;
  }
  auto entry = make_entry(r, w, event_stream, true, joiner->stream, true);
  http::StreamCompressor* coder = compressor ? &*compressor : nullptr;
  const PumpResult pumped =
      co_await deliver_shared(shared, *joiner, w, *entry, r.route->upstream->name, coder);
  account_stream(r, *entry, pumped, coder);
  co_return true;
}

asio::awaitable<void> Proxy::Impl::pass_through(Request& r, http::ResponseWriter& w,
                                                RouteRuntime& route, const RouteConfig& rc,
                                                CacheStatus status) {
  r.cache = status;
  const http::Request& up = *r.request;
  const Forwarding forwarding(up, *route.upstream, w);
  const http::RequestEdits edits = forwarding.edits();
  Attempt attempt = co_await call_upstream(route, rc, up, edits, w.worker_index());
  r.upstream_latency = attempt.latency;
  if (!attempt.response) {
    co_await send_error(r, w, attempt.error);
    co_return;
  }
  if (is_unsafe(up.method()) && attempt.response->status() < 400) {
    invalidate(*r.request, attempt.response->status(), attempt.response->head());
  }
  const std::string_view no_prefix;
  co_await stream(r, w, *attempt.response, no_prefix, status);
}

// ---------------------------------------------------------------------------------------
// The pipeline

asio::awaitable<void> Proxy::Impl::handle(http::Request& request, http::ResponseWriter& writer) {
  Request r;
  r.start = base::SteadyClock::instance().now();
  r.start_unix_ns = unix_now_ns();
  r.request = &request;
  r.config = config_.load();
  bump(counters_.requests);
  if (auto it = request.find("X-Request-Id"); it != request.end() && it->value().size() <= 128) {
    r.request_id = std::string(it->value());
  } else {
    r.request_id = std::to_string(next_request_id_.fetch_add(1, std::memory_order_relaxed));
  }
  if (broadcast_ && broadcast_->matches(path_of(request.target()))) {
    r.long_lived = true;
    const BroadcastEndpoint::Outcome outcome = co_await broadcast_->handle(request, writer);
    r.status = outcome.status;
    r.bytes_out = outcome.bytes_out;
    finish(r);
    co_return;
  }

  const RouteRuntime* matched = match(request, *r.config);
  if (matched == nullptr) {
    bump(counters_.no_route);
    // Named, not a braced temporary in the co_await: GCC 12 destroys those twice.
    const GatewayError no_route{404, "no_route",
                                "no route matches " + std::string(request.method_string()) + " " +
                                    std::string(path_of(request.target()))};
    co_await send_error(r, writer, no_route);
    finish(r);
    co_return;
  }
  RouteRuntime& route = *const_cast<RouteRuntime*>(matched);
  r.route = &route;
  const RouteConfig& rc = r.config->routes[route.index];
  const bh::verb method = request.method();

  const bool coalescable_method = method == bh::verb::get || method == bh::verb::head ||
                                  (method == bh::verb::post && rc.coalesce_post);
  const RequestDecision request_decision = decide_request(request.base());
  const bool cacheable =
      coalescable_method && rc.cache && r.config->cache.enabled && request_decision.may_store;
  // A conditional or partial request asks for an answer of its own (a 304 or 206 must not
  // reach a waiter that asked for the whole body): it goes upstream alone.
  // One pass over the (few) fields, not four lookups.
  const bool own_answer = std::any_of(request.begin(), request.end(), [](const auto& field) {
    const bh::field name = field.name();
    return name == bh::field::range || name == bh::field::if_range ||
           name == bh::field::if_none_match || name == bh::field::if_modified_since;
  });
  const bool coalescable =
      coalescable_method && rc.coalesce && request_decision.may_store && !own_answer;

  RequestKey key = make_key(request, route.key_policy, r.config->cache.debug_header);
  r.tenant = key.tenant;
  if (r.config->cache.debug_header) {
    r.debug_key = "route=" + route.name;
    for (const auto& part : key.parts) r.debug_key += "; " + part.name + "=" + part.value;
  }

  if (auto bucket = route.rate.load()) {
    std::string_view rate_key = route.name;
    std::string ip;
    if (rc.rate_limit.key == "tenant" && !key.tenant.empty()) {
      rate_key = key.tenant;
    } else if (rc.rate_limit.key != "route") {
      ip = writer.peer_address();
      rate_key = ip;
    }
    const auto decision = bucket->try_acquire(rate_key);
    if (!decision.allowed) {
      bump(counters_.rate_limited);
      const GatewayError limited{429, "rate_limited",
                                 "route '" + route.name + "' allows " +
                                     std::to_string(rc.rate_limit.rate) + " requests/s per " +
                                     rc.rate_limit.key};
      const std::optional<Duration> retry_after = decision.retry_after;
      co_await send_error(r, writer, limited, retry_after);
      finish(r);
      co_return;
    }
  }

  // L1 cache: a fresh entry answers; a stale one (kept because it has a validator) is
  // revalidated upstream by the coalesced leader below.
  ResponsePtr stale;
  if (cacheable && request_decision.may_use_cache) {
    if (auto hit = l1_.get(key.key)) {
      const CachedResponse& c = **hit;
      const bool vary_ok =
          c.vary.empty() || vary_fingerprint(c.vary, request.base()) == c.vary_fingerprint;
      if (!vary_ok) bump(counters_.vary_mismatch);
      const TimePoint now = base::SteadyClock::instance().now();
      const bool usable = vary_ok && !invalidated(c);
      bool fresh = now < c.stored_at + c.ttl;
      if (usable &&
          (request_decision.max_age || request_decision.min_fresh || request_decision.max_stale)) {
        // The request's own limits (RFC 9111 5.2.1): max-age on the answer's current age,
        // min-fresh on its remaining freshness, max-stale for how stale it may be.
        const Duration resident = now - c.stored_at;
        const bool must_revalidate = !fresh && request_decision.max_stale && [&c] {
          const CacheControl cc = parse_cache_control(c.headers);
          return cc.must_revalidate || cc.proxy_revalidate;
        }();
        fresh =
            request_decision.accepts(c.initial_age + resident, c.ttl - resident, must_revalidate);
      }
      // Not acceptable as it is: the leader below revalidates it (or fetches it again when it
      // has no validator).
      if (usable && !fresh) stale = *hit;
      if (usable && fresh) {
        if (not_modified(request.base(), c.headers)) {
          bump(counters_.not_modified);
          CachedResponse head_only;
          head_only.status = 304;
          for (const auto& field : c.headers) {
            const auto name = field.name();
            if (name == bh::field::etag || name == bh::field::last_modified ||
                name == bh::field::cache_control || name == bh::field::expires ||
                name == bh::field::vary || name == bh::field::content_location ||
                name == bh::field::date) {
              head_only.headers.insert(name, field.value());
            }
          }
          if (!c.encoded.empty()) {
            // The validators of the variant this client gets (weak ETag, Vary).
            const EncodingHeaders eh =
                encoding_headers(c.headers, encoder_.choose(accept_encoding(request), c));
            head_only.headers.set(bh::field::vary, eh.vary);
            if (!eh.etag.empty()) head_only.headers.set(bh::field::etag, eh.etag);
          }
          head_only.stored_at = c.stored_at;
          head_only.initial_age = c.initial_age;
          co_await send_cached(r, writer, head_only, CacheStatus::hit, true);
        } else {
          co_await send_cached(r, writer, c, CacheStatus::hit, true);
        }
        finish(r);
        co_return;
      }
    }
  }

  if (request_decision.only_if_cached) {
    // RFC 9111 5.2.1.7: the client wants a stored answer or nothing.
    const GatewayError not_cached{504, "only_if_cached",
                                  "no stored answer satisfies this request (Cache-Control: "
                                  "only-if-cached)"};
    co_await send_error(r, writer, not_cached);
    finish(r);
    co_return;
  }

  // What a leader needs: its own copy of the request (it may outlive this one, serving the
  // others), the request's canonical URI, a ticket that tells it from its waiters.
  const size_t worker = writer.worker_index();
  const auto uri_of = [&request] {
    std::string_view host;
    if (auto it = request.find(bh::field::host); it != request.end()) host = it->value();
    return normalize_host(host) + canonical_target(request.target());
  };
  if (coalescable && rc.stream.coalesce) {
    // A coalesced stream of this key in progress: join it, replay first, then live.
    LiveStream live;
    {
      std::lock_guard lock(live_mu_);
      if (auto it = live_.find(key.key); it != live_.end()) live = it->second;
    }
    if (live.shared) {
      const std::optional<SharedStream::Joiner> none;  // named: no temporaries in co_await
      const std::shared_ptr<void> no_hold;
      const bool vary_ok =
          live.head->vary.empty() ||
          vary_fingerprint(live.head->vary, request.base()) == live.head->vary_fingerprint;
      if (!vary_ok) {
        bump(counters_.vary_mismatch);
      } else if (co_await join_shared(r, writer, *live.head, *live.shared, CacheStatus::coalesced,
                                      none, no_hold)) {
        finish(r);
        co_return;
      }
    }
  }
  if (!coalescable) {
    if (cacheable && !own_answer && !hit_for_miss_.get(key.key)) {
      auto up = upstream_request(request, *route.upstream, writer);
      auto ticket = std::make_shared<LeaderTicket>();
      // Coalescing is off for this route but caching is on: fetch as a leader of one, so
      // the answer is stored.
      std::string uri = uri_of();
      FetchedPtr fetched = co_await fetch_shared(&route, r.config, up, key.key, std::move(uri),
                                                 ticket, worker, cacheable, stale);
      if (!co_await answer_as_leader(r, writer, std::move(fetched))) {
        co_await pass_through(r, writer, route, rc, CacheStatus::miss);
      }
    } else {
      co_await pass_through(r, writer, route, rc, CacheStatus::bypass);
    }
    finish(r);
    co_return;
  }
  if (hit_for_miss_.get(key.key)) {
    bump(counters_.hit_for_miss_bypass);
    co_await pass_through(r, writer, route, rc, CacheStatus::bypass);
    finish(r);
    co_return;
  }

  // Coalesce: lead the call for this key, or wait for the one in flight.
  auto up = upstream_request(request, *route.upstream, writer);
  auto ticket = std::make_shared<LeaderTicket>();
  std::string uri = uri_of();
  std::shared_ptr<Coalescer> coalescer = route.coalescer.load();
  coalesce::RunOptions run_options;
  run_options.timeout = rc.waiter_timeout;
  run_options.timeout_joiners_only = true;  // a slow upstream must not make us call it twice
  auto factory = [this, route = &route, cfg = r.config, up, key = key.key, uri, ticket, worker,
                  may_store = cacheable, stale]() {
    return fetch_shared(route, cfg, up, key, uri, ticket, worker, may_store, stale);
  };
  auto result = co_await coalescer->run(key.key, std::move(factory), run_options);
  if (!result) {
    const error_code ec = result.error();
    if (ec == coalesce::CoalesceError::timeout) {
      bump(counters_.waiter_timeouts);
    } else if (ec == coalesce::CoalesceError::too_many_in_flight) {
      bump(counters_.in_flight_rejected);
    } else {
      bump(counters_.client_disconnects);
      finish(r);
      co_return;
    }
    co_await pass_through(r, writer, route, rc, CacheStatus::miss);
    finish(r);
    co_return;
  }
  FetchedPtr fetched = std::move(*result);
  if (fetched->owner == ticket.get()) {
    if (!co_await answer_as_leader(r, writer, std::move(fetched))) {
      co_await pass_through(r, writer, route, rc, CacheStatus::miss);
    }
    finish(r);
    co_return;
  }
  const bool vary_ok = fetched->response == nullptr || fetched->response->vary.empty() ||
                       vary_fingerprint(fetched->response->vary, request.base()) ==
                           fetched->response->vary_fingerprint;
  if (!fetched->shareable || !vary_ok) {
    bump(!fetched->shareable ? counters_.not_shared : counters_.vary_mismatch);
    fetched.reset();  // do not hold the leader's answer (or its live stream) while we go alone
    co_await pass_through(r, writer, route, rc, CacheStatus::miss);
    finish(r);
    co_return;
  }
  r.cache = CacheStatus::coalesced;
  if (fetched->shared) {
    // The leader's answer is a coalesced stream: join it (from its beginning).
    const std::shared_ptr<SharedStream> shared = fetched->shared;
    const ResponsePtr head = fetched->response;
    std::shared_ptr<void> hold = fetched->hold;  // kept until joined
    fetched.reset();
    const std::optional<SharedStream::Joiner> none;
    if (!co_await join_shared(r, writer, *head, *shared, CacheStatus::coalesced, none,
                              std::move(hold))) {
      bump(counters_.not_shared);
      co_await pass_through(r, writer, route, rc, CacheStatus::miss);
    }
    finish(r);
    co_return;
  }
  if (!fetched->response) {
    co_await send_error(r, writer, fetched->error);
  } else {
    co_await send_cached(r, writer, *fetched->response, CacheStatus::coalesced,
                         fetched->stale_on_error);
  }
  finish(r);
}

asio::awaitable<bool> Proxy::Impl::answer_as_leader(Request& r, http::ResponseWriter& writer,
                                                    FetchedPtr fetched) {
  r.upstream_latency = fetched->upstream_latency;
  r.cache = CacheStatus::miss;
  if (fetched->shared) {
    const std::shared_ptr<SharedStream> shared = fetched->shared;
    const ResponsePtr head = fetched->response;
    std::optional<SharedStream::Joiner> joiner = std::move(fetched->leader_joiner);
    fetched->leader_joiner.reset();
    std::shared_ptr<void> hold = fetched->hold;
    fetched.reset();  // the stream is not held for the others beyond their own joins
    co_return co_await join_shared(r, writer, *head, *shared, CacheStatus::miss, std::move(joiner),
                                   std::move(hold));
  }
  if (fetched->live && fetched->live->response) {
    co_await stream(r, writer, *fetched->live->response, fetched->response->body,
                    CacheStatus::miss);
    // Done with the upstream body on its own worker: the connection goes back to the pool
    // (or is closed) here, not wherever the last waiter drops its reference.
    fetched->live->response.reset();
  } else if (fetched->response && fetched->stale_on_error) {
    co_await send_cached(r, writer, *fetched->response, CacheStatus::hit, true);
  } else if (fetched->response) {
    co_await send_cached(r, writer, *fetched->response, CacheStatus::miss, false);
  } else {
    co_await send_error(r, writer, fetched->error);
  }
  co_return true;
}

void Proxy::Impl::finish(Request& r) {
  const Duration total = base::SteadyClock::instance().now() - r.start;
  switch (r.cache) {
    case CacheStatus::hit:
      bump(counters_.hits);
      break;
    case CacheStatus::miss:
      bump(counters_.misses);
      break;
    case CacheStatus::coalesced:
      bump(counters_.coalesced);
      break;
    case CacheStatus::bypass:
      bump(counters_.bypassed);
      break;
  }
  if (r.route != nullptr) {
    r.route->by_cache[static_cast<size_t>(r.cache)]->inc();
    if (r.status >= 100 && r.status < 600) r.route->by_class[r.status / 100 - 1]->inc();
    r.route->latency->record(total);
  }
  if (total > r.config->log.slow_request && !r.long_lived) {
    bump(counters_.slow_requests);
    if (log_enabled(LogLevel::warn)) {
      log(LogLevel::warn,
          "slow request " + std::string(r.request->method_string()) + " " +
              std::string(path_of(r.request->target())) + " status " + std::to_string(r.status) +
              " cache " + std::string(to_string(r.cache)) + " took " + format_seconds(total) +
              "s (upstream " + format_seconds(r.upstream_latency) + "s) id " + r.request_id);
    }
  }
  if (access_log_ == nullptr) return;
  store::AccessRecord record;
  record.time_unix_ns = r.start_unix_ns;
  record.route = r.route != nullptr ? r.route->name : std::string();
  record.method = std::string(r.request->method_string());
  record.path = std::string(path_of(r.request->target()));
  record.status = static_cast<int>(r.status);
  switch (r.cache) {
    case CacheStatus::hit:
      record.cache = store::CacheOutcome::hit;
      break;
    case CacheStatus::miss:
      record.cache = store::CacheOutcome::miss;
      break;
    case CacheStatus::coalesced:
      record.cache = store::CacheOutcome::coalesced;
      break;
    case CacheStatus::bypass:
      record.cache = store::CacheOutcome::bypass;
      break;
  }
  record.upstream_latency = r.upstream_latency;
  record.total_latency = total;
  record.bytes_in = r.request->target().size() + r.request->body().size();
  for (const auto& field : r.request->base()) {
    record.bytes_in += field.name_string().size() + field.value().size() + 4;
  }
  record.bytes_out = r.bytes_out;
  record.tenant_digest = std::move(r.tenant);
  record.request_id = std::move(r.request_id);
  record.upstream = r.route != nullptr ? r.route->upstream->name : std::string();
  if (!access_log_->add(std::move(record))) bump(counters_.access_log_dropped);
}

// ---------------------------------------------------------------------------------------
// Introspection

Proxy::Explanation Proxy::Impl::explain(const http::Request& request) const {
  Explanation out;
  const auto cfg = config_.load();
  const RouteRuntime* route = match(request, *cfg);
  if (route == nullptr) return out;
  const RouteConfig& rc = cfg->routes[route->index];
  out.route = route->name;
  out.key = make_key(request, route->key_policy);
  const bh::verb method = request.method();
  const bool coalescable_method = method == bh::verb::get || method == bh::verb::head ||
                                  (method == bh::verb::post && rc.coalesce_post);
  out.coalescable = coalescable_method && rc.coalesce;
  out.cacheable = coalescable_method && rc.cache && cfg->cache.enabled;
  out.cached = l1_.get(out.key.key).has_value();
  return out;
}

ProxyStats Proxy::Impl::stats() const {
  ProxyStats s;
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  s.requests = get(counters_.requests);
  s.hits = get(counters_.hits);
  s.misses = get(counters_.misses);
  s.coalesced = get(counters_.coalesced);
  s.bypassed = get(counters_.bypassed);
  s.not_modified = get(counters_.not_modified);
  s.no_route = get(counters_.no_route);
  s.rate_limited = get(counters_.rate_limited);
  s.over_limit = get(counters_.over_limit);
  s.breaker_rejected = get(counters_.breaker_rejected);
  s.upstream_requests = get(counters_.upstream_requests);
  s.upstream_errors = get(counters_.upstream_errors);
  s.upstream_timeouts = get(counters_.upstream_timeouts);
  s.upstream_aborted = get(counters_.upstream_aborted);
  s.retries = get(counters_.retries);
  s.waiter_overflow = 0;
  for (const auto& [name, cs] : coalescer_stats()) s.waiter_overflow += cs.overflow;
  s.waiter_timeouts = get(counters_.waiter_timeouts);
  s.not_shared = get(counters_.not_shared);
  s.vary_mismatch = get(counters_.vary_mismatch);
  s.in_flight_rejected = get(counters_.in_flight_rejected);
  s.hit_for_miss_marked = get(counters_.hit_for_miss_marked);
  s.hit_for_miss_bypass = get(counters_.hit_for_miss_bypass);
  s.handed_off = get(counters_.handed_off);
  s.stored = get(counters_.stored);
  s.not_stored = get(counters_.not_stored);
  s.invalidations = get(counters_.invalidations);
  s.client_disconnects = get(counters_.client_disconnects);
  s.slow_requests = get(counters_.slow_requests);
  s.access_log_dropped = get(counters_.access_log_dropped);
  s.revalidated = get(counters_.revalidated);
  s.stale_if_error = get(counters_.stale_if_error);
  const cache::CacheStats cs = l1_.stats();
  s.cache_entries = l1_.size();
  s.cache_bytes = cs.bytes;
  s.cache_evictions = cs.evictions;
  s.cache_expirations = cs.expirations;
  return s;
}

void Proxy::Impl::reset_stats() {
  auto zero = [](std::atomic<uint64_t>& c) { c.store(0, std::memory_order_relaxed); };
  for (auto* c : {&counters_.requests,
                  &counters_.hits,
                  &counters_.misses,
                  &counters_.coalesced,
                  &counters_.bypassed,
                  &counters_.not_modified,
                  &counters_.no_route,
                  &counters_.rate_limited,
                  &counters_.over_limit,
                  &counters_.breaker_rejected,
                  &counters_.upstream_requests,
                  &counters_.upstream_errors,
                  &counters_.upstream_timeouts,
                  &counters_.upstream_aborted,
                  &counters_.retries,
                  &counters_.waiter_overflow,
                  &counters_.waiter_timeouts,
                  &counters_.not_shared,
                  &counters_.vary_mismatch,
                  &counters_.in_flight_rejected,
                  &counters_.hit_for_miss_marked,
                  &counters_.hit_for_miss_bypass,
                  &counters_.handed_off,
                  &counters_.stored,
                  &counters_.not_stored,
                  &counters_.invalidations,
                  &counters_.client_disconnects,
                  &counters_.slow_requests,
                  &counters_.access_log_dropped,
                  &counters_.revalidated,
                  &counters_.stale_if_error}) {
    zero(*c);
  }
  for (auto& route : routes_) route->coalescer.load()->reset_stats();
}

std::vector<std::pair<std::string, coalesce::CoalescerStats>> Proxy::Impl::coalescer_stats() const {
  std::vector<std::pair<std::string, coalesce::CoalescerStats>> out;
  for (const auto& route : routes_) out.emplace_back(route->name, route->coalescer.load()->stats());
  return out;
}

boost::json::array Proxy::Impl::upstreams_json() const {
  boost::json::array out;
  for (const auto& up : upstreams_) {
    boost::json::object o;
    o["name"] = up->name;
    o["url"] = up->url;
    if (up->breaker) {
      const auto bs = up->breaker->stats();
      boost::json::object b;
      b["state"] = resilience::to_string(bs.state);
      b["calls_allowed"] = bs.calls_allowed;
      b["calls_rejected"] = bs.calls_rejected;
      b["failures"] = bs.failures;
      b["successes"] = bs.successes;
      b["times_opened"] = bs.times_opened;
      b["window_requests"] = bs.window_requests;
      b["window_error_rate"] = bs.window_error_rate;
      o["breaker"] = std::move(b);
    } else {
      o["breaker"] = nullptr;
    }
    if (up->limiter) {
      const auto ls = up->limiter->stats();
      boost::json::object l;
      l["policy"] = std::string(ls.policy);
      l["limit"] = ls.limit;
      l["in_flight"] = ls.in_flight;
      l["rejected"] = ls.rejected_total;
      l["min_rtt_seconds"] = std::chrono::duration<double>(ls.min_rtt).count();
      o["concurrency"] = std::move(l);
    } else {
      o["concurrency"] = nullptr;
    }
    boost::json::array workers;
    http::ClientStats total;
    for (size_t i = 0; i < up->workers; ++i) {
      http::Client* client = up->clients[i].load(std::memory_order_acquire);
      if (client == nullptr) continue;
      const http::ClientStats cs = client->stats();
      total.requests += cs.requests;
      total.connections_created += cs.connections_created;
      total.connections_reused += cs.connections_reused;
      total.stale_retries += cs.stale_retries;
      total.connect_failures += cs.connect_failures;
      total.response_timeouts += cs.response_timeouts;
      total.upstream_resets += cs.upstream_resets;
      total.pool_exhausted += cs.pool_exhausted;
      total.dns_hits += cs.dns_hits;
      total.dns_misses += cs.dns_misses;
      total.bytes_sent += cs.bytes_sent;
      total.bytes_received += cs.bytes_received;
      total.pool.active += cs.pool.active;
      total.pool.idle += cs.pool.idle;
    }
    boost::json::object pool;
    pool["requests"] = total.requests;
    pool["connections_created"] = total.connections_created;
    pool["connections_reused"] = total.connections_reused;
    const uint64_t uses = total.connections_created + total.connections_reused;
    pool["reuse_rate"] =
        uses == 0 ? 0.0 : static_cast<double>(total.connections_reused) / static_cast<double>(uses);
    pool["open"] = total.pool.active + total.pool.idle;
    pool["in_use"] = total.pool.active;
    pool["idle"] = total.pool.idle;
    pool["stale_retries"] = total.stale_retries;
    pool["connect_failures"] = total.connect_failures;
    pool["response_timeouts"] = total.response_timeouts;
    pool["upstream_resets"] = total.upstream_resets;
    pool["pool_exhausted"] = total.pool_exhausted;
    pool["dns_hits"] = total.dns_hits;
    pool["dns_misses"] = total.dns_misses;
    pool["bytes_sent"] = total.bytes_sent;
    pool["bytes_received"] = total.bytes_received;
    o["pool"] = std::move(pool);
    out.push_back(std::move(o));
  }
  return out;
}

void Proxy::Impl::cleanup_pools() {
  for (auto& up : upstreams_) {
    for (size_t i = 0; i < up->workers; ++i) {
      http::Client* client = up->clients[i].load(std::memory_order_acquire);
      if (client == nullptr) continue;
      asio::post(client->executor(), [client] { client->cleanup(); });
    }
  }
}

void Proxy::Impl::release_connections() {
  for (auto& up : upstreams_) {
    for (size_t i = 0; i < up->workers; ++i) {
      delete up->clients[i].exchange(nullptr, std::memory_order_acq_rel);
    }
  }
}

void Proxy::Impl::collect(metrics::Writer& w) const {
  const ProxyStats s = stats();
  const metrics::LabelsView none;
  auto counter = [&](std::string_view name, std::string_view help, uint64_t v) {
    w.counter(name, help, none, static_cast<double>(v));
  };
  counter("sluice_gateway_not_modified_total", "304s answered from the cache", s.not_modified);
  counter("sluice_gateway_no_route_total", "Requests no route matched (404)", s.no_route);
  counter("sluice_gateway_rate_limited_total", "Requests refused by a rate limit (429)",
          s.rate_limited);
  counter("sluice_gateway_over_limit_total",
          "Requests refused by an adaptive concurrency limit (503)", s.over_limit);
  counter("sluice_gateway_breaker_rejected_total",
          "Requests refused because an upstream's breaker was open (503)", s.breaker_rejected);
  counter("sluice_gateway_upstream_requests_total", "Attempts sent upstream, retries included",
          s.upstream_requests);
  counter("sluice_gateway_upstream_errors_total", "Upstream attempts that failed without answer",
          s.upstream_errors);
  counter("sluice_gateway_upstream_timeouts_total", "Upstream requests that timed out",
          s.upstream_timeouts);
  counter("sluice_gateway_upstream_aborted_total", "Upstream answers cut mid-body",
          s.upstream_aborted);
  counter("sluice_gateway_retries_total", "Upstream attempts after the first", s.retries);
  counter("sluice_gateway_waiter_overflow_total",
          "Requests past a key's waiter cap that went upstream alone", s.waiter_overflow);
  counter("sluice_gateway_waiter_timeouts_total",
          "Waiters past the waiter timeout that went upstream alone", s.waiter_timeouts);
  counter("sluice_gateway_not_shared_total",
          "Waiters whose leader's answer could not be shared (went upstream alone)", s.not_shared);
  counter("sluice_gateway_vary_mismatch_total", "Hits or waiters refused by Vary", s.vary_mismatch);
  counter("sluice_gateway_hit_for_miss_marked_total", "Keys remembered as uncacheable",
          s.hit_for_miss_marked);
  counter("sluice_gateway_hit_for_miss_bypass_total",
          "Requests that skipped the coalescer because their key is uncacheable",
          s.hit_for_miss_bypass);
  counter("sluice_gateway_handed_off_total",
          "Leaders that streamed an answer too large or live to share", s.handed_off);
  counter("sluice_gateway_cache_stored_total", "Answers stored in the L1 cache", s.stored);
  counter("sluice_gateway_cache_not_stored_total", "Answers RFC 9111 did not let us store",
          s.not_stored);
  counter("sluice_gateway_invalidations_total", "URIs invalidated by unsafe methods",
          s.invalidations);
  counter("sluice_gateway_revalidated_total",
          "Stale answers revalidated upstream with a 304 (served from the stored body)",
          s.revalidated);
  counter("sluice_gateway_stale_if_error_total",
          "Stored answers served past their freshness because the upstream failed "
          "(stale-if-error)",
          s.stale_if_error);
  counter("sluice_gateway_client_disconnects_total", "Clients gone before their answer was written",
          s.client_disconnects);
  counter("sluice_gateway_slow_requests_total", "Requests slower than log.slow_request",
          s.slow_requests);
  counter("sluice_gateway_access_log_dropped_total",
          "Access records refused by a full access-log queue", s.access_log_dropped);
  w.gauge("sluice_cache_entries", "Entries in the L1 cache", none,
          static_cast<double>(s.cache_entries));
  w.gauge("sluice_cache_bytes", "Bytes charged to the L1 cache", none,
          static_cast<double>(s.cache_bytes));
  counter("sluice_cache_evictions_total", "L1 entries evicted at the bound", s.cache_evictions);
  counter("sluice_cache_expirations_total", "L1 entries expired", s.cache_expirations);

  for (const auto& [coding, value] :
       {std::pair{"gzip", &counters_.encoded_gzip}, std::pair{"zstd", &counters_.encoded_zstd}}) {
    const std::array<metrics::Label, 1> label{metrics::Label{"coding", coding}};
    w.counter("sluice_gateway_compressed_total", "Answers sent compressed, by coding",
              std::span<const metrics::Label>(label.data(), label.size()),
              static_cast<double>(value->load(std::memory_order_relaxed)));
  }
  counter("sluice_gateway_compression_stored_runs_total",
          "Stored answers compressed (once per coding, when stored)",
          counters_.encode_runs.load(std::memory_order_relaxed));
  counter("sluice_gateway_compression_in_bytes_total", "Body bytes before compression",
          counters_.encoded_bytes_in.load(std::memory_order_relaxed));
  counter("sluice_gateway_compression_out_bytes_total", "Body bytes after compression",
          counters_.encoded_bytes_out.load(std::memory_order_relaxed));
  if (broadcast_) broadcast_->collect(w);
  const StreamTotals st = streams_.totals();
  w.gauge("sluice_gateway_streams_active", "Streamed answers in progress", none,
          static_cast<double>(streams_.active()));
  counter("sluice_gateway_streams_started_total", "Streamed answers started", st.started);
  for (size_t i = 0; i < kStreamOutcomeCount; ++i) {
    const std::array<metrics::Label, 1> label{
        metrics::Label{"outcome", to_string(static_cast<StreamOutcome>(i))}};
    w.counter("sluice_gateway_streams_ended_total", "Streamed answers ended, by how they ended",
              std::span<const metrics::Label>(label.data(), label.size()),
              static_cast<double>(st.ended[i]));
  }
  counter("sluice_gateway_stream_events_total", "SSE events forwarded to clients", st.events);
  counter("sluice_gateway_stream_client_bytes_total", "Streamed bytes accepted by clients",
          st.client_bytes);
  w.counter("sluice_gateway_stream_throttled_seconds_total",
            "Time streams spent THROTTLED or BLOCKED behind a slow client", none,
            static_cast<double>(st.throttled_ns) / 1e9);
  w.gauge("sluice_gateway_stream_buffer_high_water_bytes",
          "Most bytes any stream buffered for one client", none,
          static_cast<double>(st.max_buffered_bytes));
  const SharedStreamTotals shared = streams_.shared_totals();
  w.gauge("sluice_gateway_shared_streams_active",
          "Coalesced streams whose upstream body is being read", none,
          static_cast<double>(shared.active));
  counter("sluice_gateway_shared_streams_started_total",
          "Upstream streams shared by identical requests", shared.started);
  for (const auto& [outcome, value] :
       {std::pair{"completed", shared.completed}, std::pair{"failed", shared.failed},
        std::pair{"abandoned", shared.abandoned}}) {
    const std::array<metrics::Label, 1> label{metrics::Label{"outcome", outcome}};
    w.counter("sluice_gateway_shared_streams_ended_total",
              "Coalesced streams ended, by how their upstream body ended",
              std::span<const metrics::Label>(label.data(), label.size()),
              static_cast<double>(value));
  }
  counter("sluice_gateway_shared_stream_joins_total",
          "Clients served by a coalesced stream (leaders included)", shared.joins);
  counter("sluice_gateway_shared_stream_late_joins_total",
          "Clients that joined a coalesced stream after bytes had been streamed",
          shared.late_joins);
  counter("sluice_gateway_shared_stream_replayed_bytes_total",
          "Bytes replayed from coalesced streams' histories to late joiners",
          shared.replayed_bytes);
  counter("sluice_gateway_shared_stream_slow_joiners_total",
          "Joiners of a coalesced stream ended at their buffer's bound", shared.slow_joiners);
  counter("sluice_gateway_shared_streams_stored_total",
          "Completed coalesced streams stored in the cache", shared.stored);
  w.gauge("sluice_gateway_shared_stream_history_bytes",
          "Bytes held in coalesced streams' histories (for late joiners and the cache)", none,
          static_cast<double>(shared.history_bytes));
  counter("sluice_gateway_shared_stream_upstream_bytes_total",
          "Body bytes read from upstreams for coalesced streams",
          shared_upstream_bytes_.load(std::memory_order_relaxed));
  counter("sluice_gateway_shared_stream_events_total",
          "SSE events read from upstreams for coalesced streams",
          shared_events_.load(std::memory_order_relaxed));

  for (const auto& [route, cs] : coalescer_stats()) {
    // An array, not a braced list: a LabelsView views its labels, and a braced list's array
    // would be gone after this statement.
    const std::array<metrics::Label, 1> label{metrics::Label{"route", route}};
    const metrics::LabelsView labels(std::span<const metrics::Label>(label.data(), label.size()));
    w.counter("sluice_coalesce_leaders_total", "Upstream calls led by a request", labels,
              static_cast<double>(cs.leaders));
    w.counter("sluice_coalesce_joined_total", "Requests that joined a call in flight", labels,
              static_cast<double>(cs.coalesced));
    w.counter("sluice_coalesce_overflow_total", "Requests past the waiter cap", labels,
              static_cast<double>(cs.overflow));
    w.counter("sluice_coalesce_timed_out_total", "Waiters past the waiter timeout", labels,
              static_cast<double>(cs.timed_out));
    w.counter("sluice_coalesce_cancelled_total", "Waiters whose client went away", labels,
              static_cast<double>(cs.cancelled));
    w.gauge("sluice_coalesce_in_flight", "Keys with an upstream call in flight", labels,
            static_cast<double>(cs.in_flight));
    w.counter("sluice_coalesce_wait_seconds_total", "Total time joiners waited", labels,
              std::chrono::duration<double>(cs.total_wait).count());
  }
  for (const auto& up : upstreams_) {
    const std::array<metrics::Label, 1> label{metrics::Label{"upstream", up->name}};
    const metrics::LabelsView labels(std::span<const metrics::Label>(label.data(), label.size()));
    http::ClientStats total;
    for (size_t i = 0; i < up->workers; ++i) {
      http::Client* client = up->clients[i].load(std::memory_order_acquire);
      if (client == nullptr) continue;
      const http::ClientStats cs = client->stats();
      total.connections_created += cs.connections_created;
      total.connections_reused += cs.connections_reused;
      total.pool.active += cs.pool.active;
      total.pool.idle += cs.pool.idle;
    }
    w.counter("sluice_pool_connections_created_total", "Upstream connections opened", labels,
              static_cast<double>(total.connections_created));
    w.counter("sluice_pool_connections_reused_total", "Requests sent on a reused connection",
              labels, static_cast<double>(total.connections_reused));
    w.gauge("sluice_pool_connections_open", "Upstream connections open", labels,
            static_cast<double>(total.pool.active + total.pool.idle));
    w.gauge("sluice_pool_connections_idle", "Upstream connections idle in the pool", labels,
            static_cast<double>(total.pool.idle));
    if (up->breaker) {
      const auto bs = up->breaker->stats();
      w.gauge("sluice_breaker_open", "1 when the upstream's breaker is open", labels,
              bs.state == resilience::BreakerState::open ? 1.0 : 0.0);
      w.counter("sluice_breaker_opened_total", "Times the upstream's breaker opened", labels,
                static_cast<double>(bs.times_opened));
    }
    if (up->limiter) {
      const auto ls = up->limiter->stats();
      w.gauge("sluice_concurrency_limit", "Adaptive concurrency limit of the upstream", labels,
              static_cast<double>(ls.limit));
      w.gauge("sluice_concurrency_in_flight", "Requests in flight to the upstream", labels,
              static_cast<double>(ls.in_flight));
    }
  }
}

// ---------------------------------------------------------------------------------------

Proxy::Proxy(std::shared_ptr<const Config> config, size_t workers, AccessLog* access_log,
             metrics::Registry& registry)
    : impl_(std::make_shared<Impl>(std::move(config), workers, access_log, registry)) {}

Proxy::~Proxy() { impl_->release_connections(); }

asio::awaitable<void> Proxy::handle(http::Request& request, http::ResponseWriter& writer) {
  return impl_->handle(request, writer);
}

std::shared_ptr<const Config> Proxy::config() const { return impl_->config(); }
void Proxy::set_config(std::shared_ptr<const Config> config) {
  impl_->set_config(std::move(config));
}
Proxy::Explanation Proxy::explain(const http::Request& request) const {
  return impl_->explain(request);
}
void Proxy::clear_cache() { impl_->clear_cache(); }
void Proxy::sweep() { impl_->sweep(); }
void Proxy::reset_stats() { impl_->reset_stats(); }
ProxyStats Proxy::stats() const { return impl_->stats(); }
boost::json::object Proxy::streams_json(size_t limit) const {
  return impl_->streams().to_json(limit);
}

std::optional<boost::json::object> Proxy::broadcast_json(size_t limit) const {
  if (impl_->broadcast() == nullptr) return std::nullopt;
  return impl_->broadcast()->to_json(limit);
}

void Proxy::sweep_broadcast() {
  if (impl_->broadcast() != nullptr) impl_->broadcast()->sweep();
}

void Proxy::heartbeat_broadcast() {
  if (impl_->broadcast() != nullptr) impl_->broadcast()->heartbeat();
}

void Proxy::shutdown_broadcast() {
  if (impl_->broadcast() != nullptr) impl_->broadcast()->shutdown();
}

std::vector<std::pair<std::string, coalesce::CoalescerStats>> Proxy::coalescer_stats() const {
  return impl_->coalescer_stats();
}
boost::json::array Proxy::upstreams_json() const { return impl_->upstreams_json(); }
void Proxy::cleanup_pools() { impl_->cleanup_pools(); }
void Proxy::release_connections() { impl_->release_connections(); }

}  // namespace sluice::gateway
