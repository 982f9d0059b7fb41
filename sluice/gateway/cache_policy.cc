#include "sluice/gateway/cache_policy.h"

#include <algorithm>
#include <array>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <charconv>
#include <cstdio>

#include "sluice/base/check.h"
#include "sluice/gateway/cache_key.h"
#include "sluice/http/headers.h"

namespace sluice::gateway {

namespace {

namespace bh = boost::beast::http;
using std::chrono::system_clock;

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

using http::iequals;

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls `f(member)` for each non-empty, trimmed member of a comma-separated list; commas inside
// quoted strings (with backslash escapes) do not split. Stops early when `f` returns false.
template <typename F>
bool for_each_member(std::string_view list, F&& f) {
  size_t start = 0;
  bool quoted = false;
  for (size_t i = 0; i <= list.size(); ++i) {
    if (i < list.size()) {
      const char c = list[i];
      if (quoted) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          quoted = false;
        }
        continue;
      }
      if (c == '"') {
        quoted = true;
        continue;
      }
      if (c != ',') continue;
    }
    const std::string_view member = trim(list.substr(start, std::min(i, list.size()) - start));
    if (!member.empty() && !f(member)) return false;
    start = i + 1;
  }
  return true;
}

// Calls `f(member)` for the members of every line of header `name`.
template <typename F>
void for_each_member(const bh::fields& fields, bh::field name, F&& f) {
  const auto [first, last] = fields.equal_range(name);
  for (auto it = first; it != last; ++it) {
    if (!for_each_member(std::string_view(it->value()), f)) return;
  }
}

// delta-seconds (RFC 9111 1.2.2): digits only, clamped to 2^31. nullopt when malformed.
std::optional<Duration> parse_delta_seconds(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    if (v <= 2147483648ULL) v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 2147483648ULL) v = 2147483648ULL;
  return std::chrono::duration_cast<Duration>(std::chrono::seconds(v));
}

void keep_min(std::optional<Duration>& slot, Duration v) {
  if (!slot || v < *slot) slot = v;
}

std::optional<system_clock::time_point> first_date(const bh::fields& fields, bh::field name,
                                                   system_clock::time_point reference) {
  const auto it = fields.find(name);
  if (it == fields.end()) return std::nullopt;
  return parse_http_date(std::string_view(it->value()), reference);
}

// Explicit freshness lifetime (RFC 9111 4.2.1): s-maxage > max-age > Expires - Date.
std::optional<Duration> explicit_lifetime(const CacheControl& cc, const bh::fields& headers,
                                          system_clock::time_point now) {
  if (cc.s_maxage) return cc.s_maxage;
  if (cc.max_age) return cc.max_age;
  const auto [first, last] = headers.equal_range(bh::field::expires);
  if (first == last) return std::nullopt;
  if (std::next(first) != last) return Duration::zero();  // several Expires: stale
  const auto expires = parse_http_date(std::string_view(first->value()), now);
  if (!expires) return Duration::zero();  // invalid, e.g. "0": in the past (RFC 9111 5.3)
  const auto date = first_date(headers, bh::field::date, now).value_or(now);
  const auto lifetime = std::chrono::duration_cast<Duration>(*expires - date);
  return std::clamp(lifetime, Duration::zero(), kMaxDeltaSeconds);
}

bool is_safe_method(std::string_view m) noexcept {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE";
}

// The opaque-tag (with its quotes) of an entity-tag, or "" when malformed.
std::string_view opaque_tag(std::string_view etag) noexcept {
  if (etag.size() >= 2 && etag[0] == 'W' && etag[1] == '/') etag.remove_prefix(2);
  if (etag.size() < 2 || etag.front() != '"' || etag.back() != '"') return {};
  if (etag.substr(1, etag.size() - 2).find('"') != std::string_view::npos) return {};
  return etag;
}

// ---- dates ----

