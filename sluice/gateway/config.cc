#include "sluice/gateway/config.h"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/url/parse.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <variant>

#include "sluice/base/units.h"

namespace sluice::gateway {
namespace {

// ---------------------------------------------------------------------------------------------
// Field descriptions: one list per section serves the TOML reader, the environment, the JSON
// view, the run-time patch and the key reference, so that they cannot drift apart.

enum class Kind {
  kBool,        // true / false
  kCount,       // non-negative integer
  kSize,        // bytes: an integer or "256MiB"
  kDuration,    // "30s"
  kReal,        // float (an integer is accepted)
  kString,      // string, maybe restricted to `choices`
  kPort,        // integer 0..65535
  kStringList,  // array of strings
  kIntList,     // array of integers
};

using Target = std::variant<bool*, size_t*, Duration*, double*, std::string*, uint16_t*,
                            std::vector<std::string>*, std::vector<int>*>;

enum class Case { kKeep, kLower, kUpper };

struct Field {
  std::string_view key;
  Kind kind = Kind::kBool;
  Target target;
  std::optional<double> min;  // inclusive; durations in ns
  std::optional<double> max;
  std::vector<std::string_view> choices;  // kString: allowed values
  Case letter_case = Case::kKeep;         // kString / kStringList
  bool non_empty = false;                 // kString
  bool runtime = false;                   // changes through PUT /admin/config

