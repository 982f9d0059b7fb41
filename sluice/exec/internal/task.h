// The type-erased task behind `TaskManager` (see task_manager.h). Not part of the API.
#pragma once

#include <atomic>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <exception>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <memory>
#include <stop_token>
#include <type_traits>
#include <utility>

#include "sluice/base/clock.h"
#include "sluice/exec/task_error.h"

namespace sluice::exec::internal {

// How a run ended, for the manager's counters.
enum class Outcome {
  kCompleted,  // returned a value in time; the future has it
  kFailed,     // threw; the future has the exception
  kTimedOut,   // returned after its deadline; the future got `timed_out`
  kLate,       // the future had already been completed (by the watchdog or a cancel)
  kDetached,   // a task without a future ran (parallel_map runner)
};

enum class Phase { kQueued, kRunning, kFinished };

class Task : public std::enable_shared_from_this<Task> {
 public:
  virtual ~Task() = default;
  // Runs the function; completes the future unless it was completed already. `deadline` is
  // checked after the function returns: a late result is replaced by `timed_out`.
  virtual Outcome run(const base::Clock& clock) noexcept = 0;
  // Completes the future with `TaskError(code)` unless it was completed already.
  virtual bool fail(boost::system::error_code code) noexcept = 0;

  // The first caller wins the right to complete the future.
  bool claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }

  // Fields below are guarded by the manager's mutex, except `stop` (thread-safe itself).
  std::stop_source stop;
  TimePoint enqueued{};
  TimePoint deadline = TimePoint::max();
  Phase phase = Phase::kQueued;
  std::list<std::shared_ptr<Task>>::iterator queue_pos{};
  bool has_timer = false;
  std::multimap<TimePoint, Task*>::iterator timer{};

 private:
  std::atomic<bool> claimed_{false};
};

// Calls `fn(token)` when it takes a stop token, else `fn()`.
template <typename F>
decltype(auto) invoke_task(F& fn, std::stop_token token) {
  if constexpr (std::is_invocable_v<F&, std::stop_token>) {
    return std::invoke(fn, std::move(token));
  } else {
    return std::invoke(fn);
  }
}

template <typename F>
using TaskResult =
    std::conditional_t<std::is_invocable_v<F&, std::stop_token>,
                       std::invoke_result<F&, std::stop_token>, std::invoke_result<F&>>::type;

template <typename R, typename F>
class FutureTask final : public Task {
 public:
  explicit FutureTask(F fn) : fn_(std::move(fn)) {}
  std::future<R> get_future() { return promise_.get_future(); }

  Outcome run(const base::Clock& clock) noexcept override {
    try {
      if constexpr (std::is_void_v<R>) {
        invoke_task(fn_, stop.get_token());
        if (late(clock)) return finish_late();
        if (!claim()) return Outcome::kLate;
        promise_.set_value();
      } else {
        R value = invoke_task(fn_, stop.get_token());
        if (late(clock)) return finish_late();
        if (!claim()) return Outcome::kLate;
        promise_.set_value(std::move(value));
      }
      return Outcome::kCompleted;
    } catch (...) {
      if (late(clock)) return finish_late();
      if (!claim()) return Outcome::kLate;
      promise_.set_exception(std::current_exception());
      return Outcome::kFailed;
    }
  }

  bool fail(boost::system::error_code code) noexcept override {
    if (!claim()) return false;
    promise_.set_exception(std::make_exception_ptr(TaskError(code)));
    return true;
  }

 private:
  bool late(const base::Clock& clock) const noexcept {
    return deadline != TimePoint::max() && clock.now() > deadline;
  }
  Outcome finish_late() noexcept {
    return fail(make_error_code(ExecErrc::timed_out)) ? Outcome::kTimedOut : Outcome::kLate;
  }

  F fn_;
  std::promise<R> promise_;
};

// A task with no future (the runners of `parallel_map`); it reports nothing itself.
template <typename F>
class DetachedTask final : public Task {
 public:
  explicit DetachedTask(F fn) : fn_(std::move(fn)) {}
  Outcome run(const base::Clock&) noexcept override {
    fn_(stop.get_token());
    return Outcome::kDetached;
  }
  bool fail(boost::system::error_code) noexcept override { return claim(); }

 private:
  F fn_;
};

}  // namespace sluice::exec::internal
