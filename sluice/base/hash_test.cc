#include "sluice/base/hash.h"

#include <gtest/gtest.h>

#include <string>
#include <unordered_set>

namespace sluice::base {
namespace {

TEST(HashBytes, DeterministicAndSeeded) {
  EXPECT_EQ(hash_string("hello"), hash_string("hello"));
  EXPECT_NE(hash_string("hello"), hash_string("hellp"));
  EXPECT_NE(hash_string("hello", 1), hash_string("hello", 2));
}

TEST(HashBytes, EveryLengthDiffers) {
  // Prefixes of one string, covering each tail branch (0, 1-3, 4-7, 8-16, >16 bytes).
  const std::string s(100, 'a');
  std::unordered_set<uint64_t> seen;
  for (size_t n = 0; n <= s.size(); ++n) seen.insert(hash_bytes(s.data(), n));
  EXPECT_EQ(seen.size(), s.size() + 1);
}

TEST(HashBytes, NoCollisionsOnManySimilarKeys) {
  std::unordered_set<uint64_t> seen;
  constexpr int kKeys = 200000;
  for (int i = 0; i < kKeys; ++i) seen.insert(hash_string("/v1/items/" + std::to_string(i)));
  EXPECT_EQ(seen.size(), static_cast<size_t>(kKeys));
}

TEST(HashBytes, LowBitsAreBalanced) {
  // Sharding uses the low bits: each of 16 shards should get about 1/16 of sequential keys.
  int counts[16] = {};
  constexpr int kKeys = 160000;
  for (int i = 0; i < kKeys; ++i) ++counts[hash_string("key" + std::to_string(i)) & 15];
  for (int c : counts) {
    EXPECT_GT(c, kKeys / 16 * 9 / 10);
    EXPECT_LT(c, kKeys / 16 * 11 / 10);
  }
}

TEST(Mix64, IsBijectiveOnSamples) {
  std::unordered_set<uint64_t> seen;
  for (uint64_t i = 0; i < 100000; ++i) seen.insert(mix64(i));
  EXPECT_EQ(seen.size(), 100000u);
}

TEST(ProcessSeed, IsStableWithinAProcess) { EXPECT_EQ(process_seed(), process_seed()); }

TEST(ConstantTimeEquals, ComparesWholeStringsOfEqualLength) {
  EXPECT_TRUE(constant_time_equals("", ""));
  EXPECT_TRUE(constant_time_equals("s3cret", "s3cret"));
  EXPECT_FALSE(constant_time_equals("s3cret", "s3creT"));
  EXPECT_FALSE(constant_time_equals("s3cret", "s3cre"));
  EXPECT_FALSE(constant_time_equals("a", std::string_view("a\0", 2)));
}

}  // namespace
}  // namespace sluice::base
