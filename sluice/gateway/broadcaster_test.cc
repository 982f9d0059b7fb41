#include "sluice/gateway/broadcaster.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/flow/error.h"
#include "sluice/flow/internal/test_util.h"

namespace sluice::gateway {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using Sub = std::shared_ptr<Subscription>;

// Pops what `stream` holds now, never waiting (a pop that would wait is not started, so no
// operation is left pending on the stream): each chunk, or the error the stream ended with.
// The caller is the only consumer.
struct Drained {
  std::vector<std::string> chunks;
  std::optional<boost::system::error_code> end;  // set if the stream had ended
};
Drained drain(flow::BoundedStream& stream) {
  Drained out;
  asio::io_context io;
  for (;;) {
    const auto s = stream.stats();
    if (s.buffered_chunks == 0 && !s.failed && !s.closed) break;  // a pop would wait
    std::optional<boost::system::result<std::string>> got;
    flow::internal::spawn(io, [&]() -> asio::awaitable<void> { got = co_await stream.pop(); });
    io.restart();
    io.run();
    if (!got.has_value()) {
      ADD_FAILURE() << "pop did not complete";
      break;
    }
    if (!*got) {
      out.end = got->error();
      break;
    }
    out.chunks.push_back(std::move(**got));
  }
  return out;
}

// The `id:` of an SSE chunk ("" if none).
std::string id_of(std::string_view chunk) {
  if (!chunk.starts_with("id: ")) return {};
  const size_t end = chunk.find('\n');
  return std::string(chunk.substr(4, end - 4));
}

std::vector<std::string> ids_of(const std::vector<std::string>& chunks) {
  std::vector<std::string> ids;
  ids.reserve(chunks.size());
  for (const auto& c : chunks) ids.push_back(id_of(c));
  return ids;
}

std::vector<std::string> drain_ids(Subscription& sub) { return ids_of(drain(sub.stream()).chunks); }

std::string publish_id(Broadcaster& b, std::string_view channel, std::string data,
                       std::optional<std::string> id = std::nullopt) {
  auto r = b.publish(channel, {.data = std::move(data), .id = std::move(id)});
  EXPECT_TRUE(r) << r.error().message();
  return r ? r->id : std::string();
}

Sub subscribe(Broadcaster& b, std::string_view channel,
              std::optional<std::string_view> last = std::nullopt) {
  auto r = b.subscribe(channel, last);
  EXPECT_TRUE(r) << r.error().message();
  return r ? *r : nullptr;
}

using Ids = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------
// SSE text and ids

TEST(Broadcaster, FormatsEventsAsSse) {
  EXPECT_EQ(format_sse_event("7", "update", "hello"), "id: 7\nevent: update\ndata: hello\n\n");
  EXPECT_EQ(format_sse_event("", "", "x"), "data: x\n\n");
  EXPECT_EQ(format_sse_event("1", "", ""), "id: 1\ndata: \n\n");
}

TEST(Broadcaster, SplitsMultiLineDataAtLfCrlfAndCr) {
  EXPECT_EQ(format_sse_event("1", "", "a\nb\r\nc\rd"),
            "id: 1\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
  EXPECT_EQ(format_sse_event("1", "", "x\n"), "id: 1\ndata: x\ndata: \n\n");
  EXPECT_EQ(format_sse_event("1", "", "\r\n\r\n"), "id: 1\ndata: \ndata: \ndata: \n\n");
  EXPECT_EQ(format_sse_event("1", "", "\n\r"), "id: 1\ndata: \ndata: \ndata: \n\n");  // LF, CR
  EXPECT_EQ(format_sse_event("1", "", "a\r"), "id: 1\ndata: a\ndata: \n\n");

  // A subscriber receives exactly that text.
  base::ManualClock clock;
  Broadcaster b({}, clock);
  Sub sub = subscribe(b, "news");
  ASSERT_TRUE(b.publish("news", {.data = "line 1\r\nline 2\rline 3\n", .event = "update"}));
  const auto got = drain(sub->stream()).chunks;
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], "id: 1\nevent: update\ndata: line 1\ndata: line 2\ndata: line 3\ndata: \n\n");
}

