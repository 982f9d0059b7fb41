// Cost of the per-request cache work: building a request key, digesting a JSON body, and
// parsing Cache-Control / deciding whether to store. Each sits beside a baseline in the same
// binary: `BM_HashTarget` (std::hash of the target string, the cheapest conceivable key),
// `BM_Sha256Hex_64B` (the one digest a keyed GET pays), and `BM_BoostJsonParse_1KB` (Boost.JSON
// building a DOM of the same body canonical_json reads).
//
//   cmake --build build/release --target sluice_gateway_benchmark -j2   (once the lead adds
//   this file to sluice/gateway/CMakeLists.txt with sluice_add_benchmark)
//   build/release/sluice/gateway/sluice_gateway_benchmark --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true   (one command line)
//
// Sample (2 shared cores, heavily loaded: load average 18, ~7 parallel builds; medians of
// 5 repetitions, CPU time; wall time was ~4x higher under that load):
//   BM_HashTarget                        7.8 ns   (1x, baseline)
//   BM_Sha256Hex_64B                     170 ns   (22x)
//   BM_MakeKey_GetAnonymous              352 ns   (45x)
//   BM_MakeKey_GetWithAuthorization      665 ns   (85x)
//   BM_ParseCacheControl                 131 ns   (17x)
//   BM_DecideStore                       183 ns   (23x)
//   BM_BoostJsonParse_1KB               1.81 us   (1x, baseline for JSON)
//   BM_CanonicalJson_1KB                3.76 us   (2.1x)
//   BM_MakeKey_PostCanonicalJson_1KB    5.81 us   (3.2x)
#include <benchmark/benchmark.h>

#include <boost/json/parse.hpp>
#include <functional>
#include <string>
#include <string_view>

#include "sluice/gateway/cache_key.h"
#include "sluice/gateway/cache_policy.h"
#include "sluice/gateway/canonical_json.h"

namespace sluice::gateway {
namespace {

namespace bh = boost::beast::http;

http::Request typical_get(bool with_authorization) {
  http::Request r{bh::verb::get, "/v1/models/gpt-small/embeddings?limit=20&cursor=abc123", 11};
  r.set(bh::field::host, "api.example.com");
  r.set(bh::field::accept, "application/json");
  r.set(bh::field::user_agent, "python-httpx/0.27.0");
  r.set(bh::field::accept_encoding, "gzip, deflate, br");
  if (with_authorization) {
    r.set(bh::field::authorization, "Bearer sk-live-0123456789abcdefghijklmnopqrstuvwxyzABCDEF");
  }
  return r;
}

std::string chat_body() {
  std::string body = R"({"model":"small-chat","temperature":0.2,"max_tokens":256,"stream":false,)"
                     R"("messages":[{"role":"system","content":"You are a helpful assistant."})";
  for (int i = 0; i < 6; ++i) {
    body += R"(,{"role":"user","content":"Question number )" + std::to_string(i) +
            R"(: what is the capital of a country whose name I will not say?"})";
    body += R"(,{"content":"I cannot know that without the country's name.","role":"assistant"})";
  }
  body += "]}";
  return body;
}

void BM_HashTarget(benchmark::State& state) {
  const http::Request r = typical_get(true);
  const std::string_view target = r.target();
  for (auto _ : state) {
    benchmark::DoNotOptimize(std::hash<std::string_view>{}(target));
  }
}
BENCHMARK(BM_HashTarget);

void BM_Sha256Hex_64B(benchmark::State& state) {
  const std::string data(64, 'k');
  for (auto _ : state) benchmark::DoNotOptimize(sha256_hex(data));
}
BENCHMARK(BM_Sha256Hex_64B);

void BM_MakeKey_GetAnonymous(benchmark::State& state) {
  const http::Request r = typical_get(false);
  KeyPolicy policy;
  policy.route = "models";
  policy.headers = {"accept"};
  for (auto _ : state) benchmark::DoNotOptimize(make_key(r, policy));
}
BENCHMARK(BM_MakeKey_GetAnonymous);

void BM_MakeKey_GetWithAuthorization(benchmark::State& state) {
  const http::Request r = typical_get(true);
  KeyPolicy policy;
  policy.route = "models";
  policy.headers = {"accept"};
  for (auto _ : state) benchmark::DoNotOptimize(make_key(r, policy));
}
BENCHMARK(BM_MakeKey_GetWithAuthorization);

void BM_BoostJsonParse_1KB(benchmark::State& state) {
  const std::string body = chat_body();
  for (auto _ : state) benchmark::DoNotOptimize(boost::json::parse(body));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_BoostJsonParse_1KB);

void BM_CanonicalJson_1KB(benchmark::State& state) {
  const std::string body = chat_body();
  for (auto _ : state) benchmark::DoNotOptimize(canonical_json(body));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_CanonicalJson_1KB);

void BM_MakeKey_PostCanonicalJson_1KB(benchmark::State& state) {
  http::Request r = typical_get(true);
  r.method(bh::verb::post);
  r.body() = chat_body();
  KeyPolicy policy;
  policy.route = "chat";
  policy.body = BodyDigest::canonical_json;
  for (auto _ : state) benchmark::DoNotOptimize(make_key(r, policy));
}
BENCHMARK(BM_MakeKey_PostCanonicalJson_1KB);

void BM_ParseCacheControl(benchmark::State& state) {
  bh::fields h;
  h.set(bh::field::content_type, "application/json");
  h.set(bh::field::cache_control, "public, max-age=60, stale-while-revalidate=30");
  h.set(bh::field::etag, "\"abc\"");
  for (auto _ : state) benchmark::DoNotOptimize(parse_cache_control(h));
}
BENCHMARK(BM_ParseCacheControl);

void BM_DecideStore(benchmark::State& state) {
  bh::fields req;
  req.set(bh::field::authorization, "Bearer x");
  req.set(bh::field::accept, "application/json");
  bh::fields resp;
  resp.set(bh::field::content_type, "application/json");
  resp.set(bh::field::cache_control, "max-age=60");
  resp.set(bh::field::date, "Mon, 23 Nov 2026 12:00:00 GMT");
  resp.set(bh::field::vary, "Accept-Encoding");
  StoreInputs in;
  in.method = "GET";
  in.request_headers = &req;
  in.status = 200;
  in.response_headers = &resp;
  in.now = std::chrono::sys_days(std::chrono::year(2026) / 11 / 23) + std::chrono::hours(12);
  in.default_ttl = std::chrono::seconds(30);
  in.key_has_tenant = true;
  for (auto _ : state) benchmark::DoNotOptimize(decide_store(in));
}
BENCHMARK(BM_DecideStore);

}  // namespace
}  // namespace sluice::gateway
