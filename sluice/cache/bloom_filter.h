// BloomFilter: a compact set that answers "definitely not present" or "maybe present", for
// skipping lookups that would miss (a cache tier, a database, an upstream).
//
// Thread-safety: NOT thread-safe for `add` and `clear`; concurrent `may_contain` calls on a
// filter nobody is changing are safe. Not copyable (its query counters are atomics).
// Sizing: from the expected number of items n and the target false-positive rate p, the
// optimal number of bits m = ceil(-n ln p / (ln 2)^2) and hash functions k = round(m/n ln 2)
// (at least 1). An item is hashed once with `base::hash_bytes`; its k bit positions come from
// double hashing (h1 + i*h2, Kirsch and Mitzenmacher), reduced to [0, m) by a multiply-shift.
// No false negatives, ever. False positives stay near p while at most n items are added;
// beyond n the filter keeps working but the rate rises: `estimated_fpr()` (from the fill
// ratio, (bits set / m)^k) and `stats().saturated` show it, and the owner decides to rebuild.
// Cost: m/8 bytes (about 1.2 bytes per item at 1%); add and may_contain hash once and touch
// k words.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sluice::cache {

struct BloomFilterStats {
  uint64_t items_added = 0;    // calls to add (duplicates included)
  uint64_t queries = 0;        // calls to may_contain
  uint64_t maybe_answers = 0;  // queries answered "maybe present"
  uint64_t bits_set = 0;       // bits now set
  uint64_t bit_count = 0;      // m
  uint32_t hash_count = 0;     // k
  double estimated_fpr = 0.0;  // (bits_set / m)^k
  bool saturated = false;      // more items added than the filter was sized for
};

class BloomFilter {
 public:
  struct Options {
    uint64_t expected_items;            // n: items the filter is sized for (>= 1)
    double false_positive_rate = 0.01;  // p: target rate at n items, in (0, 1)
  };

  // Aborts (SLUICE_CHECK) on expected_items == 0 or a rate outside (0, 1): a configuration
  // error for the caller to validate before building the filter.
  explicit BloomFilter(Options options);

  // Adds an item (any bytes; a string_view, or `add_hash` for an already hashed item).
  void add(std::string_view item) noexcept;
  void add_hash(uint64_t hash) noexcept;
  // False: the item was never added. True: it probably was (false positives at ~p).
  [[nodiscard]] bool may_contain(std::string_view item) const noexcept;
  [[nodiscard]] bool may_contain_hash(uint64_t hash) const noexcept;

  // Clears every bit and counter.
  void clear() noexcept;

  // The expected false-positive rate now, from the fill ratio: (bits set / m)^k.
  [[nodiscard]] double estimated_fpr() const noexcept;
  [[nodiscard]] uint64_t bit_count() const noexcept { return bit_count_; }
  [[nodiscard]] uint32_t hash_count() const noexcept { return hash_count_; }
  [[nodiscard]] size_t memory_bytes() const noexcept { return words_.size() * sizeof(uint64_t); }
  [[nodiscard]] BloomFilterStats stats() const noexcept;

  // The hash `add`/`may_contain` use for `item` (for `add_hash` callers).
  [[nodiscard]] static uint64_t hash_item(std::string_view item) noexcept;

 private:
  Options options_;
  uint64_t bit_count_;
  uint32_t hash_count_;
  std::vector<uint64_t> words_;
  uint64_t bits_set_ = 0;
  uint64_t items_added_ = 0;
  // Counted by const queries, which may run concurrently: relaxed atomics.
  mutable std::atomic<uint64_t> queries_{0};
  mutable std::atomic<uint64_t> maybe_answers_{0};
};

}  // namespace sluice::cache
