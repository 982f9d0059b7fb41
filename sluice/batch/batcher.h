// `Batcher<T>`: gathers items added from any thread and hands them to a `Sink<T>` in batches,
// at `batch_size` items or when the oldest queued item is `flush_interval` old, whichever
// comes first, on `flush()` and on `stop()`. Built for request logs (gateway access records
// into SQLite/PostgreSQL): one transaction per batch instead of one per record.
//
// Thread-safety: every member function is safe from any thread (`pump()` is for manual mode
// only). The sink and the spill callback are called from one thread at a time: the flusher
// thread the batcher owns (`RunMode::thread`, the default) or the thread calling `pump()`.
//
// Cost: `add` takes one mutex, moves the item into a deque and notifies the flusher only when
// the queue becomes non-empty or reaches `batch_size`. Memory is bounded: at most `max_queue`
// queued items plus one batch (`batch_size` items) being written.
//
// Ordering and loss: batches reach the sink in the order items were accepted, one batch at a
// time. A failing batch is retried (exponential backoff from `retry_base_delay`, doubling, at
// most `retry_max_delay`, `max_retries` times) before later items are written, then handed to
// the `spill` callback; without a spill (or if it fails) its items are counted as dropped.
// After a batch has given up, later batches are tried once before they spill, until a write
// succeeds again (so a dead sink cannot make `stop()` wait retries × batches). Nothing is lost
// uncounted: `added == written + spilled + dropped_oldest + dropped_sink_failed + pending`.
//
// Time: the flush interval, retry backoff and producer timeouts are measured on the injected
// `base::Clock`. Waiting threads re-read the clock when woken; after moving a `ManualClock`,
// call `wake()` so that they see the new time. `RunMode::manual` runs no thread at all: the
// owner calls `pump()` (tests, or an owner that runs writes on its own executor).
//
// Lifetime: the sink and the clock must outlive the batcher. The destructor calls `stop()`
// (thread mode) or drains with one attempt per batch (manual mode): nothing queued is lost.
#pragma once

#include <algorithm>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/base/check.h"
#include "sluice/base/clock.h"
#include "sluice/batch/errors.h"
#include "sluice/batch/sink.h"