constexpr std::array<std::string_view, 12> kMonths = {"jan", "feb", "mar", "apr", "may", "jun",
                                                      "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kDays = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
constexpr std::array<std::string_view, 7> kLongDays = {
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};

class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool done() const { return s_.empty(); }
  bool lit(char c) {
    if (s_.empty() || s_.front() != c) return false;
    s_.remove_prefix(1);
    return true;
  }
  bool lit(std::string_view word) {  // case-insensitive
    if (s_.size() < word.size() || !iequals(s_.substr(0, word.size()), word)) return false;
    s_.remove_prefix(word.size());
    return true;
  }
  std::string_view letters() {
    size_t n = 0;
    while (n < s_.size() && ((s_[n] | 0x20) >= 'a' && (s_[n] | 0x20) <= 'z')) ++n;
    const std::string_view w = s_.substr(0, n);
    s_.remove_prefix(n);
    return w;
  }
  bool digits(size_t n, int& out) {
    if (s_.size() < n) return false;
    out = 0;
    for (size_t i = 0; i < n; ++i) {
      if (s_[i] < '0' || s_[i] > '9') return false;
      out = out * 10 + (s_[i] - '0');
    }
    s_.remove_prefix(n);
    return true;
  }
  bool month(int& out) {
    const std::string_view w = letters();
    for (size_t i = 0; i < kMonths.size(); ++i) {
      if (iequals(w, kMonths[i])) {
        out = static_cast<int>(i) + 1;
        return true;
      }
    }
    return false;
  }
  bool time_of_day(int& h, int& m, int& s) {
    return digits(2, h) && lit(':') && digits(2, m) && lit(':') && digits(2, s) && h <= 23 &&
           m <= 59 && s <= 60;  // 60: leap second
  }

 private:
  std::string_view s_;
};

template <size_t N>
bool one_of(std::string_view w, const std::array<std::string_view, N>& names) {
  return std::any_of(names.begin(), names.end(), [&](std::string_view n) { return iequals(w, n); });
}

// Parsed dates are clamped to [1970, 2200): system_clock counts nanoseconds in 64 bits (about
// 1678..2262), and the difference of any two clamped dates must fit too. "Fri, 31 Dec 9999
// 23:59:59 GMT" (a common "never expires") becomes 2200-01-01.
constexpr std::chrono::sys_days kMinDate{std::chrono::year(1970) / 1 / 1};
constexpr std::chrono::sys_days kMaxDate{std::chrono::year(2200) / 1 / 1};

std::optional<system_clock::time_point> make_time(int y, int mo, int d, int h, int mi, int s) {
  const std::chrono::year_month_day ymd{std::chrono::year(y),
                                        std::chrono::month(static_cast<unsigned>(mo)),
                                        std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  const std::chrono::sys_seconds t = std::chrono::sys_days(ymd) + std::chrono::hours(h) +
                                     std::chrono::minutes(mi) + std::chrono::seconds(s);
  const std::chrono::sys_seconds clamped =
      std::clamp(t, std::chrono::sys_seconds(kMinDate), std::chrono::sys_seconds(kMaxDate));
  return std::chrono::time_point_cast<system_clock::duration>(clamped);
}

}  // namespace

// ---- Cache-Control ----

