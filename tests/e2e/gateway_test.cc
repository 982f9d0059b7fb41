// End-to-end tests of the gateway: the real `sluice serve` in front of the real
// `sluice sim-upstream`, both child processes on loopback. Upstream calls are counted exactly
// with the sim's GET /__sim/stats. Every test fails (with the reason) when the binary lacks
// `sluice serve`.
//
// Waits are bounded (ready files, exits, requests); no test asserts how long anything took.
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
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

// Bound on one batch of concurrent requests.
constexpr milliseconds kBatchBound{15000};

class GatewayE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(command_available("serve", &why)) << why;
    // "a 100 ms upstream"
    sim_ = start_sim_upstream(dir_, {"--latency", "100ms"});
    ASSERT_NE(sim_.port, 0);
  }

  void TearDown() override {
    if (gateway_.child.running()) stop_service(gateway_, "sluice serve");
    if (sim_.child.running()) stop_service(sim_, "sim-upstream");
  }

  [[nodiscard]] std::string upstream_url() const {
    return "http://127.0.0.1:" + std::to_string(sim_.port);
  }

  // Quick-start flags: no config file.
  void start_quick(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "--listen",     "127.0.0.1:0", "--admin",         "127.0.0.1:0", "--upstream",
        upstream_url(), "--data-dir",  dir_.file("data"), "--workers",   "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    gateway_ = start_gateway(dir_, args);
  }

  // A config file with one upstream (the sim, or `upstream_override`) and one route;
  // `listener_extra` / `upstream_extra` / `route_extra` are TOML lines added to those tables.
  void start_with_config(const std::string& listener_extra, const std::string& upstream_extra,
                         const std::string& upstream_override = {},
                         const std::string& route_extra = {}) {
    const std::string url = upstream_override.empty() ? upstream_url() : upstream_override;
    const std::string toml =
        "[server]\n"
        "workers = 2\n"
        "data_dir = \"" +
        dir_.file("data") +
        "\"\n"
        "\n[listener]\n"
        "address = \"127.0.0.1\"\n"
        "port = 0\n" +
        listener_extra +
        "\n[admin]\n"
        "address = \"127.0.0.1\"\n"
        "port = 0\n"
        "\n[[upstream]]\n"
        "name = \"sim\"\n"
        "url = \"" +
        url + "\"\n" + upstream_extra +
        "\n[[route]]\n"
        "name = \"all\"\n"
        "upstream = \"sim\"\n" +
        route_extra;
    const std::string path = dir_.write_file("sluice.toml", toml);
    gateway_ = start_gateway(dir_, {"--config", path});
  }

  [[nodiscard]] uint64_t upstream_calls(const std::string& path) {
    return path_count(sim_stats(sim_.port), path);
  }

  static void expect_json_error(const HttpResponse& r) {
    boost::system::error_code ec;
    const auto v = json::parse(r.body, ec);
    ASSERT_FALSE(ec) << "error body is not JSON: " << r.body;
    ASSERT_TRUE(v.is_object()) << r.body;
    const auto& o = v.as_object();
    EXPECT_TRUE(o.contains("error") && o.at("error").is_string()) << r.body;
    EXPECT_TRUE(o.contains("reason") && o.at("reason").is_string()) << r.body;
    EXPECT_NE(r.header("content-type").find("json"), std::string::npos) << r.header("content-type");
  }

  TestDir dir_;
  Service sim_;
  Service gateway_;
};

std::map<std::string, size_t> count_x_cache(const std::vector<HttpResponse>& replies) {
  std::map<std::string, size_t> out;
  for (const auto& r : replies) ++out[r.header("X-Cache")];
  return out;
}

std::string describe(const std::map<std::string, size_t>& m) {
  std::string out;
  for (const auto& [k, v] : m) out += (k.empty() ? "<none>" : k) + "=" + std::to_string(v) + " ";
  return out;
}

size_t count_status(const std::vector<HttpResponse>& replies, unsigned status) {
  size_t n = 0;
  for (const auto& r : replies) n += r.status == status ? 1 : 0;
  return n;
}