namespace sluice::batch {

// What `add` does when the queue holds `max_queue` items.
enum class OverflowPolicy {
  // The producer waits for space (at most `block_timeout` when that is non-zero). Never use it
  // from an event loop.
  block,
  // The new item is refused (`AddResult::dropped_full`, counted in `dropped_full`).
  drop_newest,
  // The oldest queued item is discarded to make room (counted in `dropped_oldest`).
  drop_oldest,
};

// Who runs the flushing work.
enum class RunMode {
  // The batcher owns one flusher thread (the default).
  thread,
  // No thread: the owner calls `pump()` whenever it wants due work done.
  manual,
};

// The outcome of one `add`.
enum class AddResult {
  // The item is queued.
  accepted,
  // The item is queued; the oldest queued item was discarded for it (`drop_oldest`).
  accepted_dropped_oldest,
  // The queue was full under `drop_newest`: the item was not queued.
  dropped_full,
  // The queue stayed full for `block_timeout` under `block`: the item was not queued.
  timed_out,
  // The batcher is stopping or stopped: the item was not queued.
  stopped,
};

// True when the item was queued.
[[nodiscard]] constexpr bool is_accepted(AddResult r) noexcept {
  return r == AddResult::accepted || r == AddResult::accepted_dropped_oldest;
}

[[nodiscard]] constexpr std::string_view to_string(AddResult r) noexcept {
  switch (r) {
    case AddResult::accepted:
      return "accepted";
    case AddResult::accepted_dropped_oldest:
      return "accepted_dropped_oldest";
    case AddResult::dropped_full:
      return "dropped_full";
    case AddResult::timed_out:
      return "timed_out";
    case AddResult::stopped:
      return "stopped";
  }
  return "unknown";
}

struct BatcherOptions {
  // Write as soon as this many items are queued; also the largest batch handed to the sink.
  std::size_t batch_size = 500;
  // Write a partial batch once its oldest item has waited this long. Must be > 0.
  Duration flush_interval = std::chrono::seconds(1);
  // Bound on queued items (not counting the batch being written). Must be > 0.
  std::size_t max_queue = 100'000;
  // What `add` does at the bound. The default never blocks the caller (callers may be loops).
  OverflowPolicy overflow = OverflowPolicy::drop_newest;
  // With `OverflowPolicy::block`: the longest a producer waits; zero waits without limit.
  Duration block_timeout = Duration::zero();
  // Retries of a failing batch before it is spilled (0: spill after the first failure).
  int max_retries = 3;
  // Delay before the first retry; each further retry doubles it.
  Duration retry_base_delay = std::chrono::milliseconds(100);
  // Cap on the retry delay.
  Duration retry_max_delay = std::chrono::seconds(5);
  // Own flusher thread, or `pump()` driven.
  RunMode mode = RunMode::thread;
};

// A snapshot of a batcher's counters (totals since construction) and gauges.
struct BatcherStats {
  uint64_t added = 0;                // items accepted by `add`
  uint64_t written = 0;              // items the sink wrote
  uint64_t batches = 0;              // successful sink writes
  uint64_t sink_failures = 0;        // failed `Sink::write` calls (each attempt)
  uint64_t retries = 0;              // retry attempts scheduled after a failure
  uint64_t spilled = 0;              // items handed to the spill callback successfully
  uint64_t spilled_batches = 0;      // batches handed to the spill callback successfully
  uint64_t spill_failures = 0;       // spill calls that failed (their items count as dropped)
  uint64_t dropped_full = 0;         // items refused by `add`: queue full under `drop_newest`
  uint64_t dropped_timeout = 0;      // items refused by `add`: `block_timeout` ran out
  uint64_t dropped_stopped = 0;      // items refused by `add` after `stop()`
  uint64_t dropped_oldest = 0;       // accepted items discarded under `drop_oldest`
  uint64_t dropped_sink_failed = 0;  // accepted items whose batch failed and was not spilled
  uint64_t queue_depth = 0;          // items queued now (gauge)
  uint64_t max_queue_depth = 0;      // highest `queue_depth` seen
  uint64_t in_flight = 0;            // items of the batch being written or retried (gauge)
  uint64_t blocked_producers = 0;    // producers waiting in `add` now (gauge)
  Duration last_flush_latency{};     // take-to-written time of the last successful batch
  Duration max_flush_latency{};      // the largest such time
  Duration total_flush_latency{};    // their sum (see `avg_flush_latency`)

  // Items per successful batch, 0 before the first.
  [[nodiscard]] double avg_batch_size() const noexcept {
    return batches == 0 ? 0.0 : static_cast<double>(written) / static_cast<double>(batches);
  }
  [[nodiscard]] Duration avg_flush_latency() const noexcept {
    return batches == 0 ? Duration::zero()
                        : total_flush_latency / static_cast<Duration::rep>(batches);
  }
  // Every item that will never reach the sink, accepted or not.
  [[nodiscard]] uint64_t dropped() const noexcept {
    return dropped_full + dropped_timeout + dropped_stopped + dropped_oldest + dropped_sink_failed;
  }
  // Accepted items not yet resolved (written, spilled or dropped).
  [[nodiscard]] uint64_t pending() const noexcept { return queue_depth + in_flight; }
};

template <class T>
class Batcher {
 public:
  // Receives a batch the sink could not take; returns a failure code if it could not keep it
  // either (its items are then counted in `dropped_sink_failed`).
  using SpillFn = std::function<boost::system::error_code(std::span<const T>)>;

