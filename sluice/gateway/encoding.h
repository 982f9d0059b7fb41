// Which answers the gateway compresses, and how ([compression], docs/configuration.md).
//
// An answer is eligible when the client's Accept-Encoding accepts an offered coding, its
// Content-Type is compressible (`http::is_compressible`), the upstream did not encode it
// already (no Content-Encoding), it allows transformation (no `Cache-Control: no-transform`),
// its status carries a body (not 1xx, 204, 206, 304) and the body is at least `min_bytes`
// (streams of unknown length always qualify).
//
// - A stored answer is compressed ONCE, when it is stored (or shared with coalesced waiters),
//   in each offered coding that makes it smaller: `encode_stored` fills
//   `CachedResponse::encoded`, charged to the cache bound with the rest. A hit picks the
//   variant its client accepts; no hit compresses anything.
// - A streamed answer is compressed as it goes (`http::StreamCompressor`, a flush per chunk of
//   whole events for event streams, so no event waits for the next one). Streams offer gzip
//   first: with a flush per event it codes smaller than zstd, in less memory per stream.
// Every compressed answer carries `Content-Encoding` and `Vary: Accept-Encoding` (identity
// answers of eligible bodies carry the Vary too), and a strong ETag becomes weak (RFC 9110
// 8.8.1: the bytes differ from the upstream's).
//
// Thread-safety: immutable after construction; use from any thread.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/gateway/cached_response.h"
#include "sluice/gateway/config.h"
#include "sluice/http/compression.h"

namespace sluice::gateway {

class Encoder {
 public:
  explicit Encoder(const CompressionConfig& config);

  [[nodiscard]] bool enabled() const noexcept { return enabled_; }
  // Whether an answer with this status and these headers may be compressed at all.
  [[nodiscard]] bool eligible(unsigned status, const boost::beast::http::fields& headers) const;
  // Fills `c.encoded` (see above); nothing when the answer is not eligible or too small.
  // Returns how many codings it compressed the body in.
  size_t encode_stored(CachedResponse& c) const;
  // The coding for a client with this Accept-Encoding, among the stored variants of `c`
  // (identity when it accepts none of them).
  [[nodiscard]] http::Coding choose(std::string_view accept_encoding,
                                    const CachedResponse& c) const;
  // The coding for a streamed answer to this client (identity when it accepts none).
  [[nodiscard]] http::Coding choose_for_stream(std::string_view accept_encoding) const;
  // The coding for a whole body passed through once (not stored), as for a stored one.
  [[nodiscard]] http::Coding choose_for_body(std::string_view accept_encoding) const;
  [[nodiscard]] size_t min_bytes() const noexcept { return min_bytes_; }
  [[nodiscard]] int level(http::Coding coding) const noexcept;
  // Options of the compressor of one stream (level, and a window that bounds its memory).
  [[nodiscard]] http::StreamOptions stream_options(http::Coding coding) const noexcept;

 private:
  bool enabled_;
  size_t min_bytes_;
  int gzip_level_;
  int zstd_level_;
  std::vector<http::Coding> offered_;         // bodies: the configured order
  std::vector<http::Coding> stream_offered_;  // streams: gzip first
};

// The headers an encoded (or encodable) answer adds to `headers`: `Vary` with
// Accept-Encoding added once, and for an encoded one `Content-Encoding` and a weak ETag.
struct EncodingHeaders {
  std::string vary;
  std::string content_encoding;  // empty for identity
  std::string etag;              // the weak ETag; empty when none or identity
};
[[nodiscard]] EncodingHeaders encoding_headers(const boost::beast::http::fields& headers,
                                               http::Coding coding);

}  // namespace sluice::gateway
