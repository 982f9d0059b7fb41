#include "sluice/cache/bloom_filter.h"

#include <algorithm>
#include <cmath>

#include "sluice/base/check.h"
#include "sluice/base/hash.h"

namespace sluice::cache {

namespace {

// The i-th bit position of an item: double hashing, reduced to [0, m) by multiply-shift.
inline uint64_t position(uint64_t h1, uint64_t h2, uint32_t i, uint64_t m) noexcept {
  const uint64_t g = h1 + uint64_t{i} * h2;
  return static_cast<uint64_t>((static_cast<base::internal::Uint128>(g) * m) >> 64);
}

// The second hash of double hashing: a re-mix of the first, forced odd so that the k positions
// differ even when m is a power of two.
inline uint64_t second_hash(uint64_t h1) noexcept {
  return base::mix64(h1 ^ 0x9e3779b97f4a7c15ULL) | 1;
}

}  // namespace

BloomFilter::BloomFilter(Options options) : options_(options) {
  SLUICE_CHECK(options.expected_items > 0, "BloomFilter: expected_items must be >= 1");
  SLUICE_CHECK(options.false_positive_rate > 0.0 && options.false_positive_rate < 1.0,
               "BloomFilter: false_positive_rate must be in (0, 1)");
  const double n = static_cast<double>(options.expected_items);
  const double ln2 = std::log(2.0);
  const double m = std::ceil(-n * std::log(options.false_positive_rate) / (ln2 * ln2));
  bit_count_ = std::max<uint64_t>(64, static_cast<uint64_t>(m));
  const double k = std::round(static_cast<double>(bit_count_) / n * ln2);
  hash_count_ = static_cast<uint32_t>(std::clamp(k, 1.0, 64.0));
  words_.assign((bit_count_ + 63) / 64, 0);
}

uint64_t BloomFilter::hash_item(std::string_view item) noexcept {
  return base::hash_bytes(item.data(), item.size());
}

void BloomFilter::add(std::string_view item) noexcept { add_hash(hash_item(item)); }

void BloomFilter::add_hash(uint64_t hash) noexcept {
  const uint64_t h2 = second_hash(hash);
  for (uint32_t i = 0; i < hash_count_; ++i) {
    const uint64_t bit = position(hash, h2, i, bit_count_);
    uint64_t& word = words_[bit >> 6];
    const uint64_t mask = uint64_t{1} << (bit & 63);
    if ((word & mask) == 0) {
      word |= mask;
      ++bits_set_;
    }
  }
  ++items_added_;
}

bool BloomFilter::may_contain(std::string_view item) const noexcept {
  return may_contain_hash(hash_item(item));
}

bool BloomFilter::may_contain_hash(uint64_t hash) const noexcept {
  queries_.fetch_add(1, std::memory_order_relaxed);
  const uint64_t h2 = second_hash(hash);
  for (uint32_t i = 0; i < hash_count_; ++i) {
    const uint64_t bit = position(hash, h2, i, bit_count_);
    if ((words_[bit >> 6] & (uint64_t{1} << (bit & 63))) == 0) return false;
  }
  maybe_answers_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void BloomFilter::clear() noexcept {
  std::fill(words_.begin(), words_.end(), 0);
  bits_set_ = 0;
  items_added_ = 0;
  queries_.store(0, std::memory_order_relaxed);
  maybe_answers_.store(0, std::memory_order_relaxed);
}

double BloomFilter::estimated_fpr() const noexcept {
  const double fill = static_cast<double>(bits_set_) / static_cast<double>(bit_count_);
  return std::pow(fill, static_cast<double>(hash_count_));
}

BloomFilterStats BloomFilter::stats() const noexcept {
  BloomFilterStats s;
  s.items_added = items_added_;
  s.queries = queries_.load(std::memory_order_relaxed);
  s.maybe_answers = maybe_answers_.load(std::memory_order_relaxed);
  s.bits_set = bits_set_;
  s.bit_count = bit_count_;
  s.hash_count = hash_count_;
  s.estimated_fpr = estimated_fpr();
  s.saturated = items_added_ > options_.expected_items;
  return s;
}

}  // namespace sluice::cache
