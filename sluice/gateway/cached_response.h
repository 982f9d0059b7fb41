// `CachedResponse`: one upstream answer as the gateway keeps it, in the L1 cache and in the
// outcome handed to coalesced waiters: status, headers (hop-by-hop headers already removed),
// the complete body, and what the cache needs to serve it again (when it was stored, its
// freshness, the Vary fingerprint of the request that produced it, the URI for
// invalidation). Immutable once built: shared as `shared_ptr<const CachedResponse>`, so a
// cache hit or a waiter costs one reference count, never a copy of the body.
//
// Thread-safety: immutable; share freely. Cost: the body and headers, plus ~200 bytes.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/http/compression.h"

namespace sluice::gateway {

struct CachedResponse {
  unsigned status = 200;
  boost::beast::http::fields headers;  // end-to-end headers as the upstream sent them
  std::string body;                    // the complete body (decoded from chunked framing)
  // Freshness: served from cache until `stored_at + ttl` (steady clock of the gateway).
  TimePoint stored_at{};
  Duration ttl{};
  // Age the response already had when it was stored (RFC 9111 4.2.3), for the Age header.
  Duration initial_age{};
  // Lower-cased header names of the response's Vary and the request's values of them.
  std::vector<std::string> vary;
  std::string vary_fingerprint;
  // host + target of the request, for invalidation after unsafe methods.
  std::string uri;
  // Time the upstream took to produce it (for the access log of the leader).
  Duration upstream_latency{};
  // The body compressed once per offered coding that makes it smaller (encoding.h); empty when
  // the answer is not compressible. Hits pick the variant their client accepts.
  struct Encoded {
    http::Coding coding = http::Coding::identity;
    std::string body;
  };
  std::vector<Encoded> encoded;

  // Bytes this response charges to the cache bound (body, headers, bookkeeping).
  [[nodiscard]] size_t weight() const noexcept;
};

using ResponsePtr = std::shared_ptr<const CachedResponse>;

}  // namespace sluice::gateway