TEST(Broadcaster, HeartbeatGoesToIdleQueuesOfSilentChannelsOnly) {
  base::ManualClock clock;
  Broadcaster b({}, clock);
  Sub reader = subscribe(b, "quiet");
  Sub behind = subscribe(b, "quiet");
  Sub busy = subscribe(b, "busy");
  clock.advance(10s);
  (void)publish_id(b, "busy", "x");  // busy sent just now
  EXPECT_EQ(drain(reader->stream()).chunks.size(), 0u);
  (void)publish_id(b, "quiet", "y");
  EXPECT_EQ(drain(reader->stream()).chunks.size(), 1u);  // `behind` keeps its event queued
  EXPECT_EQ(b.heartbeat(5s, ": hb\n\n"), 0u);            // both channels sent within 5 s
  clock.advance(6s);
  (void)publish_id(b, "busy", "z");
  // quiet: silent for 6 s; its idle queue gets one, the one holding an event does not.
  EXPECT_EQ(b.heartbeat(5s, ": hb\n\n"), 1u);
  EXPECT_EQ(drain(reader->stream()).chunks, (std::vector<std::string>{": hb\n\n"}));
  EXPECT_EQ(drain(behind->stream()).chunks.size(), 1u);  // its event, no heartbeat
  EXPECT_EQ(drain(busy->stream()).chunks.size(), 2u);    // events only
  EXPECT_EQ(b.heartbeat(5s, ": hb\n\n"), 0u);            // just sent: not again yet
  const auto s = b.stats();
  EXPECT_EQ(s.published, 3u);
  EXPECT_EQ(s.delivered, 4u);  // events only: heartbeats are not deliveries
}

TEST(Broadcaster, IdsIncreasePerChannel) {
  base::ManualClock clock;
  Broadcaster b({}, clock);
  EXPECT_EQ(publish_id(b, "a", "x"), "1");
  EXPECT_EQ(publish_id(b, "a", "x"), "2");
  EXPECT_EQ(publish_id(b, "b", "x"), "1");
  EXPECT_EQ(publish_id(b, "a", "x"), "3");
  const auto a = b.channel("a");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->last_id, 3u);
  EXPECT_EQ(a->last_event_id, "3");
  EXPECT_EQ(a->published, 3u);
  EXPECT_EQ(b.stats().published, 4u);
}

TEST(Broadcaster, SuppliedIdsAndTheCounter) {
  base::ManualClock clock;
  Broadcaster b({}, clock);
  EXPECT_EQ(publish_id(b, "c", "x"), "1");
  EXPECT_EQ(publish_id(b, "c", "x", "10"), "10");  // numeric and greater: advances
  EXPECT_EQ(publish_id(b, "c", "x"), "11");
  EXPECT_EQ(publish_id(b, "c", "x", "5"), "5");  // numeric, smaller: kept, counter unchanged
  EXPECT_EQ(publish_id(b, "c", "x"), "12");
  EXPECT_EQ(publish_id(b, "c", "x", "evt-abc"), "evt-abc");  // opaque
  EXPECT_EQ(publish_id(b, "c", "x"), "13");
  EXPECT_EQ(publish_id(b, "c", "x", "99999999999999999999"), "99999999999999999999");  // > 2^53
  EXPECT_EQ(publish_id(b, "c", "x"), "14");
  EXPECT_EQ(publish_id(b, "c", "x", "9007199254740991"), "9007199254740991");  // 2^53 - 1
  EXPECT_EQ(publish_id(b, "c", "x"), "9007199254740992");

  EXPECT_EQ(parse_numeric_event_id("42"), 42u);
  EXPECT_EQ(parse_numeric_event_id("007"), 7u);
  EXPECT_FALSE(parse_numeric_event_id("").has_value());
  EXPECT_FALSE(parse_numeric_event_id("-1").has_value());
  EXPECT_FALSE(parse_numeric_event_id("+1").has_value());
  EXPECT_FALSE(parse_numeric_event_id("1 ").has_value());
  EXPECT_FALSE(parse_numeric_event_id("9007199254740992").has_value());
}

