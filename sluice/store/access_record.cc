#include "sluice/store/access_record.h"

#include <array>
#include <cstdio>

namespace sluice::store {
namespace {

constexpr std::array<std::string_view, 5> kCacheOutcomeNames = {"hit", "miss", "coalesced",
                                                                "bypass", "stale"};

void append_json_string(std::string_view s, std::string& out) {
  out.push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void append_field(std::string_view name, std::string& out) {
  if (out.back() != '{') out.push_back(',');
  out.push_back('"');
  out += name;
  out += "\":";
}

}  // namespace

std::string_view to_string(CacheOutcome outcome) noexcept {
  const auto i = static_cast<std::size_t>(outcome);
  return i < kCacheOutcomeNames.size() ? kCacheOutcomeNames[i] : "unknown";
}

std::optional<CacheOutcome> parse_cache_outcome(std::string_view text) noexcept {
  for (std::size_t i = 0; i < kCacheOutcomeNames.size(); ++i) {
    if (kCacheOutcomeNames[i] == text) return static_cast<CacheOutcome>(i);
  }
  return std::nullopt;
}

void append_json(const AccessRecord& r, std::string& out) {
  out.push_back('{');
  append_field("time_unix_ns", out);
  out += std::to_string(r.time_unix_ns);
  append_field("route", out);
  append_json_string(r.route, out);
  append_field("method", out);
  append_json_string(r.method, out);
  append_field("path", out);
  append_json_string(r.path, out);
  append_field("status", out);
  out += std::to_string(r.status);
  append_field("cache", out);
  append_json_string(to_string(r.cache), out);
  append_field("upstream_latency_ns", out);
  out += std::to_string(r.upstream_latency.count());
  append_field("total_latency_ns", out);
  out += std::to_string(r.total_latency.count());
  append_field("bytes_in", out);
  out += std::to_string(r.bytes_in);
  append_field("bytes_out", out);
  out += std::to_string(r.bytes_out);
  append_field("tenant_digest", out);
  append_json_string(r.tenant_digest, out);
  append_field("request_id", out);
  append_json_string(r.request_id, out);
  append_field("upstream", out);
  append_json_string(r.upstream, out);
  out.push_back('}');
}

}  // namespace sluice::store
