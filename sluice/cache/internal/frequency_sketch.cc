#include "sluice/cache/internal/frequency_sketch.h"

#include <algorithm>
#include <bit>

#include "sluice/base/hash.h"

namespace sluice::cache::internal {

namespace {
// Odd constants that give each row an independent index (from Caffeine's sketch seeds).
constexpr uint64_t kRowSeeds[4] = {0xc3a5c85c97cb3127ULL, 0xb492b66fbe98f273ULL,
                                   0x9ae16a3b2f90404fULL, 0xcbf29ce484222325ULL};
constexpr uint64_t kLowBits = 0x1111111111111111ULL;   // the lowest bit of every counter
constexpr uint64_t kHalfMask = 0x7777777777777777ULL;  // each counter without its top bit
}  // namespace

FrequencySketch::FrequencySketch(size_t capacity) {
  const uint64_t words = std::bit_ceil(std::max<uint64_t>(capacity, 8));
  table_.assign(words, 0);
  mask_ = words - 1;
  sample_size_ = 10 * std::max<uint64_t>(capacity, 1);
}

size_t FrequencySketch::word_of(uint64_t spread, int row) const noexcept {
  const uint64_t h = base::mix64(spread + kRowSeeds[row]);
  return static_cast<size_t>((h >> 32) & mask_);
}

void FrequencySketch::increment(uint64_t hash) noexcept {
  const uint64_t spread = base::mix64(hash);
  bool added = false;
  for (int row = 0; row < 4; ++row) {
    // Row `row` uses counters 4*row .. 4*row+3 of its word; two bits of the hash pick one.
    const unsigned nibble = 4 * row + static_cast<unsigned>((spread >> (8 * row)) & 3);
    uint64_t& word = table_[word_of(spread, row)];
    const uint64_t shift = 4 * nibble;
    if (((word >> shift) & 0xf) != 0xf) {
      word += uint64_t{1} << shift;
      added = true;
    }
  }
  if (added && ++additions_ >= sample_size_) age();
}

unsigned FrequencySketch::frequency(uint64_t hash) const noexcept {
  const uint64_t spread = base::mix64(hash);
  unsigned result = 15;
  for (int row = 0; row < 4; ++row) {
    const unsigned nibble = 4 * row + static_cast<unsigned>((spread >> (8 * row)) & 3);
    const uint64_t word = table_[word_of(spread, row)];
    result = std::min(result, static_cast<unsigned>((word >> (4 * nibble)) & 0xf));
  }
  return result;
}

void FrequencySketch::age() noexcept {
  uint64_t odd = 0;
  for (uint64_t& word : table_) {
    odd += static_cast<uint64_t>(std::popcount(word & kLowBits));
    word = (word >> 1) & kHalfMask;
  }
  // Caffeine's correction: the halving truncated `odd` counters by one half each.
  additions_ = (additions_ - std::min(additions_, odd / 4)) / 2;
  ++agings_;
}

}  // namespace sluice::cache::internal
