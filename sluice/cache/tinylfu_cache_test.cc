#include "sluice/cache/tinylfu_cache.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "sluice/cache/internal/frequency_sketch.h"
#include "sluice/cache/lru_cache.h"
#include "sluice/cache/workload.h"

namespace sluice::cache {
namespace {

using Cache = TinyLfuCache<uint64_t, uint64_t>;

template <class C>
double replay(C& cache, const std::vector<uint64_t>& trace) {
  uint64_t hits = 0;
  for (const uint64_t key : trace) {
    if (cache.get(key) != nullptr) {
      ++hits;
    } else {
      cache.put(key, key);
    }
  }
  return static_cast<double>(hits) / static_cast<double>(trace.size());
}

TEST(FrequencySketch, CountsSaturatesAndAges) {
  internal::FrequencySketch sketch(1024);
  EXPECT_EQ(sketch.frequency(42), 0u);
  for (int i = 0; i < 5; ++i) sketch.increment(42);
  EXPECT_GE(sketch.frequency(42), 5u);  // count-min never underestimates
  for (int i = 0; i < 50; ++i) sketch.increment(7);
  EXPECT_EQ(sketch.frequency(7), 15u);  // 4-bit counters saturate
  const unsigned before = sketch.frequency(7);
  sketch.age();
  EXPECT_EQ(sketch.frequency(7), before / 2);
  EXPECT_EQ(sketch.agings(), 1u);
}

TEST(FrequencySketch, AgesAutomaticallyAfterSampleSize) {
  internal::FrequencySketch sketch(16);
  for (uint64_t i = 0; i < sketch.sample_size() + 100; ++i) sketch.increment(i);
  EXPECT_GE(sketch.agings(), 1u);
}

TEST(TinyLfuCache, BasicGetPutUpdateErase) {
  Cache c({.max_entries = 100});
  EXPECT_EQ(c.get(1), nullptr);
  EXPECT_TRUE(c.put(1, 10));
  ASSERT_NE(c.get(1), nullptr);
  EXPECT_EQ(*c.get(1), 10u);
  EXPECT_TRUE(c.put(1, 11));
  EXPECT_EQ(*c.peek(1), 11u);
  EXPECT_TRUE(c.erase(1));
  EXPECT_FALSE(c.erase(1));
  const CacheStats s = c.stats();
  EXPECT_EQ(s.inserts, 1u);
  EXPECT_EQ(s.updates, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 2u);
}

TEST(TinyLfuCache, NeverExceedsBoundsAndSegmentsAddUp) {
  Cache c({.max_entries = 200, .max_bytes = 5000});
  const auto trace = make_trace({.distinct_keys = 5000, .length = 50000, .seed = 3});
  for (const uint64_t key : trace) {
    if (c.get(key) == nullptr) c.put(key, key, 10 + key % 40);
    ASSERT_LE(c.size(), 200u);
    ASSERT_LE(c.bytes(), 5000u);
    ASSERT_EQ(c.window_size() + c.probation_size() + c.protected_size(), c.size());
  }
  const CacheStats s = c.stats();
  EXPECT_GT(s.rejections, 0u);
  EXPECT_GT(s.evictions, 0u);
  EXPECT_EQ(s.inserts - s.evictions - s.rejections, s.entries);
  EXPECT_LE(c.protected_size(), 200u * 8 / 10);
}

TEST(TinyLfuCache, ZeroCapacityAndHugeValueRejected) {
  Cache zero({.max_entries = 0});
  EXPECT_FALSE(zero.put(1, 1));
  EXPECT_EQ(zero.size(), 0u);
  EXPECT_EQ(zero.stats().rejections, 1u);

  Cache c({.max_entries = 10, .max_bytes = 100});
  c.put(1, 1, 50);
  EXPECT_FALSE(c.put(2, 2, 101));
  EXPECT_NE(c.peek(1), nullptr);
  EXPECT_EQ(c.stats().evictions, 0u);
}

TEST(TinyLfuCache, CapacityOneBehavesAsLru) {
  Cache c({.max_entries = 1});
  c.put(1, 1);
  c.put(2, 2);
  EXPECT_EQ(c.size(), 1u);
  EXPECT_NE(c.peek(2), nullptr);
}

TEST(TinyLfuCache, HotSetSurvivesAScan) {
  Cache c({.max_entries = 100});
  // A hot set of 50 keys, each used many times.
  for (int round = 0; round < 20; ++round) {
    for (uint64_t k = 0; k < 50; ++k) {
      if (c.get(k) == nullptr) c.put(k, k);
    }
  }
  // A scan of 10,000 one-off keys.
  for (uint64_t k = 1'000'000; k < 1'010'000; ++k) {
    if (c.get(k) == nullptr) c.put(k, k);
  }
  int survivors = 0;
  for (uint64_t k = 0; k < 50; ++k) survivors += c.peek(k) != nullptr ? 1 : 0;
  EXPECT_GE(survivors, 49);  // at most the window's one slot may have been lost
  EXPECT_GT(c.stats().rejections, 9000u);

  // A plain LRU loses the whole hot set to the same scan.
  LruCache<uint64_t, uint64_t> lru({.max_entries = 100});
  for (uint64_t k = 0; k < 50; ++k) lru.put(k, k);
  for (uint64_t k = 1'000'000; k < 1'010'000; ++k) lru.put(k, k);
  for (uint64_t k = 0; k < 50; ++k) EXPECT_EQ(lru.peek(k), nullptr);
}

TEST(TinyLfuCache, BeatsLruOnZipfAndScanTraces) {
  // Deterministic traces (seeded): the same numbers on every run.
  const TraceOptions zipf{.distinct_keys = 20'000, .length = 200'000, .zipf_s = 0.9, .seed = 7};
  TraceOptions scan = zipf;
  scan.scan_every = 10'000;
  scan.scan_length = 5'000;
  for (const TraceOptions& o : {zipf, scan}) {
    const auto trace = make_trace(o);
    Cache tiny({.max_entries = 200});
    LruCache<uint64_t, uint64_t> lru({.max_entries = 200});
    const double tiny_ratio = replay(tiny, trace);
    const double lru_ratio = replay(lru, trace);
    EXPECT_GT(tiny_ratio, lru_ratio + 0.05) << "scan_every=" << o.scan_every;
  }
}

}  // namespace
}  // namespace sluice::cache
