#include "sluice/gateway/cached_response.h"

namespace sluice::gateway {

size_t CachedResponse::weight() const noexcept {
  size_t bytes = sizeof(CachedResponse) + body.size() + uri.size() + vary_fingerprint.size();
  for (const auto& field : headers) {
    bytes += field.name_string().size() + field.value().size() + 32;  // list node overhead
  }
  for (const auto& name : vary) bytes += name.size() + sizeof(std::string);
  for (const auto& e : encoded) bytes += e.body.size() + sizeof(Encoded);
  return bytes;
}

}  // namespace sluice::gateway
