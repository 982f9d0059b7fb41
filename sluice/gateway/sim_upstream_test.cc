#include "sluice/gateway/sim_upstream.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/dynamic_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace sluice::gateway {
namespace {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
namespace json = boost::json;
using asio::ip::tcp;

struct Reply {
  boost::system::error_code ec;  // transport or parse error (e.g. a cut body)
  unsigned status = 0;
  bh::fields headers;
  std::string body;
  bool chunked = false;
};

// One blocking request on a fresh connection.
Reply fetch(uint16_t port, bh::verb method, std::string target, std::string body = {},
            std::vector<std::pair<std::string, std::string>> extra = {}) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  Reply reply;
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), reply.ec);
  if (reply.ec) return reply;
  bh::request<bh::string_body> req(method, target, 11);
  req.set(bh::field::host, "127.0.0.1");
  for (auto& [k, v] : extra) req.set(k, v);
  req.body() = std::move(body);
  req.prepare_payload();
  bh::write(socket, req, reply.ec);
  if (reply.ec) return reply;
  boost::beast::flat_buffer buffer;
  bh::response_parser<bh::string_body> parser;
  parser.body_limit(256 * 1024 * 1024);
  if (method == bh::verb::head) parser.skip(true);
  bh::read(socket, buffer, parser, reply.ec);
  reply.chunked = parser.chunked();
  if (!parser.is_header_done()) return reply;
  auto& res = parser.get();
  reply.status = res.result_int();
  reply.headers = res.base();
  reply.body = res.body();
  return reply;
}

Reply get(uint16_t port, std::string target,
          std::vector<std::pair<std::string, std::string>> extra = {}) {
  return fetch(port, bh::verb::get, std::move(target), {}, std::move(extra));
}

SimUpstreamOptions fast_options() {
  SimUpstreamOptions o;
  o.workers = 2;
  o.latency = std::chrono::milliseconds(0);
  o.token_interval = std::chrono::milliseconds(0);
  o.tokens_per_answer = 8;
  return o;
}

class SimUpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(sim_.start()) << "sim upstream did not start"; }
  void TearDown() override {
    sim_.stop();
    sim_.wait();
  }
  SimUpstream sim_{fast_options()};
};

std::string chat_body(std::string_view question, bool stream = false) {
  json::object msg{{"role", "user"}, {"content", question}};
  json::object body{{"model", "m-test"}, {"messages", json::array{msg}}};
  if (stream) body["stream"] = true;
  return json::serialize(body);
}

TEST_F(SimUpstreamTest, ChatCompletionIsDeterministicPerQuestion) {
  const Reply a1 = fetch(sim_.port(), bh::verb::post, "/v1/chat/completions", chat_body("hi"));
  const Reply a2 = fetch(sim_.port(), bh::verb::post, "/v1/chat/completions", chat_body("hi"));
  const Reply b = fetch(sim_.port(), bh::verb::post, "/v1/chat/completions", chat_body("bye"));
  ASSERT_EQ(a1.status, 200u) << a1.ec.message();
  ASSERT_EQ(b.status, 200u);
  EXPECT_EQ(a1.body, a2.body);
  EXPECT_NE(a1.body, b.body);
  const json::object obj = json::parse(a1.body).as_object();
  EXPECT_EQ(obj.at("object").as_string(), "chat.completion");
  EXPECT_EQ(obj.at("model").as_string(), "m-test");
  const auto& message = obj.at("choices").as_array().at(0).as_object().at("message").as_object();
  EXPECT_EQ(message.at("role").as_string(), "assistant");
  const std::string content(message.at("content").as_string());
  EXPECT_EQ(content, SimUpstream::answer_for(
                         json::serialize(json::parse(R"([{"role":"user","content":"hi"}])")), 8));
  EXPECT_EQ(obj.at("usage").as_object().at("completion_tokens").as_int64(), 8);
  EXPECT_EQ(sim_.stats().by_path.at("/v1/chat/completions"), 3u);
}

TEST_F(SimUpstreamTest, ChatCompletionByGetQuery) {
  const Reply a = get(sim_.port(), "/v1/chat/completions?q=weather");
  const Reply b = get(sim_.port(), "/v1/chat/completions?q=weather");
  ASSERT_EQ(a.status, 200u);
  EXPECT_EQ(a.body, b.body);
  const auto content =
      json::parse(a.body).at("choices").as_array().at(0).at("message").at("content").as_string();
  EXPECT_EQ(std::string(content), SimUpstream::answer_for("weather", 8));
}

