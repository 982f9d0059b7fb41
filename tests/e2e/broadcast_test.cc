// End-to-end tests of the SSE broadcaster: the real `sluice serve` with `[broadcast]` on,
// subscribers as raw sockets (HTTP/1.0, so the event stream arrives unframed and ends when the
// connection closes), publishers as plain HTTP requests, figures from GET /admin/broadcast.
//
// Waits are bounded; no test asserts how long anything took.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/http_probe.h"
#include "tests/e2e/process.h"
#include "tests/e2e/services.h"

namespace sluice::e2e {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

// One subscriber connection: sends its request at once, reads on demand.
class Subscriber {
 public:
  Subscriber(uint16_t port, const std::string& channel, const std::string& last_event_id = "") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      close();
      return;
    }
    std::string request = "GET /events/" + channel + " HTTP/1.0\r\nHost: sluice\r\n";
    if (!last_event_id.empty()) request += "Last-Event-ID: " + last_event_id + "\r\n";
    request += "\r\n";
    if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      close();
    }
  }
  ~Subscriber() { close(); }
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] bool ok() const { return fd_ >= 0; }
  // Reads what is available (non-blocking after poll said so); false on EOF or error.
  bool read_available() {
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      received_.append(buf, static_cast<size_t>(n));
      return true;
    }
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  // Reads until `text` was received or `bound` passed.
  bool read_until(const std::string& text, milliseconds bound) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (received_.find(text) == std::string::npos) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      if (!read_available()) return received_.find(text) != std::string::npos;
    }
    return true;
  }
  [[nodiscard]] const std::string& received() const { return received_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
  std::string received_;
};

// The ids of the events in an SSE text, in order ("id: N" lines).
std::vector<uint64_t> event_ids(const std::string& text) {
  std::vector<uint64_t> ids;
  size_t at = 0;
  while ((at = text.find("\nid: ", at)) != std::string::npos) {
    at += 5;
    ids.push_back(std::stoull(text.substr(at, text.find('\n', at) - at)));
  }
  return ids;
}

class BroadcastE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(command_available("serve", &why)) << why;
    sim_ = start_sim_upstream(dir_, {"--latency", "1ms"});
    ASSERT_NE(sim_.port, 0);
  }
  void TearDown() override {
    if (gateway_.child.running()) stop_service(gateway_, "sluice serve");
    if (sim_.child.running()) stop_service(sim_, "sim-upstream");
  }

  void start(const std::string& broadcast_lines) {
    const std::string toml = "[server]\nworkers = 2\ndata_dir = \"" + dir_.file("data") +
                             "\"\n\n[listener]\naddress = \"127.0.0.1\"\nport = 0\n"
                             "\n[admin]\naddress = \"127.0.0.1\"\nport = 0\n"
                             "\n[[upstream]]\nname = \"sim\"\nurl = \"http://127.0.0.1:" +
                             std::to_string(sim_.port) +
                             "\"\n\n[broadcast]\nenabled = true\nprefix = \"/events/\"\n" +
                             broadcast_lines;
    gateway_ = start_gateway(dir_, {"--config", dir_.write_file("sluice.toml", toml)});
    ASSERT_NE(gateway_.port, 0);
    ASSERT_NE(gateway_.admin_port, 0);
  }

  json::object stats() {
    const HttpResponse r = http_get(gateway_.admin_port, "/admin/broadcast");
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec || !v.is_object()) {
      ADD_FAILURE() << "GET /admin/broadcast: " << r.status << " " << r.body;
      return {};
    }
    return v.as_object();
  }
  static uint64_t figure(const json::object& o, const std::string& key) {
    return json::value_to<uint64_t>(o.at(key));
  }
  // Polls /admin/broadcast until `done` holds (at most `polls` x 50 ms, plus the requests).
  template <typename Done>
  bool wait_for(Done done, int polls = 200) {
    for (int i = 0; i < polls; ++i) {
      if (done(stats())) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }

  HttpResponse publish(const std::string& channel, const std::string& data,
                       const Headers& headers = {}, const std::string& query = "") {
    HttpRequest r;
    r.method = "POST";
    r.target = "/events/" + channel + query;
    r.headers = headers;
    r.body = data;
    return http_request(gateway_.port, r);
  }

  TestDir dir_;
  Service sim_;
  Service gateway_;
};

