#include "sluice/http/headers.h"

#include <gtest/gtest.h>

namespace sluice::http {
namespace {

namespace bh = boost::beast::http;

TEST(StripHopByHopTest, RemovesTheFixedSetAndConnectionNamedHeaders) {
  bh::fields f;
  f.set("Host", "example.com");
  f.set("Connection", "keep-alive, X-Secret ,x-other-secret");
  f.insert("Connection", "Upgrade");
  f.set("Keep-Alive", "timeout=5");
  f.set("Proxy-Connection", "keep-alive");
  f.set("TE", "trailers");
  f.set("Trailer", "X-Checksum");
  f.set("Transfer-Encoding", "chunked");
  f.set("Upgrade", "websocket");
  f.set("Proxy-Authenticate", "Basic");
  f.set("Proxy-Authorization", "Basic abc");
  f.set("X-Secret", "1");
  f.set("X-Other-Secret", "2");
  f.set("X-Kept", "3");
  EXPECT_EQ(strip_hop_by_hop(f), 12u);
  EXPECT_EQ(f["Host"], "example.com");
  EXPECT_EQ(f["X-Kept"], "3");
  size_t remaining = 0;
  for (const auto& field : f) {
    (void)field;
    ++remaining;
  }
  EXPECT_EQ(remaining, 2u);
}

TEST(StripHopByHopTest, LeavesEndToEndHeadersAlone) {
  bh::fields f;
  f.set("Content-Type", "text/plain");
  f.set("Content-Length", "5");
  EXPECT_EQ(strip_hop_by_hop(f), 0u);
  EXPECT_EQ(f["Content-Length"], "5");
}

TEST(HopByHopTest, NamesTheFixedSetAndConnectionNamedHeadersCaseInsensitively) {
  bh::fields f;
  f.set("Connection", "close, X-Secret");
  f.set("x-secret", "1");
  f.set("Keep-Alive", "timeout=5");
  f.set("X-Kept", "2");
  const HopByHop hop(f);
  size_t hop_fields = 0;
  for (const auto& field : f) {
    if (hop(field)) {
      ++hop_fields;
      EXPECT_NE(field.name_string(), "X-Kept");
    }
  }
  EXPECT_EQ(hop_fields, 3u);  // Connection, Keep-Alive, x-secret
  EXPECT_TRUE(HopByHop::fixed(bh::field::transfer_encoding));
  EXPECT_FALSE(HopByHop::fixed(bh::field::content_type));
}

TEST(IequalsTest, AsciiCaseInsensitive) {
  EXPECT_TRUE(iequals("Content-Type", "content-type"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("X-A", "X-B"));
  EXPECT_FALSE(iequals("X-A", "X-AB"));
  EXPECT_FALSE(iequals("[", "{"));  // differ only by the 0x20 bit, but are not letters
}

}  // namespace
}  // namespace sluice::http
