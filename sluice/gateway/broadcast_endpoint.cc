#include "sluice/gateway/broadcast_endpoint.h"

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <chrono>

#include "sluice/base/check.h"
#include "sluice/base/hash.h"
#include "sluice/flow/error.h"

// GCC 12 at -O2 reports Asio's coroutine frames as mismatched new/delete once inlined (a false
// positive of -Wmismatched-new-delete; see sim_upstream.cc).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace sluice::gateway {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using boost::system::error_code;

namespace {

constexpr std::string_view kHeartbeat = ": heartbeat\n\n";
// A subscriber's queued events are written together up to about this many bytes.
constexpr size_t kBatchBytes = 64 * 1024;

BroadcasterOptions options_of(const BroadcastConfig& c) {
  BroadcasterOptions o;
  o.max_channels = c.max_channels;
  o.max_subscribers = c.max_subscribers;
  o.max_history = c.max_history;
  o.max_history_bytes = c.max_history_bytes;
  o.event_ttl = c.event_ttl;
  o.channel_ttl = c.channel_ttl;
  o.queue_events = c.queue_events;
  o.queue_bytes = c.queue_bytes;
  o.slow_client =
      c.slow_client == "drop_oldest" ? SlowClientPolicy::drop_oldest : SlowClientPolicy::disconnect;
  o.max_event_bytes = c.max_event_bytes;
  return o;
}

std::string reply_json(std::string_view code, std::string_view reason) {
  boost::json::object o;
  o["error"] = code;
  o["reason"] = reason;
  return boost::json::serialize(o);
}

asio::awaitable<BroadcastEndpoint::Outcome> refuse(http::ResponseWriter& w, unsigned status,
                                                   std::string_view code, std::string_view reason) {
  bh::fields headers;
  headers.set(bh::field::content_type, "application/json");
  headers.set(bh::field::cache_control, "no-store");
  if (status == 405) headers.set(bh::field::allow, "GET, POST");
  if (status == 401) headers.set(bh::field::www_authenticate, "Bearer");
  std::string body = reply_json(code, reason);
  const uint64_t bytes = body.size();
  (void)co_await w.send(static_cast<bh::status>(status), std::move(headers), std::move(body));
  co_return BroadcastEndpoint::Outcome{status, bytes};
}

// The status a broadcaster error answers with.
unsigned status_of(const error_code& ec) {
  if (ec.category() != broadcast_category()) return 500;
  switch (static_cast<BroadcastErrc>(ec.value())) {
    case BroadcastErrc::invalid_channel:
    case BroadcastErrc::invalid_field:
      return 400;
    case BroadcastErrc::event_too_large:
      return 413;
    case BroadcastErrc::channel_limit:
    case BroadcastErrc::subscriber_limit:
    case BroadcastErrc::shut_down:
      return 503;
  }
  return 500;
}

double seconds_since(TimePoint t) {
  return std::chrono::duration<double>(base::SteadyClock::instance().now() - t).count();
}

}  // namespace

BroadcastEndpoint::BroadcastEndpoint(const BroadcastConfig& config, AuthCheck auth)
    : config_(config), broadcaster_(options_of(config)), auth_(std::move(auth)) {}

BroadcastEndpoint::~BroadcastEndpoint() { broadcaster_.shutdown(); }

bool BroadcastEndpoint::matches(std::string_view path) const noexcept {
  return path.starts_with(config_.prefix);
}

asio::awaitable<BroadcastEndpoint::Outcome> BroadcastEndpoint::handle(http::Request& request,
                                                                      http::ResponseWriter& w) {
  const std::string_view target = request.target();
  const std::string_view path = target.substr(0, target.find('?'));
  std::string channel(path.substr(config_.prefix.size()));
  if (request.method() == bh::verb::post)
    co_return co_await publish(request, w, std::move(channel));
  if (request.method() == bh::verb::get)
    co_return co_await subscribe(request, w, std::move(channel));
  const std::string why = std::string(request.method_string()) +
                          " is not allowed on a broadcast channel (GET subscribes, POST publishes)";
  co_return co_await refuse(w, 405, "method_not_allowed", why);
}

