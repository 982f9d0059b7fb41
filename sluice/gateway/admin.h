// `Admin`: the handler of the admin listener. JSON endpoints over the gateway's state and
// actions, and `/metrics` in the Prometheus text format. Every endpoint is documented in
// docs/admin-api.md; the metric names in docs/metrics.md.
//
//   GET  /admin/stats  /admin/coalescing  /admin/cache  /admin/pools  /admin/upstreams
//        /admin/config  /admin/health  /admin/cache/explain?target=/x&method=GET&header=K:V
//   PUT  /admin/config                   (run-time knobs, validated as a whole)
//   POST /admin/cache/clear  /admin/metrics/reset  /admin/batches/flush  /admin/pools/cleanup
//        /admin/cache/explain            (JSON {"method","target","headers":{},"body"})
//   GET  /metrics
//
// With a token configured every request needs `Authorization: Bearer <token>` (401
// otherwise). Unknown paths get 404, wrong methods 405, bad input 400, all with a JSON
// {"error","reason"} body.
//
// Thread-safety: `handle` may run on any thread; it only calls the gateway's thread-safe
// accessors.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>

#include "sluice/http/server.h"

namespace sluice::gateway {

class Gateway;

class Admin {
 public:
  Admin(Gateway& gateway, std::string token) : gateway_(gateway), token_(std::move(token)) {}

  [[nodiscard]] boost::asio::awaitable<void> handle(http::Request& request,
                                                    http::ResponseWriter& writer);

 private:
  Gateway& gateway_;
  std::string token_;
};

}  // namespace sluice::gateway
