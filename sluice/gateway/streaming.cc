#include "sluice/gateway/streaming.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstring>
#include <exception>
#include <optional>

#include "sluice/flow/error.h"

namespace sluice::gateway {

namespace asio = boost::asio;
using boost::system::error_code;

size_t SseFramer::feed(std::string_view piece) noexcept {
  size_t complete = 0;  // bytes of `pending_ + piece` up to the last boundary seen
  if (!after_cr_ && std::memchr(piece.data(), '\r', piece.size()) == nullptr) {
    // LF line ends only (the usual case): jump from line to line with memchr.
    size_t i = 0;
    while (i < piece.size()) {
      if (line_start_) {
        const char c = piece[i];
        if (c == '\n') {  // a blank line: an event ends here
          complete = pending_ + i + 1;
          if (has_field_) ++events_;
          has_field_ = false;
          ++i;
          continue;
        }
        if (c != ':') has_field_ = true;  // a field, not a comment
        line_start_ = false;
      }
      const void* lf = std::memchr(piece.data() + i, '\n', piece.size() - i);
      if (lf == nullptr) break;  // the line goes on in the next piece
      i = static_cast<size_t>(static_cast<const char*>(lf) - piece.data()) + 1;
      line_start_ = true;
    }
    pending_ += piece.size();
    pending_ -= complete;
    return complete;
  }
  for (size_t i = 0; i < piece.size(); ++i) {
    const char c = piece[i];
    if (c == '\n' && after_cr_) {  // the LF of a CRLF: the line already ended at the CR
      after_cr_ = false;
      if (complete == pending_ + i) complete = pending_ + i + 1;  // keep CRLF whole
      continue;
    }
    after_cr_ = c == '\r';
    if (c == '\n' || c == '\r') {
      if (line_start_) {
        complete = pending_ + i + 1;  // a blank line: an event ends here
        if (has_field_) ++events_;
        has_field_ = false;
      }
      line_start_ = true;
    } else {
      if (line_start_ && c != ':') has_field_ = true;  // a field, not a comment
      line_start_ = false;
    }
  }
  pending_ += piece.size();
  pending_ -= complete;
  return complete;
}

std::string_view to_string(StreamOutcome outcome) noexcept {
  switch (outcome) {
    case StreamOutcome::completed:
      return "completed";
    case StreamOutcome::client_gone:
      return "client_gone";
    case StreamOutcome::upstream_error:
      return "upstream_error";
    case StreamOutcome::stalled:
      return "stalled";
    case StreamOutcome::slow_client:
      return "slow_client";
  }
  return "completed";
}

// ---------------------------------------------------------------------------------------
// StreamRegistry

namespace {

void add_entry(StreamTotals& t, const StreamEntry& e) {
  t.upstream_bytes += e.upstream_bytes.load(std::memory_order_relaxed);
  t.client_bytes += e.client_bytes.load(std::memory_order_relaxed);
  t.events += e.events.load(std::memory_order_relaxed);
  const auto s = e.stream->stats();
  t.throttled_ns += static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(s.total_throttle_time).count());
  t.state_changes += s.state_changes;
  t.max_buffered_bytes = std::max<uint64_t>(t.max_buffered_bytes, s.max_buffered_bytes);
}

double seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

std::shared_ptr<StreamEntry> StreamRegistry::add(std::shared_ptr<StreamEntry> entry) {
  std::lock_guard lock(mu_);
  entry->id = next_id_++;
  ++ended_.started;
  active_.emplace(entry->id, entry);
  return entry;
}

void StreamRegistry::remove(const StreamEntry& entry, StreamOutcome outcome) {
  std::lock_guard lock(mu_);
  if (active_.erase(entry.id) == 0) return;
  ++ended_.ended[static_cast<size_t>(outcome)];
  add_entry(ended_, entry);
}

size_t StreamRegistry::active() const {
  std::lock_guard lock(mu_);
  return active_.size();
}

StreamTotals StreamRegistry::totals() const {
  std::lock_guard lock(mu_);
  StreamTotals t = ended_;
  for (const auto& [id, e] : active_) add_entry(t, *e);
  return t;
}

namespace {

void add_shared(SharedStreamTotals& t, const SharedStream::Stats& s) {
  t.joins += s.joined;
  t.late_joins += s.late_joins;
  t.replayed_bytes += s.replayed_bytes;
  t.slow_joiners += s.joiners_ended;
  t.upstream_bytes += s.bytes;
}

}  // namespace

void StreamRegistry::shared_started(std::shared_ptr<SharedStream> shared) {
  std::lock_guard lock(mu_);
  ++shared_ended_.started;
  const SharedStream* key = shared.get();
  shared_active_.emplace(key, std::move(shared));
}

void StreamRegistry::shared_ended(const std::shared_ptr<SharedStream>& shared, bool stored) {
  const SharedStream::Stats s = shared->stats();
  const SharedStream::End end = shared->state();
  std::lock_guard lock(mu_);
  if (shared_active_.erase(shared.get()) == 0) return;
  add_shared(shared_ended_, s);
  if (stored) ++shared_ended_.stored;
  switch (end) {
    case SharedStream::End::completed:
      ++shared_ended_.completed;
      break;
    case SharedStream::End::failed:
      ++shared_ended_.failed;
      break;
    case SharedStream::End::running:
    case SharedStream::End::abandoned:
      ++shared_ended_.abandoned;
      break;
  }
}

SharedStreamTotals StreamRegistry::shared_totals() const {
  std::lock_guard lock(mu_);
  SharedStreamTotals t = shared_ended_;
  t.active = shared_active_.size();
  for (const auto& [key, shared] : shared_active_) {
    const SharedStream::Stats s = shared->stats();
    add_shared(t, s);
    t.history_bytes += s.history_bytes;
  }
  return t;
}

boost::json::object StreamRegistry::to_json(size_t limit) const {
  std::vector<std::shared_ptr<StreamEntry>> entries;
  StreamTotals totals;
  {
    std::lock_guard lock(mu_);
    totals = ended_;
    entries.reserve(std::min(limit, active_.size()));
    for (const auto& [id, e] : active_) {
      add_entry(totals, *e);
      if (entries.size() < limit) entries.push_back(e);
    }
  }
  boost::json::object out;
  out["active"] = entries.size();
  boost::json::object ended;
  for (size_t i = 0; i < kStreamOutcomeCount; ++i) {
    ended[to_string(static_cast<StreamOutcome>(i))] = totals.ended[i];
  }
  out["started"] = totals.started;
  out["ended"] = std::move(ended);
  out["upstream_bytes"] = totals.upstream_bytes;
  out["client_bytes"] = totals.client_bytes;
  out["events"] = totals.events;
  out["throttled_seconds"] = static_cast<double>(totals.throttled_ns) / 1e9;
  const SharedStreamTotals shared = shared_totals();
  boost::json::object sj;
  sj["active"] = shared.active;
  sj["started"] = shared.started;
  sj["completed"] = shared.completed;
  sj["failed"] = shared.failed;
  sj["abandoned"] = shared.abandoned;
  sj["stored"] = shared.stored;
  sj["joins"] = shared.joins;
  sj["late_joins"] = shared.late_joins;
  sj["replayed_bytes"] = shared.replayed_bytes;
  sj["slow_joiners"] = shared.slow_joiners;
  sj["upstream_bytes"] = shared.upstream_bytes;
  sj["history_bytes"] = shared.history_bytes;
  out["shared"] = std::move(sj);
  boost::json::array streams;
  for (const auto& e : entries) {
    const auto s = e->stream->stats();
    const auto& o = e->stream->options();
    boost::json::object j;
    j["id"] = e->id;
    j["route"] = e->route;
    j["client"] = e->client;
    j["target"] = e->target;
    j["event_stream"] = e->event_stream;
    j["shared"] = e->shared;
    j["slow_client"] = e->policy;
    j["started_unix_ms"] = e->started_unix_ms;
    j["state"] = flow::to_string(s.state);
    j["buffered_chunks"] = s.buffered_chunks;
    j["buffered_bytes"] = s.buffered_bytes;
    j["max_chunks"] = o.buffer_size;
    j["max_bytes"] = o.max_buffered_bytes;
    j["fill_high_water"] = s.max_fill;
    j["upstream_bytes"] = e->upstream_bytes.load(std::memory_order_relaxed);
    j["client_bytes"] = e->client_bytes.load(std::memory_order_relaxed);
    j["events"] = e->events.load(std::memory_order_relaxed);
    j["state_changes"] = s.state_changes;
    j["throttled_seconds"] = seconds(s.total_throttle_time);
    j["producer_wait_seconds"] = seconds(s.producer_wait_time);
    j["overflows"] = s.overflow_count;
    streams.push_back(std::move(j));
  }
  out["streams"] = std::move(streams);
  return out;
}

// ---------------------------------------------------------------------------------------
// pump

namespace {

bool stalled(const error_code& ec) { return ec == http::ClientError::read_timeout; }

// A writer sends what is buffered together, up to about this many bytes per write.
constexpr size_t kWriteBatchBytes = 64 * 1024;

std::string error_event(std::string_view upstream, const error_code& ec) {
  boost::json::object body;
  body["error"] = stalled(ec) ? "upstream_stalled" : "upstream_aborted";
  body["reason"] = "upstream '" + std::string(upstream) + "' " +
                   (stalled(ec) ? "went silent mid-stream: " : "failed mid-stream: ") +
                   ec.message();
  return "event: error\ndata: " + boost::json::serialize(body) + "\n\n";
}

}  // namespace

asio::awaitable<ReadEnd> read_body(http::ClientResponse& response, bool event_stream,
                                   size_t max_chunk, std::atomic<uint64_t>& bytes,
                                   std::atomic<uint64_t>& events, const ChunkSink& sink,
                                   const bool* stop) {
  SseFramer framer;
  std::string partial;  // an event stream's incomplete last event
  // Hands a larger `chunk` over in pieces of at most `max_chunk`; false when refused.
  const auto split = [&](std::string chunk) -> asio::awaitable<bool> {
    while (chunk.size() > max_chunk) {
      std::string head = chunk.substr(0, max_chunk);
      chunk.erase(0, max_chunk);
      if (!co_await sink(std::move(head))) co_return false;
    }
    co_return co_await sink(std::move(chunk));
  };
  const auto stopped = [stop] { return stop != nullptr && *stop; };
  ReadEnd end;
  while (!stopped()) {
    auto piece = co_await response.read_some();
    if (stopped()) break;
    if (!piece) {
      end.how = ReadEnd::How::failed;
      end.error = piece.error();
      co_return end;
    }
    if (piece->empty()) {  // the body ended; an unterminated last event goes as it is
      if (!partial.empty() && !co_await split(std::move(partial))) break;
      end.how = ReadEnd::How::completed;
      co_return end;
    }
    bytes.fetch_add(piece->size(), std::memory_order_relaxed);
    std::string chunk;
    if (event_stream) {
      const uint64_t before = framer.events();
      const size_t complete = framer.feed(*piece);
      if (framer.events() != before) {
        events.fetch_add(framer.events() - before, std::memory_order_relaxed);
      }
      if (partial.empty() && complete == piece->size()) {
        chunk.assign(piece->data(), piece->size());  // the usual case: whole events
      } else {
        partial.append(piece->data(), piece->size());
        if (complete > 0) {
          chunk = partial.substr(0, complete);
          partial.erase(0, complete);
        } else if (partial.size() >= max_chunk) {
          // An event larger than the buffer: forwarded in pieces rather than held whole.
          chunk = std::move(partial);
          partial.clear();
          framer.skip();
        } else {
          continue;
        }
      }
    } else {
      chunk.assign(piece->data(), piece->size());
    }
    if (chunk.size() <= max_chunk) {  // the usual case: one hand-over, no helper frame
      if (!co_await sink(std::move(chunk))) break;
    } else if (!co_await split(std::move(chunk))) {
      break;
    }
  }
  end.how = ReadEnd::How::stopped;
  co_return end;
}

namespace {

// What goes to the client for `plain`: itself, or its coded bytes (possibly none yet); null
// when the codec failed.
class Coder {
 public:
  Coder(http::StreamCompressor* compressor, bool flush_each_chunk)
      : compressor_(compressor), flush_(flush_each_chunk ? http::Flush::sync : http::Flush::none) {}
  const std::string* operator()(const std::string& plain) {
    if (compressor_ == nullptr) return &plain;
    coded_.clear();
    if (compressor_->write(plain, flush_, coded_)) return nullptr;
    return &coded_;
  }

