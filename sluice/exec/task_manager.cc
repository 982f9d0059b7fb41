#include "sluice/exec/task_manager.h"

#include <string>

namespace sluice::exec {
namespace {

class ExecCategory final : public boost::system::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "sluice.exec"; }
  [[nodiscard]] std::string message(int ev) const override {
    switch (static_cast<ExecErrc>(ev)) {
      case ExecErrc::queue_full:
        return "task queue full: max_queue tasks are waiting";
      case ExecErrc::shut_down:
        return "task manager is shut down";
      case ExecErrc::not_started:
        return "task deadline passed before it started; it did not run";
      case ExecErrc::timed_out:
        return "task ran past its deadline; its result was discarded";
      case ExecErrc::cancelled:
        return "task cancelled by shutdown before it started";
    }
    return "unknown sluice.exec error " + std::to_string(ev);
  }
};

// The longest the watchdog sleeps without looking (it also wakes for an earlier deadline).
// It matters only with a `ManualClock`, whose time the watchdog cannot wait for.
constexpr Duration kWatchdogMaxSleep = std::chrono::milliseconds(100);

}  // namespace

const boost::system::error_category& exec_category() noexcept {
  static const ExecCategory category;
  return category;
}

TaskManager::TaskManager(TaskManagerOptions options, const base::Clock& clock)
    : options_(options), clock_(clock) {
  SLUICE_CHECK(options_.workers >= 1, "TaskManager needs at least one worker");
  SLUICE_CHECK(options_.max_queue >= 1, "TaskManager needs max_queue >= 1");
  stats_.workers = options_.workers;
  running_.resize(options_.workers);
  workers_.reserve(options_.workers);
  for (size_t i = 0; i < options_.workers; ++i) {
    workers_.emplace_back([this, i] { worker_loop(i); });
  }
  watchdog_ = std::thread([this] { watchdog_loop(); });
}

TaskManager::~TaskManager() { shutdown(ShutdownMode::kDrain); }

boost::system::error_code TaskManager::enqueue(std::shared_ptr<internal::Task>* tasks, size_t count,
                                               Duration wait_for_space,
                                               const TaskOptions& options) {
  const Duration timeout = options.timeout.value_or(options_.default_timeout);
  std::unique_lock lock(mu_);
  const auto has_room = [&] { return !accepting_ || queue_.size() + count <= options_.max_queue; };
  if (!has_room() && wait_for_space > Duration::zero() && count <= options_.max_queue) {
    not_full_.wait_for(lock, wait_for_space, has_room);
  }
  if (!accepting_) {
    ++stats_.rejected;
    ++stats_.rejected_shut_down;
    return make_error_code(ExecErrc::shut_down);
  }
  if (!has_room()) {
    ++stats_.rejected;
    return make_error_code(ExecErrc::queue_full);
  }
  const TimePoint now = clock_.now();
  TimePoint deadline = TimePoint::max();
  if (timeout > Duration::zero()) {
    deadline = timeout >= TimePoint::max() - now ? TimePoint::max() : now + timeout;
  }
  const bool earlier =
      deadline != TimePoint::max() && (deadlines_.empty() || deadline < deadlines_.begin()->first);
  for (size_t i = 0; i < count; ++i) {
    internal::Task& task = *tasks[i];
    task.enqueued = now;
    task.deadline = deadline;
    task.phase = internal::Phase::kQueued;
    if (deadline != TimePoint::max()) {
      task.timer = deadlines_.emplace(deadline, &task);
      task.has_timer = true;
    }
    task.queue_pos = queue_.insert(queue_.end(), std::move(tasks[i]));
  }
  stats_.submitted += count;
  stats_.max_queue_depth = std::max(stats_.max_queue_depth, queue_.size());
  lock.unlock();
  if (count == 1) {
    work_ready_.notify_one();
  } else {
    work_ready_.notify_all();
  }
  if (earlier) watchdog_cv_.notify_one();
  return {};
}

void TaskManager::remove_timer(internal::Task& task) {
  if (task.has_timer) {
    deadlines_.erase(task.timer);
    task.has_timer = false;
  }
}