TEST_F(GatewayE2E, ConcurrentIdenticalGetsMakeOneUpstreamCall) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  HttpRequest get;
  get.target = "/items/1?cc=max-age%3D60";
  const auto replies = fire_identical(gateway_.port, get, 500, kBatchBound);
  EXPECT_EQ(count_status(replies, 200), 500u) << "first failure: " << [&] {
    for (const auto& r : replies) {
      if (r.status != 200) return std::to_string(r.status) + " " + r.ec.message();
    }
    return std::string();
  }();
  EXPECT_EQ(upstream_calls("/items/1"), 1u);
  const auto x_cache = count_x_cache(replies);
  EXPECT_EQ(x_cache.count("MISS") ? x_cache.at("MISS") : 0, 1u) << describe(x_cache);
  for (const auto& [value, n] : x_cache) {
    EXPECT_TRUE(value == "MISS" || value == "COALESCED" || value == "HIT") << describe(x_cache);
  }
  // Everyone got the one upstream answer.
  std::set<std::string> bodies;
  for (const auto& r : replies) bodies.insert(r.body);
  EXPECT_EQ(bodies.size(), 1u);
  for (const auto& r : replies) EXPECT_TRUE(r.has_header("X-Process-Time"));
}

TEST_F(GatewayE2E, CachedGetIsServedAsHitWithoutAnUpstreamCall) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  const HttpResponse first = http_get(gateway_.port, "/cached?cc=max-age%3D60");
  ASSERT_EQ(first.status, 200u) << first.ec.message();
  EXPECT_EQ(first.header("X-Cache"), "MISS");
  ASSERT_EQ(upstream_calls("/cached"), 1u);
  const HttpResponse second = http_get(gateway_.port, "/cached?cc=max-age%3D60");
  ASSERT_EQ(second.status, 200u) << second.ec.message();
  EXPECT_EQ(second.header("X-Cache"), "HIT");
  EXPECT_EQ(second.body, first.body);
  EXPECT_EQ(upstream_calls("/cached"), 1u);
}

TEST_F(GatewayE2E, RequestCacheControlLimitsWhatAHitMayBe) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  // only-if-cached with nothing stored: 504, and the upstream is not asked.
  const HttpResponse none =
      http_get(gateway_.port, "/limits?cc=max-age%3D60", {{"Cache-Control", "only-if-cached"}});
  EXPECT_EQ(none.status, 504u) << none.body;
  expect_json_error(none);
  EXPECT_NE(none.body.find("only_if_cached"), std::string::npos) << none.body;
  EXPECT_EQ(upstream_calls("/limits"), 0u);

  ASSERT_EQ(http_get(gateway_.port, "/limits?cc=max-age%3D60").status, 200u);
  ASSERT_EQ(upstream_calls("/limits"), 1u);
  const HttpResponse cached =
      http_get(gateway_.port, "/limits?cc=max-age%3D60", {{"Cache-Control", "only-if-cached"}});
  EXPECT_EQ(cached.status, 200u);
  EXPECT_EQ(cached.header("X-Cache"), "HIT");
  // min-fresh beyond the stored answer's remaining 60 s: it goes upstream, then is stored anew.
  const HttpResponse fresher =
      http_get(gateway_.port, "/limits?cc=max-age%3D60", {{"Cache-Control", "min-fresh=120"}});
  EXPECT_EQ(fresher.status, 200u);
  EXPECT_EQ(fresher.header("X-Cache"), "MISS");
  EXPECT_EQ(upstream_calls("/limits"), 2u);
  // Within the request's limits: a hit.
  const HttpResponse within = http_get(gateway_.port, "/limits?cc=max-age%3D60",
                                       {{"Cache-Control", "max-age=30, min-fresh=10"}});
  EXPECT_EQ(within.header("X-Cache"), "HIT");
  EXPECT_EQ(upstream_calls("/limits"), 2u);
}

