// The core shared by `Coalescer<T>` and `AsyncCoalescer<T>`: a sharded table of executions in
// flight, the result cache beside it, the admission policy (cache hit, join, lead, reject,
// overflow) and the counters behind `CoalescerStats`.
//
// `Flight` is the form-specific record of one execution (how its waiters sleep and wake); the
// table only needs its `joined` counter, which it guards with the shard lock.
//
// Thread-safety: all members are safe from any thread. Each key maps to one shard whose mutex
// guards that shard's in-flight map, result cache and the `joined` counters of its flights;
// counters are relaxed atomics (a `stats()` snapshot is not one consistent instant while calls
// are running, but each counter is exact once they stop).
// Ordering: `finish` stores the result and removes the execution under one shard lock, before
// any waiter is woken, so a call either finds the execution or finds its cached result.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/hash.h"
#include "sluice/coalesce/coalescer_options.h"
#include "sluice/coalesce/internal/outcome.h"
#include "sluice/coalesce/internal/result_store.h"
#include "sluice/coalesce/internal/wait_stats.h"

namespace sluice::coalesce::internal {

// What `admit` decided for one call.
enum class Role {
  hit,       // answered from the cache: `cached` holds the outcome
  join,      // joined the execution in `flight`
  lead,      // created `flight` and must run the work, then call `finish`
  rejected,  // refused at max_in_flight
  overflow,  // past max_waiters_per_key: run the work alone, then call `note_execution`
};

template <class T, class Flight>
class FlightTable {
 public:
  using Weigher = std::function<size_t(std::string_view key, const Outcome<T>&)>;

  struct Admission {
    Role role;
    std::shared_ptr<Flight> flight;  // for join and lead
    OutcomePtr<T> cached;            // for hit
  };

  FlightTable(const CoalescerOptions& options, Weigher weigh)
      : options_(options),
        clock_(options.clock != nullptr ? *options.clock : base::SteadyClock::instance()),
        weigh_(weigh ? std::move(weigh) : Weigher(&default_weight<T>)),
        waits_(std::make_shared<WaitStats>(clock_)) {
    const size_t n = std::max<size_t>(1, options.shards);
    const bool caching =
        options.result_ttl > Duration::zero() || options.error_ttl > Duration::zero();
    const size_t per_shard_entries = caching ? (options.max_cached_results + n - 1) / n : 0;
    const size_t per_shard_bytes = (options.max_cached_bytes + n - 1) / n;
    shards_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      shards_.push_back(std::make_unique<Shard>(per_shard_entries, per_shard_bytes, clock_));
    }
  }

  FlightTable(const FlightTable&) = delete;
  FlightTable& operator=(const FlightTable&) = delete;

  [[nodiscard]] const base::Clock& clock() const noexcept { return clock_; }

