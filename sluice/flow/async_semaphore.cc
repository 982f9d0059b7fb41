#include "sluice/flow/async_semaphore.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "sluice/base/check.h"

namespace sluice::flow {

namespace asio = boost::asio;
using boost::system::error_code;

AsyncSemaphore::AsyncSemaphore(Options options) : options_(options) {
  stats_.max_waiters = options_.max_waiters;
}

bool AsyncSemaphore::try_acquire_locked(error_code& ec, bool& granted) {
  granted = false;
  if (closed_) {
    ++stats_.rejected_total;
    ec = Errc::semaphore_closed;
    return true;
  }
  if (waiters_.empty() && in_use_ < options_.capacity) {
    ++in_use_;
    ++stats_.acquired_total;
    granted = true;
    return true;
  }
  if (waiters_.size() >= options_.max_waiters) {
    ++stats_.rejected_total;
    ec = Errc::too_many_waiters;
    return true;
  }
  return false;
}

asio::awaitable<boost::system::result<AsyncSemaphore::Permit>> AsyncSemaphore::acquire() {
  {
    std::lock_guard lock(mu_);
    error_code ec;
    bool granted = false;
    if (try_acquire_locked(ec, granted)) {
      if (granted) co_return Permit(this);
      co_return ec;
    }
  }
  auto token = asio::as_tuple(asio::use_awaitable);
  auto [ec, permit] = co_await asio::async_initiate<decltype(token), void(error_code, Permit)>(
      [this](auto handler) {
        WaitOp op(std::move(handler));
        std::lock_guard lock(mu_);
        error_code now_ec;
        bool granted = false;
        if (try_acquire_locked(now_ec, granted)) {
          op.complete(now_ec, granted ? Permit(this) : Permit());
          return;
        }
        const uint64_t id = next_id_++;
        if (auto slot = op.cancellation_slot(); slot.is_connected()) {
          slot.assign([this, id](asio::cancellation_type_t) { cancel_wait(id); });
        }
        waiters_.emplace(id, std::move(op));
        stats_.max_waiters_seen = std::max(stats_.max_waiters_seen, waiters_.size());
      },
      token);
  if (ec) co_return ec;
  co_return std::move(permit);
}

std::optional<AsyncSemaphore::Permit> AsyncSemaphore::try_acquire() {
  std::lock_guard lock(mu_);
  if (!closed_ && waiters_.empty() && in_use_ < options_.capacity) {
    ++in_use_;
    ++stats_.acquired_total;
    return Permit(this);
  }
  ++stats_.try_failed_total;
  return std::nullopt;
}

void AsyncSemaphore::release_one() noexcept {
  std::lock_guard lock(mu_);
  SLUICE_CHECK(in_use_ > 0, "AsyncSemaphore released more permits than it granted");
  --in_use_;
  grant_waiters_locked();
}

void AsyncSemaphore::grant_waiters_locked() {
  // The permit goes straight to the oldest waiter: it counts as in use from now, so nobody
  // can barge in between the release and the waiter's resumption.
  while (!waiters_.empty() && in_use_ < options_.capacity) {
    auto node = waiters_.extract(waiters_.begin());
    ++in_use_;
    ++stats_.acquired_total;
    ++stats_.waited_total;
    node.mapped().complete(error_code(), Permit(this));
  }
}

void AsyncSemaphore::cancel_wait(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;  // already granted
  auto node = waiters_.extract(it);
  ++stats_.cancelled_total;
  node.mapped().complete(asio::error::operation_aborted, Permit());
}

void AsyncSemaphore::set_capacity(size_t capacity) {
  std::lock_guard lock(mu_);
  options_.capacity = capacity;
  grant_waiters_locked();
}

void AsyncSemaphore::close() {
  std::lock_guard lock(mu_);
  if (closed_) return;
  closed_ = true;
  for (auto& [id, op] : waiters_) {
    ++stats_.rejected_total;
    op.complete(Errc::semaphore_closed, Permit());
  }
  waiters_.clear();
}

size_t AsyncSemaphore::capacity() const {
  std::lock_guard lock(mu_);
  return options_.capacity;
}

size_t AsyncSemaphore::in_use() const {
  std::lock_guard lock(mu_);
  return in_use_;
}

AsyncSemaphore::Stats AsyncSemaphore::stats() const {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.capacity = options_.capacity;
  s.in_use = in_use_;
  s.waiters = waiters_.size();
  s.closed = closed_;
  return s;
}

}  // namespace sluice::flow
