// BoundedStream: joins a producer and a consumer (Asio coroutines) through a buffer bounded by
// a number of chunks AND a number of bytes, so that a slow consumer (a slow HTTP client) can
// never make memory grow past the bound: the producer is suspended, or chunks are dropped, or
// the stream fails, as the stream's `OverflowPolicy` says.
//
// Thread-safety: thread-safe. Producer and consumer may run on different executors and
// threads; state is guarded by one mutex, and a suspended side is resumed by posting its
// completion to its own executor (never inline, never under the lock). Several producers or
// consumers may share a stream; waiters are served first come, first served.
//
// Chunks are `std::string` byte buffers, moved in and out (no copy): the gateway pushes HTTP
// body chunks as they arrive from the upstream. A chunk counts `size()` bytes; an empty chunk
// counts 0 bytes but one chunk slot.
//
// States (from the fill = max(chunks / buffer_size, bytes / max_buffered_bytes)):
// NORMAL < warning_threshold <= WARNING < throttle_threshold <= THROTTLED < blocked_threshold
// <= BLOCKED; a producer suspended for space also makes the state BLOCKED. The state-change
// callback lets a producer slow down before the bound is hit (e.g. stop reading the upstream
// socket at THROTTLED); the time spent THROTTLED or BLOCKED is `total_throttle_time`.
//
// Cancellation: `push()`/`pop()` honour the coroutine's cancellation slot (e.g. an
// `awaitable_operators ||` with a timer, or `bind_cancellation_slot` on `co_spawn`): a cancelled
// wait completes with `boost::asio::error::operation_aborted`, leaves nothing behind (a pending
// push's chunk is not queued) and the stream stays usable. `cancel()` ends the stream for both
// sides.
//
// `offer()` is the non-suspending push, callable from plain code on any thread (a publisher
// fanning one event out to many subscribers' streams): the same decision as `push()` under
// every policy, except that where `push()` would suspend (block_producer, no room) it returns
// `Errc::would_block` and queues nothing.
//
// Cost: an uncontended push, offer or pop that need not wait is one mutex lock and a deque
// operation, and does not suspend. Lifetime: destroy the stream only once no operation is pending
// on it (pending waiters are destroyed with it, and with them their suspended coroutines).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "sluice/base/clock.h"
#include "sluice/flow/error.h"
#include "sluice/flow/internal/pending_op.h"

namespace sluice::flow {

// How full the buffer is, as seen by the producer.
enum class StreamState {
  // Below the warning threshold: produce freely.
  normal,
  // Approaching the bound: worth watching, nothing to do yet.
  warning,
  // Near the bound: the producer should slow down (stop reading its source).
  throttled,
  // At the bound, or a producer is suspended waiting for space.
  blocked,
};

[[nodiscard]] std::string_view to_string(StreamState state) noexcept;

// What `push()` (and `offer()`) does when the chunk does not fit.
enum class OverflowPolicy {
  // The producer's `co_await push()` suspends until the consumer makes room (lossless);
  // `offer()` returns `Errc::would_block` instead and queues nothing.
  block_producer,
  // The oldest buffered chunks are discarded until the new one fits (live feeds).
  drop_oldest,
  // The new chunk is discarded (keeps the stream's beginning).
  drop_newest,
  // The stream ends with `Errc::stream_overflow` for both sides (buffer discarded).
  fail,
};

[[nodiscard]] std::string_view to_string(OverflowPolicy policy) noexcept;

// What happened to a pushed chunk (when push did not fail).
enum class PushOutcome {
  // The chunk is in the buffer.
  queued,
  // The chunk is in the buffer; older chunks were discarded to make room (drop_oldest).
  queued_after_dropping_oldest,
  // The chunk was discarded (drop_newest).
  dropped,
};

struct BoundedStreamOptions {
  // Most chunks buffered at once (>= 1). The default is the seed's buffer_size.
  size_t buffer_size = 100;
  // Most bytes buffered at once (>= 1); a chunk larger than this is refused (chunk_too_large).
  size_t max_buffered_bytes = size_t{1} << 20;
  // What push does when the chunk does not fit.
  OverflowPolicy overflow = OverflowPolicy::block_producer;
  // Fill fraction at which the state becomes WARNING, in [0, 1].
  double warning_threshold = 0.5;
  // Fill fraction at which the state becomes THROTTLED, in [warning, 1] (seed default 0.9).
  double throttle_threshold = 0.9;
  // Fill fraction at which the state becomes BLOCKED, in [throttle, 1].
  double blocked_threshold = 1.0;
  // Called with (from, to) on every state change, under the stream's lock (so in order): keep
  // it short and do not call back into the stream. Optional.
  std::function<void(StreamState from, StreamState to)> on_state_change = nullptr;
};

class BoundedStream {
 public:
  struct Stats {
    uint64_t chunks_produced = 0;     // chunks accepted into the buffer
    uint64_t bytes_produced = 0;      // their bytes
    uint64_t chunks_consumed = 0;     // chunks handed to the consumer
    uint64_t bytes_consumed = 0;      // their bytes
    uint64_t overflow_count = 0;      // pushes and offers that found no room (any policy)
    uint64_t dropped_chunks = 0;      // chunks discarded by drop_oldest / drop_newest
    uint64_t dropped_bytes = 0;       // their bytes
    uint64_t discarded_chunks = 0;    // chunks thrown away when the stream failed or was cancelled
    uint64_t rejected_chunks = 0;     // chunks refused as larger than max_buffered_bytes
    uint64_t cancelled_waits = 0;     // pending push/pop cancelled through their slot
    uint64_t state_changes = 0;       // transitions between states
    Duration total_throttle_time{0};  // time spent THROTTLED or BLOCKED (including now)
    Duration producer_wait_time{0};   // time pushes spent suspended for space
    StreamState state = StreamState::normal;  // current state
    size_t buffered_chunks = 0;               // chunks in the buffer now
    size_t buffered_bytes = 0;                // bytes in the buffer now
    size_t max_buffered_chunks = 0;           // high-water mark of buffered_chunks
    size_t max_buffered_bytes = 0;            // high-water mark of buffered_bytes
    double max_fill = 0;                      // high-water mark of the fill fraction, in [0, 1]
    size_t pending_pushes = 0;                // producers suspended now
    size_t pending_pops = 0;                  // consumers suspended now
    bool closed = false;                      // the producer called close()
    bool failed = false;                      // the stream ended with an error (cancel or overflow)
  };

