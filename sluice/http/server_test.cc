#include "sluice/http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sluice::http {
namespace {

namespace asio = boost::asio;
namespace bh = boost::beast::http;
using namespace std::chrono_literals;

// A small blocking client over a raw socket: sends exact bytes and parses responses by hand,
// so that the server is tested against the wire, not against Beast.
struct RawResponse {
  int status = 0;
  std::string version;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::vector<std::string> chunks;

  [[nodiscard]] std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    // A safety net against a hung test, not a timing assertion.
    timeval tv{};
    tv.tv_sec = 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
    }
  }
  ~RawClient() { ::close(fd_); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return;  // the server may close early (e.g. after a 413); reads tell
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  // Reads a head; nullopt on EOF/error before a complete head.
  std::optional<RawResponse> read_head() {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    RawResponse r;
    const std::string head = buf_.substr(0, end + 2);
    buf_.erase(0, end + 4);
    size_t pos = head.find("\r\n");
    const std::string status_line = head.substr(0, pos);
    r.version = status_line.substr(0, 8);
    r.status = std::stoi(status_line.substr(9, 3));
    pos += 2;
    while (pos < head.size()) {
      const size_t eol = head.find("\r\n", pos);
      const std::string line = head.substr(pos, eol - pos);
      pos = eol + 2;
      const size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      std::string value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      r.headers[name] = value;
    }
    return r;
  }

  // Reads the next chunk of a chunked body; "" for the last chunk, nullopt on EOF.
  std::optional<std::string> read_chunk() {
    size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (!fill()) return std::nullopt;
    }
    const size_t size = std::stoul(buf_.substr(0, eol), nullptr, 16);
    buf_.erase(0, eol + 2);
    if (!read_exact(size + 2)) return std::nullopt;
    std::string data = buf_.substr(0, size);
    buf_.erase(0, size + 2);
    return data;
  }

  // Reads a whole response (head and body framed as the server says).
  std::optional<RawResponse> read_response(bool head_request = false) {
    auto r = read_head();
    if (!r) return r;
    if (head_request || r->status == 204 || r->status == 304) return r;
    if (r->header("transfer-encoding") == "chunked") {
      while (true) {
        auto chunk = read_chunk();
        if (!chunk) return std::nullopt;
        if (chunk->empty()) break;
        r->chunks.push_back(*chunk);
        r->body += *chunk;
      }
    } else if (!r->header("content-length").empty()) {
      const size_t n = std::stoul(r->header("content-length"));
      if (!read_exact(n)) return std::nullopt;
      r->body = buf_.substr(0, n);
      buf_.erase(0, n);
    } else {
      while (fill()) {
      }
      r->body = std::move(buf_);
      buf_.clear();
    }
    return r;
  }

  // Everything until the server closes the connection.
  std::string read_until_close() {
    while (fill()) {
    }
    return std::exchange(buf_, std::string());
  }

  // True when the server closed the connection (EOF or reset) with no further bytes.
  bool closed_by_server() {
    if (!buf_.empty()) return false;
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool fill() {
    char tmp[16384];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  bool read_exact(size_t n) {
    while (buf_.size() < n) {
      if (!fill()) return false;
    }
    return true;
  }

  int fd_ = -1;
  std::string buf_;
};

ServerOptions test_options() {
  ServerOptions o;
  o.address = "127.0.0.1";
  o.port = 0;
  o.workers = 1;
  return o;
}

// Echoes what it saw: method, target, body and the header names.
asio::awaitable<void> echo_handler(Request& req, ResponseWriter& w) {
  bh::fields headers;
  headers.set(bh::field::content_type, "text/plain");
  std::string names;
  for (const auto& f : req) {
    if (!names.empty()) names += ",";
    names += std::string(f.name_string());
  }
  headers.set("X-Seen-Headers", names);
  headers.set("X-Worker", std::to_string(w.worker_index()));
  // Framing headers from the handler are ignored: the server owns framing.
  headers.set(bh::field::content_length, "999");
  std::string body = std::string(req.method_string()) + " " + std::string(req.target());
  if (!req.body().empty()) body += " body=" + req.body();
  (void)co_await w.send(bh::status::ok, std::move(headers), std::move(body));
}

class ServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions options, Handler handler = echo_handler) {
    server_.emplace(std::move(options), std::move(handler));
    ASSERT_FALSE(server_->start());
    ASSERT_NE(server_->port(), 0);
  }
  // Stops, waits, and returns the final counters (the join orders every counter write).
  ServerStats stop_and_wait() {
    server_->stop();
    server_->wait();
    return server_->stats();
  }
  uint16_t port() const { return server_->port(); }

  std::optional<Server> server_;
};

