#include "sluice/gateway/config.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace sluice::gateway {
namespace {

using Env = std::map<std::string, std::string, std::less<>>;

Environment env_of(Env vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    if (auto it = vars.find(name); it != vars.end()) return it->second;
    return std::nullopt;
  };
}

Environment no_env() { return env_of({}); }

constexpr std::string_view kOneUpstream = R"(
[[upstream]]
name = "api"
url = "http://127.0.0.1:8000"
)";

ConfigResult parse(std::string_view text, const Environment& env = no_env()) {
  return parse_config(text, "sluice.toml", env);
}

Config parse_ok(std::string_view text, const Environment& env = no_env()) {
  ConfigResult r = parse(text, env);
  EXPECT_TRUE(r.has_value()) << (r.has_value() ? "" : r.error().to_string());
  return r.has_value() ? *r : Config{};
}

ConfigError parse_error(std::string_view text, const Environment& env = no_env()) {
  ConfigResult r = parse(text, env);
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? ConfigError{} : r.error();
}

std::filesystem::path source_root() {
  return std::filesystem::path(__FILE__).parent_path() / ".." / "..";
}

// --- defaults ------------------------------------------------------------------------------

TEST(ConfigDefaults, MinimalFileGetsDefaultRouteAndDocumentedDefaults) {
  Config c = parse_ok(kOneUpstream);
  EXPECT_EQ(c.source, "sluice.toml");
  EXPECT_EQ(c.server.workers, 0u);
  EXPECT_EQ(c.server.data_dir, "./sluice-data");
  EXPECT_EQ(c.server.drain_timeout, 10s);
  EXPECT_EQ(c.listener.address, "127.0.0.1");
  EXPECT_EQ(c.listener.port, 8080);
  EXPECT_EQ(c.listener.max_header_bytes, 16 * kKiB);
  EXPECT_EQ(c.listener.max_body_bytes, 8 * kMiB);
  ASSERT_EQ(c.upstreams.size(), 1u);
  const UpstreamConfig& u = c.upstreams[0];
  EXPECT_EQ(u.name, "api");
  EXPECT_FALSE(u.tls);
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8000);
  EXPECT_EQ(u.connect_timeout, 5s);
  EXPECT_EQ(u.max_age, 300s);
  EXPECT_TRUE(u.breaker.enabled);
  EXPECT_EQ(u.breaker.min_requests, 20u);
  EXPECT_FALSE(u.concurrency.enabled);
  EXPECT_EQ(u.concurrency.policy, "gradient");
  ASSERT_EQ(c.routes.size(), 1u);
  const RouteConfig& r = c.routes[0];
  EXPECT_EQ(r.name, "default");
  EXPECT_EQ(r.path_prefix, "/");
  EXPECT_EQ(r.upstream, "api");
  EXPECT_TRUE(r.coalesce);
  EXPECT_FALSE(r.coalesce_post);
  EXPECT_FALSE(r.public_answers);
  EXPECT_EQ(r.cache_ttl, 60s);
  EXPECT_EQ(r.max_ttl, 24h);
  EXPECT_EQ(r.retry.max_attempts, 2u);
  EXPECT_EQ(r.retry.initial_backoff, 50ms);
  EXPECT_EQ(r.retry.on_status, (std::vector<int>{502, 503, 504}));
  EXPECT_FALSE(r.rate_limit.enabled);
  EXPECT_EQ(c.cache.max_bytes, 256 * kMiB);
  EXPECT_EQ(c.cache.credential_headers,
            (std::vector<std::string>{"authorization", "x-api-key", "api-key"}));
  EXPECT_EQ(c.log.access, "sqlite");
  EXPECT_EQ(c.log.level, "info");
  EXPECT_TRUE(c.admin.enabled);
  EXPECT_EQ(c.admin.port, 9901);
}

TEST(ConfigDefaults, SoleUpstreamWithoutNameIsDefault) {
  Config c = parse_ok("[[upstream]]\nurl = \"https://api.example.com\"\n");
  ASSERT_EQ(c.upstreams.size(), 1u);
  EXPECT_EQ(c.upstreams[0].name, "default");
  EXPECT_TRUE(c.upstreams[0].tls);
  EXPECT_EQ(c.upstreams[0].port, 443);
  EXPECT_EQ(c.routes[0].upstream, "default");
}

