// HTTP caching semantics for sluice as a SHARED cache (RFC 9111) whose keys carry the tenant:
// Cache-Control parsing, the store decision with its freshness lifetime, the request-side
// decision, Vary, conditional requests (RFC 9110 13.2.2), invalidation after unsafe methods
// (RFC 9111 4.4), the Age header, and HTTP dates (RFC 9110 5.6.7).
//
// Thread-safety: pure functions of their arguments (no I/O, no clock: "now" is passed in).
// Cost: header parsing is one pass per header line with no allocation (`parse_cache_control`
// ~100 ns for a typical response, see cache_key_benchmark.cc); `decide_store` parses both
// Cache-Control sets and at most three dates. Choices where the RFCs leave room are listed in
// docs/modules/gateway-cache.md and next to each function.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::gateway {

// Delta-seconds beyond this (2^31 s) are clamped to it (RFC 9111 1.2.2); it also stands for
// "any staleness" (`max-stale` without a value).
inline constexpr Duration kMaxDeltaSeconds = std::chrono::seconds(2147483648LL);

// The directives of all Cache-Control lines of a message. Repeated directives keep the most
// restrictive value (smallest max-age/s-maxage/max-stale/stale-*, largest min-fresh); a
// malformed value is the most restrictive one (0, or `kMaxDeltaSeconds` for min-fresh), so an
// invalid max-age makes the response stale (RFC 9111 4.2.1). Unknown directives are ignored.
// Qualified `private="..."` and `no-cache="..."` count as the unqualified forms.
struct CacheControl {
  bool no_store = false;             // no-store: never store the message or its answer
  bool no_cache = false;             // no-cache (or Pragma: no-cache without Cache-Control)
  bool private_ = false;             // private: only a private cache may store it
  bool public_ = false;              // public: storable by a shared cache, even with Authorization
  bool must_revalidate = false;      // must-revalidate: never serve stale
  bool proxy_revalidate = false;     // proxy-revalidate: must-revalidate for shared caches
  bool only_if_cached = false;       // only-if-cached (request): answer 504 rather than go upstream
  bool immutable = false;            // immutable (RFC 8246): informational for sluice
  bool no_transform = false;         // no-transform: do not recompress or convert the body
  bool must_understand = false;      // must-understand: store only statuses the cache understands
  std::optional<Duration> max_age;   // max-age=N
  std::optional<Duration> s_maxage;  // s-maxage=N (shared caches only)
  std::optional<Duration> max_stale;               // max-stale[=N] (request); no value: any
  std::optional<Duration> min_fresh;               // min-fresh=N (request)
  std::optional<Duration> stale_while_revalidate;  // stale-while-revalidate=N (RFC 5861)
  std::optional<Duration> stale_if_error;          // stale-if-error=N (RFC 5861)
};

// Parses every Cache-Control line of `headers`. When there is no Cache-Control line at all, a
// `Pragma: no-cache` sets `no_cache` (RFC 9111 5.4; applied to responses too, which only
// makes the decision more conservative).
[[nodiscard]] CacheControl parse_cache_control(const boost::beast::http::fields& headers);

// Why a response is or is not stored.
enum class StoreVerdict {
  store,                             // storable; `StoreDecision::ttl` is how long
  no_store_request,                  // the request said no-store
  no_store_response,                 // the response said no-store
  private_response,                  // the response said private (sluice is a shared cache)
  set_cookie,                        // the response sets a cookie
  status_not_cacheable,              // status neither heuristically cacheable nor explicitly fresh
  error_status,                      // 4xx/5xx and the route does not cache errors
  vary_star,                         // Vary: * (no request can ever match)
  authorization_without_permission,  // Authorization, key without tenant, no
                                     // public/s-maxage/must-revalidate
  method_not_cacheable,              // not GET/HEAD, nor POST on an opted-in route
  zero_lifetime,                     // fresh for no time at all (max-age=0, expired, old Age)
  no_cache_response,  // the response said no-cache: sluice does not revalidate, so it does not
                      // store
};
[[nodiscard]] std::string_view to_string(StoreVerdict verdict) noexcept;

struct StoreDecision {
  // The verdict; only `store` stores.
  StoreVerdict verdict = StoreVerdict::status_not_cacheable;
  // Remaining freshness when stored: min(lifetime - initial_age, max_ttl).
  Duration ttl{};
  // Freshness lifetime chosen (s-maxage > max-age > Expires - Date > default_ttl, or error_ttl).
  Duration lifetime{};
  // Corrected initial age (RFC 9111 4.2.3) at store time: keep it to compute `Age` on hits.
  Duration initial_age{};
};

