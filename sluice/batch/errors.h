// Error codes of the batch module: the failures a `Batcher` or `MicroBatcher` reports as
// values (to callers of `MicroBatcher`, and as the error a throwing `Sink` is turned into).
//
// Thread-safety: the category is a process-wide constant, safe from any thread.
// Cost: making an `error_code` is two words; `message()` builds a `std::string`.
#pragma once

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace sluice::batch {

enum class Errc {
  // A `Sink::write` threw instead of returning an error code (the batch is retried/spilled).
  sink_threw = 1,
  // A `spill` callback threw; the batch is counted as dropped.
  spill_threw,
  // The `MicroBatcher` batch function threw: every caller of that batch gets this error.
  batch_function_threw,
  // The batch function returned a number of results different from the number of requests.
  wrong_result_count,
  // The component is stopped (or stopping) and takes no new work.
  stopped,
  // The caller's own wait ran out before its result was ready (the work itself goes on).
  timed_out,
  // The bounded queue of pending calls is full; the call was not queued.
  overloaded,
};

// The category of `Errc`; its name is "sluice.batch".
[[nodiscard]] const boost::system::error_category& batch_category() noexcept;

[[nodiscard]] inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), batch_category()};
}

}  // namespace sluice::batch

template <>
struct boost::system::is_error_code_enum<sluice::batch::Errc> : std::true_type {};
