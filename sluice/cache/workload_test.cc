#include "sluice/cache/workload.h"

#include <gtest/gtest.h>

#include <unordered_set>
#include <vector>

namespace sluice::cache {
namespace {

TEST(ZipfGenerator, FollowsThePowerLaw) {
  const ZipfGenerator zipf(1000, 1.0);
  // P(rank 0) / P(rank 9) = 10 for s = 1.
  EXPECT_NEAR(zipf.probability(0) / zipf.probability(9), 10.0, 1e-9);
  base::Xoshiro256 rng(1);
  std::vector<int> counts(1000, 0);
  constexpr int kDraws = 200'000;
  for (int i = 0; i < kDraws; ++i) ++counts[zipf.next(rng)];
  EXPECT_NEAR(counts[0] / double(kDraws), zipf.probability(0), 0.01);
  EXPECT_GT(counts[0], counts[1]);
  EXPECT_GT(counts[1], counts[10]);
}

TEST(MakeTrace, DeterministicWithOneOffScanKeys) {
  const TraceOptions o{
      .distinct_keys = 1000, .length = 10'000, .seed = 5, .scan_every = 1000, .scan_length = 200};
  const auto a = make_trace(o);
  const auto b = make_trace(o);
  EXPECT_EQ(a, b);
  ASSERT_EQ(a.size(), 10'000u + 10 * 200);
  std::unordered_set<uint64_t> zipf_keys;
  std::unordered_set<uint64_t> scan_keys;
  for (uint64_t k : a) (k >> 63 ? scan_keys : zipf_keys).insert(k);
  EXPECT_EQ(scan_keys.size(), 2000u);  // every scan key appears once
  EXPECT_LE(zipf_keys.size(), 1000u);
  TraceOptions other = o;
  other.seed = 6;
  EXPECT_NE(make_trace(other), a);
}

}  // namespace
}  // namespace sluice::cache
