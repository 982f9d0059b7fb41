// One execution of an `AsyncCoalescer`: the list of suspended waiters and the outcome that
// releases them. Each waiter is an Asio asynchronous operation whose completion runs on the
// waiter's own executor (holding outstanding work on it meanwhile); a waiter whose
// cancellation slot fires unlinks itself and completes with `operation_aborted`, leaving the
// execution and the other waiters untouched.
//
// Thread-safety: `mu` guards `outcome`, `stats` and the waiter list; whoever unlinks a waiter
// under `mu` (the publisher or the waiter's cancellation handler) completes it, exactly once.
// Cancellation follows Asio's rule: a slot's signal is emitted on the waiter's executor.
// Release cost (the path the 1,000-waiter goal measures): `publish` splits the intrusive list
// into per-executor batches without allocating and posts one function per executor (up to
// `kMaxBatches` executors, then one per waiter). A batch resumes its waiters in join order in
// one loop: per waiter one virtual call, one clock read (joiners) and the handler; no lock, no
// allocation, no reference count on the flight or the outcome (the batch holds one of each),
// and the wait counters are updated once per batch.
// Lifetime: a waiter's operation lives in storage the caller provides (`WaiterSlot`, in the
// caller's coroutine frame) when it fits, else on the heap; it is freed on its executor just
// before its handler runs. The handler receives a pointer to the batch's `OutcomePtr`, valid
// only until the handler returns or suspends: copy what you need at once. An execution that
// never ends keeps its waiters (and their coroutine frames) alive.
#pragma once

#include <array>
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
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "sluice/base/clock.h"
#include "sluice/coalesce/internal/outcome.h"
#include "sluice/coalesce/internal/wait_stats.h"

namespace sluice::coalesce::internal {

template <class T>
class AsyncWaiter {
 public:
  // The executor the waiter resumes on (tracking outstanding work while it waits).
  [[nodiscard]] const boost::asio::any_io_executor& executor() const noexcept { return work_; }
  // When a joiner joined (its wait is recorded); empty for the leader's own caller.
  [[nodiscard]] const std::optional<TimePoint>& joined_at() const noexcept { return joined_at_; }

  // Runs on `executor()`: frees the waiter and invokes its handler with `outcome` (a pointer
  // to null when the wait was cancelled).
  virtual void resume(const OutcomePtr<T>* outcome) = 0;
  // Frees the waiter without invoking its handler (its executor dropped the posted work).
  virtual void destroy() noexcept = 0;

  AsyncWaiter* prev = nullptr;  // guarded by the flight's mu while linked
  AsyncWaiter* next = nullptr;  // guarded by the flight's mu while linked; then the batch's
  bool linked = false;          // guarded by the flight's mu

 protected:
  AsyncWaiter(boost::asio::any_io_executor work, std::optional<TimePoint> joined_at)
      : work_(std::move(work)), joined_at_(joined_at) {}
  ~AsyncWaiter() = default;

  boost::asio::any_io_executor work_;
  std::optional<TimePoint> joined_at_;
};

// A singly linked FIFO of waiters (through `next`) that owns them: waiters still in it when
// it is destroyed are destroyed without being resumed.
template <class T>
class WaiterList {
 public:
  WaiterList() = default;
  WaiterList(WaiterList&& other) noexcept
      : head_(std::exchange(other.head_, nullptr)), tail_(std::exchange(other.tail_, nullptr)) {}
  WaiterList& operator=(WaiterList&&) = delete;
  ~WaiterList() {
    while (AsyncWaiter<T>* w = pop_front()) w->destroy();
  }

  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
  [[nodiscard]] AsyncWaiter<T>* front() const noexcept { return head_; }

  void push_back(AsyncWaiter<T>* w) noexcept {
    w->next = nullptr;
    (tail_ != nullptr ? tail_->next : head_) = w;
    tail_ = w;
  }
  [[nodiscard]] AsyncWaiter<T>* pop_front() noexcept {
    AsyncWaiter<T>* w = head_;
    if (w != nullptr) {
      head_ = w->next;
      if (head_ == nullptr) tail_ = nullptr;
      w->next = nullptr;
    }
    return w;
  }