  Field&& live() && {
    runtime = true;
    return std::move(*this);
  }
};

Field make(std::string_view key, Kind kind, Target target, std::optional<double> min = {},
           std::optional<double> max = {}) {
  Field f;
  f.key = key;
  f.kind = kind;
  f.target = target;
  f.min = min;
  f.max = max;
  return f;
}

Field f_bool(std::string_view key, bool& v) { return make(key, Kind::kBool, &v); }
Field f_count(std::string_view key, size_t& v, double min, double max) {
  return make(key, Kind::kCount, &v, min, max);
}
Field f_size(std::string_view key, size_t& v, double min, double max) {
  return make(key, Kind::kSize, &v, min, max);
}
Field f_duration(std::string_view key, Duration& v, Duration min, Duration max) {
  return make(key, Kind::kDuration, &v, static_cast<double>(min.count()),
              static_cast<double>(max.count()));
}
Field f_real(std::string_view key, double& v, double min, double max) {
  return make(key, Kind::kReal, &v, min, max);
}
Field f_string(std::string_view key, std::string& v, std::vector<std::string_view> choices = {},
               bool non_empty = false, Case c = Case::kKeep) {
  Field f = make(key, Kind::kString, &v);
  f.choices = std::move(choices);
  f.letter_case = c;
  f.non_empty = non_empty;
  return f;
}
Field f_port(std::string_view key, uint16_t& v) { return make(key, Kind::kPort, &v, 0, 65535); }
Field f_strings(std::string_view key, std::vector<std::string>& v, Case c) {
  Field f = make(key, Kind::kStringList, &v);
  f.letter_case = c;
  return f;
}
Field f_ints(std::string_view key, std::vector<int>& v, double min, double max) {
  return make(key, Kind::kIntList, &v, min, max);
}

struct Section {
  std::string_view name;
  std::vector<Field> fields;
  std::vector<Section> subs;
};

constexpr Duration kForever = std::chrono::hours(24 * 365);
constexpr double kMaxBytes = 1ull << 50;  // 1 PiB: "no limit" for practical purposes

Section server_section(ServerConfig& c) {
  return {"server",
          {f_count("workers", c.workers, 0, 1024), f_string("data_dir", c.data_dir, {}, true),
           f_duration("drain_timeout", c.drain_timeout, 0s, 1h)},
          {}};
}

Section listener_section(ListenerConfig& c) {
  return {"listener",
          {f_string("address", c.address, {}, true), f_port("port", c.port),
           f_count("max_connections", c.max_connections, 1, 10'000'000),
           f_size("max_header_bytes", c.max_header_bytes, 1024, 1024 * 1024),
           f_size("max_body_bytes", c.max_body_bytes, 0, kMaxBytes),
           f_duration("header_timeout", c.header_timeout, 1ms, kForever),
           f_duration("idle_timeout", c.idle_timeout, 1ms, kForever),
           f_duration("body_timeout", c.body_timeout, 1ms, kForever),
           f_duration("write_timeout", c.write_timeout, 1ms, kForever)},
          {}};
}

Section breaker_section(BreakerConfig& c) {
  return {"breaker",
          {f_bool("enabled", c.enabled), f_real("failure_rate", c.failure_rate, 0.01, 1.0),
           f_count("min_requests", c.min_requests, 1, 1'000'000),
           f_count("consecutive_failures", c.consecutive_failures, 0, 1'000'000),
           f_duration("window", c.window, 1ms, 1h), f_duration("open_for", c.open_for, 1ms, 1h),
           f_count("half_open_probes", c.half_open_probes, 1, 10'000)},
          {}};
}

Section concurrency_section(ConcurrencyConfig& c) {
  return {"concurrency",
          {f_bool("enabled", c.enabled), f_string("policy", c.policy, {"gradient", "aimd"}),
           f_count("initial", c.initial, 1, 1'000'000), f_count("min", c.min, 1, 1'000'000),
           f_count("max", c.max, 1, 1'000'000)},
          {}};
}

Section upstream_section(UpstreamConfig& c) {
  return {"",
          {f_string("url", c.url, {}, true),
           f_duration("connect_timeout", c.connect_timeout, 1ms, kForever),
           f_duration("response_timeout", c.response_timeout, 1ms, kForever),
           f_duration("read_timeout", c.read_timeout, 1ms, kForever),
           f_count("max_connections", c.max_connections, 1, 1'000'000),
           f_count("max_connections_per_host", c.max_connections_per_host, 1, 1'000'000),
           f_duration("max_idle_time", c.max_idle_time, 1ms, kForever),
           f_duration("max_age", c.max_age, 1ms, kForever),
           f_real("max_error_rate", c.max_error_rate, 0.0, 1.0), f_bool("tls_verify", c.tls_verify),
           f_string("ca_file", c.ca_file), f_duration("dns_ttl", c.dns_ttl, 0s, 24h)},
          {breaker_section(c.breaker), concurrency_section(c.concurrency)}};
}

Section retry_section(RetryConfig& c) {
  return {"retry",
          {f_count("max_attempts", c.max_attempts, 1, 10),
           f_duration("initial_backoff", c.initial_backoff, 1ms, 1h),
           f_duration("max_backoff", c.max_backoff, 1ms, 1h),
           f_string("jitter", c.jitter, {"full", "equal", "decorrelated", "none"}),
           f_bool("non_idempotent", c.non_idempotent), f_ints("on_status", c.on_status, 400, 599),
           f_real("budget_ratio", c.budget_ratio, 0.0, 1.0)},
          {}};
}

Section rate_limit_section(RateLimitConfig& c) {
  return {
      "rate_limit",
      {f_bool("enabled", c.enabled).live(), f_real("rate", c.rate, 0.001, 1e9).live(),
       f_real("burst", c.burst, 1, 1e9).live(), f_string("key", c.key, {"tenant", "ip", "route"})},
      {}};
}

Section stream_section(StreamConfig& c) {
  return {"stream",
          {f_count("buffer_chunks", c.buffer_chunks, 1, 1'000'000),
           f_size("buffer_bytes", c.buffer_bytes, 1024, 1ull << 30),
           f_string("slow_client", c.slow_client, {"block", "disconnect", "drop_oldest"}),
           f_duration("stall_timeout", c.stall_timeout, 1ms, kForever),
           f_bool("coalesce", c.coalesce), f_bool("cache", c.cache)},
          {}};
}

Section route_section(RouteConfig& c) {
  return {
      "",
      {f_string("path_prefix", c.path_prefix, {}, true),
       f_strings("methods", c.methods, Case::kUpper),
       f_string("host", c.host, {}, false, Case::kLower), f_string("upstream", c.upstream),
       f_bool("coalesce", c.coalesce).live(), f_bool("coalesce_post", c.coalesce_post),
       f_bool("cache", c.cache).live(), f_duration("cache_ttl", c.cache_ttl, 0s, kForever).live(),
       f_duration("max_ttl", c.max_ttl, 0s, kForever).live(),
       f_bool("public_answers", c.public_answers),
       f_strings("key_headers", c.key_headers, Case::kLower), f_bool("key_query", c.key_query),
       f_bool("cache_errors", c.cache_errors),
       f_duration("error_ttl", c.error_ttl, 0s, kForever).live(),
       f_count("max_waiters", c.max_waiters, 0, 10'000'000).live(),
       f_duration("waiter_timeout", c.waiter_timeout, 1ms, kForever).live(),
       f_duration("hit_for_miss_ttl", c.hit_for_miss_ttl, 0s, kForever).live()},
      {retry_section(c.retry), rate_limit_section(c.rate_limit), stream_section(c.stream)}};
}

Section cache_section(CacheConfig& c) {
  return {"cache",
          {f_bool("enabled", c.enabled), f_count("max_entries", c.max_entries, 1, 1e9),
           f_size("max_bytes", c.max_bytes, 1, kMaxBytes),
           f_size("max_object_bytes", c.max_object_bytes, 1, kMaxBytes).live(),
           f_strings("credential_headers", c.credential_headers, Case::kLower),
           f_bool("debug_header", c.debug_header)},
          {}};
}

Section log_section(LogConfig& c) {
  return {"log",
          {f_string("access", c.access, {"sqlite", "off"}),
           f_string("level", c.level, {"debug", "info", "warn", "error"}).live(),
           f_duration("slow_request", c.slow_request, 0s, kForever).live(),
           f_count("batch_size", c.batch_size, 1, 1'000'000),
           f_duration("flush_interval", c.flush_interval, 1ms, 1h),
           f_count("queue_capacity", c.queue_capacity, 1, 100'000'000)},
          {}};
}

Section compression_section(CompressionConfig& c) {
  return {"compression",
          {f_bool("enabled", c.enabled), f_size("min_bytes", c.min_bytes, 0, kMaxBytes),
           f_strings("codings", c.codings, Case::kLower), f_count("gzip_level", c.gzip_level, 1, 9),
           f_count("zstd_level", c.zstd_level, 1, 19)},
          {}};
}

Section broadcast_section(BroadcastConfig& c) {
  return {"broadcast",
          {f_bool("enabled", c.enabled), f_string("prefix", c.prefix, {}, true),
           f_count("max_channels", c.max_channels, 1, 10'000'000),
           f_count("max_subscribers", c.max_subscribers, 1, 10'000'000),
           f_count("max_history", c.max_history, 0, 10'000'000),
           f_size("max_history_bytes", c.max_history_bytes, 1024, kMaxBytes),
           f_duration("event_ttl", c.event_ttl, 0s, kForever),
           f_duration("channel_ttl", c.channel_ttl, 1ms, kForever),
           f_count("queue_events", c.queue_events, 1, 10'000'000),
           f_size("queue_bytes", c.queue_bytes, 1024, kMaxBytes),
           f_string("slow_client", c.slow_client, {"disconnect", "drop_oldest"}),
           f_size("max_event_bytes", c.max_event_bytes, 1, 64 * kMiB),
           f_duration("heartbeat_interval", c.heartbeat_interval, 10ms, 1h),
           f_duration("cleanup_interval", c.cleanup_interval, 10ms, 1h),
           f_string("publish_token", c.publish_token), f_string("auth_upstream", c.auth_upstream),
           f_string("auth_path", c.auth_path, {}, true)},
          {}};
}

Section admin_section(AdminConfig& c) {
  return {"admin",
          {f_bool("enabled", c.enabled), f_string("address", c.address, {}, true),
           f_port("port", c.port), f_string("token", c.token)},
          {}};
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

std::string upper_env(std::string_view s) {
  std::string out;
  for (char ch : s) {
    out += ch == '-' || ch == '.' ? '_'
                                  : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(ch));
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + '"';
}

std::string format_real(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// The shortest exact form that parse_duration reads back: "24h", "30s", "250ms".
std::string exact_duration(Duration d) {
  const int64_t ns = d.count();
  if (ns == 0) return "0s";
  struct Unit {
    int64_t ns;
    const char* suffix;
  };
  static constexpr Unit kUnits[] = {
      {3'600'000'000'000, "h"}, {60'000'000'000, "m"}, {1'000'000'000, "s"},
      {1'000'000, "ms"},        {1'000, "us"},         {1, "ns"}};
  for (const Unit& u : kUnits) {
    if (ns % u.ns == 0) return std::to_string(ns / u.ns) + u.suffix;
  }
  return std::to_string(ns) + "ns";
}

// The shortest exact form that parse_size reads back: "256MiB", "1000".
std::string exact_size(uint64_t bytes) {
  if (bytes == 0) return "0";
  static constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (const auto& [unit, suffix] : kUnits) {
    if (bytes % unit == 0) return std::to_string(bytes / unit) + suffix;
  }
  return std::to_string(bytes);
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// ", did you mean X?" when one candidate is close, else "".
std::string suggestion(std::string_view key, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_distance = 0;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(key, c);
    if (best == nullptr || d < best_distance) {
      best_distance = d;
      best = &c;
    }
  }
  if (best == nullptr) return "";
  const size_t limit = std::max<size_t>(2, key.size() / 3);
  if (best_distance > limit || best_distance >= key.size()) return "";
  return ", did you mean " + *best + "?";
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
  });
}

// An IP literal (v4 or v6) or "localhost".
bool valid_address(const std::string& address) {
  if (address == "localhost") return true;
  unsigned char buf[16];
  return inet_pton(AF_INET, address.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, address.c_str(), buf) == 1;
}

bool is_loopback(const std::string& address) {
  if (address == "localhost") return true;
  unsigned char buf[16];
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) return buf[0] == 127;
  if (inet_pton(AF_INET6, address.c_str(), buf) == 1) {
    static constexpr unsigned char kLoop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::memcmp(buf, kLoop, 16) == 0;
  }
  return false;
}

bool valid_token(std::string_view s) {  // an HTTP method token (RFC 9110 tchar)
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) ||
           std::strchr("!#$%&'*+-.^_`|~", ch) != nullptr;
  });
}

// ---------------------------------------------------------------------------------------------
// Values from any source (TOML, JSON, environment strings), converted by one function.

struct Value {
  enum class Type { kBool, kInt, kFloat, kString, kArray, kTable, kNull, kOther };
  Type type = Type::kNull;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<Value> items;

