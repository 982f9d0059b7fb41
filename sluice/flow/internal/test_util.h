// Test helpers for the coroutine primitives of flow (tests only).
//
// `spawn` starts a coroutine whose exceptions propagate out of `io_context::run/poll`, so a
// failing test never hangs or swallows an error. Thread-safety: as Asio's co_spawn.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <exception>
#include <utility>

namespace sluice::flow::internal {

struct Rethrow {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

// `where` is an executor or an execution context (an io_context).
template <typename Where, typename F>
void spawn(Where&& where, F&& f) {
  boost::asio::co_spawn(std::forward<Where>(where), std::forward<F>(f), Rethrow{});
}

// As `spawn`, with the coroutine's cancellation slot connected to `signal`.
template <typename Where, typename F>
void spawn(Where&& where, boost::asio::cancellation_signal& signal, F&& f) {
  boost::asio::co_spawn(std::forward<Where>(where), std::forward<F>(f),
                        boost::asio::bind_cancellation_slot(signal.slot(), Rethrow{}));
}

}  // namespace sluice::flow::internal