 private:
  AsyncWaiter<T>* head_ = nullptr;
  AsyncWaiter<T>* tail_ = nullptr;
};

// The posted function that resumes one executor's waiters, in order. It keeps the flight (for
// the waiters' cancellation handlers, which may still fire until each waiter is resumed), the
// outcome and the wait counters alive until its last waiter has run. If a handler throws, the
// waiters after it are posted again before the exception leaves.
template <class T>
struct ResumeBatch {
  WaiterList<T> waiters;
  OutcomePtr<T> outcome;             // null when cancelled
  std::shared_ptr<void> flight;      // keeps the flight alive
  std::shared_ptr<WaitStats> stats;  // null when cancelled

  void operator()() {
    WaitTally tally;
    while (AsyncWaiter<T>* w = waiters.pop_front()) {
      if (stats != nullptr && w->joined_at()) tally.add(stats->clock().now() - *w->joined_at());
      try {
        w->resume(&outcome);
      } catch (...) {
        if (stats != nullptr) tally.flush(*stats);
        if (!waiters.empty()) {
          boost::asio::any_io_executor ex = waiters.front()->executor();
          boost::asio::post(ex, std::move(*this));
        }
        throw;
      }
    }
    if (stats != nullptr) tally.flush(*stats);
  }
};

template <class T>
void post_batch(ResumeBatch<T> batch) {
  if (batch.waiters.empty()) return;
  boost::asio::any_io_executor ex = batch.waiters.front()->executor();
  boost::asio::post(ex, std::move(batch));
}

template <class T>
struct AsyncFlight : std::enable_shared_from_this<AsyncFlight<T>> {
  // Executors released with one post each; waiters on further executors (e.g. one strand per
  // connection) are posted one by one.
  static constexpr size_t kMaxBatches = 8;

  size_t joined = 0;  // guarded by the table's shard lock
  std::mutex mu;
  OutcomePtr<T> outcome;             // guarded by mu; set once by publish
  std::shared_ptr<WaitStats> stats;  // guarded by mu; set once by publish
  AsyncWaiter<T>* head = nullptr;    // guarded by mu; the first joiner
  AsyncWaiter<T>* tail = nullptr;    // guarded by mu; the last joiner

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
  // with one `post` per distinct executor. `stats` receives the joiners' waits.
  void publish(const OutcomePtr<T>& result, const std::shared_ptr<WaitStats>& wait_stats) {
    AsyncWaiter<T>* list = nullptr;
    {
      std::lock_guard lock(mu);
      outcome = result;
      stats = wait_stats;
      list = head;
      head = tail = nullptr;
      for (AsyncWaiter<T>* w = list; w != nullptr; w = w->next) w->linked = false;
    }
    const std::shared_ptr<AsyncFlight> self = this->shared_from_this();
    std::array<std::optional<ResumeBatch<T>>, kMaxBatches> batches;
    size_t used = 0;
    size_t last = 0;  // consecutive waiters usually share an executor: try the last one first
    while (list != nullptr) {
      AsyncWaiter<T>* w = list;
      list = list->next;
      size_t b = last;
      if (used == 0 || batches[b]->waiters.front()->executor() != w->executor()) {
        for (b = 0; b < used; ++b) {
          if (batches[b]->waiters.front()->executor() == w->executor()) break;
        }
      }
      if (b == used) {
        if (used == kMaxBatches) {
          ResumeBatch<T> single{{}, result, self, wait_stats};
          single.waiters.push_back(w);
          post_batch(std::move(single));
          continue;
        }
        batches[used].emplace(ResumeBatch<T>{{}, result, self, wait_stats});
        ++used;
      }
      batches[b]->waiters.push_back(w);
      last = b;
    }
    for (size_t b = 0; b < used; ++b) post_batch(std::move(*batches[b]));
  }
};

// Installed in a waiter's cancellation slot: takes the waiter out of the list, if it is still
// there, and completes it with `operation_aborted`. The flight is alive whenever this runs:
// a linked waiter's flight is held by its execution, and once unlinked (by publish or by a
// first cancellation) the waiter's batch holds the flight until the waiter has resumed and
// cleared its slot.
template <class T>
struct CancelWait {
  AsyncFlight<T>* flight;
  AsyncWaiter<T>* waiter;