asio::awaitable<BroadcastEndpoint::Outcome> BroadcastEndpoint::publish(http::Request& request,
                                                                       http::ResponseWriter& w,
                                                                       std::string channel) {
  if (!config_.publish_token.empty()) {
    const auto it = request.find(bh::field::authorization);
    if (it == request.end()) {
      publish_refused_.fetch_add(1, std::memory_order_relaxed);
      co_return co_await refuse(w, 401, "unauthorized",
                                "publishing needs Authorization: Bearer <broadcast.publish_token>");
    }
    const std::string_view value = it->value();
    if (!value.starts_with("Bearer ") ||
        !base::constant_time_equals(value.substr(7), config_.publish_token)) {
      publish_refused_.fetch_add(1, std::memory_order_relaxed);
      co_return co_await refuse(w, 403, "forbidden", "the publish token does not match");
    }
  } else if (!w.peer().address().is_loopback()) {
    publish_refused_.fetch_add(1, std::memory_order_relaxed);
    co_return co_await refuse(w, 403, "forbidden",
                              "only loopback clients may publish when broadcast.publish_token is "
                              "not set");
  }
  PublishRequest event;
  const auto url = boost::urls::parse_origin_form(request.target());
  if (!url) co_return co_await refuse(w, 400, "bad_target", "the target is not a valid URL");
  for (const auto& param : url->params()) {
    if (param.key == "event") {
      event.event = param.value;
    } else if (param.key == "id") {
      event.id = param.value;
    } else {
      const std::string why = "unknown parameter '" + param.key + "' (use event, id)";
      co_return co_await refuse(w, 400, "bad_query", why);
    }
  }
  event.data = std::move(request.body());
  auto published = broadcaster_.publish(channel, std::move(event));
  if (!published) {
    const error_code ec = published.error();
    const std::string why = "channel '" + channel + "': " + ec.message();
    co_return co_await refuse(w, status_of(ec), to_string(static_cast<BroadcastErrc>(ec.value())),
                              why);
  }
  boost::json::object o;
  o["channel"] = channel;
  o["id"] = published->id;
  o["delivered"] = published->delivered;
  o["dropped_oldest"] = published->dropped_oldest;
  o["disconnected"] = published->disconnected;
  std::string body = boost::json::serialize(o);
  const uint64_t bytes = body.size();
  bh::fields headers;
  headers.set(bh::field::content_type, "application/json");
  headers.set(bh::field::cache_control, "no-store");
  (void)co_await w.send(bh::status::ok, std::move(headers), std::move(body));
  co_return Outcome{200, bytes};
}

asio::awaitable<BroadcastEndpoint::Outcome> BroadcastEndpoint::subscribe(http::Request& request,
                                                                         http::ResponseWriter& w,
                                                                         std::string channel) {
  std::optional<std::string> last_event_id;
  if (auto it = request.find("Last-Event-ID"); it != request.end()) {
    last_event_id = std::string(it->value());
  }
  const auto url = boost::urls::parse_origin_form(request.target());
  if (!url) co_return co_await refuse(w, 400, "bad_target", "the target is not a valid URL");
  for (const auto& param : url->params()) {
    if (param.key == "last_event_id") {
      if (!last_event_id) last_event_id = param.value;
    } else {
      const std::string why = "unknown parameter '" + param.key + "' (use last_event_id)";
      co_return co_await refuse(w, 400, "bad_query", why);
    }
  }
  if (!is_valid_channel_name(channel)) {
    const std::string why = "'" + channel + "' is not a channel name (1 to " +
                            std::to_string(kMaxChannelNameBytes) +
                            " bytes of A-Z a-z 0-9 . _ : / -)";
    co_return co_await refuse(w, 400, "invalid_channel", why);
  }
  if (auth_) {
    std::optional<Refusal> refused = co_await auth_(request, channel, w);
    if (refused) {
      subscribe_refused_.fetch_add(1, std::memory_order_relaxed);
      co_return co_await refuse(w, refused->status, refused->code, refused->reason);
    }
  }
  std::optional<std::string_view> from;
  if (last_event_id) from = *last_event_id;
  auto subscribed = broadcaster_.subscribe(channel, from);
  if (!subscribed) {
    const error_code ec = subscribed.error();
    const std::string why = "channel '" + channel + "': " + ec.message();
    co_return co_await refuse(w, status_of(ec), to_string(static_cast<BroadcastErrc>(ec.value())),
                              why);
  }
  std::shared_ptr<Subscription> sub = std::move(*subscribed);
  sessions_active_.fetch_add(1, std::memory_order_relaxed);
  // A publish that disconnects this subscriber as slow cuts its connection from the
  // publisher's thread: the abort is posted to this worker, and runs only while this session
  // still has the writer (a write to a client that reads nothing would otherwise wait for
  // `listener.write_timeout`).
  const auto writer_alive = std::make_shared<http::ResponseWriter*>(&w);
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  sub->set_on_disconnected([writer_alive, executor] {
    asio::post(executor, [writer_alive] {
      if (*writer_alive != nullptr) (*writer_alive)->reset();
    });
  });
  struct Leave {
    std::atomic<uint64_t>& active;
    const std::shared_ptr<http::ResponseWriter*>& writer;
    ~Leave() {
      *writer = nullptr;
      active.fetch_sub(1, std::memory_order_relaxed);
    }
  } leave{sessions_active_, writer_alive};

  bh::fields headers;
  headers.set(bh::field::content_type, "text/event-stream");
  headers.set(bh::field::cache_control, "no-store");
  headers.set("X-Accel-Buffering", "no");
  Outcome out{200, 0};
  if (co_await w.write_head(bh::status::ok, std::move(headers))) {
    sub->mark_dead();
    co_return out;
  }
  std::string batch;
  // Ends the session for a queue that ended: closed (drained) or disconnected / found dead.
  const auto ended = [&](const error_code& ec) -> asio::awaitable<void> {
    if (ec == flow::Errc::end_of_stream) {
      (void)co_await w.finish();  // the gateway stops or the channel went away
    } else {
      // Disconnected as slow (reset: nothing more is owed to it) or found dead; the client
      // reconnects with Last-Event-ID.
      if (ec == flow::Errc::stream_overflow) {
        w.reset();
      } else {
        w.abort();
      }
    }
  };
  while (true) {
    // What is queued now goes out in one write (a burst of events, one syscall); with nothing
    // queued, wait. Heartbeats come through the queue too (`heartbeat()`, from the gateway's
    // maintenance thread, when the channel was silent): no timer per event here.
    auto event = sub->stream().try_pop();
    if (!event && event.error() == flow::Errc::would_block) event = co_await sub->stream().pop();
    if (!event) {
      const error_code why = event.error();
      co_await ended(why);
      break;
    }
    if (*event == kHeartbeat) {
      // Nothing was published for a heartbeat interval: is the client still there?
      if (w.peer_closed()) {
        vanished_.fetch_add(1, std::memory_order_relaxed);
        sub->mark_dead();
        break;
      }
      heartbeats_.fetch_add(1, std::memory_order_relaxed);
    }
    batch = std::move(*event);
    error_code last;
    while (batch.size() < kBatchBytes) {
      auto more = sub->stream().try_pop();
      if (!more) {
        if (more.error() != flow::Errc::would_block) last = more.error();
        break;
      }
      batch += *more;
    }
    if (co_await w.write_chunk(batch)) {
      const flow::BoundedStream::Stats st = sub->stream().stats();
      if (!(st.failed && st.overflow_count > 0)) {  // else: cut as slow, counted by publish
        vanished_.fetch_add(1, std::memory_order_relaxed);
        sub->mark_dead();
      }
      break;
    }
    out.bytes_out += batch.size();
    if (last) {
      co_await ended(last);
      break;
    }
  }
  co_return out;
}