TEST(Broadcaster, RejectsInvalidFieldsChannelsAndLargeEvents) {
  base::ManualClock clock;
  Broadcaster b({.max_event_bytes = 100}, clock);
  auto publish = [&](std::string_view channel, PublishRequest req) {
    auto r = b.publish(channel, std::move(req));
    return r ? boost::system::error_code() : r.error();
  };
  EXPECT_EQ(publish("c", {.data = "x", .id = ""}), BroadcastErrc::invalid_field);
  EXPECT_EQ(publish("c", {.data = "x", .id = "a\nb"}), BroadcastErrc::invalid_field);
  EXPECT_EQ(publish("c", {.data = "x", .id = "a\rb"}), BroadcastErrc::invalid_field);
  EXPECT_EQ(publish("c", {.data = "x", .id = std::string("a\0b", 3)}),
            BroadcastErrc::invalid_field);
  EXPECT_EQ(publish("c", {.data = "x", .event = "a\nb"}), BroadcastErrc::invalid_field);
  EXPECT_EQ(publish("c", {.data = "x", .event = std::string(kMaxSseFieldBytes + 1, 'e')}),
            BroadcastErrc::invalid_field);
  EXPECT_EQ(publish("", {.data = "x"}), BroadcastErrc::invalid_channel);
  EXPECT_EQ(publish("a b", {.data = "x"}), BroadcastErrc::invalid_channel);
  EXPECT_EQ(publish("a\nb", {.data = "x"}), BroadcastErrc::invalid_channel);
  EXPECT_EQ(publish(std::string(kMaxChannelNameBytes + 1, 'c'), {.data = "x"}),
            BroadcastErrc::invalid_channel);
  EXPECT_EQ(publish("c", {.data = std::string(101, 'x')}), BroadcastErrc::event_too_large);
  EXPECT_FALSE(publish(std::string(kMaxChannelNameBytes, 'c'), {.data = std::string(100, 'x')}));
  EXPECT_FALSE(publish("Az09._:/-", {.data = "x", .event = std::string(kMaxSseFieldBytes, 'e')}));
  EXPECT_FALSE(b.subscribe("bad channel").has_value());

  const auto s = b.stats();
  EXPECT_EQ(s.rejected_publishes_for(BroadcastErrc::invalid_field), 6u);
  EXPECT_EQ(s.rejected_publishes_for(BroadcastErrc::invalid_channel), 4u);
  EXPECT_EQ(s.rejected_publishes_for(BroadcastErrc::event_too_large), 1u);
  EXPECT_EQ(s.rejected_subscribes_for(BroadcastErrc::invalid_channel), 1u);
  EXPECT_EQ(s.published, 2u);
  EXPECT_EQ(s.channels, 2u);  // refused publishes create no channel
  EXPECT_EQ(make_error_code(BroadcastErrc::channel_limit).message(),
            "too many channels (max_channels)");
  EXPECT_STREQ(broadcast_category().name(), "sluice.broadcast");
}

TEST(Broadcaster, ValidatesOptions) {
  EXPECT_EQ(BroadcasterOptions{}.validate(), "");
  EXPECT_NE(BroadcasterOptions{.max_channels = 0}.validate(), "");
  EXPECT_NE(BroadcasterOptions{.max_subscribers = 0}.validate(), "");
  EXPECT_NE(BroadcasterOptions{.event_ttl = -1s}.validate(), "");
  EXPECT_EQ(BroadcasterOptions{.event_ttl = 0s}.validate(), "");  // no expiry
  EXPECT_NE(BroadcasterOptions{.channel_ttl = 0s}.validate(), "");
  EXPECT_NE(BroadcasterOptions{.max_history = 1001}.validate().find("max_history"),
            std::string::npos);
  EXPECT_NE(BroadcasterOptions{.queue_bytes = 1000}.validate().find("max_history_bytes"),
            std::string::npos);
  EXPECT_NE(BroadcasterOptions{.max_history_bytes = 1000}.validate().find("max_event_bytes"),
            std::string::npos);
  EXPECT_EQ(BroadcasterOptions{.max_history = 0}.validate(), "");
  EXPECT_EQ(parse_slow_client_policy("drop_oldest"), SlowClientPolicy::drop_oldest);
  EXPECT_EQ(parse_slow_client_policy("disconnect"), SlowClientPolicy::disconnect);
  EXPECT_FALSE(parse_slow_client_policy("block").has_value());
  EXPECT_EQ(to_string(SlowClientPolicy::drop_oldest), "drop_oldest");
}

// ---------------------------------------------------------------------------------------------
// History and Last-Event-ID

TEST(Broadcaster, HistoryIsBoundedByEvents) {
  base::ManualClock clock;
  Broadcaster b({.max_history = 3}, clock);
  for (int i = 0; i < 5; ++i) publish_id(b, "h", "x");
  Sub sub = subscribe(b, "h", "0");  // numeric, before the history: everything kept
  EXPECT_EQ(drain_ids(*sub), (Ids{"3", "4", "5"}));
  EXPECT_EQ(sub->replayed(), 3u);
  const auto s = b.stats();
  EXPECT_EQ(s.history_events, 3u);
  EXPECT_EQ(s.history_evicted, 2u);
  EXPECT_EQ(s.replayed, 3u);
}

TEST(Broadcaster, HistoryIsBoundedByBytes) {
  base::ManualClock clock;
  const std::string event = format_sse_event("1", "", std::string(26, 'x'));
  ASSERT_EQ(event.size(), 40u);  // "id: 1\n" + "data: " + 26 + "\n" + "\n"
  Broadcaster b({.max_history_bytes = 100, .max_event_bytes = 60}, clock);
  for (int i = 0; i < 5; ++i) publish_id(b, "h", std::string(26, 'x'));
  const auto info = b.channel("h");
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->events, 2u);  // 2 x 40 <= 100 < 3 x 40
  EXPECT_EQ(info->bytes, 80u);
  Sub sub = subscribe(b, "h", "1");
  EXPECT_EQ(drain_ids(*sub), (Ids{"4", "5"}));
  EXPECT_EQ(b.stats().history_evicted, 3u);
  // Data within max_event_bytes whose SSE text does not fit the history is refused too.
  auto r = b.publish("h", {.data = std::string(61, 'x')});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), BroadcastErrc::event_too_large);
  r = b.publish("h", {.data = std::string(25, '\n')});  // 25 bytes: 26 lines of 7 bytes
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), BroadcastErrc::event_too_large);
  EXPECT_EQ(b.channel("h")->last_id, 5u);  // a refused event takes no id
}

