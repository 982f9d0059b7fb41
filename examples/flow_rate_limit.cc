// Token buckets on a simulated clock: one client sending 20 req/s against a 10 req/s limit
// with a burst of 5, then per-client buckets (one greedy client cannot starve the others) and
// LRU eviction at the key bound.
#include <chrono>
#include <cstdio>
#include <string>

#include "sluice/base/clock.h"
#include "sluice/base/units.h"
#include "sluice/flow/token_bucket.h"

namespace flow = sluice::flow;
using namespace std::chrono_literals;

int main() {
  sluice::base::ManualClock clock;
  flow::TokenBucket bucket({.rate_per_second = 10, .burst = 5}, clock);
  int allowed = 0;
  sluice::Duration last_retry{0};
  for (int i = 0; i < 60; ++i) {  // 3 s at 20 req/s
    const flow::RateDecision d = bucket.try_acquire();
    if (d) {
      ++allowed;
    } else {
      last_retry = d.retry_after;
    }
    clock.advance(50ms);
  }
  std::printf(
      "TokenBucket 10/s burst 5, 60 requests over 3 s: %d allowed (5 burst + 29 "
      "refilled), %llu refused, Retry-After %s\n",
      allowed, static_cast<unsigned long long>(bucket.stats().rejected_total),
      sluice::base::format_duration(last_retry).c_str());
  if (allowed != 5 + 29) return 1;  // the last request is at 2.95 s: 29 refills

  flow::KeyedTokenBucket per_client(
      {.bucket = {.rate_per_second = 5, .burst = 5}, .max_keys = 1000}, clock);
  int greedy = 0;
  int polite_a = 0;
  int polite_b = 0;
  for (int t = 0; t < 100; ++t) {  // 1 s in 10 ms steps
    for (int k = 0; k < 10; ++k) greedy += per_client.try_acquire("greedy") ? 1 : 0;
    if (t % 25 == 0) polite_a += per_client.try_acquire("polite-a") ? 1 : 0;
    if (t % 50 == 0) polite_b += per_client.try_acquire("polite-b") ? 1 : 0;
    clock.advance(10ms);
  }
  std::printf(
      "KeyedTokenBucket 5/s burst 5, over 1 s: greedy 1000 tries -> %d allowed, "
      "polite-a 4/4, polite-b %d/2\n",
      greedy, polite_b);
  if (polite_a != 4 || polite_b != 2 || greedy > 10) return 1;

  flow::KeyedTokenBucket bounded(
      {.bucket = {.rate_per_second = 1, .burst = 1}, .max_keys = 100, .shards = 4}, clock);
  for (int i = 0; i < 10'000; ++i) (void)bounded.try_acquire("ip-" + std::to_string(i));
  const auto s = bounded.stats();
  std::printf(
      "10000 distinct keys into a %llu-key table: %llu kept, %llu evicted (LRU), %llu of "
      "them before refilling\n",
      static_cast<unsigned long long>(s.max_keys), static_cast<unsigned long long>(s.keys),
      static_cast<unsigned long long>(s.evictions_total),
      static_cast<unsigned long long>(s.evictions_not_full_total));
  return s.keys <= s.max_keys ? 0 : 1;
}