  static Value of_bool(bool v) {
    Value out;
    out.type = Type::kBool;
    out.b = v;
    return out;
  }
  static Value of_int(int64_t v) {
    Value out;
    out.type = Type::kInt;
    out.i = v;
    return out;
  }
  static Value of_float(double v) {
    Value out;
    out.type = Type::kFloat;
    out.f = v;
    return out;
  }
  static Value of_string(std::string v) {
    Value out;
    out.type = Type::kString;
    out.s = std::move(v);
    return out;
  }
  static Value of_type(Type t) {
    Value out;
    out.type = t;
    return out;
  }
};

std::string describe(const Value& v) {
  switch (v.type) {
    case Value::Type::kBool:
      return v.b ? "true" : "false";
    case Value::Type::kInt:
      return std::to_string(v.i);
    case Value::Type::kFloat:
      return format_real(v.f);
    case Value::Type::kString:
      return quote(v.s);
    case Value::Type::kArray:
      return "an array";
    case Value::Type::kTable:
      return "a table";
    case Value::Type::kNull:
      return "null";
    case Value::Type::kOther:
      return "a date or time";
  }
  return "?";
}

Value from_toml(const toml::node& node) {
  if (const auto* v = node.as_boolean()) return Value::of_bool(v->get());
  if (const auto* v = node.as_integer()) return Value::of_int(v->get());
  if (const auto* v = node.as_floating_point()) return Value::of_float(v->get());
  if (const auto* v = node.as_string()) return Value::of_string(v->get());
  if (const auto* arr = node.as_array()) {
    Value out = Value::of_type(Value::Type::kArray);
    for (const toml::node& item : *arr) out.items.push_back(from_toml(item));
    return out;
  }
  if (node.is_table()) return Value::of_type(Value::Type::kTable);
  return Value::of_type(Value::Type::kOther);
}

Value from_json(const boost::json::value& json) {
  switch (json.kind()) {
    case boost::json::kind::bool_:
      return Value::of_bool(json.get_bool());
    case boost::json::kind::int64:
      return Value::of_int(json.get_int64());
    case boost::json::kind::uint64:
      if (json.get_uint64() <= static_cast<uint64_t>(INT64_MAX)) {
        return Value::of_int(static_cast<int64_t>(json.get_uint64()));
      }
      return Value::of_float(static_cast<double>(json.get_uint64()));
    case boost::json::kind::double_:
      return Value::of_float(json.get_double());
    case boost::json::kind::string:
      return Value::of_string(std::string(json.get_string()));
    case boost::json::kind::array: {
      Value out = Value::of_type(Value::Type::kArray);
      for (const auto& item : json.get_array()) out.items.push_back(from_json(item));
      return out;
    }
    case boost::json::kind::object:
      return Value::of_type(Value::Type::kTable);
    case boost::json::kind::null:
      return Value::of_type(Value::Type::kNull);
  }
  return Value::of_type(Value::Type::kOther);
}

// An environment string, typed as the field expects when it reads as that type (so that a
// wrong value is reported as the string it is).
Value from_text(Kind kind, std::string_view raw) {
  const std::string_view text = trim(raw);
  auto as_int = [](std::string_view t) -> std::optional<int64_t> {
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size() || t.empty()) return std::nullopt;
    return v;
  };
  auto split = [&](Kind item_kind) {
    Value out = Value::of_type(Value::Type::kArray);
    std::string_view rest = text;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view item = trim(rest.substr(0, comma));
      if (!item.empty()) out.items.push_back(from_text(item_kind, item));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    return out;
  };
  switch (kind) {
    case Kind::kBool: {
      const std::string l = lower(text);
      if (l == "true" || l == "1" || l == "yes" || l == "on") return Value::of_bool(true);
      if (l == "false" || l == "0" || l == "no" || l == "off") return Value::of_bool(false);
      break;
    }
    case Kind::kCount:
    case Kind::kPort:
      if (auto v = as_int(text)) return Value::of_int(*v);
      break;
    case Kind::kSize:
      if (auto v = as_int(text)) return Value::of_int(*v);
      break;
    case Kind::kReal: {
      if (auto v = as_int(text)) return Value::of_int(*v);
      std::string copy(text);
      char* end = nullptr;
      errno = 0;
      const double d = std::strtod(copy.c_str(), &end);
      if (!copy.empty() && end == copy.c_str() + copy.size() && errno == 0) {
        return Value::of_float(d);
      }
      break;
    }
    case Kind::kStringList:
      return split(Kind::kString);
    case Kind::kIntList:
      return split(Kind::kCount);
    case Kind::kDuration:
    case Kind::kString:
      break;
  }
  return Value::of_string(std::string(text));
}

std::string format_bound(Kind kind, double v) {
  switch (kind) {
    case Kind::kDuration:
      return exact_duration(Duration(static_cast<int64_t>(v)));
    case Kind::kSize:
      return exact_size(static_cast<uint64_t>(v));
    case Kind::kReal:
      return format_real(v);
    default:
      return std::to_string(static_cast<int64_t>(v));
  }
}

std::optional<std::string> check_range(const Field& f, double v, const std::string& found) {
  const bool low = f.min && v < *f.min;
  const bool high = f.max && v > *f.max;
  if (!low && !high) return std::nullopt;
  std::string reason;
  if (f.min && f.max) {
    reason =
        "must be between " + format_bound(f.kind, *f.min) + " and " + format_bound(f.kind, *f.max);
  } else if (low) {
    reason = "must be at least " + format_bound(f.kind, *f.min);
  } else {
    reason = "must be at most " + format_bound(f.kind, *f.max);
  }
  return reason + ", found " + found;
}

std::string choice_list(const std::vector<std::string_view>& choices) {
  std::string out;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) out += i + 1 == choices.size() ? " or " : ", ";
    out += quote(choices[i]);
  }
  return out;
}

std::string apply_case(std::string_view s, Case c) {
  switch (c) {
    case Case::kLower:
      return lower(s);
    case Case::kUpper:
      return upper(s);
    case Case::kKeep:
      break;
  }
  return std::string(s);
}

