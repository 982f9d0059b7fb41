// TinyLfuCache: a bounded map with W-TinyLFU admission and eviction (the design of Caffeine):
// it keeps what is asked for often, and a burst of one-off keys (a scan) cannot flush it.
//
// Thread-safety: NOT thread-safe; wrap it in `ShardedCache` to share it between threads.
// Design: new entries enter a small LRU *window* (1% of `max_entries`, at least 1). The main
// space (the rest) is a segmented LRU: *probation* (20%) and *protected* (80%). A hit in
// probation promotes to protected; protected overflow demotes its LRU back to probation.
// When the window overflows and the cache is over a bound, the window's LRU (the candidate)
// competes with probation's LRU (the victim; protected's if probation is empty): a 4-bit
// count-min sketch with periodic halving (`internal::FrequencySketch`) estimates how often
// each was used recently, and the candidate enters probation only if strictly more
// frequent; else it is dropped and counted in `rejections`. The sketch counts hits and puts
// (as Caffeine does; a miss alone is not counted, the put that follows it is).
// Choices where Caffeine goes further: the window stays at 1% (no hill climbing), there is
// no doorkeeper, and no random admission of warm candidates (Caffeine's defence against hash
// flooding; sluice keys are hashed by the caller's Hash, seed it for untrusted keys).
// Cost: get O(1) plus four sketch words; put O(1) amortised. A hit never allocates. The
// sketch takes 8 bytes per entry of capacity (rounded up to a power of two).
// Lifetime: a `V*` returned by `get` stays valid until that entry is removed or replaced.
// Policies at the bounds: a put never fails for lack of room (the admission contest above,
// then evictions from the LRU ends of probation, protected and window if the byte bound is
// still exceeded, counted in `evictions`). A charge larger than `max_bytes` on its own, or
// any put when `max_entries` is 0, is rejected; a rejected replacement drops the old value.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>

#include "sluice/cache/cache_stats.h"
#include "sluice/cache/internal/frequency_sketch.h"
#include "sluice/cache/internal/node_table.h"

namespace sluice::cache {

namespace internal {
// The segment of a W-TinyLFU entry.
enum class Segment : uint8_t {
  kWindow,     // the admission window (recency only)
  kProbation,  // main space, not yet hit there
  kProtected,  // main space, hit at least once since admission
};
struct TinyLfuMeta {
  Segment segment = Segment::kWindow;  // the list the node is on
};
}  // namespace internal

template <class K, class V, class Hash = std::hash<K>, class Eq = std::equal_to<K>>
class TinyLfuCache {
 public:
  using key_type = K;
  using mapped_type = V;
  using hasher = Hash;
  using key_equal = Eq;

  struct Options {
    size_t max_entries;    // entry bound; 0 = every put is rejected
    size_t max_bytes = 0;  // bound on the sum of byte charges; 0 = no byte bound
  };

  explicit TinyLfuCache(Options options, Hash hash = Hash(), Eq eq = Eq())
      : options_(options),
        table_(std::make_unique<Table>(std::move(hash), std::move(eq))),
        sketch_(std::max<size_t>(options.max_entries, 1)) {
    SLUICE_CHECK(options_.max_entries <= internal::kMaxNodes, "TinyLfuCache: max_entries > 2^31");
    window_cap_ = std::max<size_t>(1, options_.max_entries / 100);
    const size_t main = options_.max_entries > window_cap_ ? options_.max_entries - window_cap_ : 0;
    protected_cap_ = main * 8 / 10;
  }

  // The value for `key`, promoted within its segment; nullptr on a miss.
  [[nodiscard]] V* get(const auto& key) {
    const auto& k = internal::lookup_key<K, Hash, Eq>(key);
    return get_hashed(k, table_->hash_of(k));
  }