TEST_F(SimUpstreamTest, StreamSendsOneEventPerTokenThenDone) {
  const Reply r =
      fetch(sim_.port(), bh::verb::post, "/v1/chat/completions", chat_body("tell", true));
  ASSERT_EQ(r.status, 200u) << r.ec.message();
  EXPECT_TRUE(r.chunked);
  EXPECT_EQ(r.headers[bh::field::content_type], "text/event-stream");
  std::string joined;
  size_t events = 0;
  bool done = false;
  size_t at = 0;
  while (at < r.body.size()) {
    const size_t end = r.body.find("\n\n", at);
    ASSERT_NE(end, std::string::npos) << "unterminated event";
    const std::string event = r.body.substr(at, end - at);
    at = end + 2;
    ASSERT_TRUE(event.starts_with("data: ")) << event;
    const std::string data = event.substr(6);
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    ASSERT_FALSE(done) << "event after [DONE]";
    ++events;
    const auto chunk = json::parse(data).as_object();
    EXPECT_EQ(chunk.at("object").as_string(), "chat.completion.chunk");
    joined +=
        std::string(chunk.at("choices").as_array().at(0).at("delta").at("content").as_string());
  }
  EXPECT_TRUE(done);
  EXPECT_EQ(events, 8u);
  EXPECT_EQ(joined, SimUpstream::answer_for(
                        json::serialize(json::parse(R"([{"role":"user","content":"tell"}])")), 8));
  EXPECT_EQ(sim_.stats().streams, 1u);
}

TEST_F(SimUpstreamTest, KnobsShapeTheResponse) {
  const Reply r =
      get(sim_.port(), "/item?status=203&cc=max-age%3D60&vary=Accept&set_cookie=1&size=100");
  ASSERT_EQ(r.status, 203u);
  EXPECT_EQ(r.headers[bh::field::cache_control], "max-age=60");
  EXPECT_EQ(r.headers[bh::field::vary], "Accept");
  EXPECT_EQ(r.headers[bh::field::set_cookie], "sim=1; Path=/");
  EXPECT_EQ(r.body.size(), 100u);
  EXPECT_EQ(r.headers["X-Sim-Seq"], "1");
  EXPECT_FALSE(r.chunked);

  const Reply c = get(sim_.port(), "/item?chunked=1&size=10000");
  ASSERT_EQ(c.status, 200u);
  EXPECT_TRUE(c.chunked);
  EXPECT_EQ(c.body.size(), 10000u);

  const Reply plain = get(sim_.port(), "/other");
  ASSERT_EQ(plain.status, 200u);
  const auto obj = json::parse(plain.body).as_object();
  EXPECT_EQ(obj.at("path").as_string(), "/other");
  EXPECT_EQ(obj.at("method").as_string(), "GET");
  EXPECT_EQ(obj.at("seq").as_int64(), 3);

  const Reply bad = get(sim_.port(), "/item?status=abc");
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(sim_.stats().bad_knobs, 1u);
}

TEST_F(SimUpstreamTest, EtagAnswers304OnMatch) {
  const Reply first = get(sim_.port(), "/doc?etag=v1");
  ASSERT_EQ(first.status, 200u);
  EXPECT_EQ(first.headers[bh::field::etag], "\"v1\"");
  const Reply again = get(sim_.port(), "/doc?etag=v1", {{"If-None-Match", "\"v0\", W/\"v1\""}});
  EXPECT_EQ(again.status, 304u);
  EXPECT_TRUE(again.body.empty());
  const Reply other = get(sim_.port(), "/doc?etag=v1", {{"If-None-Match", "\"v2\""}});
  EXPECT_EQ(other.status, 200u);
  EXPECT_EQ(sim_.stats().not_modified, 1u);
}

TEST_F(SimUpstreamTest, ResetCutsTheBody) {
  const Reply r = get(sim_.port(), "/reset");
  EXPECT_EQ(r.status, 200u);  // the head went out
  EXPECT_TRUE(r.ec) << "the body should be cut short";
  EXPECT_EQ(sim_.stats().resets, 1u);
  EXPECT_EQ(sim_.server_stats().handler_exceptions, 1u);
}

