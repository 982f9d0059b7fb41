// `AsyncCoalescer<T>`: single-flight for Asio C++20 coroutines, with a TTL cache of completed
// results. `co_await c.run(key, factory)` runs `co_await factory()` once per key at a time;
// the other callers suspend (no thread blocked, no polling) and each resumes on its own
// executor with the same value, error or exception. This is the asynchronous form of
// `coalescer.h` and shares its core (options, stats, cache, admission policy).
//
// Thread-safety: every member function is safe from any thread; callers may run on different
// io_contexts. Cancellation of one caller (its cancellation slot, `awaitable_operators` with a
// timer, or `RunOptions::timeout`) releases that caller only: the work runs detached on the
// leader's executor and completes for everyone else, even if the leader's own caller left.
// Cost: as `Coalescer`, plus for a waiter one coroutine frame (`run`'s own, which also holds
// the waiter's operation: no other allocation) and one `post` per distinct waiter executor at
// release (up to 8 executors, then one per waiter). A release resumes each executor's waiters
// in join order in one loop, with no lock, allocation or shared reference count per waiter
// (the joiners' wait counters are updated once per executor); what remains per waiter is its
// handler, its frame, one clock read and the copy of `T` (`run`) or one reference count
// increment (`run_shared`). With `T = std::shared_ptr<const X>` a copy is one increment too.
// `RunOptions::timeout` costs a timer and two more coroutines per call. The work is one
// `co_spawn` on the leader's executor: it starts inline (dispatch) until its first
// suspension, then continues detached.
// Lifetime: `run` calls and the detached work share the core by `shared_ptr`, so the
// coalescer may be destroyed while calls are pending (they complete normally). An io_context
// destroyed while work is pending drops its waiters, as Asio does with its own operations.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/result.hpp>
#include <boost/system/system_error.hpp>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "sluice/coalesce/coalescer_options.h"
#include "sluice/coalesce/error.h"
#include "sluice/coalesce/internal/async_flight.h"
#include "sluice/coalesce/internal/flight_table.h"
#include "sluice/coalesce/internal/outcome.h"

namespace sluice::coalesce {

namespace internal {
template <class A>
struct IsAwaitable : std::false_type {};
template <class U, class E>
struct IsAwaitable<boost::asio::awaitable<U, E>> : std::true_type {};
}  // namespace internal

// Options of one `AsyncCoalescer::run` call.
struct RunOptions {
  // Longest this caller waits for the shared result (measured by an asio::steady_timer on the
  // caller's executor); past it the call returns `CoalesceError::timeout` while the execution
  // continues for the others. Zero = wait as long as the work takes.
  Duration timeout = Duration::zero();
  // When true, `timeout` bounds only callers that join an execution in flight: the caller
  // that started it waits for its own execution however long it takes (the gateway's rule,
  // so a slow upstream does not make its leader call it a second time).
  bool timeout_joiners_only = false;
};

template <class T>
class AsyncCoalescer {
  static_assert(std::is_copy_constructible_v<T> && !std::is_reference_v<T>,
                "AsyncCoalescer<T> hands each caller a copy of T");

 public:
  // Estimates the bytes of a cached result, for `max_cached_bytes`.
  using Weigher = std::function<size_t(std::string_view key, const internal::Outcome<T>&)>;

  explicit AsyncCoalescer(CoalescerOptions options = {}, Weigher weigh = {})
      : table_(std::make_shared<Table>(options, std::move(weigh))) {}

  AsyncCoalescer(const AsyncCoalescer&) = delete;
  AsyncCoalescer& operator=(const AsyncCoalescer&) = delete;

