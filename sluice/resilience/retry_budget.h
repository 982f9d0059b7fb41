// RetryBudget: a cap on retries shared by every request to one upstream, after Envoy's
// `retry_budget` (envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget).
//
// A retry may start only while the retries in flight stay within `budget_percent` of the
// active requests, with a floor of `min_retry_concurrency` so that a quiet upstream can still
// retry. This keeps a struggling upstream from being hit by a retry storm: when most requests
// fail, at most a fixed fraction of the load is added by retries.
//
// Thread-safety: thread-safe; every member is a relaxed or acq_rel atomic, no lock.
// Cost: `try_acquire_retry` is one CAS loop (uncontended: two loads and one CAS);
// `request_started`/`request_finished` and `release_retry` are one atomic add each.
// Ordering: a "request" is one logical call (all its attempts), counted from
// `request_started` to `request_finished`; a "retry" holds its slot from the moment it is
// granted (including the backoff sleep) until its attempt completes. `RetryState` does this
// bookkeeping; direct users must pair every successful acquire with one release.
// Lifetime: shared by the policies of one upstream (hold it in a `std::shared_ptr`).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

namespace sluice::resilience {

struct RetryBudgetOptions {
  // Retries in flight may be at most this percentage of active requests (Envoy default 20).
  double budget_percent = 20.0;
  // Retries in flight always allowed, whatever the load (Envoy default 3).
  uint32_t min_retry_concurrency = 3;

  // An error message naming the bad field, or nothing when the options are valid.
  [[nodiscard]] std::optional<std::string> validate() const;
};

class RetryBudget {
 public:
  // A snapshot; counters are totals since construction.
  struct Stats {
    uint64_t active_requests = 0;   // requests in flight now
    uint64_t active_retries = 0;    // retries holding a slot now
    uint64_t retries_granted = 0;   // slots handed out
    uint64_t budget_exhausted = 0;  // retries refused because the budget was full
  };

  // Aborts (SLUICE_CHECK) on invalid options: call `options.validate()` first on user input.
  explicit RetryBudget(RetryBudgetOptions options = {});
  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;

  // A logical request begins / ends.
  void request_started() noexcept { active_requests_.fetch_add(1, std::memory_order_relaxed); }
  void request_finished() noexcept;

  // Takes one retry slot if the budget allows it; false (and `budget_exhausted` counted)
  // otherwise. A true result must be paired with one `release_retry()`.
  [[nodiscard]] bool try_acquire_retry() noexcept;
  // Returns a slot taken by `try_acquire_retry`.
  void release_retry() noexcept;

  // The current limit on retries in flight: max(min_retry_concurrency, percent * active).
  [[nodiscard]] uint64_t retry_limit() const noexcept;

  [[nodiscard]] Stats stats() const noexcept;
  [[nodiscard]] const RetryBudgetOptions& options() const noexcept { return options_; }

 private:
  [[nodiscard]] uint64_t limit_for(uint64_t active_requests) const noexcept;

  const RetryBudgetOptions options_;
  std::atomic<uint64_t> active_requests_{0};
  std::atomic<uint64_t> active_retries_{0};
  std::atomic<uint64_t> retries_granted_{0};
  std::atomic<uint64_t> budget_exhausted_{0};
};

}  // namespace sluice::resilience