TEST_F(GatewayE2E, StaleIfErrorServesTheStoredAnswerWhenTheUpstreamIsDown) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  const std::string target = "/sie?cc=max-age%3D1%2C%20stale-if-error%3D600";
  const HttpResponse first = http_get(gateway_.port, target);
  ASSERT_EQ(first.status, 200u);
  EXPECT_EQ(first.header("X-Cache"), "MISS");
  ASSERT_EQ(http_get(gateway_.port, "/sie-not-stored?cc=no-store").status, 200u);
  // Past its freshness (max-age=1), and the upstream goes away.
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  stop_service(sim_, "sim-upstream");
  const HttpResponse stale = http_get(gateway_.port, target);
  EXPECT_EQ(stale.status, 200u) << stale.body;
  EXPECT_EQ(stale.header("X-Cache"), "HIT");
  EXPECT_EQ(stale.body, first.body);
  EXPECT_FALSE(stale.header("Age").empty());
  // Without a stored answer the failure shows.
  const HttpResponse down = http_get(gateway_.port, "/sie-not-stored?cc=no-store");
  EXPECT_EQ(down.status, 502u) << down.body;
  const HttpResponse stats = http_get(gateway_.admin_port, "/metrics");
  EXPECT_NE(stats.body.find("sluice_gateway_stale_if_error_total 1"), std::string::npos);
}

TEST_F(GatewayE2E, EveryAdminReadEndpointAnswersAfterTraffic) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  ASSERT_NE(gateway_.admin_port, 0);
  // Traffic first, so every per-route and per-upstream series exists.
  ASSERT_EQ(http_get(gateway_.port, "/admin-probe?cc=max-age%3D60").status, 200u);
  ASSERT_EQ(http_get(gateway_.port, "/admin-probe?cc=max-age%3D60").status, 200u);

  const HttpResponse metrics = http_get(gateway_.admin_port, "/metrics");
  ASSERT_EQ(metrics.status, 200u) << metrics.ec.message();
  for (const char* series :
       {"sluice_gateway_requests_total{route=\"default\",cache=\"hit\"} 1",
        "sluice_coalesce_leaders_total{route=\"default\"}", "sluice_cache_entries 1",
        "sluice_pool_connections_created_total{upstream=\"default\"}"}) {
    EXPECT_NE(metrics.body.find(series), std::string::npos) << series << " missing from\n"
                                                            << metrics.body;
  }
  for (const char* path : {"/admin/health", "/admin/stats", "/admin/coalescing", "/admin/cache",
                           "/admin/upstreams", "/admin/pools", "/admin/config"}) {
    const HttpResponse r = http_get(gateway_.admin_port, path);
    EXPECT_EQ(r.status, 200u) << path << ": " << r.ec.message();
    boost::system::error_code ec;
    const auto v = json::parse(r.body, ec);
    EXPECT_FALSE(ec) << path << " is not JSON: " << r.body;
    EXPECT_TRUE(v.is_object()) << path;
  }
  // Still serving: the scrape did not take the process down.
  EXPECT_EQ(http_get(gateway_.port, "/admin-probe?cc=max-age%3D60").status, 200u);
}

TEST_F(GatewayE2E, HeadDeclaresTheUpstreamsLengthOnMissAndOnHit) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  HttpRequest head;
  head.method = "HEAD";
  head.target = "/head-length?cc=max-age%3D60";
  const HttpResponse direct = http_request(sim_.port, head);
  ASSERT_EQ(direct.status, 200u) << direct.ec.message();
  const std::string expected = direct.header("Content-Length");
  ASSERT_FALSE(expected.empty());
  ASSERT_NE(expected, "0");
  const HttpResponse miss = http_request(gateway_.port, head);
  ASSERT_EQ(miss.status, 200u) << miss.ec.message();
  EXPECT_EQ(miss.header("X-Cache"), "MISS");
  EXPECT_EQ(miss.header("Content-Length"), expected);
  EXPECT_TRUE(miss.body.empty());
  const HttpResponse hit = http_request(gateway_.port, head);
  ASSERT_EQ(hit.status, 200u) << hit.ec.message();
  EXPECT_EQ(hit.header("X-Cache"), "HIT");
  EXPECT_EQ(hit.header("Content-Length"), expected);
  EXPECT_TRUE(hit.body.empty());
  // The connection survived the bodiless answers: a GET on the gateway still works.
  EXPECT_EQ(http_get(gateway_.port, "/head-length?cc=max-age%3D60").status, 200u);
}