TEST(ConfigParse, ReadsEveryKindOfValue) {
  Config c = parse_ok(R"(
[server]
workers = 4
drain_timeout = "1m30s"
[listener]
port = 0
max_body_bytes = 1048576
max_header_bytes = "32KiB"
[[upstream]]
name = "llm"
url = "http://[::1]:9000/"
breaker = { failure_rate = 0.25, open_for = "250ms" }
[upstream.concurrency]
enabled = true
policy = "aimd"
initial = 10
min = 2
max = 20
[[route]]
name = "chat"
path_prefix = "/v1/"
methods = ["post", "Get"]
host = "API.Example.com"
key_headers = ["X-Model"]
[route.retry]
on_status = [429, 503]
jitter = "none"
[route.rate_limit]
enabled = true
rate = 5
burst = 7.5
[cache]
max_bytes = "1GiB"
)");
  EXPECT_EQ(c.server.workers, 4u);
  EXPECT_EQ(c.server.drain_timeout, 90s);
  EXPECT_EQ(c.listener.port, 0);
  EXPECT_EQ(c.listener.max_body_bytes, 1048576u);
  EXPECT_EQ(c.listener.max_header_bytes, 32 * kKiB);
  const UpstreamConfig& u = c.upstreams.at(0);
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 9000);
  EXPECT_DOUBLE_EQ(u.breaker.failure_rate, 0.25);
  EXPECT_EQ(u.breaker.open_for, 250ms);
  EXPECT_TRUE(u.concurrency.enabled);
  EXPECT_EQ(u.concurrency.policy, "aimd");
  EXPECT_EQ(u.concurrency.initial, 10u);
  const RouteConfig& r = c.routes.at(0);
  EXPECT_EQ(r.upstream, "llm");  // the sole upstream
  EXPECT_EQ(r.methods, (std::vector<std::string>{"POST", "GET"}));
  EXPECT_EQ(r.host, "api.example.com");
  EXPECT_EQ(r.key_headers, (std::vector<std::string>{"x-model"}));
  EXPECT_EQ(r.retry.on_status, (std::vector<int>{429, 503}));
  EXPECT_EQ(r.retry.jitter, "none");
  EXPECT_TRUE(r.rate_limit.enabled);
  EXPECT_DOUBLE_EQ(r.rate_limit.rate, 5.0);
  EXPECT_DOUBLE_EQ(r.rate_limit.burst, 7.5);
  EXPECT_EQ(c.cache.max_bytes, size_t{1} << 30);
}

TEST(ConfigParse, RoutesKeepTheirOrder) {
  Config c = parse_ok(R"(
[[upstream]]
name = "a"
url = "http://127.0.0.1:1"
[[upstream]]
name = "b"
url = "http://127.0.0.1:2"
[[route]]
name = "specific"
path_prefix = "/v1/chat"
upstream = "b"
[[route]]
name = "rest"
upstream = "a"
)");
  ASSERT_EQ(c.routes.size(), 2u);
  EXPECT_EQ(c.routes[0].name, "specific");
  EXPECT_EQ(c.routes[1].name, "rest");
  EXPECT_EQ(c.find_route("rest")->upstream, "a");
  EXPECT_EQ(c.find_upstream("b")->port, 2);
  EXPECT_EQ(c.find_upstream("zzz"), nullptr);
}

TEST(ConfigParse, ExampleFileParses) {
  const auto path = source_root() / "examples" / "sluice.toml";
  ConfigResult r = load_config_file(path.string(), no_env());
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->upstreams.size(), 2u);
  EXPECT_EQ(r->routes.size(), 3u);
  EXPECT_EQ(r->routes[0].name, "chat");
  EXPECT_TRUE(r->routes[0].rate_limit.enabled);
  EXPECT_EQ(r->routes[1].retry.max_attempts, 3u);
  EXPECT_EQ(r->find_upstream("search")->concurrency.policy, "aimd");
}

// --- errors: each kind names its line and key -----------------------------------------------

TEST(ConfigErrors, WrongTypeNamesLineKeyAndFoundValue) {
  ConfigError e = parse_error(R"([[upstream]]
url = "http://127.0.0.1:8000"
[[route]]
name = "chat"
cache_ttl = 12
)");
  EXPECT_EQ(e.file, "sluice.toml");
  EXPECT_EQ(e.line, 5u);
  EXPECT_EQ(e.key, "route.chat.cache_ttl");
  EXPECT_EQ(e.to_string(),
            "sluice.toml:5: route.chat.cache_ttl: expected a duration such as \"30s\", found 12");
}

TEST(ConfigErrors, UnknownKeySuggestsTheIntendedOne) {
  ConfigError e = parse_error(R"([[upstream]]
url = "http://127.0.0.1:8000"
[[route]]
name = "chat"
cache_tll = "5s"
)");
  EXPECT_EQ(e.line, 5u);
  EXPECT_EQ(e.key, "route.chat.cache_tll");
  EXPECT_EQ(e.reason, "unknown key, did you mean cache_ttl?");
}

TEST(ConfigErrors, UnknownKeyFarFromAnyHasNoSuggestion) {
  ConfigError e = parse_error("[cache]\nfrobnicate = 1\n");
  EXPECT_EQ(e.line, 2u);
  EXPECT_EQ(e.key, "cache.frobnicate");
  EXPECT_EQ(e.reason, "unknown key");
}

TEST(ConfigErrors, UnknownSectionAndSubTableKey) {
  ConfigError e = parse_error(std::string(kOneUpstream) + "\n[caches]\nenabled = true\n");
  EXPECT_EQ(e.key, "caches");
  EXPECT_EQ(e.reason, "unknown section, did you mean cache?");
  EXPECT_EQ(e.line, 6u);

  ConfigError sub = parse_error(std::string(kOneUpstream) + "[upstream.breaker]\nwindw = \"1s\"\n");
  EXPECT_EQ(sub.key, "upstream.api.breaker.windw");
  EXPECT_EQ(sub.line, 6u);
  EXPECT_EQ(sub.reason, "unknown key, did you mean window?");
}