 private:
  http::StreamCompressor* compressor_;
  http::Flush flush_;
  std::string coded_;
};

// Codes and writes `chunk` to the client; false when the client side ended (`result` says
// why).
asio::awaitable<bool> write_out(const std::string& chunk, Coder& code, http::ResponseWriter& writer,
                                StreamEntry& entry, PumpResult& result) {
  const std::string* out = code(chunk);
  if (out == nullptr) {  // the codec failed: the client cannot decode what follows
    result.outcome = StreamOutcome::client_gone;
    writer.abort();
    co_return false;
  }
  if (out->empty()) co_return true;  // the compressor holds it until more comes
  if (co_await writer.write_chunk(*out)) {
    if (result.outcome != StreamOutcome::slow_client) result.outcome = StreamOutcome::client_gone;
    co_return false;
  }
  entry.client_bytes.fetch_add(out->size(), std::memory_order_relaxed);
  co_return true;
}

}  // namespace

asio::awaitable<bool> write_replay(std::span<const SharedStream::Chunk> replay,
                                   http::ResponseWriter& writer, StreamEntry& entry,
                                   http::StreamCompressor* compressor, PumpResult& result) {
  Coder code(compressor, entry.flush_each_chunk);
  std::string batch;  // writes of about kWriteBatchBytes
  for (size_t i = 0; i < replay.size(); ++i) {
    batch += *replay[i];
    if (batch.size() < kWriteBatchBytes && i + 1 < replay.size()) continue;
    if (!co_await write_out(batch, code, writer, entry, result)) co_return false;
    batch.clear();
  }
  co_return true;
}

asio::awaitable<void> deliver(flow::BoundedStream& stream, http::ResponseWriter& writer,
                              StreamEntry& entry, http::StreamCompressor* compressor,
                              PumpResult& result, std::span<const SharedStream::Chunk> replay) {
  if (!co_await write_replay(replay, writer, entry, compressor, result)) co_return;
  Coder code(compressor, entry.flush_each_chunk);
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  while (true) {
    auto chunk = stream.try_pop();
    if (!chunk && chunk.error() == flow::Errc::would_block) {
      chunk = co_await stream.pop();
      // Woken by the reader: let it read what else arrived before this write goes out, so a
      // burst of small upstream writes leaves in one client write, not one each.
      if (chunk) co_await asio::post(executor, asio::use_awaitable);
    }
    if (!chunk) {
      if (chunk.error() == flow::Errc::stream_overflow) {
        result.outcome = StreamOutcome::slow_client;
        writer.reset();
      }
      co_return;  // end_of_stream: the reader is done
    }
    // What else is buffered goes in the same write (one syscall for a burst).
    while (chunk->size() < kWriteBatchBytes) {
      auto more = stream.try_pop();
      if (!more) break;  // nothing now; an end or an error is seen by the next pop
      *chunk += *more;
    }
    if (!co_await write_out(*chunk, code, writer, entry, result)) co_return;
  }
}

asio::awaitable<void> end_client(http::ResponseWriter& writer, PumpResult& result,
                                 bool event_stream, std::string_view upstream_name,
                                 http::StreamCompressor* compressor) {
  // `plain` and the end of a coded stream (its trailer); nullopt when the codec failed (the
  // body must then be cut, never finished).
  const auto tail = [&](const std::string& plain) -> std::optional<std::string> {
    if (compressor == nullptr) return plain;
    std::string out;
    if (!plain.empty() && compressor->write(plain, http::Flush::none, out)) return std::nullopt;
    if (compressor->finish(out)) return std::nullopt;
    return out;
  };
  if (result.outcome == StreamOutcome::completed) {
    const std::optional<std::string> last = tail(std::string());
    if (!last) {
      writer.abort();
      result.outcome = StreamOutcome::client_gone;
    } else if (!last->empty() && co_await writer.write_chunk(*last)) {
      result.outcome = StreamOutcome::client_gone;
    } else if (co_await writer.finish()) {
      result.outcome = StreamOutcome::client_gone;
    }
  } else if (result.upstream_error) {
    if (event_stream) {
      // An event stream ends cleanly with an error event the client's SSE parser sees.
      const std::optional<std::string> event =
          tail(error_event(upstream_name, result.upstream_error));
      if (!event) {
        writer.abort();
      } else if (!co_await writer.write_chunk(*event)) {
        (void)co_await writer.finish();
      }
    } else {
      writer.abort();  // the client sees a cut response, never a complete-looking one
    }
  }
}

asio::awaitable<PumpResult> pump(http::ClientResponse& response, http::ResponseWriter& writer,
                                 const StreamConfig& config, StreamEntry& entry,
                                 std::string_view upstream_name,
                                 http::StreamCompressor* compressor) {
  flow::BoundedStream& stream = *entry.stream;
  response.set_read_timeout(config.stall_timeout);
  PumpResult result;
  bool writer_done = false;  // the client side ended: the reader must stop

  // Reads the upstream and pushes what it read; for an event stream, whole events only.
  auto read = [&]() -> asio::awaitable<void> {
    const ChunkSink push = [&](std::string chunk) -> asio::awaitable<bool> {
      auto pushed = co_await stream.push(std::move(chunk));
      if (!pushed && pushed.error() == flow::Errc::stream_overflow) {
        // The client fell behind the bound under `disconnect`: cut it now, even while its
        // writer waits on a full socket.
        result.outcome = StreamOutcome::slow_client;
        writer.reset();
      }
      co_return pushed.has_value();
    };
    const ReadEnd end =
        co_await read_body(response, entry.event_stream, stream.options().max_buffered_bytes,
                           entry.upstream_bytes, entry.events, push, &writer_done);
    if (end.how == ReadEnd::How::failed) {
      result.upstream_error = end.error;
      result.outcome = stalled(end.error) ? StreamOutcome::stalled : StreamOutcome::upstream_error;
    }
    stream.close();  // the writer drains what is buffered, then sees the end
  };

  // Pops and writes to the client.
  auto write = [&]() -> asio::awaitable<void> {
    const std::span<const SharedStream::Chunk> no_replay;
    co_await deliver(stream, writer, entry, compressor, result, no_replay);
    writer_done = true;
    if (result.outcome == StreamOutcome::client_gone ||
        result.outcome == StreamOutcome::slow_client) {
      stream.cancel();    // a reader waiting for room gives up
      response.cancel();  // a reader waiting on a silent upstream gives up
    }
  };

  // The reader runs beside this coroutine (spawned, so that neither carries a cancellation
  // slot on every operation); this one writes, then waits for the reader to return.
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  bool reader_done = false;
  std::exception_ptr reader_failure;
  asio::steady_timer reader_finished(executor, asio::steady_timer::time_point::max());
  asio::co_spawn(executor, read(), [&](std::exception_ptr e) {
    reader_done = true;
    reader_failure = e;
    if (e) stream.cancel();  // a writer waiting for chunks must not wait forever
    reader_finished.cancel();
  });
  std::exception_ptr writer_failure;
  try {
    co_await write();
  } catch (...) {
    writer_failure = std::current_exception();
    writer_done = true;
    stream.cancel();
    response.cancel();
  }
  while (!reader_done) {
    (void)co_await reader_finished.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  if (writer_failure) std::rethrow_exception(writer_failure);
  if (reader_failure) std::rethrow_exception(reader_failure);
  co_await end_client(writer, result, entry.event_stream, upstream_name, compressor);
  co_return result;
}

asio::awaitable<void> feed_shared(http::ClientResponse& response, SharedStream& shared,
                                  bool event_stream, const StreamConfig& config,
                                  std::atomic<uint64_t>& bytes, std::atomic<uint64_t>& events) {
  response.set_read_timeout(config.stall_timeout);
  // The stream being abandoned stops a read that waits on a silent upstream: the cancel runs
  // on this coroutine's loop, and only while this coroutine still has the response.
  struct Reading {
    http::ClientResponse* response = nullptr;
    bool abandoned = false;  // the read was cancelled because nobody reads the stream
  };
  const auto reading = std::make_shared<Reading>(Reading{&response, false});
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  shared.set_on_abandoned([reading, executor] {
    asio::post(executor, [reading] {
      if (reading->response == nullptr) return;
      reading->abandoned = true;
      reading->response->cancel();
    });
  });
  struct Release {
    const std::shared_ptr<Reading>& reading;
    ~Release() { reading->response = nullptr; }
  } release{reading};
  const ChunkSink append = [&shared](std::string chunk) -> asio::awaitable<bool> {
    co_return shared.append(std::move(chunk));
  };
  const ReadEnd end = co_await read_body(response, event_stream, config.buffer_bytes, bytes, events,
                                         append, nullptr);
  switch (end.how) {
    case ReadEnd::How::completed:
      shared.end(SharedStream::End::completed);
      break;
    case ReadEnd::How::failed:
      // Being abandoned cancels the read: that is not an upstream failure.
      shared.end(reading->abandoned ? SharedStream::End::abandoned : SharedStream::End::failed,
                 end.error);
      break;
    case ReadEnd::How::stopped:
      shared.end(SharedStream::End::abandoned);
      break;
  }
}

asio::awaitable<PumpResult> deliver_shared(SharedStream& shared, SharedStream::Joiner& joiner,
                                           http::ResponseWriter& writer, StreamEntry& entry,
                                           std::string_view upstream_name,
                                           http::StreamCompressor* compressor) {
  PumpResult result;
  bool whole = true;  // the joiner got every round of the history
  while (!joiner.live) {
    // A replay over the buffer's bound: written round by round until the joiner caught up.
    if (!co_await write_replay(joiner.replay, writer, entry, compressor, result)) break;
    if (!shared.catch_up(joiner)) {
      whole = false;
      break;
    }
  }
  if (!whole && shared.state() != SharedStream::End::failed) {
    // The history went (past its bound) before this joiner caught up: it cannot get the
    // whole stream, as a client too slow for it.
    result.outcome = StreamOutcome::slow_client;
    writer.reset();
  } else if (joiner.live) {
    co_await deliver(*joiner.stream, writer, entry, compressor, result, joiner.replay);
    const flow::BoundedStream::Stats st = joiner.stream->stats();
    if (result.outcome == StreamOutcome::client_gone && st.failed && st.overflow_count > 0) {
      result.outcome = StreamOutcome::slow_client;  // the reader cut it at its bound
    }
  }
  if (result.outcome == StreamOutcome::completed) {  // the joiner's stream ended: how?
    switch (shared.state()) {
      case SharedStream::End::completed:
        break;
      case SharedStream::End::failed:
        result.upstream_error = shared.error();
        result.outcome =
            stalled(result.upstream_error) ? StreamOutcome::stalled : StreamOutcome::upstream_error;
        break;
      case SharedStream::End::running:  // cannot be: the stream is closed only at the end
      case SharedStream::End::abandoned:
        result.upstream_error = make_error_code(asio::error::operation_aborted);
        result.outcome = StreamOutcome::upstream_error;
        break;
    }
  }
  co_await end_client(writer, result, entry.event_stream, upstream_name, compressor);
  co_return result;
}

}  // namespace sluice::gateway
