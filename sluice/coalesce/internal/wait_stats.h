// The joiner-wait counters behind `CoalescerStats::{waits, total_wait, max_wait}`, kept apart
// from the table so that the asynchronous release can hold them by `shared_ptr` (a release
// may outlive the coalescer) and add a whole batch of waits with three atomic operations
// instead of three per waiter.
//
// Thread-safety: `WaitStats` is relaxed atomics, safe from any thread; `WaitTally` is a plain
// local accumulator for one thread. Cost: `record` is two fetch_adds and a CAS loop on max.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "sluice/base/clock.h"

namespace sluice::coalesce::internal {

class WaitStats {
 public:
  // `clock` measures the waits; it must outlive every user of this object.
  explicit WaitStats(const base::Clock& clock) noexcept : clock_(clock) {}

  [[nodiscard]] const base::Clock& clock() const noexcept { return clock_; }

  // Adds `count` waits whose durations sum to `total_ns` with the longest `max_ns`.
  void record(uint64_t count, int64_t total_ns, int64_t max_ns) noexcept {
    if (count == 0) return;
    count_.fetch_add(count, std::memory_order_relaxed);
    total_ns_.fetch_add(total_ns, std::memory_order_relaxed);
    int64_t prev = max_ns_.load(std::memory_order_relaxed);
    while (prev < max_ns &&
           !max_ns_.compare_exchange_weak(prev, max_ns, std::memory_order_relaxed)) {
    }
  }

  [[nodiscard]] uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  [[nodiscard]] Duration total() const noexcept {
    return Duration(total_ns_.load(std::memory_order_relaxed));
  }
  [[nodiscard]] Duration max() const noexcept {
    return Duration(max_ns_.load(std::memory_order_relaxed));
  }

  void reset() noexcept {
    count_.store(0, std::memory_order_relaxed);
    total_ns_.store(0, std::memory_order_relaxed);
    max_ns_.store(0, std::memory_order_relaxed);
  }

 private:
  const base::Clock& clock_;
  std::atomic<uint64_t> count_{0};
  std::atomic<int64_t> total_ns_{0};
  std::atomic<int64_t> max_ns_{0};
};

// Accumulates the waits of one batch, then adds them to a `WaitStats` at once.
struct WaitTally {
  uint64_t count = 0;
  int64_t total_ns = 0;
  int64_t max_ns = 0;

  void add(Duration waited) noexcept {
    const int64_t ns = std::max<int64_t>(0, waited.count());
    ++count;
    total_ns += ns;
    max_ns = std::max(max_ns, ns);
  }
  // Adds the tally to `stats` and empties it.
  void flush(WaitStats& stats) noexcept {
    stats.record(count, total_ns, max_ns);
    *this = {};
  }
};

}  // namespace sluice::coalesce::internal