TEST_F(ServerTest, BasicGet) {
  start(test_options());
  RawClient c(port());
  c.send("GET /hello?x=1 HTTP/1.1\r\nHost: test\r\n\r\n");
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version, "HTTP/1.1");
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /hello?x=1");
  EXPECT_EQ(r->header("content-length"), "14");
  EXPECT_EQ(r->header("content-type"), "text/plain");
  EXPECT_EQ(r->header("connection"), "");
  const auto s = stop_and_wait();
  EXPECT_EQ(s.connections_accepted, 1u);
  EXPECT_EQ(s.requests, 1u);
  EXPECT_EQ(s.responses_2xx, 1u);
  EXPECT_GT(s.bytes_in, 30u);
  EXPECT_GT(s.bytes_out, 14u);
  EXPECT_EQ(s.connections_active, 0u);
}

TEST_F(ServerTest, KeepAliveReusesTheConnection) {
  start(test_options());
  RawClient c(port());
  for (int i = 0; i < 3; ++i) {
    c.send("GET /r" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n");
    const auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "GET /r" + std::to_string(i));
  }
  const auto s = stop_and_wait();
  EXPECT_EQ(s.connections_accepted, 1u);
  EXPECT_EQ(s.requests, 3u);
  EXPECT_EQ(s.keepalive_reuses, 2u);
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start(test_options());
  RawClient c(port());
  c.send(
      "GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz"
      "\r\n"  // a stray empty line between requests is tolerated
      "GET /c HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto a = c.read_response();
  const auto b = c.read_response();
  const auto d = c.read_response();
  ASSERT_TRUE(a && b && d);
  EXPECT_EQ(a->body, "GET /a");
  EXPECT_EQ(b->body, "POST /b body=xyz");
  EXPECT_EQ(d->body, "GET /c");
  EXPECT_EQ(stop_and_wait().requests, 3u);
}

TEST_F(ServerTest, PostWithContentLength) {
  start(test_options());
  RawClient c(port());
  c.send("POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /p body=hello world");
}

TEST_F(ServerTest, PostWithChunkedBodyArrivesDechunked) {
  start(test_options());
  RawClient c(port());
  c.send(
      "POST /p HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /p body=hello world");
  // The handler saw a Content-Length for the de-chunked body and no Transfer-Encoding.
  EXPECT_EQ(r->header("x-seen-headers"), "Host,Content-Length");
}

TEST_F(ServerTest, ExpectContinueGets100BeforeTheBody) {
  start(test_options());
  RawClient c(port());
  c.send("POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
  const auto interim = c.read_head();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  c.send("abcd");
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "POST /p body=abcd");
  const auto s = stop_and_wait();
  EXPECT_EQ(s.responses_1xx, 1u);
  EXPECT_EQ(s.responses_2xx, 1u);
}

TEST_F(ServerTest, Http10ClosesUnlessKeepAliveIsAsked) {
  start(test_options());
  {
    RawClient c(port());
    c.send("GET /old HTTP/1.0\r\n\r\n");
    const auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->version, "HTTP/1.0");
    EXPECT_EQ(r->header("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
  }
  RawClient c(port());
  c.send("GET /k1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const auto r1 = c.read_response();
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->header("connection"), "keep-alive");
  c.send("GET /k2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const auto r2 = c.read_response();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->body, "GET /k2");
}

TEST_F(ServerTest, HeadRequestGetsNoBody) {
  start(test_options());
  RawClient c(port());
  c.send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /after HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto h = c.read_response(/*head_request=*/true);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->header("content-length"), "7");  // the length a GET would have had
  const auto g = c.read_response();
  ASSERT_TRUE(g);
  EXPECT_EQ(g->body, "GET /after");  // no stray body bytes between the two responses
}

TEST_F(ServerTest, HugeHeadersGet431) {
  auto o = test_options();
  o.max_header_bytes = 1024;
  start(o);
  RawClient c(port());
  c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n");
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_server());
  const auto s = stop_and_wait();
  EXPECT_EQ(s.headers_too_large, 1u);
  EXPECT_EQ(s.requests, 0u);
}

TEST_F(ServerTest, HugeContentLengthGets413WithoutReadingTheBody) {
  auto o = test_options();
  o.max_body_bytes = 1024;
  start(o);
  RawClient c(port());
  c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n");
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_NE(r->body.find("payload_too_large"), std::string::npos);
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(stop_and_wait().bodies_too_large, 1u);
}

TEST_F(ServerTest, HugeChunkedBodyGets413) {
  auto o = test_options();
  o.max_body_bytes = 1024;
  start(o);
  RawClient c(port());
  std::string request = "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 8; ++i) request += "200\r\n" + std::string(512, 'z') + "\r\n";
  request += "0\r\n\r\n";
  c.send(request);
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(c.closed_by_server());
  const auto s = stop_and_wait();
  EXPECT_EQ(s.bodies_too_large, 1u);
  EXPECT_EQ(s.requests, 0u);
}

struct FramingAttack {
  const char* name;
  const char* request;
  BadRequestReason reason;
};

class FramingAttackTest : public ServerTest, public ::testing::WithParamInterface<FramingAttack> {};

TEST_P(FramingAttackTest, Gets400WithReasonAndClose) {
  const FramingAttack& attack = GetParam();
  start(test_options());
  RawClient c(port());
  c.send(attack.request);
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->header("content-type"), "application/json");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_EQ(r->body, std::string(R"({"error":"bad_request","reason":")") +
                         std::string(to_string(attack.reason)) + "\"}");
  EXPECT_TRUE(c.closed_by_server());
  const auto s = stop_and_wait();
  EXPECT_EQ(s.bad_requests_for(attack.reason), 1u);
  EXPECT_EQ(s.bad_requests_total(), 1u);
  EXPECT_EQ(s.requests, 0u);
  EXPECT_EQ(s.responses_4xx, 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Attacks, FramingAttackTest,
    ::testing::Values(
        FramingAttack{"TeAndCl",
                      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                      "Content-Length: 4\r\n\r\n0\r\n\r\n",
                      BadRequestReason::kTransferEncodingWithContentLength},
        FramingAttack{"GzipThenCl",
                      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n"
                      "Content-Length: 4\r\n\r\nabcd",
                      BadRequestReason::kTransferEncodingWithContentLength},
        FramingAttack{"GzipChunked",
                      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                      "0\r\n\r\n",
                      BadRequestReason::kUnsupportedTransferEncoding},
        FramingAttack{"ChunkedTwice",
                      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                      BadRequestReason::kUnsupportedTransferEncoding},
        FramingAttack{"Identity",
                      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n",
                      BadRequestReason::kUnsupportedTransferEncoding},
        FramingAttack{"DuplicateCl",
                      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
                      "Content-Length: 1\r\n\r\na",
                      BadRequestReason::kDuplicateContentLength},
        FramingAttack{"ClList", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 1\r\n\r\na",
                      BadRequestReason::kInvalidContentLength},
        FramingAttack{"ClPlus", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: +1\r\n\r\na",
                      BadRequestReason::kInvalidContentLength},
        FramingAttack{"ClMinus", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
                      BadRequestReason::kInvalidContentLength},
        FramingAttack{"ClInnerSpace",
                      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1 0\r\n\r\n0123456789",
                      BadRequestReason::kInvalidContentLength},
        FramingAttack{"BareLfInHeaders", "GET / HTTP/1.1\nHost: t\n\n", BadRequestReason::kBareLf},
        FramingAttack{"BareLfAfterHost", "GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n",
                      BadRequestReason::kBareLf},
        FramingAttack{"ObsFold", "GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n 2\r\n\r\n",
                      BadRequestReason::kObsFold},
        FramingAttack{"SpaceBeforeColon",
                      "POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 1\r\n\r\na",
                      BadRequestReason::kInvalidHeaderName},
        FramingAttack{"Http10Chunked",
                      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                      BadRequestReason::kUnsupportedTransferEncoding},
        FramingAttack{"GarbageRequestLine", "NOT AN HTTP REQUEST\r\n\r\n",
                      BadRequestReason::kMalformed},
        FramingAttack{"BadChunkSize",
                      "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "zz\r\nabc\r\n0\r\n\r\n",
                      BadRequestReason::kMalformed}),
    [](const ::testing::TestParamInfo<FramingAttack>& info) { return info.param.name; });

TEST_F(ServerTest, HopByHopHeadersAreStrippedBeforeTheHandler) {
  start(test_options());
  RawClient c(port());
  c.send(
      "GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, X-Private\r\nKeep-Alive: 5\r\n"
      "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-Sum\r\nUpgrade: h2c\r\n"
      "Proxy-Authorization: Basic x\r\nProxy-Authenticate: Basic\r\nX-Private: secret\r\n"
      "X-Public: ok\r\n\r\n");
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("x-seen-headers"), "Host,X-Public");
  // The request asked for keep-alive before its Connection header was stripped.
  EXPECT_EQ(r->header("connection"), "");
  c.send("GET /again HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  const auto r2 = c.read_response();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(ServerTest, HeadViewSendsStoredFieldsWithExtrasReplacingThemAndNoHopByHop) {
  // A stored head (as a cache or an upstream gives it) sent without a copy.
  static const bh::fields stored = [] {
    bh::fields f;
    f.set("Content-Type", "application/json");
    f.set("X-Cache", "MISS");  // replaced by the extra field
    f.set("Connection", "X-Secret");
    f.set("X-Secret", "1");          // named by Connection: hop-by-hop
    f.set("Content-Length", "999");  // the writer frames the body itself
    f.set("ETag", "\"v1\"");
    return f;
  }();
  start(test_options(), [](Request&, ResponseWriter& w) -> asio::awaitable<void> {
    const std::array<HeaderView, 2> extra{HeaderView{"x-cache", "HIT"}, HeaderView{"Age", "3"}};
    const HeadView head{stored, extra, true};
    const std::string_view body = "{}";
    (void)co_await w.send(bh::status::ok, head, body);
  });
  RawClient c(port());
  c.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  const std::string raw = c.read_until_close();
  const auto count = [&](std::string_view needle) {
    size_t n = 0;
    for (size_t at = raw.find(needle); at != std::string::npos; at = raw.find(needle, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("Content-Type: application/json\r\n"), 1u) << raw;
  EXPECT_EQ(count("ETag: \"v1\"\r\n"), 1u) << raw;
  EXPECT_EQ(count("x-cache: HIT\r\n"), 1u) << raw;
  EXPECT_EQ(count("X-Cache"), 0u) << raw;  // the stored one was replaced
  EXPECT_EQ(count("Age: 3\r\n"), 1u) << raw;
  EXPECT_EQ(count("X-Secret"), 0u) << raw;
  EXPECT_EQ(count("Content-Length: 2\r\n"), 1u) << raw;
  EXPECT_EQ(count("999"), 0u) << raw;
  EXPECT_EQ(count("Connection: close\r\n"), 1u) << raw;  // the writer's own, not the stored
  EXPECT_EQ(raw.substr(raw.size() - 2), "{}") << raw;
}

TEST_F(ServerTest, HeaderTimeoutCutsASlowlorisWith408) {
  auto o = test_options();
  o.header_timeout = 200ms;
  start(o);
  RawClient c(port());
  c.send("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ");  // and never finishes the head
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_NE(r->body.find("header_timeout"), std::string::npos);
  EXPECT_TRUE(c.closed_by_server());
  const auto s = stop_and_wait();
  EXPECT_EQ(s.header_timeouts, 1u);
  EXPECT_EQ(s.request_timeouts(), 1u);
}

TEST_F(ServerTest, BodyTimeoutGets408) {
  auto o = test_options();
  o.body_timeout = 200ms;
  start(o);
  RawClient c(port());
  c.send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  EXPECT_NE(r->body.find("body_timeout"), std::string::npos);
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(stop_and_wait().body_timeouts, 1u);
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosedSilently) {
  auto o = test_options();
  o.idle_timeout = 200ms;
  start(o);
  RawClient c(port());
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(c.read_response());
  EXPECT_TRUE(c.closed_by_server());  // no 408: the client was not in the middle of a request
  const auto s = stop_and_wait();
  EXPECT_EQ(s.idle_timeouts, 1u);
  EXPECT_EQ(s.header_timeouts, 0u);
}

TEST_F(ServerTest, StreamingResponseArrivesChunkByChunk) {
  std::promise<void> first_chunk_read;
  std::shared_future<void> first_read = first_chunk_read.get_future().share();
  std::vector<boost::system::error_code> errors;
  start(test_options(), [&](Request&, ResponseWriter& w) -> asio::awaitable<void> {
    bh::fields headers;
    headers.set(bh::field::content_type, "text/event-stream");
    errors.push_back(co_await w.write_head(bh::status::ok, std::move(headers)));
    errors.push_back(co_await w.write_chunk("data: first\n\n"));
    // The client has the first chunk before the second exists (blocking the worker is fine in
    // this test: nothing else runs on it).
    first_read.wait();
    errors.push_back(co_await w.write_chunk("data: second\n\n"));
    errors.push_back(co_await w.finish());
  });
  RawClient c(port());
  c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto head = c.read_head();
  ASSERT_TRUE(head);
  EXPECT_EQ(head->header("transfer-encoding"), "chunked");
  EXPECT_EQ(head->header("content-length"), "");
  EXPECT_EQ(c.read_chunk(), "data: first\n\n");
  first_chunk_read.set_value();
  EXPECT_EQ(c.read_chunk(), "data: second\n\n");
  EXPECT_EQ(c.read_chunk(), "");  // the last chunk
  // The connection stays usable after a streamed response.
  c.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto again = c.read_response();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->chunks.size(), 2u);
  stop_and_wait();
  for (const auto& ec : errors) EXPECT_FALSE(ec) << ec.message();
}

TEST_F(ServerTest, DeclaredLengthStreamAndItsViolations) {
  start(test_options(), [](Request& req, ResponseWriter& w) -> asio::awaitable<void> {
    (void)co_await w.write_head(bh::status::ok, {}, 10);
    (void)co_await w.write_chunk("01234");
    if (req.target() == "/short") co_return;  // 5 of 10 bytes: the server must close
    const auto too_much = co_await w.write_chunk("5678901");
    if (too_much != bh::error::body_limit) throw std::logic_error("expected body_limit");
  });
  {
    RawClient c(port());
    c.send("GET /short HTTP/1.1\r\nHost: t\r\n\r\n");
    const auto head = c.read_head();
    ASSERT_TRUE(head);
    EXPECT_EQ(head->header("content-length"), "10");
    EXPECT_EQ(c.read_until_close(), "01234");  // 5 body bytes arrive, then the close
  }
  RawClient c(port());
  c.send("GET /over HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto head = c.read_head();
  ASSERT_TRUE(head);
  EXPECT_EQ(c.read_until_close(), "01234");  // the overflowing write was refused, then close
  const auto s = stop_and_wait();
  EXPECT_EQ(s.handler_exceptions, 0u);  // the writer returned body_limit as a value
}

TEST_F(ServerTest, HandlerExceptionGets500AndClose) {
  start(test_options(), [](Request& req, ResponseWriter& w) -> asio::awaitable<void> {
    if (req.target() == "/late") {
      (void)co_await w.write_head(bh::status::ok, {});
      (void)co_await w.write_chunk("partial");
    }
    throw std::runtime_error("boom");
  });
  {
    RawClient c(port());
    c.send("GET /early HTTP/1.1\r\nHost: t\r\n\r\n");
    const auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500);
    EXPECT_EQ(r->body, R"({"error":"internal_error","reason":"handler_exception"})");
    EXPECT_TRUE(c.closed_by_server());
  }
  {
    // The head was already out: the stream is cut (no last chunk), the connection closed.
    RawClient c(port());
    c.send("GET /late HTTP/1.1\r\nHost: t\r\n\r\n");
    const auto head = c.read_head();
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 200);
    EXPECT_EQ(c.read_chunk(), "partial");
    EXPECT_EQ(c.read_chunk(), std::nullopt);
  }
  const auto s = stop_and_wait();
  EXPECT_EQ(s.handler_exceptions, 2u);
  EXPECT_EQ(s.responses_5xx, 1u);
}

TEST_F(ServerTest, HandlerWithoutResponseGets500) {
  start(test_options(), [](Request&, ResponseWriter&) -> asio::awaitable<void> { co_return; });
  RawClient c(port());
  c.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto r = c.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_NE(r->body.find("no_response"), std::string::npos);
  EXPECT_EQ(stop_and_wait().handler_no_response, 1u);
}

TEST_F(ServerTest, MaxConnectionsRejectsWith503) {
  auto o = test_options();
  o.max_connections = 1;
  start(o);
  RawClient first(port());
  first.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(first.read_response());  // the first connection is surely registered now
  RawClient second(port());
  second.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto r = second.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("max_connections"), std::string::npos);
  EXPECT_TRUE(second.closed_by_server());
  // The first connection is unaffected.
  first.send("GET /still HTTP/1.1\r\nHost: t\r\n\r\n");
  const auto still = first.read_response();
  ASSERT_TRUE(still);
  EXPECT_EQ(still->status, 200);
  const auto s = stop_and_wait();
  EXPECT_EQ(s.connections_rejected, 1u);
  EXPECT_EQ(s.connections_accepted, 2u);
  EXPECT_EQ(s.responses_5xx, 1u);
}

