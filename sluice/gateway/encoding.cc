#include "sluice/gateway/encoding.h"

#include <algorithm>
#include <boost/beast/http/field.hpp>

#include "sluice/http/headers.h"

namespace sluice::gateway {

namespace bh = boost::beast::http;

Encoder::Encoder(const CompressionConfig& config)
    : enabled_(config.enabled && !config.codings.empty()),
      min_bytes_(config.min_bytes),
      gzip_level_(static_cast<int>(config.gzip_level)),
      zstd_level_(static_cast<int>(config.zstd_level)) {
  for (const std::string& name : config.codings) {
    if (auto coding = http::parse_coding(name);
        coding && *coding != http::Coding::identity &&
        std::find(offered_.begin(), offered_.end(), *coding) == offered_.end()) {
      offered_.push_back(*coding);
    }
  }
  stream_offered_ = offered_;
  std::stable_partition(stream_offered_.begin(), stream_offered_.end(),
                        [](http::Coding c) { return c == http::Coding::gzip; });
}

bool Encoder::eligible(unsigned status, const bh::fields& headers) const {
  if (!enabled_) return false;
  if (status / 100 == 1 || status == 204 || status == 206 || status == 304) return false;
  if (headers.count(bh::field::content_encoding) > 0) return false;
  const auto type = headers.find(bh::field::content_type);
  if (type == headers.end() || !http::is_compressible(type->value())) return false;
  for (auto it = headers.find(bh::field::cache_control);
       it != headers.end() && it->name() == bh::field::cache_control; ++it) {
    const std::string_view value = it->value();
    for (size_t at = 0; (at = value.find_first_of("nN", at)) != std::string_view::npos; ++at) {
      if (http::iequals(value.substr(at, 12), "no-transform")) return false;
    }
  }
  return true;
}

size_t Encoder::encode_stored(CachedResponse& c) const {
  c.encoded.clear();
  if (c.body.size() < std::max<size_t>(min_bytes_, 1) || !eligible(c.status, c.headers)) return 0;
  size_t runs = 0;
  for (const http::Coding coding : offered_) {
    auto coded = http::compress(coding, c.body, level(coding));
    ++runs;
    if (coded && coded->size() < c.body.size()) c.encoded.push_back({coding, std::move(*coded)});
  }
  return runs;
}

http::Coding Encoder::choose(std::string_view accept_encoding, const CachedResponse& c) const {
  if (c.encoded.empty() || accept_encoding.empty()) return http::Coding::identity;
  http::Coding available[4];
  size_t n = 0;
  for (const auto& e : c.encoded) {
    if (n < 4) available[n++] = e.coding;
  }
  return http::negotiate(accept_encoding, std::span<const http::Coding>(available, n));
}

http::Coding Encoder::choose_for_stream(std::string_view accept_encoding) const {
  if (!enabled_ || accept_encoding.empty()) return http::Coding::identity;
  return http::negotiate(accept_encoding, stream_offered_);
}

http::Coding Encoder::choose_for_body(std::string_view accept_encoding) const {
  if (!enabled_ || accept_encoding.empty()) return http::Coding::identity;
  return http::negotiate(accept_encoding, offered_);
}

int Encoder::level(http::Coding coding) const noexcept {
  return coding == http::Coding::gzip ? gzip_level_ : zstd_level_;
}

http::StreamOptions Encoder::stream_options(http::Coding coding) const noexcept {
  http::StreamOptions o;
  o.level = level(coding);
  // Smaller windows than the one-shot defaults: a stream holds its state for its whole life
  // (gzip 14: 134 KiB, zstd 15: 369 KiB per stream, compression.h).
  o.window_log = coding == http::Coding::gzip ? 14 : 15;
  return o;
}

EncodingHeaders encoding_headers(const bh::fields& headers, http::Coding coding) {
  EncodingHeaders out;
  bool has_accept_encoding = false;
  for (auto it = headers.find(bh::field::vary);
       it != headers.end() && it->name() == bh::field::vary; ++it) {
    const std::string_view value = it->value();
    if (!out.vary.empty()) out.vary += ", ";
    out.vary.append(value.data(), value.size());
    for (size_t at = 0; (at = value.find_first_of("aA", at)) != std::string_view::npos; ++at) {
      if (http::iequals(value.substr(at, 15), "accept-encoding")) has_accept_encoding = true;
    }
  }
  if (!has_accept_encoding) out.vary += out.vary.empty() ? "Accept-Encoding" : ", Accept-Encoding";
  if (coding == http::Coding::identity) return out;
  out.content_encoding = std::string(http::to_string(coding));
  if (auto it = headers.find(bh::field::etag); it != headers.end()) {
    const std::string_view tag = it->value();
    out.etag = tag.starts_with("W/") ? std::string(tag) : "W/" + std::string(tag);
  }
  return out;
}

}  // namespace sluice::gateway