TEST(Broadcaster, ReplaysTheEventsAfterAFoundId) {
  base::ManualClock clock;
  Broadcaster b({}, clock);
  for (int i = 0; i < 5; ++i) publish_id(b, "r", "x");
  Sub sub = subscribe(b, "r", "3");
  EXPECT_EQ(sub->replayed(), 2u);
  publish_id(b, "r", "x");
  EXPECT_EQ(drain_ids(*sub), (Ids{"4", "5", "6"}));  // replay then live: no gap, no duplicate
  Sub last = subscribe(b, "r", "6");                 // up to date
  EXPECT_EQ(last->replayed(), 0u);
  // Opaque ids are found too.
  publish_id(b, "r", "x", "tag-a");
  publish_id(b, "r", "x");
  Sub opaque = subscribe(b, "r", "tag-a");
  EXPECT_EQ(drain_ids(*opaque), (Ids{"7"}));
}

TEST(Broadcaster, ReplaysNumericallyGreaterIdsWhenTheIdIsNotInHistory) {
  base::ManualClock clock;
  Broadcaster b({.max_history = 3}, clock);
  for (int i = 0; i < 6; ++i) publish_id(b, "n", "x");                  // history: 4 5 6
  EXPECT_EQ(drain_ids(*subscribe(b, "n", "2")), (Ids{"4", "5", "6"}));  // evicted id
  EXPECT_EQ(drain_ids(*subscribe(b, "n", "100")), Ids{});               // from the future
  publish_id(b, "n", "x", "opaque");                                    // history: 5 6 opaque
  EXPECT_EQ(drain_ids(*subscribe(b, "n", "4")), (Ids{"5", "6"}));       // non-numeric ids skipped
}

TEST(Broadcaster, UnknownIdOrNoIdReplaysNothing) {
  base::ManualClock clock;
  Broadcaster b({}, clock);
  for (int i = 0; i < 3; ++i) publish_id(b, "u", "x");
  Sub unknown = subscribe(b, "u", "never-sent");
  Sub none = subscribe(b, "u");
  Sub empty = subscribe(b, "u", "");
  EXPECT_EQ(unknown->replayed() + none->replayed() + empty->replayed(), 0u);
  publish_id(b, "u", "x");
  EXPECT_EQ(drain_ids(*unknown), (Ids{"4"}));
  EXPECT_EQ(drain_ids(*none), (Ids{"4"}));
  EXPECT_EQ(drain_ids(*empty), (Ids{"4"}));
}

// ---------------------------------------------------------------------------------------------
// Fan-out

TEST(Broadcaster, EverySubscriberSeesThePublishOrder) {
  base::ManualClock clock;
  Broadcaster b({}, clock);
  std::vector<Sub> subs;
  for (int i = 0; i < 3; ++i) subs.push_back(subscribe(b, "o"));
  Ids expected;
  for (int i = 1; i <= 50; ++i) {
    auto r = b.publish("o", {.data = std::to_string(i)});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->delivered, 3u);
    expected.push_back(std::to_string(i));
  }
  for (auto& sub : subs) EXPECT_EQ(drain_ids(*sub), expected);
  const auto s = b.stats();
  EXPECT_EQ(s.delivered, 150u);
  EXPECT_EQ(s.subscribers, 3u);
  EXPECT_EQ(s.subscribes, 3u);
}

