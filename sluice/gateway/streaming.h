// Streamed answers: how an upstream body that is not buffered whole (an event stream, a
// chunked body, a body over 64 KiB) reaches one client.
//
//   upstream socket -> reader (producer) -> flow::BoundedStream (per client) -> writer -> client
//
// The reader and the writer are two coroutines on the request's worker. The stream between
// them is bounded in chunks and bytes (`route.stream.buffer_chunks` / `buffer_bytes`), so a
// client that reads slowly can never make the gateway hold more than that for it; at the bound
// the route's `slow_client` policy applies:
//   block       the reader stops reading the upstream until the client catches up: TCP
//               backpressure all the way to the upstream (the right policy for one client);
//   disconnect  the slow client's connection is closed and the upstream call ends.
// An event stream is cut only at event boundaries (a blank line): a chunk holds whole events,
// so an error event or a dropped chunk never splits one. An upstream that resets, or stays
// silent longer than `stall_timeout`, ends the stream: an event stream gets a final
// `event: error` (its SSE parser sees a clean end), another body is cut (the client sees a
// truncated answer, never a complete-looking one).
//
// Every stream in progress is in the `StreamRegistry`, with its state (NORMAL / WARNING /
// THROTTLED / BLOCKED, from the stream's fill) and counters: `GET /admin/streams`.
//
// Thread-safety: `StreamRegistry` is safe from any thread (one mutex, taken when a stream
// starts and ends and when the admin API reads it, never per chunk). `pump` runs on the
// request's worker; the response and writer it is given belong to that worker.
// Cost per chunk: one copy of the piece read into the stream's buffer (moved out to the
// writer), one push and one pop (a mutex each, uncontended).
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "sluice/base/clock.h"
#include "sluice/flow/bounded_stream.h"
#include "sluice/gateway/config.h"
#include "sluice/gateway/shared_stream.h"
#include "sluice/http/client.h"
#include "sluice/http/compression.h"
#include "sluice/http/server.h"

namespace sluice::gateway {

// Finds where the complete events of an SSE byte stream end. Feed it the stream piece by
// piece; each call returns how many bytes of everything fed so far (and not yet returned)
// form complete events, i.e. end with a blank line (LF, CRLF or CR line ends, mixed).
class SseFramer {
 public:
  // `piece` continues the stream; returns the length of the newly complete prefix of the
  // bytes pending (previous calls' leftover plus `piece`), 0 when no event ended.
  size_t feed(std::string_view piece) noexcept;
  // The caller took the pending bytes without a boundary (an event too large to hold).
  void skip() noexcept { pending_ = 0; }
  // Events completed so far (blocks with at least one field line; comment-only blocks such as
  // keep-alives and extra blank lines are boundaries but not events).
  [[nodiscard]] uint64_t events() const noexcept { return events_; }