  // Returns the result of `co_await factory()` for `key`: from the cache, by joining the
  // execution in flight, or by starting it (as leader: the awaitable is spawned detached on
  // this caller's executor) and waiting like everyone else. `factory` returns
  // `awaitable<T>` or `awaitable<boost::system::result<T>>`; it is called once if this caller
  // leads (or overflows) and never otherwise. An exception of the work is rethrown here.
  // Errors: `too_many_in_flight`, `cancelled` (this caller's slot fired), `timeout`.
  // Lifetime: the work may outlive this caller (it serves the others), so `factory` and the
  // awaitable it returns must own what they use (capture by value or `shared_ptr`, not by
  // reference to this caller's frame).
  template <class Factory>
  requires std::invocable<Factory&> && internal::IsAwaitable<std::invoke_result_t<Factory&>>::value
      [[nodiscard]] boost::asio::awaitable<boost::system::result<T>>
      run(std::string key, Factory factory, RunOptions options = {}) {
    return run_as<T>(std::move(key), std::move(factory), options);
  }

  // As `run`, but each caller receives a `shared_ptr` to the one shared value instead of a
  // copy of it (an aliasing pointer into the shared outcome: one reference count increment
  // per caller whatever `T` is). Use it when `T` is large and not itself a handle.
  template <class Factory>
  requires std::invocable<Factory&> && internal::IsAwaitable<std::invoke_result_t<Factory&>>::value
      [[nodiscard]] boost::asio::awaitable<boost::system::result<std::shared_ptr<const T>>>
      run_shared(std::string key, Factory factory, RunOptions options = {}) {
    return run_as<std::shared_ptr<const T>>(std::move(key), std::move(factory), options);
  }

  // Drops the cached result of `key` and detaches its execution in flight, if any: callers
  // already waiting still get that execution's result, but it is not cached and the next
  // call for `key` starts a fresh execution.
  void forget(std::string_view key) { table_->forget(key); }

  // Drops every cached result (the admin "clear cache" action).
  void clear_cache() { table_->clear_cache(); }

  // Zeroes the counters of `stats()` (the admin "reset metrics" action).
  void reset_stats() noexcept { table_->reset_stats(); }

  [[nodiscard]] CoalescerStats stats() const { return table_->stats(); }

 private:
  using Flight = internal::AsyncFlight<T>;
  using Table = internal::FlightTable<T, Flight>;

  // What a caller receives from an outcome: a copy of the value (R = T) or an aliasing
  // pointer to it (R = shared_ptr<const T>); the error code; or the exception, rethrown.
  template <class R>
  static boost::system::result<R> deliver(const internal::OutcomePtr<T>& outcome) {
    if constexpr (std::is_same_v<R, T>) {
      return outcome->get();
    } else {
      if (const T* value = outcome->value()) return R(outcome, value);
      return outcome->error();
    }
  }

  // Not inlined into `run`: GCC 12 at -O1 then misreads Asio's frame allocator as a
  // mismatched new/delete (-Wmismatched-new-delete).
  template <class R, class Factory>
  [[gnu::noinline]] static boost::asio::awaitable<boost::system::result<R>> run_as(
      std::shared_ptr<Table> table, std::string key, Factory factory, RunOptions options);

  template <class R, class Factory>
  boost::asio::awaitable<boost::system::result<R>> run_as(std::string key, Factory factory,
                                                          RunOptions options) {
    // pending calls keep the core alive, even past the coalescer
    return run_as<R>(table_, std::move(key), std::move(factory), options);
  }

  template <class Factory>
  static boost::asio::awaitable<internal::OutcomePtr<T>> execute(Factory& factory) {
    try {
      co_return internal::make_outcome<T>(co_await std::invoke(factory));
    } catch (...) {
      co_return std::make_shared<const internal::Outcome<T>>(std::current_exception());
    }
  }

  // The detached execution: owns the core, the flight and the factory until it has
  // published the outcome.
  template <class Factory>
  static boost::asio::awaitable<void> lead(std::shared_ptr<Table> table, std::string key,
                                           std::shared_ptr<Flight> flight, Factory factory) {
    const internal::OutcomePtr<T> outcome = co_await execute(factory);
    table->finish(key, flight.get(), outcome);
    flight->publish(outcome, table->wait_stats());
  }