// Converts and range-checks `v` for `f`, and stores it on success; the reason on failure.
std::optional<std::string> assign(const Field& f, const Value& v) {
  using T = Value::Type;
  const std::string found = describe(v);
  switch (f.kind) {
    case Kind::kBool:
      if (v.type != T::kBool) return "expected true or false, found " + found;
      *std::get<bool*>(f.target) = v.b;
      return std::nullopt;
    case Kind::kCount:
      if (v.type != T::kInt || v.i < 0) return "expected a non-negative integer, found " + found;
      if (auto e = check_range(f, static_cast<double>(v.i), found)) return e;
      *std::get<size_t*>(f.target) = static_cast<size_t>(v.i);
      return std::nullopt;
    case Kind::kPort:
      if (v.type != T::kInt || v.i < 0 || v.i > 65535) {
        return "expected a port number (0..65535), found " + found;
      }
      *std::get<uint16_t*>(f.target) = static_cast<uint16_t>(v.i);
      return std::nullopt;
    case Kind::kSize: {
      uint64_t bytes = 0;
      if (v.type == T::kInt && v.i >= 0) {
        bytes = static_cast<uint64_t>(v.i);
      } else if (v.type == T::kString) {
        auto parsed = base::parse_size(v.s);
        if (!parsed) return "expected a size such as \"256MiB\", found " + found;
        bytes = *parsed;
      } else {
        return "expected a size such as \"256MiB\" or a number of bytes, found " + found;
      }
      if (auto e = check_range(f, static_cast<double>(bytes), found)) return e;
      *std::get<size_t*>(f.target) = static_cast<size_t>(bytes);
      return std::nullopt;
    }
    case Kind::kDuration: {
      if (v.type != T::kString) return "expected a duration such as \"30s\", found " + found;
      auto parsed = base::parse_duration(v.s);
      if (!parsed) return "expected a duration such as \"30s\", found " + found;
      if (auto e = check_range(f, static_cast<double>(parsed->count()), found)) return e;
      *std::get<Duration*>(f.target) = *parsed;
      return std::nullopt;
    }
    case Kind::kReal: {
      double d = 0;
      if (v.type == T::kFloat) {
        d = v.f;
      } else if (v.type == T::kInt) {
        d = static_cast<double>(v.i);
      } else {
        return "expected a number, found " + found;
      }
      if (!std::isfinite(d)) return "expected a finite number, found " + found;
      if (auto e = check_range(f, d, found)) return e;
      *std::get<double*>(f.target) = d;
      return std::nullopt;
    }
    case Kind::kString: {
      if (v.type != T::kString) return "expected a string, found " + found;
      std::string s = apply_case(v.s, f.letter_case);
      if (f.non_empty && s.empty()) return "must not be empty";
      if (!f.choices.empty() &&
          std::find(f.choices.begin(), f.choices.end(), s) == f.choices.end()) {
        return "expected " + choice_list(f.choices) + ", found " + found;
      }
      *std::get<std::string*>(f.target) = std::move(s);
      return std::nullopt;
    }
    case Kind::kStringList: {
      if (v.type != T::kArray) return "expected an array of strings, found " + found;
      std::vector<std::string> out;
      for (const Value& item : v.items) {
        if (item.type != T::kString || item.s.empty()) {
          return "expected an array of non-empty strings, found " + describe(item) + " in it";
        }
        out.push_back(apply_case(item.s, f.letter_case));
      }
      *std::get<std::vector<std::string>*>(f.target) = std::move(out);
      return std::nullopt;
    }
    case Kind::kIntList: {
      if (v.type != T::kArray) return "expected an array of integers, found " + found;
      std::vector<int> out;
      for (const Value& item : v.items) {
        if (item.type != T::kInt) {
          return "expected an array of integers, found " + describe(item) + " in it";
        }
        if (auto e = check_range(f, static_cast<double>(item.i), describe(item))) return e;
        out.push_back(static_cast<int>(item.i));
      }
      *std::get<std::vector<int>*>(f.target) = std::move(out);
      return std::nullopt;
    }
  }
  return "unsupported field kind";
}

boost::json::value field_json(const Field& f) {
  switch (f.kind) {
    case Kind::kBool:
      return *std::get<bool*>(f.target);
    case Kind::kCount:
    case Kind::kSize:
      return static_cast<uint64_t>(*std::get<size_t*>(f.target));
    case Kind::kPort:
      return static_cast<uint64_t>(*std::get<uint16_t*>(f.target));
    case Kind::kDuration:
      return boost::json::string(exact_duration(*std::get<Duration*>(f.target)));
    case Kind::kReal:
      return *std::get<double*>(f.target);
    case Kind::kString:
      return boost::json::string(*std::get<std::string*>(f.target));
    case Kind::kStringList: {
      boost::json::array out;
      for (const auto& s : *std::get<std::vector<std::string>*>(f.target)) out.emplace_back(s);
      return out;
    }
    case Kind::kIntList: {
      boost::json::array out;
      for (int v : *std::get<std::vector<int>*>(f.target)) out.emplace_back(v);
      return out;
    }
  }
  return nullptr;
}

// The default in TOML syntax, for the key reference.
std::string field_toml(const Field& f) {
  switch (f.kind) {
    case Kind::kBool:
      return *std::get<bool*>(f.target) ? "true" : "false";
    case Kind::kCount:
      return std::to_string(*std::get<size_t*>(f.target));
    case Kind::kSize:
      return quote(exact_size(*std::get<size_t*>(f.target)));
    case Kind::kPort:
      return std::to_string(*std::get<uint16_t*>(f.target));
    case Kind::kDuration:
      return quote(exact_duration(*std::get<Duration*>(f.target)));
    case Kind::kReal:
      return format_real(*std::get<double*>(f.target));
    case Kind::kString:
      return quote(*std::get<std::string*>(f.target));
    case Kind::kStringList: {
      std::string out = "[";
      for (const auto& s : *std::get<std::vector<std::string>*>(f.target)) {
        if (out.size() > 1) out += ", ";
        out += quote(s);
      }
      return out + "]";
    }
    case Kind::kIntList: {
      std::string out = "[";
      for (int v : *std::get<std::vector<int>*>(f.target)) {
        if (out.size() > 1) out += ", ";
        out += std::to_string(v);
      }
      return out + "]";
    }
  }
  return "";
}

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::kBool:
      return "bool";
    case Kind::kCount:
      return "integer";
    case Kind::kSize:
      return "size";
    case Kind::kDuration:
      return "duration";
    case Kind::kReal:
      return "float";
    case Kind::kString:
      return "string";
    case Kind::kPort:
      return "port";
    case Kind::kStringList:
      return "string list";
    case Kind::kIntList:
      return "integer list";
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// The whole config as a flat list of fields with their dotted paths and environment names.

struct Scope {
  std::string path;  // "cache", "route.chat"
  std::string env;   // "SLUICE_CACHE", "SLUICE_ROUTE_CHAT"
  Section section;
};

std::vector<Scope> scopes(Config& c) {
  std::vector<Scope> out;
  out.push_back({"server", "SLUICE_SERVER", server_section(c.server)});
  out.push_back({"listener", "SLUICE_LISTENER", listener_section(c.listener)});
  for (UpstreamConfig& u : c.upstreams) {
    out.push_back(
        {"upstream." + u.name, "SLUICE_UPSTREAM_" + upper_env(u.name), upstream_section(u)});
  }
  for (RouteConfig& r : c.routes) {
    out.push_back({"route." + r.name, "SLUICE_ROUTE_" + upper_env(r.name), route_section(r)});
  }
  out.push_back({"cache", "SLUICE_CACHE", cache_section(c.cache)});
  out.push_back({"log", "SLUICE_LOG", log_section(c.log)});
  out.push_back({"admin", "SLUICE_ADMIN", admin_section(c.admin)});
  out.push_back({"compression", "SLUICE_COMPRESSION", compression_section(c.compression)});
  out.push_back({"broadcast", "SLUICE_BROADCAST", broadcast_section(c.broadcast)});
  return out;
}

struct Entry {
  std::string path;
  std::string env;
  Field field;
};

void flatten(const Section& s, const std::string& path, const std::string& env,
             std::vector<Entry>& out) {
  for (const Field& f : s.fields) {
    out.push_back({path + "." + std::string(f.key), env + "_" + upper_env(f.key), f});
  }
  for (const Section& sub : s.subs) {
    flatten(sub, path + "." + std::string(sub.name), env + "_" + upper_env(sub.name), out);
  }
}

