// Broadcaster: the publish/subscribe core of Server-Sent Events (SSE) fan-out, without HTTP.
// A publisher posts an event to a named channel; every subscriber of that channel receives it,
// formatted once as SSE text, through its own bounded queue (a `flow::BoundedStream` the
// gateway pops from and writes to the client). Each channel keeps a short history so that a
// client reconnecting with `Last-Event-ID` resumes without a gap.
//
// Thread-safety: thread-safe. The gateway's worker threads publish, subscribe, sweep and read
// stats concurrently. Locks: one mutex for the channel table, taken only to find, create or
// remove a channel (never while a channel is locked), and one mutex per channel, held while an
// event is appended to its history and offered to each of its subscribers, so every subscriber
// sees the channel's events in publish order, and a subscribe's replay is atomic with respect
// to publishes (no gap, no duplicate). Each subscriber's queue has its own lock (taken under the
// channel's). Nothing here suspends or blocks on a client: `publish` uses the non-suspending
// `BoundedStream::offer`, so a slow subscriber never holds up the publisher or the others.
//
// Channels are created on first publish or subscribe, and removed by `sweep()` once they have
// had no subscriber for `channel_ttl` (history and id counter with them: a later channel of the
// same name starts again at id 1).
//
// Event ids: per channel, 1, 2, 3, ... unless the publisher supplies one. A supplied id that is
// a decimal integer (digits only, at most `kMaxNumericEventId`) greater than the channel's
// counter advances the counter (the next assigned id follows it); any other supplied id is an
// opaque string and leaves the counter alone.
//
// Bounds, each with its policy and counter (see `BroadcasterOptions`): channels
// (`channel_limit`), subscribers per channel (`subscriber_limit`), history per channel in events
// and bytes (oldest evicted, `history_evicted`), event age (`event_ttl`, `expired_events_cleaned`),
// event size (`event_too_large`), and each subscriber's queue in events and bytes (at the bound
// the subscriber is disconnected, `slow_disconnects`, or loses its oldest events, `dropped`).
// Worst case memory is about max_channels x max_history_bytes plus, per subscriber, queue_bytes.
//
// Cost: `publish` is O(subscribers of the channel): one copy of the event text per subscriber and
// one queue lock each, under the channel's lock. `subscribe` is O(history) (the replay).
// `sweep` and `stats` are O(channels + subscribers), one lock per channel and per subscriber
// queue, the table lock only to copy the channel list: fine every few seconds with 10k
// channels. Lifetime: a `Subscription` may outlive the broadcaster (they share the state; on
// destruction the broadcaster shuts down, closing every subscriber's queue); the clock must
// outlive both.
#pragma once

#include <array>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/flow/bounded_stream.h"