  // Like `get`, but neither promotes nor counts.
  [[nodiscard]] const V* peek(const auto& key) const {
    const auto& k = internal::lookup_key<K, Hash, Eq>(key);
    const uint32_t i = table_->find(k, table_->hash_of(k));
    return i == internal::kNil ? nullptr : &table_->node(i).value();
  }

  // Inserts (into the window) or replaces. Returns false only if the put itself is rejected
  // (capacity 0, charge > max_bytes); the new entry may later lose the admission contest.
  bool put(K key, V value, size_t bytes = 0) {
    const size_t h = table_->hash_of(key);
    return put_hashed(h, std::move(key), std::move(value), bytes);
  }

  bool erase(const auto& key) {
    const auto& k = internal::lookup_key<K, Hash, Eq>(key);
    return erase_hashed(k, table_->hash_of(k));
  }

  // Removes every entry (not counted); the frequency sketch and counters are kept.
  void clear() noexcept {
    table_->clear();
    window_ = probation_ = protected_ = {};
    bytes_ = 0;
  }

  [[nodiscard]] size_t size() const noexcept { return table_->size(); }
  [[nodiscard]] size_t bytes() const noexcept { return bytes_; }
  [[nodiscard]] const Options& options() const noexcept { return options_; }
  // Segment sizes now, for tests and reports.
  [[nodiscard]] size_t window_size() const noexcept { return window_.size; }
  [[nodiscard]] size_t probation_size() const noexcept { return probation_.size; }
  [[nodiscard]] size_t protected_size() const noexcept { return protected_.size; }
  // The sketch's estimate for `key` (0..15).
  [[nodiscard]] unsigned frequency(const auto& key) const {
    return sketch_.frequency(hash_of(key));
  }

  [[nodiscard]] CacheStats stats() const noexcept {
    CacheStats s = counters_;
    s.entries = table_->size();
    s.bytes = bytes_;
    s.capacity_entries = options_.max_entries;
    s.capacity_bytes = options_.max_bytes;
    return s;
  }
  void reset_stats() noexcept { counters_ = {}; }

  // Forms taking the caller's `hash_of(key)`, for `ShardedCache`.
  template <class Q>
  [[nodiscard]] size_t hash_of(const Q& key) const {
    return table_->hash_of(internal::lookup_key<K, Hash, Eq>(key));
  }
  template <class Q>
  [[nodiscard]] V* get_hashed(const Q& key, size_t hash) {
    const uint32_t i = table_->find(key, hash);
    if (i == internal::kNil) {
      ++counters_.misses;
      return nullptr;
    }
    ++counters_.hits;
    sketch_.increment(hash);
    on_hit(i);
    return &table_->node(i).value();
  }
  bool put_hashed(size_t hash, K key, V value, size_t bytes = 0) {
    const uint32_t existing = table_->find(key, hash);
    if (options_.max_entries == 0 || (options_.max_bytes != 0 && bytes > options_.max_bytes)) {
      if (existing != internal::kNil) remove(existing);
      ++counters_.rejections;
      return false;
    }
    sketch_.increment(hash);
    if (existing != internal::kNil) {
      auto& n = table_->node(existing);
      n.value() = std::move(value);
      bytes_ = bytes_ - n.bytes + bytes;
      n.bytes = bytes;
      ++counters_.updates;
      on_hit(existing);
      evict_to_fit(existing);
      return true;
    }
    const uint32_t i = table_->insert(std::move(key), std::move(value), hash, bytes);
    table_->node(i).meta.segment = internal::Segment::kWindow;
    table_->push_front(window_, i);
    bytes_ += bytes;
    ++counters_.inserts;
    drain_window();
    evict_to_fit(i);
    return true;
  }
  template <class Q>
  bool erase_hashed(const Q& key, size_t hash) {
    const uint32_t i = table_->find(key, hash);
    if (i == internal::kNil) return false;
    remove(i);
    return true;
  }

 private:
  using Table = internal::NodeTable<K, V, Hash, Eq, internal::TinyLfuMeta>;
  using Segment = internal::Segment;

