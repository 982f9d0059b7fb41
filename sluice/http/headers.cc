#include "sluice/http/headers.h"

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::http {

namespace {

namespace bh = boost::beast::http;

constexpr std::array<std::string_view, 9> kHopByHop = {
    "Connection", "Keep-Alive",         "Proxy-Connection",    "TE", "Trailer", "Transfer-Encoding",
    "Upgrade",    "Proxy-Authenticate", "Proxy-Authorization",
};

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

size_t strip_hop_by_hop(bh::fields& fields) {
  // Names listed in Connection (copied: erasing invalidates the views into `fields`).
  std::vector<std::string> named;
  const auto [first, last] = fields.equal_range(bh::field::connection);
  for (auto it = first; it != last; ++it) {
    std::string_view rest = it->value();
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view token = trim_ows(rest.substr(0, comma));
      if (!token.empty()) named.emplace_back(token);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  size_t removed = 0;
  for (const std::string& name : named) removed += fields.erase(name);
  for (const std::string_view name : kHopByHop) removed += fields.erase(name);
  return removed;
}

bool is_idempotent(boost::beast::http::verb method) noexcept {
  namespace bh = boost::beast::http;
  switch (method) {
    case bh::verb::get:
    case bh::verb::head:
    case bh::verb::put:
    case bh::verb::delete_:
    case bh::verb::options:
    case bh::verb::trace:
      return true;
    default:
      return false;
  }
}

}  // namespace sluice::http
