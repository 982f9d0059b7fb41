// `MicroBatcher<Req, Resp>`: turns many concurrent single calls into fewer calls of a batch
// function (an embedding or scoring endpoint that takes a list, a multi-get). A call waits at
// most `max_wait` for company; a batch is cut at `max_batch` requests. Each caller gets its own
// result or error: a batch function that throws, or returns a number of results different from
// the number of requests, fails every caller of that batch with `Errc::batch_function_threw` /
// `Errc::wrong_result_count`.
//
// Thread-safety: every member function is safe from any thread. The batch function runs on
// one of the `workers` threads the batcher owns, never on a caller's thread; so do callbacks.
//
// Cost: a call takes one mutex and, for the future forms, one shared promise; a batch moves the
// requests into a vector and calls the function once. Memory is bounded by `max_pending`
// queued calls (beyond it a call fails at once with `Errc::overloaded`, counted).
//
// Coroutines and event loops: use the callback form `submit(req, callback)`; the callback runs
// on a worker thread, so a coroutine's completion handler should `post` the result back to its
// own executor (an Asio adapter can wrap exactly that in `async_initiate` later). Never block
// an event loop in `call()`.
//
// Time: `max_wait` is measured on the injected `base::Clock`; after moving a `ManualClock`,
// call `wake()`. The `call(req, timeout)` wait is the caller's own `std::future` wait, in real
// time; a timed-out call's request still runs, its result is discarded.
//
// Lifetime: the destructor calls `stop()`, which runs every queued call before returning.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <boost/system/result.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/base/check.h"
#include "sluice/base/clock.h"
#include "sluice/batch/errors.h"

namespace sluice::batch {

// A value or an error code; what each caller of a `MicroBatcher` receives.
template <class Resp>
using Result = boost::system::result<Resp>;

struct MicroBatcherOptions {
  // Largest number of requests in one call of the batch function. Must be > 0.
  std::size_t max_batch = 32;
  // Longest the oldest queued call waits for company before a partial batch is cut.
  Duration max_wait = std::chrono::milliseconds(2);
  // Bound on queued calls; beyond it a call fails at once with `Errc::overloaded`.
  std::size_t max_pending = 10'000;
  // Threads that run the batch function (batches in flight at once). Must be > 0.
  std::size_t workers = 1;
};

// A snapshot of a micro-batcher's counters (totals since construction) and gauges.
struct MicroBatcherStats {
  // Histogram buckets of batch sizes: [1], [2,3], [4,7], ..., [64,127], [128, inf).
  static constexpr std::size_t kBuckets = 8;

  uint64_t calls = 0;                // calls accepted into the queue
  uint64_t batches = 0;              // calls of the batch function
  uint64_t batches_full = 0;         // batches cut because `max_batch` calls were queued
  uint64_t batches_waited = 0;       // batches cut because the oldest call waited `max_wait`
  uint64_t batches_stopping = 0;     // batches cut by `stop()`
  uint64_t results_ok = 0;           // callers given a value
  uint64_t results_error = 0;        // callers given an error by the batch (its own or ours)
  uint64_t function_threw = 0;       // batches whose function threw
  uint64_t wrong_result_count = 0;   // batches whose function returned the wrong count
  uint64_t rejected_overloaded = 0;  // calls refused: `max_pending` reached
  uint64_t rejected_stopped = 0;     // calls refused: stopped
  uint64_t caller_timeouts = 0;      // `call(req, timeout)` waits that ran out
  uint64_t callback_threw = 0;       // callbacks that threw (the exception is swallowed)
  uint64_t min_batch_size = 0;       // smallest batch so far (0 before the first)
  uint64_t max_batch_size = 0;       // largest batch so far
  uint64_t pending = 0;              // calls queued now (gauge)
  uint64_t max_pending_seen = 0;     // highest `pending` seen
  std::array<uint64_t, kBuckets> batch_size_buckets{};  // batches per size bucket