  Batcher(Sink<T>& sink, BatcherOptions options, SpillFn spill = {},
          const base::Clock& clock = base::SteadyClock::instance())
      : sink_(sink), options_(options), spill_(std::move(spill)), clock_(clock) {
    SLUICE_CHECK(options_.batch_size > 0, "Batcher: batch_size must be > 0");
    SLUICE_CHECK(options_.max_queue > 0, "Batcher: max_queue must be > 0");
    SLUICE_CHECK(options_.flush_interval > Duration::zero(), "Batcher: flush_interval must be > 0");
    SLUICE_CHECK(options_.max_retries >= 0, "Batcher: max_retries must be >= 0");
    SLUICE_CHECK(options_.retry_base_delay >= Duration::zero() &&
                     options_.retry_max_delay >= options_.retry_base_delay,
                 "Batcher: need 0 <= retry_base_delay <= retry_max_delay");
    if (options_.mode == RunMode::thread) worker_ = std::thread([this] { run_worker(); });
  }

  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  ~Batcher() {
    if (options_.mode == RunMode::thread) {
      stop();
      return;
    }
    std::lock_guard pump_guard(pump_mu_);
    std::unique_lock lk(mu_);
    stopping_ = true;
    final_drain_ = true;
    space_cv_.notify_all();
    while (!pump_locked(lk)) {
    }
  }

  // Queues `item` unless the queue is full (see `OverflowPolicy`) or the batcher is stopped.
  [[nodiscard]] AddResult add(T item) {
    std::unique_lock lk(mu_);
    if (stopping_) {
      ++stats_.dropped_stopped;
      return AddResult::stopped;
    }
    AddResult result = AddResult::accepted;
    if (queue_.size() >= options_.max_queue) {
      switch (options_.overflow) {
        case OverflowPolicy::drop_newest:
          ++stats_.dropped_full;
          return AddResult::dropped_full;
        case OverflowPolicy::drop_oldest:
          queue_.pop_front();
          ++queue_front_seq_;
          ++stats_.dropped_oldest;
          result = AddResult::accepted_dropped_oldest;
          resolve_flush_waiters_locked();
          break;
        case OverflowPolicy::block:
          if (!wait_for_space_locked(lk)) {
            if (stopping_) {
              ++stats_.dropped_stopped;
              return AddResult::stopped;
            }
            ++stats_.dropped_timeout;
            return AddResult::timed_out;
          }
          break;
      }
    }
    queue_.push_back(Entry{std::move(item), clock_.now()});
    ++next_seq_;
    ++stats_.added;
    stats_.max_queue_depth = std::max<uint64_t>(stats_.max_queue_depth, queue_.size());
    const bool notify = queue_.size() == 1 || queue_.size() == options_.batch_size;
    lk.unlock();
    if (notify) work_cv_.notify_one();
    return result;
  }

  // Asks for every item accepted before this call to be written now, even in a partial batch.
  // The future becomes ready when each of them is resolved (written, spilled or dropped).
  [[nodiscard]] std::future<void> request_flush() {
    std::promise<void> promise;
    std::future<void> future = promise.get_future();
    {
      std::lock_guard lk(mu_);
      const uint64_t target = next_seq_;
      if (target <= min_unresolved_seq_locked()) {
        promise.set_value();
        return future;
      }
      flush_target_ = std::max(flush_target_, target);
      flush_waiters_.emplace_back(target, std::move(promise));
    }
    work_cv_.notify_one();
    return future;
  }

  // Thread mode: blocks until every item accepted before the call is resolved. Must not be
  // called from the sink or the spill callback (they run on the thread it waits for).
  void flush() {
    SLUICE_CHECK(options_.mode == RunMode::thread,
                 "Batcher::flush needs RunMode::thread; use request_flush() and pump()");
    request_flush().wait();
  }

  // Refuses new items, then (thread mode) writes everything queued, with the usual retries and
  // spill, and returns when the flusher has finished. Idempotent; safe from several threads.
  // Manual mode: only refuses new items; call `pump()` until it returns true.
  void stop() {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    space_cv_.notify_all();
    if (options_.mode == RunMode::thread) {
      std::lock_guard join_guard(join_mu_);
      if (worker_.joinable()) worker_.join();
    }
  }