  void operator()(boost::asio::cancellation_type type) const {
    if (type == boost::asio::cancellation_type::none) return;
    {
      std::lock_guard lock(flight->mu);
      if (!waiter->linked) return;
      flight->unlink(waiter);
    }
    ResumeBatch<T> one{{}, nullptr, flight->shared_from_this(), nullptr};
    one.waiters.push_back(waiter);
    post_batch(std::move(one));
  }
};

// Storage for one waiter's operation inside the waiting coroutine's frame (saves one heap
// allocation per waiter); an operation that does not fit goes to the heap.
struct WaiterSlot {
  static constexpr size_t kBytes = 128;
  alignas(std::max_align_t) unsigned char bytes[kBytes];
};

template <class T, class Handler>
class AsyncWaitOp final : public AsyncWaiter<T> {
 public:
  // Creates the operation in `slot` if it fits, else on the heap.
  static AsyncWaitOp* create(Handler handler, const boost::asio::any_io_executor& fallback,
                             std::optional<TimePoint> joined_at, WaiterSlot* slot) {
    if constexpr (sizeof(AsyncWaitOp) <= WaiterSlot::kBytes &&
                  alignof(AsyncWaitOp) <= alignof(std::max_align_t)) {
      if (slot != nullptr) {
        return ::new (static_cast<void*>(slot->bytes))
            AsyncWaitOp(std::move(handler), fallback, joined_at, true);
      }
    }
    return new AsyncWaitOp(std::move(handler), fallback, joined_at, false);
  }

  void resume(const OutcomePtr<T>* outcome) override {
    auto slot = boost::asio::get_associated_cancellation_slot(handler_);
    if (slot.is_connected()) slot.clear();
    Handler handler = std::move(handler_);
    free_self();  // releases the outstanding work only after the handler is moved out
    std::move(handler)(outcome);
  }

  void destroy() noexcept override {
    // The handler owns the coroutine frame that may hold this operation: free the operation
    // first, then let the handler (and the frame) go.
    Handler handler = std::move(handler_);
    free_self();
  }

 private:
  AsyncWaitOp(Handler handler, const boost::asio::any_io_executor& fallback,
              std::optional<TimePoint> joined_at, bool in_slot)
      : AsyncWaiter<T>(
            boost::asio::prefer(boost::asio::any_io_executor(
                                    boost::asio::get_associated_executor(handler, fallback)),
                                boost::asio::execution::outstanding_work.tracked),
            joined_at),
        handler_(std::move(handler)),
        in_slot_(in_slot) {}
  ~AsyncWaitOp() = default;

  void free_self() noexcept {
    if (in_slot_) {
      this->~AsyncWaitOp();
    } else {
      delete this;
    }
  }

  Handler handler_;
  bool in_slot_;
};

// The initiation of the wait operation (for `boost::asio::async_initiate`).
template <class T>
struct InitiateWait {
  template <class Handler>
  void operator()(Handler&& handler, std::shared_ptr<AsyncFlight<T>> flight,
                  std::optional<TimePoint> joined_at, const boost::asio::any_io_executor& fallback,
                  WaiterSlot* storage) const {
    auto slot = boost::asio::get_associated_cancellation_slot(handler);
    auto* op = AsyncWaitOp<T, std::decay_t<Handler>>::create(std::forward<Handler>(handler),
                                                             fallback, joined_at, storage);
    std::unique_lock lock(flight->mu);
    if (flight->outcome != nullptr) {  // published before this waiter arrived
      ResumeBatch<T> one{{}, flight->outcome, nullptr, flight->stats};
      lock.unlock();
      one.flight = std::move(flight);
      one.waiters.push_back(op);
      post_batch(std::move(one));
      return;
    }
    flight->link(op);
    if (slot.is_connected()) slot.template emplace<CancelWait<T>>(flight.get(), op);
  }
};

// Waits for `flight`'s outcome; completes with a `const OutcomePtr<T>*` on the token's
// executor (or `fallback`), pointing to null when the wait was cancelled. With
// `boost::asio::deferred` inside an `awaitable` the wait costs no coroutine frame of its own.
// The pointer is valid until the handler returns or suspends. `joined_at` (joiners) has the
// wait recorded in the flight's stats; `storage` (may be null) must outlive the operation.
template <class T, class Token>
auto async_wait_flight(std::shared_ptr<AsyncFlight<T>> flight, std::optional<TimePoint> joined_at,
                       const boost::asio::any_io_executor& fallback, WaiterSlot* storage,
                       Token&& token) {
  return boost::asio::async_initiate<Token, void(const OutcomePtr<T>*)>(
      InitiateWait<T>{}, token, std::move(flight), joined_at, fallback, storage);
}

}  // namespace sluice::coalesce::internal
