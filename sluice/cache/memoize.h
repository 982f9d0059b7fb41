// Memoized / memoize: wraps a one-argument function with a cache, so repeated calls with an
// equal argument return the cached result instead of calling the function again.
//
//   LruCache<std::string, Price> cache({.max_entries = 1000});
//   auto price = memoize([](const std::string& sku) { return fetch_price(sku); }, cache);
//   Price p = price("sku-42");   // computed once, then served from `cache`
//
// Thread-safety: that of the cache: with an LruCache/TtlCache/TinyLfuCache, one thread at a
// time; with a ShardedCache, any thread, but concurrent misses on one key each call the
// function (no single-flight: that is what sluice/coalesce adds).
// Lifetime: the Memoized keeps a reference to the cache, which must outlive it; the cache's
// stats count the memoized calls (hits, misses), and its bounds and TTL apply as usual.
// Errors: an exception from the function propagates and nothing is cached; the next call with
// that argument calls the function again. The key is the argument itself (`Cache::key_type`);
// for several arguments, make them one struct with a hash.
// Cost: one cache lookup per call; a hit copies the cached result out (use
// `std::shared_ptr<const T>` results for large values).
#pragma once

#include <concepts>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

namespace sluice::cache {

template <class Cache, class F>
class Memoized {
 public:
  using K = typename Cache::key_type;
  using V = typename Cache::mapped_type;
  static_assert(std::is_invocable_r_v<V, F&, const K&>,
                "the memoized function must take a `const key_type&` and return a `mapped_type`");

  Memoized(F fn, Cache& cache) : fn_(std::move(fn)), cache_(&cache) {}

  // The cached result for `key`, or the function's result (then cached).
  V operator()(const K& key) {
    if (std::optional<V> hit = lookup(key)) return std::move(*hit);
    V value = std::invoke(fn_, key);
    cache_->put(K(key), V(value));
    return value;
  }

  [[nodiscard]] Cache& cache() const noexcept { return *cache_; }

 private:
  std::optional<V> lookup(const K& key) {
    auto found = cache_->get(key);
    if constexpr (std::is_pointer_v<decltype(found)>) {
      if (found == nullptr) return std::nullopt;
      return std::optional<V>(*found);
    } else {
      return found;  // ShardedCache::get already returns std::optional<V>
    }
  }

  F fn_;
  Cache* cache_;
};

// `fn` memoized through `cache` (kept by reference).
template <class F, class Cache>
[[nodiscard]] Memoized<Cache, F> memoize(F fn, Cache& cache) {
  return Memoized<Cache, F>(std::move(fn), cache);
}

}  // namespace sluice::cache
