// The expected failures of `TaskManager`: `ExecErrc` values for submissions that are refused
// (returned as `boost::system::result` errors) and `TaskError` for tasks that were admitted
// but did not produce their result (thrown from the task's `std::future::get`).
//
// Thread-safety: immutable values. Cost: nothing on the success path.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>
#include <type_traits>

namespace sluice::exec {

enum class ExecErrc {
  // `max_queue` tasks are waiting: `try_submit` refused at once, `submit` after its wait.
  queue_full = 1,
  // `shutdown()` was called: the manager accepts no more tasks.
  shut_down,
  // The task's deadline passed before a worker started it; it never ran.
  not_started,
  // The task ran past its deadline; its result (or exception) was discarded.
  timed_out,
  // `shutdown(ShutdownMode::kCancelPending)` removed the task from the queue; it never ran.
  cancelled,
};

// The category of `ExecErrc` ("sluice.exec").
[[nodiscard]] const boost::system::error_category& exec_category() noexcept;

[[nodiscard]] inline boost::system::error_code make_error_code(ExecErrc e) noexcept {
  return {static_cast<int>(e), exec_category()};
}

// Thrown through a task's future for `not_started`, `timed_out` and `cancelled`.
class TaskError : public boost::system::system_error {
 public:
  explicit TaskError(boost::system::error_code code) : boost::system::system_error(code) {}
};

}  // namespace sluice::exec

template <>
struct boost::system::is_error_code_enum<sluice::exec::ExecErrc> : std::true_type {};