// Lets a test hold a handler inside its coroutine and release it from the test thread.
class HandlerGate {
 public:
  // In the handler: parks until `release()`.
  asio::awaitable<void> park() {
    asio::steady_timer timer(co_await asio::this_coro::executor,
                             asio::steady_timer::time_point::max());
    {
      std::lock_guard lock(mu_);
      timer_ = &timer;
    }
    entered_.set_value();
    (void)co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  void wait_entered() { entered_future_.wait(); }
  // From the test thread: cancels the parked timer on its own executor.
  void release() {
    std::lock_guard lock(mu_);
    asio::steady_timer* t = timer_;
    asio::post(t->get_executor(), [t] { t->cancel(); });
  }

 private:
  std::mutex mu_;
  asio::steady_timer* timer_ = nullptr;
  std::promise<void> entered_;
  std::future<void> entered_future_ = entered_.get_future();
};

TEST_F(ServerTest, GracefulStopDrainsAnInFlightRequest) {
  HandlerGate gate;
  auto o = test_options();
  o.drain_timeout = 60s;  // never reached: the request finishes first
  start(o, [&](Request& req, ResponseWriter& w) -> asio::awaitable<void> {
    if (req.target() == "/slow") co_await gate.park();
    (void)co_await w.send(bh::status::ok, {}, "done " + std::string(req.target()));
  });
  RawClient idle(port());
  idle.send("GET /quick HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(idle.read_response());
  RawClient slow(port());
  slow.send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
  gate.wait_entered();
  server_->stop();
  // The idle keep-alive connection is closed at once: the worker is draining.
  EXPECT_TRUE(idle.closed_by_server());
  gate.release();
  const auto r = slow.read_response();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "done /slow");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(slow.closed_by_server());
  server_->wait();
  const auto s = server_->stats();
  EXPECT_EQ(s.drain_forced_closes, 0u);
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.connections_active, 0u);
}

