#include "sluice/resilience/retry_budget.h"

#include <algorithm>
#include <cmath>

#include "sluice/base/check.h"

namespace sluice::resilience {

std::optional<std::string> RetryBudgetOptions::validate() const {
  if (!(budget_percent >= 0.0 && budget_percent <= 100.0)) {
    return "retry budget: budget_percent must be in [0, 100], found " +
           std::to_string(budget_percent);
  }
  return std::nullopt;
}

RetryBudget::RetryBudget(RetryBudgetOptions options) : options_(options) {
  const auto error = options_.validate();
  SLUICE_CHECK(!error, error ? *error : "");
}

void RetryBudget::request_finished() noexcept {
  const uint64_t before = active_requests_.fetch_sub(1, std::memory_order_relaxed);
  SLUICE_CHECK(before > 0, "RetryBudget::request_finished without request_started");
}

uint64_t RetryBudget::limit_for(uint64_t active_requests) const noexcept {
  const auto share = static_cast<uint64_t>(
      std::floor(static_cast<double>(active_requests) * options_.budget_percent / 100.0));
  return std::max<uint64_t>(options_.min_retry_concurrency, share);
}

uint64_t RetryBudget::retry_limit() const noexcept {
  return limit_for(active_requests_.load(std::memory_order_relaxed));
}

bool RetryBudget::try_acquire_retry() noexcept {
  uint64_t current = active_retries_.load(std::memory_order_relaxed);
  for (;;) {
    // Re-read the load each round: it may have grown while we raced for a slot.
    if (current + 1 > limit_for(active_requests_.load(std::memory_order_relaxed))) {
      budget_exhausted_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (active_retries_.compare_exchange_weak(current, current + 1, std::memory_order_acq_rel,
                                              std::memory_order_relaxed)) {
      retries_granted_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
}

void RetryBudget::release_retry() noexcept {
  const uint64_t before = active_retries_.fetch_sub(1, std::memory_order_acq_rel);
  SLUICE_CHECK(before > 0, "RetryBudget::release_retry without a slot");
}

RetryBudget::Stats RetryBudget::stats() const noexcept {
  Stats s;
  s.active_requests = active_requests_.load(std::memory_order_relaxed);
  s.active_retries = active_retries_.load(std::memory_order_relaxed);
  s.retries_granted = retries_granted_.load(std::memory_order_relaxed);
  s.budget_exhausted = budget_exhausted_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sluice::resilience
