// End-to-end tests of response compression: the real `sluice serve` in front of the real
// `sluice sim-upstream`; bodies are decoded here with the library's own decoder and compared
// with what the upstream sent. Waits are bounded; nothing asserts a time.
#include "sluice/http/compression.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "tests/e2e/http_probe.h"
#include "tests/e2e/process.h"
#include "tests/e2e/services.h"

namespace sluice::e2e {
namespace {

using std::chrono::milliseconds;

// The sim's `size=N` body: N letters 'a' + i % 26.
std::string letters(size_t n) {
  std::string s(n, ' ');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

// The value of one series in a Prometheus text page (0 when absent).
double metric(const std::string& page, const std::string& series) {
  const size_t at = page.find("\n" + series + " ");
  if (at == std::string::npos) return 0;
  return std::stod(page.substr(at + series.size() + 2));
}

class CompressionE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(command_available("serve", &why)) << why;
    sim_ = start_sim_upstream(dir_, {"--latency", "1ms"});
    ASSERT_NE(sim_.port, 0);
    gateway_ = start_gateway(dir_, {"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                    "--upstream", "http://127.0.0.1:" + std::to_string(sim_.port),
                                    "--data-dir", dir_.file("data"), "--workers", "2"});
    ASSERT_NE(gateway_.port, 0);
  }
  void TearDown() override {
    if (gateway_.child.running()) stop_service(gateway_, "sluice serve");
    if (sim_.child.running()) stop_service(sim_, "sim-upstream");
  }
  TestDir dir_;
  Service sim_;
  Service gateway_;
};

TEST_F(CompressionE2E, CachedAnswerIsCompressedOnceAndServedInTheCodingEachClientTakes) {
  const std::string target = "/doc?size=20000&ct=application/json";
  const std::string plain = letters(20000);

  const HttpResponse first = http_get(gateway_.port, target, {{"Accept-Encoding", "gzip"}});
  ASSERT_EQ(first.status, 200u) << first.ec.message();
  EXPECT_EQ(first.header("X-Cache"), "MISS");
  EXPECT_EQ(first.header("Content-Encoding"), "gzip");
  EXPECT_NE(first.header("Vary").find("Accept-Encoding"), std::string::npos);
  EXPECT_LT(first.body.size(), plain.size());
  auto decoded = http::decompress(http::Coding::gzip, first.body, 1 << 20);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
  EXPECT_TRUE(*decoded == plain);

  for (int i = 0; i < 3; ++i) {
    const HttpResponse hit =
        http_get(gateway_.port, target, {{"Accept-Encoding", "gzip;q=0.5, zstd"}});
    ASSERT_EQ(hit.status, 200u);
    EXPECT_EQ(hit.header("X-Cache"), "HIT");
    EXPECT_EQ(hit.header("Content-Encoding"), "zstd");
    auto z = http::decompress(http::Coding::zstd, hit.body, 1 << 20);
    ASSERT_TRUE(z.has_value()) << z.error().message();
    EXPECT_TRUE(*z == plain);
  }
  const HttpResponse identity = http_get(gateway_.port, target);
  EXPECT_EQ(identity.header("X-Cache"), "HIT");
  EXPECT_FALSE(identity.has_header("Content-Encoding"));
  EXPECT_NE(identity.header("Vary").find("Accept-Encoding"), std::string::npos);
  EXPECT_TRUE(identity.body == plain);

  // Compressed when stored, once per offered coding; hits only picked a variant.
  const std::string page = http_get(gateway_.admin_port, "/metrics").body;
  EXPECT_EQ(metric(page, "sluice_gateway_compression_stored_runs_total"), 2);
  EXPECT_EQ(metric(page, "sluice_gateway_compressed_total{coding=\"zstd\"}"), 3);
  EXPECT_EQ(metric(page, "sluice_gateway_compressed_total{coding=\"gzip\"}"), 1);
}

TEST_F(CompressionE2E, SmallAndIncompressibleBodiesGoOutAsTheyAre) {
  const HttpResponse small =
      http_get(gateway_.port, "/s?size=100&ct=text/plain", {{"Accept-Encoding", "gzip"}});
  EXPECT_FALSE(small.has_header("Content-Encoding"));
  EXPECT_EQ(small.body, letters(100));
  const HttpResponse binary =
      http_get(gateway_.port, "/b?size=20000", {{"Accept-Encoding", "gzip"}});
  EXPECT_FALSE(binary.has_header("Content-Encoding"));  // application/octet-stream
  EXPECT_EQ(binary.body.size(), 20000u);
}

TEST_F(CompressionE2E, AnEventStreamIsCompressedEventByEventAndDecodesExactly) {
  const HttpResponse r = http_get(gateway_.port, "/events?n=200&size=300",
                                  {{"Accept-Encoding", "zstd, gzip"}}, milliseconds(20000));
  ASSERT_EQ(r.status, 200u) << r.ec.message();
  ASSERT_FALSE(r.ec) << r.ec.message();
  // Streams offer gzip first (smaller with a flush per event); the client took both equally.
  EXPECT_EQ(r.header("Content-Encoding"), "gzip");
  std::string expected;
  for (uint64_t i = 1; i <= 200; ++i) {
    std::string data(300, ' ');
    for (size_t j = 0; j < 300; ++j) data[j] = static_cast<char>('a' + (i + j) % 26);
    expected += "id: " + std::to_string(i) + "\ndata: " + data + "\n\n";
  }
  auto decoded = http::decompress(http::Coding::gzip, r.body, 1 << 22);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
  EXPECT_TRUE(*decoded == expected);
  EXPECT_LT(r.body.size(), expected.size());
}

TEST_F(CompressionE2E, NoStorePassThroughIsCompressedForTheClient) {
  const HttpResponse r = http_get(gateway_.port, "/p?size=30000&ct=text/html&cc=no-store",
                                  {{"Accept-Encoding", "gzip"}});
  ASSERT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("Content-Encoding"), "gzip");
  auto decoded = http::decompress(http::Coding::gzip, r.body, 1 << 20);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_TRUE(*decoded == letters(30000));
}

}  // namespace
}  // namespace sluice::e2e
