// The SSE broadcaster over HTTP (seed 001): `[broadcast]` in the config, or
// `sluice serve --broadcast-prefix /events/`.
//
//   POST {prefix}{channel}   publishes the body as one event's data. Query `event=` names the
//                            event type, `id=` supplies its id (else the channel's next integer).
//                            Answer 200 {"channel","id","delivered","dropped_oldest",
//                            "disconnected"}. With `publish_token` set, every publisher must
//                            send `Authorization: Bearer <publish_token>`; without one, only
//                            loopback clients may publish.
//   GET  {prefix}{channel}   subscribes: 200 text/event-stream, events as they are published.
//                            `Last-Event-ID` (header, or `last_event_id=` in the query for
//                            clients that cannot set headers) replays what the channel's history
//                            holds after that id. With `auth_upstream`, a check request to the
//                            upstream admits the subscriber first.
//
// Each subscriber is a `Subscription` whose bounded queue (`queue_events`, `queue_bytes`) this
// endpoint drains into the client's socket; at the bound, `slow_client` disconnects it or drops
// its oldest events (broadcaster.h). While its channel is silent, a `: heartbeat` comment goes
// to each subscriber every `heartbeat_interval` (through its queue, from the maintenance
// thread); before writing it the socket is checked, so a vanished subscriber is removed at the
// next heartbeat (`dead_subscribers_cleaned`); while events flow, a failed write finds it.
// `sweep()` (from the gateway's maintenance thread, every `cleanup_interval`) removes expired
// events, dead subscribers and idle channels. `GET /admin/broadcast` shows all of it (`to_json`).
//
// Errors: 400 bad channel name or field, 401/403 publish without the token, 405 other methods,
// 413 event data over `max_event_bytes`, 503 past `max_channels` or `max_subscribers`; each
// with {"error","reason"} and counted (broadcaster stats, by reason).
//
// Thread-safety: `handle` runs on every worker concurrently; `sweep`, `shutdown`, `to_json`
// and `collect` from any thread.
#pragma once

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/gateway/broadcaster.h"
#include "sluice/gateway/config.h"
#include "sluice/http/server.h"
#include "sluice/metrics/writer.h"

namespace sluice::gateway {

class BroadcastEndpoint {
 public:
  // An answer that refuses a request.
  struct Refusal {
    unsigned status = 403;
    std::string code;
    std::string reason;
  };
  // Asks the upstream whether the subscriber may subscribe to `channel`: nullopt admits it.
  using AuthCheck = std::function<boost::asio::awaitable<std::optional<Refusal>>(
      const http::Request& subscriber, const std::string& channel, http::ResponseWriter& writer)>;
  // What one request came to, for the access log.
  struct Outcome {
    unsigned status = 0;
    uint64_t bytes_out = 0;
  };

  // `auth` may be empty (no subscriber check).
  BroadcastEndpoint(const BroadcastConfig& config, AuthCheck auth);
  ~BroadcastEndpoint();
  BroadcastEndpoint(const BroadcastEndpoint&) = delete;
  BroadcastEndpoint& operator=(const BroadcastEndpoint&) = delete;

  // Whether `path` (without query) is under the prefix.
  [[nodiscard]] bool matches(std::string_view path) const noexcept;
  [[nodiscard]] boost::asio::awaitable<Outcome> handle(http::Request& request,
                                                       http::ResponseWriter& writer);

  void sweep();
  // Sends the heartbeat comment to the subscribers of channels silent for a heartbeat
  // interval (call every fraction of it).
  void heartbeat();
  // Ends every subscription (their clients get the end of the stream); later requests get 503.
  void shutdown();
  // GET /admin/broadcast: the broadcaster's figures and up to `limit` channels.
  [[nodiscard]] boost::json::object to_json(size_t limit) const;
  void collect(metrics::Writer& w) const;

 private:
  boost::asio::awaitable<Outcome> publish(http::Request& request, http::ResponseWriter& writer,
                                          std::string channel);
  boost::asio::awaitable<Outcome> subscribe(http::Request& request, http::ResponseWriter& writer,
                                            std::string channel);

  BroadcastConfig config_;
  Broadcaster broadcaster_;
  AuthCheck auth_;
  std::atomic<uint64_t> heartbeats_{0};         // heartbeat comments written
  std::atomic<uint64_t> vanished_{0};           // subscribers found gone at a heartbeat
  std::atomic<uint64_t> publish_refused_{0};    // publishes without the token (401/403)
  std::atomic<uint64_t> subscribe_refused_{0};  // subscribers the auth upstream refused
  std::atomic<uint64_t> sessions_active_{0};    // subscriber connections open now
};

}  // namespace sluice::gateway
