// TaskManager: a fixed pool of worker threads for blocking work that must stay off the event
// loops (SQLite/PostgreSQL writes, compression of large values, DNS), with a bounded queue,
// futures for results, per-task deadlines, a concurrency-capped `parallel_map`, and a
// graceful shutdown.
//
// Thread-safe: every member function may be called from any thread, including from inside a
// task, except `shutdown()` and the destructor, which must not run inside one of this
// manager's tasks (they join the workers).
// Cost: one `std::mutex` guards the queue (a `std::list`, O(1) removal of an expired task)
// and the counters; a submission is one allocation for the task, one for the future's shared
// state, one list node, and one lock; a worker takes the lock twice per task. That is a few
// microseconds per task, and the mutex is the limit past a few hundred thousand tasks a
// second: submit work of at least tens of microseconds, or batch it with `parallel_map`.
// A mutex and condition variables (not a lock-free queue) because the bound, the blocking
// submit, the deadline removal and `cancel_pending` all need a consistent view of the queue.
//
// Deadlines: a task's deadline is `clock.now()` at submission plus its timeout. A task that
// has not started when `now > deadline` never runs; its future throws
// `TaskError(ExecErrc::not_started)`. C++ cannot preempt a running thread: a task running at
// its deadline keeps running, but its waiter is told at once (the future throws
// `TaskError(ExecErrc::timed_out)`), its `std::stop_token` is signalled so a cooperative task
// can return early, and whatever it returns later is discarded. A watchdog thread applies the
// deadlines on time with the real clock; with a `ManualClock`, call `expire_overdue()` after
// advancing it. A function that returns after its deadline is reported as timed out even when
// the watchdog has not run yet, so the outcome never depends on the watchdog's timing.
//
// Ordering: tasks start in submission order (FIFO); they may finish in any order.
#pragma once

#include <algorithm>
#include <atomic>
#include <boost/system/result.hpp>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/base/check.h"
#include "sluice/base/clock.h"
#include "sluice/exec/internal/task.h"
#include "sluice/exec/task_error.h"

namespace sluice::exec {

// The token a task may take as its only argument: `stop_requested()` turns true when the
// task's deadline passes or `shutdown(kCancelPending)` runs.
using StopToken = std::stop_token;

struct TaskManagerOptions {
  // Worker threads, started by the constructor (at least 1).
  size_t workers = 2;
  // Most tasks waiting to start; a submission beyond it is refused with `queue_full`
  // (`Stats::rejected`). At least 1.
  size_t max_queue = 1024;
  // Timeout of tasks submitted without their own; zero or negative means no deadline.
  Duration default_timeout = Duration::zero();
};

struct TaskOptions {
  // This task's timeout; nullopt uses `default_timeout`, zero or negative means no deadline.
  std::optional<Duration> timeout;
};

enum class ShutdownMode {
  kDrain,          // run every queued task, then stop
  kCancelPending,  // fail queued tasks with `cancelled`, signal running ones' stop tokens
};

// A snapshot of the counters, read under the manager's lock.
struct TaskManagerStats {
  uint64_t submitted = 0;              // tasks admitted to the queue
  uint64_t completed = 0;              // ran and returned in time
  uint64_t failed = 0;                 // ran and threw in time
  uint64_t rejected = 0;               // submissions refused (queue full or shut down)
  uint64_t rejected_shut_down = 0;     // of which because of `shutdown()`
  uint64_t timed_out_not_started = 0;  // deadline passed in the queue; never ran
  uint64_t timed_out_running = 0;      // deadline passed while running; result discarded
  uint64_t cancelled = 0;              // removed from the queue by `kCancelPending`
  size_t queue_depth = 0;              // tasks waiting now
  size_t max_queue_depth = 0;          // the most tasks ever waiting at once
  size_t active_workers = 0;           // workers running a task now
  size_t workers = 0;                  // worker threads
  uint64_t runs = 0;                   // tasks that ran to their end (for the averages)
  Duration total_task_time{};          // time spent running them
  uint64_t dequeued = 0;               // tasks taken off the queue by a worker
  Duration total_queue_wait{};         // time those waited in the queue

