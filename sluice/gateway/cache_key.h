// Request keys: what makes two requests "the same question" for the coalescer and the cache.
//
// `make_key` turns a request and its route's `KeyPolicy` into a `RequestKey`: the key string,
// the tenant digest, and the list of parts that went into it (for `/admin/cache/explain` and
// the debug header). The key is the UNAMBIGUOUS concatenation of length-prefixed parts, not a
// digest: equal keys mean equal parts, with no collision possible, and the key stays readable
// in Redis. Request bodies and credentials enter it only as SHA-256 digests, so its size is
// bounded by the target and the chosen headers (the caller bounds those: the server's
// `max_header_bytes`).
//
// Format (version 1): "v1;" then, per part, `<name>=<byte length>:<value>;`, in this order:
// route, method, host, path, query (if `include_query`), `header:<name>` per `headers` (an
// absent header is `header:<name>=-;`, distinct from an empty one), tenant (if
// `include_credentials`: the full 64-hex digest, or empty when no credential header was
// present), body (if `body != none`: `c:<hex>` for canonical JSON, `r:<hex>` for raw bytes).
// Part names contain no `=` (header names are RFC 9110 tokens, which exclude it), so the
// encoding is prefix-free.
//
// Thread-safety: pure functions (`sha256_hex` keeps one OpenSSL digest context per thread).
// Cost: a GET with one credential header and no body digest is one SHA-256 of ~60 bytes
// (~0.3 us with SHA-NI) plus about ten small string builds; see cache_key_benchmark.cc.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/http/server.h"

namespace sluice::gateway {

// Lower-case hex SHA-256 of `data` (64 characters), computed with OpenSSL EVP.
[[nodiscard]] std::string sha256_hex(std::string_view data);

// How a request body joins the key.
enum class BodyDigest {
  // The body does not join the key (GET, HEAD).
  none,
  // SHA-256 of the body bytes.
  raw,
  // SHA-256 of `canonical_json(body)`; a body that is not JSON (or has duplicate keys) falls
  // back to the raw bytes, and the `body` part says so.
  canonical_json,
};

// What a route puts into its keys.
struct KeyPolicy {
  // Route name, part of the key (two routes never share entries).
  std::string route;
  // Whether the query string joins the key; parameters are sorted by name (stable for
  // equal names), empty parameters (`a=1&&b=2`) dropped, bytes kept as sent (no decoding).
  bool include_query = true;
  // Lower-case header names whose values join the key (all lines, joined with ", ").
  std::vector<std::string> headers;
  // Whether the credential digest (tenant) joins the key; false only for routes whose
  // answers are the same for every caller.
  bool include_credentials = true;
  // Lower-case names of the headers that carry credentials, digested into the tenant.
  std::vector<std::string> credential_headers = {"authorization", "x-api-key", "api-key"};
  // How the body joins the key; opted-in POST routes use `canonical_json`.
  BodyDigest body = BodyDigest::none;
  // Port implied by the listener's scheme: `Host: api.example:80` keys as `api.example`.
  unsigned default_port = 80;
};

// One ingredient of a key, for display: {"method","GET"} {"host","api.example"}
// {"path","/v1/x"} {"query","a=1&b=2"} {"header:accept","application/json"}
// {"tenant","<first 16 hex of the digest>"} {"body","sha256:<hex> (canonical json)"}.
struct KeyPart {
  // Part name ("route", "method", "host", "path", "query", "header:<name>", "tenant", "body").
  std::string name;
  // Display value: as in the key, except tenant (16 hex digits or "none") and body (described),
  // and an absent header ("(absent)").
  std::string value;
};

struct RequestKey {
  // The coalescing and cache key: the unambiguous length-prefixed encoding described above.
  std::string key;
  // Lower-case hex SHA-256 of the credential header values; "" when none was present or the
  // policy excludes credentials. Never a raw credential.
  std::string tenant;
  // What went into the key, in key order (left empty by `make_key(..., false)`).
  std::vector<KeyPart> parts;
};

// The key of `request` under `policy`. Host comes from the Host header (or from an
// absolute-form target, which takes precedence as RFC 9112 3.2.2 says), lower-cased, the
// default port dropped; the path is taken as sent (no decoding, no dot-segment removal); the
// query is sorted as `KeyPolicy::include_query` describes.
// `describe = false` skips the `parts` (built only for the debug header and the admin API:
// a request's hot path needs the key and the tenant alone).
[[nodiscard]] RequestKey make_key(const http::Request& request, const KeyPolicy& policy,
                                  bool describe = true);

// Whether keys made under `policy` carry the digest of the Authorization header, so that a
// response to a request with Authorization may be stored under it (`StoreInputs::key_has_tenant`).
[[nodiscard]] bool key_has_tenant(const KeyPolicy& policy) noexcept;

// The target in the form keys use: path as sent, then `?` and the sorted query when the query
// is not empty. `canonical_target("/a?b=2&a=1")` is "/a?a=1&b=2". An absolute-form target
// gives its path and query only.
[[nodiscard]] std::string canonical_target(std::string_view target);

// "api.example" from "API.Example:80" when `default_port` is 80; IPv6 literals keep their
// brackets ("[::1]:8080" stays). An empty port ("host:") is dropped too.
[[nodiscard]] std::string normalize_host(std::string_view host, unsigned default_port = 80);

// The query string sorted by parameter name (stable), empty parameters dropped.
[[nodiscard]] std::string sort_query(std::string_view query);

}  // namespace sluice::gateway
