#include "sluice/gateway/broadcaster.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <deque>
#include <functional>
#include <mutex>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "sluice/base/check.h"
#include "sluice/base/hash.h"
#include "sluice/flow/error.h"

namespace sluice::gateway {

// ---------------------------------------------------------------------------------------------
// Errors

std::string_view to_string(BroadcastErrc e) noexcept {
  switch (e) {
    case BroadcastErrc::invalid_channel:
      return "invalid_channel";
    case BroadcastErrc::invalid_field:
      return "invalid_field";
    case BroadcastErrc::event_too_large:
      return "event_too_large";
    case BroadcastErrc::channel_limit:
      return "channel_limit";
    case BroadcastErrc::subscriber_limit:
      return "subscriber_limit";
    case BroadcastErrc::shut_down:
      return "shut_down";
  }
  return "unknown";
}

namespace {

class BroadcastCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "sluice.broadcast"; }
  std::string message(int value) const override {
    switch (static_cast<BroadcastErrc>(value)) {
      case BroadcastErrc::invalid_channel:
        return "invalid channel name (1 to 200 bytes of A-Z a-z 0-9 . _ : / -)";
      case BroadcastErrc::invalid_field:
        return "invalid event name or id (CR, LF or NUL, too long, or an empty id)";
      case BroadcastErrc::event_too_large:
        return "event data larger than max_event_bytes";
      case BroadcastErrc::channel_limit:
        return "too many channels (max_channels)";
      case BroadcastErrc::subscriber_limit:
        return "too many subscribers on the channel (max_subscribers)";
      case BroadcastErrc::shut_down:
        return "broadcaster shut down";
    }
    return "unknown sluice.broadcast error";
  }
};

}  // namespace

const boost::system::error_category& broadcast_category() noexcept {
  static const BroadcastCategory category;
  return category;
}

// ---------------------------------------------------------------------------------------------
// SSE text

bool is_valid_channel_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > kMaxChannelNameBytes) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '/' || c == '-';
  });
}

std::optional<uint64_t> parse_numeric_event_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 20) return std::nullopt;
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), value);
  // from_chars accepts no sign for unsigned types and stops at the first non-digit.
  if (ec != std::errc() || end != id.data() + id.size()) return std::nullopt;
  if (value > kMaxNumericEventId) return std::nullopt;
  return value;
}

namespace {

// A field value (event name, id) that SSE can carry on one line.
bool is_valid_field(std::string_view value) noexcept {
  return value.size() <= kMaxSseFieldBytes &&
         value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Appends `event: ...`, the `data: ...` lines and the blank line (everything after `id:`).
void append_sse_body(std::string& out, std::string_view event, std::string_view data) {
  // One pass to size the text exactly: each line end (LF, CR or CRLF) becomes "\ndata: ".
  size_t lines = 1;
  size_t line_end_bytes = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\n' || data[i] == '\r') {
      ++lines;
      const bool crlf = data[i] == '\r' && i + 1 < data.size() && data[i + 1] == '\n';
      line_end_bytes += crlf ? 2 : 1;
      if (crlf) ++i;
    }
  }
  constexpr std::string_view kData = "data: ";
  size_t size = lines * (kData.size() + 1) + (data.size() - line_end_bytes) + 1;
  if (!event.empty()) size += 8 + event.size();  // "event: " + name + "\n"
  out.reserve(out.size() + size);
  if (!event.empty()) {
    out.append("event: ").append(event).push_back('\n');
  }
  size_t start = 0;
  for (size_t i = 0; i <= data.size(); ++i) {
    if (i < data.size() && data[i] != '\n' && data[i] != '\r') continue;
    out.append(kData).append(data.substr(start, i - start)).push_back('\n');
    if (i < data.size() && data[i] == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
    start = i + 1;
  }
  out.push_back('\n');
}

void append_sse_id(std::string& out, std::string_view id) {
  out.append("id: ").append(id).push_back('\n');
}

}  // namespace

