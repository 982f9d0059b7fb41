// BloomFilter: sized from expected items and a target false-positive rate; measures the real
// false-positive rate against the target and the fill-ratio estimate.
#include <cstdio>
#include <string>

#include "sluice/cache/bloom_filter.h"

int main() {
  constexpr int kItems = 100'000;
  sluice::cache::BloomFilter seen({.expected_items = kItems, .false_positive_rate = 0.01});
  for (int i = 0; i < kItems; ++i) seen.add("user:" + std::to_string(i));
  int false_negatives = 0;
  for (int i = 0; i < kItems; ++i)
    false_negatives += seen.may_contain("user:" + std::to_string(i)) ? 0 : 1;
  int false_positives = 0;
  constexpr int kProbes = 100'000;
  for (int i = 0; i < kProbes; ++i)
    false_positives += seen.may_contain("bot:" + std::to_string(i)) ? 1 : 0;
  const auto s = seen.stats();
  std::printf("%d items in %llu bits (%.1f KiB, %.2f bits/item), k=%u hashes\n", kItems,
              static_cast<unsigned long long>(s.bit_count), seen.memory_bytes() / 1024.0,
              static_cast<double>(s.bit_count) / kItems, s.hash_count);
  std::printf(
      "false negatives: %d; false positives: %d of %d = %.3f%% (target 1%%, estimated "
      "from fill %.3f%%)\n",
      false_negatives, false_positives, kProbes, 100.0 * false_positives / kProbes,
      100.0 * s.estimated_fpr);
  const double measured = static_cast<double>(false_positives) / kProbes;
  return false_negatives == 0 && measured < 0.015 ? 0 : 1;
}