  [[nodiscard]] double avg_batch_size() const noexcept {
    const uint64_t batched = results_ok + results_error;
    return batches == 0 ? 0.0 : static_cast<double>(batched) / static_cast<double>(batches);
  }
  // The bucket index of a batch of `size` (>= 1) requests.
  [[nodiscard]] static constexpr std::size_t bucket_of(std::size_t size) noexcept {
    const std::size_t b = static_cast<std::size_t>(std::bit_width(size)) - 1;
    return std::min(b, kBuckets - 1);
  }
};

template <class Req, class Resp>
class MicroBatcher {
 public:
  // Given the batch's requests (which it may move from), returns one result per request, in
  // the same order.
  using BatchFn = std::function<std::vector<Result<Resp>>(std::span<Req>)>;
  // Receives one caller's result; runs on a worker thread (or inline when the call is refused).
  using Callback = std::function<void(Result<Resp>)>;

  MicroBatcher(BatchFn fn, MicroBatcherOptions options,
               const base::Clock& clock = base::SteadyClock::instance())
      : fn_(std::move(fn)), options_(options), clock_(clock) {
    SLUICE_CHECK(fn_ != nullptr, "MicroBatcher: batch function is empty");
    SLUICE_CHECK(options_.max_batch > 0, "MicroBatcher: max_batch must be > 0");
    SLUICE_CHECK(options_.max_pending > 0, "MicroBatcher: max_pending must be > 0");
    SLUICE_CHECK(options_.workers > 0, "MicroBatcher: workers must be > 0");
    SLUICE_CHECK(options_.max_wait >= Duration::zero(), "MicroBatcher: max_wait must be >= 0");
    workers_.reserve(options_.workers);
    for (std::size_t i = 0; i < options_.workers; ++i) {
      workers_.emplace_back([this] { run_worker(); });
    }
  }

  MicroBatcher(const MicroBatcher&) = delete;
  MicroBatcher& operator=(const MicroBatcher&) = delete;

  ~MicroBatcher() { stop(); }

  // Queues `req`; `done` later receives its result. A refused call (stopped, overloaded) gets
  // its error through `done` before `submit` returns.
  void submit(Req req, Callback done) {
    std::unique_lock lk(mu_);
    if (stopping_) {
      ++stats_.rejected_stopped;
      lk.unlock();
      deliver(done, Result<Resp>(boost::system::error_code(Errc::stopped)));
      return;
    }
    if (pending_.size() >= options_.max_pending) {
      ++stats_.rejected_overloaded;
      lk.unlock();
      deliver(done, Result<Resp>(boost::system::error_code(Errc::overloaded)));
      return;
    }
    pending_.push_back(Pending{std::move(req), std::move(done), clock_.now()});
    ++stats_.calls;
    stats_.max_pending_seen = std::max<uint64_t>(stats_.max_pending_seen, pending_.size());
    const bool notify = pending_.size() == 1 || pending_.size() % options_.max_batch == 0;
    lk.unlock();
    if (notify) work_cv_.notify_one();
  }

  // Queues `req`; the future becomes ready with its result.
  [[nodiscard]] std::future<Result<Resp>> submit(Req req) {
    auto promise = std::make_shared<std::promise<Result<Resp>>>();
    std::future<Result<Resp>> future = promise->get_future();
    submit(std::move(req), [promise](Result<Resp> r) { promise->set_value(std::move(r)); });
    return future;
  }

  // Queues `req` and blocks until its result is ready.
  [[nodiscard]] Result<Resp> call(Req req) { return submit(std::move(req)).get(); }

  // Queues `req` and blocks at most `timeout` (real time) for its result; then
  // `Errc::timed_out` (counted in `caller_timeouts`).
  [[nodiscard]] Result<Resp> call(Req req, Duration timeout) {
    std::future<Result<Resp>> future = submit(std::move(req));
    if (future.wait_for(timeout) != std::future_status::ready) {
      caller_timeouts_.fetch_add(1, std::memory_order_relaxed);
      return boost::system::error_code(Errc::timed_out);
    }
    return future.get();
  }

  // Refuses new calls, runs every queued one, then joins the workers. Idempotent.
  void stop() {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    std::lock_guard join_guard(join_mu_);
    for (std::thread& t : workers_) {
      if (t.joinable()) t.join();
    }
  }

  // Makes waiting workers re-read the clock. Needed only after moving a `ManualClock`.
  void wake() {
    { std::lock_guard lk(mu_); }
    work_cv_.notify_all();
  }