TEST_F(SimUpstreamTest, HeadersAreEchoed) {
  const Reply r = get(sim_.port(), "/headers", {{"X-Tenant", "a"}, {"Authorization", "B t"}});
  ASSERT_EQ(r.status, 200u);
  const auto obj = json::parse(r.body).as_object();
  EXPECT_EQ(obj.at("X-Tenant").as_string(), "a");
  EXPECT_EQ(obj.at("Authorization").as_string(), "B t");
  EXPECT_EQ(obj.at("Host").as_string(), "127.0.0.1");
}

TEST_F(SimUpstreamTest, StatsCountByPathAndResetZeroes) {
  ASSERT_EQ(get(sim_.port(), "/a?x=1").status, 200u);
  ASSERT_EQ(get(sim_.port(), "/a?x=2").status, 200u);
  ASSERT_EQ(get(sim_.port(), "/b").status, 200u);
  const Reply stats = get(sim_.port(), "/__sim/stats");
  ASSERT_EQ(stats.status, 200u);
  const auto obj = json::parse(stats.body).as_object();
  EXPECT_EQ(obj.at("requests").as_int64(), 3);
  EXPECT_EQ(obj.at("by_path").at("/a").as_int64(), 2);
  EXPECT_EQ(obj.at("by_path").at("/b").as_int64(), 1);
  EXPECT_FALSE(obj.at("by_path").as_object().contains("/__sim/stats"));

  EXPECT_EQ(get(sim_.port(), "/__sim/reset").status, 405u);
  ASSERT_EQ(fetch(sim_.port(), bh::verb::post, "/__sim/reset").status, 200u);
  const auto s = sim_.stats();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_TRUE(s.by_path.empty());
}

TEST_F(SimUpstreamTest, ConcurrentRequestsAreCountedExactly) {
  constexpr int kThreads = 8;
  constexpr int kEach = 10;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (get(sim_.port(), "/c" + std::to_string(t % 2)).status == 200) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kEach);
  const auto s = sim_.stats();
  EXPECT_EQ(s.requests, static_cast<uint64_t>(kThreads * kEach));
  EXPECT_EQ(s.by_path.at("/c0") + s.by_path.at("/c1"), s.requests);
}

// A `/hang` request holds until stop(); stop() releases it with 503 and the server finishes.
TEST(SimUpstreamStopTest, HangIsReleasedByStop) {
  SimUpstream sim(fast_options());
  ASSERT_FALSE(sim.start());
  Reply reply;
  std::thread client([&] { reply = get(sim.port(), "/hang"); });
  // Wait (bounded) until the hang is in the handler, then stop.
  for (int i = 0; i < 5000 && sim.stats().hangs_active == 0; ++i) {
    std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(sim.stats().hangs_active, 1u);
  sim.stop();
  sim.wait();
  client.join();
  EXPECT_EQ(reply.status, 503u);
  EXPECT_EQ(sim.stats().hangs_active, 0u);
  EXPECT_EQ(sim.server_stats().drain_forced_closes, 0u);
}

// A delayed request does not hold others; stop() cuts it after the drain timeout.
TEST(SimUpstreamStopTest, DelayedRequestIsCutAfterDrain) {
  SimUpstreamOptions o = fast_options();
  o.drain_timeout = std::chrono::milliseconds(50);
  SimUpstream sim(o);
  ASSERT_FALSE(sim.start());
  std::atomic<bool> slow_done{false};
  Reply slow_reply;
  std::thread slow([&] {
    slow_reply = get(sim.port(), "/slow?delay_ms=600000");
    slow_done = true;
  });
  for (int i = 0; i < 5000 && sim.stats().requests == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(sim.stats().requests, 1u);
  EXPECT_EQ(get(sim.port(), "/fast?delay_ms=0").status, 200u);
  EXPECT_FALSE(slow_done.load());
  sim.stop();
  sim.wait();
  slow.join();
  EXPECT_EQ(slow_reply.status, 0u);
  EXPECT_TRUE(slow_reply.ec);
  EXPECT_EQ(sim.server_stats().drain_forced_closes, 1u);
}

TEST(SimUpstreamStopTest, BadOptionsAreRejected) {
  SimUpstreamOptions o = fast_options();
  o.hang_poll_interval = Duration::zero();
  SimUpstream sim(o);
  EXPECT_TRUE(sim.start());
}

}  // namespace
}  // namespace sluice::gateway
