#include "sluice/http/compression.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/base/random.h"

namespace sluice::http {
namespace {

constexpr std::array<Coding, 2> kZstdGzip = {Coding::zstd, Coding::gzip};
constexpr std::array<Coding, 2> kGzipZstd = {Coding::gzip, Coding::zstd};
constexpr size_t kMiB = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Test data and reference decoders.

std::string random_bytes(size_t n, uint64_t seed = 1) {
  base::Xoshiro256 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng.next_u64());
  return s;
}

// JSON-like lines: repetitive structure, varying values (compresses about 5 to 10 times).
std::string json_text(size_t n, uint64_t seed = 2) {
  base::Xoshiro256 rng(seed);
  static constexpr std::array<std::string_view, 6> kNames = {"alpha", "beta",  "gamma",
                                                             "delta", "omega", "sigma"};
  std::string s;
  while (s.size() < n) {
    s += R"({"id":)" + std::to_string(rng.uniform(0, 1'000'000)) + R"(,"name":")" +
         std::string(kNames[rng.uniform(0, kNames.size() - 1)]) + R"(","price":)" +
         std::to_string(rng.uniform(0, 99'999)) + R"(,"ok":true})" + "\n";
  }
  s.resize(n);
  return s;
}

// An incremental gzip decoder (zlib inflate), as a client would run it.
class GzipDecoder {
 public:
  GzipDecoder() { EXPECT_EQ(inflateInit2(&z_, 15 + 16), Z_OK); }
  ~GzipDecoder() { inflateEnd(&z_); }
  GzipDecoder(const GzipDecoder&) = delete;
  GzipDecoder& operator=(const GzipDecoder&) = delete;

  // Feeds coded bytes; returns false on a decoding error.
  bool feed(std::string_view in) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    std::array<char, 4096> buf;
    for (;;) {
      z_.next_out = reinterpret_cast<Bytef*>(buf.data());
      z_.avail_out = buf.size();
      const int rc = inflate(&z_, Z_SYNC_FLUSH);
      out_.append(buf.data(), buf.size() - z_.avail_out);
      if (rc == Z_STREAM_END) {
        ended_ = true;
        return z_.avail_in == 0;
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
      if (z_.avail_in == 0 && z_.avail_out != 0) return true;
    }
  }
  const std::string& out() const { return out_; }
  bool ended() const { return ended_; }

 private:
  z_stream z_{};
  std::string out_;
  bool ended_ = false;
};

// An incremental zstd decoder (ZSTD_decompressStream) with a bounded window.
class ZstdDecoder {
 public:
  explicit ZstdDecoder(int window_log_max = 23) : d_(ZSTD_createDCtx()) {
    ZSTD_DCtx_setParameter(d_, ZSTD_d_windowLogMax, window_log_max);
  }
  ~ZstdDecoder() { ZSTD_freeDCtx(d_); }
  ZstdDecoder(const ZstdDecoder&) = delete;
  ZstdDecoder& operator=(const ZstdDecoder&) = delete;

  bool feed(std::string_view in) {
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    std::array<char, 4096> buf;
    for (;;) {
      ZSTD_outBuffer output{buf.data(), buf.size(), 0};
      const size_t hint = ZSTD_decompressStream(d_, &output, &input);
      if (ZSTD_isError(hint)) return false;
      out_.append(buf.data(), output.pos);
      ended_ = hint == 0;
      // Stop at the end of the frame (another call would start on a next frame's header).
      if (input.pos == input.size && (hint == 0 || output.pos < output.size)) return true;
    }
  }
  const std::string& out() const { return out_; }
  bool ended() const { return ended_; }

