// URL parsing and request text for the load generator.
#include <string>

#include "bench/loadgen/loadgen.h"

namespace sluice::loadgen {

std::optional<Target> Target::parse(const std::string& url, std::string& error) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) {
    error = "only http:// URLs are supported: " + url;
    return std::nullopt;
  }
  const std::string rest = url.substr(kScheme.size());
  const size_t slash = rest.find('/');
  const std::string authority = rest.substr(0, slash);
  Target target;
  target.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (!authority.empty() && authority.front() == '[') {  // [v6]:port
    const size_t close = authority.find(']');
    if (close == std::string::npos) {
      error = "unterminated IPv6 address in " + url;
      return std::nullopt;
    }
    target.host = authority.substr(1, close - 1);
    target.port = close + 1 < authority.size() && authority[close + 1] == ':'
                      ? authority.substr(close + 2)
                      : "80";
  } else {
    const size_t colon = authority.rfind(':');
    target.host = authority.substr(0, colon);
    target.port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  }
  if (target.host.empty() || target.port.empty() ||
      target.port.find_first_not_of("0123456789") != std::string::npos) {
    error = "bad host or port in " + url;
    return std::nullopt;
  }
  return target;
}

std::string build_request(const Target& target, const CommonOptions& common,
                          std::optional<uint64_t> key, int tenant) {
  std::string path = target.path;
  if (key) {
    const std::string k = std::to_string(*key);
    if (const size_t at = path.find("{key}"); at != std::string::npos) {
      path.replace(at, 5, k);
    } else {
      path += (path.find('?') == std::string::npos ? "?key=" : "&key=") + k;
    }
  }
  std::string request;
  request.reserve(128 + path.size());
  request.append(common.method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ");
  request.append(target.authority()).append("\r\n");
  for (const auto& header : common.headers) request.append(header).append("\r\n");
  if (tenant >= 0) {
    request.append("Authorization: Bearer tenant-").append(std::to_string(tenant)).append("\r\n");
  }
  request.append("User-Agent: sluice-loadgen\r\n\r\n");
  return request;
}

}  // namespace sluice::loadgen