CacheControl parse_cache_control(const bh::fields& headers) {
  CacheControl cc;
  bool any = false;
  for_each_member(headers, bh::field::cache_control, [&](std::string_view member) {
    any = true;
    const size_t eq = member.find('=');
    const std::string_view name = trim(member.substr(0, eq));
    const bool has_value = eq != std::string_view::npos;
    const std::string_view value = has_value ? trim(member.substr(eq + 1)) : std::string_view();
    const auto delta = [&] { return has_value ? parse_delta_seconds(value) : std::nullopt; };
    switch (name.size()) {
      case 6:
        if (iequals(name, "public")) cc.public_ = true;
        break;
      case 7:
        if (iequals(name, "private")) cc.private_ = true;
        if (iequals(name, "max-age")) keep_min(cc.max_age, delta().value_or(Duration::zero()));
        break;
      case 8:
        if (iequals(name, "no-store")) cc.no_store = true;
        if (iequals(name, "no-cache")) cc.no_cache = true;
        if (iequals(name, "s-maxage")) keep_min(cc.s_maxage, delta().value_or(Duration::zero()));
        break;
      case 9:
        if (iequals(name, "immutable")) cc.immutable = true;
        if (iequals(name, "max-stale")) {
          keep_min(cc.max_stale, has_value ? delta().value_or(Duration::zero()) : kMaxDeltaSeconds);
        }
        if (iequals(name, "min-fresh")) {
          const Duration v = delta().value_or(kMaxDeltaSeconds);
          if (!cc.min_fresh || v > *cc.min_fresh) cc.min_fresh = v;
        }
        break;
      case 12:
        if (iequals(name, "no-transform")) cc.no_transform = true;
        break;
      case 14:
        if (iequals(name, "only-if-cached")) cc.only_if_cached = true;
        if (iequals(name, "stale-if-error")) {
          keep_min(cc.stale_if_error, delta().value_or(Duration::zero()));
        }
        break;
      case 15:
        if (iequals(name, "must-revalidate")) cc.must_revalidate = true;
        if (iequals(name, "must-understand")) cc.must_understand = true;
        break;
      case 16:
        if (iequals(name, "proxy-revalidate")) cc.proxy_revalidate = true;
        break;
      case 22:
        if (iequals(name, "stale-while-revalidate")) {
          keep_min(cc.stale_while_revalidate, delta().value_or(Duration::zero()));
        }
        break;
      default:
        break;  // unknown directive: ignored (RFC 9111 5.2.3)
    }
    return true;
  });
  if (!any) {
    for_each_member(headers, bh::field::pragma, [&](std::string_view member) {
      if (iequals(member, "no-cache")) cc.no_cache = true;
      return !cc.no_cache;
    });
  }
  return cc;
}

std::string_view to_string(StoreVerdict verdict) noexcept {
  switch (verdict) {
    case StoreVerdict::store:
      return "store";
    case StoreVerdict::no_store_request:
      return "no_store_request";
    case StoreVerdict::no_store_response:
      return "no_store_response";
    case StoreVerdict::private_response:
      return "private_response";
    case StoreVerdict::set_cookie:
      return "set_cookie";
    case StoreVerdict::status_not_cacheable:
      return "status_not_cacheable";
    case StoreVerdict::error_status:
      return "error_status";
    case StoreVerdict::vary_star:
      return "vary_star";
    case StoreVerdict::authorization_without_permission:
      return "authorization_without_permission";
    case StoreVerdict::method_not_cacheable:
      return "method_not_cacheable";
    case StoreVerdict::zero_lifetime:
      return "zero_lifetime";
    case StoreVerdict::no_cache_response:
      return "no_cache_response";
  }
  return "unknown";
}

bool heuristically_cacheable(unsigned status) noexcept {
  switch (status) {
    case 200:
    case 203:
    case 204:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501:
      return true;
    default:
      return false;
  }
}

// ---- store decision ----