 private:
  ZSTD_DCtx* d_;
  std::string out_;
  bool ended_ = false;
};

// ---------------------------------------------------------------------------------------------
// Codings.

TEST(CodingTest, ToStringAndParse) {
  EXPECT_EQ(to_string(Coding::identity), "identity");
  EXPECT_EQ(to_string(Coding::gzip), "gzip");
  EXPECT_EQ(to_string(Coding::zstd), "zstd");
  EXPECT_EQ(parse_coding("gzip"), Coding::gzip);
  EXPECT_EQ(parse_coding(" GZip "), Coding::gzip);
  EXPECT_EQ(parse_coding("x-gzip"), Coding::gzip);
  EXPECT_EQ(parse_coding("ZSTD"), Coding::zstd);
  EXPECT_EQ(parse_coding("Identity"), Coding::identity);
  EXPECT_EQ(parse_coding("br"), std::nullopt);
  EXPECT_EQ(parse_coding("deflate"), std::nullopt);
  EXPECT_EQ(parse_coding("gzip, zstd"), std::nullopt);
  EXPECT_EQ(parse_coding(""), std::nullopt);
}

TEST(CodingTest, DefaultLevels) {
  EXPECT_EQ(default_level(Coding::gzip), 5);
  EXPECT_EQ(default_level(Coding::zstd), 3);
  EXPECT_EQ(default_level(Coding::identity), 0);
}

// ---------------------------------------------------------------------------------------------
// negotiate.

TEST(NegotiateTest, EmptyOrAbsentHeaderMeansIdentity) {
  EXPECT_EQ(negotiate("", kZstdGzip), Coding::identity);
  EXPECT_EQ(negotiate("   ", kZstdGzip), Coding::identity);
  EXPECT_TRUE(is_acceptable("", Coding::identity));
  EXPECT_FALSE(is_acceptable("", Coding::gzip));
}

TEST(NegotiateTest, NothingOfferedMeansIdentity) {
  EXPECT_EQ(negotiate("gzip, zstd", {}), Coding::identity);
}

TEST(NegotiateTest, SingleCoding) {
  EXPECT_EQ(negotiate("gzip", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("zstd", kZstdGzip), Coding::zstd);
  EXPECT_EQ(negotiate("br", kZstdGzip), Coding::identity);
  EXPECT_EQ(negotiate("gzip, deflate, br", kZstdGzip), Coding::gzip);  // a typical browser
  EXPECT_EQ(negotiate("gzip, deflate, br, zstd", kZstdGzip), Coding::zstd);
}

TEST(NegotiateTest, TiesGoToTheServersOrder) {
  EXPECT_EQ(negotiate("gzip, zstd", kZstdGzip), Coding::zstd);
  EXPECT_EQ(negotiate("zstd, gzip", kZstdGzip), Coding::zstd);
  EXPECT_EQ(negotiate("zstd, gzip", kGzipZstd), Coding::gzip);
  EXPECT_EQ(negotiate("gzip;q=0.5, zstd;q=0.5", kGzipZstd), Coding::gzip);
  const std::array<Coding, 1> only_gzip = {Coding::gzip};
  EXPECT_EQ(negotiate("zstd, gzip", only_gzip), Coding::gzip);
}

TEST(NegotiateTest, HighestWeightWins) {
  EXPECT_EQ(negotiate("gzip;q=1, zstd;q=0.5", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("gzip;q=0.8, zstd;q=0.9", kGzipZstd), Coding::zstd);
  EXPECT_EQ(negotiate("gzip;q=0.001, zstd;q=0.002", kGzipZstd), Coding::zstd);
  EXPECT_EQ(negotiate("gzip;q=0.5, zstd", kGzipZstd), Coding::zstd);
}

TEST(NegotiateTest, ZeroWeightRefuses) {
  EXPECT_EQ(negotiate("zstd;q=0, gzip", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("gzip;q=0", kZstdGzip), Coding::identity);
  EXPECT_EQ(negotiate("gzip;q=0.000, zstd;q=0.", kZstdGzip), Coding::identity);
  EXPECT_FALSE(is_acceptable("gzip;q=0", Coding::gzip));
  EXPECT_TRUE(is_acceptable("gzip;q=0", Coding::identity));
}

TEST(NegotiateTest, StarMatchesCodingsNotListed) {
  EXPECT_EQ(negotiate("*", kZstdGzip), Coding::zstd);
  EXPECT_EQ(negotiate("*", kGzipZstd), Coding::gzip);
  EXPECT_EQ(negotiate("zstd;q=0, *", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("gzip;q=0.2, *;q=0.5", kGzipZstd), Coding::zstd);
  EXPECT_EQ(negotiate("gzip;q=0.9, *;q=0.5", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("*;q=0", kZstdGzip), Coding::identity);
  EXPECT_EQ(negotiate("*;q=0, gzip", kZstdGzip), Coding::gzip);
  EXPECT_TRUE(is_acceptable("*", Coding::zstd));
}

TEST(NegotiateTest, IdentityRefusedStillAnswersIdentity) {
  EXPECT_EQ(negotiate("identity;q=0", kZstdGzip), Coding::identity);
  EXPECT_FALSE(is_acceptable("identity;q=0", Coding::identity));
  EXPECT_EQ(negotiate("identity;q=0, gzip", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("*;q=0", kZstdGzip), Coding::identity);
  EXPECT_FALSE(is_acceptable("*;q=0", Coding::identity));  // * covers identity when unlisted
  EXPECT_TRUE(is_acceptable("*;q=0, identity", Coding::identity));
  EXPECT_EQ(negotiate("br, identity;q=0", kZstdGzip), Coding::identity);
  EXPECT_FALSE(is_acceptable("br, identity;q=0", Coding::identity));
}

TEST(NegotiateTest, IdentityWinsOnlyWhenPreferredOutright) {
  EXPECT_EQ(negotiate("gzip;q=0.5, identity", kZstdGzip), Coding::identity);
  EXPECT_EQ(negotiate("gzip;q=0.5, identity;q=0.5", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("gzip;q=0.001", kZstdGzip), Coding::gzip);  // unnamed identity ranks last
  EXPECT_EQ(negotiate("gzip;q=0.5, *;q=0.8", kGzipZstd), Coding::zstd);
  EXPECT_EQ(negotiate("gzip;q=0.5, zstd;q=0, *;q=0.8", kZstdGzip), Coding::identity);
  // Identity in the offered list takes its place in the server's order.
  const std::array<Coding, 2> identity_first = {Coding::identity, Coding::gzip};
  EXPECT_EQ(negotiate("gzip, identity", identity_first), Coding::identity);
  EXPECT_EQ(negotiate("gzip", identity_first), Coding::gzip);
}

TEST(NegotiateTest, XGzipIsGzip) {
  EXPECT_EQ(negotiate("x-gzip", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("X-GZIP;Q=0.8, zstd;q=0.5", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("gzip;q=0, x-gzip", kZstdGzip), Coding::gzip);  // highest weight counts
}

TEST(NegotiateTest, CaseInsensitive) {
  EXPECT_EQ(negotiate("GZIP", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("ZsTd;Q=1", kGzipZstd), Coding::zstd);
  EXPECT_EQ(negotiate("Identity;Q=0, Gzip", kZstdGzip), Coding::gzip);
}

TEST(NegotiateTest, WhitespaceAndEmptyElements) {
  EXPECT_EQ(negotiate(" gzip ;  q=0.5 ,zstd ; q=0.7 ", kGzipZstd), Coding::zstd);
  EXPECT_EQ(negotiate("\tgzip\t", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate(", ,gzip,,", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate(",,,", kZstdGzip), Coding::identity);
}

TEST(NegotiateTest, MalformedWeightIgnoresTheEntry) {
  for (const std::string_view bad : {"q=1.5", "q=2", "q=abc", "q=0.1234", "q=", "q=.5", "q=1.001",
                                     "q=-1", "q=0,5x", "q=1e0", "q=0x1", "q= 0.5x"}) {
    const std::string value = "zstd;" + std::string(bad) + ", gzip;q=0.1";
    EXPECT_EQ(negotiate(value, kZstdGzip), Coding::gzip) << value;
  }
  EXPECT_EQ(negotiate("zstd;q=1.000", kGzipZstd), Coding::zstd);
  EXPECT_EQ(negotiate("zstd;q=1.", kGzipZstd), Coding::zstd);
  EXPECT_EQ(negotiate("zstd;q=0.5, gzip;q=0.499", kGzipZstd), Coding::zstd);
  EXPECT_EQ(negotiate("zstd;q=abc", kZstdGzip), Coding::identity);
}

TEST(NegotiateTest, OtherParametersAreIgnored) {
  EXPECT_EQ(negotiate("gzip;level=9", kZstdGzip), Coding::gzip);
  EXPECT_EQ(negotiate("gzip;foo;q=0.3, zstd;q=0.2", kZstdGzip), Coding::gzip);
}

TEST(NegotiateTest, GarbageMeansIdentity) {
  for (const std::string_view garbage : {"garbage", ";;;", "gzip/zstd", "\"gzip\"", "g zip", ";q=1",
                                         "=", "\x01\x02", "gzip\x7f", "compress, deflate, br"}) {
    EXPECT_EQ(negotiate(garbage, kZstdGzip), Coding::identity) << garbage;
  }
  EXPECT_EQ(negotiate("garbage, \"x\", gzip", kZstdGzip), Coding::gzip);
}

// ---------------------------------------------------------------------------------------------
// is_compressible.

TEST(IsCompressibleTest, TextAndStructuredTypes) {
  for (const std::string_view type : {"text/html",
                                      "text/plain",
                                      "text/css",
                                      "text/csv",
                                      "text/javascript",
                                      "text/xml",
                                      "text/event-stream",
                                      "TEXT/HTML",
                                      "text/html; charset=utf-8",
                                      " text/plain ;charset=UTF-8",
                                      "application/json",
                                      "Application/JSON; charset=utf-8",
                                      "application/problem+json",
                                      "application/ld+json",
                                      "application/vnd.api+json",
                                      "application/xml",
                                      "application/atom+xml",
                                      "application/rss+xml",
                                      "application/xhtml+xml",
                                      "image/svg+xml",
                                      "IMAGE/SVG+XML",
                                      "application/javascript",
                                      "application/x-javascript",
                                      "application/ecmascript",
                                      "application/x-ndjson",
                                      "application/yaml",
                                      "application/wasm",
                                      "font/ttf",
                                      "font/otf"}) {
    EXPECT_TRUE(is_compressible(type)) << type;
  }
}

TEST(IsCompressibleTest, BinaryUnknownAndMalformed) {
  for (const std::string_view type : {"",
                                      "   ",
                                      "text",
                                      "/html",
                                      "text/",
                                      "json",
                                      "image/png",
                                      "image/jpeg",
                                      "image/webp",
                                      "image/gif",
                                      "audio/mpeg",
                                      "video/mp4",
                                      "application/octet-stream",
                                      "application/zip",
                                      "application/gzip",
                                      "application/zstd",
                                      "application/pdf",
                                      "application/grpc",
                                      "application/x-protobuf",
                                      "multipart/form-data; boundary=x",
                                      "font/woff",
                                      "font/woff2",
                                      "application/jsonx",
                                      "application/json-seq",
                                      "text html",
                                      "application/json+"}) {
    EXPECT_FALSE(is_compressible(type)) << type;
  }
}

// ---------------------------------------------------------------------------------------------
// One-shot compress and decompress.

class OneShotTest : public ::testing::TestWithParam<Coding> {};

INSTANTIATE_TEST_SUITE_P(Codings, OneShotTest, ::testing::Values(Coding::gzip, Coding::zstd),
                         [](const auto& info) { return std::string(to_string(info.param)); });

void expect_round_trip(Coding coding, const std::string& data, int level = kDefaultLevel) {
  const auto coded = compress(coding, data, level);
  ASSERT_TRUE(coded) << coded.error().message();
  const auto decoded = decompress(coding, *coded, data.size());
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_TRUE(*decoded == data) << "size " << data.size() << " level " << level;
}

TEST_P(OneShotTest, RoundTripsEmptySmallRandomAndText) {
  expect_round_trip(GetParam(), "");
  expect_round_trip(GetParam(), "a");
  expect_round_trip(GetParam(), "hello, hello, hello world");
  expect_round_trip(GetParam(), random_bytes(kMiB));
  expect_round_trip(GetParam(), json_text(kMiB));
  expect_round_trip(GetParam(), std::string(kMiB, 'x'));
}

TEST_P(OneShotTest, EmptyInputStillMakesAValidStream) {
  const auto coded = compress(GetParam(), "");
  ASSERT_TRUE(coded);
  EXPECT_FALSE(coded->empty());  // a header and a trailer; clients decode it to nothing
}

TEST_P(OneShotTest, OutputHasTheFormatsMagic) {
  const auto coded = compress(GetParam(), json_text(1000));
  ASSERT_TRUE(coded);
  ASSERT_GE(coded->size(), 4u);
  const auto* bytes = reinterpret_cast<const unsigned char*>(coded->data());
  if (GetParam() == Coding::gzip) {
    EXPECT_EQ(bytes[0], 0x1f);
    EXPECT_EQ(bytes[1], 0x8b);
    EXPECT_EQ(bytes[2], 0x08);  // deflate
  } else {
    EXPECT_EQ(bytes[0], 0x28);
    EXPECT_EQ(bytes[1], 0xb5);
    EXPECT_EQ(bytes[2], 0x2f);
    EXPECT_EQ(bytes[3], 0xfd);
  }
}

TEST_P(OneShotTest, CompressesText) {
  const std::string text = json_text(kMiB);
  const auto coded = compress(GetParam(), text);
  ASSERT_TRUE(coded);
  EXPECT_LT(coded->size(), text.size() / 3);
  const auto random = random_bytes(64 * 1024);
  const auto coded_random = compress(GetParam(), random);
  ASSERT_TRUE(coded_random);
  EXPECT_LT(coded_random->size(), random.size() + 128);  // stored, not expanded much
}

TEST_P(OneShotTest, EveryLevelRoundTripsAndOutOfRangeIsClamped) {
  const std::string text = json_text(100'000);
  for (const int level : {-5, 1, 2, 5, 6, 9, 12, 19, 22, 100})
    expect_round_trip(GetParam(), text, level);
  const auto fast = compress(GetParam(), text, 1);
  const auto slow = compress(GetParam(), text, 9);
  ASSERT_TRUE(fast && slow);
  EXPECT_LT(slow->size(), fast->size());
}

TEST_P(OneShotTest, ReferenceDecoderReadsTheOutput) {
  const std::string text = json_text(3 * kMiB);
  const auto coded = compress(GetParam(), text);
  ASSERT_TRUE(coded);
  if (GetParam() == Coding::gzip) {
    GzipDecoder d;
    ASSERT_TRUE(d.feed(*coded));
    EXPECT_TRUE(d.ended());
    EXPECT_TRUE(d.out() == text);
  } else {
    ZstdDecoder d(/*window_log_max=*/20);  // one-shot output never needs more than 1 MiB
    ASSERT_TRUE(d.feed(*coded));
    EXPECT_TRUE(d.ended());
    EXPECT_TRUE(d.out() == text);
  }
}

TEST_P(OneShotTest, DecompressIsBoundedByMaxOutput) {
  const std::string text = json_text(100'000);
  const auto coded = compress(GetParam(), text);
  ASSERT_TRUE(coded);
  EXPECT_TRUE(decompress(GetParam(), *coded, text.size()));
  EXPECT_TRUE(decompress(GetParam(), *coded, SIZE_MAX));
  const auto over = decompress(GetParam(), *coded, text.size() - 1);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error(), CompressionErrc::output_too_large);
  EXPECT_EQ(decompress(GetParam(), *coded, 0).error(), CompressionErrc::output_too_large);
}

TEST_P(OneShotTest, ZipBombStopsAtTheBound) {
  // 64 MiB of zeros, coded in well under 1 MiB; decoding stops at 1 MiB + 1 byte.
  StreamCompressor c(GetParam(), {.level = 1});
  const std::string zeros(kMiB, '\0');
  std::string coded;
  for (int i = 0; i < 64; ++i) ASSERT_FALSE(c.write(zeros, Flush::none, coded));
  ASSERT_FALSE(c.finish(coded));
  EXPECT_LT(coded.size(), kMiB);
  const auto bomb = decompress(GetParam(), coded, kMiB);
  ASSERT_FALSE(bomb);
  EXPECT_EQ(bomb.error(), CompressionErrc::output_too_large);
}

TEST_P(OneShotTest, CorruptInputIsRejected) {
  for (const std::string& garbage :
       {random_bytes(1000, 7), std::string("not compressed at all"), std::string(100, '\0')}) {
    const auto r = decompress(GetParam(), garbage, kMiB);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), CompressionErrc::corrupt_input) << r.error().message();
  }
  // One flipped byte in the middle: a data error or a checksum mismatch.
  const std::string text = json_text(50'000);
  auto coded = compress(GetParam(), text);
  ASSERT_TRUE(coded);
  for (const size_t at : {coded->size() / 3, coded->size() / 2, coded->size() - 6}) {
    std::string bad = *coded;
    bad[at] = static_cast<char>(bad[at] ^ 0x55);
    const auto r = decompress(GetParam(), bad, kMiB);
    ASSERT_FALSE(r) << at;
    EXPECT_EQ(r.error(), CompressionErrc::corrupt_input) << at << ": " << r.error().message();
  }
  // Trailing garbage after a complete stream.
  const auto trailing = decompress(GetParam(), *coded + "garbage!garbage!", kMiB);
  ASSERT_FALSE(trailing);
  EXPECT_EQ(trailing.error(), CompressionErrc::corrupt_input);
}

TEST_P(OneShotTest, TruncatedInputIsRejected) {
  const std::string text = json_text(50'000);
  const auto coded = compress(GetParam(), text);
  ASSERT_TRUE(coded);
  for (const size_t keep : {size_t{5}, coded->size() / 2, coded->size() - 1}) {
    const auto r = decompress(GetParam(), coded->substr(0, keep), kMiB);
    ASSERT_FALSE(r) << keep;
    EXPECT_EQ(r.error(), CompressionErrc::truncated_input) << keep << ": " << r.error().message();
  }
}

TEST_P(OneShotTest, ConcatenatedMembersDecodeInOrder) {
  const auto a = compress(GetParam(), "first part, ");
  const auto b = compress(GetParam(), "second part");
  ASSERT_TRUE(a && b);
  const auto r = decompress(GetParam(), *a + *b, 100);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "first part, second part");
}

TEST_P(OneShotTest, EmptyInputDecodesToEmpty) {
  const auto r = decompress(GetParam(), "", 0);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "");
}

TEST(OneShotTest, WrongCodingIsCorrupt) {
  const auto gz = compress(Coding::gzip, "some text");
  const auto zs = compress(Coding::zstd, "some text");
  ASSERT_TRUE(gz && zs);
  EXPECT_EQ(decompress(Coding::zstd, *gz, 100).error(), CompressionErrc::corrupt_input);
  EXPECT_EQ(decompress(Coding::gzip, *zs, 100).error(), CompressionErrc::corrupt_input);
}

TEST(OneShotTest, IdentityCopiesAndIsBounded) {
  EXPECT_EQ(*compress(Coding::identity, "abc"), "abc");
  EXPECT_EQ(*decompress(Coding::identity, "abc", 3), "abc");
  EXPECT_EQ(decompress(Coding::identity, "abc", 2).error(), CompressionErrc::output_too_large);
}

// ---------------------------------------------------------------------------------------------
// StreamCompressor.

class StreamCompressorTest : public ::testing::TestWithParam<Coding> {};

INSTANTIATE_TEST_SUITE_P(Codings, StreamCompressorTest,
                         ::testing::Values(Coding::gzip, Coding::zstd),
                         [](const auto& info) { return std::string(to_string(info.param)); });

// Feeds coded bytes to the reference decoder of `coding`; returns everything decoded so far.
class Decoder {
 public:
  explicit Decoder(Coding coding) : coding_(coding) {}
  bool feed(std::string_view in) {
    return coding_ == Coding::gzip ? gzip_.feed(in) : zstd_.feed(in);
  }
  const std::string& out() const { return coding_ == Coding::gzip ? gzip_.out() : zstd_.out(); }
  bool ended() const { return coding_ == Coding::gzip ? gzip_.ended() : zstd_.ended(); }

 private:
  Coding coding_;
  GzipDecoder gzip_;
  ZstdDecoder zstd_{/*window_log_max=*/16};  // the default stream window is 64 KiB
};

TEST_P(StreamCompressorTest, EveryFlushedWriteIsDecodableAtOnce) {
  StreamCompressor c(GetParam());
  Decoder decoder(GetParam());
  base::Xoshiro256 rng(3);
  const std::string text = json_text(200'000);
  std::string input;
  std::string output;
  size_t at = 0;
  for (int event = 0; at < text.size(); ++event) {
    // Events of 0 to 500 bytes, each followed by a flush (an empty one now and then).
    const size_t n = std::min<size_t>(rng.uniform(0, 500), text.size() - at);
    const std::string_view chunk = std::string_view(text).substr(at, n);
    at += n;
    const auto coded = c.write(chunk, Flush::sync);
    ASSERT_TRUE(coded) << coded.error().message();
    input += chunk;
    output += *coded;
    ASSERT_TRUE(decoder.feed(*coded)) << event;
    ASSERT_EQ(decoder.out().size(), input.size()) << event;
    ASSERT_TRUE(decoder.out() == input) << event;
  }
  const auto tail = c.finish();
  ASSERT_TRUE(tail);
  output += *tail;
  ASSERT_TRUE(decoder.feed(*tail));
  EXPECT_TRUE(decoder.ended());
  EXPECT_EQ(c.bytes_in(), input.size());
  EXPECT_EQ(c.bytes_out(), output.size());
  const auto whole = decompress(GetParam(), output, input.size());
  ASSERT_TRUE(whole) << whole.error().message();
  EXPECT_TRUE(*whole == input);
}

TEST_P(StreamCompressorTest, UnflushedWritesAreBufferedThenFlushed) {
  StreamCompressor c(GetParam());
  Decoder decoder(GetParam());
  std::string out;
  ASSERT_FALSE(c.write("event: one\n", Flush::none, out));
  ASSERT_FALSE(c.write("data: 1\n\n", Flush::none, out));
  ASSERT_TRUE(decoder.feed(out));
  EXPECT_LT(decoder.out().size(), 20u);  // nothing promised yet
  const size_t before = out.size();
  ASSERT_FALSE(c.write("", Flush::sync, out));
  ASSERT_TRUE(decoder.feed(std::string_view(out).substr(before)));
  EXPECT_EQ(decoder.out(), "event: one\ndata: 1\n\n");
  // A second flush with nothing new adds nothing.
  const size_t before2 = out.size();
  ASSERT_FALSE(c.write("", Flush::sync, out));
  EXPECT_EQ(out.size(), before2);
  ASSERT_FALSE(c.finish(out));
  const auto whole = decompress(GetParam(), out, 100);
  ASSERT_TRUE(whole);
  EXPECT_EQ(*whole, "event: one\ndata: 1\n\n");
}

TEST_P(StreamCompressorTest, LargeChunksRoundTrip) {
  StreamCompressor c(GetParam());
  const std::string text = json_text(3 * kMiB);
  const std::string random = random_bytes(kMiB);
  std::string out;
  ASSERT_FALSE(c.write(text, Flush::none, out));
  ASSERT_FALSE(c.write(random, Flush::sync, out));
  ASSERT_FALSE(c.write(text, Flush::none, out));
  ASSERT_FALSE(c.finish(out));
  const auto whole = decompress(GetParam(), out, 8 * kMiB);
  ASSERT_TRUE(whole) << whole.error().message();
  EXPECT_TRUE(*whole == text + random + text);
}

TEST_P(StreamCompressorTest, AppendsAfterTheCallersBytes) {
  StreamCompressor c(GetParam());
  std::string out = "prefix";
  ASSERT_FALSE(c.write("hello", Flush::sync, out));
  ASSERT_FALSE(c.finish(out));
  ASSERT_EQ(out.substr(0, 6), "prefix");
  EXPECT_EQ(*decompress(GetParam(), out.substr(6), 100), "hello");
}

TEST_P(StreamCompressorTest, FinishTwiceOrWriteAfterFinishFails) {
  StreamCompressor c(GetParam());
  EXPECT_FALSE(c.finished());
  ASSERT_TRUE(c.write("x", Flush::none));
  const auto tail = c.finish();
  ASSERT_TRUE(tail);
  EXPECT_TRUE(c.finished());
  EXPECT_EQ(c.memory_bytes(), 0u);  // the codec state is freed at the end
  EXPECT_EQ(c.write("y", Flush::sync).error(), CompressionErrc::stream_finished);
  EXPECT_EQ(c.finish().error(), CompressionErrc::stream_finished);
  std::string out = "keep";
  EXPECT_EQ(c.write("y", Flush::sync, out), CompressionErrc::stream_finished);
  EXPECT_EQ(out, "keep");
}

TEST_P(StreamCompressorTest, EmptyStreamIsValid) {
  StreamCompressor c(GetParam());
  const auto tail = c.finish();
  ASSERT_TRUE(tail);
  const auto r = decompress(GetParam(), *tail, 0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "");
}

TEST_P(StreamCompressorTest, MovesKeepTheStream) {
  StreamCompressor a(GetParam());
  std::string out;
  ASSERT_FALSE(a.write("one ", Flush::sync, out));
  StreamCompressor b(std::move(a));
  ASSERT_FALSE(b.write("two ", Flush::none, out));
  StreamCompressor c(Coding::identity);
  c = std::move(b);
  ASSERT_FALSE(c.write("three", Flush::none, out));
  ASSERT_FALSE(c.finish(out));
  EXPECT_EQ(c.coding(), GetParam());
  EXPECT_EQ(*decompress(GetParam(), out, 100), "one two three");
}

TEST_P(StreamCompressorTest, LevelsAndWindowsRoundTrip) {
  const std::string text = json_text(300'000);
  for (const int level : {1, 5, 9, 19}) {
    for (const int window_log : {0, 9, 10, 13, 15, 16, 20, 30}) {
      StreamCompressor c(GetParam(), {.level = level, .window_log = window_log});
      std::string out;
      for (size_t at = 0; at < text.size(); at += 10'000) {
        ASSERT_FALSE(c.write(std::string_view(text).substr(at, 10'000), Flush::none, out));
      }
      ASSERT_FALSE(c.finish(out));
      const auto whole = decompress(GetParam(), out, text.size());
      ASSERT_TRUE(whole) << level << " " << window_log;
      EXPECT_TRUE(*whole == text) << level << " " << window_log;
    }
  }
}

TEST(StreamCompressorTest, ZstdWindowStaysWithinItsOption) {
  // A decoder limited to the window accepts the stream: that is the client's memory bound.
  for (const int window_log : {10, 14, 16, 20}) {
    StreamCompressor c(Coding::zstd, {.window_log = window_log});
    const std::string text = json_text(2 * kMiB);
    std::string out;
    ASSERT_FALSE(c.write(text, Flush::none, out));
    ASSERT_FALSE(c.finish(out));
    ZstdDecoder d(window_log);
    ASSERT_TRUE(d.feed(out)) << window_log;
    EXPECT_TRUE(d.out() == text);
    if (window_log > 10 && window_log < 20) {
      ZstdDecoder smaller(window_log - 1);
      EXPECT_FALSE(smaller.feed(out)) << window_log;  // the bound is tight: the window is used
    }
  }
}

TEST(StreamCompressorTest, MemoryPerStreamIsBounded) {
  StreamCompressor gzip(Coding::gzip);
  EXPECT_GT(gzip.memory_bytes(), 200u * 1024);
  EXPECT_LT(gzip.memory_bytes(), 300u * 1024);
  StreamCompressor small_gzip(Coding::gzip, {.window_log = 13});
  EXPECT_LT(small_gzip.memory_bytes(), 100u * 1024);

  StreamCompressor zstd(Coding::zstd);
  ASSERT_TRUE(zstd.write("data: {}\n\n", Flush::sync));  // zstd allocates at the first write
  EXPECT_GT(zstd.memory_bytes(), 100u * 1024);
  EXPECT_LT(zstd.memory_bytes(), 1024u * 1024);
  // Memory follows the window, not the level.
  StreamCompressor zstd9(Coding::zstd, {.level = 9});
  ASSERT_TRUE(zstd9.write("data: {}\n\n", Flush::sync));
  EXPECT_LT(zstd9.memory_bytes(), 2 * zstd.memory_bytes());
  StreamCompressor small_zstd(Coding::zstd, {.window_log = 14});
  ASSERT_TRUE(small_zstd.write("data: {}\n\n", Flush::sync));
  EXPECT_LT(small_zstd.memory_bytes(), zstd.memory_bytes());

  RecordProperty("gzip_default_bytes", std::to_string(gzip.memory_bytes()));
  RecordProperty("gzip_window13_bytes", std::to_string(small_gzip.memory_bytes()));
  RecordProperty("zstd_default_bytes", std::to_string(zstd.memory_bytes()));
  RecordProperty("zstd_level9_bytes", std::to_string(zstd9.memory_bytes()));
  RecordProperty("zstd_window14_bytes", std::to_string(small_zstd.memory_bytes()));
}

TEST(StreamCompressorTest, IdentityPassesThrough) {
  StreamCompressor c(Coding::identity);
  EXPECT_EQ(*c.write("abc", Flush::none), "abc");
  EXPECT_EQ(*c.write("def", Flush::sync), "def");
  EXPECT_EQ(*c.finish(), "");
  EXPECT_EQ(c.bytes_in(), 6u);
  EXPECT_EQ(c.bytes_out(), 6u);
  EXPECT_EQ(c.memory_bytes(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Errors.

TEST(CompressionErrcTest, CategoryAndMessages) {
  const boost::system::error_code ec = CompressionErrc::output_too_large;
  EXPECT_STREQ(ec.category().name(), "sluice.http.compression");
  EXPECT_EQ(ec, CompressionErrc::output_too_large);
  for (const auto e : {CompressionErrc::corrupt_input, CompressionErrc::truncated_input,
                       CompressionErrc::output_too_large, CompressionErrc::codec_failure,
                       CompressionErrc::stream_finished}) {
    const std::string message = make_error_code(e).message();
    EXPECT_FALSE(message.empty());
    EXPECT_EQ(message.find("unknown"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace sluice::http