  [[nodiscard]] MicroBatcherStats stats() const {
    std::lock_guard lk(mu_);
    MicroBatcherStats s = stats_;
    s.pending = pending_.size();
    s.caller_timeouts = caller_timeouts_.load(std::memory_order_relaxed);
    s.callback_threw = callback_threw_.load(std::memory_order_relaxed);
    return s;
  }

  [[nodiscard]] const MicroBatcherOptions& options() const noexcept { return options_; }

 private:
  struct Pending {
    Req req;
    Callback done;
    TimePoint queued_at;
  };

  enum class Cut { full, waited, stopping };

  void deliver(Callback& done, Result<Resp> result) noexcept {
    try {
      done(std::move(result));
    } catch (...) {
      callback_threw_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void run_worker() {
    std::vector<Req> reqs;
    std::vector<Callback> dones;
    std::unique_lock lk(mu_);
    for (;;) {
      if (pending_.empty()) {
        if (stopping_) return;
        work_cv_.wait(lk);
        continue;
      }
      const TimePoint now = clock_.now();
      Cut cut;
      if (pending_.size() >= options_.max_batch) {
        cut = Cut::full;
      } else if (now - pending_.front().queued_at >= options_.max_wait) {
        cut = Cut::waited;
      } else if (stopping_) {
        cut = Cut::stopping;
      } else {
        const Duration left = pending_.front().queued_at + options_.max_wait - now;
        work_cv_.wait_for(lk, std::min<Duration>(left, std::chrono::hours(1)));
        continue;
      }
      const std::size_t n = std::min(options_.max_batch, pending_.size());
      reqs.clear();
      dones.clear();
      for (std::size_t i = 0; i < n; ++i) {
        reqs.push_back(std::move(pending_.front().req));
        dones.push_back(std::move(pending_.front().done));
        pending_.pop_front();
      }
      record_batch_locked(n, cut);
      lk.unlock();
      run_batch(reqs, dones);
      lk.lock();
    }
  }

  void record_batch_locked(std::size_t n, Cut cut) {
    ++stats_.batches;
    switch (cut) {
      case Cut::full:
        ++stats_.batches_full;
        break;
      case Cut::waited:
        ++stats_.batches_waited;
        break;
      case Cut::stopping:
        ++stats_.batches_stopping;
        break;
    }
    stats_.min_batch_size = stats_.batches == 1 ? n : std::min<uint64_t>(stats_.min_batch_size, n);
    stats_.max_batch_size = std::max<uint64_t>(stats_.max_batch_size, n);
    ++stats_.batch_size_buckets[MicroBatcherStats::bucket_of(n)];
  }

  // Runs the batch function unlocked and completes every caller.
  void run_batch(std::vector<Req>& reqs, std::vector<Callback>& dones) {
    const std::size_t n = reqs.size();
    std::vector<Result<Resp>> results;
    boost::system::error_code failure;
    try {
      results = fn_(std::span<Req>(reqs));
      if (results.size() != n) failure = Errc::wrong_result_count;
    } catch (...) {
      failure = Errc::batch_function_threw;
    }
    uint64_t ok = 0;
    if (!failure) {
      for (const Result<Resp>& r : results) ok += r.has_value() ? 1 : 0;
    }
    {
      // Counted before any caller sees its result, so a caller that reads stats() after its
      // result sees its batch included.
      std::lock_guard lk(mu_);
      if (failure == Errc::wrong_result_count) ++stats_.wrong_result_count;
      if (failure == Errc::batch_function_threw) ++stats_.function_threw;
      stats_.results_ok += ok;
      stats_.results_error += n - ok;
    }
    for (std::size_t i = 0; i < n; ++i) {
      deliver(dones[i], failure ? Result<Resp>(failure) : std::move(results[i]));
    }
  }

  const BatchFn fn_;
  const MicroBatcherOptions options_;
  const base::Clock& clock_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::deque<Pending> pending_;
  bool stopping_ = false;
  MicroBatcherStats stats_;
  std::atomic<uint64_t> caller_timeouts_{0};
  std::atomic<uint64_t> callback_threw_{0};

  std::mutex join_mu_;
  std::vector<std::thread> workers_;
};

}  // namespace sluice::batch