void BroadcastEndpoint::sweep() { (void)broadcaster_.sweep(); }

void BroadcastEndpoint::heartbeat() {
  (void)broadcaster_.heartbeat(config_.heartbeat_interval, kHeartbeat);
}

void BroadcastEndpoint::shutdown() { broadcaster_.shutdown(); }

boost::json::object BroadcastEndpoint::to_json(size_t limit) const {
  const BroadcasterStats s = broadcaster_.stats();
  boost::json::object o;
  o["prefix"] = config_.prefix;
  o["channels"] = s.channels;
  o["subscribers"] = s.subscribers;
  o["connections"] = sessions_active_.load(std::memory_order_relaxed);
  o["events"] = s.history_events;
  o["history_bytes"] = s.history_bytes;
  o["queued_events"] = s.queued_events;
  o["queued_bytes"] = s.queued_bytes;
  o["memory_estimate_bytes"] = s.memory_estimate_bytes;
  o["memory_estimate_mb"] = static_cast<double>(s.memory_estimate_bytes) / (1024.0 * 1024.0);
  o["published"] = s.published;
  o["delivered"] = s.delivered;
  o["replayed"] = s.replayed;
  o["dropped"] = s.dropped;
  o["slow_disconnects"] = s.slow_disconnects;
  o["subscribes"] = s.subscribes;
  o["unsubscribes"] = s.unsubscribes;
  o["history_evicted"] = s.history_evicted;
  o["heartbeats"] = heartbeats_.load(std::memory_order_relaxed);
  o["publish_refused"] = publish_refused_.load(std::memory_order_relaxed);
  o["subscribe_refused"] = subscribe_refused_.load(std::memory_order_relaxed);
  boost::json::object rejected_publishes, rejected_subscribes;
  for (size_t i = 1; i <= kBroadcastErrcCount; ++i) {
    const auto e = static_cast<BroadcastErrc>(i);
    rejected_publishes[to_string(e)] = s.rejected_publishes_for(e);
    rejected_subscribes[to_string(e)] = s.rejected_subscribes_for(e);
  }
  o["rejected_publishes"] = std::move(rejected_publishes);
  o["rejected_subscribes"] = std::move(rejected_subscribes);
  boost::json::object cleanup;
  cleanup["expired_events_cleaned"] = s.expired_events_cleaned;
  cleanup["dead_subscribers_cleaned"] = s.dead_subscribers_cleaned;
  cleanup["vanished_at_heartbeat"] = vanished_.load(std::memory_order_relaxed);
  cleanup["channels_expired"] = s.channels_expired;
  cleanup["cleanup_runs"] = s.cleanup_runs;
  if (s.cleanup_runs > 0) {
    cleanup["seconds_since_last_cleanup"] = seconds_since(s.last_cleanup);
  } else {
    cleanup["seconds_since_last_cleanup"] = nullptr;
  }
  o["cleanup"] = std::move(cleanup);
  boost::json::array channels;
  for (const ChannelInfo& c : broadcaster_.channels(limit)) {
    boost::json::object j;
    j["name"] = c.name;
    j["subscribers"] = c.subscribers;
    j["events"] = c.events;
    j["bytes"] = c.bytes;
    j["last_event_id"] = c.last_event_id;
    j["published"] = c.published;
    if (c.idle_since) {
      j["idle_seconds"] = seconds_since(*c.idle_since);
    } else {
      j["idle_seconds"] = nullptr;
    }
    channels.push_back(std::move(j));
  }
  o["channel_list"] = std::move(channels);
  return o;
}

