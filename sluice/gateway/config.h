// The configuration model of the sluice gateway: plain structs with safe defaults, one parse
// function per source (a TOML file, the quick-start flags of `sluice serve`), environment
// overrides, the JSON view served at GET /admin/config and the run-time patch of PUT
// /admin/config.
//
// Thread-safety: every function here is pure apart from `load_config_file` (reads one file)
// and `process_environment` (reads the process environment); a `Config` is a value, safe to
// share read-only between threads. Callers that change knobs at run time swap whole `Config`
// values (the result of `apply_runtime_patch`), they never mutate a shared one.
//
// Errors are values (`ConfigResult`), never exceptions: a `ConfigError` names the file, the
// line (toml++ source regions), the dotted key or the environment variable / flag, and says
// what was expected and what was found. Validation is complete before a `Config` is returned:
// a returned `Config` has at least one upstream and one route, every route names an existing
// upstream, and every value is within its documented range (docs/configuration.md).
//
// Precedence, lowest first: built-in defaults, the TOML file (or the quick-start flags), the
// environment (`SLUICE_<SECTION>_<KEY>`, `SLUICE_UPSTREAM_<NAME>_<KEY>`,
// `SLUICE_ROUTE_<NAME>_<KEY>`), flags given explicitly on the command line (`apply_flags`),
// and at run time `apply_runtime_patch`.
//
// Routes are matched in the order they are given: the first route whose host (if any),
// methods (if any) and path prefix match a request wins. Put specific prefixes first.
#pragma once

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::gateway {

// For the defaults below ("10s", "50ms"); scoped to this namespace.
using namespace std::chrono_literals;

// Binary size units for the defaults below.
inline constexpr size_t kKiB = 1024;
inline constexpr size_t kMiB = 1024 * kKiB;

// [server]: the process as a whole. Fixed at start.
struct ServerConfig {
  // Worker threads running the event loops; 0 = one per core.
  size_t workers = 0;
  // Directory for the access log database and other local state; created if missing.
  std::string data_dir = "./sluice-data";
  // On SIGTERM/SIGINT, how long in-flight requests may take to finish before they are cut.
  Duration drain_timeout = 10s;
};

// [listener]: the client-facing HTTP listener. Fixed at start.
struct ListenerConfig {
  // IP address to bind ("127.0.0.1", "0.0.0.0", "::1") or "localhost".
  std::string address = "127.0.0.1";
  // TCP port; 0 = any free port (reported in the ready file).
  uint16_t port = 8080;
  // Open client connections at most; further accepts wait until one closes.
  size_t max_connections = 10000;
  // Request line plus headers at most; larger requests get 431.
  size_t max_header_bytes = 16 * kKiB;
  // Request body at most; larger bodies get 413.
  size_t max_body_bytes = 8 * kMiB;
  // Time to receive the complete request head once a request has started.
  Duration header_timeout = 10s;
  // Keep-alive connection with no request in progress is closed after this.
  Duration idle_timeout = 60s;
  // Time to receive the complete request body.
  Duration body_timeout = 30s;
  // Time for the client to accept one write of the response.
  Duration write_timeout = 30s;
};

// upstream.breaker: the circuit breaker in front of one upstream. Fixed at start.
struct BreakerConfig {
  // false = never trip.
  bool enabled = true;
  // Trip when the failure ratio in `window` reaches this (with at least `min_requests`).
  double failure_rate = 0.5;
  // Calls in the window before `failure_rate` is considered.
  size_t min_requests = 20;
  // Trip after this many failures in a row; 0 = this trigger is off.
  size_t consecutive_failures = 5;
  // Length of the sliding window over which the failure rate is measured.
  Duration window = 10s;
  // Time spent open (failing fast with 503) before probing.
  Duration open_for = 5s;
  // Probe calls admitted while half-open; all must succeed to close.
  size_t half_open_probes = 3;
};

// upstream.concurrency: the adaptive concurrency limit for one upstream. Fixed at start.
struct ConcurrencyConfig {
  // false = only `max_connections` bounds concurrency.
  bool enabled = false;
  // "gradient" (latency gradient, Netflix style) or "aimd" (additive increase, multiplicative
  // decrease on failure or timeout).
  std::string policy = "gradient";
  // Limit at start.
  size_t initial = 100;
  // The limit never goes below this.
  size_t min = 4;
  // The limit never goes above this.
  size_t max = 1000;
};

// [[upstream]]: one service the gateway forwards to. Fixed at start.
struct UpstreamConfig {
  // Unique name, [A-Za-z0-9_-]+, used by routes and in metrics; "default" when omitted and
  // there is exactly one upstream.
  std::string name;
  // "http://host[:port]" or "https://host[:port]"; no path, query, fragment or user info.
  std::string url;
  // Derived from `url` by validation: true for https.
  bool tls = false;
  // Derived from `url` by validation: the host name or IP literal (without brackets).
  std::string host;
  // Derived from `url` by validation: the explicit port, or 80 / 443 by scheme.
  uint16_t port = 0;
  // Time to establish a TCP (and TLS) connection.
  Duration connect_timeout = 5s;
  // Time from the end of the request to the response head.
  Duration response_timeout = 60s;
  // Longest silence between two reads of the response body (streams stay open while data flows).
  Duration read_timeout = 60s;
  // Pooled connections to this upstream at most (all hosts).
  size_t max_connections = 256;
  // Pooled connections to one resolved host at most.
  size_t max_connections_per_host = 256;
  // An idle pooled connection is closed after this.
  Duration max_idle_time = 60s;
  // A pooled connection is retired after this age, idle or not.
  Duration max_age = 300s;
  // Pool health: a host whose recent error ratio exceeds this is reported unhealthy.
  double max_error_rate = 0.5;
  // Verify the server certificate and host name (https only).
  bool tls_verify = true;
  // PEM bundle of trusted CAs; empty = the system store.
  std::string ca_file;
  // Resolved addresses are reused for this long; 0 = resolve on every new connection.
  Duration dns_ttl = 30s;
  // The circuit breaker.
  BreakerConfig breaker;
  // The adaptive concurrency limit.
  ConcurrencyConfig concurrency;
};

// route.retry: retries of failed upstream calls for one route. Fixed at start.
struct RetryConfig {
  // Total attempts including the first; 1 = no retry.
  size_t max_attempts = 2;
  // Backoff before the first retry.
  Duration initial_backoff = 50ms;
  // Backoff never exceeds this.
  Duration max_backoff = 1s;
  // "full", "equal", "decorrelated" or "none".
  std::string jitter = "full";
  // Also retry methods that are not idempotent (POST, PATCH).
  bool non_idempotent = false;
  // Upstream statuses that are retried (connection failures and timeouts always are).
  std::vector<int> on_status = {502, 503, 504};
  // Retries at most this fraction of requests (a retry budget); 0 = no retries are admitted.
  double budget_ratio = 0.2;
};

// route.rate_limit: a token bucket per key for one route. `enabled`, `rate` and `burst`
// change at run time.
struct RateLimitConfig {
  // false = no limit.
  bool enabled = false;
  // Tokens added per second.
  double rate = 100;
  // Bucket size: requests allowed in a burst.
  double burst = 200;
  // What a bucket belongs to: "tenant" (credential digest), "ip" (client address) or
  // "route" (one bucket for the route).
  std::string key = "tenant";
};

// route.stream: how an answer that is streamed (an event stream, a chunked body, a body over
// 64 KiB) reaches each client: through a buffer of its own, bounded in chunks and bytes.
// Fixed at start.
struct StreamConfig {
  // Chunks (SSE: groups of whole events) buffered per client at most.
  size_t buffer_chunks = 64;
  // Bytes buffered per client at most.
  size_t buffer_bytes = 64 * kKiB;
  // At the bound: "block" stops reading the upstream until the client catches up (TCP
  // backpressure to the upstream), "disconnect" closes the slow client's connection,
  // "drop_oldest" discards the client's oldest buffered chunks (whole events for an event
  // stream). A joiner of a shared stream is never blocked on: "block" disconnects it.
  std::string slow_client = "block";
  // Longest silence of the upstream in the middle of a streamed body; then the stream ends (an
  // event stream with `event: error`, another body cut). Replaces the upstream's read_timeout
  // for streamed bodies.
  Duration stall_timeout = 30s;
  // Identical requests share one upstream stream (an event stream or a body of unknown
  // length that the coalescer cannot hand over whole): a late joiner first gets what was
  // streamed so far (kept up to `cache.max_object_bytes`), then the live stream. Needs an
  // answer the cache rules let requests share (as for any coalesced answer).
  bool coalesce = false;
  // A shared stream that completed within `cache.max_object_bytes` is stored for the
  // route's TTL (as RFC 9111 allows) and replayed as the same body; a failed one never is.
  bool cache = false;
};

// [[route]]: which requests go to which upstream, and how they are cached and coalesced.
// The knobs marked "run time" change through PUT /admin/config.
struct RouteConfig {
  // Unique name, [A-Za-z0-9_-]+.
  std::string name;
  // Requests whose path starts with this match; must start with '/'.
  std::string path_prefix = "/";
  // Methods that match (upper-cased); empty = any.
  std::vector<std::string> methods;
  // Host header that matches (lower-cased, without port); empty = any.
  std::string host;
  // Name of the upstream; may be omitted when there is exactly one upstream.
  std::string upstream;
  // Identical concurrent requests share one upstream call (run time).
  bool coalesce = true;
  // Also coalesce POST requests with identical bodies (for idempotent APIs such as LLM
  // completions at temperature 0).
  bool coalesce_post = false;
  // Store and serve responses from the cache (run time).
  bool cache = true;
  // Freshness when the upstream gives none (run time).
  Duration cache_ttl = 60s;
  // Freshness never exceeds this, whatever the upstream says (run time).
  Duration max_ttl = 24h;
  // true = the key omits the credentials digest: one answer is shared by all callers.
  bool public_answers = false;
  // Request headers (lower-cased) that are part of the cache key.
  std::vector<std::string> key_headers;
  // The query string is part of the cache key.
  bool key_query = true;
  // Cache 5xx answers for `error_ttl` (negative caching).
  bool cache_errors = false;
  // Freshness of cached errors (run time).
  Duration error_ttl = 5s;
  // Requests waiting on one coalesced call at most; beyond it they go upstream themselves;
  // 0 = unbounded (run time).
  size_t max_waiters = 10000;
  // A waiter gives up after this and gets 504 (run time).
  Duration waiter_timeout = 30s;
  // After an uncacheable answer, identical requests skip coalescing for this long (run time).
  Duration hit_for_miss_ttl = 30s;
  // Retries.
  RetryConfig retry;
  // Rate limit.
  RateLimitConfig rate_limit;
  // Streamed answers.
  StreamConfig stream;
};

// [cache]: the shared response cache. `max_object_bytes` changes at run time.
struct CacheConfig {
  // false = no route caches, whatever its `cache` says.
  bool enabled = true;
  // Entries at most; the least recently used is evicted.
  size_t max_entries = 100000;
  // Bytes of cached responses at most; the least recently used are evicted.
  size_t max_bytes = 256 * kMiB;
  // Responses larger than this are not stored (run time).
  size_t max_object_bytes = 8 * kMiB;
  // Request headers (lower-cased) whose digest keys private answers.
  std::vector<std::string> credential_headers = {"authorization", "x-api-key", "api-key"};
  // Add the X-Sluice-Key response header (the cache key), for debugging.
  bool debug_header = false;
};

// [log]: access and diagnostic logging. `level` and `slow_request` change at run time.
struct LogConfig {
  // "sqlite" (<data_dir>/access.db) or "off".
  std::string access = "sqlite";
  // "debug", "info", "warn" or "error" (run time).
  std::string level = "info";
  // Requests slower than this are logged at warn; 0 = off (run time).
  Duration slow_request = 1s;
  // Access log rows written per transaction.
  size_t batch_size = 500;
  // A partial batch is written after this.
  Duration flush_interval = 1s;
  // Rows waiting to be written at most; beyond it rows are dropped and counted.
  size_t queue_capacity = 100000;
};

// [admin]: the admin API. Fixed at start.
struct AdminConfig {
  // false = no admin listener.
  bool enabled = true;
  // IP address to bind; a non-loopback address requires `token`.
  std::string address = "127.0.0.1";
  // TCP port; 0 = any free port.
  uint16_t port = 9901;
  // Bearer token required on every admin request; empty = none (loopback only).
  std::string token;
};

// [compression]: answers compressed for clients that accept it (Accept-Encoding). Fixed at
// start.
struct CompressionConfig {
  // false = bodies go out as the upstream sent them.
  bool enabled = true;
  // Bodies smaller than this are not compressed (streams of unknown length always are).
  size_t min_bytes = 1 * kKiB;
  // Codings offered, preferred first, among "zstd" and "gzip"; a client's q-values win, the
  // order breaks ties. Event streams offer gzip first (smaller with a flush per event).
  std::vector<std::string> codings = {"zstd", "gzip"};
  // gzip level, 1 (fastest) to 9.
  size_t gzip_level = 5;
  // zstd level, 1 (fastest) to 19.
  size_t zstd_level = 3;
};

// [broadcast]: the SSE broadcaster (publish/subscribe on channels). Fixed at start.
struct BroadcastConfig {
  // false = no broadcaster; `--broadcast-prefix` turns it on.
  bool enabled = false;
  // Paths under this prefix are channels: POST {prefix}{channel} publishes, GET subscribes.
  // Must start and end with '/'. Checked before the routes.
  std::string prefix = "/events/";
  // Channels at most; publishing or subscribing to a new one past it gets 503.
  size_t max_channels = 10000;
  // Subscribers of one channel at most; past it a subscribe gets 503.
  size_t max_subscribers = 10000;
  // Events a channel keeps for Last-Event-ID replay, at most.
  size_t max_history = 500;
  // Bytes of events a channel keeps, at most.
  size_t max_history_bytes = 1 * kMiB;
  // Events older than this are not replayed and are removed; 0 = no expiry.
  Duration event_ttl = 300s;
  // A channel without subscribers is removed this long after it went idle.
  Duration channel_ttl = 1800s;
  // Events queued for one subscriber at most.
  size_t queue_events = 1000;
  // Bytes queued for one subscriber at most.
  size_t queue_bytes = 1 * kMiB;
  // At a subscriber's bound: "disconnect" closes it (it reconnects with Last-Event-ID),
  // "drop_oldest" drops its oldest queued events.
  std::string slow_client = "disconnect";
  // Largest event data accepted; larger publishes get 413.
  size_t max_event_bytes = 64 * kKiB;
  // A comment line goes to idle subscribers this often; a subscriber found gone is removed.
  Duration heartbeat_interval = 15s;
  // How often expired events, dead subscribers and idle channels are cleaned.
  Duration cleanup_interval = 10s;
  // Bearer token publishers must present; empty = only loopback clients may publish.
  std::string publish_token;
  // Subscriber auth delegated to an upstream: the name of the upstream ("" = no check) ...
  std::string auth_upstream;
  // ... and the path of the check request (GET, with the subscriber's Authorization, Cookie
  // and X-Api-Key headers and `X-Sluice-Channel`); a 2xx answer admits the subscriber, any
  // other status is returned to it.
  std::string auth_path = "/auth/subscribe";
};

// The whole gateway configuration.
struct Config {
  // Where it came from: the file path, or "flags".
  std::string source;
  // [server]: threads, data directory, drain.
  ServerConfig server;
  // [listener]: the client-facing listener and its limits.
  ListenerConfig listener;
  // [[upstream]]: at least one, unique names.
  std::vector<UpstreamConfig> upstreams;
  // [[route]]: at least one, unique names, matched in order.
  std::vector<RouteConfig> routes;
  // [cache]: the shared response cache.
  CacheConfig cache;
  // [log]: access log and log level.
  LogConfig log;
  // [admin]: the admin API.
  AdminConfig admin;
  // [compression]: gzip / zstd for clients that accept it.
  CompressionConfig compression;
  // [broadcast]: the SSE broadcaster.
  BroadcastConfig broadcast;

  // The upstream or route with this name, or nullptr.
  [[nodiscard]] const UpstreamConfig* find_upstream(std::string_view name) const;
  [[nodiscard]] const RouteConfig* find_route(std::string_view name) const;
};

// What is wrong, and where.
struct ConfigError {
  // The file, "env", "flags" or "PUT /admin/config".
  std::string file;
  // 1-based line in `file`; 0 = unknown or not a file.
  size_t line = 0;
  // Dotted path ("route.chat.cache_ttl"), environment variable or flag ("--upstream");
  // empty when the error is about the whole file (a TOML syntax error).
  std::string key;
  // What was expected and what was found.
  std::string reason;

  // "sluice.toml:12: route.chat.cache_ttl: expected a duration such as \"30s\", found 12";
  // the line and key parts are left out when unknown.
  [[nodiscard]] std::string to_string() const;
};

// Lets `ConfigResult::value()` throw (std::runtime_error carrying `to_string()`).
[[noreturn]] void throw_exception_from_error(const ConfigError& error,
                                             const boost::source_location& loc);

using ConfigResult = boost::system::result<Config, ConfigError>;

// Looks up one environment variable; nullopt when unset. Tests pass a map.
using Environment = std::function<std::optional<std::string>(std::string_view name)>;

// The process environment (getenv).
[[nodiscard]] Environment process_environment();

// Reads, parses and validates a TOML file, then applies `env` overrides. Errors name `path`.
[[nodiscard]] ConfigResult load_config_file(const std::string& path, const Environment& env);

// As `load_config_file`, from text; `source_name` is used in errors and as `Config::source`.
[[nodiscard]] ConfigResult parse_config(std::string_view toml_text, std::string_view source_name,
                                        const Environment& env);

// The flags of `sluice serve` that describe a gateway without a config file.
struct QuickStart {
  // --listen ADDR:PORT ("[::1]:8080" for IPv6).
  std::string listen = "127.0.0.1:8080";
  // --upstream URL (required without --config).
  std::string upstream;
  // --admin ADDR:PORT.
  std::string admin = "127.0.0.1:9901";
  // false with --no-admin.
  bool admin_enabled = true;
  // --cache-ttl: every route's `cache_ttl`.
  Duration cache_ttl = 60s;
  // --coalesce-post: every route's `coalesce_post`.
  bool coalesce_post = false;
  // --coalesce-streams: every route's `stream.coalesce` and `stream.cache`.
  bool coalesce_streams = false;
  // --workers N.
  size_t workers = 0;
  // --data-dir DIR.
  std::string data_dir = "./sluice-data";
  // --access-log sqlite|off.
  std::string access_log = "sqlite";
  // --log-level debug|info|warn|error.
  std::string log_level = "info";
  // --broadcast-prefix /events/: turns the SSE broadcaster on under this prefix.
  std::string broadcast_prefix;
};

// One upstream "default" and one route "default" (prefix "/") with safe defaults, then `env`
// overrides; errors name the flag ("--upstream"). `Config::source` is "flags".
[[nodiscard]] ConfigResult config_from_flags(const QuickStart& flags, const Environment& env);

// Applies flags given on the command line on top of a file config (a flag given explicitly
// wins over the file and the environment). `given` lists the flags given, by name without
// dashes: "listen", "upstream", "admin", "no-admin", "cache-ttl", "coalesce-post", "workers",
// "data-dir", "access-log", "log-level", "broadcast-prefix"; other names are ignored. "upstream"
// replaces the url of the only upstream (an error when the file has several); "cache-ttl" and
// "coalesce-post" apply to every route. The result is validated again.
[[nodiscard]] ConfigResult apply_flags(const Config& file_config, const QuickStart& flags,
                                       const std::vector<std::string>& given);

// GET /admin/config: the whole config as JSON, the admin token redacted ("<redacted>").
// Durations are strings ("30s", "250ms"), sizes are numbers of bytes; the object has the
// layout of the TOML file ("upstream" and "route" are arrays).
[[nodiscard]] boost::json::object to_json(const Config& config);

// PUT /admin/config: a JSON object of run-time knobs, validated as a whole before anything
// changes; on success returns the new config. Keys are dotted paths, flat
// ({"route.chat.cache_ttl": "30s"}) or nested ({"route": {"chat": {"cache_ttl": "30s"}}}).
// Knobs: cache.max_object_bytes, log.level, log.slow_request,
// route.<name>.{cache_ttl,max_ttl,error_ttl,max_waiters,waiter_timeout,hit_for_miss_ttl,
// coalesce,cache}, route.<name>.rate_limit.{rate,burst,enabled}. Any other key is refused with
// a reason naming it. Errors have file "PUT /admin/config".
[[nodiscard]] ConfigResult apply_runtime_patch(const Config& current,
                                               const boost::json::value& patch);

// One documented key, for docs/configuration.md and `--help` texts.
struct KeyInfo {
  // Dotted path; named entries use "<name>": "route.<name>.retry.max_attempts".
  std::string key;
  // "bool", "integer", "size", "duration", "float", "string", "port", "string list",
  // "integer list".
  std::string type;
  // The default, as it would be written in TOML ("" for none).
  std::string default_value;
  // The environment variable ("SLUICE_ROUTE_<NAME>_RETRY_MAX_ATTEMPTS").
  std::string env;
  // Changes at run time through PUT /admin/config.
  bool runtime = false;
  // Allowed range or values ("1..10", "gradient|aimd"), "" when any.
  std::string range;
};

// Every key of the file, in file order.
[[nodiscard]] std::vector<KeyInfo> config_keys();

}  // namespace sluice::gateway
