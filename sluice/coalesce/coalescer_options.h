// Configuration and statistics shared by `Coalescer<T>` (threads) and `AsyncCoalescer<T>`
// (Asio coroutines).
//
// `CoalescerOptions` is a plain struct fixed at construction. `CoalescerStats` is a snapshot:
// counters are totals since construction or the last `reset_stats()`, gauges are current.
// Thread-safety: both are values; copy them freely.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "sluice/base/clock.h"

namespace sluice::coalesce {

struct CoalescerOptions {
  // How long a successful result is served from the result cache after its execution ends.
  // Zero disables result caching: the coalescer is then pure single-flight.
  Duration result_ttl = std::chrono::seconds(60);
  // How long a failed result (error value or exception) is served from the cache (negative
  // caching). Zero (the default) never caches failures: the next call runs the work again.
  Duration error_ttl = Duration::zero();
  // Bound on distinct keys executing at once (including executions detached by `forget`).
  // Past it a call for a new key is refused with `CoalesceError::too_many_in_flight` (counted
  // in `rejected`); calls joining a key already in flight are unaffected. 0 = unbounded.
  size_t max_in_flight = 10'000;
  // Bound on callers joining one execution. Past it a caller runs the work itself, without
  // sharing or caching its result (counted in `overflow`). 0 = unbounded.
  size_t max_waiters_per_key = 0;
  // Bound on results held by the cache (whole cache, split evenly over shards). At the bound
  // the least recently used result is evicted. 0 disables result caching.
  size_t max_cached_results = 10'000;
  // Bound on the estimated bytes of cached results (key + value; see the weigher of
  // `Coalescer`); at the bound least recently used results are evicted. 0 = no byte bound.
  size_t max_cached_bytes = 0;
  // Number of independently locked shards of the in-flight table and result cache; a key
  // always maps to the same shard. 0 is treated as 1.
  size_t shards = 16;
  // The time source for TTLs and wait times; must outlive the coalescer. Null means
  // `base::SteadyClock::instance()`. Tests pass a `base::ManualClock`.
  const base::Clock* clock = nullptr;
};

struct CoalescerStats {
  // Calls to `run` (every outcome below adds exactly one: total_requests = leaders +
  // coalesced + cache_hits + rejected + overflow).
  uint64_t total_requests = 0;
  // Calls that started an execution of the work for their key (executions, not counting
  // overflow runs).
  uint64_t leaders = 0;
  // Calls that joined an execution already in flight and waited for its result.
  uint64_t coalesced = 0;
  // Calls answered from the result cache without running or waiting.
  uint64_t cache_hits = 0;
  // Executions (leader or overflow) whose work returned an error value or threw.
  uint64_t errors = 0;
  // Calls refused at `max_in_flight`.
  uint64_t rejected = 0;
  // Calls that ran the work on their own past `max_waiters_per_key`.
  uint64_t overflow = 0;
  // Async callers (leaders or joiners) whose wait was cancelled before the result; their
  // execution kept running.
  uint64_t cancelled = 0;
  // Async callers whose per-call timeout expired before the result.
  uint64_t timed_out = 0;
  // Executions running now (a gauge; the quantity `max_in_flight` bounds).
  uint64_t in_flight = 0;
  // Joiners that received their result (the denominator of `average_wait`).
  uint64_t waits = 0;
  // Sum and maximum, over those joiners, of the time from joining to receiving the result
  // (for async joiners: to resuming on their own executor).
  Duration total_wait{0};
  Duration max_wait{0};
  // The result cache now (gauges) and its removals (totals).
  uint64_t cached_results = 0;
  uint64_t cached_bytes = 0;
  uint64_t cache_evictions = 0;
  uint64_t cache_expirations = 0;

  // Share of calls that did not run the work: (coalesced + cache_hits) / total_requests; 0
  // when there were no calls.
  [[nodiscard]] double coalesce_rate() const noexcept {
    return total_requests == 0
               ? 0.0
               : static_cast<double>(coalesced + cache_hits) / static_cast<double>(total_requests);
  }
  // Mean wait of joiners; zero when none.
  [[nodiscard]] Duration average_wait() const noexcept {
    return waits == 0 ? Duration::zero() : total_wait / static_cast<int64_t>(waits);
  }
};

}  // namespace sluice::coalesce
