// `Coalescer<T>`: single-flight for threads, with a TTL cache of completed results. Concurrent
// `run` calls with the same key execute the work once; the others block until it ends and
// all receive the same value, the same error or the same exception. A result (and, when
// `error_ttl > 0`, a failure) is then served from the cache until its TTL ends.
//
// Thread-safety: every member function is safe from any thread.
// Errors: the work returns `T` (or something convertible) or `boost::system::result<T>`;
// error values come back as values, exceptions are captured once and rethrown to every
// caller sharing the execution. The coalescer's own refusals are `CoalesceError` values.
// Cost: a cache hit is one hash, one shard lock, one cache lookup and one copy of `T`; a
// leader adds two shard locks, a map insert/erase and one allocation for the shared outcome;
// a joiner blocks on a condition variable (no polling). Each caller receives its own copy of
// `T`: for large values use `T = std::shared_ptr<const X>`.
// Lifetime: the coalescer must outlive every `run` call. `forget` is safe at any time.
// This header never includes Asio; the coroutine form is `async_coalescer.h`.
#pragma once

#include <boost/system/result.hpp>
#include <condition_variable>
#include <mutex>
#include <string_view>
#include <type_traits>
#include <utility>

#include "sluice/coalesce/coalescer_options.h"
#include "sluice/coalesce/error.h"
#include "sluice/coalesce/internal/flight_table.h"
#include "sluice/coalesce/internal/outcome.h"

namespace sluice::coalesce {

template <class T>
class Coalescer {
  static_assert(std::is_copy_constructible_v<T> && !std::is_reference_v<T>,
                "Coalescer<T> hands each caller a copy of T");

 public:
  // Estimates the bytes of a cached result, for `max_cached_bytes`.
  using Weigher = std::function<size_t(std::string_view key, const internal::Outcome<T>&)>;

  explicit Coalescer(CoalescerOptions options = {}, Weigher weigh = {})
      : table_(options, std::move(weigh)) {}

  Coalescer(const Coalescer&) = delete;
  Coalescer& operator=(const Coalescer&) = delete;

  // Returns the result of `work()` for `key`: from the cache, by waiting for the execution
  // already in flight, or by running `work` on this thread (as leader, or alone past
  // `max_waiters_per_key`). An exception thrown by the work is rethrown here.
  // `CoalesceError::too_many_in_flight` when a new key meets `max_in_flight`.
  template <class F>
  requires std::invocable<F&>
  [[nodiscard]] boost::system::result<T> run(std::string_view key, F&& work) {
    auto admission = table_.admit(key);
    switch (admission.role) {
      case internal::Role::hit:
        return admission.cached->get();
      case internal::Role::rejected:
        return CoalesceError::too_many_in_flight;
      case internal::Role::overflow: {
        const auto outcome = internal::invoke_captured<T>(work);
        table_.note_execution(*outcome);
        return outcome->get();
      }
      case internal::Role::lead: {
        const auto outcome = internal::invoke_captured<T>(work);
        table_.finish(key, admission.flight.get(), outcome);
        Flight& flight = *admission.flight;
        {
          std::lock_guard lock(flight.mu);
          flight.outcome = outcome;
        }
        flight.done.notify_all();
        return outcome->get();
      }
      case internal::Role::join:
        break;
    }
    const TimePoint joined_at = table_.clock().now();
    Flight& flight = *admission.flight;
    internal::OutcomePtr<T> outcome;
    {
      std::unique_lock lock(flight.mu);
      flight.done.wait(lock, [&] { return flight.outcome != nullptr; });
      outcome = flight.outcome;
    }
    table_.record_wait(table_.clock().now() - joined_at);
    return outcome->get();
  }

  // Drops the cached result of `key` and detaches its execution in flight, if any: callers
  // already waiting still get that execution's result, but it is not cached and the next
  // call for `key` starts a fresh execution.
  void forget(std::string_view key) { table_.forget(key); }

  // Drops every cached result (the admin "clear cache" action).
  void clear_cache() { table_.clear_cache(); }

  // Zeroes the counters of `stats()` (the admin "reset metrics" action).
  void reset_stats() noexcept { table_.reset_stats(); }

  [[nodiscard]] CoalescerStats stats() const { return table_.stats(); }

 private:
  // One execution: joiners sleep on `done` until the leader publishes `outcome`.
  struct Flight {
    size_t joined = 0;  // guarded by the table's shard lock
    std::mutex mu;
    std::condition_variable done;
    internal::OutcomePtr<T> outcome;  // guarded by mu; set once
  };

  internal::FlightTable<T, Flight> table_;
};

}  // namespace sluice::coalesce