  // Manual mode: does all work due now (full batches, aged or flushed partial batches, retries
  // whose backoff has passed), calling the sink on this thread. Returns true once `stop()` has
  // been called and nothing is left.
  bool pump() {
    SLUICE_CHECK(options_.mode == RunMode::manual, "Batcher::pump needs RunMode::manual");
    std::lock_guard pump_guard(pump_mu_);
    std::unique_lock lk(mu_);
    return pump_locked(lk);
  }

  // When the next timed work falls due (oldest item's interval or the pending retry), if any.
  [[nodiscard]] std::optional<TimePoint> next_due() const {
    std::lock_guard lk(mu_);
    return next_due_locked();
  }

  // Makes waiting threads (flusher, blocked producers) re-read the clock. Needed only after
  // moving a `ManualClock`.
  void wake() {
    { std::lock_guard lk(mu_); }
    work_cv_.notify_all();
    space_cv_.notify_all();
  }

  [[nodiscard]] BatcherStats stats() const {
    std::lock_guard lk(mu_);
    BatcherStats s = stats_;
    s.queue_depth = queue_.size();
    s.in_flight = batch_.size();
    s.blocked_producers = blocked_producers_;
    return s;
  }

  [[nodiscard]] const BatcherOptions& options() const noexcept { return options_; }

 private:
  struct Entry {
    T value;
    TimePoint added_at;
  };

  // Waits, under `block`, until there is room; false on timeout or stop.
  bool wait_for_space_locked(std::unique_lock<std::mutex>& lk) {
    ++blocked_producers_;
    const auto has_room = [this] { return stopping_ || queue_.size() < options_.max_queue; };
    if (options_.block_timeout == Duration::zero()) {
      space_cv_.wait(lk, has_room);
    } else {
      const TimePoint deadline = clock_.now() + options_.block_timeout;
      while (!has_room()) {
        const TimePoint now = clock_.now();
        if (now >= deadline) break;
        space_cv_.wait_for(lk, std::min<Duration>(deadline - now, kMaxWaitSlice));
      }
    }
    --blocked_producers_;
    return !stopping_ && queue_.size() < options_.max_queue;
  }

  [[nodiscard]] uint64_t min_unresolved_seq_locked() const noexcept {
    return batch_.empty() ? queue_front_seq_ : batch_first_seq_;
  }

  void resolve_flush_waiters_locked() {
    if (flush_waiters_.empty()) return;
    const uint64_t resolved = min_unresolved_seq_locked();
    auto it = std::remove_if(flush_waiters_.begin(), flush_waiters_.end(), [&](auto& waiter) {
      if (waiter.first > resolved) return false;
      waiter.second.set_value();
      return true;
    });
    flush_waiters_.erase(it, flush_waiters_.end());
  }

  [[nodiscard]] std::optional<TimePoint> next_due_locked() const {
    if (!batch_.empty()) return retry_at_;
    if (queue_.empty()) return std::nullopt;
    return queue_.front().added_at + options_.flush_interval;
  }

  [[nodiscard]] Duration backoff(int attempt) const noexcept {
    Duration delay = options_.retry_base_delay;
    for (int i = 1; i < attempt && delay < options_.retry_max_delay; ++i) delay *= 2;
    return std::min(delay, options_.retry_max_delay);
  }

  // Does all due work; returns true when stopping and fully drained. `lk` holds `mu_` and is
  // released around sink and spill calls.
  bool pump_locked(std::unique_lock<std::mutex>& lk) {
    for (;;) {
      const TimePoint now = clock_.now();
      if (!batch_.empty()) {
        if (!final_drain_ && now < retry_at_) return false;
        attempt_locked(lk);
        continue;
      }
      if (queue_.empty()) return stopping_;
      const bool due = queue_.size() >= options_.batch_size || stopping_ ||
                       queue_front_seq_ < flush_target_ ||
                       now - queue_.front().added_at >= options_.flush_interval;
      if (!due) return false;
      const std::size_t n = std::min(options_.batch_size, queue_.size());
      batch_.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch_.push_back(std::move(queue_.front().value));
        queue_.pop_front();
      }
      batch_first_seq_ = queue_front_seq_;
      queue_front_seq_ += n;
      attempts_ = 0;
      batch_taken_at_ = now;
      space_cv_.notify_all();
      attempt_locked(lk);
    }
  }