TEST(ConfigErrors, PlainTableWhereArrayOfTablesIsExpected) {
  ConfigError e = parse_error("[upstream]\nurl = \"http://127.0.0.1:1\"\n");
  EXPECT_EQ(e.key, "upstream");
  EXPECT_EQ(e.line, 1u);
  EXPECT_NE(e.reason.find("[[upstream]]"), std::string::npos) << e.reason;
}

TEST(ConfigErrors, OutOfRangeValues) {
  ConfigError port = parse_error(std::string(kOneUpstream) + "[listener]\nport = 70000\n");
  EXPECT_EQ(port.key, "listener.port");
  EXPECT_EQ(port.line, 6u);
  EXPECT_EQ(port.reason, "expected a port number (0..65535), found 70000");

  ConfigError rate =
      parse_error(std::string(kOneUpstream) + "[upstream.breaker]\nfailure_rate = 1.5\n");
  EXPECT_EQ(rate.key, "upstream.api.breaker.failure_rate");
  EXPECT_EQ(rate.reason, "must be between 0.01 and 1, found 1.5");

  ConfigError attempts = parse_error(std::string(kOneUpstream) +
                                     "[[route]]\nname = \"r\"\n[route.retry]\nmax_attempts = 0\n");
  EXPECT_EQ(attempts.key, "route.r.retry.max_attempts");
  EXPECT_EQ(attempts.line, 8u);
  EXPECT_EQ(attempts.reason, "must be between 1 and 10, found 0");

  ConfigError negative = parse_error(std::string(kOneUpstream) + "[cache]\nmax_entries = -1\n");
  EXPECT_EQ(negative.reason, "expected a non-negative integer, found -1");

  ConfigError zero = parse_error(std::string(kOneUpstream) + "[listener]\nidle_timeout = \"0s\"\n");
  EXPECT_EQ(zero.reason, "must be between 1ms and 8760h, found \"0s\"");

  ConfigError choice = parse_error(std::string(kOneUpstream) + "[log]\nlevel = \"verbose\"\n");
  EXPECT_EQ(choice.key, "log.level");
  EXPECT_EQ(choice.reason,
            "expected \"debug\", \"info\", \"warn\" or \"error\", found \"verbose\"");

  ConfigError size = parse_error(std::string(kOneUpstream) + "[cache]\nmax_bytes = \"lots\"\n");
  EXPECT_EQ(size.reason, "expected a size such as \"256MiB\", found \"lots\"");

  ConfigError status =
      parse_error(std::string(kOneUpstream) + "[[route]]\n[route.retry]\non_status = [503, 200]\n");
  EXPECT_EQ(status.key, "route.default.retry.on_status");
  EXPECT_EQ(status.reason, "must be between 400 and 599, found 200");
}

TEST(ConfigErrors, CrossFieldRanges) {
  ConfigError ttl = parse_error(std::string(kOneUpstream) +
                                "[[route]]\nname = \"r\"\ncache_ttl = \"2h\"\nmax_ttl = \"1h\"\n");
  EXPECT_EQ(ttl.key, "route.r.cache_ttl");
  EXPECT_EQ(ttl.line, 7u);
  EXPECT_EQ(ttl.reason, "must not exceed max_ttl (1h), found \"2h\"");

  ConfigError cc =
      parse_error(std::string(kOneUpstream) + "concurrency = { min = 10, initial = 5 }\n");
  EXPECT_EQ(cc.key, "upstream.api.concurrency.initial");
  EXPECT_EQ(cc.line, 5u);

  ConfigError obj = parse_error(std::string(kOneUpstream) +
                                "[cache]\nmax_bytes = \"1MiB\"\nmax_object_bytes = \"2MiB\"\n");
  EXPECT_EQ(obj.key, "cache.max_object_bytes");
  EXPECT_EQ(obj.line, 7u);

  ConfigError backoff =
      parse_error(std::string(kOneUpstream) + "[[route]]\nretry = { initial_backoff = \"2s\" }\n");
  EXPECT_EQ(backoff.key, "route.default.retry.initial_backoff");
}