std::vector<Entry> entries(Config& c) {
  std::vector<Entry> out;
  for (const Scope& s : scopes(c)) flatten(s.section, s.path, s.env, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Where each value came from, so that validation errors point at the right line / variable.

struct Origin {
  std::string file;
  size_t line = 0;
  std::string key;  // dotted path, env var or flag
};

class Origins {
 public:
  explicit Origins(std::string fallback_file) : fallback_(std::move(fallback_file)) {}

  void set(const std::string& path, Origin o) { map_[path] = std::move(o); }

  // The error for `path`: its own origin, else the nearest enclosing table's file and line.
  [[nodiscard]] ConfigError error(const std::string& path, std::string reason) const {
    if (auto it = map_.find(path); it != map_.end()) {
      return ConfigError{it->second.file, it->second.line, it->second.key, std::move(reason)};
    }
    std::string prefix = path;
    while (true) {
      const size_t dot = prefix.rfind('.');
      if (dot == std::string::npos) break;
      prefix.resize(dot);
      if (auto it = map_.find(prefix); it != map_.end() && it->second.file == fallback_) {
        return ConfigError{fallback_, it->second.line, path, std::move(reason)};
      }
    }
    return ConfigError{fallback_, 0, path, std::move(reason)};
  }

  [[nodiscard]] const std::string& fallback() const { return fallback_; }

 private:
  std::string fallback_;
  std::map<std::string, Origin> map_;
};

using MaybeError = std::optional<ConfigError>;

// ---------------------------------------------------------------------------------------------
// Environment overrides.

MaybeError apply_env(Config& c, const Environment& env, Origins& origins) {
  if (!env) return std::nullopt;
  for (const Entry& e : entries(c)) {
    const std::optional<std::string> text = env(e.env);
    if (!text) continue;
    if (auto reason = assign(e.field, from_text(e.field.kind, *text))) {
      return ConfigError{"env", 0, e.env, *reason};
    }
    origins.set(e.path, Origin{"env", 0, e.env});
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Validation across fields (single values were range-checked when assigned).

MaybeError check_upstream_url(UpstreamConfig& u, const std::string& path, const Origins& o) {
  const std::string key = path + ".url";
  if (u.url.empty())
    return o.error(key, "required: the upstream's base URL such as \"http://127.0.0.1:8000\"");
  auto parsed = boost::urls::parse_absolute_uri(u.url);
  if (!parsed)
    return o.error(key, "expected an absolute http:// or https:// URL, found " + quote(u.url));
  const std::string scheme = lower(parsed->scheme());
  if (scheme != "http" && scheme != "https") {
    return o.error(key, "expected an http:// or https:// URL, found scheme \"" + scheme + "\"");
  }
  if (parsed->has_userinfo()) return o.error(key, "user info in the URL is not supported");
  const std::string host = parsed->host_address();
  if (host.empty()) return o.error(key, "the URL has no host: " + quote(u.url));
  if (parsed->has_query() || parsed->has_fragment()) {
    return o.error(key, "the URL must not have a query or fragment: " + quote(u.url));
  }
  if (!parsed->encoded_path().empty() && parsed->encoded_path() != "/") {
    return o.error(key, "the URL must not have a path (routes choose paths): " + quote(u.url));
  }
  uint16_t port = scheme == "https" ? 443 : 80;
  if (parsed->has_port()) {
    const std::string_view p = parsed->port();
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || value == 0 ||
        value > 65535) {
      return o.error(key, "the URL's port must be 1..65535, found \"" + std::string(p) + "\"");
    }
    port = static_cast<uint16_t>(value);
  }
  u.tls = scheme == "https";
  u.host = host;
  u.port = port;
  return std::nullopt;
}

MaybeError validate(Config& c, const Origins& o) {
  if (!valid_address(c.listener.address)) {
    return o.error("listener.address",
                   "expected an IP address or \"localhost\", found " + quote(c.listener.address));
  }
  if (c.upstreams.empty()) {
    return o.error("upstream", "at least one [[upstream]] is required");
  }
  std::set<std::string> names;
  for (UpstreamConfig& u : c.upstreams) {
    const std::string path = "upstream." + u.name;
    if (!names.insert(u.name).second)
      return o.error(path + ".name", "duplicate upstream name " + quote(u.name));
    if (auto e = check_upstream_url(u, path, o)) return e;
    if (!u.ca_file.empty() && !std::filesystem::exists(u.ca_file)) {
      return o.error(path + ".ca_file", "no such file: " + quote(u.ca_file));
    }
    if (u.max_connections_per_host > u.max_connections) {
      return o.error(path + ".max_connections_per_host",
                     "must not exceed max_connections (" + std::to_string(u.max_connections) +
                         "), found " + std::to_string(u.max_connections_per_host));
    }
    const ConcurrencyConfig& cc = u.concurrency;
    if (cc.min > cc.max) {
      return o.error(path + ".concurrency.min", "must not exceed concurrency.max (" +
                                                    std::to_string(cc.max) + "), found " +
                                                    std::to_string(cc.min));
    }
    if (cc.initial < cc.min || cc.initial > cc.max) {
      return o.error(path + ".concurrency.initial",
                     "must be between concurrency.min and concurrency.max (" +
                         std::to_string(cc.min) + ".." + std::to_string(cc.max) + "), found " +
                         std::to_string(cc.initial));
    }
  }
  if (c.routes.empty()) return o.error("route", "at least one [[route]] is required");
  names.clear();
  std::vector<std::string> upstream_names;
  for (const UpstreamConfig& u : c.upstreams) upstream_names.push_back(u.name);
  for (RouteConfig& r : c.routes) {
    const std::string path = "route." + r.name;
    if (!names.insert(r.name).second)
      return o.error(path + ".name", "duplicate route name " + quote(r.name));
    if (r.path_prefix.empty() || r.path_prefix.front() != '/') {
      return o.error(path + ".path_prefix", "must start with '/', found " + quote(r.path_prefix));
    }
    for (const std::string& m : r.methods) {
      if (!valid_token(m)) return o.error(path + ".methods", "not an HTTP method: " + quote(m));
    }
    if (r.host.find_first_of(" /:") != std::string::npos) {
      return o.error(path + ".host",
                     "expected a host name without port or path, found " + quote(r.host));
    }
    if (r.upstream.empty()) {
      if (c.upstreams.size() != 1) {
        return o.error(path + ".upstream", "required when there are several upstreams");
      }
      r.upstream = c.upstreams.front().name;
    } else if (c.find_upstream(r.upstream) == nullptr) {
      std::string reason = "no upstream named " + quote(r.upstream);
      const std::string hint = suggestion(r.upstream, upstream_names);
      reason += hint.empty() ? " (upstreams: " +
                                   [&] {
                                     std::string all;
                                     for (const auto& n : upstream_names)
                                       all += (all.empty() ? "" : ", ") + n;
                                     return all;
                                   }() +
                                   ")"
                             : hint;
      return o.error(path + ".upstream", reason);
    }
    if (r.cache_ttl > r.max_ttl) {
      return o.error(path + ".cache_ttl", "must not exceed max_ttl (" + exact_duration(r.max_ttl) +
                                              "), found " + quote(exact_duration(r.cache_ttl)));
    }
    if (r.error_ttl > r.max_ttl) {
      return o.error(path + ".error_ttl", "must not exceed max_ttl (" + exact_duration(r.max_ttl) +
                                              "), found " + quote(exact_duration(r.error_ttl)));
    }
    if (r.retry.initial_backoff > r.retry.max_backoff) {
      return o.error(path + ".retry.initial_backoff",
                     "must not exceed retry.max_backoff (" + exact_duration(r.retry.max_backoff) +
                         "), found " + quote(exact_duration(r.retry.initial_backoff)));
    }
  }
  if (c.cache.max_object_bytes > c.cache.max_bytes) {
    return o.error("cache.max_object_bytes", "must not exceed cache.max_bytes (" +
                                                 exact_size(c.cache.max_bytes) + "), found " +
                                                 exact_size(c.cache.max_object_bytes));
  }
  if (c.log.queue_capacity < c.log.batch_size) {
    return o.error("log.queue_capacity", "must be at least log.batch_size (" +
                                             std::to_string(c.log.batch_size) + "), found " +
                                             std::to_string(c.log.queue_capacity));
  }
  for (const std::string& coding : c.compression.codings) {
    if (coding != "gzip" && coding != "zstd") {
      return o.error("compression.codings",
                     "expected \"zstd\" and/or \"gzip\", found " + quote(coding));
    }
  }
  if (c.broadcast.enabled) {
    const std::string& p = c.broadcast.prefix;
    if (p.size() < 2 || p.front() != '/' || p.back() != '/') {
      return o.error(
          "broadcast.prefix",
          "expected a path that starts and ends with '/' (\"/events/\"), found " + quote(p));
    }
    if (!c.broadcast.auth_upstream.empty() &&
        c.find_upstream(c.broadcast.auth_upstream) == nullptr) {
      return o.error("broadcast.auth_upstream",
                     "no upstream is named " + quote(c.broadcast.auth_upstream));
    }
    const BroadcastConfig& b = c.broadcast;
    if (b.queue_events < b.max_history) {
      return o.error("broadcast.queue_events",
                     "must be at least broadcast.max_history (" + std::to_string(b.max_history) +
                         ": a full replay must fit a subscriber's queue), found " +
                         std::to_string(b.queue_events));
    }
    if (b.queue_bytes < b.max_history_bytes) {
      return o.error("broadcast.queue_bytes", "must be at least broadcast.max_history_bytes (" +
                                                  std::to_string(b.max_history_bytes) +
                                                  "), found " + std::to_string(b.queue_bytes));
    }
    if (b.max_event_bytes > b.queue_bytes || b.max_event_bytes > b.max_history_bytes) {
      return o.error("broadcast.max_event_bytes",
                     "must not exceed broadcast.queue_bytes nor broadcast.max_history_bytes, "
                     "found " +
                         std::to_string(b.max_event_bytes));
    }
    if (c.broadcast.auth_path.front() != '/') {
      return o.error("broadcast.auth_path",
                     "expected a path starting with '/', found " + quote(c.broadcast.auth_path));
    }
  }
  if (c.admin.enabled) {
    if (!valid_address(c.admin.address)) {
      return o.error("admin.address",
                     "expected an IP address or \"localhost\", found " + quote(c.admin.address));
    }
    if (!is_loopback(c.admin.address) && c.admin.token.empty()) {
      return o.error("admin.token",
                     "required when the admin API listens on a non-loopback address (" +
                         c.admin.address + "); set admin.token or SLUICE_ADMIN_TOKEN");
    }
    if (c.admin.port != 0 && c.admin.port == c.listener.port &&
        c.admin.address == c.listener.address) {
      return o.error("admin.port", "the admin API and the listener both use " + c.admin.address +
                                       ":" + std::to_string(c.admin.port));
    }
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// TOML.

size_t line_of(const toml::node& node) { return node.source().begin.line; }

class TomlReader {
 public:
  TomlReader(std::string source, Origins& origins)
      : source_(std::move(source)), origins_(origins) {}

  MaybeError read_section(const toml::table& table, const Section& s, const std::string& path,
                          std::initializer_list<std::string_view> handled) {
    origins_.set(path, Origin{source_, line_of(table), path});
    for (const auto& [k, node] : table) {
      const std::string_view key = k.str();
      const std::string key_path = path + "." + std::string(key);
      const size_t line = k.source().begin.line != 0 ? k.source().begin.line : line_of(node);
      if (std::find(handled.begin(), handled.end(), key) != handled.end()) continue;
      auto field = std::find_if(s.fields.begin(), s.fields.end(),
                                [&](const Field& f) { return f.key == key; });
      if (field != s.fields.end()) {
        if (auto reason = assign(*field, from_toml(node))) {
          return ConfigError{source_, line_of(node) != 0 ? line_of(node) : line, key_path, *reason};
        }
        origins_.set(key_path,
                     Origin{source_, line_of(node) != 0 ? line_of(node) : line, key_path});
        continue;
      }
      auto sub = std::find_if(s.subs.begin(), s.subs.end(),
                              [&](const Section& x) { return x.name == key; });
      if (sub != s.subs.end()) {
        const toml::table* t = node.as_table();
        if (t == nullptr) {
          return ConfigError{source_, line, key_path,
                             "expected a table, found " + describe(from_toml(node))};
        }
        if (auto e = read_section(*t, *sub, key_path, {})) return e;
        continue;
      }
      std::vector<std::string> candidates;
      for (const Field& f : s.fields) candidates.emplace_back(f.key);
      for (const Section& x : s.subs) candidates.emplace_back(x.name);
      for (std::string_view h : handled) candidates.emplace_back(h);
      return ConfigError{source_, line, key_path, "unknown key" + suggestion(key, candidates)};
    }
    return std::nullopt;
  }

  // Reads the `name` of entry `index` of [[kind]]; "default" when omitted from a sole entry.
  MaybeError read_name(const toml::table& t, std::string_view kind, size_t index, size_t count,
                       std::string& name) {
    const std::string fallback_path = std::string(kind) + "[" + std::to_string(index + 1) + "]";
    const toml::node* node = t.get("name");
    if (node == nullptr) {
      if (count == 1) {
        name = "default";
        return std::nullopt;
      }
      return ConfigError{source_, line_of(t), fallback_path + ".name",
                         "required when there are several [[" + std::string(kind) + "]] entries"};
    }
    const auto* s = node->as_string();
    if (s == nullptr || !valid_name(s->get())) {
      return ConfigError{source_, line_of(*node), fallback_path + ".name",
                         "expected a name of letters, digits, '_' and '-' (at most 64), found " +
                             describe(from_toml(*node))};
    }
    name = s->get();
    return std::nullopt;
  }

  MaybeError read(const toml::table& root, Config& c) {
    static const std::vector<std::string> kTop = {"server", "listener",    "upstream",
                                                  "route",  "cache",       "log",
                                                  "admin",  "compression", "broadcast"};
    for (const auto& [k, node] : root) {
      const std::string key(k.str());
      const size_t line = k.source().begin.line;
      if (std::find(kTop.begin(), kTop.end(), key) == kTop.end()) {
        return ConfigError{source_, line, key, "unknown section" + suggestion(key, kTop)};
      }
      if (key == "upstream" || key == "route") {
        const toml::array* arr = node.as_array();
        if (arr == nullptr || !arr->is_array_of_tables()) {
          return ConfigError{source_, line, key,
                             "expected [[" + key + "]] entries (an array of tables), found " +
                                 describe(from_toml(node))};
        }
        continue;  // read after the plain sections; the order in the file does not matter
      }
      const toml::table* t = node.as_table();
      if (t == nullptr) {
        return ConfigError{source_, line, key,
                           "expected a table [" + key + "], found " + describe(from_toml(node))};
      }
    }
    auto plain = [&](std::string_view name, const Section& s) -> MaybeError {
      if (const toml::table* t = root[name].as_table()) {
        return read_section(*t, s, std::string(name), {});
      }
      return std::nullopt;
    };
    if (auto e = plain("server", server_section(c.server))) return e;
    if (auto e = plain("listener", listener_section(c.listener))) return e;
    if (auto e = plain("cache", cache_section(c.cache))) return e;
    if (auto e = plain("log", log_section(c.log))) return e;
    if (auto e = plain("admin", admin_section(c.admin))) return e;
    if (auto e = plain("compression", compression_section(c.compression))) return e;
    if (auto e = plain("broadcast", broadcast_section(c.broadcast))) return e;

    if (const toml::array* arr = root["upstream"].as_array()) {
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table& t = *arr->get(i)->as_table();
        UpstreamConfig u;
        if (auto e = read_name(t, "upstream", i, arr->size(), u.name)) return e;
        const std::string path = "upstream." + u.name;
        if (c.find_upstream(u.name) != nullptr) {
          return ConfigError{source_, line_of(t.get("name") ? *t.get("name") : t), path + ".name",
                             "duplicate upstream name " + quote(u.name)};
        }
        if (auto e = read_section(t, upstream_section(u), path, {"name"})) return e;
        origins_.set(path + ".name", Origin{source_, line_of(t), path + ".name"});
        c.upstreams.push_back(std::move(u));
      }
    }
    if (const toml::array* arr = root["route"].as_array()) {
      for (size_t i = 0; i < arr->size(); ++i) {
        const toml::table& t = *arr->get(i)->as_table();
        RouteConfig r;
        if (auto e = read_name(t, "route", i, arr->size(), r.name)) return e;
        const std::string path = "route." + r.name;
        if (c.find_route(r.name) != nullptr) {
          return ConfigError{source_, line_of(t.get("name") ? *t.get("name") : t), path + ".name",
                             "duplicate route name " + quote(r.name)};
        }
        if (auto e = read_section(t, route_section(r), path, {"name"})) return e;
        c.routes.push_back(std::move(r));
      }
    }
    return std::nullopt;
  }

 private:
  std::string source_;
  Origins& origins_;
};

// With no routes and exactly one upstream: route "default" (prefix "/") to it.
MaybeError add_default_route(Config& c, const Origins& o) {
  if (!c.routes.empty()) return std::nullopt;
  if (c.upstreams.size() > 1) {
    return o.error("route", "no [[route]] given and there are " +
                                std::to_string(c.upstreams.size()) +
                                " upstreams; add [[route]] entries that name them");
  }
  if (c.upstreams.empty()) return std::nullopt;  // reported by validate()
  RouteConfig r;
  r.name = "default";
  r.upstream = c.upstreams.front().name;
  c.routes.push_back(std::move(r));
  return std::nullopt;
}

// Sets one field by dotted path (for flags), recording where it came from.
MaybeError set_path(Config& c, const std::string& path, const Value& v, Origins& o,
                    const Origin& origin) {
  for (const Entry& e : entries(c)) {
    if (e.path != path) continue;
    if (auto reason = assign(e.field, v))
      return ConfigError{origin.file, origin.line, origin.key, *reason};
    o.set(path, origin);
    return std::nullopt;
  }
  return ConfigError{origin.file, 0, origin.key, "internal: no config key " + path};
}

// "ADDR:PORT" / "[v6]:PORT".
MaybeError parse_host_port(std::string_view text, std::string_view flag, std::string& address,
                           uint16_t& port) {
  const ConfigError bad{"flags", 0, std::string(flag),
                        "expected ADDR:PORT such as 127.0.0.1:8080, found " + quote(text)};
  std::string_view host;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad;
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad;
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  unsigned value = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
  if (host.empty() || port_text.empty() || ec != std::errc() ||
      end != port_text.data() + port_text.size() || value > 65535) {
    return bad;
  }
  address = std::string(host);
  if (!valid_address(address)) {
    return ConfigError{
        "flags", 0, std::string(flag),
        "expected an IP address or \"localhost\" before the port, found " + quote(host)};
  }
  port = static_cast<uint16_t>(value);
  return std::nullopt;
}

Origin flag_origin(std::string_view flag) { return Origin{"flags", 0, std::string(flag)}; }

// Applies the flags in `given` (names without dashes) to `c`.
MaybeError apply_given_flags(Config& c, const QuickStart& flags, const std::set<std::string>& given,
                             Origins& o) {
  if (given.count("listen")) {
    if (auto e = parse_host_port(flags.listen, "--listen", c.listener.address, c.listener.port))
      return e;
    o.set("listener.address", flag_origin("--listen"));
    o.set("listener.port", flag_origin("--listen"));
  }
  if (given.count("no-admin")) {
    c.admin.enabled = false;
  } else if (given.count("admin")) {
    if (auto e = parse_host_port(flags.admin, "--admin", c.admin.address, c.admin.port)) return e;
    c.admin.enabled = true;
    o.set("admin.address", flag_origin("--admin"));
    o.set("admin.port", flag_origin("--admin"));
  }
  if (given.count("upstream")) {
    if (c.upstreams.size() != 1) {
      return ConfigError{"flags", 0, "--upstream",
                         "the configuration has " + std::to_string(c.upstreams.size()) +
                             " upstreams; set their urls in the file instead"};
    }
    c.upstreams.front().url = flags.upstream;
    o.set("upstream." + c.upstreams.front().name + ".url", flag_origin("--upstream"));
  }
  for (RouteConfig& r : c.routes) {
    if (given.count("cache-ttl")) {
      if (flags.cache_ttl < Duration::zero()) {
        return ConfigError{"flags", 0, "--cache-ttl", "must not be negative"};
      }
      r.cache_ttl = flags.cache_ttl;
      o.set("route." + r.name + ".cache_ttl", flag_origin("--cache-ttl"));
    }
    if (given.count("coalesce-post")) r.coalesce_post = flags.coalesce_post;
    if (given.count("coalesce-streams")) {
      r.stream.coalesce = flags.coalesce_streams;
      r.stream.cache = flags.coalesce_streams;
      o.set("route." + r.name + ".stream.coalesce", flag_origin("--coalesce-streams"));
      o.set("route." + r.name + ".stream.cache", flag_origin("--coalesce-streams"));
    }
  }
  if (given.count("workers")) {
    if (auto e = set_path(c, "server.workers", Value::of_int(static_cast<int64_t>(flags.workers)),
                          o, flag_origin("--workers"))) {
      return e;
    }
  }
  if (given.count("data-dir")) {
    if (auto e = set_path(c, "server.data_dir", Value::of_string(flags.data_dir), o,
                          flag_origin("--data-dir"))) {
      return e;
    }
  }
  if (given.count("access-log")) {
    if (auto e = set_path(c, "log.access", Value::of_string(flags.access_log), o,
                          flag_origin("--access-log"))) {
      return e;
    }
  }
  if (given.count("log-level")) {
    if (auto e = set_path(c, "log.level", Value::of_string(flags.log_level), o,
                          flag_origin("--log-level"))) {
      return e;
    }
  }
  if (given.count("broadcast-prefix") && !flags.broadcast_prefix.empty()) {
    if (auto e = set_path(c, "broadcast.prefix", Value::of_string(flags.broadcast_prefix), o,
                          flag_origin("--broadcast-prefix"))) {
      return e;
    }
    c.broadcast.enabled = true;
  }
  return std::nullopt;
}

boost::json::object section_json(const Section& s) {
  boost::json::object out;
  for (const Field& f : s.fields) out[f.key] = field_json(f);
  for (const Section& sub : s.subs) out[sub.name] = section_json(sub);
  return out;
}

void flatten_patch(const boost::json::object& obj, const std::string& prefix,
                   std::vector<std::pair<std::string, const boost::json::value*>>& out) {
  for (const auto& kv : obj) {
    const std::string path =
        prefix.empty() ? std::string(kv.key()) : prefix + "." + std::string(kv.key());
    if (kv.value().is_object()) {
      flatten_patch(kv.value().get_object(), path, out);
    } else {
      out.emplace_back(path, &kv.value());
    }
  }
}

constexpr std::string_view kPatchSource = "PUT /admin/config";

}  // namespace

// ---------------------------------------------------------------------------------------------

const UpstreamConfig* Config::find_upstream(std::string_view name) const {
  for (const UpstreamConfig& u : upstreams) {
    if (u.name == name) return &u;
  }
  return nullptr;
}

const RouteConfig* Config::find_route(std::string_view name) const {
  for (const RouteConfig& r : routes) {
    if (r.name == name) return &r;
  }
  return nullptr;
}

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line != 0) out += ":" + std::to_string(line);
  if (!key.empty()) out += (out.empty() ? "" : ": ") + key;
  out += (out.empty() ? "" : ": ") + reason;
  return out;
}

void throw_exception_from_error(const ConfigError& error, const boost::source_location&) {
  throw std::runtime_error(error.to_string());
}

Environment process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const std::string key(name);
    if (const char* v = std::getenv(key.c_str())) return std::string(v);
    return std::nullopt;
  };
}

