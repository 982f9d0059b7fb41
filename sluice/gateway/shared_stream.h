// SharedStream: one upstream stream fanned out to every identical request that joins it (stream
// coalescing, `route.stream.coalesce`), without HTTP.
//
//   upstream -> reader -> append() -> history (for late joiners and the cache)
//                                  -> offer() to each joiner's flow::BoundedStream -> its writer
//
// A joiner first receives a replay of everything streamed so far, then its own bounded stream
// for what follows: no gap, no duplicate, the order of the upstream. A replay larger than the
// joiner's buffer is taken in rounds (`catch_up`): while the joiner writes one round, what
// arrives goes to the history only, and the next round hands it over; once a round is within
// the buffer's byte bound, the joiner goes live in the same step (atomically with respect to
// `append`). So a late joiner is never ended for the size of its replay, only for falling
// behind the live stream. The reader never waits for a joiner: each chunk is offered
// (non-suspending) to every joiner's stream, so a slow joiner only fills its own buffer, and at its
// bound it is ended (`fail`: the gateway disconnects it) or loses its oldest chunks
// (`drop_oldest`), as the joiner options say. One slow joiner never slows the reader nor the other
// joiners.
//
// The history holds every chunk while the total stays within `history_bytes`; past it the
// history is released (memory stays bounded), the stream stops accepting joiners (a late
// joiner could not get the beginning) and can no longer be cached. A stream whose history is
// whole when it ends `completed` can be stored by the caller (`body()`).
//
// When to stop reading: once no joiner is left and none is expected (no `hold()` token is
// alive: the gateway hands one with the stream to every caller that will join it), or none
// can join any more (history released). That is decided under the lock, by the `leave`,
// `release` or `append` that makes it so: the stream ends `abandoned` there, so nobody joins a
// stream nobody reads, and the `on_abandoned` callback lets the reader stop a read waiting
// on a silent upstream. Create it with std::make_shared (`hold` shares it).
//
// Thread-safety: thread-safe; one mutex guards the history and the joiner table and is held
// while a chunk is offered to each joiner (so a join's replay is atomic). Each joiner's
// stream has its own lock, taken under this one; callbacks run outside the lock.
// Cost: `append` is O(joiners): one copy of the chunk per joiner plus one shared history
// entry. `join` is O(history chunks) (pointers, no byte copy).
#pragma once

#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sluice/flow/bounded_stream.h"

namespace sluice::gateway {

class SharedStream : public std::enable_shared_from_this<SharedStream> {
 public:
  struct Options {
    // History kept for late joiners and for the cache, in bytes at most.
    size_t history_bytes = 8 * 1024 * 1024;
    // Each joiner's buffer; `overflow` must not be `block_producer` (a joiner cannot hold
    // up the reader): `fail` ends a slow joiner, `drop_oldest` / `drop_newest` lose chunks.
    flow::BoundedStreamOptions joiner;
  };

  // How the upstream stream ended (the reader says, with `end`).
  enum class End : uint8_t {
    running,    // not ended yet
    completed,  // the body ended
    failed,     // the upstream reset or stalled (see `error()`)
    abandoned,  // every joiner left; the reader stopped
  };

  using Chunk = std::shared_ptr<const std::string>;
  struct Joiner {
    uint64_t id = 0;
    std::vector<Chunk> replay;                    // this round's part of the history
    std::shared_ptr<flow::BoundedStream> stream;  // what follows; closed at the end
    bool live = false;  // `stream` receives the chunks after `replay` (else: catch_up first)
    size_t next = 0;    // history index after `replay`
  };

  struct Stats {
    size_t joiners = 0;            // joined and not left
    uint64_t joined = 0;           // joins so far
    uint64_t late_joins = 0;       // joins with a non-empty replay
    uint64_t replayed_bytes = 0;   // history bytes handed to late joiners
    uint64_t catch_up_rounds = 0;  // replay rounds after the first (replays over the bound)
    uint64_t bytes = 0;            // bytes appended
    uint64_t chunks = 0;           // chunks appended
    size_t history_bytes = 0;      // bytes held in the history now
    bool history_whole = true;     // the history holds every byte appended
    uint64_t joiners_ended = 0;    // joiners whose buffer overflowed under `fail`
  };

  explicit SharedStream(Options options);
  SharedStream(const SharedStream&) = delete;
  SharedStream& operator=(const SharedStream&) = delete;

  // Joins: the first round of replay, and a stream for the rest (live when the replay is
  // within the joiner's byte bound). nullopt when the stream can no longer be joined whole
  // (history released, or it failed or was abandoned). `on_ejected` is called (once, outside
  // the lock, on the reader's thread) when the joiner's stream overflows under `fail`: its
  // writer may be stuck on a full socket and must be cut from there.
  [[nodiscard]] std::optional<Joiner> join(std::function<void()> on_ejected = nullptr);
  // Sets the joiner's `on_ejected` (see `join`) once its writer is known; false when it is
  // no longer registered (ejected or left).
  bool set_on_ejected(uint64_t id, std::function<void()> on_ejected);
  // A token that keeps the stream from being abandoned while no one has joined yet (a caller
  // about to join); dropping it may abandon the stream.
  [[nodiscard]] std::shared_ptr<void> hold();
  // The next round for a joiner that is not live yet: the history after its last round, live
  // once that is within the byte bound. false when the history is gone (released past its
  // bound, or the stream failed): the joiner cannot get the whole stream.
  [[nodiscard]] bool catch_up(Joiner& joiner);
  // The joiner `id` is done (its client finished or went away). Its stream is cancelled.
  void leave(uint64_t id);

  // Reader side. Appends `chunk`: to the history (while within its bound) and to every
  // joiner's stream. Returns false when the reader should stop: the stream ended, or no
  // joiner is left and none is expected (then it ends `abandoned` here).
  bool append(std::string chunk);
  // Ends the stream (closes every joiner's stream after what it holds). Idempotent: the first
  // call wins.
  void end(End how, boost::system::error_code error = {});
  // Called (once, outside the lock, on the thread of the `leave` or `release` that abandoned
  // the stream); at once, on this thread, when that happened already.
  void set_on_abandoned(std::function<void()> callback);

  [[nodiscard]] End state() const;
  [[nodiscard]] boost::system::error_code error() const;
  [[nodiscard]] bool joinable() const;
  // The whole body, when the history holds all of it (else nullopt).
  [[nodiscard]] std::optional<std::string> body() const;
  [[nodiscard]] Stats stats() const;

 private:
  bool should_stop_locked() const;
  // Ends the stream `abandoned` when nobody reads nor is expected; returns the callback to
  // call once unlocked (null when it did not, or none was set).
  std::function<void()> abandon_if_idle_locked();
  void release();

  const Options options_;
  mutable std::mutex mu_;
  std::vector<Chunk> history_;
  struct JoinerState {
    std::shared_ptr<flow::BoundedStream> stream;
    bool live = false;
    std::function<void()> on_ejected;
  };
  // The rest of the history from `joiner.next` becomes its replay; live when within bounds.
  void next_round_locked(Joiner& joiner);

  std::map<uint64_t, JoinerState> joiners_;
  std::function<void()> on_abandoned_;
  End end_ = End::running;
  boost::system::error_code error_;
  uint64_t next_id_ = 1;
  size_t holds_ = 0;  // `hold()` tokens alive
  Stats stats_;
};

}  // namespace sluice::gateway
