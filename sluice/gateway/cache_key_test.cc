#include "sluice/gateway/cache_key.h"

#include <gtest/gtest.h>

#include <latch>
#include <string>
#include <thread>
#include <vector>

namespace sluice::gateway {
namespace {

namespace bh = boost::beast::http;

http::Request make_request(bh::verb method, std::string target,
                           std::vector<std::pair<std::string, std::string>> headers,
                           std::string body = "") {
  http::Request r{method, target, 11};
  for (auto& [name, value] : headers) r.insert(name, value);
  r.body() = std::move(body);
  return r;
}

std::string part(const RequestKey& k, std::string_view name) {
  for (const KeyPart& p : k.parts) {
    if (p.name == name) return p.value;
  }
  return "<missing>";
}

KeyPolicy policy(std::string route = "r") {
  KeyPolicy p;
  p.route = std::move(route);
  return p;
}

TEST(Sha256Hex, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(std::string(1000, 'a')).size(), 64u);
}

TEST(Sha256Hex, ConcurrentCallsAgree) {
  // One digest context per thread and one process-wide fetch of the algorithm: threads that
  // start together must neither race nor mix their inputs.
  constexpr int kThreads = 4;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  std::vector<int> wrong(kThreads, 0);
  const KeyPolicy p = [] {
    KeyPolicy k;
    k.route = "r";
    return k;
  }();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string input = "thread-" + std::to_string(t);
      const std::string expected = t % 2 == 0 ? "" : sha256_hex(input);
      const auto req = make_request(bh::verb::get, "/", {{"Host", "h"}, {"Authorization", input}});
      start.arrive_and_wait();
      for (int i = 0; i < 200; ++i) {
        if (t % 2 == 1 && sha256_hex(input) != expected) ++wrong[t];
        if (make_key(req, p).tenant !=
            sha256_hex("authorization=" + std::to_string(input.size()) + ":" + input + ";")) {
          ++wrong[t];
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(wrong[t], 0) << t;
}

TEST(MakeKey, PartsOfATypicalGet) {
  KeyPolicy p = policy("completions");
  p.headers = {"accept"};
  const auto req = make_request(bh::verb::get, "/v1/x?b=2&a=1",
                                {{"Host", "API.Example:80"},
                                 {"Accept", "application/json"},
                                 {"Authorization", "Bearer secret-token"}});
  const RequestKey k = make_key(req, p);
  EXPECT_EQ(part(k, "route"), "completions");
  EXPECT_EQ(part(k, "method"), "GET");
  EXPECT_EQ(part(k, "host"), "api.example");
  EXPECT_EQ(part(k, "path"), "/v1/x");
  EXPECT_EQ(part(k, "query"), "a=1&b=2");
  EXPECT_EQ(part(k, "header:accept"), "application/json");
  EXPECT_EQ(k.tenant.size(), 64u);
  EXPECT_EQ(part(k, "tenant"), k.tenant.substr(0, 16));
  EXPECT_EQ(part(k, "body"), "<missing>");
  // The tenant digest covers name and value, length-prefixed.
  EXPECT_EQ(k.tenant, sha256_hex("authorization=19:Bearer secret-token;"));
  // The raw credential appears nowhere.
  EXPECT_EQ(k.key.find("secret"), std::string::npos);
  for (const KeyPart& kp : k.parts) EXPECT_EQ(kp.value.find("secret"), std::string::npos);
  EXPECT_EQ(k.key,
            "v1;route=11:completions;method=3:GET;host=11:api.example;path=5:/v1/x;"
            "query=7:a=1&b=2;header:accept=16:application/json;tenant=64:" +
                k.tenant + ";");
}

TEST(MakeKey, SameQuestionSameKey) {
  const KeyPolicy p = policy();
  const auto a = make_request(bh::verb::get, "/x?a=1&b=2", {{"Host", "h"}});
  const auto b = make_request(bh::verb::get, "/x?b=2&a=1", {{"host", "H:80"}});
  const auto c = make_request(bh::verb::get, "/x?a=1&&b=2&", {{"Host", "h:"}});
  EXPECT_EQ(make_key(a, p).key, make_key(b, p).key);
  EXPECT_EQ(make_key(a, p).key, make_key(c, p).key);
  // Absolute-form target: its authority replaces Host.
  const auto d = make_request(bh::verb::get, "http://H/x?b=2&a=1", {{"Host", "other"}});
  EXPECT_EQ(make_key(a, p).key, make_key(d, p).key);
}

struct DiffCase {
  const char* what;
  http::Request a;
  http::Request b;
};

TEST(MakeKey, DifferentQuestionsDifferentKeys) {
  KeyPolicy p = policy();
  p.headers = {"accept"};
  const auto base = [](std::string target = "/x?a=1",
                       std::vector<std::pair<std::string, std::string>> extra = {}) {
    std::vector<std::pair<std::string, std::string>> h = {{"Host", "h"}};
    for (auto& e : extra) h.push_back(e);
    return make_request(bh::verb::get, std::move(target), std::move(h));
  };
  const std::vector<DiffCase> cases = {
      {"path", base("/x?a=1"), base("/y?a=1")},
      {"path case", base("/x"), base("/X")},
      {"path encoding kept", base("/a%2Fb"), base("/a/b")},
      {"query value", base("/x?a=1"), base("/x?a=2")},
      {"equal names keep order", base("/x?a=1&a=2"), base("/x?a=2&a=1")},
      {"query vs none", base("/x?a"), base("/x")},
      {"host", base(), make_request(bh::verb::get, "/x?a=1", {{"Host", "g"}})},
      {"host port", base(), make_request(bh::verb::get, "/x?a=1", {{"Host", "h:8080"}})},
      {"method", base(), make_request(bh::verb::head, "/x?a=1", {{"Host", "h"}})},
      {"header absent vs empty", base("/x", {}), base("/x", {{"Accept", ""}})},
      {"header value", base("/x", {{"Accept", "a"}}), base("/x", {{"Accept", "b"}})},
      {"tenant", base("/x", {{"Authorization", "Bearer 1"}}),
       base("/x", {{"Authorization", "Bearer 2"}})},
      {"anonymous vs tenant", base("/x"), base("/x", {{"X-Api-Key", "k"}})},
      {"credential header name", base("/x", {{"X-Api-Key", "k"}}), base("/x", {{"Api-Key", "k"}})},
      // Length prefixes: moving bytes between parts never yields the same key.
      {"boundary", make_request(bh::verb::get, "/x;query=1:a", {{"Host", "h"}}),
       make_request(bh::verb::get, "/x?a", {{"Host", "h"}})},
  };
  for (const DiffCase& c : cases) {
    EXPECT_NE(make_key(c.a, p).key, make_key(c.b, p).key) << c.what;
  }
  // Routes never share keys.
  EXPECT_NE(make_key(base(), policy("one")).key, make_key(base(), policy("two")).key);
}

TEST(MakeKey, PolicySwitches) {
  KeyPolicy p = policy();
  p.include_query = false;
  p.include_credentials = false;
  const auto a = make_request(bh::verb::get, "/x?a=1", {{"Host", "h"}, {"Authorization", "A"}});
  const auto b = make_request(bh::verb::get, "/x?a=2", {{"Host", "h"}, {"Authorization", "B"}});
  const RequestKey ka = make_key(a, p);
  EXPECT_EQ(ka.key, make_key(b, p).key);
  EXPECT_EQ(ka.tenant, "");
  EXPECT_EQ(part(ka, "query"), "<missing>");
  EXPECT_EQ(part(ka, "tenant"), "<missing>");

  KeyPolicy with = policy();
  const RequestKey anon = make_key(make_request(bh::verb::get, "/x", {{"Host", "h"}}), with);
  EXPECT_EQ(anon.tenant, "");
  EXPECT_EQ(part(anon, "tenant"), "none");

  // Custom credential header list; names are matched case-insensitively, values exactly.
  with.credential_headers = {"x-tenant"};
  const auto t1 = make_request(bh::verb::get, "/x", {{"Host", "h"}, {"X-Tenant", "acme"}});
  const auto t2 = make_request(bh::verb::get, "/x", {{"Host", "h"}, {"x-tenant", "ACME"}});
  EXPECT_NE(make_key(t1, with).tenant, make_key(t2, with).tenant);
  EXPECT_FALSE(make_key(t1, with).tenant.empty());
}

TEST(MakeKey, RepeatedHeaderLinesJoin) {
  KeyPolicy p = policy();
  p.headers = {"accept-language"};
  const auto a = make_request(
      bh::verb::get, "/", {{"Host", "h"}, {"Accept-Language", "en"}, {"Accept-Language", "fr"}});
  EXPECT_EQ(part(make_key(a, p), "header:accept-language"), "en, fr");
  const auto absent = make_request(bh::verb::get, "/", {{"Host", "h"}});
  EXPECT_EQ(part(make_key(absent, p), "header:accept-language"), "(absent)");
  // Two Authorization lines both count (and order matters).
  const auto two = make_request(bh::verb::get, "/",
                                {{"Host", "h"}, {"Authorization", "a"}, {"Authorization", "b"}});
  const auto swapped = make_request(
      bh::verb::get, "/", {{"Host", "h"}, {"Authorization", "b"}, {"Authorization", "a"}});
  EXPECT_NE(make_key(two, p).tenant, make_key(swapped, p).tenant);
}

TEST(MakeKey, BodyDigests) {
  KeyPolicy p = policy();
  p.body = BodyDigest::canonical_json;
  const auto a = make_request(bh::verb::post, "/v1/chat", {{"Host", "h"}},
                              R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  const auto b = make_request(bh::verb::post, "/v1/chat", {{"Host", "h"}},
                              "{ \"messages\" : [ {\"content\":\"hi\", \"role\":\"user\"} ],\n"
                              "  \"model\" : \"m\" }");
  const auto c = make_request(bh::verb::post, "/v1/chat", {{"Host", "h"}},
                              R"({"model":"m","messages":[{"role":"user","content":"bye"}]})");
  const RequestKey ka = make_key(a, p);
  EXPECT_EQ(ka.key, make_key(b, p).key);
  EXPECT_NE(ka.key, make_key(c, p).key);
  EXPECT_EQ(part(ka, "body"),
            "sha256:" + sha256_hex(R"({"messages":[{"content":"hi","role":"user"}],"model":"m"})") +
                " (canonical json)");

  // Not JSON: raw bytes, noted in the part.
  const auto text = make_request(bh::verb::post, "/v1/chat", {{"Host", "h"}}, "plain text");
  const std::string body_part = part(make_key(text, p), "body");
  EXPECT_EQ(body_part.rfind("sha256:" + sha256_hex("plain text") + " (raw bytes; not json", 0), 0u)
      << body_part;
  // Duplicate keys fall back to raw bytes: the two readings of the body get different keys.
  const auto dup1 = make_request(bh::verb::post, "/", {{"Host", "h"}}, R"({"a":1,"a":2})");
  const auto dup2 = make_request(bh::verb::post, "/", {{"Host", "h"}}, R"({"a":2})");
  EXPECT_NE(make_key(dup1, p).key, make_key(dup2, p).key);
  EXPECT_NE(part(make_key(dup1, p), "body").find("duplicate object key"), std::string::npos);

  // Raw mode: whitespace matters.
  p.body = BodyDigest::raw;
  EXPECT_NE(make_key(a, p).key, make_key(b, p).key);
  EXPECT_EQ(part(make_key(a, p), "body"), "sha256:" + sha256_hex(a.body()) + " (raw bytes)");
  // Body none: the body is ignored.
  p.body = BodyDigest::none;
  EXPECT_EQ(make_key(a, p).key, make_key(c, p).key);
}

TEST(MakeKey, KeyHasTenant) {
  KeyPolicy p = policy();
  EXPECT_TRUE(key_has_tenant(p));
  p.credential_headers = {"x-api-key"};
  EXPECT_FALSE(key_has_tenant(p));  // Authorization would not be in the key
  p.credential_headers = {"Authorization"};
  EXPECT_TRUE(key_has_tenant(p));
  p.include_credentials = false;
  EXPECT_FALSE(key_has_tenant(p));
}

TEST(NormalizeHost, Table) {
  const std::vector<std::tuple<std::string, unsigned, std::string>> cases = {
      {"API.Example", 80, "api.example"},
      {"api.example:80", 80, "api.example"},
      {"api.example:8080", 80, "api.example:8080"},
      {"api.example:443", 443, "api.example"},
      {"api.example:443", 80, "api.example:443"},
      {"api.example:", 80, "api.example"},
      {"[::1]:80", 80, "[::1]"},
      {"[::1]", 80, "[::1]"},
      {"[::1]:8080", 80, "[::1]:8080"},
      {"h:0080", 80, "h"},
      {"h:abc", 80, "h:abc"},
      {"", 80, ""},
  };
  for (const auto& [in, port, out] : cases) EXPECT_EQ(normalize_host(in, port), out) << in;
}

TEST(SortQuery, Table) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"a=1", "a=1"},
      {"b=2&a=1", "a=1&b=2"},
      {"a=2&b=1&a=1", "a=2&a=1&b=1"},  // stable for equal names
      {"&&a=1&&", "a=1"},
      {"b&a", "a&b"},
      {"a%20b=1&a=2", "a=2&a%20b=1"},  // bytes, not decoded: '%' sorts after nothing in "a"
      {"ab=1&a=2", "a=2&ab=1"},
      {"a=1=2&a", "a=1=2&a"},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(sort_query(in), out) << in;
  // Many parameters (the stable_sort path) agree with the small path.
  std::string many;
  for (int i = 30; i >= 0; --i)
    many += "p" + std::to_string(i % 10) + "=" + std::to_string(i) + "&";
  const std::string sorted = sort_query(many);
  EXPECT_EQ(sorted.substr(0, 14), "p0=30&p0=20&p0");
}

TEST(CanonicalTarget, Table) {
  EXPECT_EQ(canonical_target("/a?b=2&a=1"), "/a?a=1&b=2");
  EXPECT_EQ(canonical_target("/a?"), "/a");
  EXPECT_EQ(canonical_target("/a"), "/a");
  EXPECT_EQ(canonical_target("http://h:80/a?z&y"), "/a?y&z");
  EXPECT_EQ(canonical_target("https://h"), "/");
  EXPECT_EQ(canonical_target("/a#frag"), "/a");
}

}  // namespace
}  // namespace sluice::gateway