ConfigResult parse_config(std::string_view toml_text, std::string_view source_name,
                          const Environment& env) {
  const std::string source(source_name);
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    return ConfigError{source, e.source().begin.line, "", std::string(e.description())};
  }
  Config c;
  c.source = source;
  Origins origins(source);
  TomlReader reader(source, origins);
  if (auto e = reader.read(root, c)) return *e;
  if (auto e = add_default_route(c, origins)) return *e;
  if (auto e = apply_env(c, env, origins)) return *e;
  if (auto e = validate(c, origins)) return *e;
  return c;
}

ConfigResult load_config_file(const std::string& path, const Environment& env) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return ConfigError{path, 0, "", std::string("cannot read the file: ") + std::strerror(errno)};
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return ConfigError{path, 0, "", "cannot read the file"};
  return parse_config(text.str(), path, env);
}

ConfigResult config_from_flags(const QuickStart& flags, const Environment& env) {
  Config c;
  c.source = "flags";
  Origins origins("flags");
  if (flags.upstream.empty()) {
    return ConfigError{"flags", 0, "--upstream",
                       "required without --config: the URL to forward to, such as "
                       "http://127.0.0.1:8000"};
  }
  UpstreamConfig u;
  u.name = "default";
  c.upstreams.push_back(std::move(u));
  RouteConfig r;
  r.name = "default";
  r.upstream = "default";
  c.routes.push_back(std::move(r));
  std::set<std::string> given = {
      "listen",  "upstream", "cache-ttl",  "coalesce-post", "coalesce-streams",
      "workers", "data-dir", "access-log", "log-level",     "broadcast-prefix"};
  given.insert(flags.admin_enabled ? "admin" : "no-admin");
  if (auto e = apply_given_flags(c, flags, given, origins)) return *e;
  if (auto e = apply_env(c, env, origins)) return *e;
  if (auto e = validate(c, origins)) return *e;
  return c;
}

