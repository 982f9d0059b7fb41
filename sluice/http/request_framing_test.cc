#include "sluice/http/request_framing.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::http {
namespace {

using Result = HeadScanner::Result;

TEST(HeadScannerTest, FindsTheEndOfAHeadAcrossCalls) {
  HeadScanner scanner;
  std::string buffer = "GET / HTTP/1.1\r\nHost: a\r";
  EXPECT_EQ(scanner.scan(buffer), Result::kNeedMore);
  buffer += "\n\r";
  EXPECT_EQ(scanner.scan(buffer), Result::kNeedMore);
  buffer += "\nGET /next";  // the next pipelined request is not part of this head
  ASSERT_EQ(scanner.scan(buffer), Result::kComplete);
  EXPECT_EQ(scanner.leading_bytes(), 0u);
  EXPECT_EQ(scanner.head_size(), buffer.find("GET /next"));
}

TEST(HeadScannerTest, SkipsLeadingEmptyLines) {
  HeadScanner scanner;
  const std::string buffer = "\r\n\r\nGET / HTTP/1.1\r\n\r\n";
  ASSERT_EQ(scanner.scan(buffer), Result::kComplete);
  EXPECT_EQ(scanner.leading_bytes(), 4u);
  EXPECT_EQ(scanner.head_size(), buffer.size() - 4);
}

TEST(HeadScannerTest, ReportsBareLfAsSoonAsSeen) {
  for (const std::string buffer : {"GET / HTTP/1.1\nHost: a", "GET / HTTP/1.1\r\nHost: a\n",
                                   "\nGET / HTTP/1.1", "GET / HTTP/1.1\r\n\n"}) {
    HeadScanner scanner;
    EXPECT_EQ(scanner.scan(buffer), Result::kBareLf) << buffer;
  }
}

TEST(HeadScannerTest, ResetStartsOver) {
  HeadScanner scanner;
  ASSERT_EQ(scanner.scan("GET / HTTP/1.1\r\n\r\n"), Result::kComplete);
  scanner.reset();
  EXPECT_EQ(scanner.scan("GET /"), Result::kNeedMore);
}

std::string head(std::string_view header_lines) {
  return "POST /x HTTP/1.1\r\nHost: a\r\n" + std::string(header_lines) + "\r\n";
}

TEST(CheckRequestHeadTest, AcceptsOrdinaryFraming) {
  EXPECT_EQ(check_request_head(head("")), std::nullopt);
  EXPECT_EQ(check_request_head(head("Content-Length: 5\r\n")), std::nullopt);
  EXPECT_EQ(check_request_head(head("content-length:   12 \r\n")), std::nullopt);
  EXPECT_EQ(check_request_head(head("Transfer-Encoding: chunked\r\n")), std::nullopt);
  EXPECT_EQ(check_request_head(head("transfer-encoding: Chunked\r\n")), std::nullopt);
  EXPECT_EQ(check_request_head(head("X-List: a, b\r\nX-List: c\r\n")), std::nullopt);
}

TEST(CheckRequestHeadTest, RejectsTransferEncodingWithContentLength) {
  EXPECT_EQ(check_request_head(head("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")),
            BadRequestReason::kTransferEncodingWithContentLength);
  // The case Beast 1.81 gets wrong: it frames this body by the length.
  EXPECT_EQ(check_request_head(head("Transfer-Encoding: gzip\r\nContent-Length: 5\r\n")),
            BadRequestReason::kTransferEncodingWithContentLength);
  EXPECT_EQ(check_request_head(head("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n")),
            BadRequestReason::kTransferEncodingWithContentLength);
}

TEST(CheckRequestHeadTest, RejectsTransferEncodingOtherThanASingleChunked) {
  for (const char* te : {"gzip", "gzip, chunked", "chunked, chunked", "identity", "chunked;x=1",
                         "chunked,", "", "xchunked"}) {
    EXPECT_EQ(check_request_head(head(std::string("Transfer-Encoding: ") + te + "\r\n")),
              BadRequestReason::kUnsupportedTransferEncoding)
        << te;
  }
  EXPECT_EQ(
      check_request_head(head("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")),
      BadRequestReason::kUnsupportedTransferEncoding);
  EXPECT_EQ(check_request_head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            BadRequestReason::kUnsupportedTransferEncoding);
}

TEST(CheckRequestHeadTest, RejectsDuplicateOrMalformedContentLength) {
  EXPECT_EQ(check_request_head(head("Content-Length: 5\r\nContent-Length: 5\r\n")),
            BadRequestReason::kDuplicateContentLength);
  for (const char* cl :
       {"1, 1", "+5", "-5", "5 5", "", "0x10", "5.0", "1234567890123456789", "5,"}) {
    EXPECT_EQ(check_request_head(head(std::string("Content-Length: ") + cl + "\r\n")),
              BadRequestReason::kInvalidContentLength)
        << cl;
  }
}

TEST(CheckRequestHeadTest, RejectsBareLfObsFoldAndBadNames) {
  EXPECT_EQ(check_request_head("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"),
            BadRequestReason::kBareLf);
  EXPECT_EQ(check_request_head(head("X-A: 1\r\n  continued\r\n")), BadRequestReason::kObsFold);
  EXPECT_EQ(check_request_head(head("Content-Length : 5\r\n")),
            BadRequestReason::kInvalidHeaderName);
  EXPECT_EQ(check_request_head(head(": 5\r\n")), BadRequestReason::kInvalidHeaderName);
  EXPECT_EQ(check_request_head(head("NoColon\r\n")), BadRequestReason::kInvalidHeaderName);
}

TEST(CheckRequestHeadTest, EveryReasonHasAName) {
  for (size_t i = 0; i < kBadRequestReasonCount; ++i) {
    EXPECT_NE(to_string(static_cast<BadRequestReason>(i)), "unknown");
  }
}

}  // namespace
}  // namespace sluice::http