struct StoreInputs {
  // Request method ("GET", "HEAD", or "POST" on opted-in routes). Case-sensitive (RFC 9110).
  std::string_view method;
  // Request headers (must not be null).
  const boost::beast::http::fields* request_headers = nullptr;
  // Response status code.
  unsigned status = 0;
  // Response headers (must not be null).
  const boost::beast::http::fields* response_headers = nullptr;
  // Wall-clock time the response head arrived; Date, Expires and Age are relative to it.
  std::chrono::system_clock::time_point now;
  // Time between sending the request and receiving the head (RFC 9111 4.2.3).
  Duration response_delay{};
  // Freshness when the response has no explicit one (the route's cache_ttl).
  Duration default_ttl{};
  // Upper bound on any ttl.
  Duration max_ttl = Duration::max();
  // The key includes the credentials digest (then Authorization does not forbid storing).
  bool key_has_tenant = false;
  // The request carries another credential (a header of `cache.credential_headers` such as
  // X-Api-Key) that the key does not separate: it forbids storing as Authorization does.
  bool other_credentials = false;
  // POST is allowed on this route.
  bool post_opted_in = false;
  // Store 4xx/5xx answers (for `error_ttl`, or less if the response says so).
  bool cache_errors = false;
  // Lifetime of a stored 4xx/5xx answer.
  Duration error_ttl{};
};

// Whether and for how long a response may be stored. Checks, in this order (the first that
// fails is the verdict): method, request no-store, response no-store, private, Set-Cookie,
// Vary: *, response no-cache, Authorization, status (must-understand included), lifetime.
[[nodiscard]] StoreDecision decide_store(const StoreInputs& in);

// Statuses that are cacheable by default (RFC 9110 15.1), before the error rule.
[[nodiscard]] bool heuristically_cacheable(unsigned status) noexcept;

// Request side: may this request be answered from the cache, and may its answer be stored?
struct RequestDecision {
  // false for no-cache or max-age=0 (must go upstream).
  bool may_use_cache = true;
  // false for no-store.
  bool may_store = true;
  // only-if-cached: answer 504 when the cache cannot serve.
  bool only_if_cached = false;
  // Request's max-age, min-fresh and max-stale, for `accepts`.
  std::optional<Duration> max_age, min_fresh, max_stale;
  // Whether a stored response of current `age` with `remaining` freshness (negative when
  // stale) satisfies this request: age <= max-age, remaining >= min-fresh, and either fresh or
  // stale by no more than max-stale. `must_revalidate` (from the stored response) forbids stale.
  [[nodiscard]] bool accepts(Duration age, Duration remaining, bool must_revalidate = false) const;
};
[[nodiscard]] RequestDecision decide_request(const boost::beast::http::fields& request_headers);

// Vary: the lower-cased names of all Vary lines, sorted and deduplicated; {"*"} when any
// member is "*".
[[nodiscard]] std::vector<std::string> vary_names(
    const boost::beast::http::fields& response_headers);

// The request's values of `names`, to store beside the response and compare on a hit: per
// name, `<name>=<len>:<value>;` (all lines combined, list members trimmed and joined with
// ","), or `<name>=-;` when absent. Equal fingerprints mean the stored response matches.
[[nodiscard]] std::string vary_fingerprint(const std::vector<std::string>& names,
                                           const boost::beast::http::fields& request_headers);

// Whether the request's conditionals make a stored response "304 Not Modified" (RFC 9110
// 13.2.2, RFC 9111 4.3.2): If-None-Match (`*`, or weak comparison with the stored ETag) when
// present, else If-Modified-Since against the stored Last-Modified, or its Date when there is
// none. An invalid date or no validator means "modified" (serve the full response).
[[nodiscard]] bool not_modified(const boost::beast::http::fields& request_headers,
                                const boost::beast::http::fields& stored_response_headers);

// Invalidation after unsafe methods (RFC 9111 4.4): for POST/PUT/DELETE/PATCH (any method
// other than GET, HEAD, OPTIONS, TRACE) answered 2xx or 3xx, the canonical targets
// (`canonical_target`: path as sent plus sorted query) to drop: the request target, then the
// Location and Content-Location targets whose host equals `host` (relative references
// resolved against the target). Deduplicated, request target first. Empty otherwise.
[[nodiscard]] std::vector<std::string> invalidation_targets(
    std::string_view method, unsigned status, std::string_view host, std::string_view target,
    const boost::beast::http::fields& response_headers);

// Corrected initial age of a response (RFC 9111 4.2.3) received at `response_time`, after
// `response_delay`: max(apparent age from Date, Age + response_delay). Invalid Age is ignored.
[[nodiscard]] Duration initial_age(const boost::beast::http::fields& response_headers,
                                   std::chrono::system_clock::time_point response_time,
                                   Duration response_delay);

// Age header value for a stored response served after `resident` time in the cache: whole
// seconds of initial_age + resident, clamped to [0, 2^31].
[[nodiscard]] std::string age_header(Duration initial_age, Duration resident);

// HTTP-date (RFC 9110 5.6.7): IMF-fixdate, RFC 850 and asctime formats; names
// case-insensitive. RFC 850 two-digit years more than 50 years after `reference` are taken in
// the past century. nullopt when invalid.
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> parse_http_date(
    std::string_view text, std::chrono::system_clock::time_point reference);
// Same, with the current time as reference.
[[nodiscard]] std::optional<std::chrono::system_clock::time_point> parse_http_date(
    std::string_view text);
// IMF-fixdate of `t` ("Sun, 06 Nov 1994 08:49:37 GMT").
[[nodiscard]] std::string format_http_date(std::chrono::system_clock::time_point t);

}  // namespace sluice::gateway