ConfigResult apply_flags(const Config& file_config, const QuickStart& flags,
                         const std::vector<std::string>& given) {
  Config c = file_config;
  Origins origins(c.source);
  const std::set<std::string> names(given.begin(), given.end());
  if (auto e = apply_given_flags(c, flags, names, origins)) return *e;
  if (auto e = validate(c, origins)) return *e;
  return c;
}

boost::json::object to_json(const Config& config) {
  Config c = config;
  boost::json::object out;
  out["source"] = c.source;
  out["server"] = section_json(server_section(c.server));
  out["listener"] = section_json(listener_section(c.listener));
  boost::json::array upstreams;
  for (UpstreamConfig& u : c.upstreams) {
    boost::json::object o;
    o["name"] = u.name;
    for (auto& kv : section_json(upstream_section(u))) o[kv.key()] = kv.value();
    upstreams.emplace_back(std::move(o));
  }
  out["upstream"] = std::move(upstreams);
  boost::json::array routes;
  for (RouteConfig& r : c.routes) {
    boost::json::object o;
    o["name"] = r.name;
    for (auto& kv : section_json(route_section(r))) o[kv.key()] = kv.value();
    routes.emplace_back(std::move(o));
  }
  out["route"] = std::move(routes);
  out["cache"] = section_json(cache_section(c.cache));
  out["log"] = section_json(log_section(c.log));
  boost::json::object admin = section_json(admin_section(c.admin));
  admin["token"] = c.admin.token.empty() ? "" : "<redacted>";
  out["admin"] = std::move(admin);
  out["compression"] = section_json(compression_section(c.compression));
  boost::json::object broadcast = section_json(broadcast_section(c.broadcast));
  broadcast["publish_token"] = c.broadcast.publish_token.empty() ? "" : "<redacted>";
  out["broadcast"] = std::move(broadcast);
  return out;
}