void BroadcastEndpoint::collect(metrics::Writer& w) const {
  const BroadcasterStats s = broadcaster_.stats();
  const metrics::LabelsView none;
  const auto gauge = [&](std::string_view name, std::string_view help, double v) {
    w.gauge(name, help, none, v);
  };
  const auto counter = [&](std::string_view name, std::string_view help, uint64_t v) {
    w.counter(name, help, none, static_cast<double>(v));
  };
  gauge("sluice_broadcast_channels", "Broadcast channels", static_cast<double>(s.channels));
  gauge("sluice_broadcast_subscribers", "Broadcast subscribers",
        static_cast<double>(s.subscribers));
  gauge("sluice_broadcast_history_events", "Events held in channel histories",
        static_cast<double>(s.history_events));
  gauge("sluice_broadcast_queued_bytes", "Bytes waiting in subscribers' queues",
        static_cast<double>(s.queued_bytes));
  gauge("sluice_broadcast_memory_estimate_bytes",
        "What the broadcaster holds: histories, queues and per-channel/subscriber overhead",
        static_cast<double>(s.memory_estimate_bytes));
  counter("sluice_broadcast_published_total", "Events published", s.published);
  counter("sluice_broadcast_delivered_total", "Events queued to subscribers", s.delivered);
  counter("sluice_broadcast_replayed_total", "Events replayed after Last-Event-ID", s.replayed);
  counter("sluice_broadcast_dropped_total", "Events slow subscribers lost", s.dropped);
  counter("sluice_broadcast_slow_disconnects_total", "Subscribers disconnected as slow",
          s.slow_disconnects);
  counter("sluice_broadcast_heartbeats_total", "Heartbeat comments written",
          heartbeats_.load(std::memory_order_relaxed));
  counter("sluice_broadcast_expired_events_total", "Events removed past event_ttl",
          s.expired_events_cleaned);
  counter("sluice_broadcast_dead_subscribers_total", "Vanished subscribers removed",
          s.dead_subscribers_cleaned);
  counter("sluice_broadcast_expired_channels_total", "Idle channels removed after channel_ttl",
          s.channels_expired);
  counter("sluice_broadcast_cleanup_runs_total", "Sweeps run", s.cleanup_runs);
  for (size_t i = 1; i <= kBroadcastErrcCount; ++i) {
    const auto e = static_cast<BroadcastErrc>(i);
    const std::array<metrics::Label, 2> pub{metrics::Label{"op", "publish"},
                                            metrics::Label{"reason", to_string(e)}};
    const std::array<metrics::Label, 2> sub{metrics::Label{"op", "subscribe"},
                                            metrics::Label{"reason", to_string(e)}};
    w.counter("sluice_broadcast_rejected_total", "Publishes and subscribes refused, by reason",
              std::span<const metrics::Label>(pub.data(), pub.size()),
              static_cast<double>(s.rejected_publishes_for(e)));
    w.counter("sluice_broadcast_rejected_total", "Publishes and subscribes refused, by reason",
              std::span<const metrics::Label>(sub.data(), sub.size()),
              static_cast<double>(s.rejected_subscribes_for(e)));
  }
}

}  // namespace sluice::gateway
