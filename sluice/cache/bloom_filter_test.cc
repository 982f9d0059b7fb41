#include "sluice/cache/bloom_filter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace sluice::cache {
namespace {

TEST(BloomFilter, SizingFollowsTheFormulas) {
  const BloomFilter f({.expected_items = 100'000, .false_positive_rate = 0.01});
  // m = -n ln p / ln2^2 = 958,506 bits; k = m/n ln 2 = 6.64 -> 7.
  EXPECT_EQ(f.bit_count(), 958'506u);
  EXPECT_EQ(f.hash_count(), 7u);
  EXPECT_EQ(f.memory_bytes(), (958'506u + 63) / 64 * 8);
  const BloomFilter tiny({.expected_items = 1, .false_positive_rate = 0.5});
  EXPECT_GE(tiny.hash_count(), 1u);
  EXPECT_GE(tiny.bit_count(), 1u);
}

TEST(BloomFilter, NoFalseNegativesAndFprNearTarget) {
  for (const double target : {0.01, 0.001}) {
    constexpr int kItems = 100'000;
    BloomFilter f({.expected_items = kItems, .false_positive_rate = target});
    for (int i = 0; i < kItems; ++i) f.add("user:" + std::to_string(i));
    for (int i = 0; i < kItems; ++i) ASSERT_TRUE(f.may_contain("user:" + std::to_string(i))) << i;
    int false_positives = 0;
    constexpr int kProbes = 200'000;
    for (int i = 0; i < kProbes; ++i) {
      false_positives += f.may_contain("other:" + std::to_string(i)) ? 1 : 0;
    }
    const double measured = static_cast<double>(false_positives) / kProbes;
    EXPECT_LE(measured, target * 1.5) << "target " << target;
    EXPECT_GE(measured, target / 1.5) << "target " << target;
    EXPECT_NEAR(f.estimated_fpr(), target, target * 0.5);
    const BloomFilterStats s = f.stats();
    EXPECT_EQ(s.items_added, static_cast<uint64_t>(kItems));
    EXPECT_EQ(s.queries, static_cast<uint64_t>(kItems + kProbes));
    EXPECT_EQ(s.maybe_answers, static_cast<uint64_t>(kItems + false_positives));
    EXPECT_FALSE(s.saturated);
  }
}

TEST(BloomFilter, SaturationRaisesEstimatedFprAndIsReported) {
  BloomFilter f({.expected_items = 1000, .false_positive_rate = 0.01});
  for (int i = 0; i < 1000; ++i) f.add_hash(BloomFilter::hash_item(std::to_string(i)));
  const double at_capacity = f.estimated_fpr();
  for (int i = 1000; i < 5000; ++i) f.add(std::to_string(i));
  EXPECT_GT(f.estimated_fpr(), 10 * at_capacity);
  EXPECT_TRUE(f.stats().saturated);
}

TEST(BloomFilter, ClearEmpties) {
  BloomFilter f({.expected_items = 100});
  f.add("a");
  EXPECT_TRUE(f.may_contain("a"));
  f.clear();
  EXPECT_FALSE(f.may_contain("a"));
  EXPECT_EQ(f.estimated_fpr(), 0.0);
  EXPECT_EQ(f.stats().bits_set, 0u);
}

}  // namespace
}  // namespace sluice::cache