TEST_F(GatewayE2E, StaleAnswerWithAnEtagIsRevalidatedNotRefetched) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  const std::string target = "/validated?cc=max-age%3D1&etag=v1";
  const HttpResponse first = http_get(gateway_.port, target);
  ASSERT_EQ(first.status, 200u) << first.ec.message();
  EXPECT_EQ(first.header("X-Cache"), "MISS");
  // Let the one-second freshness run out (a wait for the TTL, not a timing assertion).
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  const HttpResponse second = http_get(gateway_.port, target);
  ASSERT_EQ(second.status, 200u) << second.ec.message();
  EXPECT_EQ(second.body, first.body) << "a 304 keeps the stored body";
  EXPECT_EQ(upstream_calls("/validated"), 2u);
  const auto stats = sim_stats(sim_.port);
  EXPECT_EQ(stats.at("not_modified").to_number<uint64_t>(), 1u)
      << "the second upstream call was conditional and answered 304";
  const HttpResponse third = http_get(gateway_.port, target);
  EXPECT_EQ(third.header("X-Cache"), "HIT") << "the 304 refreshed the entry";
  EXPECT_EQ(upstream_calls("/validated"), 2u);
}

TEST_F(GatewayE2E, TwoTenantsGetTwoUpstreamCalls) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  std::vector<HttpRequest> requests;
  for (int i = 0; i < 40; ++i) {
    HttpRequest r;
    // The long latency keeps both tenants' batches in flight together, cached or not.
    r.target = "/tenant?cc=max-age%3D60&delay_ms=1000";
    r.headers = {{"Authorization", i % 2 == 0 ? "Bearer tenant-a" : "Bearer tenant-b"}};
    requests.push_back(r);
  }
  const auto replies = fire_concurrently(gateway_.port, requests, kBatchBound);
  EXPECT_EQ(count_status(replies, 200), 40u);
  EXPECT_EQ(upstream_calls("/tenant"), 2u);
  // Each tenant saw one answer, and not the other tenant's.
  std::set<std::string> a, b;
  for (size_t i = 0; i < replies.size(); ++i) (i % 2 == 0 ? a : b).insert(replies[i].body);
  EXPECT_EQ(a.size(), 1u);
  EXPECT_EQ(b.size(), 1u);
  EXPECT_NE(*a.begin(), *b.begin());
}

TEST_F(GatewayE2E, PublicAnswersStillKeepOtherCredentialsApart) {
  // The key omits the credentials; an API key in X-Api-Key (a credential header by default)
  // must not let one tenant's answer reach another unless the upstream says it is public.
  start_with_config("", "", {}, "public_answers = true\n");
  ASSERT_NE(gateway_.port, 0);
  const HttpResponse a = http_get(gateway_.port, "/keyed?cc=max-age%3D60", {{"X-Api-Key", "a"}});
  const HttpResponse b = http_get(gateway_.port, "/keyed?cc=max-age%3D60", {{"X-Api-Key", "b"}});
  EXPECT_EQ(a.header("X-Cache"), "MISS");
  // b goes upstream itself (BYPASS: the key was remembered as not storable).
  EXPECT_NE(b.header("X-Cache"), "HIT") << "tenant b got tenant a's answer";
  EXPECT_EQ(upstream_calls("/keyed"), 2u);
  // Marked public by the upstream: shared, as the route declares.
  const HttpResponse c =
      http_get(gateway_.port, "/open?cc=public%2C%20max-age%3D60", {{"X-Api-Key", "a"}});
  const HttpResponse d =
      http_get(gateway_.port, "/open?cc=public%2C%20max-age%3D60", {{"X-Api-Key", "b"}});
  EXPECT_EQ(c.header("X-Cache"), "MISS");
  EXPECT_EQ(d.header("X-Cache"), "HIT");
  EXPECT_EQ(upstream_calls("/open"), 1u);
}

