// Header hygiene shared by the server and, later, the gateway: removal of hop-by-hop headers.
//
// A proxy must not forward headers that describe one connection (RFC 9110 section 7.6.1):
// the fixed set Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
// Upgrade, Proxy-Authenticate, Proxy-Authorization, plus every header whose name appears in
// a Connection header (`Connection: close, X-Secret` removes X-Secret too). The server applies
// this to each request before its handler sees it; the gateway applies it to upstream
// responses before it writes them to the client.
//
// Thread-safety: a pure function over the caller's `fields`. Cost: one pass over the
// Connection values plus one erase per named header; allocates only when Connection names
// headers (their names are copied before erasing).
#pragma once

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>

namespace sluice::http {

// True for the methods RFC 9110 9.2.2 defines as idempotent (GET, HEAD, PUT, DELETE,
// OPTIONS, TRACE): a request that may be sent again after a failure.
[[nodiscard]] bool is_idempotent(boost::beast::http::verb method) noexcept;

// Removes hop-by-hop headers and the headers named in Connection from `fields`.
// Returns the number of header lines removed.
size_t strip_hop_by_hop(boost::beast::http::fields& fields);

}  // namespace sluice::http