StoreDecision decide_store(const StoreInputs& in) {
  SLUICE_CHECK(in.request_headers != nullptr && in.response_headers != nullptr,
               "StoreInputs needs request and response headers");
  StoreDecision d;
  const bh::fields& req = *in.request_headers;
  const bh::fields& resp = *in.response_headers;
  const auto verdict = [&](StoreVerdict v) {
    d.verdict = v;
    return d;
  };

  if (!(in.method == "GET" || in.method == "HEAD" || (in.method == "POST" && in.post_opted_in))) {
    return verdict(StoreVerdict::method_not_cacheable);
  }
  if (parse_cache_control(req).no_store) return verdict(StoreVerdict::no_store_request);
  const CacheControl cc = parse_cache_control(resp);
  if (cc.no_store) return verdict(StoreVerdict::no_store_response);
  if (cc.private_) return verdict(StoreVerdict::private_response);
  if (resp.find(bh::field::set_cookie) != resp.end()) return verdict(StoreVerdict::set_cookie);
  bool star = false;
  for_each_member(resp, bh::field::vary, [&](std::string_view m) {
    star = m == "*";
    return !star;
  });
  if (star) return verdict(StoreVerdict::vary_star);
  if (((!in.key_has_tenant && req.find(bh::field::authorization) != req.end()) ||
       in.other_credentials) &&
      !(cc.public_ || cc.s_maxage || cc.must_revalidate)) {
    return verdict(StoreVerdict::authorization_without_permission);
  }

  // Final statuses only; 206 (sluice stores no ranges) and 304 (a revalidation answer) never.
  const unsigned status = in.status;
  if (status < 200 || status > 599 || status == 206 || status == 304) {
    return verdict(StoreVerdict::status_not_cacheable);
  }
  if (cc.must_understand && !heuristically_cacheable(status)) {
    return verdict(StoreVerdict::status_not_cacheable);
  }
  // After the credential and status checks: a no-cache answer passed every rule but reuse
  // without revalidation (the gateway may share it in flight, as a coalesced stream).
  if (cc.no_cache) return verdict(StoreVerdict::no_cache_response);
  const std::optional<Duration> explicit_ttl = explicit_lifetime(cc, resp, in.now);
  if (status >= 400) {
    if (!in.cache_errors) return verdict(StoreVerdict::error_status);
    d.lifetime = explicit_ttl ? std::min(*explicit_ttl, in.error_ttl) : in.error_ttl;
  } else if (explicit_ttl) {
    d.lifetime = *explicit_ttl;
  } else if (heuristically_cacheable(status) || cc.public_) {
    d.lifetime = in.default_ttl;
  } else {
    return verdict(StoreVerdict::status_not_cacheable);
  }

  d.initial_age = initial_age(resp, in.now, in.response_delay);
  const Duration remaining = d.lifetime - d.initial_age;
  if (remaining <= Duration::zero() || in.max_ttl <= Duration::zero()) {
    return verdict(StoreVerdict::zero_lifetime);
  }
  d.ttl = std::min(remaining, in.max_ttl);
  return verdict(StoreVerdict::store);
}

// ---- request side ----

RequestDecision decide_request(const bh::fields& request_headers) {
  const CacheControl cc = parse_cache_control(request_headers);
  RequestDecision d;
  d.may_use_cache = !cc.no_cache && !(cc.max_age && *cc.max_age == Duration::zero());
  d.may_store = !cc.no_store;
  d.only_if_cached = cc.only_if_cached;
  d.max_age = cc.max_age;
  d.min_fresh = cc.min_fresh;
  d.max_stale = cc.max_stale;
  return d;
}

bool RequestDecision::accepts(Duration age, Duration remaining, bool must_revalidate) const {
  if (!may_use_cache) return false;
  if (max_age && age > *max_age) return false;
  if (min_fresh && remaining < *min_fresh) return false;
  if (remaining > Duration::zero()) return true;
  if (must_revalidate || !max_stale) return false;
  return -remaining <= *max_stale;
}

// ---- Vary ----

