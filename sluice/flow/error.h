// Error codes of the flow module: the expected failures of streams, semaphores and limiters,
// returned as values (`boost::system::error_code`, `boost::system::result<T>`), never thrown.
//
// Thread-safety: pure functions; the category is a process-wide constant.
// Compare with `ec == flow::Errc::end_of_stream`; `ec.message()` gives a one-line text.
#pragma once

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace sluice::flow {

enum class Errc {
  // Not an error: the producer closed the stream and the consumer has drained every chunk.
  end_of_stream = 1,
  // `push()` after the producer called `close()`, or a push pending when `close()` ran.
  stream_closed,
  // The stream was cancelled by either side (`BoundedStream::cancel()` with no other reason).
  stream_cancelled,
  // The buffer was full under `OverflowPolicy::fail`: the stream ended for both sides.
  stream_overflow,
  // A single chunk larger than the stream's byte bound: it can never fit, so it is refused.
  chunk_too_large,
  // `AsyncSemaphore::acquire()` found `max_waiters` already queued and did not wait.
  too_many_waiters,
  // The semaphore was closed (shutdown): waiting and new acquisitions fail with this.
  semaphore_closed,
  // `AdaptiveLimiter::try_acquire()`: in-flight requests already reach the current limit.
  over_limit,
  // `BoundedStream::offer()` under `OverflowPolicy::block_producer`: the chunk does not fit now
  // (or producers are already waiting); it was not queued. A `push()` would have suspended.
  // `BoundedStream::try_pop()`: nothing is buffered now. A `pop()` would have suspended.
  would_block,
};

// The category of `Errc` ("sluice.flow").
[[nodiscard]] const boost::system::error_category& flow_category() noexcept;

[[nodiscard]] inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), flow_category()};
}

}  // namespace sluice::flow

namespace boost::system {
template <>
struct is_error_code_enum<sluice::flow::Errc> : std::true_type {};
}  // namespace boost::system
