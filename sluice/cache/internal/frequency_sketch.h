// FrequencySketch: the popularity estimator of W-TinyLFU (Caffeine's `FrequencySketch`): a
// count-min sketch of 4-bit counters, depth 4, with periodic aging.
//
// Thread-safety: NOT thread-safe (the owning cache serialises access).
// Layout: a power-of-two table of 64-bit words of sixteen 4-bit counters each, at least one
// word per cached entry. Each of the four rows uses its own quarter of a word (four
// counters), in a word chosen by an independent re-mix of the item's hash. Counters saturate
// at 15. After `sample_size` increments (10 x the cache's capacity) every counter is halved,
// so the sketch forgets old popularity and tracks recent frequency.
// Cost: `increment` and `frequency` touch four words; `age` is one pass over the table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sluice::cache::internal {

class FrequencySketch {
 public:
  // Sized for a cache of `capacity` entries (at least 1).
  explicit FrequencySketch(size_t capacity);

  // Counts one more occurrence of the item with hash `hash`.
  void increment(uint64_t hash) noexcept;
  // The estimated occurrences of the item (0..15) since it last aged.
  [[nodiscard]] unsigned frequency(uint64_t hash) const noexcept;
  // Halves every counter (called automatically every `sample_size()` increments).
  void age() noexcept;

  [[nodiscard]] uint64_t sample_size() const noexcept { return sample_size_; }
  [[nodiscard]] uint64_t agings() const noexcept { return agings_; }
  [[nodiscard]] size_t table_words() const noexcept { return table_.size(); }

 private:
  // The word and the nibble (0..15) that row `row` uses for `hash`.
  [[nodiscard]] size_t word_of(uint64_t spread, int row) const noexcept;

  std::vector<uint64_t> table_;
  uint64_t mask_;
  uint64_t sample_size_;
  uint64_t additions_ = 0;  // increments since the last aging, as Caffeine keeps it
  uint64_t agings_ = 0;
};

}  // namespace sluice::cache::internal
