#include "sluice/gateway/streaming.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::gateway {
namespace {

// Feeds `pieces` and returns the chunks the framer releases (whole events only).
std::vector<std::string> frame(const std::vector<std::string>& pieces, SseFramer& framer) {
  std::vector<std::string> out;
  std::string pending;
  for (const auto& piece : pieces) {
    pending += piece;
    const size_t n = framer.feed(piece);
    if (n > 0) {
      out.push_back(pending.substr(0, n));
      pending.erase(0, n);
    }
  }
  return out;
}

TEST(SseFramer, ReleasesWholeEventsOnly) {
  SseFramer f;
  const auto chunks = frame({"data: a\n", "\ndata: b", "\n\ndata: c\n"}, f);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0], "data: a\n\n");
  EXPECT_EQ(chunks[1], "data: b\n\n");
  EXPECT_EQ(f.events(), 2u);
}

TEST(SseFramer, SeveralEventsInOnePieceGoTogether) {
  SseFramer f;
  const auto chunks = frame({"id: 1\ndata: x\n\nid: 2\ndata: y\n\nid: 3"}, f);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0], "id: 1\ndata: x\n\nid: 2\ndata: y\n\n");
  EXPECT_EQ(f.events(), 2u);
}

TEST(SseFramer, CrlfAndCrLineEndsAreBoundariesToo) {
  SseFramer crlf;
  auto chunks = frame({"data: a\r\n\r\n", "data: b\r\n", "\r\n"}, crlf);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0], "data: a\r\n\r\n");
  EXPECT_EQ(chunks[1], "data: b\r\n\r\n");
  SseFramer cr;
  chunks = frame({"data: a\r\rdata: b\r", "\r"}, cr);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0], "data: a\r\r");
  EXPECT_EQ(chunks[1], "data: b\r\r");
  EXPECT_EQ(cr.events(), 2u);
}

TEST(SseFramer, CrlfSplitAcrossPiecesStaysOneLineEnd) {
  // "data: a\r" | "\n\r" | "\n": the LF after a CR belongs to it, so the only blank line is
  // the second CRLF; its LF is released with it.
  SseFramer f;
  const auto chunks = frame({"data: a\r", "\n\r", "\n"}, f);
  std::string all;
  for (const auto& c : chunks) all += c;
  EXPECT_EQ(all, "data: a\r\n\r\n");
  EXPECT_EQ(f.events(), 1u);
}

TEST(SseFramer, CommentsAndFieldsWithoutBlankLineAreHeldBack) {
  SseFramer f;
  EXPECT_EQ(f.feed(": heartbeat\n"), 0u);
  EXPECT_EQ(f.feed("event: x\n"), 0u);
  EXPECT_EQ(f.feed("\n"), std::string(": heartbeat\nevent: x\n\n").size());
}

TEST(SseFramer, CommentOnlyBlocksAreBoundariesButNotEvents) {
  SseFramer f;
  EXPECT_EQ(f.feed(": keep-alive\n\n"), 14u);  // released, so the client gets it at once
  EXPECT_EQ(f.feed("\n"), 1u);                 // an extra blank line
  EXPECT_EQ(f.events(), 0u);
  EXPECT_EQ(f.feed(": note\ndata: x\n\n"), 16u);
  EXPECT_EQ(f.events(), 1u);
}

TEST(SseFramer, SkipForgetsThePendingBytes) {
  SseFramer f;
  EXPECT_EQ(f.feed("data: very long"), 0u);
  f.skip();  // the caller forwarded them without a boundary
  EXPECT_EQ(f.feed(" event\n\n"), std::string(" event\n\n").size());
}

}  // namespace
}  // namespace sluice::gateway
