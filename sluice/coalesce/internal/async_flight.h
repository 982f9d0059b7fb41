// One execution of an `AsyncCoalescer`: the list of suspended waiters and the outcome that
// releases them. Each waiter is an Asio asynchronous operation whose completion is posted to
// the waiter's own executor (holding outstanding work on it meanwhile); a waiter whose
// cancellation slot fires unlinks itself and completes with `operation_aborted`, leaving the
// execution and the other waiters untouched.
//
// Thread-safety: `mu` guards `outcome` and the waiter list; whoever unlinks a waiter under `mu`
// (the publisher or the waiter's cancellation handler) completes it, exactly once.
// Cancellation follows Asio's rule: a slot's signal is emitted on the waiter's executor.
// Release: the waiters of one executor are resumed by one posted function, in join order.
// Lifetime: a waiter's operation is freed on its executor, just before its handler runs. An
// execution that never ends keeps its waiters (and their coroutine frames) alive.
#pragma once

#include <algorithm>
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
#include <iterator>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/coalesce/internal/outcome.h"

namespace sluice::coalesce::internal {

template <class T>
class AsyncWaiter {
 public:
  // The executor the waiter resumes on (tracking outstanding work while it waits).
  [[nodiscard]] const boost::asio::any_io_executor& executor() const noexcept { return work_; }

  // Runs on `executor()`: frees the waiter and invokes its handler with (ec, outcome).
  virtual void resume(boost::system::error_code ec, OutcomePtr<T> outcome) = 0;
  // Frees the waiter without invoking its handler (its executor dropped the posted work).
  virtual void destroy() noexcept = 0;

  AsyncWaiter* prev = nullptr;  // guarded by the flight's mu
  AsyncWaiter* next = nullptr;  // guarded by the flight's mu
  bool linked = false;          // guarded by the flight's mu

 protected:
  explicit AsyncWaiter(boost::asio::any_io_executor work) : work_(std::move(work)) {}
  ~AsyncWaiter() = default;

  boost::asio::any_io_executor work_;
};

// Owns a waiter until it is resumed; destroys it otherwise.
template <class T>
struct WaiterDeleter {
  void operator()(AsyncWaiter<T>* w) const noexcept { w->destroy(); }
};
template <class T>
using WaiterPtr = std::unique_ptr<AsyncWaiter<T>, WaiterDeleter<T>>;

// Resumes `waiters` (all bound to one executor) on that executor, in order, with one `post`.
// If a handler throws, the waiters after it are posted again before the exception leaves.
template <class T>
void post_resume(std::vector<WaiterPtr<T>> waiters, boost::system::error_code ec,
                 OutcomePtr<T> outcome) {
  if (waiters.empty()) return;
  boost::asio::any_io_executor ex = waiters.front()->executor();
  boost::asio::post(ex, [waiters = std::move(waiters), ec, outcome = std::move(outcome)]() mutable {
    for (size_t i = 0; i < waiters.size(); ++i) {
      try {
        waiters[i].release()->resume(ec, outcome);
      } catch (...) {
        std::vector<WaiterPtr<T>> rest(std::make_move_iterator(waiters.begin() + i + 1),
                                       std::make_move_iterator(waiters.end()));
        post_resume<T>(std::move(rest), ec, outcome);
        throw;
      }
    }
  });
}

template <class T>
struct AsyncFlight {
  size_t joined = 0;  // guarded by the table's shard lock
  std::mutex mu;
  OutcomePtr<T> outcome;           // guarded by mu; set once by publish
  AsyncWaiter<T>* head = nullptr;  // guarded by mu; the first joiner
  AsyncWaiter<T>* tail = nullptr;  // guarded by mu; the last joiner

  // Appends `w`: waiters are released in the order they joined.
  void link(AsyncWaiter<T>* w) noexcept {
    w->prev = tail;
    w->next = nullptr;
    if (tail != nullptr) {
      tail->next = w;
    } else {
      head = w;
    }
    tail = w;
    w->linked = true;
  }
  void unlink(AsyncWaiter<T>* w) noexcept {
    if (w->prev != nullptr) {
      w->prev->next = w->next;
    } else {
      head = w->next;
    }
    if (w->next != nullptr) {
      w->next->prev = w->prev;
    } else {
      tail = w->prev;
    }
    w->prev = w->next = nullptr;
    w->linked = false;
  }

  // Sets the outcome and resumes every linked waiter on its own executor, in join order,
  // with one `post` per distinct executor (up to kMaxBatches executors; waiters on further
  // executors, e.g. one strand per connection, are posted one by one).
  void publish(const OutcomePtr<T>& result) {
    AsyncWaiter<T>* list = nullptr;
    {
      std::lock_guard lock(mu);
      outcome = result;
      list = head;
      head = tail = nullptr;
      for (AsyncWaiter<T>* w = list; w != nullptr; w = w->next) w->linked = false;
    }
    constexpr size_t kMaxBatches = 8;
    std::vector<std::vector<WaiterPtr<T>>> batches;
    while (list != nullptr) {
      AsyncWaiter<T>* next = list->next;
      WaiterPtr<T> w(list);
      list = next;
      auto batch = std::find_if(batches.begin(), batches.end(), [&](const auto& b) {
        return b.front()->executor() == w->executor();
      });
      if (batch != batches.end()) {
        batch->push_back(std::move(w));
      } else if (batches.size() < kMaxBatches) {
        batches.emplace_back().push_back(std::move(w));
      } else {
        std::vector<WaiterPtr<T>> single;
        single.push_back(std::move(w));
        post_resume<T>(std::move(single), {}, result);
      }
    }
    for (auto& batch : batches) post_resume<T>(std::move(batch), {}, result);
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
    std::vector<WaiterPtr<T>> one;
    one.emplace_back(waiter);
    post_resume<T>(std::move(one), boost::asio::error::operation_aborted, nullptr);
  }
};

template <class T, class Handler>
class AsyncWaitOp final : public AsyncWaiter<T> {
 public:
  AsyncWaitOp(Handler handler, const boost::asio::any_io_executor& fallback)
      : AsyncWaiter<T>(boost::asio::prefer(
            boost::asio::any_io_executor(boost::asio::get_associated_executor(handler, fallback)),
            boost::asio::execution::outstanding_work.tracked)),
        handler_(std::move(handler)) {}

  void resume(boost::system::error_code ec, OutcomePtr<T> outcome) override {
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    Handler handler = std::move(handler_);
    delete this;  // releases the outstanding work only after the handler is moved out
    std::move(handler)(ec, std::move(outcome));
  }

  void destroy() noexcept override { delete this; }

 private:
  Handler handler_;
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
      std::vector<WaiterPtr<T>> one;
      one.emplace_back(op);
      post_resume<T>(std::move(one), {}, std::move(outcome));
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