  void attempt_locked(std::unique_lock<std::mutex>& lk) {
    const std::span<const T> items(batch_);
    lk.unlock();
    boost::system::error_code ec;
    try {
      ec = sink_.write(items);
    } catch (const std::exception&) {
      ec = Errc::sink_threw;
    }
    lk.lock();
    const TimePoint now = clock_.now();
    if (!ec) {
      stats_.written += batch_.size();
      ++stats_.batches;
      const Duration latency = now - batch_taken_at_;
      stats_.last_flush_latency = latency;
      stats_.max_flush_latency = std::max(stats_.max_flush_latency, latency);
      stats_.total_flush_latency += latency;
      sink_down_ = false;
      finish_batch_locked();
      return;
    }
    ++stats_.sink_failures;
    ++attempts_;
    if (attempts_ <= options_.max_retries && !sink_down_ && !final_drain_) {
      ++stats_.retries;
      retry_at_ = now + backoff(attempts_);
      return;
    }
    sink_down_ = true;
    if (spill_) {
      lk.unlock();
      boost::system::error_code spill_ec;
      try {
        spill_ec = spill_(items);
      } catch (const std::exception&) {
        spill_ec = Errc::spill_threw;
      }
      lk.lock();
      if (!spill_ec) {
        stats_.spilled += batch_.size();
        ++stats_.spilled_batches;
      } else {
        ++stats_.spill_failures;
        stats_.dropped_sink_failed += batch_.size();
      }
    } else {
      stats_.dropped_sink_failed += batch_.size();
    }
    finish_batch_locked();
  }

  void finish_batch_locked() {
    batch_.clear();
    resolve_flush_waiters_locked();
  }

  void run_worker() {
    std::unique_lock lk(mu_);
    while (!pump_locked(lk)) {
      const std::optional<TimePoint> due = next_due_locked();
      if (!due) {
        work_cv_.wait(lk);
        continue;
      }
      const TimePoint now = clock_.now();
      if (*due > now) work_cv_.wait_for(lk, std::min<Duration>(*due - now, kMaxWaitSlice));
    }
  }

  // Longest single condition-variable wait; waits re-read the clock after each slice.
  static constexpr Duration kMaxWaitSlice = std::chrono::hours(1);

  Sink<T>& sink_;
  const BatcherOptions options_;
  const SpillFn spill_;
  const base::Clock& clock_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // the flusher waits here
  std::condition_variable space_cv_;  // producers blocked by a full queue wait here
  std::deque<Entry> queue_;
  uint64_t next_seq_ = 0;         // sequence number the next accepted item gets
  uint64_t queue_front_seq_ = 0;  // sequence number of queue_.front(); + size == next_seq_
  std::vector<T> batch_;          // the batch being written or awaiting a retry
  uint64_t batch_first_seq_ = 0;
  TimePoint batch_taken_at_{};
  TimePoint retry_at_{};
  int attempts_ = 0;
  bool stopping_ = false;
  bool final_drain_ = false;   // manual-mode destructor: one attempt per batch, no backoff
  bool sink_down_ = false;     // the last batch gave up: later batches get one attempt
  uint64_t flush_target_ = 0;  // partial batches are written while their seq is below this
  std::vector<std::pair<uint64_t, std::promise<void>>> flush_waiters_;
  uint64_t blocked_producers_ = 0;
  BatcherStats stats_;

  std::mutex pump_mu_;  // serialises pump() callers in manual mode
  std::mutex join_mu_;  // serialises stop() joiners
  std::thread worker_;
};

}  // namespace sluice::batch