namespace sluice::gateway {

// ---------------------------------------------------------------------------------------------
// Errors

// Why a publish or a subscribe was refused. Each refusal is counted by reason in
// `BroadcasterStats`.
enum class BroadcastErrc {
  // The channel name is empty, longer than `kMaxChannelNameBytes`, or has a character outside
  // `[A-Za-z0-9._:/-]`.
  invalid_channel = 1,
  // The event name or the supplied id contains CR, LF or NUL or is longer than
  // `kMaxSseFieldBytes`, or the supplied id is empty.
  invalid_field,
  // The data is larger than `max_event_bytes` (or the formatted event would not fit a
  // subscriber's queue or the history).
  event_too_large,
  // The channel does not exist and `max_channels` channels already do.
  channel_limit,
  // The channel already has `max_subscribers` subscribers.
  subscriber_limit,
  // `Broadcaster::shutdown()` ran (or the broadcaster was destroyed).
  shut_down,
};
// Number of `BroadcastErrc` values (they run from 1 to this).
inline constexpr size_t kBroadcastErrcCount = 6;

[[nodiscard]] std::string_view to_string(BroadcastErrc e) noexcept;

// The category of `BroadcastErrc` ("sluice.broadcast").
[[nodiscard]] const boost::system::error_category& broadcast_category() noexcept;

[[nodiscard]] inline boost::system::error_code make_error_code(BroadcastErrc e) noexcept {
  return {static_cast<int>(e), broadcast_category()};
}

// ---------------------------------------------------------------------------------------------
// SSE text

// Longest channel name, in bytes.
inline constexpr size_t kMaxChannelNameBytes = 200;
// Longest event name or supplied event id, in bytes.
inline constexpr size_t kMaxSseFieldBytes = 256;
// Largest id that counts as numeric (2^53 - 1: still exact in a JavaScript number).
inline constexpr uint64_t kMaxNumericEventId = (uint64_t{1} << 53) - 1;

// True if `name` is a valid channel name: 1 to `kMaxChannelNameBytes` bytes of
// `A-Z a-z 0-9 . _ : / -`.
[[nodiscard]] bool is_valid_channel_name(std::string_view name) noexcept;

// The numeric value of an event id: digits only (no sign, no space), at most
// `kMaxNumericEventId`; nullopt otherwise.
[[nodiscard]] std::optional<uint64_t> parse_numeric_event_id(std::string_view id) noexcept;

// One event as SSE text: `id: <id>\n` (if `id` is not empty), `event: <event>\n` (if `event`
// is not empty), one `data: <line>\n` per line of `data` (split at LF, CRLF and CR; "" is one
// empty line, a trailing line end gives a last empty line, so the client's data is `data`
// with its line ends normalised to LF), then a blank line. `id` and `event` must not contain
// CR, LF or NUL (the caller validates). Note: browsers dispatch no event whose data is empty,
// but they do record its id.
[[nodiscard]] std::string format_sse_event(std::string_view id, std::string_view event,
                                           std::string_view data);

// ---------------------------------------------------------------------------------------------
// Options and figures

// What happens to a subscriber whose queue is full when an event arrives.
enum class SlowClientPolicy {
  // Its queue fails with `flow::Errc::stream_overflow` (queued events discarded): the gateway's
  // pop sees the error and closes the connection; the client may reconnect with Last-Event-ID.
  disconnect,
  // Its oldest queued events are discarded until the new one fits (a lossy live feed).
  drop_oldest,
};

[[nodiscard]] std::string_view to_string(SlowClientPolicy policy) noexcept;
// "disconnect" or "drop_oldest"; nullopt for anything else.
[[nodiscard]] std::optional<SlowClientPolicy> parse_slow_client_policy(std::string_view text);

// Fixed at construction.
struct BroadcasterOptions {
  // Most channels at once; publishing or subscribing to one more fails with `channel_limit`.
  size_t max_channels = 10000;
  // Most subscribers of one channel; one more fails with `subscriber_limit`.
  size_t max_subscribers = 10000;
  // Most events kept per channel for Last-Event-ID replay (0: none kept); oldest evicted.
  size_t max_history = 500;
  // Most bytes of SSE text kept per channel for replay (>= 1); oldest evicted.
  size_t max_history_bytes = size_t{1} << 20;
  // Events this old or older are not replayed and are removed by `sweep()`; 0: no expiry.
  Duration event_ttl = std::chrono::seconds(300);
  // A channel with no subscriber is removed by `sweep()` once it has been idle this long (since
  // its last subscriber left, its last publish, or its creation, whichever is latest). > 0.
  Duration channel_ttl = std::chrono::seconds(1800);
  // Bound of each subscriber's queue, in events; >= max_history (a full replay must fit).
  size_t queue_events = 1000;
  // Bound of each subscriber's queue, in bytes of SSE text; >= max_history_bytes.
  size_t queue_bytes = size_t{1} << 20;
  // What happens to a subscriber whose queue is full.
  SlowClientPolicy slow_client = SlowClientPolicy::disconnect;
  // Largest `data` of one event, in bytes (>= 1, <= max_history_bytes and queue_bytes);
  // larger fails with `event_too_large`.
  size_t max_event_bytes = size_t{64} << 10;