TEST(Broadcaster, SlowSubscriberIsDisconnectedWhileAFastOneGetsEverything) {
  base::ManualClock clock;
  Broadcaster b({.max_history = 4, .queue_events = 4}, clock);
  Sub slow = subscribe(b, "s");
  Sub fast = subscribe(b, "s");
  int cut = 0;  // the slow one's consumer is told, once, by the publish that disconnects it
  slow->set_on_disconnected([&] { ++cut; });
  fast->set_on_disconnected([&] { ADD_FAILURE() << "the fast subscriber was cut"; });
  Ids fast_got;
  for (int i = 1; i <= 10; ++i) {
    auto r = b.publish("s", {.data = "x"});
    ASSERT_TRUE(r);
    EXPECT_EQ(cut, i >= 5 ? 1 : 0) << i;
    EXPECT_EQ(r->disconnected, i == 5 ? 1u : 0u) << i;  // the 5th does not fit 4
    EXPECT_EQ(r->delivered, i <= 4 ? 2u : 1u) << i;
    for (auto& id : drain_ids(*fast)) fast_got.push_back(id);
  }
  EXPECT_EQ(fast_got, (Ids{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}));
  const Drained d = drain(slow->stream());
  EXPECT_TRUE(d.chunks.empty());  // its queue was discarded
  ASSERT_TRUE(d.end.has_value());
  EXPECT_EQ(*d.end, flow::Errc::stream_overflow);
  const auto s = b.stats();
  EXPECT_EQ(s.slow_disconnects, 1u);
  EXPECT_EQ(s.dropped, 5u);  // 4 discarded with its queue + the 5th event
  EXPECT_EQ(s.subscribers, 1u);
  EXPECT_EQ(s.delivered, 14u);
  // A reconnecting client resumes from its Last-Event-ID (6: evicted from the history of 4,
  // so the numeric rule applies).
  Sub again = subscribe(b, "s", "6");
  EXPECT_EQ(drain_ids(*again), (Ids{"7", "8", "9", "10"}));
  const auto after = b.stats();
  EXPECT_EQ(after.subscribes, after.subscribers + after.unsubscribes +
                                  after.dead_subscribers_cleaned + after.slow_disconnects);
}

TEST(Broadcaster, SlowSubscriberLosesItsOldestEventsWhileAFastOneGetsEverything) {
  base::ManualClock clock;
  Broadcaster b({.max_history = 4, .queue_events = 4, .slow_client = SlowClientPolicy::drop_oldest},
                clock);
  Sub slow = subscribe(b, "s");
  Sub fast = subscribe(b, "s");
  Ids fast_got;
  for (int i = 1; i <= 10; ++i) {
    auto r = b.publish("s", {.data = "x"});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->delivered, 2u);
    EXPECT_EQ(r->dropped_oldest, i > 4 ? 1u : 0u) << i;
    EXPECT_EQ(r->disconnected, 0u);
    for (auto& id : drain_ids(*fast)) fast_got.push_back(id);
  }
  EXPECT_EQ(fast_got, (Ids{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}));
  EXPECT_EQ(drain_ids(*slow), (Ids{"7", "8", "9", "10"}));  // the newest four
  const auto s = b.stats();
  EXPECT_EQ(s.dropped, 6u);
  EXPECT_EQ(s.slow_disconnects, 0u);
  EXPECT_EQ(s.subscribers, 2u);
}

TEST(Broadcaster, SlowSubscriberDropsOldestByBytes) {
  base::ManualClock clock;
  Broadcaster b({.max_history_bytes = 100,
                 .queue_bytes = 100,
                 .slow_client = SlowClientPolicy::drop_oldest,
                 .max_event_bytes = 60},
                clock);
  Sub slow = subscribe(b, "s");
  publish_id(b, "s", std::string(30, 'x'));                 // 44 bytes of SSE text
  publish_id(b, "s", std::string(30, 'x'));                 // 88
  auto r = b.publish("s", {.data = std::string(50, 'x')});  // 64: 88 + 64 > 100, drops both
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dropped_oldest, 1u);
  EXPECT_EQ(b.stats().dropped, 2u);
  EXPECT_EQ(drain_ids(*slow), (Ids{"3"}));
}

// ---------------------------------------------------------------------------------------------
// Expiry and cleanup

TEST(Broadcaster, ExpiredEventsAreNotReplayedAndAreRemovedBySweep) {
  base::ManualClock clock;
  Broadcaster b({.event_ttl = 10s}, clock);
  publish_id(b, "t", "x");
  publish_id(b, "t", "x");
  clock.advance(6s);
  publish_id(b, "t", "x");
  clock.advance(4s);                      // the first two are 10 s old: expired
  EXPECT_EQ(b.channel("t")->events, 3u);  // still held until something looks
  EXPECT_EQ(drain_ids(*subscribe(b, "t", "0")), (Ids{"3"}));
  EXPECT_EQ(b.stats().expired_events_cleaned, 2u);  // removed by that subscribe

  publish_id(b, "t", "x");  // id 4, at t = 10 s
  clock.advance(10s);       // 3 and 4 expire
  const SweepReport report = b.sweep();
  EXPECT_EQ(report.expired_events, 2u);
  EXPECT_EQ(report.channels_scanned, 1u);
  const auto s = b.stats();
  EXPECT_EQ(s.history_events, 0u);
  EXPECT_EQ(s.history_bytes, 0u);
  EXPECT_EQ(s.expired_events_cleaned, 4u);
  EXPECT_EQ(s.cleanup_runs, 1u);
  EXPECT_EQ(s.last_cleanup, clock.now());
  EXPECT_EQ(drain_ids(*subscribe(b, "t", "0")), Ids{});
}