  [[nodiscard]] uint64_t timed_out() const noexcept {
    return timed_out_not_started + timed_out_running;
  }
  [[nodiscard]] Duration average_task_time() const noexcept {
    return runs == 0 ? Duration::zero() : total_task_time / static_cast<int64_t>(runs);
  }
  [[nodiscard]] Duration average_queue_wait() const noexcept {
    return dequeued == 0 ? Duration::zero() : total_queue_wait / static_cast<int64_t>(dequeued);
  }
};

// The result of `wait_all`.
struct WaitAllResult {
  size_t ready = 0;  // futures that became ready in time
  size_t total = 0;  // futures waited on
  [[nodiscard]] bool all_ready() const noexcept { return ready == total; }
};

class TaskManager {
 public:
  // The result type of a callable taken by `submit`: `fn(StopToken)` or `fn()`.
  template <typename F>
  using ResultOf = internal::TaskResult<std::decay_t<F>>;
  template <typename F>
  using Submitted = boost::system::result<std::future<ResultOf<F>>>;

  explicit TaskManager(TaskManagerOptions options = {},
                       const base::Clock& clock = base::SteadyClock::instance());
  TaskManager(const TaskManager&) = delete;
  TaskManager& operator=(const TaskManager&) = delete;
  // `shutdown(ShutdownMode::kDrain)`.
  ~TaskManager();

  // Queues `fn` (callable as `fn(StopToken)` or `fn()`); fails at once with `queue_full` or
  // `shut_down`. The future has the result, the exception `fn` threw, or a `TaskError`.
  template <typename F>
  [[nodiscard]] Submitted<F> try_submit(F&& fn, TaskOptions options = {}) {
    return submit(std::forward<F>(fn), Duration::zero(), options);
  }

  // As `try_submit`, but waits up to `wait_for_space` (real time) for room in the queue.
  template <typename F>
  [[nodiscard]] Submitted<F> submit(F&& fn, Duration wait_for_space, TaskOptions options = {}) {
    using R = ResultOf<F>;
    auto task = std::make_shared<internal::FutureTask<R, std::decay_t<F>>>(std::forward<F>(fn));
    std::future<R> future = task->get_future();
    std::shared_ptr<internal::Task> base = std::move(task);
    if (auto ec = enqueue(&base, 1, wait_for_space, options)) return ec;
    return future;
  }

  // Queues all of `fns` or none: fails with `queue_full` when the queue has no room for all
  // of them (always when `fns.size() > max_queue`), or `shut_down`.
  template <typename F>
  [[nodiscard]] boost::system::result<std::vector<std::future<ResultOf<F>>>> try_submit_batch(
      std::vector<F> fns, TaskOptions options = {}) {
    using R = ResultOf<F>;
    std::vector<std::future<R>> futures;
    std::vector<std::shared_ptr<internal::Task>> tasks;
    futures.reserve(fns.size());
    tasks.reserve(fns.size());
    for (F& fn : fns) {
      auto task = std::make_shared<internal::FutureTask<R, F>>(std::move(fn));
      futures.push_back(task->get_future());
      tasks.push_back(std::move(task));
    }
    if (auto ec = enqueue(tasks.data(), tasks.size(), Duration::zero(), options)) return ec;
    return futures;
  }

  // Applies `fn` to every input and returns the results in input order, running at most
  // `max_concurrency` calls at once (>= 1). The calling thread works too, so a call from
  // inside a task cannot deadlock, and `max_concurrency - 1` helper tasks are queued (fewer
  // when the queue is full: the call then runs with less parallelism, never fails for it).
  // The first exception `fn` throws stops the remaining inputs and is rethrown here once the
  // calls in flight end. Helper tasks have no deadline.
  template <typename In, typename Fn>
  auto parallel_map(const std::vector<In>& inputs, Fn fn, size_t max_concurrency)
      -> std::vector<std::invoke_result_t<Fn&, const In&>>;

  // Stops accepting tasks, then runs (kDrain) or fails (kCancelPending) the queued ones, waits
  // for the running ones and joins the threads. Idempotent; blocks until the workers exit.
  void shutdown(ShutdownMode mode = ShutdownMode::kDrain);

  // Applies every deadline that has passed by `clock.now()`; returns how many tasks it timed
  // out. The watchdog calls it; tests with a `ManualClock` call it after `advance`.
  size_t expire_overdue();

  [[nodiscard]] TaskManagerStats stats() const;
  [[nodiscard]] const TaskManagerOptions& options() const noexcept { return options_; }