  // Empty when the options are usable, otherwise what is wrong (for a person to read).
  [[nodiscard]] std::string validate() const;
};

// What a publisher sends.
struct PublishRequest {
  // The event's data: any bytes, split into `data:` lines at LF, CRLF and CR.
  std::string data{};
  // The event type (`event:` line); empty: none (the client's default, "message").
  std::string event{};
  // The event's id; nullopt: the channel's next integer (see the header comment).
  std::optional<std::string> id{};
};

// What became of a published event.
struct Published {
  // The event's id (assigned or supplied).
  std::string id;
  // Subscribers whose queue took the event.
  size_t delivered = 0;
  // Of those, subscribers that lost older queued events to make room (drop_oldest).
  size_t dropped_oldest = 0;
  // Subscribers disconnected because their queue was full (disconnect); they did not get it.
  size_t disconnected = 0;
};

// What one `sweep()` removed.
struct SweepReport {
  size_t channels_scanned = 0;  // channels visited
  size_t expired_events = 0;    // history events event_ttl old or older
  size_t dead_subscribers = 0;  // registered subscribers whose queue had ended
  size_t expired_channels = 0;  // channels idle (no subscriber) for channel_ttl
};

// Memory estimate constants (bytes): see `BroadcasterStats::memory_estimate_bytes`.
// Per history event beyond its text: the entry (id, text and time) in its deque slot.
inline constexpr size_t kEventOverheadBytes = 128;
// Per channel beyond its name: the table node, the channel (locks, counters, empty history
// deque block, subscriber list).
inline constexpr size_t kChannelOverheadBytes = 1024;
// Per subscriber: the `Subscription` with its `flow::BoundedStream` and empty deque block.
inline constexpr size_t kSubscriberOverheadBytes = 2048;
// Per event waiting in a subscriber's queue beyond its text: the string in its deque slot.
inline constexpr size_t kQueuedEventOverheadBytes = 48;

// The broadcaster's figures. Suggested metric names: `sluice_broadcast_<field>`, counters with
// `_total`.
struct BroadcasterStats {
  // Gauges, read channel by channel (each channel's figures are consistent with each other).
  size_t channels = 0;        // channels now
  size_t subscribers = 0;     // registered subscribers now
  size_t history_events = 0;  // events held in histories
  size_t history_bytes = 0;   // their SSE text bytes
  size_t queued_events = 0;   // events waiting in registered subscribers' queues
  size_t queued_bytes = 0;    // their bytes
  // history_bytes + history_events x kEventOverheadBytes
  //   + sum over channels of (kChannelOverheadBytes + name size)
  //   + queued_bytes + queued_events x kQueuedEventOverheadBytes
  //   + subscribers x kSubscriberOverheadBytes.
  // An estimate of what the broadcaster holds (allocator slack not included).
  size_t memory_estimate_bytes = 0;

  // Counters since construction.
  uint64_t channels_created = 0;  // channels created by a publish or a subscribe
  uint64_t published = 0;         // events accepted by publish
  uint64_t delivered = 0;         // (event, subscriber) pairs queued by publish
  uint64_t replayed = 0;          // events queued by Last-Event-ID replays
  uint64_t dropped = 0;           // events slow subscribers lost: discarded from their queue (both
                                  // policies) plus the event that did not fit (disconnect)
  uint64_t slow_disconnects = 0;  // subscribers disconnected at their queue's bound
  // Subscriptions registered; at rest, subscribers + unsubscribes + dead_subscribers_cleaned +
  // slow_disconnects.
  uint64_t subscribes = 0;
  uint64_t unsubscribes = 0;     // subscriptions ended by close(), destruction or shutdown
  uint64_t history_evicted = 0;  // history events evicted by max_history / max_history_bytes
  std::array<uint64_t, kBroadcastErrcCount> rejected_publishes{};   // by BroadcastErrc - 1
  std::array<uint64_t, kBroadcastErrcCount> rejected_subscribes{};  // by BroadcastErrc - 1

