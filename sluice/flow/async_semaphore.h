// AsyncSemaphore: limits how many coroutines hold a permit at once (concurrent upstream
// calls, open streams). `co_await acquire()` returns an RAII `Permit`; waiters are served in
// strict FIFO order; a waiter whose coroutine is cancelled (through its cancellation slot)
// leaves the queue without consuming a permit; the capacity can be changed at run time (the
// adaptive limiter moves it); the wait queue is bounded (`max_waiters`, clear rejection).
//
// Thread-safety: thread-safe; waiters may live on different executors and threads. A granted
// waiter is resumed by posting to its own executor (never inline, never under the lock).
//
// Cost: `try_acquire`, an uncontended `acquire` and a release without waiters are one mutex
// lock; a release with waiters hands the permit straight to the oldest waiter (no thundering
// herd, no barging: `try_acquire` fails while anyone waits).
// Lifetime: the semaphore must outlive every permit, including a permit still in flight to a
// waiter (posted but not yet resumed): destroy or stop the io_contexts first.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "sluice/flow/error.h"
#include "sluice/flow/internal/pending_op.h"

namespace sluice::flow {

class AsyncSemaphore {
 public:
  struct Options {
    // Permits available (may be 0: everyone waits). Changed at run time with set_capacity().
    size_t capacity = 1;
    // Most coroutines waiting at once; one more gets Errc::too_many_waiters without waiting.
    size_t max_waiters = std::numeric_limits<size_t>::max();
  };

  struct Stats {
    size_t capacity = 0;            // permits configured now
    size_t in_use = 0;              // permits held now (may exceed capacity after a shrink)
    size_t waiters = 0;             // coroutines waiting now
    size_t max_waiters = 0;         // the bound on `waiters`
    size_t max_waiters_seen = 0;    // high-water mark of `waiters`
    uint64_t acquired_total = 0;    // permits granted (immediately or after waiting)
    uint64_t waited_total = 0;      // of those, granted after waiting
    uint64_t cancelled_total = 0;   // waits cancelled through their slot
    uint64_t rejected_total = 0;    // acquires refused: too_many_waiters, or closed
    uint64_t try_failed_total = 0;  // try_acquire calls that found no permit
    bool closed = false;            // close() was called
  };

  // A held permit; releases on destruction. Move-only.
  class [[nodiscard]] Permit {
   public:
    Permit() = default;
    Permit(Permit&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    Permit& operator=(Permit&& other) noexcept {
      if (this != &other) {
        release();
        owner_ = std::exchange(other.owner_, nullptr);
      }
      return *this;
    }
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { release(); }

    // Gives the permit back now (no-op if empty).
    void release() noexcept {
      if (owner_ != nullptr) std::exchange(owner_, nullptr)->release_one();
    }
    // True while the permit is held.
    explicit operator bool() const noexcept { return owner_ != nullptr; }

   private:
    friend class AsyncSemaphore;
    explicit Permit(AsyncSemaphore* owner) noexcept : owner_(owner) {}
    AsyncSemaphore* owner_ = nullptr;
  };

  explicit AsyncSemaphore(Options options);
  AsyncSemaphore(const AsyncSemaphore&) = delete;
  AsyncSemaphore& operator=(const AsyncSemaphore&) = delete;

  // A permit, waiting (FIFO) if none is free. Errors: too_many_waiters, semaphore_closed,
  // boost::asio::error::operation_aborted (this wait was cancelled; no permit consumed).
  [[nodiscard]] boost::asio::awaitable<boost::system::result<Permit>> acquire();

  // A permit if one is free and nobody waits; never waits.
  [[nodiscard]] std::optional<Permit> try_acquire();

  // Changes the number of permits. Growing grants waiting coroutines at once; shrinking takes
  // effect as holders release (held permits are never revoked).
  void set_capacity(size_t capacity);

  // Shutdown: waiting and later acquires fail with semaphore_closed; held permits stay valid.
  void close();

  [[nodiscard]] size_t capacity() const;
  [[nodiscard]] size_t in_use() const;
  [[nodiscard]] Stats stats() const;

 private:
  using WaitOp = internal::PendingOp<void(boost::system::error_code, Permit)>;

  void release_one() noexcept;
  void grant_waiters_locked();
  void cancel_wait(uint64_t id);
  // Decides an acquire without waiting: true with `ec`/`granted` set, or false to wait.
  bool try_acquire_locked(boost::system::error_code& ec, bool& granted);

  Options options_;
  mutable std::mutex mu_;
  size_t in_use_ = 0;
  bool closed_ = false;
  // Waiters by arrival id: begin() is the oldest; ids let a cancellation find its entry.
  std::map<uint64_t, WaitOp> waiters_;
  uint64_t next_id_ = 1;
  Stats stats_;  // counters; the "now" fields are filled in by stats()
};

}  // namespace sluice::flow