  // One wait for the flight, as a coroutine of its own so that `wait_bounded` can race it
  // against a timer; it delivers the value before it returns (the outcome pointer the wait
  // completes with is only valid until then).
  template <class R>
  static boost::asio::awaitable<boost::system::result<R>> wait_once(
      std::shared_ptr<Flight> flight, std::optional<TimePoint> joined_at) {
    internal::WaiterSlot slot;
    const internal::OutcomePtr<T>* outcome = co_await internal::async_wait_flight<T>(
        std::move(flight), joined_at, co_await boost::asio::this_coro::executor, &slot,
        boost::asio::deferred);
    if (*outcome == nullptr) co_return CoalesceError::cancelled;
    co_return deliver<R>(*outcome);
  }

  // Waits for the flight's outcome for at most `timeout` (the path of `RunOptions::timeout`).
  template <class R>
  static boost::asio::awaitable<boost::system::result<R>> wait_bounded(
      Table& table, std::shared_ptr<Flight> flight, Duration timeout,
      std::optional<TimePoint> joined_at) {
    using namespace boost::asio::experimental::awaitable_operators;
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, timeout);
    std::variant<boost::system::result<R>, std::tuple<boost::system::error_code>> first;
    bool aborted = false;
    try {
      first = co_await (wait_once<R>(std::move(flight), joined_at) ||
                        timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable)));
    } catch (const boost::system::system_error& e) {
      // Thrown instead of starting the wait when this coroutine was already cancelled.
      if (e.code() != boost::asio::error::operation_aborted) throw;
      aborted = true;
    }
    if (aborted) {
      table.record_cancelled();
      co_return CoalesceError::cancelled;
    }
    if (first.index() == 1) {
      if (std::get<0>(std::get<1>(first)) == boost::asio::error::operation_aborted) {
        table.record_cancelled();  // cancelled from outside while waiting
        co_return CoalesceError::cancelled;
      }
      table.record_timed_out();
      co_return CoalesceError::timeout;
    }
    boost::system::result<R> got = std::get<0>(std::move(first));
    if (!got && got.error() == CoalesceError::cancelled) table.record_cancelled();
    co_return got;
  }

  std::shared_ptr<Table> table_;
};

// The body of `run` and `run_shared`. The common path (join or lead, no timeout) waits in this
// frame: no nested coroutine, and the waiter's operation lives in `slot` here.
template <class T>
template <class R, class Factory>
boost::asio::awaitable<boost::system::result<R>> AsyncCoalescer<T>::run_as(
    std::shared_ptr<Table> table, std::string key, Factory factory, RunOptions options) {
  auto admission = table->admit(key);
  std::optional<TimePoint> joined_at;
  switch (admission.role) {
    case internal::Role::hit:
      co_return deliver<R>(admission.cached);
    case internal::Role::rejected:
      co_return CoalesceError::too_many_in_flight;
    case internal::Role::overflow: {
      const auto outcome = co_await execute(factory);
      table->note_execution(*outcome);
      co_return deliver<R>(outcome);
    }
    case internal::Role::lead:
      boost::asio::co_spawn(co_await boost::asio::this_coro::executor,
                            lead(table, key, admission.flight, std::move(factory)),
                            boost::asio::detached);
      break;
    case internal::Role::join:
      joined_at = table->clock().now();
      break;
  }
  if (options.timeout > Duration::zero() &&
      !(options.timeout_joiners_only && admission.role == internal::Role::lead)) {
    co_return co_await wait_bounded<R>(*table, std::move(admission.flight), options.timeout,
                                       joined_at);
  }
  internal::WaiterSlot slot;
  const internal::OutcomePtr<T>* outcome = nullptr;
  try {
    outcome = co_await internal::async_wait_flight<T>(std::move(admission.flight), joined_at,
                                                      co_await boost::asio::this_coro::executor,
                                                      &slot, boost::asio::deferred);
  } catch (const boost::system::system_error& e) {
    // Thrown by Asio instead of starting the wait when this coroutine was already cancelled
    // (`throw_if_cancelled`): the same outcome as a cancelled wait.
    if (e.code() != boost::asio::error::operation_aborted) throw;
  }
  if (outcome == nullptr || *outcome == nullptr) {
    table->record_cancelled();
    co_return CoalesceError::cancelled;
  }
  co_return deliver<R>(*outcome);  // before any suspension: `outcome` is the batch's
}

}  // namespace sluice::coalesce