  // Cleanup.
  uint64_t expired_events_cleaned = 0;    // events removed past event_ttl (sweep, publish,
                                          // subscribe)
  uint64_t dead_subscribers_cleaned = 0;  // subscribers removed as dead: mark_dead(), queue
                                          // found ended by sweep or publish
  uint64_t channels_expired = 0;          // channels removed after channel_ttl
  uint64_t cleanup_runs = 0;              // sweeps run
  TimePoint last_cleanup{};               // when the last sweep ran (TimePoint{}: never)

  [[nodiscard]] uint64_t rejected_publishes_for(BroadcastErrc e) const noexcept {
    return rejected_publishes[static_cast<size_t>(e) - 1];
  }
  [[nodiscard]] uint64_t rejected_subscribes_for(BroadcastErrc e) const noexcept {
    return rejected_subscribes[static_cast<size_t>(e) - 1];
  }
};

// One channel, as the admin API shows it.
struct ChannelInfo {
  std::string name;
  size_t subscribers = 0;               // registered subscribers
  size_t events = 0;                    // events in its history
  size_t bytes = 0;                     // their bytes
  uint64_t last_id = 0;                 // the id counter (the last assigned or advancing id)
  std::string last_event_id;            // the id of the last published event ("" if none)
  uint64_t published = 0;               // events published to it
  std::optional<TimePoint> idle_since;  // since when it has had no subscriber (nullopt: has some)
};

// ---------------------------------------------------------------------------------------------
// Broadcaster and Subscription

namespace internal {
struct BroadcastState;
struct BroadcastChannel;
}  // namespace internal

// One subscriber of one channel: its queue of SSE text and its registration. Destroying it
// (or `close()`, or `mark_dead()`) unsubscribes. Thread-safe; owned by the gateway's session
// through the `shared_ptr` that `subscribe` returns. As for any `flow::BoundedStream`, destroy
// it only once no pop is pending on its stream (cancel the pop first).
class Subscription {
 public:
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // The subscriber's queue: pop SSE chunks (one event each) and write them to the client. A
  // pop fails with `flow::Errc::stream_overflow` once the subscriber was disconnected as slow,
  // with `end_of_stream` after `close()` or shutdown (once drained), and with
  // `stream_cancelled` after `mark_dead()`. Do not push to it.
  [[nodiscard]] flow::BoundedStream& stream() noexcept { return stream_; }
  // A process-unique number (1, 2, ...) for logs.
  [[nodiscard]] uint64_t id() const noexcept { return id_; }
  [[nodiscard]] const std::string& channel() const noexcept { return channel_name_; }
  // Events queued by the Last-Event-ID replay when it subscribed.
  [[nodiscard]] size_t replayed() const noexcept { return replayed_; }

  // Unsubscribes now (no more events) and closes the queue: the consumer drains what is queued,
  // then gets `end_of_stream`. Idempotent.
  void close();
  // The subscriber's connection vanished (e.g. a heartbeat write failed): unsubscribes now,
  // cancels the queue (queued events discarded), and counts it as a dead subscriber removed.
  // Idempotent; no effect after `close()`.
  void mark_dead();
  // Called once (on the publisher's thread, outside every lock) when a publish disconnects
  // this subscriber as slow: its consumer may be stuck writing to a client that reads nothing
  // and must be cut from there. Not called when that happened before this call (the queue's
  // pop reports it).
  void set_on_disconnected(std::function<void()> callback);

 private:
  friend class Broadcaster;
  friend struct internal::BroadcastChannel;
  enum class Leave { normal, dead };
  static constexpr size_t kNotRegistered = SIZE_MAX;

  Subscription(std::shared_ptr<internal::BroadcastState> state,
               std::shared_ptr<internal::BroadcastChannel> channel, std::string channel_name,
               uint64_t id, flow::BoundedStreamOptions queue, const base::Clock& clock);
  // Removes the registration if any; true if this call removed it.
  bool leave(Leave how);