TEST_F(ServerTest, DrainTimeoutClosesAStuckRequest) {
  HandlerGate gate;
  auto o = test_options();
  o.drain_timeout = 100ms;
  start(o, [&](Request&, ResponseWriter& w) -> asio::awaitable<void> {
    co_await gate.park();  // never released
    (void)co_await w.send(bh::status::ok, {}, "unreachable");
  });
  RawClient c(port());
  c.send("GET /stuck HTTP/1.1\r\nHost: t\r\n\r\n");
  gate.wait_entered();
  server_->stop();
  server_->wait();  // returns although the handler never finished
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(server_->stats().drain_forced_closes, 1u);
}

TEST_F(ServerTest, SeveralWorkersAllServe) {
  auto o = test_options();
  o.workers = 4;
  start(o);
  ASSERT_EQ(server_->worker_count(), 4u);
  std::set<std::string> workers_seen;
  constexpr int kConnections = 64;
  for (int i = 0; i < kConnections; ++i) {
    RawClient c(port());
    c.send("GET /w HTTP/1.1\r\nHost: t\r\n\r\n");
    const auto r = c.read_response();
    ASSERT_TRUE(r);
    workers_seen.insert(r->header("x-worker"));
  }
  // SO_REUSEPORT hashes each connection's 4-tuple to a socket: with 64 connections the
  // chance that one of 4 workers gets none is about 4e-8.
  EXPECT_EQ(workers_seen.size(), 4u);
  const auto total = stop_and_wait();
  EXPECT_EQ(total.requests, static_cast<uint64_t>(kConnections));
  uint64_t sum = 0;
  for (size_t i = 0; i < server_->worker_count(); ++i) {
    const auto w = server_->worker_stats(i);
    EXPECT_GT(w.requests, 0u) << "worker " << i;
    sum += w.requests;
  }
  EXPECT_EQ(sum, total.requests);
}

TEST(ServerOptionsTest, ValidateSaysWhatIsWrong) {
  ServerOptions o;
  EXPECT_EQ(o.validate(), "");
  o.workers = 0;
  EXPECT_NE(o.validate().find("workers"), std::string::npos);
  o.workers = 1;
  o.address = "not-an-address";
  EXPECT_NE(o.validate().find("address"), std::string::npos);
  Server server(o, echo_handler);
  EXPECT_EQ(server.start(), boost::system::errc::invalid_argument);
}

TEST(ServerOptionsTest, StartReportsABindConflict) {
  // A plain socket (no SO_REUSEPORT) holding a port makes the server's bind fail.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ServerOptions o = test_options();
  o.port = ntohs(addr.sin_port);
  Server server(o, echo_handler);
  EXPECT_EQ(server.start(), boost::system::errc::address_in_use);
  ::close(fd);
}

}  // namespace
}  // namespace sluice::http