TEST(Broadcaster, NoEventTtlKeepsEvents) {
  base::ManualClock clock;
  Broadcaster b({.event_ttl = 0s}, clock);
  publish_id(b, "t", "x");
  clock.advance(1000h);
  Sub keep = subscribe(b, "t");  // keeps the channel alive
  EXPECT_EQ(b.sweep().expired_events, 0u);
  EXPECT_EQ(drain_ids(*subscribe(b, "t", "0")), (Ids{"1"}));
}

TEST(Broadcaster, ChannelExpiresAfterChannelTtlWithoutSubscribers) {
  base::ManualClock clock;
  Broadcaster b({.channel_ttl = 60s}, clock);
  Sub sub = subscribe(b, "e");
  publish_id(b, "e", "x");
  clock.advance(1h);
  EXPECT_EQ(b.sweep().expired_channels, 0u);  // a subscriber keeps it
  sub.reset();                                // idle from now
  EXPECT_EQ(b.channel("e")->idle_since, clock.now());
  clock.advance(59s);
  EXPECT_EQ(b.sweep().expired_channels, 0u);
  publish_id(b, "e", "x");  // a publish renews it
  clock.advance(59s);
  EXPECT_EQ(b.sweep().expired_channels, 0u);
  clock.advance(1s);
  EXPECT_EQ(b.sweep().expired_channels, 1u);
  EXPECT_FALSE(b.channel("e").has_value());
  const auto s = b.stats();
  EXPECT_EQ(s.channels, 0u);
  EXPECT_EQ(s.channels_expired, 1u);
  EXPECT_EQ(s.history_events, 0u);
  // A new channel of the same name starts again.
  EXPECT_EQ(publish_id(b, "e", "x"), "1");
  EXPECT_EQ(b.stats().channels_created, 2u);
}

