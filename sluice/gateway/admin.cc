#include "sluice/gateway/admin.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>
#include <chrono>

#include "sluice/base/hash.h"
#include "sluice/gateway/gateway.h"
#include "sluice/gateway/logger.h"

namespace sluice::gateway {

namespace asio = boost::asio;
namespace bh = boost::beast::http;

namespace {

struct Reply {
  bh::status status = bh::status::ok;
  std::string body;
  std::string content_type = "application/json";
};

Reply json_reply(const boost::json::value& v, bh::status status = bh::status::ok) {
  return {status, boost::json::serialize(v) + "\n"};
}

Reply error_reply(bh::status status, std::string_view code, std::string_view reason) {
  boost::json::object o;
  o["error"] = code;
  o["reason"] = reason;
  return json_reply(o, status);
}

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

boost::json::object coalescing_json(Gateway& g) {
  boost::json::object o;
  const ProxyStats p = g.proxy().stats();
  o["waiter_overflow"] = p.waiter_overflow;
  o["waiter_timeouts"] = p.waiter_timeouts;
  o["not_shared"] = p.not_shared;
  o["hit_for_miss_marked"] = p.hit_for_miss_marked;
  o["hit_for_miss_bypass"] = p.hit_for_miss_bypass;
  o["handed_off"] = p.handed_off;
  o["in_flight_rejected"] = p.in_flight_rejected;
  boost::json::array routes;
  for (const auto& [name, cs] : g.proxy().coalescer_stats()) {
    boost::json::object r;
    r["route"] = name;
    r["calls"] = cs.total_requests;
    r["leaders"] = cs.leaders;
    r["coalesced"] = cs.coalesced;
    r["overflow"] = cs.overflow;
    r["timed_out"] = cs.timed_out;
    r["cancelled"] = cs.cancelled;
    r["errors"] = cs.errors;
    r["in_flight"] = cs.in_flight;
    r["coalesce_rate"] = cs.coalesce_rate();
    r["average_wait_seconds"] = seconds(cs.average_wait());
    r["max_wait_seconds"] = seconds(cs.max_wait);
    routes.push_back(std::move(r));
  }
  o["routes"] = std::move(routes);
  return o;
}

boost::json::object cache_json(Gateway& g) {
  const ProxyStats p = g.proxy().stats();
  const auto config = g.config();
  boost::json::object o;
  o["enabled"] = config->cache.enabled;
  o["entries"] = p.cache_entries;
  o["bytes"] = p.cache_bytes;
  o["max_entries"] = config->cache.max_entries;
  o["max_bytes"] = config->cache.max_bytes;
  o["max_object_bytes"] = config->cache.max_object_bytes;
  o["hits"] = p.hits;
  o["not_modified"] = p.not_modified;
  o["misses"] = p.misses;
  o["coalesced"] = p.coalesced;
  o["bypassed"] = p.bypassed;
  const uint64_t lookups = p.hits + p.misses + p.coalesced;
  o["hit_rate"] = lookups == 0 ? 0.0 : static_cast<double>(p.hits) / static_cast<double>(lookups);
  o["stored"] = p.stored;
  o["not_stored"] = p.not_stored;
  o["revalidated"] = p.revalidated;
  o["stale_if_error"] = p.stale_if_error;
  o["evictions"] = p.cache_evictions;
  o["expirations"] = p.cache_expirations;
  o["invalidations"] = p.invalidations;
  o["vary_mismatch"] = p.vary_mismatch;
  return o;
}

// The `limit` query parameter of a listing, in [1, 100000]; `fallback` when absent.
boost::system::result<size_t, std::string> list_limit(std::string_view target, size_t fallback) {
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return std::string("the target is not a valid URL");
  for (const auto& param : url->params()) {
    if (param.key != "limit")
      return "unknown parameter '" + std::string(param.key) + "' (use limit)";
    size_t n = 0;
    const std::string& v = param.value;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size() || n < 1 || n > 100000) {
      return "limit must be an integer in [1, 100000], found '" + v + "'";
    }
    fallback = n;
  }
  return fallback;
}

// Builds the request to explain from the admin request: query parameters for GET, a JSON
// body for POST.
boost::system::result<http::Request, std::string> explain_request(const http::Request& admin) {
  http::Request r;
  r.version(11);
  r.method(bh::verb::get);
  r.target("/");
  if (admin.method() == bh::verb::post) {
    boost::system::error_code ec;
    auto v = boost::json::parse(admin.body(), ec);
    if (ec || !v.is_object()) return std::string("the body must be a JSON object");
    const auto& o = v.as_object();
    if (auto* m = o.if_contains("method"); m && m->is_string()) {
      r.method_string(std::string(m->as_string()));
    }
    if (auto* t = o.if_contains("target"); t && t->is_string()) {
      r.target(std::string(t->as_string()));
    }
    if (auto* h = o.if_contains("headers"); h && h->is_object()) {
      for (const auto& [name, value] : h->as_object()) {
        if (!value.is_string()) return "header '" + std::string(name) + "' must be a string";
        r.insert(std::string(name), std::string(value.as_string()));
      }
    }
    if (auto* b = o.if_contains("body"); b) {
      r.body() = b->is_string() ? std::string(b->as_string()) : boost::json::serialize(*b);
      r.prepare_payload();
    }
    return r;
  }
  auto url = boost::urls::parse_origin_form(admin.target());
  if (!url) return std::string("the target is not a valid URL");
  for (const auto& param : url->params()) {
    if (param.key == "method") {
      r.method_string(std::string(param.value));
    } else if (param.key == "target") {
      r.target(std::string(param.value));
    } else if (param.key == "host") {
      r.set(bh::field::host, std::string(param.value));
    } else if (param.key == "header") {
      const std::string kv(param.value);
      const size_t colon = kv.find(':');
      if (colon == std::string::npos) return "header '" + kv + "' is not Name:Value";
      size_t start = colon + 1;
      while (start < kv.size() && kv[start] == ' ') ++start;
      r.insert(kv.substr(0, colon), kv.substr(start));
    } else {
      return "unknown parameter '" + std::string(param.key) +
             "' (use method, target, host, header)";
    }
  }
  return r;
}

Reply explain(Gateway& g, const http::Request& admin) {
  auto built = explain_request(admin);
  if (!built) return error_reply(bh::status::bad_request, "bad_explain_request", built.error());
  const Proxy::Explanation e = g.proxy().explain(*built);
  boost::json::object o;
  if (e.route.empty()) {
    o["route"] = nullptr;
    o["reason"] = "no route matches";
    return json_reply(o);
  }
  o["route"] = e.route;
  o["coalescable"] = e.coalescable;
  o["cacheable"] = e.cacheable;
  o["cached"] = e.cached;
  o["tenant"] = e.key.tenant;
  boost::json::array parts;
  for (const auto& part : e.key.parts) {
    boost::json::object p;
    p["name"] = part.name;
    p["value"] = part.value;
    parts.push_back(std::move(p));
  }
  o["parts"] = std::move(parts);
  o["key_bytes"] = e.key.key.size();
  return json_reply(o);
}

Reply route(Gateway& g, http::Request& request) {
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));
  const bh::verb method = request.method();
  const bool get = method == bh::verb::get || method == bh::verb::head;
  const bool post = method == bh::verb::post;

  auto only = [&](bool allowed) -> std::optional<Reply> {
    if (allowed) return std::nullopt;
    return error_reply(
        bh::status::method_not_allowed, "method_not_allowed",
        std::string(request.method_string()) + " is not allowed on " + std::string(path));
  };

  if (path == "/metrics") {
    if (auto r = only(get)) return *r;
    return {bh::status::ok, g.registry().prometheus(), "text/plain; version=0.0.4; charset=utf-8"};
  }
  if (path == "/admin/health") {
    if (auto r = only(get)) return *r;
    boost::json::object o;
    o["status"] = "ok";
    o["uptime_seconds"] = g.uptime_seconds();
    return json_reply(o);
  }
  if (path == "/admin/stats") {
    if (auto r = only(get)) return *r;
    return json_reply(g.stats_json());
  }
  if (path == "/admin/coalescing") {
    if (auto r = only(get)) return *r;
    return json_reply(coalescing_json(g));
  }
  if (path == "/admin/cache") {
    if (auto r = only(get)) return *r;
    return json_reply(cache_json(g));
  }
  if (path == "/admin/cache/explain") {
    if (auto r = only(get || post)) return *r;
    return explain(g, request);
  }
  if (path == "/admin/upstreams") {
    if (auto r = only(get)) return *r;
    boost::json::object o;
    o["upstreams"] = g.proxy().upstreams_json();
    return json_reply(o);
  }
  if (path == "/admin/streams") {
    if (auto r = only(get)) return *r;
    const auto limit = list_limit(target, 1000);
    if (!limit) return error_reply(bh::status::bad_request, "bad_query", limit.error());
    return json_reply(g.proxy().streams_json(*limit));
  }
  if (path == "/admin/broadcast") {
    if (auto r = only(get)) return *r;
    const auto limit = list_limit(target, 100);
    if (!limit) return error_reply(bh::status::bad_request, "bad_query", limit.error());
    auto o = g.proxy().broadcast_json(*limit);
    if (!o) {
      return error_reply(bh::status::not_found, "broadcast_disabled",
                         "the SSE broadcaster is off (set [broadcast] enabled or "
                         "--broadcast-prefix)");
    }
    return json_reply(*o);
  }
  if (path == "/admin/pools") {
    if (auto r = only(get)) return *r;
    boost::json::object o;
    boost::json::array pools;
    for (auto& up : g.proxy().upstreams_json()) {
      boost::json::object p;
      p["upstream"] = up.as_object()["name"];
      p["pool"] = up.as_object()["pool"];
      pools.push_back(std::move(p));
    }
    o["pools"] = std::move(pools);
    return json_reply(o);
  }
  if (path == "/admin/config") {
    if (method == bh::verb::put) {
      boost::system::error_code ec;
      auto patch = boost::json::parse(request.body(), ec);
      if (ec) {
        return error_reply(bh::status::bad_request, "bad_json",
                           "the body is not JSON: " + ec.message());
      }
      if (auto why = g.patch_config(patch); !why.empty()) {
        return error_reply(bh::status::bad_request, "invalid_config", why);
      }
      log(LogLevel::info, "configuration changed through the admin API: " + request.body());
      return json_reply(to_json(*g.config()));
    }
    if (auto r = only(get)) return *r;
    return json_reply(to_json(*g.config()));
  }
  if (path == "/admin/cache/clear") {
    if (auto r = only(post)) return *r;
    const uint64_t before = g.proxy().stats().cache_entries;
    g.proxy().clear_cache();
    boost::json::object o;
    o["cleared_entries"] = before;
    return json_reply(o);
  }
  if (path == "/admin/metrics/reset") {
    if (auto r = only(post)) return *r;
    g.proxy().reset_stats();
    g.registry().reset();
    boost::json::object o;
    o["reset"] = true;
    return json_reply(o);
  }
  if (path == "/admin/batches/flush") {
    if (auto r = only(post)) return *r;
    boost::json::object o;
    if (AccessLog* log = g.access_log()) {
      const auto before = log->stats().batcher.written;
      log->flush();
      o["flushed"] = log->stats().batcher.written - before;
    } else {
      o["flushed"] = 0;
      o["access_log"] = "off";
    }
    return json_reply(o);
  }
  if (path == "/admin/pools/cleanup") {
    if (auto r = only(post)) return *r;
    g.proxy().cleanup_pools();
    boost::json::object o;
    o["scheduled"] = true;
    return json_reply(o);
  }
  return error_reply(bh::status::not_found, "not_found",
                     "no admin endpoint at " + std::string(path) + " (see docs/admin-api.md)");
}

}  // namespace

asio::awaitable<void> Admin::handle(http::Request& request, http::ResponseWriter& writer) {
  Reply reply;
  if (!token_.empty()) {
    std::string_view given;
    if (auto it = request.find(bh::field::authorization); it != request.end()) given = it->value();
    if (!given.starts_with("Bearer ") || !base::constant_time_equals(given.substr(7), token_)) {
      reply = error_reply(bh::status::unauthorized, "unauthorized",
                          "the admin API needs Authorization: Bearer <admin.token>");
    }
  }
  if (reply.body.empty()) {
    // The flush action blocks on the access-log writer: it is the admin worker that waits,
    // never a proxy worker.
    reply = route(gateway_, request);
  }
  bh::fields headers;
  headers.set(bh::field::content_type, reply.content_type);
  headers.set(bh::field::cache_control, "no-store");
  (void)co_await writer.send(reply.status, std::move(headers), std::move(reply.body));
}

}  // namespace sluice::gateway
