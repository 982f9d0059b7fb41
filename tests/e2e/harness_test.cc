// The end-to-end harness, verified against `sluice sim-upstream` run as a process (and an
// in-process http::Server for the slow-client probe): spawning, ready files, signals, exit
// codes, concurrent requests and raw probes.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "sluice/http/server.h"
#include "tests/e2e/http_probe.h"
#include "tests/e2e/process.h"
#include "tests/e2e/services.h"

namespace sluice::e2e {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

using SimProcess = Service;

SimProcess start_sim(const TestDir& dir, std::vector<std::string> extra = {}) {
  return start_sim_upstream(dir, std::move(extra));
}

void stop_sim(SimProcess& sim) { stop_service(sim, "sim-upstream"); }

TEST(SimUpstreamProcess, ServesCountsAndStopsOnSigterm) {
  TestDir dir;
  SimProcess sim = start_sim(dir, {"--latency", "10ms"});
  ASSERT_NE(sim.port, 0);

  const HttpResponse a = http_get(sim.port, "/x?cc=max-age%3D60");
  ASSERT_EQ(a.status, 200u) << a.ec.message();
  EXPECT_EQ(a.header("cache-control"), "max-age=60");
  EXPECT_EQ(a.header("X-Sim-Seq"), "1");
  ASSERT_EQ(http_get(sim.port, "/x").status, 200u);
  auto stats = sim_stats(sim.port);
  EXPECT_EQ(stats.at("requests").as_int64(), 2);
  EXPECT_EQ(path_count(stats, "/x"), 2u);

  HttpRequest reset;
  reset.method = "POST";
  reset.target = "/__sim/reset";
  ASSERT_EQ(http_request(sim.port, reset).status, 200u);
  EXPECT_EQ(sim_stats(sim.port).at("requests").as_int64(), 0);

  HttpRequest get;
  get.target = "/y";
  const auto replies = fire_identical(sim.port, get, 50, milliseconds(15000));
  size_t ok = 0;
  for (const auto& r : replies) ok += r.status == 200 ? 1 : 0;
  EXPECT_EQ(ok, 50u);
  EXPECT_EQ(path_count(sim_stats(sim.port), "/y"), 50u);

  stop_sim(sim);
  EXPECT_NE(sim.child.stdout_text().find("listening on 127.0.0.1:"), std::string::npos);
}

TEST(SimUpstreamProcess, StreamsTokensAsServerSentEvents) {
  TestDir dir;
  SimProcess sim = start_sim(dir, {"--latency", "0ms", "--token-interval", "1ms"});
  ASSERT_NE(sim.port, 0);
  HttpRequest chat;
  chat.method = "POST";
  chat.target = "/v1/chat/completions";
  chat.headers = {{"Content-Type", "application/json"}};
  chat.body = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";
  const HttpResponse r = http_request(sim.port, chat);
  ASSERT_EQ(r.status, 200u) << r.ec.message();
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  EXPECT_TRUE(r.body.starts_with("data: {")) << r.body;
  EXPECT_TRUE(r.body.ends_with("data: [DONE]\n\n")) << r.body;
  chat.body = R"({"model":"m","messages":[{"role":"user","content":"hi"}]})";
  const HttpResponse whole = http_request(sim.port, chat);
  ASSERT_EQ(whole.status, 200u);
  EXPECT_EQ(json::parse(whole.body).at("object").as_string(), "chat.completion");
  stop_sim(sim);
}

// N concurrent /hang requests are all in flight at once (the sim's gauge sees N), and SIGTERM
// releases them and ends the process without waiting for a drain timeout to cut them.
TEST(SimUpstreamProcess, ConcurrentHangsAreReleasedBySigterm) {
  TestDir dir;
  SimProcess sim = start_sim(dir);
  ASSERT_NE(sim.port, 0);
  constexpr size_t kN = 20;
  std::vector<HttpResponse> replies;
  std::thread client([&] {
    HttpRequest hang;
    hang.target = "/hang";
    replies = fire_identical(sim.port, hang, kN, milliseconds(15000));
  });
  int64_t active = 0;
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(10000);
  while (active < static_cast<int64_t>(kN) && std::chrono::steady_clock::now() < deadline) {
    active = sim_stats(sim.port).at("hangs_active").as_int64();
  }
  EXPECT_EQ(active, static_cast<int64_t>(kN));
  stop_sim(sim);
  client.join();
  ASSERT_EQ(replies.size(), kN);
  for (const auto& r : replies) {
    EXPECT_EQ(r.status, 503u) << r.ec.message();
    EXPECT_NE(r.body.find("\"error\""), std::string::npos);
  }
}

TEST(SimUpstreamProcess, ResetCutsTheResponseBody) {
  TestDir dir;
  SimProcess sim = start_sim(dir, {"--latency", "0ms"});
  ASSERT_NE(sim.port, 0);
  const HttpResponse r = http_get(sim.port, "/reset");
  EXPECT_EQ(r.status, 200u);
  EXPECT_TRUE(r.ec) << "expected a cut body, got " << r.body.size() << " bytes";
  EXPECT_EQ(path_count(sim_stats(sim.port), "/reset"), 1u);
  stop_sim(sim);
}

TEST(SimUpstreamProcess, BadFlagsExitWithTwo) {
  TestDir dir;
  for (const auto& flags : std::vector<std::vector<std::string>>{
           {"--latency", "soon"}, {"--listen", "nowhere"}, {"--no-such-flag"}}) {
    std::vector<std::string> argv = {sluice_binary(), "sim-upstream"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    const RunResult r = run_to_completion(argv, dir, "bad", milliseconds(10000));
    ASSERT_FALSE(r.timed_out) << flags.front();
    EXPECT_TRUE(r.status.exited) << r.status.describe();
    EXPECT_EQ(r.status.code, 2) << flags.front() << ": " << r.err;
  }
}

TEST(SimUpstreamProcess, HeaderLimitAnswers431OverRawSocket) {
  TestDir dir;
  SimProcess sim = start_sim(dir, {"--latency", "0ms"});
  ASSERT_NE(sim.port, 0);
  const std::string head =
      "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(64 * 1024, 'b') + "\r\n\r\n";
  const RawResult r = raw_exchange(sim.port, head, milliseconds(10000));
  ASSERT_FALSE(r.connect_ec) << r.connect_ec.message();
  EXPECT_EQ(r.status(), 431u) << r.received.substr(0, 200);
  EXPECT_TRUE(r.closed_by_peer);
  HttpRequest big;
  big.target = "/big";
  big.headers = {{"X-Big", std::string(60 * 1024, 'b')}};
  const HttpResponse via_client = http_request(sim.port, big);
  EXPECT_EQ(via_client.status, 431u) << via_client.ec.message();
  stop_sim(sim);
}

// Harness pieces that need no sluice binary.

TEST(Harness, ClosedPortRefusesConnections) {
  const uint16_t port = closed_port();
  ASSERT_NE(port, 0);
  const HttpResponse r = http_get(port, "/", {}, milliseconds(5000));
  EXPECT_EQ(r.status, 0u);
  EXPECT_TRUE(r.ec);
}

TEST(Harness, RunToCompletionIsBoundedAndReportsSignals) {
  TestDir dir;
  const RunResult slow = run_to_completion({"/bin/sleep", "30"}, dir, "sleep", milliseconds(50));
  EXPECT_TRUE(slow.timed_out);
  EXPECT_FALSE(slow.status.exited);
  EXPECT_EQ(slow.status.signal, SIGKILL);
  const RunResult quick = run_to_completion({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"},
                                            dir, "sh", milliseconds(10000));
  EXPECT_FALSE(quick.timed_out);
  EXPECT_TRUE(quick.status.exited);
  EXPECT_EQ(quick.status.code, 3);
  EXPECT_EQ(quick.out, "out\n");
  EXPECT_EQ(quick.err, "err\n");
  const RunResult missing =
      run_to_completion({"/no/such/binary"}, dir, "missing", milliseconds(1000));
  EXPECT_FALSE(missing.status.exited && missing.status.code == 0);
}

TEST(Harness, ReadyFileWaitEndsWhenTheChildExits) {
  TestDir dir;
  ChildProcess child = ChildProcess::spawn({"/bin/sh", "-c", "exit 7"}, dir, "early");
  ASSERT_TRUE(child.running());
  EXPECT_FALSE(child.wait_ready_file(dir.file("never.json"), milliseconds(10000)));
  ASSERT_TRUE(child.exit_status());
  EXPECT_EQ(child.exit_status()->code, 7);
}

TEST(Harness, SlowlorisIsCutByTheHeaderTimeout) {
  http::ServerOptions options;
  options.workers = 1;
  options.header_timeout = milliseconds(300);
  http::Server server(options,
                      [](http::Request&, http::ResponseWriter& w) -> boost::asio::awaitable<void> {
                        (void)co_await w.send(boost::beast::http::status::ok, {}, "ok");
                      });
  ASSERT_FALSE(server.start());
  const RawResult r = slowloris(server.port(), "GET / HTTP/1.1\r\nHost: x\r\n", milliseconds(50),
                                milliseconds(10000));
  ASSERT_FALSE(r.connect_ec);
  EXPECT_TRUE(r.closed_by_peer);
  EXPECT_FALSE(r.bound_expired);
  EXPECT_EQ(r.status(), 408u) << r.received;
  server.stop();
  server.wait();
  EXPECT_EQ(server.stats().header_timeouts, 1u);
}

}  // namespace
}  // namespace sluice::e2e