TEST_F(GatewayE2E, NoStoreIsNeverCached) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  for (int i = 0; i < 3; ++i) {
    const HttpResponse r = http_get(gateway_.port, "/private?cc=no-store");
    ASSERT_EQ(r.status, 200u) << r.ec.message();
    EXPECT_NE(r.header("X-Cache"), "HIT");
  }
  EXPECT_EQ(upstream_calls("/private"), 3u);
}

HttpRequest chat_post(const std::string& question) {
  HttpRequest r;
  r.method = "POST";
  // A long upstream latency keeps every request of the batch in flight together.
  r.target = "/v1/chat/completions?delay_ms=1000";
  r.headers = {{"Content-Type", "application/json"}};
  r.body = R"({"model":"sim-1","temperature":0,"messages":[{"role":"user","content":")" + question +
           R"("}]})";
  return r;
}

TEST_F(GatewayE2E, ConcurrentPostsPassThroughByDefault) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  const auto replies = fire_identical(gateway_.port, chat_post("same question"), 20, kBatchBound);
  EXPECT_EQ(count_status(replies, 200), 20u);
  EXPECT_EQ(upstream_calls("/v1/chat/completions"), 20u);
  for (const auto& r : replies) {
    EXPECT_NE(r.header("X-Cache"), "COALESCED");
    EXPECT_NE(r.header("X-Cache"), "HIT");
  }
}

TEST_F(GatewayE2E, ConcurrentPostsCoalesceWhenOptedIn) {
  start_quick({"--coalesce-post"});
  ASSERT_NE(gateway_.port, 0);
  const auto replies = fire_identical(gateway_.port, chat_post("same question"), 20, kBatchBound);
  EXPECT_EQ(count_status(replies, 200), 20u);
  EXPECT_EQ(upstream_calls("/v1/chat/completions"), 1u);
  std::set<std::string> bodies;
  for (const auto& r : replies) bodies.insert(r.body);
  EXPECT_EQ(bodies.size(), 1u);
  EXPECT_EQ(json::parse(*bodies.begin()).at("object").as_string(), "chat.completion");
}

TEST_F(GatewayE2E, UpstreamDownGives502WithJsonReason) {
  gateway_ = start_gateway(
      dir_, {"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--upstream",
             "http://127.0.0.1:" + std::to_string(closed_port()), "--data-dir", dir_.file("data")});
  ASSERT_NE(gateway_.port, 0);
  const HttpResponse r = http_get(gateway_.port, "/anything");
  EXPECT_EQ(r.status, 502u) << r.ec.message() << " " << r.body;
  expect_json_error(r);
}

TEST_F(GatewayE2E, UpstreamResetMidResponseGives502) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  const HttpResponse r = http_get(gateway_.port, "/reset");
  EXPECT_EQ(r.status, 502u) << r.ec.message() << " " << r.body;
  expect_json_error(r);
  EXPECT_GE(upstream_calls("/reset"), 1u);
}

