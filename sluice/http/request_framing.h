// Request framing checks that run on the raw bytes of a request head, before Beast parses it.
//
// Beast's parser (Boost 1.81) is lenient where a gateway must not be: it accepts
// `Transfer-Encoding: gzip` followed by `Content-Length` and frames the body by the length,
// which lets a front proxy and a back end disagree about where a request ends (request
// smuggling). sluice therefore rejects, with 400 and a closed connection, every head whose
// framing is ambiguous: bare-LF line endings, obs-fold continuation lines, both
// Transfer-Encoding and Content-Length, a Transfer-Encoding other than a single final
// `chunked`, and a duplicate or malformed Content-Length (lists such as `1, 1`, signs, inner
// spaces, more than 18 digits).
//
// `HeadScanner` finds the end of the head incrementally as bytes arrive, and reports a bare LF
// as soon as it is seen. `check_request_head` then validates the complete head.
//
// Thread-safety: pure functions; a `HeadScanner` is owned by one connection.
// Cost: one memchr pass over the head plus a walk over its lines (no allocation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::http {

// Why a request was answered with 400. Each value is counted in `Server::Stats`.
enum class BadRequestReason : uint8_t {
  kBareLf,                             // a line of the head ends in LF without CR
  kObsFold,                            // a header line starts with SP/HTAB (obsolete line folding)
  kInvalidHeaderName,                  // a header name is empty or holds a non-token character
  kTransferEncodingWithContentLength,  // both Transfer-Encoding and Content-Length present
  kUnsupportedTransferEncoding,        // Transfer-Encoding is not exactly a single `chunked`
  kDuplicateContentLength,             // Content-Length appears on more than one line
  kInvalidContentLength,               // Content-Length is not 1*18DIGIT (lists, signs, spaces)
  kMalformed,                          // Beast's parser rejected the request (line, chunk, ...)
};
inline constexpr size_t kBadRequestReasonCount = 8;

// Short snake_case name used in the JSON body `{"error":"bad_request","reason":"..."}`.
[[nodiscard]] std::string_view to_string(BadRequestReason reason) noexcept;

// Finds the end of a request head (the empty line) in a growing buffer. Empty lines before
// the request line (allowed by RFC 9112 section 2.2) are skipped and reported through
// `leading_bytes()` so the caller can drop them.
class HeadScanner {
 public:
  enum class Result : uint8_t {
    kNeedMore,  // no complete head yet; call again when more bytes arrived
    kComplete,  // `head_size()` bytes after `leading_bytes()` form the head
    kBareLf,    // a bare LF was found in the head: answer 400
  };

  // Scans `buffer` (the same buffer, grown, on each call; bytes already scanned are not
  // scanned again).
  [[nodiscard]] Result scan(std::string_view buffer) noexcept;
  // Bytes of empty lines seen before the request line.
  [[nodiscard]] size_t leading_bytes() const noexcept { return leading_; }
  // Size of the head including its final CRLF CRLF (valid after kComplete).
  [[nodiscard]] size_t head_size() const noexcept { return head_size_; }
  void reset() noexcept { *this = HeadScanner{}; }

 private:
  size_t pos_ = 0;         // next byte to scan
  size_t line_start_ = 0;  // offset of the current line
  size_t leading_ = 0;     // bytes of leading empty lines
  size_t head_size_ = 0;
  bool seen_request_line_ = false;
};

// Validates the framing of a complete head (request line, header lines, final empty line,
// all CRLF-terminated). Returns the reason to reject, or nothing when Beast may parse it.
[[nodiscard]] std::optional<BadRequestReason> check_request_head(std::string_view head) noexcept;

}  // namespace sluice::http
