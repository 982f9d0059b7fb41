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

}  // namespace
}  // namespace sluice::http
