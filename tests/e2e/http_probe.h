// HTTP clients for the end-to-end tests: one blocking request, many requests fired at once
// (each on its own connection, all connected before any is sent, so they are in flight
// together), and raw-socket probes for limits and slow clients (slowloris).
//
// Thread-safety: every function is self-contained (its own io_context); call from any thread.
// Every call is bounded by its `bound`: past it, what is still pending fails with
// `timed_out` in `HttpResponse::ec`. Bounds are limits on waiting, never speed assertions.
#pragma once

#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::e2e {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string target = "/";
  Headers headers;  // Host is added when absent; Content-Length is set from `body`
  std::string body;
};

struct HttpResponse {
  boost::system::error_code ec;  // connect, write, read or parse failure (status may be set)
  unsigned status = 0;           // 0 when no response head arrived
  Headers headers;
  std::string body;

  // The first value of header `name` (case-insensitive), or "" when absent.
  [[nodiscard]] std::string header(std::string_view name) const;
  [[nodiscard]] bool has_header(std::string_view name) const;
};

// One request on a fresh connection to 127.0.0.1:`port`.
[[nodiscard]] HttpResponse http_request(
    uint16_t port, const HttpRequest& request,
    std::chrono::milliseconds bound = std::chrono::milliseconds(10000));
[[nodiscard]] HttpResponse http_get(
    uint16_t port, const std::string& target, const Headers& headers = {},
    std::chrono::milliseconds bound = std::chrono::milliseconds(10000));

// Opens one connection per request, waits until all are connected (or failed), then sends
// every request and reads every response; results in the order of `requests`. One thread.
[[nodiscard]] std::vector<HttpResponse> fire_concurrently(const uint16_t port,
                                                          const std::vector<HttpRequest>& requests,
                                                          std::chrono::milliseconds bound);
// `n` copies of `request`, as `fire_concurrently`.
[[nodiscard]] std::vector<HttpResponse> fire_identical(uint16_t port, const HttpRequest& request,
                                                       size_t n, std::chrono::milliseconds bound);

// What a raw exchange saw.
struct RawResult {
  boost::system::error_code connect_ec;  // the connection failed (nothing else is valid)
  std::string received;                  // every byte the server sent
  bool closed_by_peer = false;           // the server closed (EOF or reset) within `bound`
  bool bound_expired = false;            // `bound` passed with the connection still open
  // The status of the first response in `received` ("HTTP/1.1 408 ..." -> 408), or 0.
  [[nodiscard]] unsigned status() const;
};

// Sends `bytes` (write errors are ignored: the server may answer and close early), then
// reads until the server closes or `bound` passes.
[[nodiscard]] RawResult raw_exchange(uint16_t port, const std::string& bytes,
                                     std::chrono::milliseconds bound);

// A slowloris client: sends `partial_head` (a request head without its final blank line),
// then one more header byte every `interval`, never finishing the head, until the server
// closes the connection or `bound` passes.
[[nodiscard]] RawResult slowloris(uint16_t port, const std::string& partial_head,
                                  std::chrono::milliseconds interval,
                                  std::chrono::milliseconds bound);

}  // namespace sluice::e2e