TEST_F(GatewayE2E, EventStreamCutByTheUpstreamEndsWithAnErrorEvent) {
  start_quick();
  ASSERT_NE(gateway_.port, 0);
  const HttpResponse r = http_get(gateway_.port, "/reset?sse=1");
  // The head went out before the upstream failed: the status stays 200 and the stream ends
  // cleanly with the events received so far, then an error event.
  EXPECT_EQ(r.status, 200u) << r.ec.message();
  EXPECT_FALSE(r.ec) << "the stream must end cleanly, not be cut: " << r.ec.message();
  EXPECT_NE(r.body.find("data: {\"token\":\"first\"}\n\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("event: error\ndata: {\"error\":\"upstream_aborted\""), std::string::npos)
      << r.body;
  EXPECT_GE(upstream_calls("/reset"), 1u);
}

TEST_F(GatewayE2E, UpstreamHangingPastTheTimeoutGives504) {
  start_with_config("", "response_timeout = \"500ms\"\nconnect_timeout = \"1s\"\n");
  ASSERT_NE(gateway_.port, 0);
  const HttpResponse r = http_get(gateway_.port, "/hang");
  EXPECT_EQ(r.status, 504u) << r.ec.message() << " " << r.body;
  expect_json_error(r);
  EXPECT_GE(upstream_calls("/hang"), 1u);
}

TEST_F(GatewayE2E, HeaderAndBodyLimitsGive431And413) {
  start_with_config("max_header_bytes = 4096\nmax_body_bytes = 1024\n", "");
  ASSERT_NE(gateway_.port, 0);
  // Within the limits the gateway answers.
  ASSERT_EQ(http_get(gateway_.port, "/small").status, 200u);

  HttpRequest big_head;
  big_head.target = "/big-head";
  big_head.headers = {{"X-Filler", std::string(8 * 1024, 'h')}};
  const HttpResponse h = http_request(gateway_.port, big_head);
  EXPECT_EQ(h.status, 431u) << h.ec.message();

  HttpRequest big_body;
  big_body.method = "POST";
  big_body.target = "/big-body";
  big_body.body = std::string(4096, 'b');
  const HttpResponse b = http_request(gateway_.port, big_body);
  EXPECT_EQ(b.status, 413u) << b.ec.message();

  EXPECT_EQ(upstream_calls("/big-head"), 0u);
  EXPECT_EQ(upstream_calls("/big-body"), 0u);
}

TEST_F(GatewayE2E, SlowlorisClientIsCutAtTheHeaderTimeout) {
  start_with_config("header_timeout = \"500ms\"\n", "");
  ASSERT_NE(gateway_.port, 0);
  const RawResult r = slowloris(gateway_.port, "GET /slow HTTP/1.1\r\nHost: x\r\n",
                                milliseconds(100), milliseconds(10000));
  ASSERT_FALSE(r.connect_ec) << r.connect_ec.message();
  EXPECT_TRUE(r.closed_by_peer);
  EXPECT_FALSE(r.bound_expired) << "the gateway kept a never-ending head open";
  EXPECT_EQ(r.status(), 408u) << r.received.substr(0, 200);
  EXPECT_EQ(upstream_calls("/slow"), 0u);
}

// Counts the rows of <data-dir>/access.db table access_log; -1 on error (reported).
int64_t access_log_rows(const std::string& db_path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "cannot open " << db_path << ": " << (db ? sqlite3_errmsg(db) : "no memory");
    sqlite3_close(db);
    return -1;
  }
  sqlite3_stmt* stmt = nullptr;
  int64_t rows = -1;
  if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM access_log", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    rows = sqlite3_column_int64(stmt, 0);
  } else {
    ADD_FAILURE() << "counting access_log rows in " << db_path << ": " << sqlite3_errmsg(db);
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return rows;
}