ConfigResult apply_runtime_patch(const Config& current, const boost::json::value& patch) {
  const std::string source(kPatchSource);
  if (!patch.is_object()) {
    return ConfigError{source, 0, "",
                       "expected a JSON object of settings, found " + describe(from_json(patch))};
  }
  Config c = current;
  std::vector<std::pair<std::string, const boost::json::value*>> items;
  flatten_patch(patch.get_object(), "", items);
  const std::vector<Entry> all = entries(c);
  std::vector<std::string> runtime_keys;
  for (const Entry& e : all) {
    if (e.field.runtime) runtime_keys.push_back(e.path);
  }
  Origins origins(source);
  for (const auto& [path, value] : items) {
    auto it = std::find_if(all.begin(), all.end(), [&](const Entry& e) { return e.path == path; });
    if (it == all.end()) {
      return ConfigError{source, 0, path,
                         "unknown or not a run-time setting" + suggestion(path, runtime_keys)};
    }
    if (!it->field.runtime) {
      return ConfigError{source, 0, path,
                         "cannot change at run time; change the config file and restart"};
    }
    if (auto reason = assign(it->field, from_json(*value))) {
      return ConfigError{source, 0, path, *reason};
    }
    origins.set(path, Origin{source, 0, path});
  }
  if (auto e = validate(c, origins)) return *e;
  return c;
}

std::vector<KeyInfo> config_keys() {
  Config c;
  UpstreamConfig u;
  u.name = "<name>";
  c.upstreams.push_back(u);
  RouteConfig r;
  r.name = "<name>";
  c.routes.push_back(r);
  std::vector<KeyInfo> out;
  auto range_of = [](const Field& f) -> std::string {
    if (!f.choices.empty()) {
      std::string s;
      for (std::string_view ch : f.choices) s += (s.empty() ? "" : "|") + std::string(ch);
      return s;
    }
    if (f.kind == Kind::kPort || (!f.min && !f.max)) return f.non_empty ? "non-empty" : "";
    return format_bound(f.kind, f.min.value_or(0)) + ".." +
           (f.max ? format_bound(f.kind, *f.max) : std::string());
  };
  for (const Scope& s : scopes(c)) {
    if (s.path.starts_with("upstream.") || s.path.starts_with("route.")) {
      const std::string kind = s.path.substr(0, s.path.find('.'));
      out.push_back(
          KeyInfo{kind + ".<name>.name", "string", "", "", false, "[A-Za-z0-9_-]+, unique"});
    }
    std::vector<Entry> flat;
    flatten(s.section, s.path, s.env, flat);
    for (const Entry& e : flat) {
      out.push_back(KeyInfo{e.path, std::string(kind_name(e.field.kind)), field_toml(e.field),
                            e.env, e.field.runtime, range_of(e.field)});
    }
  }
  return out;
}

}  // namespace sluice::gateway