TEST(ConfigParse, StreamCompressionAndBroadcastSections) {
  Config c = parse_ok(std::string(kOneUpstream) + R"(
[[route]]
name = "chat"
[route.stream]
buffer_bytes = "16KiB"
slow_client = "disconnect"
stall_timeout = "2s"
coalesce = true
cache = true

[compression]
codings = ["gzip"]
gzip_level = 1

[broadcast]
enabled = true
prefix = "/sse/"
max_history = 10
queue_events = 10
heartbeat_interval = "1s"
publish_token = "t"
)");
  EXPECT_EQ(c.routes[0].stream.buffer_bytes, 16 * kKiB);
  EXPECT_EQ(c.routes[0].stream.buffer_chunks, 64u);
  EXPECT_EQ(c.routes[0].stream.slow_client, "disconnect");
  EXPECT_EQ(c.routes[0].stream.stall_timeout, 2s);
  EXPECT_TRUE(c.routes[0].stream.coalesce);
  EXPECT_TRUE(c.routes[0].stream.cache);
  EXPECT_EQ(c.compression.codings, std::vector<std::string>{"gzip"});
  EXPECT_EQ(c.compression.gzip_level, 1u);
  EXPECT_TRUE(c.broadcast.enabled);
  EXPECT_EQ(c.broadcast.prefix, "/sse/");
  EXPECT_EQ(c.broadcast.heartbeat_interval, 1s);
  EXPECT_EQ(to_json(c).at("broadcast").at("publish_token"), "<redacted>");
}

TEST(ConfigErrors, StreamCompressionAndBroadcastValuesAreChecked) {
  auto e = parse_error(std::string(kOneUpstream) +
                       "[[route]]\nname = \"r\"\n[route.stream]\n"
                       "slow_client = \"drop\"\n");
  EXPECT_EQ(e.key, "route.r.stream.slow_client");
  e = parse_error(std::string(kOneUpstream) +
                  "[[route]]\nname = \"r\"\n[route.stream]\ncoalesce = \"yes\"\n");
  EXPECT_EQ(e.key, "route.r.stream.coalesce");
  e = parse_error(std::string(kOneUpstream) + "[compression]\ncodings = [\"br\"]\n");
  EXPECT_EQ(e.key, "compression.codings");
  e = parse_error(std::string(kOneUpstream) + "[broadcast]\nenabled = true\nprefix = \"/x\"\n");
  EXPECT_EQ(e.key, "broadcast.prefix");
  e = parse_error(std::string(kOneUpstream) +
                  "[broadcast]\nenabled = true\nmax_history = 50\nqueue_events = 10\n");
  EXPECT_EQ(e.key, "broadcast.queue_events");
  EXPECT_NE(e.reason.find("max_history"), std::string::npos) << e.reason;
  e = parse_error(std::string(kOneUpstream) +
                  "[broadcast]\nenabled = true\nauth_upstream = \"nope\"\n");
  EXPECT_EQ(e.key, "broadcast.auth_upstream");
}

TEST(ConfigErrors, DuplicateNames) {
  ConfigError up = parse_error(std::string(kOneUpstream) + std::string(kOneUpstream));
  EXPECT_EQ(up.key, "upstream.api.name");
  EXPECT_EQ(up.line, 7u);  // the second name = "api"
  EXPECT_EQ(up.reason, "duplicate upstream name \"api\"");

  ConfigError route =
      parse_error(std::string(kOneUpstream) + "[[route]]\nname = \"r\"\n[[route]]\nname = \"r\"\n");
  EXPECT_EQ(route.key, "route.r.name");
  EXPECT_EQ(route.line, 8u);
}

TEST(ConfigErrors, RouteNamingMissingUpstream) {
  ConfigError e = parse_error(R"([[upstream]]
name = "llm"
url = "http://127.0.0.1:1"
[[upstream]]
name = "search"
url = "http://127.0.0.1:2"
[[route]]
name = "chat"
upstream = "lm"
)");
  EXPECT_EQ(e.line, 9u);
  EXPECT_EQ(e.key, "route.chat.upstream");
  EXPECT_EQ(e.reason, "no upstream named \"lm\", did you mean llm?");

  ConfigError far = parse_error(R"([[upstream]]
name = "llm"
url = "http://127.0.0.1:1"
[[route]]
upstream = "elsewhere"
)");
  EXPECT_EQ(far.reason, "no upstream named \"elsewhere\" (upstreams: llm)");
}

TEST(ConfigErrors, SeveralUpstreamsNeedRoutesAndNames) {
  const std::string two = R"([[upstream]]
name = "a"
url = "http://127.0.0.1:1"
[[upstream]]
name = "b"
url = "http://127.0.0.1:2"
)";
  ConfigError none = parse_error(two);
  EXPECT_EQ(none.key, "route");
  EXPECT_NE(none.reason.find("2 upstreams"), std::string::npos) << none.reason;

  ConfigError unnamed = parse_error(two + "[[route]]\nname = \"x\"\n");
  EXPECT_EQ(unnamed.key, "route.x.upstream");
  EXPECT_EQ(unnamed.reason, "required when there are several upstreams");
  EXPECT_EQ(unnamed.line, 7u);  // the [[route]] header

  ConfigError no_name = parse_error(
      "[[upstream]]\nurl = \"http://127.0.0.1:1\"\n[[upstream]]\nurl = \"http://127.0.0.1:2\"\n");
  EXPECT_EQ(no_name.key, "upstream[1].name");
  EXPECT_EQ(no_name.line, 1u);

  ConfigError bad_name = parse_error("[[upstream]]\nname = \"a b\"\nurl = \"http://x\"\n");
  EXPECT_EQ(bad_name.key, "upstream[1].name");
  EXPECT_EQ(bad_name.line, 2u);

  ConfigError missing = parse_error("[cache]\nenabled = true\n");
  EXPECT_EQ(missing.key, "upstream");
  EXPECT_EQ(missing.reason, "at least one [[upstream]] is required");
}

