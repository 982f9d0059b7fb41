// The seam between the coalescer and its result cache: one `cache::TtlCache` per shard of the
// in-flight table, used under that shard's lock so that "look in the cache, then in the
// in-flight table" and "store the result, then retire the execution" are each atomic (a
// caller can never miss both the cache and the execution that is just finishing).
//
// Thread-safety: none; the owner holds its shard lock. Cost: one TtlCache lookup per call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/base/clock.h"
#include "sluice/base/hash.h"
#include "sluice/cache/ttl_cache.h"
#include "sluice/coalesce/internal/outcome.h"

namespace sluice::coalesce::internal {

// Figures of one store, summed by the owner.
struct StoreFigures {
  uint64_t entries = 0;
  uint64_t bytes = 0;
  uint64_t evictions = 0;
  uint64_t expirations = 0;
};

template <class T>
class ResultStore {
 public:
  // `max_entries == 0` disables the store (every `get` misses, `put` is a no-op).
  ResultStore(size_t max_entries, size_t max_bytes, const base::Clock& clock) {
    if (max_entries > 0) cache_.emplace(typename Cache::Options{max_entries, max_bytes}, clock);
  }

  [[nodiscard]] bool enabled() const noexcept { return cache_.has_value(); }

  // The live result for `key`, or null (absent or expired).
  [[nodiscard]] OutcomePtr<T> get(std::string_view key) {
    if (!cache_) return nullptr;
    OutcomePtr<T>* hit = cache_->get(key);
    return hit == nullptr ? nullptr : *hit;
  }

  // Stores `outcome` for `ttl` (ttl <= 0: not stored), replacing an older result.
  void put(std::string_view key, OutcomePtr<T> outcome, Duration ttl, size_t bytes) {
    if (!cache_ || ttl <= Duration::zero()) return;
    (void)cache_->put(std::string(key), std::move(outcome), ttl, bytes);
  }

  void erase(std::string_view key) {
    if (cache_) (void)cache_->erase(key);
  }

  void clear() {
    if (cache_) cache_->clear();
  }

  [[nodiscard]] StoreFigures figures() const {
    if (!cache_) return {};
    const auto s = cache_->stats();
    return {s.entries, s.bytes, s.evictions, s.expirations};
  }

 private:
  using Cache = cache::TtlCache<std::string, OutcomePtr<T>, base::StringHash, std::equal_to<>>;
  std::optional<Cache> cache_;
};

}  // namespace sluice::coalesce::internal