TEST_F(GatewayE2E, SigtermDuringLoadLosesNoAccessLogRecord) {
  start_quick({"--access-log", "sqlite"});
  ASSERT_NE(gateway_.port, 0);
  constexpr size_t kRequests = 100;
  std::vector<HttpRequest> requests;
  for (size_t i = 0; i < kRequests; ++i) {
    HttpRequest r;
    r.target = "/load/" + std::to_string(i) + "?delay_ms=400&cc=no-store";
    requests.push_back(r);
  }
  std::vector<HttpResponse> replies;
  std::thread load([&] { replies = fire_concurrently(gateway_.port, requests, kBatchBound); });

  // SIGTERM once the gateway has requests in flight upstream.
  int64_t in_flight = 0;
  const auto deadline = std::chrono::steady_clock::now() + milliseconds(10000);
  while (in_flight < static_cast<int64_t>(kRequests / 2) &&
         std::chrono::steady_clock::now() < deadline) {
    const auto stats = sim_stats(sim_.port);
    if (const auto* n = stats.if_contains("requests")) in_flight = n->to_number<int64_t>();
  }
  ASSERT_GE(in_flight, 1) << "no request reached the upstream";
  gateway_.child.signal(SIGTERM);
  load.join();
  const auto status = gateway_.child.wait_exit(kExitBound);
  ASSERT_TRUE(status) << "sluice serve did not exit after SIGTERM";
  EXPECT_TRUE(status->exited && status->code == 0) << status->describe() << "\n"
                                                   << gateway_.child.stderr_text();

  size_t answered = 0;
  for (const auto& r : replies) answered += r.status != 0 ? 1 : 0;
  // Requests already upstream when the signal came were drained, not cut.
  EXPECT_GE(count_status(replies, 200), static_cast<size_t>(in_flight));
  const std::string db = (std::filesystem::path(dir_.file("data")) / "access.db").string();
  ASSERT_TRUE(std::filesystem::exists(db)) << db;
  EXPECT_EQ(access_log_rows(db), static_cast<int64_t>(answered));
}

TEST_F(GatewayE2E, MalformedConfigIsAClearErrorWithExitCode2) {
  const std::string bad_value =
      dir_.write_file("bad-value.toml",
                      "[listener]\nport = \"eighty\"\n\n[[upstream]]\nname = \"u\"\n"
                      "url = \"http://127.0.0.1:1\"\n\n[[route]]\nname = \"r\"\n");
  const std::string bad_syntax = dir_.write_file("bad-syntax.toml", "[listener\nport = 8080\n");
  for (const auto& path : {bad_value, bad_syntax}) {
    const std::string file = std::filesystem::path(path).filename().string();
    const RunResult serve = run_to_completion(
        {sluice_binary(), "serve", "--config", path, "--ready-file", dir_.file("never.json")}, dir_,
        "serve-" + file, milliseconds(10000));
    ASSERT_FALSE(serve.timed_out) << "sluice serve started despite " << file;
    EXPECT_TRUE(serve.status.exited) << serve.status.describe();
    EXPECT_EQ(serve.status.code, 2) << serve.err;
    EXPECT_NE(serve.err.find(file + ":"), std::string::npos)
        << "the error should name the file (FILE:LINE: KEY: reason): " << serve.err;
    EXPECT_FALSE(std::filesystem::exists(dir_.file("never.json")));

    std::string why;
    if (command_available("check-config", &why)) {
      const RunResult check = run_to_completion({sluice_binary(), "check-config", path}, dir_,
                                                "check-" + file, milliseconds(10000));
      EXPECT_TRUE(check.status.exited && check.status.code == 2) << check.status.describe();
      EXPECT_NE(check.err.find(file + ":"), std::string::npos) << check.err;
    }
  }
  // The line is named where it is known.
  const RunResult check = run_to_completion({sluice_binary(), "serve", "--config", bad_value}, dir_,
                                            "serve-line", milliseconds(10000));
  EXPECT_NE(check.err.find("bad-value.toml:2"), std::string::npos) << check.err;
}

// Needs neither the sim nor a running gateway, only `check-config` and the example file.
TEST(CheckConfig, ExampleConfigIsValid) {
  std::string why;
  ASSERT_TRUE(command_available("check-config", &why)) << why;
  const std::string example = source_dir() + "/examples/sluice.toml";
  ASSERT_TRUE(std::filesystem::exists(example)) << example;
  TestDir dir;
  const RunResult r = run_to_completion({sluice_binary(), "check-config", example}, dir, "check",
                                        milliseconds(10000));
  ASSERT_FALSE(r.timed_out);
  EXPECT_TRUE(r.status.exited && r.status.code == 0) << r.status.describe() << "\n" << r.err;
  EXPECT_NE(r.out.find("ok"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace sluice::e2e