  // Decides the role of one call for `key` and records it.
  [[nodiscard]] Admission admit(std::string_view key) {
    total_.fetch_add(1, std::memory_order_relaxed);
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mu);
    if (OutcomePtr<T> hit = shard.store.get(key)) {
      hits_.fetch_add(1, std::memory_order_relaxed);
      return {Role::hit, nullptr, std::move(hit)};
    }
    if (auto it = shard.in_flight.find(key); it != shard.in_flight.end()) {
      Flight& flight = *it->second;
      if (options_.max_waiters_per_key != 0 && flight.joined >= options_.max_waiters_per_key) {
        overflow_.fetch_add(1, std::memory_order_relaxed);
        return {Role::overflow, nullptr, nullptr};
      }
      ++flight.joined;
      coalesced_.fetch_add(1, std::memory_order_relaxed);
      return {Role::join, it->second, nullptr};
    }
    const uint64_t running = in_flight_.fetch_add(1, std::memory_order_relaxed);
    if (options_.max_in_flight != 0 && running >= options_.max_in_flight) {
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return {Role::rejected, nullptr, nullptr};
    }
    auto flight = std::make_shared<Flight>();
    shard.in_flight.emplace(std::string(key), flight);
    leaders_.fetch_add(1, std::memory_order_relaxed);
    return {Role::lead, std::move(flight), nullptr};
  }

  // Called by the leader once the work has ended, before waking anyone: counts the
  // execution, and if `flight` still owns `key` (no `forget` since), caches the outcome by
  // its TTL and removes the execution from the table.
  void finish(std::string_view key, const Flight* flight, const OutcomePtr<T>& outcome) {
    note_execution(*outcome);
    Shard& shard = shard_for(key);
    {
      std::lock_guard lock(shard.mu);
      if (auto it = shard.in_flight.find(key);
          it != shard.in_flight.end() && it->second.get() == flight) {
        shard.in_flight.erase(it);
        const Duration ttl = outcome->failed() ? options_.error_ttl : options_.result_ttl;
        if (ttl > Duration::zero() && shard.store.enabled()) {
          shard.store.put(key, outcome, ttl, weigh_(key, *outcome));
        }
      }
    }
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
  }

  // Counts the end of an execution that is not shared (an overflow run).
  void note_execution(const Outcome<T>& outcome) noexcept {
    if (outcome.failed()) errors_.fetch_add(1, std::memory_order_relaxed);
  }

  // Drops the cached result of `key` and detaches its execution in flight (which still
  // completes its own waiters but no longer caches its result nor accepts joiners).
  void forget(std::string_view key) {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mu);
    shard.store.erase(key);
    if (auto it = shard.in_flight.find(key); it != shard.in_flight.end()) {
      shard.in_flight.erase(it);
    }
  }

  // Drops every cached result (executions in flight are untouched).
  void clear_cache() {
    for (auto& shard : shards_) {
      std::lock_guard lock(shard->mu);
      shard->store.clear();
    }
  }

  // A joiner received its result after `waited`.
  void record_wait(Duration waited) noexcept {
    WaitTally tally;
    tally.add(waited);
    tally.flush(*waits_);
  }
  // The wait counters, shared with releases that may outlive the table (they add whole
  // batches of waits at once).
  [[nodiscard]] const std::shared_ptr<WaitStats>& wait_stats() const noexcept { return waits_; }
  void record_cancelled() noexcept { cancelled_.fetch_add(1, std::memory_order_relaxed); }
  void record_timed_out() noexcept { timed_out_.fetch_add(1, std::memory_order_relaxed); }

  [[nodiscard]] CoalescerStats stats() const {
    CoalescerStats s;
    s.total_requests = total_.load(std::memory_order_relaxed);
    s.leaders = leaders_.load(std::memory_order_relaxed);
    s.coalesced = coalesced_.load(std::memory_order_relaxed);
    s.cache_hits = hits_.load(std::memory_order_relaxed);
    s.errors = errors_.load(std::memory_order_relaxed);
    s.rejected = rejected_.load(std::memory_order_relaxed);
    s.overflow = overflow_.load(std::memory_order_relaxed);
    s.cancelled = cancelled_.load(std::memory_order_relaxed);
    s.timed_out = timed_out_.load(std::memory_order_relaxed);
    s.in_flight = in_flight_.load(std::memory_order_relaxed);
    s.waits = waits_->count();
    s.total_wait = waits_->total();
    s.max_wait = waits_->max();
    for (const auto& shard : shards_) {
      std::lock_guard lock(shard->mu);
      const StoreFigures f = shard->store.figures();
      s.cached_results += f.entries;
      s.cached_bytes += f.bytes;
      s.cache_evictions += f.evictions;
      s.cache_expirations += f.expirations;
    }
    return s;
  }

  // Zeroes the counters (not the `in_flight` gauge nor the cache's own figures).
  void reset_stats() noexcept {
    for (auto* c : {&total_, &leaders_, &coalesced_, &hits_, &errors_, &rejected_, &overflow_,
                    &cancelled_, &timed_out_}) {
      c->store(0, std::memory_order_relaxed);
    }
    waits_->reset();
  }

 private:
  struct Shard {
    Shard(size_t entries, size_t bytes, const base::Clock& clock) : store(entries, bytes, clock) {}
    mutable std::mutex mu;
    std::unordered_map<std::string, std::shared_ptr<Flight>, base::StringHash, std::equal_to<>>
        in_flight;
    ResultStore<T> store;
  };

  Shard& shard_for(std::string_view key) noexcept {
    // The map hashes the same key with StringHash; mix so shard and bucket bits differ.
    return *shards_[base::mix64(base::hash_string(key)) % shards_.size()];
  }

  const CoalescerOptions options_;
  const base::Clock& clock_;
  const Weigher weigh_;
  const std::shared_ptr<WaitStats> waits_;
  std::vector<std::unique_ptr<Shard>> shards_;

  std::atomic<uint64_t> total_{0}, leaders_{0}, coalesced_{0}, hits_{0}, errors_{0}, rejected_{0},
      overflow_{0}, cancelled_{0}, timed_out_{0}, in_flight_{0};
};

}  // namespace sluice::coalesce::internal
