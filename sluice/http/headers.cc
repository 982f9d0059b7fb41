#include "sluice/http/headers.h"

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::http {

namespace {

namespace bh = boost::beast::http;

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  const auto lower = [](char c) noexcept { return c >= 'A' && c <= 'Z' ? char(c | 0x20) : c; };
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool HopByHop::fixed(bh::field name) noexcept {
  switch (name) {
    case bh::field::connection:
    case bh::field::keep_alive:
    case bh::field::proxy_connection:
    case bh::field::te:
    case bh::field::trailer:
    case bh::field::transfer_encoding:
    case bh::field::upgrade:
    case bh::field::proxy_authenticate:
    case bh::field::proxy_authorization:
      return true;
    default:
      return false;
  }
}

HopByHop::HopByHop(const bh::fields& fields) {
  const auto [first, last] = fields.equal_range(bh::field::connection);
  for (auto it = first; it != last; ++it) {
    std::string_view rest = it->value();
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view token = trim_ows(rest.substr(0, comma));
      if (!token.empty()) named_.push_back(token);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
}

bool HopByHop::operator()(const bh::fields::value_type& field) const noexcept {
  if (fixed(field.name())) return true;
  if (named_.empty()) return false;
  const std::string_view name = field.name_string();
  for (const std::string_view n : named_) {
    if (iequals(n, name)) return true;
  }
  return false;
}

size_t strip_hop_by_hop(bh::fields& fields) {
  const HopByHop hop(fields);  // views into the Connection fields, erased last
  size_t removed = 0;
  for (auto it = fields.begin(); it != fields.end();) {
    if (it->name() != bh::field::connection && hop(*it)) {
      it = fields.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  removed += fields.erase(bh::field::connection);
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
