// `Proxy`: the gateway's request pipeline, as the handler of the public `http::Server`.
//
//   route -> admission (rate limit) -> key -> L1 cache -> hit-for-miss table
//         -> coalescer (join the call in flight, or lead it) -> breaker -> limiter
//         -> retry/backoff -> pooled upstream connection (one `http::Client` per worker)
//         -> store if RFC 9111 allows -> answer the leader and every waiter -> access record
//
// What a user relies on (docs/design/gateway.md, docs/configuration.md):
// - GET/HEAD are coalesced and cached; POST only on routes that opt in (`coalesce_post`),
//   with the body digest over canonical JSON in the key. The key carries a digest of the
//   credentials unless the route declares its answers public: tenants never share answers.
// - A stale stored answer that has a validator (ETag, Last-Modified) is revalidated with a
//   conditional request (If-None-Match / If-Modified-Since) by one leader; a 304 refreshes
//   it and every waiter gets the stored body.
// - `no-store`, `private` and `Set-Cookie` answers are never stored nor handed to waiters:
//   waiters of such a call go upstream on their own, and the key is remembered for
//   `hit_for_miss_ttl` so its requests skip the coalescer instead of queueing.
// - Waiters resume the moment the leader's answer arrives (no polling). Past the route's
//   `max_waiters` or `waiter_timeout` a request goes upstream on its own (counted).
// - The leader's upstream call runs detached: a client that disconnects does not cancel it.
// - Answers the leader cannot share whole (event streams, bodies over `max_object_bytes`)
//   are streamed to the leader's client chunk by chunk, through a bounded buffer per client
//   (streaming.h); its waiters go upstream themselves.
// - Upstream failures become 502 (unreachable, reset), 504 (timeout) or 503 (breaker open,
//   concurrency limit) with a JSON body {"error","reason"}; 429 past a rate limit. A stored
//   answer whose stale-if-error window is open serves instead (X-Cache: HIT).
// - Headers `X-Cache: HIT|MISS|COALESCED|BYPASS` and `X-Process-Time` on every answer.
//
// Thread-safety: `handle` runs concurrently on every worker; the other members are safe
// from any thread (the admin API calls them). Lifetime: outlives the servers whose handler
// it is; call `release_connections()` after their workers stopped and before they are
// destroyed (the upstream sockets belong to the workers' event loops).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/coalesce/coalescer_options.h"
#include "sluice/gateway/access_log.h"
#include "sluice/gateway/cache_key.h"
#include "sluice/gateway/config.h"
#include "sluice/http/server.h"
#include "sluice/metrics/registry.h"