void TaskManager::worker_loop(size_t index) {
  for (;;) {
    std::shared_ptr<internal::Task> task;
    TimePoint start;
    {
      std::unique_lock lock(mu_);
      work_ready_.wait(lock, [this] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and nothing left to drain
      task = std::move(queue_.front());
      queue_.pop_front();
      start = clock_.now();
      ++stats_.dequeued;
      stats_.total_queue_wait += start - task->enqueued;
      if (start > task->deadline) {
        remove_timer(*task);
        task->phase = internal::Phase::kFinished;
        ++stats_.timed_out_not_started;
      } else {
        task->phase = internal::Phase::kRunning;
        running_[index] = task;
        ++stats_.active_workers;
      }
    }
    not_full_.notify_one();
    if (task->phase == internal::Phase::kFinished) {
      task->fail(make_error_code(ExecErrc::not_started));
      continue;
    }
    const internal::Outcome outcome = task->run(clock_);
    const TimePoint end = clock_.now();
    std::lock_guard lock(mu_);
    --stats_.active_workers;
    running_[index].reset();
    remove_timer(*task);
    task->phase = internal::Phase::kFinished;
    ++stats_.runs;
    stats_.total_task_time += end - start;
    switch (outcome) {
      case internal::Outcome::kCompleted:
      case internal::Outcome::kDetached:  // a parallel_map helper ran to its end
        ++stats_.completed;
        break;
      case internal::Outcome::kFailed:
        ++stats_.failed;
        break;
      case internal::Outcome::kTimedOut:
        ++stats_.timed_out_running;
        break;
      case internal::Outcome::kLate:  // counted by whoever completed the future
        break;
    }
  }  // `task` (and what the function captured) is destroyed outside the lock
}

size_t TaskManager::expire_overdue() {
  std::vector<std::shared_ptr<internal::Task>> not_started;
  std::vector<std::shared_ptr<internal::Task>> overdue;
  {
    std::lock_guard lock(mu_);
    const TimePoint now = clock_.now();
    while (!deadlines_.empty() && now > deadlines_.begin()->first) {
      internal::Task& task = *deadlines_.begin()->second;
      remove_timer(task);
      if (task.phase == internal::Phase::kQueued) {
        not_started.push_back(std::move(*task.queue_pos));
        queue_.erase(task.queue_pos);
        task.phase = internal::Phase::kFinished;
        ++stats_.dequeued;
        stats_.total_queue_wait += now - task.enqueued;
      } else {
        overdue.push_back(task.shared_from_this());
      }
    }
    stats_.timed_out_not_started += not_started.size();
  }
  if (!not_started.empty()) not_full_.notify_all();
  for (auto& task : not_started) task->fail(make_error_code(ExecErrc::not_started));
  size_t timed_out = 0;
  for (auto& task : overdue) {
    if (task->fail(make_error_code(ExecErrc::timed_out))) ++timed_out;
    task->stop.request_stop();  // outside the lock: stop callbacks run here
  }
  if (timed_out != 0) {
    std::lock_guard lock(mu_);
    stats_.timed_out_running += timed_out;
  }
  return not_started.size() + timed_out;
}

void TaskManager::watchdog_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (deadlines_.empty()) {
      watchdog_cv_.wait(lock);
      continue;
    }
    const Duration until = deadlines_.begin()->first - clock_.now();
    if (until >= Duration::zero()) {
      // Wake just after the deadline (`now > deadline` expires it).
      watchdog_cv_.wait_for(lock, std::min(until + Duration(1), kWatchdogMaxSleep));
      continue;
    }
    lock.unlock();
    expire_overdue();
    lock.lock();
  }
}

void TaskManager::shutdown(ShutdownMode mode) {
  std::lock_guard shutdown_lock(shutdown_mu_);
  std::vector<std::shared_ptr<internal::Task>> cancelled;
  std::vector<std::shared_ptr<internal::Task>> running;
  {
    std::lock_guard lock(mu_);
    accepting_ = false;
    if (mode == ShutdownMode::kCancelPending) {
      for (auto& task : queue_) {
        remove_timer(*task);
        task->phase = internal::Phase::kFinished;
        cancelled.push_back(std::move(task));
      }
      queue_.clear();
      stats_.cancelled += cancelled.size();
      for (auto& task : running_) {
        if (task) running.push_back(task);
      }
    }
    stopping_ = true;
  }
  work_ready_.notify_all();
  not_full_.notify_all();
  watchdog_cv_.notify_all();
  for (auto& task : cancelled) task->fail(make_error_code(ExecErrc::cancelled));
  for (auto& task : running) task->stop.request_stop();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  if (watchdog_.joinable()) watchdog_.join();
}

TaskManagerStats TaskManager::stats() const {
  std::lock_guard lock(mu_);
  TaskManagerStats s = stats_;
  s.queue_depth = queue_.size();
  return s;
}

}  // namespace sluice::exec
