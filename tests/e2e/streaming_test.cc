// End-to-end tests of streamed answers: the real `sluice serve` in front of the real
// `sluice sim-upstream`'s event streams (/events), both child processes on loopback.
//
// Waits are bounded; no test asserts how long anything took. The memory test reads the
// gateway's peak RSS (VmHWM) from /proc and checks it against the documented bound.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
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

// Event i of the sim's /events, written independently of the sim's own code.
std::string expected_event(uint64_t i, size_t size) {
  std::string data(size, ' ');
  for (size_t j = 0; j < size; ++j) data[j] = static_cast<char>('a' + (i + j) % 26);
  return "id: " + std::to_string(i) + "\ndata: " + data + "\n\n";
}

// A kB figure of /proc/<pid>/status ("VmRSS", "VmHWM"), in bytes; 0 when unreadable.
uint64_t proc_status_bytes(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
  }
  return 0;
}

// Sockets that send one request each and never read the answer; closed on destruction.
class SilentClients {
 public:
  SilentClients(uint16_t port, const std::string& request, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0) continue;
      const int small = 4096;  // a small receive window: the client really does not read
      (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(port);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
          ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
              static_cast<ssize_t>(request.size())) {
        ::close(fd);
        continue;
      }
      fds_.push_back(fd);
    }
  }
  ~SilentClients() {
    for (int fd : fds_) ::close(fd);
  }
  SilentClients(const SilentClients&) = delete;
  SilentClients& operator=(const SilentClients&) = delete;
  [[nodiscard]] size_t size() const { return fds_.size(); }
  [[nodiscard]] const std::vector<int>& fds() const { return fds_; }

 private:
  std::vector<int> fds_;
};

class StreamingE2E : public ::testing::Test {
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

  // One upstream (the sim) and one route whose `[route.stream]` table gets `stream_lines`.
  void start(const std::string& stream_lines, const std::string& listener_lines = "") {
    const std::string toml = "[server]\nworkers = 2\ndata_dir = \"" + dir_.file("data") +
                             "\"\n\n[listener]\naddress = \"127.0.0.1\"\nport = 0\n" +
                             listener_lines +
                             "\n[admin]\naddress = \"127.0.0.1\"\nport = 0\n"
                             "\n[[upstream]]\nname = \"sim\"\nurl = \"http://127.0.0.1:" +
                             std::to_string(sim_.port) +
                             "\"\n\n[[route]]\nname = \"events\"\nupstream = \"sim\"\n"
                             "\n[route.stream]\n" +
                             stream_lines;
    gateway_ = start_gateway(dir_, {"--config", dir_.write_file("sluice.toml", toml)});
    ASSERT_NE(gateway_.port, 0);
    ASSERT_NE(gateway_.admin_port, 0);
  }