TEST(ConfigErrors, UpstreamUrlMustBeHttp) {
  auto with_url = [](std::string_view url) {
    return "[[upstream]]\nname = \"u\"\nurl = \"" + std::string(url) + "\"\n";
  };
  ConfigError ftp = parse_error(with_url("ftp://files.example.com"));
  EXPECT_EQ(ftp.key, "upstream.u.url");
  EXPECT_EQ(ftp.line, 3u);
  EXPECT_EQ(ftp.reason, "expected an http:// or https:// URL, found scheme \"ftp\"");
  EXPECT_NE(parse_error(with_url("127.0.0.1:8000")).reason.find("http"), std::string::npos);
  EXPECT_NE(parse_error(with_url("not a url")).reason.find("absolute"), std::string::npos);
  EXPECT_NE(parse_error(with_url("http://h:99999")).reason.find("port"), std::string::npos);
  EXPECT_NE(parse_error(with_url("http:///path")).reason.find("no host"), std::string::npos);
  EXPECT_NE(parse_error(with_url("http://h/v1")).reason.find("path"), std::string::npos);
  EXPECT_NE(parse_error(with_url("http://h/?q=1")).reason.find("query"), std::string::npos);
  ConfigError missing = parse_error("[[upstream]]\nname = \"u\"\n");
  EXPECT_EQ(missing.key, "upstream.u.url");
  EXPECT_EQ(missing.line, 1u);
  EXPECT_EQ(parse_ok(with_url("HTTPS://Example.com:8443")).upstreams[0].port, 8443);
}

TEST(ConfigErrors, AdminOnPublicAddressNeedsToken) {
  ConfigError e = parse_error(std::string(kOneUpstream) + "[admin]\naddress = \"0.0.0.0\"\n");
  EXPECT_EQ(e.key, "admin.token");
  EXPECT_EQ(e.line, 5u);  // the [admin] table
  EXPECT_NE(e.reason.find("non-loopback"), std::string::npos);
  Config ok =
      parse_ok(std::string(kOneUpstream) + "[admin]\naddress = \"0.0.0.0\"\ntoken = \"s3cret\"\n");
  EXPECT_EQ(ok.admin.token, "s3cret");
  // Loopback addresses need none, nor does a disabled admin API.
  parse_ok(std::string(kOneUpstream) + "[admin]\naddress = \"::1\"\n");
  parse_ok(std::string(kOneUpstream) + "[admin]\naddress = \"0.0.0.0\"\nenabled = false\n");
  ConfigError clash = parse_error(std::string(kOneUpstream) + "[admin]\nport = 8080\n");
  EXPECT_EQ(clash.key, "admin.port");
  ConfigError bad =
      parse_error(std::string(kOneUpstream) + "[listener]\naddress = \"example.com\"\n");
  EXPECT_EQ(bad.key, "listener.address");
}

TEST(ConfigErrors, TomlSyntaxErrorHasLine) {
  ConfigError e = parse_error("[cache]\nmax_bytes = = 3\n");
  EXPECT_EQ(e.file, "sluice.toml");
  EXPECT_EQ(e.line, 2u);
  EXPECT_TRUE(e.key.empty());
  EXPECT_FALSE(e.reason.empty());
  EXPECT_EQ(e.to_string().rfind("sluice.toml:2: ", 0), 0u) << e.to_string();
}

TEST(ConfigErrors, MissingFile) {
  ConfigResult r = load_config_file("/nonexistent/sluice.toml", no_env());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().file, "/nonexistent/sluice.toml");
  EXPECT_EQ(r.error().line, 0u);
  EXPECT_NE(r.error().reason.find("cannot read"), std::string::npos);
}

TEST(ConfigErrors, ValueThrowsWithTheMessage) {
  ConfigResult r = parse("[cache]\nnope = 1\n");
  EXPECT_THROW((void)r.value(), std::runtime_error);
}

// --- environment ----------------------------------------------------------------------------