namespace sluice::gateway {

// How the cache took part in one answer (the X-Cache header).
enum class CacheStatus : uint8_t {
  hit,        // served from the L1 cache
  miss,       // this request called the upstream (as leader, or alone)
  coalesced,  // joined another request's upstream call
  bypass,     // not eligible for coalescing or caching (method, route, hit-for-miss)
};
[[nodiscard]] std::string_view to_string(CacheStatus status) noexcept;

// Counters since start (or the last reset); gauges where noted.
struct ProxyStats {
  uint64_t requests = 0;             // requests handled
  uint64_t hits = 0;                 // X-Cache: HIT
  uint64_t misses = 0;               // X-Cache: MISS
  uint64_t coalesced = 0;            // X-Cache: COALESCED
  uint64_t bypassed = 0;             // X-Cache: BYPASS
  uint64_t not_modified = 0;         // 304 answered from the cache to a conditional request
  uint64_t no_route = 0;             // 404: no route matched
  uint64_t rate_limited = 0;         // 429 from a route's rate limit
  uint64_t over_limit = 0;           // 503 from an upstream's adaptive concurrency limit
  uint64_t breaker_rejected = 0;     // 503 because an upstream's breaker was open
  uint64_t upstream_requests = 0;    // attempts sent upstream (retries included)
  uint64_t upstream_errors = 0;      // attempts that failed without an answer
  uint64_t upstream_timeouts = 0;    // of which timeouts (504)
  uint64_t upstream_aborted = 0;     // answers cut by the upstream mid-body
  uint64_t retries = 0;              // attempts after the first
  uint64_t waiter_overflow = 0;      // past `max_waiters`: went upstream alone
  uint64_t waiter_timeouts = 0;      // past `waiter_timeout`: went upstream alone
  uint64_t not_shared = 0;           // waiters whose leader's answer could not be shared
  uint64_t vary_mismatch = 0;        // waiters or hits whose Vary headers differed
  uint64_t in_flight_rejected = 0;   // too many keys in flight: went upstream alone
  uint64_t hit_for_miss_marked = 0;  // keys remembered as uncacheable
  uint64_t hit_for_miss_bypass = 0;  // requests that skipped the coalescer for that reason
  uint64_t handed_off = 0;           // leaders that streamed an answer they could not share
  uint64_t stored = 0;               // answers stored in the L1 cache
  uint64_t not_stored = 0;           // cacheable-method answers not stored (see verdicts)
  uint64_t invalidations = 0;        // URIs invalidated by unsafe methods
  uint64_t revalidated = 0;          // stale answers the upstream confirmed with a 304
  uint64_t stale_if_error = 0;       // stored answers served because the upstream failed
  uint64_t client_disconnects = 0;   // clients gone before their answer was written
  uint64_t slow_requests = 0;        // requests slower than `log.slow_request`
  uint64_t access_log_dropped = 0;   // records the access log refused (queue full)
  uint64_t cache_entries = 0;        // gauge: L1 entries
  uint64_t cache_bytes = 0;          // gauge: L1 bytes charged
  uint64_t cache_evictions = 0;      // L1 entries evicted at the bound
  uint64_t cache_expirations = 0;    // L1 entries expired
};

class Proxy {
 public:
  // `workers` is the public server's worker count (one upstream client per worker).
  // `access_log` may be null (logging off); it must outlive the proxy.
  Proxy(std::shared_ptr<const Config> config, size_t workers, AccessLog* access_log,
        metrics::Registry& registry);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // The `http::Handler` of the public listener.
  [[nodiscard]] boost::asio::awaitable<void> handle(http::Request& request,
                                                    http::ResponseWriter& writer);

  [[nodiscard]] std::shared_ptr<const Config> config() const;
  // Installs a config that differs from the current one only in run-time knobs (see
  // `apply_runtime_patch`); requests that already started keep the old values.
  void set_config(std::shared_ptr<const Config> config);

  // What went into the key of `request`, and its route (for /admin/cache/explain).
  struct Explanation {
    std::string route;  // "" when no route matches
    RequestKey key;
    bool coalescable = false;
    bool cacheable = false;
    bool cached = false;  // an entry is in the L1 cache now
  };
  [[nodiscard]] Explanation explain(const http::Request& request) const;

  void clear_cache();
  // Removes expired entries of the cache and the hit-for-miss and invalidation tables.
  void sweep();
  void reset_stats();
  [[nodiscard]] ProxyStats stats() const;
  // Per route: the coalescer's counters.
  [[nodiscard]] std::vector<std::pair<std::string, coalesce::CoalescerStats>> coalescer_stats()
      const;
  // The streamed answers in progress (at most `limit`) and the stream totals, as JSON (for
  // /admin/streams).
  [[nodiscard]] boost::json::object streams_json(size_t limit) const;
  // The SSE broadcaster's figures and up to `limit` channels (GET /admin/broadcast); nullopt
  // when [broadcast] is off.
  [[nodiscard]] std::optional<boost::json::object> broadcast_json(size_t limit) const;
  // Removes expired broadcast events, dead subscribers and idle channels (every
  // `broadcast.cleanup_interval`, from the maintenance thread).
  void sweep_broadcast();
  // Heartbeat comments to subscribers of silent channels (every fraction of
  // `broadcast.heartbeat_interval`, from the maintenance thread).
  void heartbeat_broadcast();
  // Ends every broadcast subscription (at shutdown, so the drain does not wait on them).
  void shutdown_broadcast();
  // Per upstream: url, breaker, limiter and pool figures as JSON (for /admin/upstreams and
  // /admin/pools).
  [[nodiscard]] boost::json::array upstreams_json() const;
  // Asks every worker's upstream clients to close idle connections past their idle time or
  // age; returns at once (the work runs on each worker's loop).
  void cleanup_pools();
  // Destroys the upstream clients. Only after the workers' event loops stopped.
  void release_connections();

  class Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace sluice::gateway