  [[nodiscard]] json::object admin_streams() {
    const HttpResponse r = http_get(gateway_.admin_port, "/admin/streams");
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec || !v.is_object()) {
      ADD_FAILURE() << "GET /admin/streams: " << r.status << " " << r.body;
      return {};
    }
    return v.as_object();
  }

  static uint64_t ended(const json::object& streams, const std::string& outcome) {
    return json::value_to<uint64_t>(streams.at("ended").as_object().at(outcome));
  }

  // A stream is counted once its handler returns, just after its client saw the end: polls
  // until `outcome` reached `want` (at most ~10 s) and returns the last figure.
  uint64_t wait_ended(const std::string& outcome, uint64_t want) {
    uint64_t n = 0;
    for (int i = 0; i < 200; ++i) {
      n = ended(admin_streams(), outcome);
      if (n >= want) break;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return n;
  }

  // Polls /admin/streams (at most ~8 s) until `done` holds for it; false when it never did.
  template <typename Done>
  bool wait_streams(Done done) {
    for (int i = 0; i < 400; ++i) {
      if (done(admin_streams())) return true;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }
  // Some client already received bytes of a stream in progress.
  static bool streaming(const json::object& s) {
    const auto& streams = s.at("streams").as_array();
    return std::any_of(streams.begin(), streams.end(), [](const json::value& e) {
      return json::value_to<uint64_t>(e.at("client_bytes")) > 0;
    });
  }
  // Polls until the coalesced streams' figure `name` is not zero (at most ~8 s); returns it.
  uint64_t wait_shared(const std::string& name) {
    uint64_t n = 0;
    (void)wait_streams([&](const json::object& s) {
      n = json::value_to<uint64_t>(s.at("shared").at(name));
      return n != 0;
    });
    return n;
  }
  // A client joined a coalesced stream.
  static bool joined(const json::object& s) {
    return json::value_to<uint64_t>(s.at("shared").at("joins")) >= 1;
  }

  TestDir dir_;
  Service sim_;
  Service gateway_;
};

TEST_F(StreamingE2E, FastClientReceivesEveryEventInOrderByteExact) {
  start("");
  const HttpResponse r =
      http_get(gateway_.port, "/events?n=3000&size=200", {}, milliseconds(30000));
  ASSERT_FALSE(r.ec) << r.ec.message();
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  std::string expected;
  for (uint64_t i = 1; i <= 3000; ++i) expected += expected_event(i, 200);
  ASSERT_EQ(r.body.size(), expected.size());
  EXPECT_TRUE(r.body == expected) << "the stream differs from what the upstream sent";

  EXPECT_EQ(wait_ended("completed", 1), 1u);
  const json::object streams = admin_streams();
  EXPECT_EQ(json::value_to<uint64_t>(streams.at("events")), 3000u) << json::serialize(streams);
}

TEST_F(StreamingE2E, StalledUpstreamEndsTheStreamWithAnErrorEvent) {
  start("stall_timeout = \"300ms\"\n");
  // Three events, then the upstream stays open and silent until it stops: only the stall
  // timeout can end this request within the bound.
  const HttpResponse r = http_get(gateway_.port, "/events?n=3&size=10&stall=1");
  ASSERT_FALSE(r.ec) << "the stream must end cleanly, not be cut: " << r.ec.message();
  ASSERT_EQ(r.status, 200u);
  const std::string events = expected_event(1, 10) + expected_event(2, 10) + expected_event(3, 10);
  EXPECT_EQ(r.body.substr(0, events.size()), events);
  EXPECT_NE(r.body.find("event: error\ndata: {\"error\":\"upstream_stalled\"", events.size()),
            std::string::npos)
      << r.body;
  EXPECT_EQ(wait_ended("stalled", 1), 1u);
}

// Under ASan or TSan the gateway (built with the same sanitizer) holds shadow memory and a
// quarantine of freed blocks: its RSS says nothing about sluice, so only the per-stream buffer
// bounds are checked there; the release build checks the RSS bound too.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kRssIsSluices = false;
#else
constexpr bool kRssIsSluices = true;
#endif

TEST_F(StreamingE2E, NonReadingClientsKeepTheGatewaysMemoryBounded) {
  // The documented bound (docs/configuration.md, route.stream): each stream holds at most
  // buffer_bytes in its buffer plus a fixed per-stream cost (upstream read buffer, client
  // connection, coroutine frames), which docs state as 96 KiB.
  constexpr uint64_t kClients = 200;
  constexpr uint64_t kBufferBytes = 64 * 1024;
  constexpr uint64_t kPerStream = 96 * 1024;
  start("buffer_bytes = \"64KiB\"\nslow_client = \"block\"\n", "write_timeout = \"120s\"\n");
  // Warm up: the first stream and admin request allocate what every later one reuses.
  ASSERT_EQ(http_get(gateway_.port, "/events?n=10&size=100").status, 200u);
  (void)admin_streams();
  const pid_t pid = gateway_.child.pid();
  const uint64_t idle = proc_status_bytes(pid, "VmHWM");
  ASSERT_GT(idle, 0u);

  // 200 clients ask for 2 MB streams (500 events of 4,000 bytes) and never read.
  const std::string request = "GET /events?n=500&size=4000 HTTP/1.1\r\nHost: sluice\r\n\r\n";
  SilentClients clients(gateway_.port, request, kClients);
  ASSERT_EQ(clients.size(), kClients);

  // Wait until every stream started and the bytes stopped moving (every stream is blocked
  // behind its client or done): seconds in release, a minute or two under TSan.
  uint64_t last_bytes = ~0ull;
  bool steady = false;
  for (int i = 0; i < 600 && !steady; ++i) {
    std::this_thread::sleep_for(milliseconds(300));
    const json::object s = admin_streams();
    const auto started = json::value_to<uint64_t>(s.at("started"));
    const auto bytes = json::value_to<uint64_t>(s.at("upstream_bytes"));
    steady = started >= kClients + 1 && bytes == last_bytes;
    last_bytes = bytes;
  }
  ASSERT_TRUE(steady) << "the streams did not settle: " << json::serialize(admin_streams());
  const json::object s = admin_streams();
  for (const auto& stream : s.at("streams").as_array()) {
    EXPECT_LE(json::value_to<uint64_t>(stream.at("buffered_bytes")), kBufferBytes);
    EXPECT_LE(stream.at("fill_high_water").to_number<double>(), 1.0);  // never past the bound
  }
  const uint64_t peak = proc_status_bytes(pid, "VmHWM");
  const uint64_t bound = idle + kClients * (kBufferBytes + kPerStream);
  if (kRssIsSluices) {
    EXPECT_LE(peak, bound) << "peak RSS " << peak / 1024 << " KiB, idle " << idle / 1024
                           << " KiB, bound " << bound / 1024 << " KiB; "
                           << json::serialize(s.at("active"));
  }
  std::cout << "[ memory ] idle peak " << idle / 1024 << " KiB, with " << kClients
            << " silent streams " << peak / 1024 << " KiB ("
            << (peak - std::min(peak, idle)) / kClients / 1024 << " KiB per stream), bound "
            << bound / 1024 << " KiB\n";
}

TEST_F(StreamingE2E, SlowClientIsDisconnectedUnderTheDisconnectPolicy) {
  start("buffer_bytes = \"16KiB\"\nbuffer_chunks = 8\nslow_client = \"disconnect\"\n",
        "write_timeout = \"120s\"\n");
  // 16 MB that the client never reads: more than the kernel's socket buffers can absorb.
  SilentClients client(gateway_.port,
                       "GET /events?n=4000&size=4000 HTTP/1.1\r\nHost: sluice\r\n\r\n", 1);
  ASSERT_EQ(client.size(), 1u);
  EXPECT_EQ(wait_ended("slow_client", 1), 1u) << json::serialize(admin_streams());
  // The gateway closed the connection: reading drains what was sent, then ends.
  const int fd = client.fds().front();
  timeval tv{10, 0};
  (void)::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[65536];
  uint64_t got = 0;
  ssize_t n = 0;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) got += static_cast<uint64_t>(n);
  EXPECT_TRUE(n == 0 || (n < 0 && errno == ECONNRESET)) << std::strerror(errno);
  EXPECT_LT(got, 4000u * 4000u) << "the slow client received the whole stream";
}