TEST(ConfigEnv, OverridesPlainAndNamedEntries) {
  Config c = parse_ok(R"(
[[upstream]]
name = "my-llm"
url = "http://127.0.0.1:8000"
[[route]]
name = "chat"
cache_ttl = "10s"
)",
                      env_of({{"SLUICE_CACHE_MAX_BYTES", "1GiB"},
                              {"SLUICE_LISTENER_PORT", "8081"},
                              {"SLUICE_SERVER_DATA_DIR", "/var/lib/sluice"},
                              {"SLUICE_UPSTREAM_MY_LLM_URL", "https://llm.internal:9443"},
                              {"SLUICE_UPSTREAM_MY_LLM_BREAKER_ENABLED", "false"},
                              {"SLUICE_ROUTE_CHAT_CACHE_TTL", "2m"},
                              {"SLUICE_ROUTE_CHAT_METHODS", "get, post"},
                              {"SLUICE_ROUTE_CHAT_RETRY_ON_STATUS", "503,429"},
                              {"SLUICE_ROUTE_CHAT_RATE_LIMIT_RATE", "2.5"},
                              {"SLUICE_ADMIN_TOKEN", "t0k"}}));
  EXPECT_EQ(c.cache.max_bytes, size_t{1} << 30);
  EXPECT_EQ(c.listener.port, 8081);
  EXPECT_EQ(c.server.data_dir, "/var/lib/sluice");
  EXPECT_TRUE(c.upstreams[0].tls);
  EXPECT_EQ(c.upstreams[0].host, "llm.internal");
  EXPECT_FALSE(c.upstreams[0].breaker.enabled);
  EXPECT_EQ(c.routes[0].cache_ttl, 2min);
  EXPECT_EQ(c.routes[0].methods, (std::vector<std::string>{"GET", "POST"}));
  EXPECT_EQ(c.routes[0].retry.on_status, (std::vector<int>{503, 429}));
  EXPECT_DOUBLE_EQ(c.routes[0].rate_limit.rate, 2.5);
  EXPECT_EQ(c.admin.token, "t0k");
}

TEST(ConfigEnv, BadValueNamesTheVariable) {
  ConfigError e = parse_error(kOneUpstream, env_of({{"SLUICE_LISTENER_PORT", "eighty"}}));
  EXPECT_EQ(e.file, "env");
  EXPECT_EQ(e.line, 0u);
  EXPECT_EQ(e.key, "SLUICE_LISTENER_PORT");
  EXPECT_EQ(e.to_string(),
            "env: SLUICE_LISTENER_PORT: expected a port number (0..65535), found \"eighty\"");
  ConfigError d = parse_error(kOneUpstream, env_of({{"SLUICE_ROUTE_DEFAULT_CACHE_TTL", "12"}}));
  EXPECT_EQ(d.key, "SLUICE_ROUTE_DEFAULT_CACHE_TTL");
  EXPECT_EQ(d.reason, "expected a duration such as \"30s\", found \"12\"");
}

TEST(ConfigEnv, CrossFieldErrorCausedByEnvNamesTheVariable) {
  ConfigError e = parse_error(kOneUpstream, env_of({{"SLUICE_ADMIN_ADDRESS", "0.0.0.0"}}));
  EXPECT_EQ(e.key, "admin.token");  // the missing key, not the variable that made it needed
  ConfigError url = parse_error(kOneUpstream, env_of({{"SLUICE_UPSTREAM_API_URL", "gopher://x"}}));
  EXPECT_EQ(url.file, "env");
  EXPECT_EQ(url.key, "SLUICE_UPSTREAM_API_URL");
}

TEST(ConfigEnv, ProcessEnvironmentReadsGetenv) {
  ::setenv("SLUICE_CONFIG_TEST_VAR", "x", 1);
  const Environment env = process_environment();
  EXPECT_EQ(env("SLUICE_CONFIG_TEST_VAR"), std::optional<std::string>("x"));
  EXPECT_EQ(env("SLUICE_CONFIG_TEST_UNSET_VAR"), std::nullopt);
  ::unsetenv("SLUICE_CONFIG_TEST_VAR");
}

// --- quick start and flags ------------------------------------------------------------------

TEST(ConfigFlags, QuickStartBuildsOneUpstreamAndRoute) {
  QuickStart q;
  q.listen = "0.0.0.0:0";
  q.upstream = "http://127.0.0.1:8000";
  q.admin = "127.0.0.1:0";
  q.cache_ttl = 5s;
  q.coalesce_post = true;
  q.coalesce_streams = true;
  q.workers = 2;
  q.access_log = "off";
  ConfigResult r = config_from_flags(q, no_env());
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->source, "flags");
  EXPECT_EQ(r->listener.address, "0.0.0.0");
  EXPECT_EQ(r->listener.port, 0);
  ASSERT_EQ(r->upstreams.size(), 1u);
  EXPECT_EQ(r->upstreams[0].name, "default");
  EXPECT_EQ(r->upstreams[0].port, 8000);
  ASSERT_EQ(r->routes.size(), 1u);
  EXPECT_EQ(r->routes[0].name, "default");
  EXPECT_EQ(r->routes[0].path_prefix, "/");
  EXPECT_EQ(r->routes[0].upstream, "default");
  EXPECT_EQ(r->routes[0].cache_ttl, 5s);
  EXPECT_TRUE(r->routes[0].coalesce_post);
  EXPECT_TRUE(r->routes[0].stream.coalesce);
  EXPECT_TRUE(r->routes[0].stream.cache);
  EXPECT_FALSE(r->routes[0].public_answers);
  EXPECT_EQ(r->server.workers, 2u);
  EXPECT_EQ(r->log.access, "off");
  EXPECT_TRUE(r->admin.enabled);
  EXPECT_EQ(r->admin.port, 0);
}