 private:
  size_t pending_ = 0;  // bytes fed and not yet returned
  uint64_t events_ = 0;
  bool has_field_ = false;  // the event in progress has a field line (not only comments)
  bool line_start_ = true;  // the next byte starts a line
  bool after_cr_ = false;   // the last byte was CR (a following LF belongs to it)
};

// How a streamed answer ended.
enum class StreamOutcome : uint8_t {
  completed,       // the upstream body ended and the client received all of it
  client_gone,     // the client went away (a write failed)
  upstream_error,  // the upstream reset or closed the connection mid-body
  stalled,         // the upstream was silent longer than `stall_timeout`
  slow_client,     // the client fell behind the bound and the policy disconnected it
};
inline constexpr size_t kStreamOutcomeCount = 5;
[[nodiscard]] std::string_view to_string(StreamOutcome outcome) noexcept;

// One stream in progress, as the admin API shows it.
struct StreamEntry {
  uint64_t id = 0;
  std::string route;
  std::string client;  // the client's address
  std::string target;  // the request target
  std::string policy;  // slow_client policy
  bool event_stream = false;
  bool shared = false;            // a joiner of a coalesced stream (route.stream.coalesce)
  bool flush_each_chunk = false;  // a compressed stream flushes after every chunk
  int64_t started_unix_ms = 0;
  std::shared_ptr<flow::BoundedStream> stream;
  std::atomic<uint64_t> upstream_bytes{0};  // read from the upstream
  std::atomic<uint64_t> client_bytes{0};    // accepted by the client's socket
  std::atomic<uint64_t> events{0};          // complete SSE events forwarded
};

struct StreamTotals {
  uint64_t started = 0;
  std::array<uint64_t, kStreamOutcomeCount> ended{};  // by StreamOutcome
  uint64_t upstream_bytes = 0;
  uint64_t client_bytes = 0;
  uint64_t events = 0;
  uint64_t throttled_ns = 0;        // time streams spent THROTTLED or BLOCKED
  uint64_t state_changes = 0;       // NORMAL/WARNING/THROTTLED/BLOCKED transitions
  uint64_t max_buffered_bytes = 0;  // largest buffer any stream held
};

// Coalesced streams (SharedStream): ended ones plus the ones in progress.
struct SharedStreamTotals {
  size_t active = 0;            // upstream streams being read now
  uint64_t started = 0;         // upstream streams shared
  uint64_t completed = 0;       // ended with the body
  uint64_t failed = 0;          // ended by an upstream reset or stall
  uint64_t abandoned = 0;       // stopped because every joiner left
  uint64_t stored = 0;          // completed streams stored in the cache
  uint64_t joins = 0;           // clients served by a shared stream (leaders included)
  uint64_t late_joins = 0;      // of which joined after bytes had been streamed
  uint64_t replayed_bytes = 0;  // history bytes replayed to late joiners
  uint64_t slow_joiners = 0;    // joiners ended at their buffer's bound
  uint64_t upstream_bytes = 0;  // body bytes read from the upstreams
  uint64_t history_bytes = 0;   // bytes held in histories now
};

class StreamRegistry {
 public:
  // A coalesced stream started / ended (`stored`: its body went to the cache).
  void shared_started(std::shared_ptr<SharedStream> shared);
  void shared_ended(const std::shared_ptr<SharedStream>& shared, bool stored);
  [[nodiscard]] SharedStreamTotals shared_totals() const;

