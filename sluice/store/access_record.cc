#include "sluice/store/access_record.h"

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <type_traits>

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

// Reads the fields of one parsed object; the first problem wins.
class FieldReader {
 public:
  explicit FieldReader(const boost::json::object& object) : object_(object) {}

  template <class Int>
  void integer(std::string_view name, Int& out) {
    const boost::json::value* v = find(name);
    if (v == nullptr) return;
    if (v->is_int64()) {
      const int64_t x = v->get_int64();
      if (in_range<Int>(x)) {
        out = static_cast<Int>(x);
        return;
      }
    } else if (v->is_uint64()) {
      const uint64_t x = v->get_uint64();
      if (x <= static_cast<uint64_t>(std::numeric_limits<Int>::max())) {
        out = static_cast<Int>(x);
        return;
      }
    } else {
      fail(name, "expected an integer");
      return;
    }
    fail(name, "integer out of range");
  }

  void string(std::string_view name, std::string& out) {
    const boost::json::value* v = find(name);
    if (v == nullptr) return;
    if (!v->is_string()) {
      fail(name, "expected a string");
      return;
    }
    out.assign(v->get_string().data(), v->get_string().size());
  }

  void cache(std::string_view name, CacheOutcome& out) {
    std::string text;
    string(name, text);
    if (!error_.empty()) return;
    if (const auto parsed = parse_cache_outcome(text)) {
      out = *parsed;
    } else {
      fail(name, "unknown cache outcome \"" + text + "\"");
    }
  }

  const std::string& error() const { return error_; }

 private:
  template <class Int>
  static bool in_range(int64_t x) {
    if constexpr (std::is_signed_v<Int>) {
      return x >= std::numeric_limits<Int>::min() && x <= std::numeric_limits<Int>::max();
    } else {
      return x >= 0 && static_cast<uint64_t>(x) <= std::numeric_limits<Int>::max();
    }
  }

  const boost::json::value* find(std::string_view name) {
    if (!error_.empty()) return nullptr;
    const boost::json::value* v = object_.if_contains(name);
    if (v == nullptr) fail(name, "missing");
    return v;
  }

  void fail(std::string_view name, std::string_view what) {
    if (error_.empty()) error_ = "field \"" + std::string(name) + "\": " + std::string(what);
  }

  const boost::json::object& object_;
  std::string error_;
};

}  // namespace

void throw_exception_from_error(const RecordError& e, const boost::source_location&) {
  throw std::invalid_argument(e.reason);
}

boost::system::result<AccessRecord, RecordError> parse_json(std::string_view line) {
  // `append_json` writes string bytes as they are, so bytes that are not UTF-8 must read back.
  boost::json::parse_options options;
  options.allow_invalid_utf8 = true;
  boost::system::error_code ec;
  const boost::json::value parsed = boost::json::parse(line, ec, {}, options);
  if (ec) return RecordError{"not JSON: " + ec.message()};
  if (!parsed.is_object()) return RecordError{"not a JSON object"};
  FieldReader read(parsed.get_object());
  AccessRecord r;
  int64_t upstream_ns = 0;
  int64_t total_ns = 0;
  read.integer("time_unix_ns", r.time_unix_ns);
  read.string("route", r.route);
  read.string("method", r.method);
  read.string("path", r.path);
  read.integer("status", r.status);
  read.cache("cache", r.cache);
  read.integer("upstream_latency_ns", upstream_ns);
  read.integer("total_latency_ns", total_ns);
  read.integer("bytes_in", r.bytes_in);
  read.integer("bytes_out", r.bytes_out);
  read.string("tenant_digest", r.tenant_digest);
  read.string("request_id", r.request_id);
  read.string("upstream", r.upstream);
  if (!read.error().empty()) return RecordError{read.error()};
  r.upstream_latency = Duration(upstream_ns);
  r.total_latency = Duration(total_ns);
  return r;
}

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