std::vector<std::string> vary_names(const bh::fields& response_headers) {
  std::vector<std::string> names;
  bool star = false;
  for_each_member(response_headers, bh::field::vary, [&](std::string_view m) {
    if (m == "*") {
      star = true;
      return false;
    }
    std::string name(m);
    for (char& c : name) c = lower(c);
    names.push_back(std::move(name));
    return true;
  });
  if (star) return {"*"};
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::string vary_fingerprint(const std::vector<std::string>& names,
                             const bh::fields& request_headers) {
  std::string out;
  std::string value;
  for (const std::string& name : names) {
    value.clear();
    bool present = false;
    const auto [first, last] = request_headers.equal_range(name);
    for (auto it = first; it != last; ++it) {
      present = true;
      for_each_member(std::string_view(it->value()), [&](std::string_view m) {
        if (!value.empty()) value.push_back(',');
        value.append(m);
        return true;
      });
    }
    out.append(name);
    if (!present) {
      out.append("=-;");
      continue;
    }
    char len[24];
    const auto r = std::to_chars(len, len + sizeof len, value.size());
    out.push_back('=');
    out.append(len, r.ptr);
    out.push_back(':');
    out.append(value);
    out.push_back(';');
  }
  return out;
}

// ---- conditionals ----

bool not_modified(const bh::fields& request_headers, const bh::fields& stored_response_headers) {
  if (request_headers.find(bh::field::if_none_match) != request_headers.end()) {
    std::string_view stored;
    const auto etag = stored_response_headers.find(bh::field::etag);
    if (etag != stored_response_headers.end()) stored = opaque_tag(trim(etag->value()));
    bool match = false;
    for_each_member(request_headers, bh::field::if_none_match, [&](std::string_view m) {
      if (m == "*") {
        match = true;  // a stored representation exists
      } else {
        const std::string_view tag = opaque_tag(m);
        match = !tag.empty() && tag == stored;
      }
      return !match;
    });
    return match;
  }
  const auto ims_it = request_headers.find(bh::field::if_modified_since);
  if (ims_it == request_headers.end()) return false;
  const auto ims = parse_http_date(std::string_view(ims_it->value()));
  if (!ims) return false;  // invalid date: ignore the condition (RFC 9110 13.1.3)
  auto validator_it = stored_response_headers.find(bh::field::last_modified);
  if (validator_it == stored_response_headers.end()) {
    validator_it = stored_response_headers.find(bh::field::date);
  }
  if (validator_it == stored_response_headers.end()) return false;
  const auto validator = parse_http_date(std::string_view(validator_it->value()), *ims);
  return validator && *validator <= *ims;
}

// ---- invalidation ----

std::vector<std::string> invalidation_targets(std::string_view method, unsigned status,
                                              std::string_view host, std::string_view target,
                                              const bh::fields& response_headers) {
  std::vector<std::string> out;
  if (is_safe_method(method) || status < 200 || status > 399) return out;
  std::string own = canonical_target(target);
  const std::string own_host = normalize_host(host, 80);
  // Base URI for relative references: the request target on a placeholder origin.
  boost::urls::url base;
  {
    auto parsed = boost::urls::parse_origin_form(own.empty() ? std::string_view("/") : own);
    if (parsed) {
      base = boost::urls::url(*parsed);
    } else {
      base = boost::urls::url("/");
    }
    base.set_scheme("http");
    base.set_encoded_host("base.invalid");
  }
  out.push_back(std::move(own));
  for (const bh::field name : {bh::field::location, bh::field::content_location}) {
    const auto it = response_headers.find(name);
    if (it == response_headers.end()) continue;
    const auto ref = boost::urls::parse_uri_reference(trim(it->value()));
    if (!ref) continue;
    if (ref->has_scheme()) {
      const auto scheme = ref->scheme();
      if (!iequals(scheme, "http") && !iequals(scheme, "https")) continue;
    }
    if (ref->has_authority()) {
      std::string authority(ref->encoded_host());
      if (ref->has_port()) {
        authority.push_back(':');
        authority.append(ref->port());
      }
      const bool https = ref->has_scheme() && iequals(ref->scheme(), "https");
      if (normalize_host(authority, https ? 443 : 80) != own_host) continue;
    }
    boost::urls::url resolved;
    if (!boost::urls::resolve(base, *ref, resolved)) continue;
    std::string t(resolved.encoded_path());
    if (t.empty()) t = "/";
    if (resolved.has_query()) {
      t.push_back('?');
      t.append(resolved.encoded_query());
    }
    std::string c = canonical_target(t);
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(std::move(c));
  }
  return out;
}

// ---- age ----

Duration initial_age(const bh::fields& response_headers, system_clock::time_point response_time,
                     Duration response_delay) {
  Duration age_value{};
  const auto age_it = response_headers.find(bh::field::age);
  if (age_it != response_headers.end()) {
    // A list-valued Age uses its first member; an invalid one is ignored (RFC 9111 5.1).
    std::optional<Duration> first;
    for_each_member(std::string_view(age_it->value()), [&](std::string_view m) {
      if (!(m.front() == '"')) first = parse_delta_seconds(m);
      return false;
    });
    age_value = first.value_or(Duration::zero());
  }
  Duration apparent{};
  if (const auto date = first_date(response_headers, bh::field::date, response_time)) {
    apparent =
        std::max(Duration::zero(), std::chrono::duration_cast<Duration>(response_time - *date));
  }
  const Duration corrected_age =
      age_value + std::clamp(response_delay, Duration::zero(), kMaxDeltaSeconds);
  return std::min(std::max(apparent, corrected_age), kMaxDeltaSeconds);
}

std::string age_header(Duration initial_age, Duration resident) {
  const Duration total = std::clamp(initial_age, Duration::zero(), kMaxDeltaSeconds) +
                         std::clamp(resident, Duration::zero(), kMaxDeltaSeconds);
  const auto secs =
      std::chrono::duration_cast<std::chrono::seconds>(std::min(total, kMaxDeltaSeconds));
  return std::to_string(secs.count());
}

// ---- dates ----

std::optional<system_clock::time_point> parse_http_date(std::string_view text,
                                                        system_clock::time_point reference) {
  Cursor c(trim(text));
  const std::string_view day_name = c.letters();
  int year = 0, month = 0, day = 0, h = 0, m = 0, s = 0;
  if (c.lit(',')) {
    if (one_of(day_name, kDays)) {
      // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
      if (!(c.lit(' ') && c.digits(2, day) && c.lit(' ') && c.month(month) && c.lit(' ') &&
            c.digits(4, year) && c.lit(' ') && c.time_of_day(h, m, s) && c.lit(" GMT"))) {
        return std::nullopt;
      }
    } else if (one_of(day_name, kLongDays)) {
      // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
      int yy = 0;
      if (!(c.lit(' ') && c.digits(2, day) && c.lit('-') && c.month(month) && c.lit('-') &&
            c.digits(2, yy) && c.lit(' ') && c.time_of_day(h, m, s) && c.lit(" GMT"))) {
        return std::nullopt;
      }
      const std::chrono::year_month_day ref{std::chrono::floor<std::chrono::days>(reference)};
      const int ref_year = static_cast<int>(ref.year());
      year = ref_year / 100 * 100 + yy;
      if (year > ref_year + 50) year -= 100;
    } else {
      return std::nullopt;
    }
  } else if (one_of(day_name, kDays)) {
    // asctime: Sun Nov  6 08:49:37 1994
    if (!(c.lit(' ') && c.month(month) && c.lit(' '))) return std::nullopt;
    if (c.lit(' ')) {
      if (!c.digits(1, day)) return std::nullopt;
    } else if (!c.digits(2, day)) {
      return std::nullopt;
    }
    if (!(c.lit(' ') && c.time_of_day(h, m, s) && c.lit(' ') && c.digits(4, year))) {
      return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  if (!c.done()) return std::nullopt;
  return make_time(year, month, day, h, m, s);
}

std::optional<system_clock::time_point> parse_http_date(std::string_view text) {
  return parse_http_date(text, system_clock::now());
}

std::string format_http_date(system_clock::time_point t) {
  static constexpr std::array<const char*, 7> kDayNames = {"Sun", "Mon", "Tue", "Wed",
                                                           "Thu", "Fri", "Sat"};
  static constexpr std::array<const char*, 12> kMonthNames = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const auto days = std::chrono::floor<std::chrono::days>(t);
  const std::chrono::year_month_day ymd{days};
  const std::chrono::hh_mm_ss hms{std::chrono::floor<std::chrono::seconds>(t - days)};
  const std::chrono::weekday wd{days};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04d %02d:%02d:%02d GMT", kDayNames[wd.c_encoding()],
                static_cast<unsigned>(ymd.day()),
                kMonthNames[static_cast<unsigned>(ymd.month()) - 1], static_cast<int>(ymd.year()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

}  // namespace sluice::gateway