  std::shared_ptr<StreamEntry> add(std::shared_ptr<StreamEntry> entry);
  void remove(const StreamEntry& entry, StreamOutcome outcome);
  [[nodiscard]] size_t active() const;
  // Totals of ended streams plus the ones in progress.
  [[nodiscard]] StreamTotals totals() const;
  // The streams in progress (at most `limit`, oldest first) with their flow state and
  // counters; the GET /admin/streams body.
  [[nodiscard]] boost::json::object to_json(size_t limit) const;

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<StreamEntry>> active_;
  uint64_t next_id_ = 1;
  StreamTotals ended_;  // ended streams only
  std::map<const SharedStream*, std::shared_ptr<SharedStream>> shared_active_;
  SharedStreamTotals shared_ended_;  // ended shared streams only
};

struct PumpResult {
  StreamOutcome outcome = StreamOutcome::completed;
  boost::system::error_code upstream_error;  // set for upstream_error and stalled
};

// Streams the rest of `response`'s body to `writer` (whose head is already written) through
// the bounded stream of `entry`, under `config`'s policy and stall timeout, and ends the
// client's response: finished when the body completed; for an upstream failure, an event
// stream gets `event: error` with data {"error":"upstream_aborted"|"upstream_stalled",
// "reason":...} and another body is aborted; a slow client under `disconnect` is aborted.
// Returns how it ended; the upstream connection goes back to its pool only after a complete
// body.
// With `compressor` (not null) every chunk is coded on its way out, flushed per chunk for an
// event stream (no event waits for the next), and the coded stream is finished at the end.
boost::asio::awaitable<PumpResult> pump(http::ClientResponse& response,
                                        http::ResponseWriter& writer, const StreamConfig& config,
                                        StreamEntry& entry, std::string_view upstream_name,
                                        http::StreamCompressor* compressor = nullptr);

// ---------------------------------------------------------------------------------------
// The halves `pump` is made of, shared with stream coalescing.

// How `read_body` ended.
struct ReadEnd {
  enum class How : uint8_t {
    completed,  // the body ended and every byte went to the sink
    failed,     // the upstream reset, closed or stalled (`error`)
    stopped,    // the sink refused a chunk, or `*stop` became true
  };
  How how = How::stopped;
  boost::system::error_code error;
};

// Takes one chunk of at most the reader's `max_chunk` bytes; false to stop reading.
using ChunkSink = std::function<boost::asio::awaitable<bool>(std::string)>;

// Reads the rest of `response`'s body and hands it to `sink` in chunks of at most `max_chunk`
// bytes; an event stream in whole events (an event larger than `max_chunk` in pieces), so a
// chunk never splits an event that fits. Counts the bytes read into `bytes` and the complete
// events into `events` (both added to). Checks `*stop` (when not null) after every read.
boost::asio::awaitable<ReadEnd> read_body(http::ClientResponse& response, bool event_stream,
                                          size_t max_chunk, std::atomic<uint64_t>& bytes,
                                          std::atomic<uint64_t>& events, const ChunkSink& sink,
                                          const bool* stop);

// Writes `replay` (in writes of about 64 KiB) and then every chunk popped from `stream` to the
// client, coded by `compressor` when not null, until the stream ends. A burst of buffered
// chunks goes in one write. Sets `result.outcome` to client_gone (a write failed, the codec
// failed) or slow_client (the stream overflowed under `fail`: the client is aborted).
boost::asio::awaitable<void> deliver(flow::BoundedStream& stream, http::ResponseWriter& writer,
                                     StreamEntry& entry, http::StreamCompressor* compressor,
                                     PumpResult& result,
                                     std::span<const SharedStream::Chunk> replay);

// Writes `replay` to the client (coded by `compressor` when not null) in writes of about
// 64 KiB; false when the client side ended (`result` says why).
boost::asio::awaitable<bool> write_replay(std::span<const SharedStream::Chunk> replay,
                                          http::ResponseWriter& writer, StreamEntry& entry,
                                          http::StreamCompressor* compressor, PumpResult& result);

// Ends the client's response as `result` says: finished (with the coded stream's trailer)
// after a complete body; `event: error` then finished for an event stream whose upstream
// failed, aborted for another body; nothing when the client side already ended.
boost::asio::awaitable<void> end_client(http::ResponseWriter& writer, PumpResult& result,
                                        bool event_stream, std::string_view upstream_name,
                                        http::StreamCompressor* compressor);

// The reader of a coalesced stream: reads the rest of `response`'s body into `shared` (whole
// events for an event stream, chunks of at most `config.buffer_bytes`), under
// `config.stall_timeout`, until the body ends (`completed`), the upstream fails or stalls
// (`failed`), or no joiner is left (`abandoned`: the last joiner's leave cancels a waiting
// read). Runs on the response's worker; never waits for a joiner.
boost::asio::awaitable<void> feed_shared(http::ClientResponse& response, SharedStream& shared,
                                         bool event_stream, const StreamConfig& config,
                                         std::atomic<uint64_t>& bytes,
                                         std::atomic<uint64_t>& events);

// Streams a coalesced stream to one joiner whose head is already written: its replay (in
// rounds while it is over the joiner's buffer), then its live chunks, and ends its response as the
// shared stream ended (a failed upstream gives an event stream `event: error`). The caller leaves
// `shared` afterwards.
boost::asio::awaitable<PumpResult> deliver_shared(SharedStream& shared,
                                                  SharedStream::Joiner& joiner,
                                                  http::ResponseWriter& writer, StreamEntry& entry,
                                                  std::string_view upstream_name,
                                                  http::StreamCompressor* compressor);

}  // namespace sluice::gateway