TEST(ConfigFlags, ErrorsNameTheFlag) {
  QuickStart q;
  ConfigError missing = config_from_flags(q, no_env()).error();
  EXPECT_EQ(missing.file, "flags");
  EXPECT_EQ(missing.key, "--upstream");

  q.upstream = "ftp://x";
  EXPECT_EQ(config_from_flags(q, no_env()).error().key, "--upstream");
  q.upstream = "http://127.0.0.1:8000";
  q.listen = "8080";
  EXPECT_EQ(config_from_flags(q, no_env()).error().key, "--listen");
  q.listen = "[::1]:8080";
  ASSERT_TRUE(config_from_flags(q, no_env()).has_value());
  q.admin = "0.0.0.0:9901";
  EXPECT_EQ(config_from_flags(q, no_env()).error().key, "admin.token");
  q.admin_enabled = false;
  ASSERT_TRUE(config_from_flags(q, no_env()).has_value());
  EXPECT_FALSE(config_from_flags(q, no_env())->admin.enabled);
  q.log_level = "loud";
  EXPECT_EQ(config_from_flags(q, no_env()).error().key, "--log-level");
  q.log_level = "info";
  q.workers = 100000;
  EXPECT_EQ(config_from_flags(q, no_env()).error().key, "--workers");
}

TEST(ConfigFlags, QuickStartTakesEnvironment) {
  QuickStart q;
  q.upstream = "http://127.0.0.1:8000";
  ConfigResult r = config_from_flags(
      q, env_of({{"SLUICE_CACHE_MAX_ENTRIES", "7"}, {"SLUICE_ADMIN_TOKEN", "abc"}}));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->cache.max_entries, 7u);
  EXPECT_EQ(r->admin.token, "abc");
}

TEST(ConfigFlags, GivenFlagsWinOverTheFile) {
  Config file = parse_ok(std::string(kOneUpstream) +
                         "[[route]]\nname = \"a\"\n[[route]]\nname = \"b\"\n"
                         "[log]\nlevel = \"warn\"\n");
  QuickStart q;
  q.listen = "127.0.0.1:0";
  q.upstream = "http://10.0.0.1:81";
  q.cache_ttl = 7s;
  q.log_level = "debug";  // not given: the file's "warn" stays
  ConfigResult r = apply_flags(file, q, {"listen", "upstream", "cache-ttl", "no-admin"});
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->listener.port, 0);
  EXPECT_EQ(r->upstreams[0].host, "10.0.0.1");
  EXPECT_EQ(r->upstreams[0].port, 81);
  EXPECT_EQ(r->routes[0].cache_ttl, 7s);
  EXPECT_EQ(r->routes[1].cache_ttl, 7s);
  EXPECT_EQ(r->log.level, "warn");
  EXPECT_FALSE(r->admin.enabled);

  Config two = parse_ok(R"([[upstream]]
name = "a"
url = "http://127.0.0.1:1"
[[upstream]]
name = "b"
url = "http://127.0.0.1:2"
[[route]]
upstream = "a"
)");
  ConfigResult bad = apply_flags(two, q, {"upstream"});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().key, "--upstream");
  q.cache_ttl = 48h;  // beyond max_ttl
  ConfigResult ttl = apply_flags(file, q, {"cache-ttl"});
  ASSERT_FALSE(ttl.has_value());
  EXPECT_EQ(ttl.error().key, "--cache-ttl");
}

// --- JSON view and run-time patch ------------------------------------------------------------

TEST(ConfigJson, WholeConfigWithTokenRedacted) {
  Config c = parse_ok(std::string(kOneUpstream) +
                      "[admin]\naddress = \"0.0.0.0\"\ntoken = \"top-secret\"\n");
  const boost::json::object j = to_json(c);
  const std::string text = boost::json::serialize(j);
  EXPECT_EQ(text.find("top-secret"), std::string::npos);
  EXPECT_EQ(j.at("admin").at("token").as_string(), "<redacted>");
  EXPECT_EQ(j.at("source").as_string(), "sluice.toml");
  EXPECT_EQ(j.at("listener").at("port").as_uint64(), 8080u);
  EXPECT_EQ(j.at("cache").at("max_bytes").as_uint64(), 256u * kMiB);
  EXPECT_EQ(j.at("upstream").at(0).at("name").as_string(), "api");
  EXPECT_EQ(j.at("upstream").at(0).at("breaker").at("window").as_string(), "10s");
  EXPECT_EQ(j.at("route").at(0).at("max_ttl").as_string(), "24h");
  EXPECT_EQ(j.at("route").at(0).at("retry").at("initial_backoff").as_string(), "50ms");
  EXPECT_EQ(j.at("route").at(0).at("retry").at("on_status").as_array().size(), 3u);
  // Without a token there is nothing to redact.
  EXPECT_EQ(to_json(parse_ok(kOneUpstream)).at("admin").at("token").as_string(), "");
}