  std::shared_ptr<internal::BroadcastState> state_;
  std::shared_ptr<internal::BroadcastChannel> channel_;  // set before it is registered
  const std::string channel_name_;
  const uint64_t id_;
  flow::BoundedStream stream_;
  size_t replayed_ = 0;  // written before `subscribe` returns it
  // Guarded by the channel's mutex:
  size_t slot_ = kNotRegistered;  // index in the channel's subscriber list
  uint64_t dropped_seen_ = 0;     // the queue's dropped_chunks already counted in `dropped`
  std::function<void()> on_disconnected_;
};

class Broadcaster {
 public:
  // Aborts (SLUICE_CHECK) on invalid options: call `options.validate()` first on user input.
  explicit Broadcaster(BroadcasterOptions options,
                       const base::Clock& clock = base::SteadyClock::instance());
  // Shuts down (see `shutdown()`).
  ~Broadcaster();
  Broadcaster(const Broadcaster&) = delete;
  Broadcaster& operator=(const Broadcaster&) = delete;

  // Publishes one event to `channel` (created if need be). The event is formatted once, stored
  // in the channel's history (oldest evicted past the bounds) and offered to every subscriber,
  // in publish order. Errors: invalid_channel, invalid_field, event_too_large, channel_limit,
  // shut_down.
  [[nodiscard]] boost::system::result<Published> publish(std::string_view channel,
                                                         PublishRequest request);

  // Registers a subscriber of `channel` (created if need be). With `last_event_id`, the events
  // the client missed are queued first, atomically with respect to publishes (no gap, no
  // duplicate):
  //   - the id is in the history (the most recent event with it): every event after it;
  //   - otherwise, if the id is numeric (`parse_numeric_event_id`): the events whose numeric
  //     id is greater, in history order (events with non-numeric ids are skipped);
  //   - otherwise (unknown, e.g. from an expired channel's other ids): nothing.
  // Events event_ttl old or older are never replayed. Without `last_event_id`: only new events.
  // Errors: invalid_channel, channel_limit, subscriber_limit, shut_down.
  [[nodiscard]] boost::system::result<std::shared_ptr<Subscription>> subscribe(
      std::string_view channel, std::optional<std::string_view> last_event_id = std::nullopt);

  // Removes events event_ttl old or older, registered subscribers whose queue has ended (failed,
  // cancelled or closed from outside), and channels idle for channel_ttl; counts them. Call it
  // every few seconds from one timer; concurrent calls are serialised.
  SweepReport sweep();

  // Offers `comment` (an SSE comment such as ": heartbeat\n\n") to every subscriber with an
  // empty queue, in every channel that sent nothing (no publish, no heartbeat) for `idle`; the
  // consumer writes it, or finds its client gone. Not an event: no id, no history, not counted
  // as delivered. Returns how many queues took it. Call it every fraction of `idle` from one
  // timer; O(channels + subscribers of idle channels).
  size_t heartbeat(Duration idle, std::string_view comment);

  // Refuses every later publish and subscribe (`shut_down`), closes every subscriber's queue
  // (consumers drain, then get end_of_stream) and drops every channel. Idempotent.
  void shutdown();

  // O(channels + subscribers); for the metrics scrape and the admin API, not per request.
  [[nodiscard]] BroadcasterStats stats() const;
  // Up to `limit` channels, most subscribers first (then by name).
  [[nodiscard]] std::vector<ChannelInfo> channels(size_t limit) const;
  // One channel; nullopt if it does not exist.
  [[nodiscard]] std::optional<ChannelInfo> channel(std::string_view name) const;

  [[nodiscard]] const BroadcasterOptions& options() const noexcept;

 private:
  std::shared_ptr<internal::BroadcastState> state_;
};

}  // namespace sluice::gateway

template <>
struct boost::system::is_error_code_enum<sluice::gateway::BroadcastErrc> : std::true_type {};
