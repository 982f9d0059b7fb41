#include "sluice/gateway/cache_policy.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::gateway {
namespace {

namespace bh = boost::beast::http;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::system_clock;
using Headers = std::vector<std::pair<std::string, std::string>>;

bh::fields fields(const Headers& headers) {
  bh::fields f;
  for (const auto& [name, value] : headers) f.insert(name, value);
  return f;
}

// 2026-11-23 12:00:00 UTC, a Monday.
const system_clock::time_point kNow =
    std::chrono::sys_days(std::chrono::year(2026) / 11 / 23) + hours(12);

// ---------------------------------------------------------------- Cache-Control parsing

struct CcCase {
  Headers headers;
  CacheControl expected;
};

CacheControl cc(std::initializer_list<std::pair<const char*, std::optional<Duration>>> ds) {
  CacheControl c;
  for (const auto& [name, value] : ds) {
    const std::string_view n = name;
    if (n == "no-store") c.no_store = true;
    if (n == "no-cache") c.no_cache = true;
    if (n == "private") c.private_ = true;
    if (n == "public") c.public_ = true;
    if (n == "must-revalidate") c.must_revalidate = true;
    if (n == "proxy-revalidate") c.proxy_revalidate = true;
    if (n == "only-if-cached") c.only_if_cached = true;
    if (n == "immutable") c.immutable = true;
    if (n == "no-transform") c.no_transform = true;
    if (n == "must-understand") c.must_understand = true;
    if (n == "max-age") c.max_age = value;
    if (n == "s-maxage") c.s_maxage = value;
    if (n == "max-stale") c.max_stale = value;
    if (n == "min-fresh") c.min_fresh = value;
    if (n == "stale-while-revalidate") c.stale_while_revalidate = value;
    if (n == "stale-if-error") c.stale_if_error = value;
  }
  return c;
}

void expect_equal(const CacheControl& a, const CacheControl& b, const std::string& what) {
  EXPECT_EQ(a.no_store, b.no_store) << what;
  EXPECT_EQ(a.no_cache, b.no_cache) << what;
  EXPECT_EQ(a.private_, b.private_) << what;
  EXPECT_EQ(a.public_, b.public_) << what;
  EXPECT_EQ(a.must_revalidate, b.must_revalidate) << what;
  EXPECT_EQ(a.proxy_revalidate, b.proxy_revalidate) << what;
  EXPECT_EQ(a.only_if_cached, b.only_if_cached) << what;
  EXPECT_EQ(a.immutable, b.immutable) << what;
  EXPECT_EQ(a.no_transform, b.no_transform) << what;
  EXPECT_EQ(a.must_understand, b.must_understand) << what;
  EXPECT_EQ(a.max_age, b.max_age) << what;
  EXPECT_EQ(a.s_maxage, b.s_maxage) << what;
  EXPECT_EQ(a.max_stale, b.max_stale) << what;
  EXPECT_EQ(a.min_fresh, b.min_fresh) << what;
  EXPECT_EQ(a.stale_while_revalidate, b.stale_while_revalidate) << what;
  EXPECT_EQ(a.stale_if_error, b.stale_if_error) << what;
}

TEST(ParseCacheControl, Table) {
  const Duration s0 = seconds(0);
  const std::vector<CcCase> cases = {
      {{}, cc({})},
      {{{"Cache-Control", "max-age=60"}}, cc({{"max-age", seconds(60)}})},
      {{{"Cache-Control", "MAX-AGE=60, Public"}}, cc({{"max-age", seconds(60)}, {"public", {}}})},
      {{{"Cache-Control", "  max-age = 60 ,  no-transform  "}},
       cc({{"max-age", seconds(60)}, {"no-transform", {}}})},
      // Quoted values are accepted (RFC 9111 5.2).
      {{{"Cache-Control", "max-age=\"60\""}}, cc({{"max-age", seconds(60)}})},
      // Commas inside quoted strings do not split directives.
      {{{"Cache-Control", "private=\"set-cookie, x-foo\", max-age=5"}},
       cc({{"private", {}}, {"max-age", seconds(5)}})},
      {{{"Cache-Control", "no-cache=\"a,b\", s-maxage=9"}},
       cc({{"no-cache", {}}, {"s-maxage", seconds(9)}})},
      {{{"Cache-Control", "ext=\"q\\\"uoted, still\", max-age=1"}}, cc({{"max-age", seconds(1)}})},
      // Unknown directives are ignored, with or without values.
      {{{"Cache-Control", "foo, bar=baz, max-age=3, community=\"UCI\""}},
       cc({{"max-age", seconds(3)}})},
      // Repeated directives: most restrictive. Several lines are one list.
      {{{"Cache-Control", "max-age=60, max-age=10"}}, cc({{"max-age", seconds(10)}})},
      {{{"Cache-Control", "max-age=10"}, {"Cache-Control", "max-age=60, no-store"}},
       cc({{"max-age", seconds(10)}, {"no-store", {}}})},
      {{{"Cache-Control", "min-fresh=5, min-fresh=50"}}, cc({{"min-fresh", seconds(50)}})},
      // Invalid numbers: stale (0) — or, for min-fresh, never fresh enough.
      {{{"Cache-Control", "max-age=abc"}}, cc({{"max-age", s0}})},
      {{{"Cache-Control", "max-age=-5"}}, cc({{"max-age", s0}})},
      {{{"Cache-Control", "max-age=1.5"}}, cc({{"max-age", s0}})},
      {{{"Cache-Control", "max-age="}}, cc({{"max-age", s0}})},
      {{{"Cache-Control", "max-age"}}, cc({{"max-age", s0}})},
      {{{"Cache-Control", "max-age=60, max-age=x"}}, cc({{"max-age", s0}})},
      {{{"Cache-Control", "s-maxage=1e3"}}, cc({{"s-maxage", s0}})},
      {{{"Cache-Control", "min-fresh=x"}}, cc({{"min-fresh", kMaxDeltaSeconds}})},
      // Overflow clamps to 2^31 s.
      {{{"Cache-Control", "max-age=99999999999999999999999"}}, cc({{"max-age", kMaxDeltaSeconds}})},
      // max-stale without a value accepts any staleness.
      {{{"Cache-Control", "max-stale"}}, cc({{"max-stale", kMaxDeltaSeconds}})},
      {{{"Cache-Control", "max-stale=30, max-stale"}}, cc({{"max-stale", seconds(30)}})},
      {{{"Cache-Control", "stale-while-revalidate=30, stale-if-error=600, immutable"}},
       cc({{"stale-while-revalidate", seconds(30)},
           {"stale-if-error", seconds(600)},
           {"immutable", {}}})},
      {{{"Cache-Control", "must-revalidate, proxy-revalidate, must-understand, only-if-cached"}},
       cc({{"must-revalidate", {}},
           {"proxy-revalidate", {}},
           {"must-understand", {}},
           {"only-if-cached", {}}})},
      // Empty members and stray commas.
      {{{"Cache-Control", ",, ,no-store,,"}}, cc({{"no-store", {}}})},
      {{{"Cache-Control", ""}}, cc({})},
      // Unterminated quote: the rest is one member; what came before still counts.
      {{{"Cache-Control", "no-store, private=\"oops, max-age=5"}},
       cc({{"no-store", {}}, {"private", {}}})},
      // Pragma: no-cache only without Cache-Control.
      {{{"Pragma", "no-cache"}}, cc({{"no-cache", {}}})},
      {{{"Pragma", "foo, No-Cache"}}, cc({{"no-cache", {}}})},
      {{{"Pragma", "no-cache"}, {"Cache-Control", "max-age=5"}}, cc({{"max-age", seconds(5)}})},
      {{{"Pragma", "x-no-cache"}}, cc({})},
  };
  for (const CcCase& c : cases) {
    std::string what;
    for (const auto& [n, v] : c.headers) what += n + ": " + v + " | ";
    expect_equal(parse_cache_control(fields(c.headers)), c.expected, what);
  }
}

// ---------------------------------------------------------------- store decision

struct StoreCase {
  const char* what;
  std::string method = "GET";
  Headers request = {};
  unsigned status = 200;
  Headers response = {};
  StoreVerdict verdict = StoreVerdict::store;
  Duration ttl{};
  bool key_has_tenant = false;
  bool other_credentials = false;
  bool post_opted_in = false;
  bool cache_errors = false;
};

TEST(DecideStore, Table) {
  const std::string date_now = format_http_date(kNow);
  const std::string date_minus_10 = format_http_date(kNow - seconds(10));
  const std::string date_plus_100 = format_http_date(kNow + seconds(100));
  const std::string date_minus_100 = format_http_date(kNow - seconds(100));
  using V = StoreVerdict;
  const std::vector<StoreCase> cases = {
      {.what = "default ttl", .ttl = seconds(60)},
      {.what = "max-age", .response = {{"Cache-Control", "max-age=30"}}, .ttl = seconds(30)},
      {.what = "s-maxage beats max-age",
       .response = {{"Cache-Control", "max-age=30, s-maxage=90"}},
       .ttl = seconds(90)},
      {.what = "max-age beats Expires",
       .response = {{"Cache-Control", "max-age=30"},
                    {"Date", date_now},
                    {"Expires", date_plus_100}},
       .ttl = seconds(30)},
      {.what = "Expires - Date",
       .response = {{"Date", date_now}, {"Expires", date_plus_100}},
       .ttl = seconds(100)},
      {.what = "Expires without Date uses now",
       .response = {{"Expires", date_plus_100}},
       .ttl = seconds(100)},
      {.what = "Expires in the past",
       .response = {{"Expires", date_minus_100}},
       .verdict = V::zero_lifetime},
      {.what = "Expires in year 9999",
       .response = {{"Expires", "Fri, 31 Dec 9999 23:59:59 GMT"}},
       .ttl = hours(1)},
      {.what = "Date in year 1 (clamped), Expires in year 9999",
       .response = {{"Date", "Mon, 01 Jan 0001 00:00:00 GMT"},
                    {"Expires", "Fri, 31 Dec 9999 23:59:59 GMT"}},
       .ttl = hours(1)},  // lifetime clamps to 2^31 s, age 57 years: still fresh, no overflow
      {.what = "Expires: 0 is in the past",
       .response = {{"Expires", "0"}},
       .verdict = V::zero_lifetime},
      {.what = "two Expires: stale",
       .response = {{"Expires", date_plus_100}, {"Expires", date_plus_100}},
       .verdict = V::zero_lifetime},
      {.what = "max-age=0",
       .response = {{"Cache-Control", "max-age=0"}},
       .verdict = V::zero_lifetime},
      {.what = "invalid max-age is stale",
       .response = {{"Cache-Control", "max-age=soon"}},
       .verdict = V::zero_lifetime},
      {.what = "Age reduces ttl",
       .response = {{"Cache-Control", "max-age=30"}, {"Age", "10"}},
       .ttl = seconds(20)},
      {.what = "Age beyond lifetime",
       .response = {{"Cache-Control", "max-age=30"}, {"Age", "30"}},
       .verdict = V::zero_lifetime},
      {.what = "apparent age from Date",
       .response = {{"Cache-Control", "max-age=30"}, {"Date", date_minus_10}},
       .ttl = seconds(20)},
      {.what = "invalid Age ignored",
       .response = {{"Cache-Control", "max-age=30"}, {"Age", "ten"}},
       .ttl = seconds(30)},
      {.what = "list Age: first member",
       .response = {{"Cache-Control", "max-age=30"}, {"Age", "5, 20"}},
       .ttl = seconds(25)},
      {.what = "max_ttl caps", .response = {{"Cache-Control", "max-age=100000"}}, .ttl = hours(1)},
      {.what = "no-store response",
       .response = {{"Cache-Control", "max-age=60, no-store"}},
       .verdict = V::no_store_response},
      {.what = "no-store request",
       .request = {{"Cache-Control", "no-store"}},
       .verdict = V::no_store_request},
      {.what = "request no-cache still stores",
       .request = {{"Cache-Control", "no-cache"}},
       .ttl = seconds(60)},
      {.what = "private",
       .response = {{"Cache-Control", "private, max-age=60"}},
       .verdict = V::private_response},
      {.what = "qualified private",
       .response = {{"Cache-Control", "private=\"x-user\""}},
       .verdict = V::private_response},
      {.what = "set-cookie", .response = {{"Set-Cookie", "a=b"}}, .verdict = V::set_cookie},
      {.what = "vary star", .response = {{"Vary", "Accept, *"}}, .verdict = V::vary_star},
      {.what = "vary names fine", .response = {{"Vary", "Accept"}}, .ttl = seconds(60)},
      {.what = "no-cache response",
       .response = {{"Cache-Control", "no-cache"}},
       .verdict = V::no_cache_response},
      {.what = "Pragma no-cache response",
       .response = {{"Pragma", "no-cache"}},
       .verdict = V::no_cache_response},
      {.what = "authorization without tenant",
       .request = {{"Authorization", "Bearer x"}},
       .verdict = V::authorization_without_permission},
      {.what = "authorization with tenant key",
       .request = {{"Authorization", "Bearer x"}},
       .ttl = seconds(60),
       .key_has_tenant = true},
      {.what = "another credential the key does not separate",
       .request = {{"X-Api-Key", "k"}},
       .verdict = V::authorization_without_permission,
       .other_credentials = true},
      {.what = "another credential + public",
       .request = {{"X-Api-Key", "k"}},
       .response = {{"Cache-Control", "public"}},
       .ttl = seconds(60),
       .other_credentials = true},
      {.what = "authorization + public",
       .request = {{"Authorization", "Bearer x"}},
       .response = {{"Cache-Control", "public"}},
       .ttl = seconds(60)},
      {.what = "authorization + s-maxage",
       .request = {{"Authorization", "Bearer x"}},
       .response = {{"Cache-Control", "s-maxage=5"}},
       .ttl = seconds(5)},
      {.what = "authorization + must-revalidate",
       .request = {{"Authorization", "Bearer x"}},
       .response = {{"Cache-Control", "must-revalidate, max-age=7"}},
       .ttl = seconds(7)},
      {.what = "HEAD", .method = "HEAD", .ttl = seconds(60)},
      {.what = "POST not opted in", .method = "POST", .verdict = V::method_not_cacheable},
      {.what = "POST opted in", .method = "POST", .ttl = seconds(60), .post_opted_in = true},
      {.what = "PUT", .method = "PUT", .verdict = V::method_not_cacheable},
      {.what = "lower-case get", .method = "get", .verdict = V::method_not_cacheable},
      {.what = "204", .status = 204, .ttl = seconds(60)},
      {.what = "301", .status = 301, .ttl = seconds(60)},
      {.what = "308", .status = 308, .ttl = seconds(60)},
      {.what = "201", .status = 201, .verdict = V::status_not_cacheable},
      {.what = "302", .status = 302, .verdict = V::status_not_cacheable},
      {.what = "302 with max-age",
       .status = 302,
       .response = {{"Cache-Control", "max-age=10"}},
       .ttl = seconds(10)},
      {.what = "307 with public",
       .status = 307,
       .response = {{"Cache-Control", "public"}},
       .ttl = seconds(60)},
      {.what = "206 never",
       .status = 206,
       .response = {{"Cache-Control", "max-age=10"}},
       .verdict = V::status_not_cacheable},
      {.what = "304 never", .status = 304, .verdict = V::status_not_cacheable},
      {.what = "100 never", .status = 100, .verdict = V::status_not_cacheable},
      {.what = "must-understand, known status",
       .response = {{"Cache-Control", "must-understand, max-age=5"}},
       .ttl = seconds(5)},
      {.what = "must-understand, unknown status",
       .status = 299,
       .response = {{"Cache-Control", "must-understand, max-age=5"}},
       .verdict = V::status_not_cacheable},
      {.what = "404 is an error", .status = 404, .verdict = V::error_status},
      {.what = "500 is an error",
       .status = 500,
       .response = {{"Cache-Control", "max-age=60"}},
       .verdict = V::error_status},
      {.what = "404 with cache_errors", .status = 404, .ttl = seconds(5), .cache_errors = true},
      {.what = "503 with cache_errors", .status = 503, .ttl = seconds(5), .cache_errors = true},
      {.what = "error ttl capped by explicit",
       .status = 500,
       .response = {{"Cache-Control", "max-age=2"}},
       .ttl = seconds(2),
       .cache_errors = true},
      {.what = "error no-store wins",
       .status = 500,
       .response = {{"Cache-Control", "no-store"}},
       .verdict = V::no_store_response,
       .cache_errors = true},
  };
  for (const StoreCase& c : cases) {
    const bh::fields req = fields(c.request);
    const bh::fields resp = fields(c.response);
    StoreInputs in;
    in.method = c.method;
    in.request_headers = &req;
    in.status = c.status;
    in.response_headers = &resp;
    in.now = kNow;
    in.default_ttl = seconds(60);
    in.max_ttl = hours(1);
    in.key_has_tenant = c.key_has_tenant;
    in.other_credentials = c.other_credentials;
    in.post_opted_in = c.post_opted_in;
    in.cache_errors = c.cache_errors;
    in.error_ttl = seconds(5);
    const StoreDecision d = decide_store(in);
    EXPECT_EQ(to_string(d.verdict), to_string(c.verdict)) << c.what;
    if (c.verdict == StoreVerdict::store) {
      EXPECT_EQ(d.ttl, c.ttl) << c.what;
    }
  }
}

TEST(DecideStore, ResponseDelayCountsTowardsAge) {
  const bh::fields req;
  const bh::fields resp = fields({{"Cache-Control", "max-age=30"}, {"Age", "5"}});
  StoreInputs in;
  in.method = "GET";
  in.request_headers = &req;
  in.status = 200;
  in.response_headers = &resp;
  in.now = kNow;
  in.response_delay = seconds(3);
  const StoreDecision d = decide_store(in);
  ASSERT_EQ(d.verdict, StoreVerdict::store);
  EXPECT_EQ(d.initial_age, seconds(8));
  EXPECT_EQ(d.lifetime, seconds(30));
  EXPECT_EQ(d.ttl, seconds(22));
  EXPECT_EQ(age_header(d.initial_age, seconds(10)), "18");
}

TEST(DecideStore, EveryVerdictHasAName) {
  for (int v = 0; v <= static_cast<int>(StoreVerdict::no_cache_response); ++v) {
    EXPECT_NE(to_string(static_cast<StoreVerdict>(v)), "unknown") << v;
  }
}

// ---------------------------------------------------------------- request side

TEST(DecideRequest, Table) {
  struct Case {
    Headers headers;
    bool may_use_cache;
    bool may_store;
    bool only_if_cached;
  };
  const std::vector<Case> cases = {
      {{}, true, true, false},
      {{{"Cache-Control", "no-cache"}}, false, true, false},
      {{{"Pragma", "no-cache"}}, false, true, false},
      {{{"Cache-Control", "max-age=0"}}, false, true, false},
      {{{"Cache-Control", "max-age=x"}}, false, true, false},  // invalid -> 0
      {{{"Cache-Control", "max-age=10"}}, true, true, false},
      {{{"Cache-Control", "no-store"}}, true, false, false},
      {{{"Cache-Control", "only-if-cached"}}, true, true, true},
      {{{"Cache-Control", "only-if-cached, no-cache"}}, false, true, true},
  };
  for (const Case& c : cases) {
    const RequestDecision d = decide_request(fields(c.headers));
    const std::string what = c.headers.empty() ? "(none)" : c.headers[0].second;
    EXPECT_EQ(d.may_use_cache, c.may_use_cache) << what;
    EXPECT_EQ(d.may_store, c.may_store) << what;
    EXPECT_EQ(d.only_if_cached, c.only_if_cached) << what;
  }
}

TEST(DecideRequest, Accepts) {
  const auto d = [](const char* cc) { return decide_request(fields({{"Cache-Control", cc}})); };
  const RequestDecision plain = decide_request(bh::fields{});
  EXPECT_TRUE(plain.accepts(seconds(100), seconds(1)));
  EXPECT_FALSE(plain.accepts(seconds(100), seconds(0)));  // stale
  EXPECT_TRUE(d("max-age=10").accepts(seconds(10), seconds(5)));
  EXPECT_FALSE(d("max-age=10").accepts(seconds(11), seconds(5)));
  EXPECT_TRUE(d("min-fresh=5").accepts(seconds(0), seconds(5)));
  EXPECT_FALSE(d("min-fresh=5").accepts(seconds(0), seconds(4)));
  EXPECT_TRUE(d("max-stale=10").accepts(seconds(0), -seconds(10)));
  EXPECT_FALSE(d("max-stale=10").accepts(seconds(0), -seconds(11)));
  EXPECT_TRUE(d("max-stale").accepts(seconds(0), -hours(1000)));
  EXPECT_FALSE(d("max-stale").accepts(seconds(0), -seconds(1), /*must_revalidate=*/true));
  EXPECT_FALSE(d("no-cache").accepts(seconds(0), seconds(100)));
}

// ---------------------------------------------------------------- Vary

TEST(Vary, Names) {
  EXPECT_EQ(vary_names(fields({})), std::vector<std::string>{});
  EXPECT_EQ(vary_names(fields({{"Vary", "Accept-Encoding, accept"}, {"Vary", "ACCEPT, Origin"}})),
            (std::vector<std::string>{"accept", "accept-encoding", "origin"}));
  EXPECT_EQ(vary_names(fields({{"Vary", "Accept"}, {"Vary", "*"}})), std::vector<std::string>{"*"});
  EXPECT_EQ(vary_names(fields({{"Vary", " , ,"}})), std::vector<std::string>{});
}

TEST(Vary, Fingerprint) {
  const std::vector<std::string> names = {"accept", "accept-encoding"};
  const auto fp = [&](const Headers& h) { return vary_fingerprint(names, fields(h)); };
  EXPECT_EQ(fp({{"Accept", "text/html"}}), "accept=9:text/html;accept-encoding=-;");
  // Whitespace around list members and line splitting do not matter.
  EXPECT_EQ(fp({{"Accept-Encoding", "gzip, br"}}), fp({{"Accept-Encoding", "gzip,br"}}));
  EXPECT_EQ(fp({{"Accept-Encoding", "gzip"}, {"Accept-Encoding", "br"}}),
            fp({{"Accept-Encoding", "gzip, br"}}));
  // Values, absence and emptiness do.
  EXPECT_NE(fp({{"Accept-Encoding", "gzip"}}), fp({{"Accept-Encoding", "br"}}));
  EXPECT_NE(fp({{"Accept-Encoding", ""}}), fp({}));
  EXPECT_NE(fp({{"Accept-Encoding", "br, gzip"}}), fp({{"Accept-Encoding", "gzip, br"}}));
  EXPECT_EQ(vary_fingerprint({}, fields({{"Accept", "x"}})), "");
}

// ---------------------------------------------------------------- conditionals

TEST(NotModified, Table) {
  const std::string lm = "Sun, 06 Nov 1994 08:49:37 GMT";
  const std::string before = "Sat, 05 Nov 1994 08:49:37 GMT";
  const std::string after = "Mon, 07 Nov 1994 08:49:37 GMT";
  struct Case {
    const char* what;
    Headers request;
    Headers stored;
    bool expected;
  };
  const std::vector<Case> cases = {
      {"no conditionals", {}, {{"ETag", "\"a\""}}, false},
      {"strong match", {{"If-None-Match", "\"a\""}}, {{"ETag", "\"a\""}}, true},
      {"weak request tag", {{"If-None-Match", "W/\"a\""}}, {{"ETag", "\"a\""}}, true},
      {"weak stored tag", {{"If-None-Match", "\"a\""}}, {{"ETag", "W/\"a\""}}, true},
      {"no match", {{"If-None-Match", "\"b\""}}, {{"ETag", "\"a\""}}, false},
      {"list", {{"If-None-Match", "\"x\", W/\"a\""}}, {{"ETag", "\"a\""}}, true},
      {"list across lines",
       {{"If-None-Match", "\"x\""}, {"If-None-Match", "\"a\""}},
       {{"ETag", "\"a\""}},
       true},
      {"comma inside tag", {{"If-None-Match", "\"a,b\""}}, {{"ETag", "\"a,b\""}}, true},
      {"star", {{"If-None-Match", "*"}}, {}, true},
      {"no stored etag", {{"If-None-Match", "\"a\""}}, {}, false},
      {"unquoted is invalid", {{"If-None-Match", "a"}}, {{"ETag", "a"}}, false},
      {"case-sensitive", {{"If-None-Match", "\"A\""}}, {{"ETag", "\"a\""}}, false},
      {"If-None-Match beats If-Modified-Since",
       {{"If-None-Match", "\"b\""}, {"If-Modified-Since", after}},
       {{"ETag", "\"a\""}, {"Last-Modified", lm}},
       false},
      {"IMS equal", {{"If-Modified-Since", lm}}, {{"Last-Modified", lm}}, true},
      {"IMS after", {{"If-Modified-Since", after}}, {{"Last-Modified", lm}}, true},
      {"IMS before", {{"If-Modified-Since", before}}, {{"Last-Modified", lm}}, false},
      {"IMS against Date", {{"If-Modified-Since", after}}, {{"Date", lm}}, true},
      {"IMS no validator", {{"If-Modified-Since", after}}, {}, false},
      {"IMS invalid", {{"If-Modified-Since", "yesterday"}}, {{"Last-Modified", lm}}, false},
      {"IMS rfc850",
       {{"If-Modified-Since", "Monday, 07-Nov-94 08:49:37 GMT"}},
       {{"Last-Modified", lm}},
       true},
      {"IMS asctime",
       {{"If-Modified-Since", "Mon Nov  7 08:49:37 1994"}},
       {{"Last-Modified", lm}},
       true},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(not_modified(fields(c.request), fields(c.stored)), c.expected) << c.what;
  }
}

// ---------------------------------------------------------------- invalidation

TEST(InvalidationTargets, Table) {
  struct Case {
    const char* what;
    std::string method;
    unsigned status;
    std::string target;
    Headers response;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"GET never", "GET", 200, "/a", {}, {}},
      {"HEAD never", "HEAD", 200, "/a", {}, {}},
      {"OPTIONS never", "OPTIONS", 200, "/a", {}, {}},
      {"POST 200", "POST", 200, "/a?y=1&x=2", {}, {"/a?x=2&y=1"}},
      {"DELETE 204", "DELETE", 204, "/a", {}, {"/a"}},
      {"PUT 301", "PUT", 301, "/a", {}, {"/a"}},
      {"PATCH 404", "PATCH", 404, "/a", {}, {}},
      {"POST 500", "POST", 500, "/a", {}, {}},
      {"POST 100", "POST", 100, "/a", {}, {}},
      {"Location absolute path",
       "POST",
       201,
       "/items",
       {{"Location", "/items/7?b=1&a=2"}},
       {"/items", "/items/7?a=2&b=1"}},
      {"Location relative", "POST", 201, "/items/", {{"Location", "7"}}, {"/items/", "/items/7"}},
      {"Location dot segments", "POST", 201, "/a/b/c", {{"Location", "../d"}}, {"/a/b/c", "/a/d"}},
      {"Location same host absolute",
       "POST",
       201,
       "/a",
       {{"Location", "http://API.example:80/b"}},
       {"/a", "/b"}},
      {"Location https same host",
       "POST",
       201,
       "/a",
       {{"Location", "https://api.example/b"}},
       {"/a", "/b"}},
      {"Location other host", "POST", 201, "/a", {{"Location", "http://evil.example/b"}}, {"/a"}},
      {"Location other port",
       "POST",
       201,
       "/a",
       {{"Location", "http://api.example:8080/b"}},
       {"/a"}},
      {"Location other scheme", "POST", 201, "/a", {{"Location", "ftp://api.example/b"}}, {"/a"}},
      {"Location network-path other host",
       "POST",
       201,
       "/a",
       {{"Location", "//evil.example/b"}},
       {"/a"}},
      {"Content-Location too",
       "PUT",
       200,
       "/a",
       {{"Location", "/b"}, {"Content-Location", "/c"}},
       {"/a", "/b", "/c"}},
      {"duplicates dropped", "PUT", 200, "/a", {{"Content-Location", "/a"}}, {"/a"}},
      {"invalid Location ignored", "POST", 201, "/a", {{"Location", "http://[bad/x"}}, {"/a"}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(invalidation_targets(c.method, c.status, "api.example", c.target, fields(c.response)),
              c.expected)
        << c.what;
  }
}

// ---------------------------------------------------------------- age

TEST(Age, InitialAgeAndHeader) {
  EXPECT_EQ(initial_age(fields({}), kNow, seconds(0)), seconds(0));
  EXPECT_EQ(initial_age(fields({{"Age", "12"}}), kNow, seconds(1)), seconds(13));
  // Apparent age from Date wins when larger; a Date in the future gives 0.
  EXPECT_EQ(initial_age(fields({{"Age", "1"}, {"Date", format_http_date(kNow - seconds(30))}}),
                        kNow, seconds(0)),
            seconds(30));
  EXPECT_EQ(initial_age(fields({{"Date", format_http_date(kNow + seconds(30))}}), kNow, seconds(0)),
            seconds(0));
  EXPECT_EQ(initial_age(fields({{"Age", "-3"}}), kNow, seconds(0)), seconds(0));
  EXPECT_EQ(initial_age(fields({{"Age", "99999999999999"}}), kNow, seconds(0)), kMaxDeltaSeconds);

  EXPECT_EQ(age_header(seconds(0), seconds(0)), "0");
  EXPECT_EQ(age_header(seconds(5), std::chrono::milliseconds(2999)), "7");
  EXPECT_EQ(age_header(seconds(5), -seconds(100)), "5");
  EXPECT_EQ(age_header(kMaxDeltaSeconds, kMaxDeltaSeconds), "2147483648");
}

// ---------------------------------------------------------------- dates

TEST(HttpDate, ThreeFormats) {
  const auto expected = std::chrono::sys_days(std::chrono::year(1994) / 11 / 6) + hours(8) +
                        minutes(49) + seconds(37);
  for (const char* text : {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                           "Sun Nov  6 08:49:37 1994", "Sun Nov 06 08:49:37 1994",
                           "  sun, 06 nov 1994 08:49:37 gmt  "}) {
    const auto t = parse_http_date(text, kNow);
    ASSERT_TRUE(t.has_value()) << text;
    EXPECT_EQ(*t, expected) << text;
  }
  EXPECT_EQ(format_http_date(expected), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(format_http_date(kNow), "Mon, 23 Nov 2026 12:00:00 GMT");
  // Round trip.
  EXPECT_EQ(parse_http_date(format_http_date(kNow), kNow), kNow);
}

TEST(HttpDate, TwoDigitYearsFollowTheFiftyYearRule) {
  const auto year_of = [](std::string_view text) {
    const auto t = parse_http_date(text, kNow);  // reference year 2026
    if (!t) return 0;
    return static_cast<int>(
        std::chrono::year_month_day(std::chrono::floor<std::chrono::days>(*t)).year());
  };
  EXPECT_EQ(year_of("Monday, 01-Jan-30 00:00:00 GMT"), 2030);
  EXPECT_EQ(year_of("Monday, 01-Jan-76 00:00:00 GMT"), 2076);
  EXPECT_EQ(year_of("Monday, 01-Jan-77 00:00:00 GMT"), 1977);
  EXPECT_EQ(year_of("Monday, 01-Jan-99 00:00:00 GMT"), 1999);
  EXPECT_EQ(year_of("Monday, 01-Jan-00 00:00:00 GMT"), 2000);
}

TEST(HttpDate, Invalid) {
  for (const char* text : {"",
                           "0",
                           "-1",
                           "yesterday",
                           "Sun, 06 Nov 1994 08:49:37",  // no GMT
                           "Sun, 06 Nov 1994 08:49:37 UTC",
                           "Sun, 6 Nov 1994 08:49:37 GMT",
                           "Sun, 31 Feb 1994 08:49:37 GMT",  // no such day
                           "Sun, 29 Feb 2023 08:49:37 GMT",
                           "Sun, 06 Foo 1994 08:49:37 GMT",
                           "Xyz, 06 Nov 1994 08:49:37 GMT",
                           "Sun, 06 Nov 1994 24:00:00 GMT",
                           "Sun, 06 Nov 1994 08:60:00 GMT",
                           "Sun, 06 Nov 1994 08:49:37 GMT extra",
                           "Sun, 06 Nov 94 08:49:37 GMT",
                           "Sunday, 06-Nov-1994 08:49:37 GMT",
                           "Sun, 06-Nov-94 08:49:37 GMT",
                           "Sun Nov 6 08:49:37 1994",
                           "Sun Nov  6 08:49:37 94",
                           "1994-11-06T08:49:37Z"}) {
    EXPECT_FALSE(parse_http_date(text, kNow).has_value()) << text;
  }
  // Far dates clamp to [1970, 2200) instead of overflowing the nanosecond clock.
  const auto far = parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT", kNow);
  ASSERT_TRUE(far.has_value());
  EXPECT_EQ(format_http_date(*far), "Wed, 01 Jan 2200 00:00:00 GMT");
  const auto early = parse_http_date("Mon, 01 Jan 0001 00:00:00 GMT", kNow);
  ASSERT_TRUE(early.has_value());
  EXPECT_EQ(format_http_date(*early), "Thu, 01 Jan 1970 00:00:00 GMT");
  // Leap years and leap seconds.
  EXPECT_TRUE(parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT", kNow).has_value());
  EXPECT_TRUE(parse_http_date("Sat, 31 Dec 2016 23:59:60 GMT", kNow).has_value());
}

}  // namespace
}  // namespace sluice::gateway