std::string format_sse_event(std::string_view id, std::string_view event, std::string_view data) {
  std::string out;
  if (!id.empty()) {
    out.reserve(id.size() + 5);
    append_sse_id(out, id);
  }
  append_sse_body(out, event, data);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Options

std::string_view to_string(SlowClientPolicy policy) noexcept {
  switch (policy) {
    case SlowClientPolicy::disconnect:
      return "disconnect";
    case SlowClientPolicy::drop_oldest:
      return "drop_oldest";
  }
  return "unknown";
}

std::optional<SlowClientPolicy> parse_slow_client_policy(std::string_view text) {
  if (text == "disconnect") return SlowClientPolicy::disconnect;
  if (text == "drop_oldest") return SlowClientPolicy::drop_oldest;
  return std::nullopt;
}

std::string BroadcasterOptions::validate() const {
  if (max_channels == 0) return "max_channels: must be at least 1";
  if (max_subscribers == 0) return "max_subscribers: must be at least 1";
  if (max_history_bytes == 0) return "max_history_bytes: must be at least 1";
  if (event_ttl < Duration::zero()) return "event_ttl: must not be negative (0: no expiry)";
  if (channel_ttl <= Duration::zero()) return "channel_ttl: must be positive";
  if (queue_events == 0) return "queue_events: must be at least 1";
  if (queue_bytes == 0) return "queue_bytes: must be at least 1";
  if (queue_events < max_history) {
    return "queue_events (" + std::to_string(queue_events) + ") must be at least max_history (" +
           std::to_string(max_history) + "): a full replay must fit a subscriber's queue";
  }
  if (queue_bytes < max_history_bytes) {
    return "queue_bytes (" + std::to_string(queue_bytes) +
           ") must be at least max_history_bytes (" + std::to_string(max_history_bytes) +
           "): a full replay must fit a subscriber's queue";
  }
  if (max_event_bytes == 0) return "max_event_bytes: must be at least 1";
  if (max_event_bytes > max_history_bytes) {
    return "max_event_bytes (" + std::to_string(max_event_bytes) +
           ") must be at most max_history_bytes (" + std::to_string(max_history_bytes) + ")";
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// State

namespace internal {

// One event in a channel's history.
struct BroadcastEvent {
  std::string id;                      // as sent in the `id:` line
  std::string text;                    // the whole SSE text, as offered to subscribers
  TimePoint published;                 // for event_ttl
  std::optional<uint64_t> numeric_id;  // for the numeric Last-Event-ID replay
};

// What offering one event to a channel's subscribers did.
struct FanOut {
  size_t delivered = 0;       // queues that took it
  size_t dropped_oldest = 0;  // of those, queues that dropped older events for it
  size_t disconnected = 0;    // queues that failed at their bound (disconnect)
  size_t dead = 0;            // queues found ended (closed or cancelled from outside)
  uint64_t dropped = 0;       // events lost by slow subscribers
  // The disconnected subscribers' callbacks, to call once the channel is unlocked.
  std::vector<std::function<void()>> cut;
};

struct BroadcastChannel {
  BroadcastChannel(std::string channel_name, TimePoint now)
      : name(std::move(channel_name)), idle_since(now) {}

  // Offers a copy of `text` to every subscriber, in list order. A full queue never waits: it
  // fails (disconnect) or drops its oldest (drop_oldest). Subscribers whose queue failed or had
  // ended are unregistered. Requires mu.
  FanOut offer_locked(const std::string& text, TimePoint now) {
    FanOut out;
    for (size_t i = 0; i < subscribers.size();) {
      Subscription* sub = subscribers[i];
      const auto r = sub->stream_.offer(text);
      if (r) {
        ++out.delivered;
        if (*r == flow::PushOutcome::queued_after_dropping_oldest) {
          ++out.dropped_oldest;
          // Only offers drop from this queue, all under mu: the difference is exact.
          const uint64_t seen = sub->stream_.stats().dropped_chunks;
          out.dropped += seen - sub->dropped_seen_;
          sub->dropped_seen_ = seen;
        }
        ++i;
        continue;
      }
      if (r.error() == flow::Errc::stream_overflow) {
        ++out.disconnected;
        out.dropped += 1 + sub->stream_.stats().discarded_chunks;  // this event + its queue
        if (sub->on_disconnected_) out.cut.push_back(std::move(sub->on_disconnected_));
      } else {
        ++out.dead;
      }
      remove_locked(sub, now);  // the last subscriber moves into slot i
    }
    return out;
  }

  // Queues into `sub` (new, not registered yet) the events a client that saw `last_event_id`
  // missed (see `Broadcaster::subscribe`); returns how many. Always fits the new queue:
  // history <= max_history <= queue_events, history_bytes <= queue_bytes. Requires mu.
  size_t replay_locked(Subscription& sub, std::string_view last_event_id) {
    size_t replayed = 0;
    auto replay = [&](const BroadcastEvent& e) {
      const auto r = sub.stream_.offer(e.text);
      SLUICE_CHECK(r && *r == flow::PushOutcome::queued, "a replay must fit a new queue");
      ++replayed;
    };
    // The most recent event with that id, searched from the newest (the usual case: a client
    // that was disconnected a moment ago).
    const auto match = std::find_if(history.rbegin(), history.rend(),
                                    [&](const BroadcastEvent& e) { return e.id == last_event_id; });
    if (match != history.rend()) {
      for (auto it = match.base(); it != history.end(); ++it) replay(*it);  // those after it
    } else if (const auto numeric = parse_numeric_event_id(last_event_id)) {
      for (const BroadcastEvent& e : history) {
        if (e.numeric_id && *e.numeric_id > *numeric) replay(e);
      }
    }
    return replayed;
  }

  // Appends `event` (its text at most max_history_bytes, so it is never evicted itself) and
  // evicts the oldest past the bounds; returns how many were evicted. Requires mu.
  size_t append_history_locked(BroadcastEvent event, const BroadcasterOptions& opt) {
    if (opt.max_history == 0) return 0;
    history_bytes += event.text.size();
    history.push_back(std::move(event));
    size_t evicted = 0;
    while (history.size() > opt.max_history || history_bytes > opt.max_history_bytes) {
      history_bytes -= history.front().text.size();
      history.pop_front();
      ++evicted;
    }
    return evicted;
  }

  // Registers `s` at the end of the list. Requires mu.
  void add_locked(Subscription* s) {
    s->slot_ = subscribers.size();
    subscribers.push_back(s);
  }
  // Unregisters `s` (the last subscriber takes its slot). Requires mu.
  void remove_locked(Subscription* s, TimePoint now) {
    const size_t slot = s->slot_;
    SLUICE_CHECK(slot < subscribers.size() && subscribers[slot] == s,
                 "Broadcaster subscriber list out of step with its subscriptions");
    Subscription* last = subscribers.back();
    subscribers[slot] = last;
    last->slot_ = slot;
    subscribers.pop_back();
    s->slot_ = Subscription::kNotRegistered;
    if (subscribers.empty()) idle_since = std::max(idle_since, now);
  }

  const std::string name;
  std::mutex mu;
  // Guarded by mu:
  bool removed = false;  // out of the table (expired or shut down): look the name up again
  std::deque<BroadcastEvent> history;
  size_t history_bytes = 0;
  uint64_t last_id = 0;       // the id counter
  std::string last_event_id;  // the last published event's id
  uint64_t published = 0;
  std::vector<Subscription*> subscribers;  // each unregisters itself before it is destroyed
  TimePoint idle_since;   // last publish, last unsubscribe leaving none, or creation
  TimePoint last_sent{};  // last publish or heartbeat offered to the subscribers
};

// A relaxed counter: read only for stats.
class Counter {
 public:
  void add(uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  [[nodiscard]] uint64_t get() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Channel names come from clients: the table hashes them with the per-process seed.
struct ChannelNameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept {
    return base::hash_string(s, base::process_seed());
  }
};

struct BroadcastState {
  BroadcastState(const BroadcasterOptions& o, const base::Clock& c) : options(o), clock(c) {}

  const BroadcasterOptions options;
  const base::Clock& clock;

  // Guards `channels` and `shut_down`. Never taken while a channel's mutex is held.
  mutable std::mutex mu;
  std::unordered_map<std::string, std::shared_ptr<BroadcastChannel>, ChannelNameHash,
                     std::equal_to<>>
      channels;
  bool shut_down = false;

  std::mutex sweep_mu;  // serialises sweeps
  std::atomic<uint64_t> next_subscriber_id{1};

  Counter channels_created;
  Counter published;
  Counter delivered;
  Counter replayed;
  Counter dropped;
  Counter slow_disconnects;
  Counter subscribes;
  Counter unsubscribes;
  Counter history_evicted;
  std::array<Counter, kBroadcastErrcCount> rejected_publishes;
  std::array<Counter, kBroadcastErrcCount> rejected_subscribes;
  Counter expired_events_cleaned;
  Counter dead_subscribers_cleaned;
  Counter channels_expired;
  Counter cleanup_runs;
  std::atomic<Duration::rep> last_cleanup_ns{0};
};

}  // namespace internal

using internal::BroadcastChannel;
using internal::BroadcastEvent;
using internal::BroadcastState;
using internal::FanOut;

// The constants that `memory_estimate_bytes` uses must cover what they stand for.
static_assert(sizeof(BroadcastEvent) <= kEventOverheadBytes);
// Plus a table node and libstdc++'s empty deque (a 512-byte block and its map).
static_assert(sizeof(BroadcastChannel) + 64 + 576 <= kChannelOverheadBytes);
// Plus the shared_ptr control block and the queue's empty deque.
static_assert(sizeof(Subscription) + 32 + 576 <= kSubscriberOverheadBytes);
static_assert(sizeof(std::string) + 16 <= kQueuedEventOverheadBytes);

namespace {

using Channels = std::vector<std::shared_ptr<BroadcastChannel>>;

size_t index_of(BroadcastErrc e) noexcept { return static_cast<size_t>(e) - 1; }

// Removes the history's events that are event_ttl old or older (oldest first: publish order is
// time order). Requires ch.mu.
size_t expire_events_locked(const BroadcastState& st, BroadcastChannel& ch, TimePoint now) {
  if (st.options.event_ttl <= Duration::zero()) return 0;
  size_t n = 0;
  while (!ch.history.empty() && now - ch.history.front().published >= st.options.event_ttl) {
    ch.history_bytes -= ch.history.front().text.size();
    ch.history.pop_front();
    ++n;
  }
  return n;
}

// The channel named `name`, created if need be; nullptr and `why` if it cannot be.
std::shared_ptr<BroadcastChannel> find_or_create(BroadcastState& st, std::string_view name,
                                                 BroadcastErrc& why) {
  std::lock_guard lock(st.mu);
  if (st.shut_down) {
    why = BroadcastErrc::shut_down;
    return nullptr;
  }
  if (auto it = st.channels.find(name); it != st.channels.end()) return it->second;
  if (st.channels.size() >= st.options.max_channels) {
    why = BroadcastErrc::channel_limit;
    return nullptr;
  }
  auto ch = std::make_shared<BroadcastChannel>(std::string(name), st.clock.now());
  st.channels.emplace(ch->name, ch);
  st.channels_created.add();
  return ch;
}

// Every channel in the table now (the table lock is held only for the copy).
Channels snapshot(const BroadcastState& st) {
  Channels out;
  std::lock_guard lock(st.mu);
  out.reserve(st.channels.size());
  for (const auto& [name, ch] : st.channels) out.push_back(ch);
  return out;
}

// Requires ch.mu.
ChannelInfo info_locked(const BroadcastChannel& ch) {
  ChannelInfo info;
  info.name = ch.name;
  info.subscribers = ch.subscribers.size();
  info.events = ch.history.size();
  info.bytes = ch.history_bytes;
  info.last_id = ch.last_id;
  info.last_event_id = ch.last_event_id;
  info.published = ch.published;
  if (ch.subscribers.empty()) info.idle_since = ch.idle_since;
  return info;
}

bool queue_ended(const flow::BoundedStream& stream) {
  const auto s = stream.stats();
  return s.failed || s.closed;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Subscription

Subscription::Subscription(std::shared_ptr<internal::BroadcastState> state,
                           std::shared_ptr<internal::BroadcastChannel> channel,
                           std::string channel_name, uint64_t id, flow::BoundedStreamOptions queue,
                           const base::Clock& clock)
    : state_(std::move(state)),
      channel_(std::move(channel)),
      channel_name_(std::move(channel_name)),
      id_(id),
      stream_(std::move(queue), clock) {}

Subscription::~Subscription() { leave(Leave::normal); }

void Subscription::close() {
  leave(Leave::normal);
  stream_.close();
}

void Subscription::mark_dead() {
  if (leave(Leave::dead)) stream_.cancel();
}

void Subscription::set_on_disconnected(std::function<void()> callback) {
  std::lock_guard lock(channel_->mu);
  if (slot_ != kNotRegistered) on_disconnected_ = std::move(callback);
}

bool Subscription::leave(Leave how) {
  {
    std::lock_guard lock(channel_->mu);
    if (slot_ == kNotRegistered) return false;
    channel_->remove_locked(this, state_->clock.now());
  }
  (how == Leave::dead ? state_->dead_subscribers_cleaned : state_->unsubscribes).add();
  return true;
}

// ---------------------------------------------------------------------------------------------
// Broadcaster

Broadcaster::Broadcaster(BroadcasterOptions options, const base::Clock& clock) {
  const std::string problem = options.validate();
  SLUICE_CHECK(problem.empty(), problem);
  state_ = std::make_shared<BroadcastState>(options, clock);
}

Broadcaster::~Broadcaster() { shutdown(); }

const BroadcasterOptions& Broadcaster::options() const noexcept { return state_->options; }

boost::system::result<Published> Broadcaster::publish(std::string_view channel,
                                                      PublishRequest request) {
  BroadcastState& st = *state_;
  const BroadcasterOptions& opt = st.options;
  auto reject = [&st](BroadcastErrc e) -> boost::system::result<Published> {
    st.rejected_publishes[index_of(e)].add();
    return make_error_code(e);
  };
  if (!is_valid_channel_name(channel)) return reject(BroadcastErrc::invalid_channel);
  if (!is_valid_field(request.event)) return reject(BroadcastErrc::invalid_field);
  if (request.id && (request.id->empty() || !is_valid_field(*request.id))) {
    return reject(BroadcastErrc::invalid_field);
  }
  if (request.data.size() > opt.max_event_bytes) return reject(BroadcastErrc::event_too_large);
  // Everything after the `id:` line, formatted once, outside the channel's lock.
  std::string body;
  append_sse_body(body, request.event, request.data);
  const size_t max_text = opt.max_history > 0 ? opt.max_history_bytes : opt.queue_bytes;

  for (;;) {
    BroadcastErrc why{};
    const std::shared_ptr<BroadcastChannel> found = find_or_create(st, channel, why);
    if (!found) return reject(why);
    BroadcastChannel& ch = *found;
    std::unique_lock lock(ch.mu);
    if (ch.removed) continue;  // expired since the lookup: look it up again
    const TimePoint now = st.clock.now();
    const size_t expired = expire_events_locked(st, ch, now);

    // The id: supplied, or the counter's next value. Nothing is committed before the size check.
    std::string id;
    std::optional<uint64_t> numeric_id;
    uint64_t counter = ch.last_id;
    if (request.id) {
      id = std::move(*request.id);
      numeric_id = parse_numeric_event_id(id);
      if (numeric_id && *numeric_id > counter) counter = *numeric_id;
    } else {
      counter = ch.last_id + 1;
      numeric_id = counter;
      id = std::to_string(counter);
    }
    std::string text;
    text.reserve(id.size() + 5 + body.size());
    append_sse_id(text, id);
    text.append(body);
    if (text.size() > max_text) {
      lock.unlock();
      if (expired > 0) st.expired_events_cleaned.add(expired);
      return reject(BroadcastErrc::event_too_large);
    }
    ch.last_id = counter;
    ch.last_event_id = id;
    ++ch.published;
    ch.idle_since = std::max(ch.idle_since, now);

    FanOut fan = ch.offer_locked(text, now);
    ch.last_sent = now;
    const size_t evicted = ch.append_history_locked({id, std::move(text), now, numeric_id}, opt);
    lock.unlock();
    for (auto& cut : fan.cut) cut();

    st.published.add();
    if (fan.delivered > 0) st.delivered.add(fan.delivered);
    if (fan.dropped > 0) st.dropped.add(fan.dropped);
    if (fan.disconnected > 0) st.slow_disconnects.add(fan.disconnected);
    if (fan.dead > 0) st.dead_subscribers_cleaned.add(fan.dead);
    if (evicted > 0) st.history_evicted.add(evicted);
    if (expired > 0) st.expired_events_cleaned.add(expired);
    return Published{.id = std::move(id),
                     .delivered = fan.delivered,
                     .dropped_oldest = fan.dropped_oldest,
                     .disconnected = fan.disconnected};
  }
}

boost::system::result<std::shared_ptr<Subscription>> Broadcaster::subscribe(
    std::string_view channel, std::optional<std::string_view> last_event_id) {
  BroadcastState& st = *state_;
  const BroadcasterOptions& opt = st.options;
  auto reject = [&st](BroadcastErrc e) -> boost::system::result<std::shared_ptr<Subscription>> {
    st.rejected_subscribes[index_of(e)].add();
    return make_error_code(e);
  };
  if (!is_valid_channel_name(channel)) return reject(BroadcastErrc::invalid_channel);

  // Declared before the channel lock: a refused subscription is destroyed after the unlock (its
  // destructor takes the channel's lock).
  std::shared_ptr<Subscription> sub;
  for (;;) {
    BroadcastErrc why{};
    std::shared_ptr<BroadcastChannel> found = find_or_create(st, channel, why);
    if (!found) return reject(why);
    if (!sub) {
      const flow::BoundedStreamOptions queue{
          .buffer_size = opt.queue_events,
          .max_buffered_bytes = opt.queue_bytes,
          .overflow = opt.slow_client == SlowClientPolicy::drop_oldest
                          ? flow::OverflowPolicy::drop_oldest
                          : flow::OverflowPolicy::fail,
      };
      sub.reset(new Subscription(state_, found, std::string(channel),
                                 st.next_subscriber_id.fetch_add(1, std::memory_order_relaxed),
                                 queue, st.clock));
    } else {
      sub->channel_ = found;  // not registered yet: nobody else sees it
    }
    BroadcastChannel& ch = *found;
    std::unique_lock lock(ch.mu);
    if (ch.removed) continue;  // expired since the lookup: look it up again
    if (ch.subscribers.size() >= opt.max_subscribers) {
      lock.unlock();
      return reject(BroadcastErrc::subscriber_limit);
    }
    const TimePoint now = st.clock.now();
    const size_t expired = expire_events_locked(st, ch, now);

    // The replay, under the same lock as publishes: no gap, no duplicate.
    const size_t replayed = last_event_id ? ch.replay_locked(*sub, *last_event_id) : 0;
    sub->replayed_ = replayed;
    ch.add_locked(sub.get());
    lock.unlock();

    st.subscribes.add();
    if (replayed > 0) st.replayed.add(replayed);
    if (expired > 0) st.expired_events_cleaned.add(expired);
    return sub;
  }
}

SweepReport Broadcaster::sweep() {
  BroadcastState& st = *state_;
  std::lock_guard sweep_lock(st.sweep_mu);
  const Channels all = snapshot(st);
  const TimePoint now = st.clock.now();
  SweepReport report;
  Channels idle;
  for (const auto& ch : all) {
    std::lock_guard lock(ch->mu);
    if (ch->removed) continue;
    ++report.channels_scanned;
    report.expired_events += expire_events_locked(st, *ch, now);
    for (size_t i = 0; i < ch->subscribers.size();) {
      Subscription* sub = ch->subscribers[i];
      if (queue_ended(sub->stream_)) {
        ch->remove_locked(sub, now);  // the last subscriber moves into slot i
        ++report.dead_subscribers;
      } else {
        ++i;
      }
    }
    if (ch->subscribers.empty() && now - ch->idle_since >= st.options.channel_ttl) {
      idle.push_back(ch);
    }
  }
  // Histories of removed channels are freed after the locks are released.
  std::vector<std::deque<BroadcastEvent>> garbage;
  if (!idle.empty()) {
    std::lock_guard table(st.mu);
    for (const auto& ch : idle) {
      std::lock_guard lock(ch->mu);
      // Checked again: a subscribe or publish may have come in since.
      if (ch->removed || !ch->subscribers.empty() ||
          now - ch->idle_since < st.options.channel_ttl) {
        continue;
      }
      ch->removed = true;
      auto it = st.channels.find(ch->name);
      if (it != st.channels.end() && it->second == ch) st.channels.erase(it);
      garbage.emplace_back().swap(ch->history);
      ch->history_bytes = 0;
      ++report.expired_channels;
    }
  }
  st.expired_events_cleaned.add(report.expired_events);
  st.dead_subscribers_cleaned.add(report.dead_subscribers);
  st.channels_expired.add(report.expired_channels);
  st.cleanup_runs.add();
  st.last_cleanup_ns.store(now.time_since_epoch().count(), std::memory_order_relaxed);
  return report;
}

size_t Broadcaster::heartbeat(Duration idle, std::string_view comment) {
  BroadcastState& st = *state_;
  const Channels all = snapshot(st);
  const TimePoint now = st.clock.now();
  const std::string text(comment);
  size_t offered = 0;
  for (const auto& ch : all) {
    std::lock_guard lock(ch->mu);
    if (ch->removed || ch->subscribers.empty() || now - ch->last_sent < idle) continue;
    ch->last_sent = now;
    for (size_t i = 0; i < ch->subscribers.size();) {
      Subscription* sub = ch->subscribers[i];
      // Only an idle queue gets one: a queue holding events is not idle, and a heartbeat
      // must never push an event out of a full one.
      if (sub->stream_.buffered() == 0) {
        const auto r = sub->stream_.offer(text);
        if (!r && r.error() != flow::Errc::would_block &&
            r.error() != flow::Errc::stream_overflow) {
          ch->remove_locked(sub, now);  // ended from outside: the last one moves into slot i
          st.dead_subscribers_cleaned.add();
          continue;
        }
        if (r) ++offered;
      }
      ++i;
    }
  }
  return offered;
}

void Broadcaster::shutdown() {
  BroadcastState& st = *state_;
  Channels all;
  {
    std::lock_guard table(st.mu);
    if (st.shut_down) return;
    st.shut_down = true;
    all.reserve(st.channels.size());
    for (auto& [name, ch] : st.channels) all.push_back(std::move(ch));
    st.channels.clear();
  }
  uint64_t closed = 0;
  std::vector<std::deque<BroadcastEvent>> garbage;
  for (const auto& ch : all) {
    std::lock_guard lock(ch->mu);
    ch->removed = true;
    // Closed under the channel's lock: a subscription cannot be destroyed meanwhile.
    for (Subscription* sub : ch->subscribers) {
      sub->slot_ = Subscription::kNotRegistered;
      sub->stream_.close();
      ++closed;
    }
    ch->subscribers.clear();
    garbage.emplace_back().swap(ch->history);
    ch->history_bytes = 0;
  }
  st.unsubscribes.add(closed);
}

BroadcasterStats Broadcaster::stats() const {
  const BroadcastState& st = *state_;
  BroadcasterStats s;
  size_t channel_bytes = 0;
  for (const auto& ch : snapshot(st)) {
    std::lock_guard lock(ch->mu);
    if (ch->removed) continue;
    ++s.channels;
    channel_bytes += kChannelOverheadBytes + ch->name.size();
    s.subscribers += ch->subscribers.size();
    s.history_events += ch->history.size();
    s.history_bytes += ch->history_bytes;
    for (const Subscription* sub : ch->subscribers) {
      const auto q = sub->stream_.stats();
      s.queued_events += q.buffered_chunks;
      s.queued_bytes += q.buffered_bytes;
    }
  }
  s.memory_estimate_bytes =
      s.history_bytes + s.history_events * kEventOverheadBytes + channel_bytes + s.queued_bytes +
      s.queued_events * kQueuedEventOverheadBytes + s.subscribers * kSubscriberOverheadBytes;
  s.channels_created = st.channels_created.get();
  s.published = st.published.get();
  s.delivered = st.delivered.get();
  s.replayed = st.replayed.get();
  s.dropped = st.dropped.get();
  s.slow_disconnects = st.slow_disconnects.get();
  s.subscribes = st.subscribes.get();
  s.unsubscribes = st.unsubscribes.get();
  s.history_evicted = st.history_evicted.get();
  for (size_t i = 0; i < kBroadcastErrcCount; ++i) {
    s.rejected_publishes[i] = st.rejected_publishes[i].get();
    s.rejected_subscribes[i] = st.rejected_subscribes[i].get();
  }
  s.expired_events_cleaned = st.expired_events_cleaned.get();
  s.dead_subscribers_cleaned = st.dead_subscribers_cleaned.get();
  s.channels_expired = st.channels_expired.get();
  s.cleanup_runs = st.cleanup_runs.get();
  if (s.cleanup_runs > 0) {
    s.last_cleanup = TimePoint(Duration(st.last_cleanup_ns.load(std::memory_order_relaxed)));
  }
  return s;
}

std::vector<ChannelInfo> Broadcaster::channels(size_t limit) const {
  std::vector<ChannelInfo> out;
  const Channels all = snapshot(*state_);
  out.reserve(all.size());
  for (const auto& ch : all) {
    std::lock_guard lock(ch->mu);
    if (!ch->removed) out.push_back(info_locked(*ch));
  }
  auto busiest_first = [](const ChannelInfo& a, const ChannelInfo& b) {
    if (a.subscribers != b.subscribers) return a.subscribers > b.subscribers;
    return a.name < b.name;
  };
  const size_t keep = std::min(limit, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep), out.end(),
                    busiest_first);
  out.resize(keep);
  return out;
}

std::optional<ChannelInfo> Broadcaster::channel(std::string_view name) const {
  std::shared_ptr<BroadcastChannel> ch;
  {
    std::lock_guard table(state_->mu);
    auto it = state_->channels.find(name);
    if (it == state_->channels.end()) return std::nullopt;
    ch = it->second;
  }
  std::lock_guard lock(ch->mu);
  if (ch->removed) return std::nullopt;
  return info_locked(*ch);
}

}  // namespace sluice::gateway