  explicit BoundedStream(BoundedStreamOptions options,
                         const base::Clock& clock = base::SteadyClock::instance());
  ~BoundedStream();
  BoundedStream(const BoundedStream&) = delete;
  BoundedStream& operator=(const BoundedStream&) = delete;

  // Producer: hands `chunk` to the stream. Errors: stream_closed, the cancel reason,
  // stream_overflow (policy fail), chunk_too_large, operation_aborted (this wait cancelled).
  [[nodiscard]] boost::asio::awaitable<boost::system::result<PushOutcome>> push(std::string chunk);

  // Producer, never suspends: decides as `push()` does, under the same lock. Under drop_oldest,
  // drop_newest and fail the result is exactly `push()`'s; under block_producer a chunk that
  // does not fit now, or that would queue behind suspended pushes (first come, first served),
  // is not queued and the result is `Errc::would_block` (the chunk is lost: keep a copy to
  // retry). A waiting consumer is resumed as by `push()`, posted to its own executor. Errors:
  // stream_closed, the cancel reason, stream_overflow (policy fail), chunk_too_large,
  // would_block.
  [[nodiscard]] boost::system::result<PushOutcome> offer(std::string chunk);

  // Consumer: the next chunk, in order. Errors: end_of_stream (closed and drained), the cancel
  // reason, stream_overflow, operation_aborted (this wait cancelled).
  [[nodiscard]] boost::asio::awaitable<boost::system::result<std::string>> pop();

  // Consumer, never suspends: the next chunk if one is buffered now. Errors as `pop()`, and
  // `Errc::would_block` when nothing is buffered (or other consumers are already waiting).
  // A consumer drains a burst with it (e.g. to write several chunks in one syscall).
  [[nodiscard]] boost::system::result<std::string> try_pop();

  // Producer: no more chunks. The consumer drains what is buffered, then gets end_of_stream.
  // Pushes pending at this moment fail with stream_closed. Idempotent.
  void close();

  // Either side: ends the stream now. Buffered chunks are discarded; pending and later pushes
  // and pops fail with `reason` (default Errc::stream_cancelled). No effect once ended.
  void cancel(boost::system::error_code reason = make_error_code(Errc::stream_cancelled));

  [[nodiscard]] StreamState state() const;
  // Chunks buffered now (one lock; cheaper than `stats()`).
  [[nodiscard]] size_t buffered() const;
  [[nodiscard]] Stats stats() const;
  [[nodiscard]] const BoundedStreamOptions& options() const noexcept { return options_; }

 private:
  using PushOp = internal::PendingOp<void(boost::system::error_code, PushOutcome)>;
  using PopOp = internal::PendingOp<void(boost::system::error_code, std::string)>;
  struct Pusher {
    std::string chunk;
    TimePoint since;
    PushOp op;
  };
  struct Decision;
  // Whether a push is decided for the first time (its overflow is counted) or again, when it
  // is about to suspend (already counted).
  enum class Attempt { first, again };

  // Each *_locked function requires mu_ held.
  // The one decision of push and offer: queue, drop, fail, or (block_producer) wait.
  Decision try_push_locked(std::string& chunk, TimePoint now, Attempt attempt);
  bool try_pop_locked(std::string& out, boost::system::error_code& ec, TimePoint now);
  bool fits_locked(size_t bytes) const noexcept;
  void enqueue_locked(std::string chunk);
  void pump_locked(TimePoint now);
  void fail_locked(boost::system::error_code reason, TimePoint now);
  void update_state_locked(TimePoint now);
  void cancel_push(uint64_t id);
  void cancel_pop(uint64_t id);

  BoundedStreamOptions options_;
  const base::Clock& clock_;
  mutable std::mutex mu_;
  std::deque<std::string> buffer_;
  size_t buffered_bytes_ = 0;
  // Waiters by arrival id: begin() is the oldest (FIFO); ids let a cancellation find its entry.
  std::map<uint64_t, Pusher> pushers_;
  std::map<uint64_t, PopOp> poppers_;
  uint64_t next_id_ = 1;
  bool closed_ = false;
  boost::system::error_code failure_;  // set once the stream ended with an error
  StreamState state_ = StreamState::normal;
  TimePoint state_since_;
  Stats stats_;  // counters; the "now" fields are filled in by stats()
};

}  // namespace sluice::flow
