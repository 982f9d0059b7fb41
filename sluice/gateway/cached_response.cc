#include "sluice/gateway/cached_response.h"

namespace sluice::gateway {

size_t CachedResponse::weight() const noexcept {
  size_t bytes = sizeof(CachedResponse) + body.size() + uri.size() + vary_fingerprint.size();
  for (const auto& field : headers) {
    bytes += field.name_string().size() + field.value().size() + 32;  // list node overhead
  }
  for (const auto& name : vary) bytes += name.size() + sizeof(std::string);
  return bytes;
}

uint64_t CachedResponse::age_seconds(TimePoint now) const noexcept {
  const Duration resident = now > stored_at ? now - stored_at : Duration::zero();
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(initial_age + resident).count());
}

}  // namespace sluice::gateway
