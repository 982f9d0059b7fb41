// One execution of an `AsyncCoalescer`: the list of suspended waiters and the outcome that
// releases them. Each waiter is an Asio asynchronous operation whose completion is posted to
// the waiter's own executor (holding outstanding work on it meanwhile); a waiter whose
// cancellation slot fires unlinks itself and completes with `operation_aborted`, leaving the
// execution and the other waiters untouched.
//
// Thread-safety: `mu` guards `outcome` and the waiter list; whoever unlinks a waiter under `mu`
// (the publisher or the waiter's cancellation handler) completes it, exactly once.
// Cancellation follows Asio's rule: a slot's signal is emitted on the waiter's executor.
// Lifetime: a waiter's operation is freed on its executor, just before its handler runs. An
// execution that never ends keeps its waiters (and their coroutine frames) alive.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>

#include "sluice/coalesce/internal/outcome.h"

namespace sluice::coalesce::internal {

template <class T>
class AsyncWaiter {
 public:
  // Posts the waiter's handler to its executor with (ec, outcome) and frees the waiter there.
  // Called once, by whoever unlinked it.
  virtual void complete(boost::system::error_code ec, OutcomePtr<T> outcome) = 0;

  AsyncWaiter* prev = nullptr;  // guarded by the flight's mu
  AsyncWaiter* next = nullptr;  // guarded by the flight's mu
  bool linked = false;          // guarded by the flight's mu

 protected:
  ~AsyncWaiter() = default;
};

template <class T>
struct AsyncFlight {
  size_t joined = 0;  // guarded by the table's shard lock
  std::mutex mu;
  OutcomePtr<T> outcome;           // guarded by mu; set once by publish
  AsyncWaiter<T>* head = nullptr;  // guarded by mu

  void link(AsyncWaiter<T>* w) noexcept {
    w->prev = nullptr;
    w->next = head;
    if (head != nullptr) head->prev = w;
    head = w;
    w->linked = true;
  }
  void unlink(AsyncWaiter<T>* w) noexcept {
    if (w->prev != nullptr) w->prev->next = w->next;
    if (w->next != nullptr) w->next->prev = w->prev;
    if (head == w) head = w->next;
    w->prev = w->next = nullptr;
    w->linked = false;
  }

  // Sets the outcome and completes every linked waiter (each on its own executor).
  void publish(const OutcomePtr<T>& result) {
    AsyncWaiter<T>* list = nullptr;
    {
      std::lock_guard lock(mu);
      outcome = result;
      list = head;
      head = nullptr;
      for (AsyncWaiter<T>* w = list; w != nullptr; w = w->next) w->linked = false;
    }
    while (list != nullptr) {
      AsyncWaiter<T>* next = list->next;
      list->complete({}, result);
      list = next;
    }
  }
};

// Installed in a waiter's cancellation slot: takes the waiter out of the list, if it is still
// there, and completes it with `operation_aborted`.
template <class T>
struct CancelWait {
  std::shared_ptr<AsyncFlight<T>> flight;
  AsyncWaiter<T>* waiter;

  void operator()(boost::asio::cancellation_type type) const {
    if (type == boost::asio::cancellation_type::none) return;
    {
      std::lock_guard lock(flight->mu);
      if (!waiter->linked) return;
      flight->unlink(waiter);
    }
    waiter->complete(boost::asio::error::operation_aborted, nullptr);
  }
};

template <class T, class Handler>
class AsyncWaitOp final : public AsyncWaiter<T> {
 public:
  AsyncWaitOp(Handler handler, const boost::asio::any_io_executor& fallback)
      : handler_(std::move(handler)),
        work_(boost::asio::prefer(
            boost::asio::any_io_executor(boost::asio::get_associated_executor(handler_, fallback)),
            boost::asio::execution::outstanding_work.tracked)) {}

  void complete(boost::system::error_code ec, OutcomePtr<T> outcome) override {
    boost::asio::any_io_executor ex = work_;
    // The lambda owns the op: if the executor is destroyed before running it, the op and its
    // handler are destroyed without being invoked, as Asio does with its own operations.
    boost::asio::post(
        ex, [op = std::unique_ptr<AsyncWaitOp>(this), ec, outcome = std::move(outcome)]() mutable {
          op->finish(ec, std::move(outcome), std::move(op));
        });
  }

 private:
  void finish(boost::system::error_code ec, OutcomePtr<T> outcome,
              std::unique_ptr<AsyncWaitOp> self) {
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    Handler handler = std::move(handler_);
    self.reset();  // releases the outstanding work only after the handler is moved out
    std::move(handler)(ec, std::move(outcome));
  }

  Handler handler_;
  boost::asio::any_io_executor work_;  // the handler's executor, tracking outstanding work
};

// The initiation of the wait operation (for `boost::asio::async_initiate`).
template <class T>
struct InitiateWait {
  template <class Handler>
  void operator()(Handler&& handler, std::shared_ptr<AsyncFlight<T>> flight,
                  const boost::asio::any_io_executor& fallback) const {
    auto slot = boost::asio::get_associated_cancellation_slot(handler);
    auto* op = new AsyncWaitOp<T, std::decay_t<Handler>>(std::forward<Handler>(handler), fallback);
    std::unique_lock lock(flight->mu);
    if (flight->outcome != nullptr) {
      OutcomePtr<T> outcome = flight->outcome;
      lock.unlock();
      op->complete({}, std::move(outcome));
      return;
    }
    flight->link(op);
    if (slot.is_connected()) slot.template emplace<CancelWait<T>>(flight, op);
  }
};

// Waits for `flight`'s outcome; completes with (error_code, OutcomePtr<T>) on the token's
// executor (or `fallback`), with `operation_aborted` and a null outcome when cancelled.
template <class T, class Token>
auto async_wait_flight(std::shared_ptr<AsyncFlight<T>> flight,
                       const boost::asio::any_io_executor& fallback, Token&& token) {
  return boost::asio::async_initiate<Token, void(boost::system::error_code, OutcomePtr<T>)>(
      InitiateWait<T>{}, token, std::move(flight), fallback);
}

}  // namespace sluice::coalesce::internal
