#include "sluice/flow/bounded_stream.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <utility>

#include "sluice/base/check.h"

namespace sluice::flow {

namespace asio = boost::asio;
using boost::system::error_code;

std::string_view to_string(StreamState state) noexcept {
  switch (state) {
    case StreamState::normal:
      return "NORMAL";
    case StreamState::warning:
      return "WARNING";
    case StreamState::throttled:
      return "THROTTLED";
    case StreamState::blocked:
      return "BLOCKED";
  }
  return "UNKNOWN";
}

std::string_view to_string(OverflowPolicy policy) noexcept {
  switch (policy) {
    case OverflowPolicy::block_producer:
      return "block_producer";
    case OverflowPolicy::drop_oldest:
      return "drop_oldest";
    case OverflowPolicy::drop_newest:
      return "drop_newest";
    case OverflowPolicy::fail:
      return "fail";
  }
  return "unknown";
}

// The result of trying to push without waiting.
struct BoundedStream::Decision {
  bool done = false;  // false: the push must wait for space
  error_code ec;
  PushOutcome outcome = PushOutcome::queued;

  static Decision wait() { return {}; }
  static Decision fail(error_code ec) { return {true, ec, PushOutcome::dropped}; }
  static Decision ok(PushOutcome outcome) { return {true, {}, outcome}; }
  [[nodiscard]] boost::system::result<PushOutcome> result() const {
    if (ec) return ec;
    return outcome;
  }
};

BoundedStream::BoundedStream(BoundedStreamOptions options, const base::Clock& clock)
    : options_(std::move(options)), clock_(clock), state_since_(clock.now()) {
  SLUICE_CHECK(options_.buffer_size >= 1, "BoundedStream buffer_size must be >= 1");
  SLUICE_CHECK(options_.max_buffered_bytes >= 1, "BoundedStream max_buffered_bytes must be >= 1");
  SLUICE_CHECK(0 <= options_.warning_threshold &&
                   options_.warning_threshold <= options_.throttle_threshold &&
                   options_.throttle_threshold <= options_.blocked_threshold &&
                   options_.blocked_threshold <= 1.0,
               "BoundedStream thresholds must satisfy 0 <= warning <= throttle <= blocked <= 1");
}

BoundedStream::~BoundedStream() = default;

// ---------------------------------------------------------------------------------------------
// Producer

asio::awaitable<boost::system::result<PushOutcome>> BoundedStream::push(std::string chunk) {
  {
    std::lock_guard lock(mu_);
    const Decision d = try_push_locked(chunk, clock_.now(), Attempt::first);
    if (d.done) co_return d.result();
  }
  // No room under block_producer: suspend. The initiation decides again under the lock, since
  // the consumer may have made room in between.
  auto token = asio::as_tuple(asio::use_awaitable);
  auto [ec, outcome] =
      co_await asio::async_initiate<decltype(token), void(error_code, PushOutcome)>(
          [this, &chunk](auto handler) {
            PushOp op(std::move(handler));
            std::lock_guard lock(mu_);
            const TimePoint now = clock_.now();
            const Decision d = try_push_locked(chunk, now, Attempt::again);
            if (d.done) {
              op.complete(d.ec, d.outcome);
              return;
            }
            const uint64_t id = next_id_++;
            if (auto slot = op.cancellation_slot(); slot.is_connected()) {
              slot.assign([this, id](asio::cancellation_type_t) { cancel_push(id); });
            }
            pushers_.emplace(id, Pusher{std::move(chunk), now, std::move(op)});
            update_state_locked(now);
          },
          token);
  if (ec) co_return ec;
  co_return outcome;
}

boost::system::result<PushOutcome> BoundedStream::offer(std::string chunk) {
  std::lock_guard lock(mu_);
  const Decision d = try_push_locked(chunk, clock_.now(), Attempt::first);
  if (!d.done) return make_error_code(Errc::would_block);  // push() would suspend here
  return d.result();
}

BoundedStream::Decision BoundedStream::try_push_locked(std::string& chunk, TimePoint now,
                                                       Attempt attempt) {
  if (failure_) return Decision::fail(failure_);
  if (closed_) return Decision::fail(Errc::stream_closed);
  if (chunk.size() > options_.max_buffered_bytes) {
    ++stats_.rejected_chunks;
    return Decision::fail(Errc::chunk_too_large);
  }
  // Waiting producers go first (FIFO), even if this chunk would fit.
  if (pushers_.empty() && fits_locked(chunk.size())) {
    enqueue_locked(std::move(chunk));
    pump_locked(now);
    update_state_locked(now);
    return Decision::ok(PushOutcome::queued);
  }
  if (attempt == Attempt::first) ++stats_.overflow_count;  // a suspending push counts once
  switch (options_.overflow) {
    case OverflowPolicy::block_producer:
      return Decision::wait();
    case OverflowPolicy::drop_newest:
      ++stats_.dropped_chunks;
      stats_.dropped_bytes += chunk.size();
      return Decision::ok(PushOutcome::dropped);
    case OverflowPolicy::drop_oldest:
      // Terminates: the chunk fits an empty buffer (size checked above, buffer_size >= 1).
      while (!fits_locked(chunk.size())) {
        ++stats_.dropped_chunks;
        stats_.dropped_bytes += buffer_.front().size();
        buffered_bytes_ -= buffer_.front().size();
        buffer_.pop_front();
      }
      enqueue_locked(std::move(chunk));
      pump_locked(now);
      update_state_locked(now);
      return Decision::ok(PushOutcome::queued_after_dropping_oldest);
    case OverflowPolicy::fail:
      fail_locked(Errc::stream_overflow, now);
      return Decision::fail(Errc::stream_overflow);
  }
  SLUICE_CHECK(false, "unknown OverflowPolicy");
  return Decision::wait();
}

void BoundedStream::close() {
  std::lock_guard lock(mu_);
  if (closed_ || failure_) return;
  closed_ = true;
  const TimePoint now = clock_.now();
  for (auto& [id, pusher] : pushers_) {
    stats_.producer_wait_time += now - pusher.since;
    pusher.op.complete(Errc::stream_closed, PushOutcome::dropped);
  }
  pushers_.clear();
  pump_locked(now);  // delivers end_of_stream to waiting consumers if nothing is buffered
  update_state_locked(now);
}

// ---------------------------------------------------------------------------------------------
// Consumer

asio::awaitable<boost::system::result<std::string>> BoundedStream::pop() {
  std::string chunk;
  {
    std::lock_guard lock(mu_);
    error_code ec;
    if (try_pop_locked(chunk, ec, clock_.now())) {
      if (ec) co_return ec;
      co_return std::move(chunk);
    }
  }
  auto token = asio::as_tuple(asio::use_awaitable);
  auto [ec, out] = co_await asio::async_initiate<decltype(token), void(error_code, std::string)>(
      [this](auto handler) {
        PopOp op(std::move(handler));
        std::lock_guard lock(mu_);
        std::string now_chunk;
        error_code now_ec;
        if (try_pop_locked(now_chunk, now_ec, clock_.now())) {
          op.complete(now_ec, std::move(now_chunk));
          return;
        }
        const uint64_t id = next_id_++;
        if (auto slot = op.cancellation_slot(); slot.is_connected()) {
          slot.assign([this, id](asio::cancellation_type_t) { cancel_pop(id); });
        }
        poppers_.emplace(id, std::move(op));
      },
      token);
  if (ec) co_return ec;
  co_return std::move(out);
}

size_t BoundedStream::buffered() const {
  std::lock_guard lock(mu_);
  return buffer_.size();
}

boost::system::result<std::string> BoundedStream::try_pop() {
  std::lock_guard lock(mu_);
  if (!poppers_.empty()) return make_error_code(Errc::would_block);  // they come first
  std::string chunk;
  error_code ec;
  if (!try_pop_locked(chunk, ec, clock_.now())) return make_error_code(Errc::would_block);
  if (ec) return ec;
  return chunk;
}

bool BoundedStream::try_pop_locked(std::string& out, error_code& ec, TimePoint now) {
  if (failure_) {
    ec = failure_;
    return true;
  }
  if (!buffer_.empty()) {
    out = std::move(buffer_.front());
    buffer_.pop_front();
    buffered_bytes_ -= out.size();
    ++stats_.chunks_consumed;
    stats_.bytes_consumed += out.size();
    pump_locked(now);  // room for a waiting producer
    update_state_locked(now);
    return true;
  }
  if (closed_) {
    ec = Errc::end_of_stream;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Either side

void BoundedStream::cancel(error_code reason) {
  if (!reason) reason = Errc::stream_cancelled;
  std::lock_guard lock(mu_);
  fail_locked(reason, clock_.now());
}

void BoundedStream::fail_locked(error_code reason, TimePoint now) {
  if (failure_) return;
  failure_ = reason;
  stats_.discarded_chunks += buffer_.size();
  buffer_.clear();
  buffered_bytes_ = 0;
  for (auto& [id, pusher] : pushers_) {
    stats_.producer_wait_time += now - pusher.since;
    pusher.op.complete(reason, PushOutcome::dropped);
  }
  pushers_.clear();
  for (auto& [id, popper] : poppers_) popper.complete(reason, std::string());
  poppers_.clear();
  update_state_locked(now);
}

void BoundedStream::cancel_push(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = pushers_.find(id);
  if (it == pushers_.end()) return;  // already completed
  const TimePoint now = clock_.now();
  auto node = pushers_.extract(it);
  stats_.producer_wait_time += now - node.mapped().since;
  ++stats_.cancelled_waits;
  node.mapped().op.complete(asio::error::operation_aborted, PushOutcome::dropped);
  pump_locked(now);  // the next producer in line may fit where the cancelled one did not
  update_state_locked(now);
}

void BoundedStream::cancel_pop(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = poppers_.find(id);
  if (it == poppers_.end()) return;  // already completed
  auto node = poppers_.extract(it);
  ++stats_.cancelled_waits;
  node.mapped().complete(asio::error::operation_aborted, std::string());
}

// ---------------------------------------------------------------------------------------------
// Buffer and state

bool BoundedStream::fits_locked(size_t bytes) const noexcept {
  return buffer_.size() < options_.buffer_size &&
         bytes <= options_.max_buffered_bytes - buffered_bytes_;
}

void BoundedStream::enqueue_locked(std::string chunk) {
  ++stats_.chunks_produced;
  stats_.bytes_produced += chunk.size();
  buffered_bytes_ += chunk.size();
  buffer_.push_back(std::move(chunk));
  SLUICE_CHECK(
      buffer_.size() <= options_.buffer_size && buffered_bytes_ <= options_.max_buffered_bytes,
      "BoundedStream buffer exceeded its bound");
  stats_.max_buffered_chunks = std::max(stats_.max_buffered_chunks, buffer_.size());
  stats_.max_buffered_bytes = std::max(stats_.max_buffered_bytes, buffered_bytes_);
}

void BoundedStream::pump_locked(TimePoint now) {
  for (bool progress = true; progress;) {
    progress = false;
    while (!pushers_.empty() && fits_locked(pushers_.begin()->second.chunk.size())) {
      auto node = pushers_.extract(pushers_.begin());
      stats_.producer_wait_time += now - node.mapped().since;
      enqueue_locked(std::move(node.mapped().chunk));
      node.mapped().op.complete(error_code(), PushOutcome::queued);
      progress = true;
    }
    while (!poppers_.empty() && !buffer_.empty()) {
      auto node = poppers_.extract(poppers_.begin());
      std::string chunk = std::move(buffer_.front());
      buffer_.pop_front();
      buffered_bytes_ -= chunk.size();
      ++stats_.chunks_consumed;
      stats_.bytes_consumed += chunk.size();
      node.mapped().complete(error_code(), std::move(chunk));
      progress = true;
    }
  }
  if (closed_ && buffer_.empty()) {
    for (auto& [id, popper] : poppers_) popper.complete(Errc::end_of_stream, std::string());
    poppers_.clear();
  }
}

void BoundedStream::update_state_locked(TimePoint now) {
  const double fill = std::max(
      static_cast<double>(buffer_.size()) / static_cast<double>(options_.buffer_size),
      static_cast<double>(buffered_bytes_) / static_cast<double>(options_.max_buffered_bytes));
  stats_.max_fill = std::max(stats_.max_fill, fill);
  StreamState next = StreamState::normal;
  if (!pushers_.empty() || fill >= options_.blocked_threshold) {
    next = StreamState::blocked;
  } else if (fill >= options_.throttle_threshold) {
    next = StreamState::throttled;
  } else if (fill >= options_.warning_threshold) {
    next = StreamState::warning;
  }
  if (next == state_) return;
  if (state_ == StreamState::throttled || state_ == StreamState::blocked) {
    stats_.total_throttle_time += now - state_since_;
  }
  const StreamState previous = std::exchange(state_, next);
  state_since_ = now;
  ++stats_.state_changes;
  if (options_.on_state_change) options_.on_state_change(previous, next);
}

StreamState BoundedStream::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

BoundedStream::Stats BoundedStream::stats() const {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.state = state_;
  if (state_ == StreamState::throttled || state_ == StreamState::blocked) {
    s.total_throttle_time += clock_.now() - state_since_;
  }
  s.buffered_chunks = buffer_.size();
  s.buffered_bytes = buffered_bytes_;
  s.pending_pushes = pushers_.size();
  s.pending_pops = poppers_.size();
  s.closed = closed_;
  s.failed = static_cast<bool>(failure_);
  return s;
}

}  // namespace sluice::flow