TEST_F(BroadcastE2E, AThousandSubscribersReceiveAThousandEventsInOrder) {
  constexpr size_t kSubscribers = 1000;
  constexpr uint64_t kEvents = 1000;
  start("queue_events = 2000\n");
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (size_t i = 0; i < kSubscribers; ++i) {
    subs.push_back(std::make_unique<Subscriber>(gateway_.port, "news"));
    ASSERT_TRUE(subs.back()->ok()) << "subscriber " << i;
  }
  // Under the sanitizers a thousand subscribes take a while: a minute at most.
  ASSERT_TRUE(wait_for(
      [&](const json::object& s) { return figure(s, "subscribers") == kSubscribers; }, 1200))
      << json::serialize(stats());

  // One publisher, from another thread while this one reads every subscriber: every POST
  // pipelined on one keep-alive connection (answered in order, so published in order).
  std::thread publisher([&] {
    std::string requests;
    for (uint64_t i = 1; i <= kEvents; ++i) {
      const std::string data = "event-" + std::to_string(i);
      requests += "POST /events/news HTTP/1.1\r\nHost: sluice\r\nContent-Length: " +
                  std::to_string(data.size()) + "\r\n\r\n" + data;
    }
    const RawResult r = raw_exchange(gateway_.port,
                                     requests +
                                         "GET /events/ HTTP/1.1\r\n"
                                         "Host: sluice\r\n"
                                         "Connection: close\r\n\r\n",
                                     milliseconds(180000));
    size_t ok = 0;
    for (size_t at = 0; (at = r.received.find("HTTP/1.1 200 ", at)) != std::string::npos; ++at) {
      ++ok;
    }
    EXPECT_EQ(ok, kEvents) << r.received.substr(0, 400);
  });
  const std::string last =
      "id: " + std::to_string(kEvents) + "\ndata: event-" + std::to_string(kEvents) + "\n\n";
  std::vector<pollfd> fds;
  for (const auto& s : subs) fds.push_back({s->fd(), POLLIN, 0});
  size_t complete = 0;
  std::vector<bool> done(kSubscribers, false);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  while (complete < kSubscribers && std::chrono::steady_clock::now() < deadline) {
    if (::poll(fds.data(), fds.size(), 1000) <= 0) continue;
    for (size_t i = 0; i < kSubscribers; ++i) {
      if (done[i] || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const bool open = subs[i]->read_available();
      if (subs[i]->received().find(last) != std::string::npos || !open) {
        done[i] = true;
        fds[i].fd = -1;
        ++complete;
      }
    }
  }
  publisher.join();
  std::vector<uint64_t> expected(kEvents);
  for (uint64_t i = 0; i < kEvents; ++i) expected[i] = i + 1;
  size_t in_order = 0;
  for (size_t i = 0; i < kSubscribers; ++i) {
    const std::string& text = subs[i]->received();
    const auto ids = event_ids(text);
    if (ids == expected) {
      ++in_order;
    } else if (in_order + 5 > i) {  // report the first few failures only
      ADD_FAILURE() << "subscriber " << i << " got " << ids.size() << " events";
    }
  }
  EXPECT_EQ(in_order, kSubscribers);
  // Every event's data arrived intact (spot check on one subscriber).
  EXPECT_NE(subs[0]->received().find("id: 500\ndata: event-500\n\n"), std::string::npos);
  const json::object s = stats();
  EXPECT_EQ(figure(s, "published"), kEvents);
  EXPECT_EQ(figure(s, "delivered"), kEvents * kSubscribers);
  EXPECT_EQ(figure(s, "dropped"), 0u);
}

TEST_F(BroadcastE2E, LastEventIdReplaysWhatTheSubscriberMissed) {
  start("");
  for (int i = 1; i <= 5; ++i) {
    ASSERT_EQ(publish("replay", "m" + std::to_string(i)).status, 200u);
  }
  Subscriber late(gateway_.port, "replay", "2");
  ASSERT_TRUE(late.read_until("id: 5\ndata: m5\n\n", milliseconds(10000))) << late.received();
  const auto ids = event_ids(late.received());
  EXPECT_EQ(ids, (std::vector<uint64_t>{3, 4, 5})) << late.received();
  // Then the live stream continues.
  ASSERT_EQ(publish("replay", "m6").status, 200u);
  EXPECT_TRUE(late.read_until("id: 6\ndata: m6\n\n", milliseconds(10000))) << late.received();
  // A publisher-supplied id and event name go out as given.
  ASSERT_EQ(publish("replay", "x", {}, "?event=note&id=41").status, 200u);
  EXPECT_TRUE(late.read_until("id: 41\nevent: note\ndata: x\n\n", milliseconds(10000)))
      << late.received();
}

TEST_F(BroadcastE2E, AVanishedSubscriberIsRemovedAtTheNextHeartbeat) {
  start("heartbeat_interval = \"200ms\"\n");
  {
    Subscriber gone(gateway_.port, "quiet");
    ASSERT_TRUE(gone.ok());
    ASSERT_TRUE(wait_for([](const json::object& s) { return figure(s, "subscribers") == 1; }));
    // Nothing is published: only the heartbeat check can find it gone.
  }
  ASSERT_TRUE(wait_for([](const json::object& s) { return figure(s, "subscribers") == 0; }))
      << json::serialize(stats());
  const json::object cleanup = stats().at("cleanup").as_object();
  EXPECT_EQ(figure(cleanup, "vanished_at_heartbeat"), 1u);
  EXPECT_EQ(figure(cleanup, "dead_subscribers_cleaned"), 1u);
  EXPECT_EQ(figure(stats(), "published"), 0u);
}

TEST_F(BroadcastE2E, ASlowSubscriberIsCutAtOnceUnderTheDisconnectPolicy) {
  // A queue of 8 events; the listener's write_timeout (30 s) is longer than every wait here,
  // so only the publish that overflows the queue can cut the connection in time.
  start("slow_client = \"disconnect\"\nmax_history = 8\nqueue_events = 8\n");
  Subscriber slow(gateway_.port, "slow");
  ASSERT_TRUE(slow.ok());
  const int small = 4096;  // a small receive window: the client really does not read
  (void)::setsockopt(slow.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  ASSERT_TRUE(wait_for([](const json::object& s) { return figure(s, "subscribers") == 1; }));
  // 8 MB: more than the socket buffers absorb, then more than the queue holds.
  const std::string data(32 * 1024, 'x');
  for (int i = 0; i < 256; ++i) {
    const HttpResponse r = publish("slow", data);
    ASSERT_EQ(r.status, 200u) << r.body;
    if (json::value_to<uint64_t>(json::parse(r.body).at("disconnected")) > 0) break;
  }
  EXPECT_TRUE(wait_for([](const json::object& s) { return figure(s, "slow_disconnects") == 1; }))
      << json::serialize(stats());
  // The gateway reset the connection (a FIN would wait behind megabytes the client does not
  // read): reading ends at once.
  timeval tv{10, 0};
  (void)::setsockopt(slow.fd(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[65536];
  ssize_t n = 0;
  while ((n = ::recv(slow.fd(), buf, sizeof(buf), 0)) > 0) {
  }
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET))
      << "the slow subscriber's connection is still open: " << std::strerror(errno);
  EXPECT_TRUE(wait_for([](const json::object& s) { return figure(s, "connections") == 0; }))
      << json::serialize(stats());
  EXPECT_EQ(figure(stats().at("cleanup").as_object(), "vanished_at_heartbeat"), 0u);
}

TEST_F(BroadcastE2E, AnIdleChannelExpires) {
  start("channel_ttl = \"300ms\"\ncleanup_interval = \"100ms\"\n");
  ASSERT_EQ(publish("ephemeral", "hello").status, 200u);
  EXPECT_GE(figure(stats(), "channels"), 1u);
  ASSERT_TRUE(wait_for([](const json::object& s) { return figure(s, "channels") == 0; }))
      << json::serialize(stats());
  const json::object cleanup = stats().at("cleanup").as_object();
  EXPECT_EQ(figure(cleanup, "channels_expired"), 1u);
  EXPECT_GE(figure(cleanup, "cleanup_runs"), 1u);
}

TEST_F(BroadcastE2E, PublishingNeedsTheTokenWhenOneIsSet) {
  start("publish_token = \"s3cret\"\n");
  EXPECT_EQ(publish("locked", "a").status, 401u);
  EXPECT_EQ(publish("locked", "a", {{"Authorization", "Bearer nope"}}).status, 403u);
  const HttpResponse ok = publish("locked", "a", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(ok.status, 200u) << ok.body;
  EXPECT_NE(ok.body.find("\"id\":\"1\""), std::string::npos) << ok.body;
  EXPECT_EQ(publish("bad channel!", "a", {{"Authorization", "Bearer s3cret"}}).status, 400u);
}

TEST_F(BroadcastE2E, SubscriberCheckIsDelegatedToTheUpstream) {
  // The sim answers /auth with the status its query asks for.
  start("auth_upstream = \"sim\"\nauth_path = \"/auth?status=403\"\n");
  const HttpResponse refused = http_get(gateway_.port, "/events/private");
  EXPECT_EQ(refused.status, 403u) << refused.body;
  EXPECT_NE(refused.body.find("subscribe_refused"), std::string::npos) << refused.body;
  EXPECT_EQ(path_count(sim_stats(sim_.port), "/auth"), 1u);
}

}  // namespace
}  // namespace sluice::e2e