TEST_F(StreamingE2E, AdminStreamsListsAStreamInProgressWithItsState) {
  start("");
  // A stream that lasts: 100 events, 100 ms apart (10 s, ample even under a sanitizer).
  std::atomic<bool> done{false};
  std::thread reader([&] {
    (void)http_get(gateway_.port, "/events?n=100&size=10&interval_ms=100", {}, milliseconds(60000));
    done = true;
  });
  json::object seen;
  while (!done) {
    std::this_thread::sleep_for(milliseconds(50));
    seen = admin_streams();
    if (!seen.at("streams").as_array().empty()) break;
  }
  reader.join();
  ASSERT_FALSE(seen.at("streams").as_array().empty()) << json::serialize(seen);
  const auto& stream = seen.at("streams").as_array().front().as_object();
  EXPECT_EQ(stream.at("route").as_string(), "events");
  EXPECT_EQ(stream.at("slow_client").as_string(), "block");
  EXPECT_TRUE(stream.at("event_stream").as_bool());
  const std::string state(stream.at("state").as_string());
  EXPECT_TRUE(state == "NORMAL" || state == "WARNING" || state == "THROTTLED" || state == "BLOCKED")
      << state;
  const HttpResponse bad = http_get(gateway_.admin_port, "/admin/streams?limit=zero");
  EXPECT_EQ(bad.status, 400u) << bad.body;
}

// ---------------------------------------------------------------------------------------
// Stream coalescing and caching (route.stream.coalesce / cache)

