#include "sluice/http/request_framing.h"

#include <cstring>

#include "sluice/http/tchar.h"

namespace sluice::http {

namespace {

constexpr char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Case-insensitive comparison with a lower-case literal.
bool iequals(std::string_view s, std::string_view lower) noexcept {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (ascii_lower(s[i]) != lower[i]) return false;
  }
  return true;
}

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// 1*DIGIT, at most 18 digits so the value fits in a signed 64-bit integer.
bool valid_content_length(std::string_view v) noexcept {
  if (v.empty() || v.size() > 18) return false;
  for (const char c : v) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

std::string_view to_string(BadRequestReason reason) noexcept {
  switch (reason) {
    case BadRequestReason::kBareLf:
      return "bare_lf";
    case BadRequestReason::kObsFold:
      return "obs_fold";
    case BadRequestReason::kInvalidHeaderName:
      return "invalid_header_name";
    case BadRequestReason::kTransferEncodingWithContentLength:
      return "transfer_encoding_with_content_length";
    case BadRequestReason::kUnsupportedTransferEncoding:
      return "unsupported_transfer_encoding";
    case BadRequestReason::kDuplicateContentLength:
      return "duplicate_content_length";
    case BadRequestReason::kInvalidContentLength:
      return "invalid_content_length";
    case BadRequestReason::kMalformed:
      return "malformed_request";
  }
  return "unknown";
}

HeadScanner::Result HeadScanner::scan(std::string_view buffer) noexcept {
  while (pos_ < buffer.size()) {
    const void* found = std::memchr(buffer.data() + pos_, '\n', buffer.size() - pos_);
    if (found == nullptr) {
      pos_ = buffer.size();
      return Result::kNeedMore;
    }
    const size_t lf = static_cast<size_t>(static_cast<const char*>(found) - buffer.data());
    pos_ = lf + 1;
    // The CR must belong to this line: a line of just "\n" after a previous "\r\n" is bare.
    if (lf == line_start_ || buffer[lf - 1] != '\r') return Result::kBareLf;
    const bool empty_line = (lf - 1 == line_start_);
    line_start_ = lf + 1;
    if (!empty_line) {
      seen_request_line_ = true;
      continue;
    }
    if (!seen_request_line_) {
      leading_ = lf + 1;
      continue;
    }
    head_size_ = lf + 1 - leading_;
    return Result::kComplete;
  }
  return Result::kNeedMore;
}

std::optional<BadRequestReason> check_request_head(std::string_view head) noexcept {
  size_t eol = head.find("\r\n");
  if (eol == std::string_view::npos) return BadRequestReason::kMalformed;
  const std::string_view request_line = head.substr(0, eol);
  const bool http10 = request_line.ends_with(" HTTP/1.0");
  // A bare LF anywhere in the head (the scanner also reports it while bytes arrive).
  for (size_t i = head.find('\n'); i != std::string_view::npos; i = head.find('\n', i + 1)) {
    if (i == 0 || head[i - 1] != '\r') return BadRequestReason::kBareLf;
  }

  int content_length_lines = 0;
  bool content_length_valid = true;
  bool transfer_encoding_seen = false;
  int transfer_codings = 0;
  bool all_codings_chunked = true;

  size_t pos = eol + 2;
  while (pos < head.size()) {
    eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) return BadRequestReason::kMalformed;
    const std::string_view line = head.substr(pos, eol - pos);
    pos = eol + 2;
    if (line.empty()) break;  // the end of the head
    if (line.front() == ' ' || line.front() == '\t') return BadRequestReason::kObsFold;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return BadRequestReason::kInvalidHeaderName;
    const std::string_view name = line.substr(0, colon);
    for (const char c : name) {
      if (!is_tchar(c)) return BadRequestReason::kInvalidHeaderName;
    }
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (iequals(name, "content-length")) {
      ++content_length_lines;
      if (!valid_content_length(value)) content_length_valid = false;
    } else if (iequals(name, "transfer-encoding")) {
      transfer_encoding_seen = true;
      std::string_view rest = value;
      while (true) {
        const size_t comma = rest.find(',');
        const std::string_view coding = trim_ows(rest.substr(0, comma));
        ++transfer_codings;
        if (!iequals(coding, "chunked")) all_codings_chunked = false;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
    }
  }

  if (transfer_encoding_seen && content_length_lines > 0) {
    return BadRequestReason::kTransferEncodingWithContentLength;
  }
  if (transfer_encoding_seen && (transfer_codings != 1 || !all_codings_chunked || http10)) {
    return BadRequestReason::kUnsupportedTransferEncoding;
  }
  if (content_length_lines > 1) return BadRequestReason::kDuplicateContentLength;
  if (!content_length_valid) return BadRequestReason::kInvalidContentLength;
  return std::nullopt;
}

}  // namespace sluice::http
