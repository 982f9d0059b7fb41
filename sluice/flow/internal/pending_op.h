// PendingOp: a suspended asynchronous operation of a flow primitive (a push waiting for space,
// a pop waiting for data, an acquire waiting for a permit). It owns the type-erased completion
// handler and a tracked-work guard on the handler's executor, so that an `io_context::run()`
// whose only remaining work is this wait does not return while it is pending.
//
// Thread-safety: none; the owning primitive guards it with its mutex. `complete` may run on any
// thread: it posts the handler to the handler's own executor (never runs it inline), so a
// coroutine always resumes on its own executor and never under the primitive's lock.
#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <utility>

namespace sluice::flow::internal {

template <typename Signature>
class PendingOp;

template <typename... Args>
class PendingOp<void(Args...)> {
 public:
  using Handler = boost::asio::any_completion_handler<void(Args...)>;

  // `handler` is the concrete handler from `async_initiate`; its associated executor (the
  // coroutine's executor for `use_awaitable`) is kept, with outstanding work, before erasure.
  template <typename H>
  explicit PendingOp(H&& handler)
      : executor_(boost::asio::prefer(boost::asio::get_associated_executor(handler),
                                      boost::asio::execution::outstanding_work.tracked)),
        handler_(std::forward<H>(handler)) {}
  PendingOp(PendingOp&&) noexcept = default;
  PendingOp& operator=(PendingOp&&) noexcept = default;

  // The slot on which to install the operation's cancellation handler. The type-erased handler
  // has its own cancellation state (chained to the original handler's slot), so install it
  // here, after erasure: a handler installed on the original slot would be replaced.
  [[nodiscard]] boost::asio::cancellation_slot cancellation_slot() const noexcept {
    return handler_.get_cancellation_slot();
  }

  // Posts the handler, invoked with `args`, to its executor. Call at most once.
  void complete(Args... args) {
    boost::asio::any_io_executor executor = std::move(executor_);
    boost::asio::post(executor,
                      [handler = std::move(handler_), ... values = std::move(args)]() mutable {
                        std::move(handler)(std::move(values)...);
                      });
  }

 private:
  boost::asio::any_io_executor executor_;  // declared first: built from the handler
  Handler handler_;
};

}  // namespace sluice::flow::internal