// Every event of /events?n=`n`&size=`size`, in order.
std::string expected_events(uint64_t n, size_t size) {
  std::string out;
  for (uint64_t i = 1; i <= n; ++i) out += expected_event(i, size);
  return out;
}

TEST_F(StreamingE2E, LateJoinerOfACoalescedStreamGetsTheReplayThenTheLiveStream) {
  start("coalesce = true\n");
  // 40 events, 50 ms apart (2 s): long enough for a second client to join in the middle.
  const std::string target = "/events?n=40&size=10&interval_ms=50&cc=max-age%3D60";
  HttpResponse first;
  std::thread leader([&] { first = http_get(gateway_.port, target, {}, milliseconds(60000)); });
  // Join once the leader's client has received some of the stream.
  ASSERT_TRUE(wait_streams(streaming)) << json::serialize(admin_streams());
  const HttpResponse late = http_get(gateway_.port, target, {}, milliseconds(60000));
  leader.join();

  const std::string expected = expected_events(40, 10);
  ASSERT_EQ(first.status, 200u) << first.ec.message();
  EXPECT_EQ(first.header("x-cache"), "MISS");
  EXPECT_TRUE(first.body == expected) << first.body;
  ASSERT_EQ(late.status, 200u) << late.ec.message();
  EXPECT_EQ(late.header("x-cache"), "COALESCED");
  EXPECT_TRUE(late.body == expected) << "the late joiner's stream differs: " << late.body;
  EXPECT_EQ(json::value_to<uint64_t>(sim_stats(sim_.port).at("streams")), 1u)
      << "both clients must share one upstream stream";
  const json::object shared = admin_streams().at("shared").as_object();
  EXPECT_EQ(json::value_to<uint64_t>(shared.at("joins")), 2u) << json::serialize(shared);
  EXPECT_EQ(json::value_to<uint64_t>(shared.at("late_joins")), 1u) << json::serialize(shared);
  EXPECT_GT(json::value_to<uint64_t>(shared.at("replayed_bytes")), 0u);
}

TEST_F(StreamingE2E, SlowJoinerOfACoalescedStreamDoesNotDelayAFastOne) {
  // A joiner's buffer holds 1 MiB (a quarter second of this stream: slack for a busy machine);
  // the stream is 16 MB, more than the kernel's socket buffers (4 MB) and that buffer absorb
  // for a client that does not read.
  start("coalesce = true\nbuffer_bytes = \"1MiB\"\nbuffer_chunks = 256\n",
        "write_timeout = \"120s\"\n");
  const std::string target = "/events?n=4000&size=4000&interval_ms=1&cc=max-age%3D60";
  // The slow client joins first and never reads.
  SilentClients slow(gateway_.port, "GET " + target + " HTTP/1.1\r\nHost: sluice\r\n\r\n", 1);
  ASSERT_EQ(slow.size(), 1u);
  ASSERT_TRUE(wait_streams(joined)) << json::serialize(admin_streams());
  // The fast client joins the same upstream stream and must get all of it, although the
  // slow one accepts nothing: had the reader waited for the slow one, this would never end.
  const HttpResponse fast =
      http_get(gateway_.port, target, {{"Host", "sluice"}}, milliseconds(120000));
  ASSERT_FALSE(fast.ec) << fast.ec.message();
  ASSERT_EQ(fast.status, 200u);
  EXPECT_EQ(fast.header("x-cache"), "COALESCED");
  const std::string expected = expected_events(4000, 4000);
  ASSERT_EQ(fast.body.size(), expected.size());
  EXPECT_TRUE(fast.body == expected) << "the fast joiner's stream differs from the upstream's";
  // The slow one was ended alone at its bound.
  EXPECT_GE(wait_ended("slow_client", 1), 1u) << json::serialize(admin_streams());
  const json::object shared = admin_streams().at("shared").as_object();
  EXPECT_GE(json::value_to<uint64_t>(shared.at("slow_joiners")), 1u) << json::serialize(shared);
  EXPECT_EQ(json::value_to<uint64_t>(sim_stats(sim_.port).at("streams")), 1u);
}