TEST(Broadcaster, DeadSubscribersAreCleanedUp) {
  base::ManualClock clock;
  Broadcaster b({}, clock);
  Sub marked = subscribe(b, "d");
  Sub cancelled = subscribe(b, "d");
  Sub cancelled_before_publish = subscribe(b, "d");
  Sub alive = subscribe(b, "d");
  EXPECT_EQ(b.stats().subscribers, 4u);

  marked->mark_dead();  // the gateway's heartbeat failed: removed now
  marked->mark_dead();  // idempotent
  EXPECT_EQ(b.stats().subscribers, 3u);
  EXPECT_EQ(b.stats().dead_subscribers_cleaned, 1u);
  EXPECT_EQ(drain(marked->stream()).end, flow::Errc::stream_cancelled);

  cancelled->stream().cancel();  // ended from outside: found by sweep
  const SweepReport report = b.sweep();
  EXPECT_EQ(report.dead_subscribers, 1u);
  EXPECT_EQ(b.stats().subscribers, 2u);

  cancelled_before_publish->stream().cancel();  // found by the next publish
  auto r = b.publish("d", {.data = "x"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->delivered, 1u);
  const auto s = b.stats();
  EXPECT_EQ(s.subscribers, 1u);
  EXPECT_EQ(s.dead_subscribers_cleaned, 3u);
  EXPECT_EQ(s.unsubscribes, 0u);
  EXPECT_EQ(drain_ids(*alive), (Ids{"1"}));
}

TEST(Broadcaster, CloseDrainsThenEndsTheStream) {
  base::ManualClock clock;
  Broadcaster b({}, clock);
  Sub sub = subscribe(b, "c");
  publish_id(b, "c", "x");
  sub->close();
  sub->close();             // idempotent
  sub->mark_dead();         // no effect after close
  publish_id(b, "c", "x");  // not for it any more
  const Drained d = drain(sub->stream());
  EXPECT_EQ(ids_of(d.chunks), (Ids{"1"}));
  EXPECT_EQ(d.end, flow::Errc::end_of_stream);
  const auto s = b.stats();
  EXPECT_EQ(s.unsubscribes, 1u);
  EXPECT_EQ(s.dead_subscribers_cleaned, 0u);
  EXPECT_EQ(s.subscribers, 0u);
  EXPECT_EQ(b.channel("c")->idle_since, clock.now());
}

TEST(Broadcaster, MemoryEstimateGoesBackDownAfterCleanup) {
  base::ManualClock clock;
  Broadcaster b({.event_ttl = 10s, .channel_ttl = 60s}, clock);
  const auto empty = b.stats();
  EXPECT_EQ(empty.memory_estimate_bytes, 0u);
  std::vector<Sub> subs;
  for (int c = 0; c < 5; ++c) {
    const std::string name = "m" + std::to_string(c);
    subs.push_back(subscribe(b, name));
    subs.push_back(subscribe(b, name));
    for (int i = 0; i < 20; ++i) publish_id(b, name, std::string(100, 'x'));
  }
  const auto full = b.stats();
  EXPECT_EQ(full.channels, 5u);
  EXPECT_EQ(full.subscribers, 10u);
  EXPECT_EQ(full.history_events, 100u);
  EXPECT_EQ(full.queued_events, 200u);
  const size_t event_bytes = format_sse_event("10", "", std::string(100, 'x')).size();
  EXPECT_GE(full.history_bytes, 100 * (event_bytes - 1));
  EXPECT_EQ(full.queued_bytes, 2 * full.history_bytes);
  EXPECT_EQ(full.memory_estimate_bytes, full.history_bytes + 100 * kEventOverheadBytes +
                                            5 * (kChannelOverheadBytes + 2) + full.queued_bytes +
                                            200 * kQueuedEventOverheadBytes +
                                            10 * kSubscriberOverheadBytes);

  // The clients go away uncleanly (their queues are cancelled, the subscriptions still held).
  for (auto& sub : subs) sub->stream().cancel();
  clock.advance(10s);
  SweepReport report = b.sweep();
  EXPECT_EQ(report.expired_events, 100u);
  EXPECT_EQ(report.dead_subscribers, 10u);
  const auto swept = b.stats();
  EXPECT_LT(swept.memory_estimate_bytes, full.memory_estimate_bytes);
  EXPECT_EQ(swept.memory_estimate_bytes, 5 * (kChannelOverheadBytes + 2));
  clock.advance(60s);
  report = b.sweep();
  EXPECT_EQ(report.expired_channels, 5u);
  EXPECT_EQ(b.stats().memory_estimate_bytes, 0u);
}

// ---------------------------------------------------------------------------------------------
// Limits

TEST(Broadcaster, SubscriberLimit) {
  base::ManualClock clock;
  Broadcaster b({.max_subscribers = 2}, clock);
  Sub one = subscribe(b, "l");
  Sub two = subscribe(b, "l");
  auto three = b.subscribe("l");
  ASSERT_FALSE(three);
  EXPECT_EQ(three.error(), BroadcastErrc::subscriber_limit);
  EXPECT_TRUE(b.subscribe("other"));  // per channel
  one.reset();
  EXPECT_TRUE(b.subscribe("l"));
  const auto s = b.stats();
  EXPECT_EQ(s.rejected_subscribes_for(BroadcastErrc::subscriber_limit), 1u);
  EXPECT_EQ(s.subscribes, 4u);
}

TEST(Broadcaster, ChannelLimit) {
  base::ManualClock clock;
  Broadcaster b({.max_channels = 2, .channel_ttl = 60s}, clock);
  ASSERT_TRUE(b.publish("a", {.data = "x"}));
  Sub sub = subscribe(b, "b");
  auto p = b.publish("c", {.data = "x"});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error(), BroadcastErrc::channel_limit);
  auto s = b.subscribe("c");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), BroadcastErrc::channel_limit);
  EXPECT_TRUE(b.publish("a", {.data = "x"}));  // existing channels still work
  EXPECT_TRUE(b.publish("b", {.data = "x"}));
  clock.advance(60s);
  EXPECT_EQ(b.sweep().expired_channels, 1u);  // "a"; "b" has a subscriber
  EXPECT_TRUE(b.publish("c", {.data = "x"}));
  const auto st = b.stats();
  EXPECT_EQ(st.rejected_publishes_for(BroadcastErrc::channel_limit), 1u);
  EXPECT_EQ(st.rejected_subscribes_for(BroadcastErrc::channel_limit), 1u);
  EXPECT_EQ(st.channels, 2u);
}

TEST(Broadcaster, ChannelsListsTheBusiestFirst) {
  base::ManualClock clock;
  Broadcaster b({}, clock);
  publish_id(b, "quiet", "x");
  Sub a1 = subscribe(b, "busy");
  Sub a2 = subscribe(b, "busy");
  Sub c1 = subscribe(b, "some");
  const auto all = b.channels(10);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].name, "busy");
  EXPECT_EQ(all[0].subscribers, 2u);
  EXPECT_FALSE(all[0].idle_since.has_value());
  EXPECT_EQ(all[1].name, "some");
  EXPECT_EQ(all[2].name, "quiet");
  EXPECT_EQ(all[2].events, 1u);
  EXPECT_EQ(all[2].idle_since, clock.now());
  EXPECT_EQ(b.channels(1).size(), 1u);
  EXPECT_TRUE(b.channels(0).empty());
}

// ---------------------------------------------------------------------------------------------
// Shutdown and lifetime

TEST(Broadcaster, ShutdownClosesSubscribersAndRefusesWork) {
  base::ManualClock clock;
  Broadcaster b({}, clock);
  Sub sub = subscribe(b, "x");
  publish_id(b, "x", "1");
  b.shutdown();
  b.shutdown();  // idempotent
  const Drained d = drain(sub->stream());
  EXPECT_EQ(ids_of(d.chunks), (Ids{"1"}));
  EXPECT_EQ(d.end, flow::Errc::end_of_stream);
  auto p = b.publish("x", {.data = "x"});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error(), BroadcastErrc::shut_down);
  auto s = b.subscribe("x");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error(), BroadcastErrc::shut_down);
  const auto st = b.stats();
  EXPECT_EQ(st.channels, 0u);
  EXPECT_EQ(st.subscribers, 0u);
  EXPECT_EQ(st.unsubscribes, 1u);
}

