#include "sluice/gateway/cache_key.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>

#include "sluice/base/check.h"
#include "sluice/gateway/canonical_json.h"

namespace sluice::gateway {

namespace {

namespace bh = boost::beast::http;

// The SHA-256 implementation, fetched once (OpenSSL 3 would otherwise look it up per call).
const EVP_MD* sha256_md() {
  static const EVP_MD* md = [] {
    const EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (m == nullptr) m = EVP_sha256();
    return m;
  }();
  return md;
}

// One digest context per thread, reused (EVP_MD_CTX_new allocates).
struct ContextHolder {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~ContextHolder() { EVP_MD_CTX_free(ctx); }
};

void to_hex(const unsigned char* bytes, size_t n, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const size_t at = out.size();
  out.resize(at + 2 * n);
  for (size_t i = 0; i < n; ++i) {
    out[at + 2 * i] = kHex[bytes[i] >> 4];
    out[at + 2 * i + 1] = kHex[bytes[i] & 0xf];
  }
}

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequals_prefix(std::string_view s, std::string_view lower_prefix) noexcept {
  if (s.size() < lower_prefix.size()) return false;
  for (size_t i = 0; i < lower_prefix.size(); ++i) {
    if (lower(s[i]) != lower_prefix[i]) return false;
  }
  return true;
}

// Appends `<name>=<len>:<value>;`.
void append_part(std::string& key, std::string_view name, std::string_view value) {
  // "<name>=<len>:" is formatted on the stack and appended at once (names are short).
  char prefix[64];
  if (name.size() + 24 > sizeof prefix) {
    key.append(name).push_back('=');
    char len[24];
    const auto r = std::to_chars(len, len + sizeof len, value.size());
    key.append(len, r.ptr).push_back(':');
  } else {
    std::memcpy(prefix, name.data(), name.size());
    char* at = prefix + name.size();
    *at++ = '=';
    at = std::to_chars(at, prefix + sizeof prefix, value.size()).ptr;
    *at++ = ':';
    key.append(prefix, at);
  }
  key.append(value).push_back(';');
}

// Splits a request target into authority (absolute-form only), path and query.
struct Target {
  std::string_view authority;
  bool absolute = false;
  bool https = false;
  std::string_view path;
  std::string_view query;
};

Target split_target(std::string_view target) {
  Target t;
  const size_t hash = target.find('#');  // never sent, but never part of a key either
  if (hash != std::string_view::npos) target = target.substr(0, hash);
  std::string_view rest = target;
  if (iequals_prefix(rest, "http://") || iequals_prefix(rest, "https://")) {
    t.absolute = true;
    t.https = lower(rest[4]) == 's';
    rest.remove_prefix(t.https ? 8 : 7);
    const size_t end = rest.find_first_of("/?");
    t.authority = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
    const size_t at = t.authority.rfind('@');  // userinfo is not part of the host
    if (at != std::string_view::npos) t.authority.remove_prefix(at + 1);
  }
  const size_t q = rest.find('?');
  t.path = rest.substr(0, q);
  if (q != std::string_view::npos) t.query = rest.substr(q + 1);
  if (t.absolute && t.path.empty()) t.path = "/";
  return t;
}

// Joins all lines of header `name` with ", ". Returns false when there is none.
bool header_value(const bh::fields& fields, std::string_view name, std::string& out) {
  out.clear();
  bool found = false;
  const auto [first, last] = fields.equal_range(name);
  for (auto it = first; it != last; ++it) {
    if (found) out.append(", ");
    out.append(it->value());
    found = true;
  }
  return found;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  static thread_local ContextHolder holder;
  SLUICE_CHECK(holder.ctx != nullptr, "EVP_MD_CTX_new failed");
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int len = 0;
  const bool ok = EVP_DigestInit_ex(holder.ctx, sha256_md(), nullptr) == 1 &&
                  EVP_DigestUpdate(holder.ctx, data.data(), data.size()) == 1 &&
                  EVP_DigestFinal_ex(holder.ctx, digest.data(), &len) == 1;
  SLUICE_CHECK(ok && len == 32, "SHA-256 failed");
  std::string out;
  out.reserve(64);
  to_hex(digest.data(), len, out);
  return out;
}

namespace {

// `host` without its port when that is the default one (or empty); still to be lower-cased.
std::string_view without_default_port(std::string_view host, unsigned default_port) noexcept {
  // The port starts after the last ':' that is not inside an IPv6 literal's brackets.
  size_t colon = host.rfind(':');
  const size_t bracket = host.rfind(']');
  if (colon != std::string_view::npos && bracket != std::string_view::npos && colon < bracket) {
    colon = std::string_view::npos;
  }
  if (colon != std::string_view::npos) {
    const std::string_view port = host.substr(colon + 1);
    unsigned value = 0;
    const auto r = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() ||
        (r.ec == std::errc() && r.ptr == port.data() + port.size() && value == default_port)) {
      host = host.substr(0, colon);
    }
  }
  return host;
}

// Appends `<name>=<len>:<lower-cased value>;` (the part `append_part` would write for the
// lower-cased value), without a temporary string.
void append_part_lower(std::string& key, std::string_view name, std::string_view value) {
  append_part(key, name, value);
  const size_t end = key.size() - 1;  // before the ';'
  for (size_t i = end - value.size(); i < end; ++i) key[i] = lower(key[i]);
}

// A query that `sort_query` would return unchanged: no empty parameter, names already in
// order (the sort is stable, so equal names keep their order).
bool is_sorted_query(std::string_view query) noexcept {
  if (query.empty()) return true;
  std::string_view previous;
  while (true) {
    const size_t amp = query.find('&');
    const std::string_view p = query.substr(0, amp);
    if (p.empty()) return false;
    const std::string_view name = p.substr(0, p.find('='));
    if (name < previous) return false;
    previous = name;
    if (amp == std::string_view::npos) return true;
    query.remove_prefix(amp + 1);
  }
}

}  // namespace

std::string normalize_host(std::string_view host, unsigned default_port) {
  std::string out(without_default_port(host, default_port));
  for (char& c : out) c = lower(c);
  return out;
}

std::string sort_query(std::string_view query) {
  // Parameters as views; most queries are short, so an insertion sort (stable) on a small
  // vector beats std::stable_sort's buffer.
  std::vector<std::string_view> params;
  size_t total = 0;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view p = query.substr(0, amp);
    if (!p.empty()) {
      params.push_back(p);
      total += p.size() + 1;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  const auto name_of = [](std::string_view p) { return p.substr(0, p.find('=')); };
  if (params.size() <= 16) {
    for (size_t i = 1; i < params.size(); ++i) {
      const std::string_view v = params[i];
      const std::string_view n = name_of(v);
      size_t j = i;
      while (j > 0 && n < name_of(params[j - 1])) {
        params[j] = params[j - 1];
        --j;
      }
      params[j] = v;
    }
  } else {
    std::stable_sort(params.begin(), params.end(), [&](std::string_view a, std::string_view b) {
      return name_of(a) < name_of(b);
    });
  }
  std::string out;
  out.reserve(total);
  for (size_t i = 0; i < params.size(); ++i) {
    if (i > 0) out.push_back('&');
    out.append(params[i]);
  }
  return out;
}

bool key_has_tenant(const KeyPolicy& policy) noexcept {
  if (!policy.include_credentials) return false;
  return std::any_of(policy.credential_headers.begin(), policy.credential_headers.end(),
                     [](const std::string& name) {
                       return name.size() == 13 && iequals_prefix(name, "authorization");
                     });
}

std::string canonical_target(std::string_view target) {
  const Target t = split_target(target);
  std::string out(t.path);
  std::string q = sort_query(t.query);
  if (!q.empty()) {
    out.push_back('?');
    out.append(q);
  }
  return out;
}

RequestKey make_key(const http::Request& request, const KeyPolicy& policy, bool describe) {
  RequestKey rk;
  if (describe) rk.parts.reserve(6 + policy.headers.size());
  std::string& key = rk.key;
  key.reserve(128);
  key.append("v1;");

  // One part of the key; its description (`display`, made only when asked) for `parts`.
  const auto add = [&](std::string_view name, std::string_view key_value, auto&& display) {
    append_part(key, name, key_value);
    if (describe) rk.parts.push_back(KeyPart{std::string(name), std::string(display())});
  };
  const auto as_is = [](std::string_view v) { return [v] { return v; }; };

  add("route", policy.route, as_is(policy.route));
  add("method", request.method_string(), as_is(request.method_string()));

  const Target t = split_target(request.target());
  std::string_view host;  // not yet lower-cased
  if (t.absolute) {
    host = without_default_port(t.authority, t.https ? 443 : 80);
  } else {
    const auto it = request.find(bh::field::host);
    if (it != request.end()) host = without_default_port(it->value(), policy.default_port);
  }
  append_part_lower(key, "host", host);
  if (describe) {
    std::string lowered(host);
    for (char& c : lowered) c = lower(c);
    rk.parts.push_back(KeyPart{"host", std::move(lowered)});
  }
  add("path", t.path, as_is(t.path));
  if (policy.include_query) {
    if (is_sorted_query(t.query)) {
      add("query", t.query, as_is(t.query));  // the common case: nothing to sort or drop
    } else {
      const std::string q = sort_query(t.query);
      add("query", q, as_is(q));
    }
  }

  std::string value;
  std::string part_name;
  for (const std::string& name : policy.headers) {
    part_name = "header:" + name;
    if (header_value(request.base(), name, value)) {
      add(part_name, value, as_is(value));
    } else {
      key.append(part_name);
      key.append("=-;");
      if (describe) rk.parts.push_back(KeyPart{part_name, "(absent)"});
    }
  }

  if (policy.include_credentials) {
    std::string material;
    for (const std::string& name : policy.credential_headers) {
      const auto [first, last] = request.base().equal_range(name);
      for (auto it = first; it != last; ++it) append_part(material, name, it->value());
    }
    if (!material.empty()) rk.tenant = sha256_hex(material);
    add("tenant", rk.tenant, [&]() -> std::string {
      return rk.tenant.empty() ? std::string("none") : rk.tenant.substr(0, 16);
    });
  }

  if (policy.body != BodyDigest::none) {
    const std::string_view body = request.body();
    std::string key_value;
    std::string display;
    if (policy.body == BodyDigest::canonical_json) {
      auto canonical = canonical_json(body);
      if (canonical) {
        std::string hex = sha256_hex(*canonical);
        key_value = "c:" + hex;
        if (describe) display = "sha256:" + hex + " (canonical json)";
      } else {
        std::string hex = sha256_hex(body);
        key_value = "r:" + hex;
        if (describe) {
          display = "sha256:" + hex + " (raw bytes; not json: " + canonical.error().message() + ")";
        }
      }
    } else {
      std::string hex = sha256_hex(body);
      key_value = "r:" + hex;
      if (describe) display = "sha256:" + hex + " (raw bytes)";
    }
    add("body", key_value, as_is(display));
  }
  return rk;
}

}  // namespace sluice::gateway
