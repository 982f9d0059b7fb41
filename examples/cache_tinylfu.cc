// TinyLfuCache: W-TinyLFU admission beside plain LRU on two deterministic traces (Zipf 0.9,
// and Zipf polluted by scans of one-off keys), cache = 1% of the distinct keys.
#include <cstdio>
#include <vector>

#include "sluice/cache/lru_cache.h"
#include "sluice/cache/tinylfu_cache.h"
#include "sluice/cache/workload.h"

namespace {

template <class Cache>
double hit_ratio(Cache& cache, const std::vector<uint64_t>& trace) {
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

}  // namespace

int main() {
  using namespace sluice::cache;
  constexpr size_t kKeys = 50'000;
  const TraceOptions zipf{.distinct_keys = kKeys, .length = 300'000, .zipf_s = 0.9, .seed = 11};
  TraceOptions scan = zipf;
  scan.scan_every = 20'000;
  scan.scan_length = 10'000;
  bool ok = true;
  for (const auto& [name, options] :
       {std::pair{"zipf(0.9)", zipf}, std::pair{"zipf+scans", scan}}) {
    const auto trace = make_trace(options);
    LruCache<uint64_t, uint64_t> lru({.max_entries = kKeys / 100});
    TinyLfuCache<uint64_t, uint64_t> tiny({.max_entries = kKeys / 100});
    const double l = hit_ratio(lru, trace);
    const double t = hit_ratio(tiny, trace);
    std::printf(
        "%-11s %zu accesses, cache %zu entries: LRU %.1f%%  W-TinyLFU %.1f%%  (+%.1f "
        "points, %llu admissions refused)\n",
        name, trace.size(), kKeys / 100, 100 * l, 100 * t, 100 * (t - l),
        static_cast<unsigned long long>(tiny.stats().rejections));
    ok = ok && t >= l;
  }
  return ok ? 0 : 1;
}