TEST(Broadcaster, SubscriptionMayOutliveTheBroadcaster) {
  base::ManualClock clock;
  Sub sub;
  {
    Broadcaster b({}, clock);
    sub = subscribe(b, "x");
    publish_id(b, "x", "1");
  }
  const Drained d = drain(sub->stream());
  EXPECT_EQ(ids_of(d.chunks), (Ids{"1"}));
  EXPECT_EQ(d.end, flow::Errc::end_of_stream);
  sub->close();
  sub->mark_dead();
  sub.reset();  // no broadcaster left: nothing to unregister from
}

// ---------------------------------------------------------------------------------------------
// Concurrency (runs under TSan in CI: small numbers)

// Publishers on two channels, subscribers that come and go resuming from their last id, and a
// sweeper, all at once. Every subscription sees consecutive ids: no gap, no duplicate, no
// reordering, including across a Last-Event-ID resume.
TEST(Broadcaster, ConcurrentPublishersSubscribersAndSweeps) {
  constexpr int kPublishers = 2;
  constexpr int kEventsPerPublisher = 200;  // per channel: 400 <= max_history and queue_events
  constexpr int kSubscribers = 2;
  const std::vector<std::string> channels = {"ch/a", "ch/b"};
  base::ManualClock clock;  // never advanced: nothing expires
  Broadcaster b({}, clock);
  std::atomic<int> publishers_left{kPublishers};
  std::atomic<int> failures{0};

  std::vector<std::thread> threads;
  for (int p = 0; p < kPublishers; ++p) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEventsPerPublisher; ++i) {
        for (const auto& ch : channels) {
          if (!b.publish(ch, {.data = "payload"})) failures.fetch_add(1);
        }
      }
      publishers_left.fetch_sub(1);
    });
  }
  for (int s = 0; s < kSubscribers; ++s) {
    threads.emplace_back([&, s] {
      const std::string& ch = channels[static_cast<size_t>(s) % channels.size()];
      uint64_t last = 0;  // last id seen, 0: none yet
      for (int round = 0; round < 20; ++round) {
        const std::string last_text = std::to_string(last);
        auto r = last == 0 ? b.subscribe(ch) : b.subscribe(ch, last_text);
        if (!r) {
          failures.fetch_add(1);
          return;
        }
        const Sub sub = *r;
        // Read a few batches, then leave (or stop when the publishers are done).
        for (int batch = 0; batch < 3; ++batch) {
          const bool done = publishers_left.load() == 0;
          for (const auto& chunk : drain(sub->stream()).chunks) {
            const uint64_t id = std::stoull(id_of(chunk));
            if (last != 0 && id != last + 1) failures.fetch_add(1);
            last = id;
          }
          if (done) break;
          std::this_thread::yield();
        }
        if (round % 2 == 0) sub->mark_dead();  // and sometimes leave as dead
      }
      // Once the publishers are done, one last resume catches up with the whole channel.
      while (publishers_left.load() > 0) std::this_thread::yield();
      const std::string last_text = std::to_string(last);
      auto r = b.subscribe(ch, last_text);
      if (!r) {
        failures.fetch_add(1);
        return;
      }
      for (const auto& chunk : drain((*r)->stream()).chunks) {
        const uint64_t id = std::stoull(id_of(chunk));
        if (last != 0 && id != last + 1) failures.fetch_add(1);
        last = id;
      }
      if (last != uint64_t{kPublishers} * kEventsPerPublisher) failures.fetch_add(1);
    });
  }
  threads.emplace_back([&] {
    while (publishers_left.load() > 0) {
      (void)b.sweep();
      (void)b.stats();
      (void)b.channels(10);
      std::this_thread::yield();
    }
  });
  for (auto& t : threads) t.join();

  EXPECT_EQ(failures.load(), 0);
  const auto s = b.stats();
  EXPECT_EQ(s.published, uint64_t{kPublishers} * kEventsPerPublisher * channels.size());
  EXPECT_EQ(s.subscribers, 0u);
  EXPECT_EQ(s.slow_disconnects, 0u);
  EXPECT_EQ(s.subscribes, s.unsubscribes + s.dead_subscribers_cleaned);
  for (const auto& ch : channels) {
    EXPECT_EQ(b.channel(ch)->last_id, uint64_t{kPublishers} * kEventsPerPublisher);
  }
}

}  // namespace
}  // namespace sluice::gateway