TEST_F(StreamingE2E, NoCacheStreamIsSharedInFlightButNeverStored) {
  start("coalesce = true\ncache = true\n");
  // What LLM APIs send on their event streams: shared while in flight, never replayed.
  const std::string target = "/events?n=20&size=10&interval_ms=50&cc=no-cache";
  HttpResponse first;
  std::thread leader([&] { first = http_get(gateway_.port, target, {}, milliseconds(60000)); });
  ASSERT_TRUE(wait_streams(joined)) << json::serialize(admin_streams());
  const HttpResponse second = http_get(gateway_.port, target, {}, milliseconds(60000));
  leader.join();
  const std::string expected = expected_events(20, 10);
  EXPECT_EQ(first.body, expected);
  EXPECT_EQ(second.body, expected);
  EXPECT_EQ(second.header("x-cache"), "COALESCED");
  EXPECT_EQ(json::value_to<uint64_t>(sim_stats(sim_.port).at("streams")), 1u);
  const HttpResponse after = http_get(gateway_.port, target, {}, milliseconds(60000));
  EXPECT_EQ(after.header("x-cache"), "MISS") << "a no-cache stream must never be replayed";
  EXPECT_EQ(after.body, expected);
  EXPECT_EQ(json::value_to<uint64_t>(admin_streams().at("shared").at("stored")), 0u);
}

TEST_F(StreamingE2E, ACoalescedStreamEveryoneLeftIsAbandonedNotFailed) {
  start("coalesce = true\n");
  // 100 events 100 ms apart: the reader waits on the upstream most of the time.
  const std::string request =
      "GET /events?n=100&size=10&interval_ms=100&cc=no-cache HTTP/1.1\r\nHost: sluice\r\n\r\n";
  {
    SilentClients client(gateway_.port, request, 1);
    ASSERT_EQ(client.size(), 1u);
    ASSERT_TRUE(wait_streams(streaming)) << json::serialize(admin_streams());
  }  // the client closes its connection
  const uint64_t abandoned = wait_shared("abandoned");
  const json::object shared = admin_streams().at("shared").as_object();
  EXPECT_EQ(abandoned, 1u) << json::serialize(shared);
  EXPECT_EQ(json::value_to<uint64_t>(shared.at("failed")), 0u) << json::serialize(shared);
  EXPECT_EQ(json::value_to<uint64_t>(shared.at("active")), 0u) << json::serialize(shared);
}

TEST_F(StreamingE2E, CompletedStreamIsCachedAndReplayedAFailedOneIsNot) {
  start("coalesce = true\ncache = true\nstall_timeout = \"300ms\"\n");
  const std::string target = "/events?n=5&size=20&cc=max-age%3D60";
  const HttpResponse miss = http_get(gateway_.port, target);
  ASSERT_EQ(miss.status, 200u) << miss.ec.message();
  EXPECT_EQ(miss.header("x-cache"), "MISS");
  EXPECT_EQ(miss.body, expected_events(5, 20));
  // Stored once its reader ended: poll until the stream is counted as stored.
  ASSERT_EQ(wait_shared("stored"), 1u) << json::serialize(admin_streams());
  const HttpResponse hit = http_get(gateway_.port, target);
  ASSERT_EQ(hit.status, 200u);
  EXPECT_EQ(hit.header("x-cache"), "HIT");
  EXPECT_EQ(hit.header("content-type"), "text/event-stream");
  EXPECT_EQ(hit.body, miss.body) << "the replay differs from the stream";

  // A stream that stalls ends with an error event and is not stored: the next request goes
  // upstream again.
  const std::string stalls = "/events?n=3&size=20&stall=1&cc=max-age%3D60";
  const HttpResponse failed = http_get(gateway_.port, stalls);
  ASSERT_EQ(failed.status, 200u);
  EXPECT_NE(failed.body.find("event: error\ndata: {\"error\":\"upstream_stalled\""),
            std::string::npos)
      << failed.body;
  EXPECT_EQ(wait_shared("failed"), 1u) << json::serialize(admin_streams());
  const HttpResponse again = http_get(gateway_.port, stalls);
  EXPECT_EQ(again.header("x-cache"), "MISS") << "a failed stream must never be replayed";
  EXPECT_EQ(json::value_to<uint64_t>(sim_stats(sim_.port).at("streams")), 3u);
}

}  // namespace
}  // namespace sluice::e2e
