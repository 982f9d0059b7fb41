// Header hygiene shared by the server, the client and the gateway: hop-by-hop headers.
//
// A proxy must not forward headers that describe one connection (RFC 9110 section 7.6.1):
// the fixed set Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
// Upgrade, Proxy-Authenticate, Proxy-Authorization, plus every header whose name appears in
// a Connection header (`Connection: close, X-Secret` removes X-Secret too). The server applies
// this to each request before its handler sees it; the gateway leaves the hop-by-hop fields
// of upstream responses out when it writes them to the client (`HopByHop`, no copy).
//
// Thread-safety: pure functions over the caller's `fields`. Cost: one pass over the fields,
// comparing each field's enum; names listed in Connection (rare) are compared as strings.
// `strip_hop_by_hop` erases by iterator and allocates nothing.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/verb.hpp>
#include <string_view>
#include <vector>

namespace sluice::http {

// True for the methods RFC 9110 9.2.2 defines as idempotent (GET, HEAD, PUT, DELETE,
// OPTIONS, TRACE): a request that may be sent again after a failure.
[[nodiscard]] bool is_idempotent(boost::beast::http::verb method) noexcept;

// One header line to add to a head that is otherwise sent as stored (see `HeadView` in
// server.h and `RequestEdits` in client.h); both views must outlive the write.
struct HeaderView {
  std::string_view name;
  std::string_view value;
};

// Whether a field of one field list is hop-by-hop: one of the fixed set, or named by one of
// the list's Connection fields. Holds views into `fields`, which must outlive it unchanged.
class HopByHop {
 public:
  explicit HopByHop(const boost::beast::http::fields& fields);
  [[nodiscard]] bool operator()(const boost::beast::http::fields::value_type& field) const noexcept;
  // A name from the fixed set.
  [[nodiscard]] static bool fixed(boost::beast::http::field name) noexcept;

 private:
  std::vector<std::string_view> named_;  // tokens of the Connection fields
};

// Removes hop-by-hop headers and the headers named in Connection from `fields`.
// Returns the number of header lines removed.
size_t strip_hop_by_hop(boost::beast::http::fields& fields);

// ASCII case-insensitive equality (header names, tokens).
[[nodiscard]] bool iequals(std::string_view a, std::string_view b) noexcept;

}  // namespace sluice::http