  internal::List& list_of(Segment s) noexcept {
    switch (s) {
      case Segment::kWindow:
        return window_;
      case Segment::kProbation:
        return probation_;
      case Segment::kProtected:
        break;
    }
    return protected_;
  }

  bool over_bounds() const noexcept {
    return table_->size() > options_.max_entries ||
           (options_.max_bytes != 0 && bytes_ > options_.max_bytes);
  }

  void on_hit(uint32_t i) noexcept {
    auto& n = table_->node(i);
    switch (n.meta.segment) {
      case Segment::kWindow:
        table_->move_to_front(window_, i);
        return;
      case Segment::kProtected:
        table_->move_to_front(protected_, i);
        return;
      case Segment::kProbation:
        table_->unlink(probation_, i);
        n.meta.segment = Segment::kProtected;
        table_->push_front(protected_, i);
        while (protected_.size > protected_cap_ && protected_.tail != i) {
          const uint32_t demoted = protected_.tail;
          table_->unlink(protected_, demoted);
          table_->node(demoted).meta.segment = Segment::kProbation;
          table_->push_front(probation_, demoted);
        }
        return;
    }
  }

  // The main space's eviction victim: probation's LRU, else protected's LRU, else kNil.
  uint32_t main_victim() const noexcept {
    return probation_.tail != internal::kNil ? probation_.tail : protected_.tail;
  }

  // Moves window overflow into the main space; under pressure each candidate must beat the
  // main's victim on estimated frequency.
  void drain_window() noexcept {
    while (window_.size > window_cap_) {
      const uint32_t candidate = window_.tail;
      table_->unlink(window_, candidate);
      auto& c = table_->node(candidate);
      c.meta.segment = Segment::kProbation;
      if (!over_bounds()) {
        table_->push_front(probation_, candidate);
        continue;
      }
      const uint32_t victim = main_victim();
      if (victim == internal::kNil) {  // no main space (tiny caches): plain LRU
        remove_unlinked(candidate);
        ++counters_.evictions;
        continue;
      }
      if (sketch_.frequency(c.hash) > sketch_.frequency(table_->node(victim).hash)) {
        remove(victim);
        ++counters_.evictions;
        table_->push_front(probation_, candidate);
      } else {
        remove_unlinked(candidate);
        ++counters_.rejections;
      }
    }
  }

  // While over a bound (the byte bound, or entries in tiny caches): evict from the LRU ends of
  // probation, protected, then window; never `keep`, which fits on its own.
  void evict_to_fit(uint32_t keep) noexcept {
    while (over_bounds()) {
      uint32_t victim = lru_except(probation_, keep);
      if (victim == internal::kNil) victim = lru_except(protected_, keep);
      if (victim == internal::kNil) victim = lru_except(window_, keep);
      if (victim == internal::kNil) break;
      remove(victim);
      ++counters_.evictions;
    }
  }
  // The least recently used node of `list` other than `keep`, or kNil.
  uint32_t lru_except(const internal::List& list, uint32_t keep) const noexcept {
    const uint32_t tail = list.tail;
    return tail == keep && tail != internal::kNil ? table_->prev_of(tail) : tail;
  }

  void remove(uint32_t i) noexcept {
    table_->unlink(list_of(table_->node(i).meta.segment), i);
    remove_unlinked(i);
  }
  void remove_unlinked(uint32_t i) noexcept {
    bytes_ -= table_->node(i).bytes;
    table_->remove(i);
  }

  Options options_;
  std::unique_ptr<Table> table_;
  internal::FrequencySketch sketch_;
  size_t window_cap_ = 1;
  size_t protected_cap_ = 0;
  internal::List window_;
  internal::List probation_;
  internal::List protected_;
  size_t bytes_ = 0;
  CacheStats counters_;
};

}  // namespace sluice::cache
