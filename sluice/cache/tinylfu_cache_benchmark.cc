// Hit ratio of W-TinyLFU beside plain LRU on deterministic traces, plus replay throughput.
//   (a) Zipf(0.9) over 100,000 keys, 1,000,000 accesses;
//   (b) the same Zipf stream polluted by scans: after every 20,000 accesses, 10,000 one-off
//       keys in sequence (a third of all accesses are scan keys, which can never hit).
// Cache = 1% of the distinct Zipf keys (1,000 entries). Traces come from `make_trace`
// (seeded Xoshiro256), so hit ratios are exact and repeatable; they appear as the
// `hit_ratio` counter (and `hit_ratio_zipf_only` for the Zipf part of (b)).
//
//   cmake --build build/release --target sluice_cache_benchmark
//   build/release/sluice/cache/sluice_cache_benchmark --benchmark_filter=HitRatio
//   --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Result (exact, deterministic): Zipf LRU hit_ratio=0.3419, W-TinyLFU 0.4503; scan trace LRU
// 0.2245, W-TinyLFU 0.2985 (docs/benchmarks.md (cache)).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "sluice/cache/lru_cache.h"
#include "sluice/cache/tinylfu_cache.h"
#include "sluice/cache/workload.h"

namespace sluice::cache {
namespace {

constexpr size_t kDistinct = 100'000;
constexpr size_t kCapacity = kDistinct / 100;

const std::vector<uint64_t>& zipf_trace() {
  static const auto t =
      make_trace({.distinct_keys = kDistinct, .length = 1'000'000, .zipf_s = 0.9, .seed = 2024});
  return t;
}
const std::vector<uint64_t>& scan_trace() {
  static const auto t = make_trace({.distinct_keys = kDistinct,
                                    .length = 1'000'000,
                                    .zipf_s = 0.9,
                                    .seed = 2024,
                                    .scan_every = 20'000,
                                    .scan_length = 10'000});
  return t;
}

struct Lru {
  using Cache = LruCache<uint64_t, uint64_t>;
};
struct TinyLfu {
  using Cache = TinyLfuCache<uint64_t, uint64_t>;
};

template <class Policy>
void replay(benchmark::State& state, const std::vector<uint64_t>& trace) {
  uint64_t hits = 0;
  uint64_t zipf_hits = 0;
  uint64_t zipf_accesses = 0;
  uint64_t rejections = 0;
  for (auto _ : state) {
    typename Policy::Cache cache({.max_entries = kCapacity});
    hits = zipf_hits = zipf_accesses = 0;
    for (const uint64_t key : trace) {
      const bool scan_key = (key >> 63) != 0;
      zipf_accesses += scan_key ? 0 : 1;
      if (cache.get(key) != nullptr) {
        ++hits;
        zipf_hits += scan_key ? 0 : 1;
      } else {
        cache.put(key, key);
      }
    }
    rejections = cache.stats().rejections;
    benchmark::DoNotOptimize(hits);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(trace.size()));
  state.counters["hit_ratio"] = static_cast<double>(hits) / static_cast<double>(trace.size());
  state.counters["hit_ratio_zipf_only"] =
      static_cast<double>(zipf_hits) / static_cast<double>(zipf_accesses);
  state.counters["rejections"] = static_cast<double>(rejections);
}

template <class Policy>
void BM_HitRatio_Zipf(benchmark::State& state) {
  replay<Policy>(state, zipf_trace());
}
template <class Policy>
void BM_HitRatio_Scan(benchmark::State& state) {
  replay<Policy>(state, scan_trace());
}

BENCHMARK_TEMPLATE(BM_HitRatio_Zipf, Lru)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_HitRatio_Zipf, TinyLfu)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_HitRatio_Scan, Lru)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_HitRatio_Scan, TinyLfu)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice::cache