 private:
  // Admits `count` tasks at once or none; returns the refusal.
  [[nodiscard]] boost::system::error_code enqueue(std::shared_ptr<internal::Task>* tasks,
                                                  size_t count, Duration wait_for_space,
                                                  const TaskOptions& options);
  void worker_loop(size_t index);
  void watchdog_loop();
  void remove_timer(internal::Task& task);

  const TaskManagerOptions options_;
  const base::Clock& clock_;

  mutable std::mutex mu_;
  std::condition_variable work_ready_;   // a task was queued or the manager stops
  std::condition_variable not_full_;     // room in the queue or the manager stops
  std::condition_variable watchdog_cv_;  // an earlier deadline or the manager stops
  std::list<std::shared_ptr<internal::Task>> queue_;
  std::multimap<TimePoint, internal::Task*> deadlines_;   // tasks queued or running with one
  std::vector<std::shared_ptr<internal::Task>> running_;  // by worker index
  bool accepting_ = true;
  bool stopping_ = false;
  TaskManagerStats stats_;

  std::mutex shutdown_mu_;  // serialises `shutdown` callers
  std::vector<std::thread> workers_;
  std::thread watchdog_;
};

// Waits until every future is ready or `timeout` (real time) passes; does not consume them.
template <typename R>
[[nodiscard]] WaitAllResult wait_all(const std::vector<std::future<R>>& futures, Duration timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  WaitAllResult result{0, futures.size()};
  for (const std::future<R>& f : futures) {
    if (f.valid() && f.wait_until(deadline) == std::future_status::ready) ++result.ready;
  }
  return result;
}

template <typename In, typename Fn>
auto TaskManager::parallel_map(const std::vector<In>& inputs, Fn fn, size_t max_concurrency)
    -> std::vector<std::invoke_result_t<Fn&, const In&>> {
  using R = std::invoke_result_t<Fn&, const In&>;
  SLUICE_CHECK(max_concurrency >= 1, "parallel_map needs max_concurrency >= 1");
  const size_t n = inputs.size();
  std::vector<std::optional<R>> slots(n);

  // Shared with helper tasks, which may start after this call returned: they touch the
  // caller's data only between `enter()` and `leave()`, and `close()` waits them out.
  struct Shared {
    std::mutex mu;
    std::condition_variable idle;
    bool closed = false;
    size_t inside = 0;
    std::atomic<size_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;  // guarded by `mu`
    bool enter() {
      std::lock_guard lock(mu);
      if (closed) return false;
      ++inside;
      return true;
    }
    void leave() {
      std::lock_guard lock(mu);
      if (--inside == 0) idle.notify_all();
    }
    void close() {
      std::unique_lock lock(mu);
      closed = true;
      idle.wait(lock, [this] { return inside == 0; });
    }
  };
  auto shared = std::make_shared<Shared>();
  auto work = [shared, &inputs, &slots, &fn, n] {
    for (;;) {
      if (shared->failed.load(std::memory_order_relaxed)) return;
      const size_t i = shared->next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      try {
        slots[i].emplace(fn(inputs[i]));
      } catch (...) {
        std::lock_guard lock(shared->mu);
        if (!shared->error) shared->error = std::current_exception();
        shared->failed.store(true, std::memory_order_relaxed);
        return;
      }
    }
  };

  const size_t helpers = std::min({max_concurrency - 1, options_.workers, n == 0 ? 0 : n - 1});
  for (size_t h = 0; h < helpers; ++h) {
    auto runner = [shared, work](std::stop_token) {
      if (!shared->enter()) return;
      work();
      shared->leave();
    };
    std::shared_ptr<internal::Task> task =
        std::make_shared<internal::DetachedTask<decltype(runner)>>(std::move(runner));
    TaskOptions no_deadline{.timeout = Duration::zero()};
    if (enqueue(&task, 1, Duration::zero(), no_deadline)) break;  // full: run with fewer
  }
  if (shared->enter()) {
    work();
    shared->leave();
  }
  shared->close();
  if (shared->error) std::rethrow_exception(shared->error);
  std::vector<R> out;
  out.reserve(n);
  for (std::optional<R>& slot : slots) out.push_back(std::move(*slot));
  return out;
}

}  // namespace sluice::exec