TEST(ConfigPatch, AcceptsRunTimeKnobsFlatAndNested) {
  Config c = parse_ok(std::string(kOneUpstream) + "[[route]]\nname = \"chat\"\n");
  ConfigResult r = apply_runtime_patch(c, boost::json::parse(R"({
    "cache.max_object_bytes": "1MiB",
    "log": {"level": "debug", "slow_request": "250ms"},
    "route.chat.cache_ttl": "30s",
    "route": {"chat": {"coalesce": false, "max_waiters": 0,
                       "rate_limit": {"enabled": true, "rate": 3, "burst": 4.5}}}
  })"));
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(r->cache.max_object_bytes, kMiB);
  EXPECT_EQ(r->log.level, "debug");
  EXPECT_EQ(r->log.slow_request, 250ms);
  EXPECT_EQ(r->routes[0].cache_ttl, 30s);
  EXPECT_FALSE(r->routes[0].coalesce);
  EXPECT_EQ(r->routes[0].max_waiters, 0u);
  EXPECT_TRUE(r->routes[0].rate_limit.enabled);
  EXPECT_DOUBLE_EQ(r->routes[0].rate_limit.rate, 3.0);
  EXPECT_DOUBLE_EQ(r->routes[0].rate_limit.burst, 4.5);
  EXPECT_EQ(c.log.level, "info");  // the input is untouched
  // The JSON view reads back as a patch of the same values.
  ConfigResult again = apply_runtime_patch(
      *r,
      boost::json::value{{"route.chat.cache_ttl", to_json(*r).at("route").at(0).at("cache_ttl")}});
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->routes[0].cache_ttl, 30s);
}

TEST(ConfigPatch, RefusesOtherKeysNamingThem) {
  Config c = parse_ok(std::string(kOneUpstream) + "[[route]]\nname = \"chat\"\n");
  auto refuse = [&](std::string_view json) {
    ConfigResult r = apply_runtime_patch(c, boost::json::parse(json));
    EXPECT_FALSE(r.has_value()) << json;
    return r.has_value() ? ConfigError{} : r.error();
  };
  ConfigError fixed = refuse(R"({"listener.port": 9000})");
  EXPECT_EQ(fixed.file, "PUT /admin/config");
  EXPECT_EQ(fixed.key, "listener.port");
  EXPECT_NE(fixed.reason.find("cannot change at run time"), std::string::npos);

  ConfigError typo = refuse(R"({"route.chat.cache_tl": "1s"})");
  EXPECT_EQ(typo.key, "route.chat.cache_tl");
  EXPECT_NE(typo.reason.find("did you mean route.chat.cache_ttl?"), std::string::npos)
      << typo.reason;

  EXPECT_EQ(refuse(R"({"route.nosuch.cache_ttl": "1s"})").key, "route.nosuch.cache_ttl");
  EXPECT_EQ(refuse(R"({"route.chat.retry.max_attempts": 3})").key, "route.chat.retry.max_attempts");
  EXPECT_EQ(refuse(R"({"admin": {"token": "x"}})").key, "admin.token");

  ConfigError type = refuse(R"({"route.chat.cache_ttl": 30})");
  EXPECT_EQ(type.reason, "expected a duration such as \"30s\", found 30");
  ConfigError level = refuse(R"({"log.level": "loud"})");
  EXPECT_EQ(level.key, "log.level");

  // Validated as a whole: a good knob beside a bad one changes nothing.
  ConfigError cross = refuse(R"({"log.level": "debug", "route.chat.max_ttl": "1s"})");
  EXPECT_EQ(cross.key, "route.chat.cache_ttl");
  EXPECT_EQ(cross.file, "PUT /admin/config");
  EXPECT_EQ(refuse(R"({"cache.max_object_bytes": "1TiB"})").key, "cache.max_object_bytes");
  EXPECT_EQ(refuse("[1, 2]").reason, "expected a JSON object of settings, found an array");
  EXPECT_EQ(c.log.level, "info");
}

// --- the key reference and its documentation --------------------------------------------------

TEST(ConfigKeys, EveryKeyIsDocumented) {
  const std::vector<KeyInfo> keys = config_keys();
  ASSERT_GT(keys.size(), 75u);
  std::ifstream in(source_root() / "docs" / "configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md";
  std::stringstream doc;
  doc << in.rdbuf();
  const std::string text = doc.str();
  size_t runtime = 0;
  for (const KeyInfo& k : keys) {
    EXPECT_NE(text.find("`" + k.key + "`"), std::string::npos) << k.key;
    if (!k.env.empty()) {
      EXPECT_NE(text.find(k.env), std::string::npos) << k.env;
    }
    if (k.runtime) ++runtime;
  }
  EXPECT_EQ(runtime, 14u);  // the knobs of apply_runtime_patch
  const auto it = std::find_if(keys.begin(), keys.end(), [](const KeyInfo& k) {
    return k.key == "route.<name>.retry.max_attempts";
  });
  ASSERT_NE(it, keys.end());
  EXPECT_EQ(it->env, "SLUICE_ROUTE_<NAME>_RETRY_MAX_ATTEMPTS");
  EXPECT_EQ(it->default_value, "2");
  EXPECT_EQ(it->range, "1..10");
}

}  // namespace
}  // namespace sluice::gateway
