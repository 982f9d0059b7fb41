// A simulated upstream: an HTTP server that behaves like a slow LLM API and like any origin a
// test needs (status, caching headers, sizes, resets, hangs), and counts every request it gets.
// `sluice demo` runs it in-process; the end-to-end tests and bench/ run it as a separate process
// (`sluice sim-upstream`) and read its counters over HTTP.
//
// Thread-safety: `start`, `wait` and the destructor from one owning thread; `stop`, `stats`,
// `reset_stats` and `port` from any thread. Requests are served on the `http::Server` workers.
//
// Endpoints (paths ignore the query string; every request is counted by path except the two
// `/__sim/*` ones):
//   POST /v1/chat/completions       an OpenAI-style chat completion after `latency`; the answer
//   GET  /v1/chat/completions?q=..  is a pure function of the question (the `messages` of the
//                                   JSON body, else the raw body; `q` for GET), so identical
//                                   questions get identical answers. `"stream": true` in the
//                                   body (or `?stream=1`): a server-sent-event stream, one
//                                   `data: {chunk}\n\n` per token every `token_interval`, then
//                                   `data: [DONE]\n\n`.
//   /reset                          declares a Content-Length, sends part of the body, then
//                                   drops the connection (a reset mid-response); with `sse=1`
//                                   an event stream cut after its first event.
//   /events?n=&size=&interval_ms=&stall=&cc=
//                                   an event stream of `n` events (default 10), event i being
//                                   `sim_event(i, size)` (default size 32), `interval_ms` apart;
//                                   `stall=1`: the stream then stays open and silent (as /hang).
//   /hang                           never answers; released (503) when the server stops, so it
//                                   never holds shutdown beyond one poll interval.
//   /headers                        echoes the request headers as a JSON object.
//   GET  /__sim/stats               {"requests":N,"by_path":{...}} (not counted).
//   POST /__sim/reset               zeroes the counters (not counted).
//   any other path                  200 with `{"path","method","seq"}` after `latency`, shaped
//                                   by query knobs: `delay_ms=N`, `status=N`, `cc=<Cache-Control>`,
//                                   `size=N` (body of exactly N bytes, of type `ct` or
//                                   application/octet-stream), `set_cookie=1`,
//                                   `vary=<header>`, `etag=<v>` (304 on a matching
//                                   If-None-Match), `chunked=1` (body written as chunks).
// `delay_ms` overrides the latency on every endpoint but the `/__sim/*` ones. Every counted
// response carries `X-Sim-Seq: <n>`, the request's 1-based number since the last reset.
//
// Cost: one mutex-protected map update per request (a test tool, not a hot path). Bounds: the
// `http::Server` limits apply; `size` is capped at `max_body_bytes` (larger values get 400,
// counted in `SimUpstreamStats::bad_knobs`).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "sluice/base/clock.h"
#include "sluice/http/server.h"

namespace sluice::gateway {

// Event `i` of /events: "id: i\ndata: " + `size` letters ('a' + (i + j) % 26) + "\n\n".
[[nodiscard]] std::string sim_event(uint64_t i, size_t size);

struct SimUpstreamOptions {
  // Address to listen on (IPv4 or IPv6 literal).
  std::string address = "127.0.0.1";
  // Port to listen on; 0 picks a free one, readable through `SimUpstream::port()`.
  uint16_t port = 0;
  // Worker threads of the underlying `http::Server`.
  size_t workers = 2;
  // Time before an answer (or before the first token of a stream); `delay_ms` overrides it.
  Duration latency = std::chrono::milliseconds(100);
  // Time between two tokens of a streamed answer.
  Duration token_interval = std::chrono::milliseconds(20);
  // Tokens (words) in one chat answer, streamed or not.
  size_t tokens_per_answer = 16;
  // Largest body the `size` knob may ask for; beyond it the request gets 400.
  size_t max_body_bytes = 64 * 1024 * 1024;
  // How often a `/hang` request checks whether the server is stopping.
  Duration hang_poll_interval = std::chrono::milliseconds(20);
  // Time `stop()` gives in-flight requests before their sockets are closed.
  Duration drain_timeout = std::chrono::seconds(2);
  // Limits of the underlying server that tests may want to change.
  size_t max_connections = 10000;
};

// A snapshot of the counters.
struct SimUpstreamStats {
  uint64_t requests = 0;                    // counted requests since the last reset
  std::map<std::string, uint64_t> by_path;  // the same, by path (query string excluded)
  uint64_t streams = 0;                     // streamed chat answers started
  uint64_t resets = 0;                      // `/reset` connections dropped on purpose
  uint64_t hangs_active = 0;                // `/hang` requests waiting now (gauge, not reset)
  uint64_t not_modified = 0;                // 304 answers to a matching If-None-Match
  uint64_t bad_knobs = 0;                   // 400 answers to an unparsable or out-of-range knob
};

class SimUpstream {
 public:
  explicit SimUpstream(SimUpstreamOptions options);
  // Stops and waits if still running.
  ~SimUpstream();
  SimUpstream(const SimUpstream&) = delete;
  SimUpstream& operator=(const SimUpstream&) = delete;

  // Binds and starts serving; the bind error or `invalid_argument` for bad options. Call once.
  [[nodiscard]] boost::system::error_code start();
  // The bound port (after a successful `start`).
  [[nodiscard]] uint16_t port() const noexcept;
  // Releases `/hang` requests and stops the server (draining). Returns at once; any thread.
  void stop();
  // Returns when the server threads have finished.
  void wait();

  [[nodiscard]] SimUpstreamStats stats() const;
  // Zeroes the counters (as `POST /__sim/reset`); the `hangs_active` gauge is kept.
  void reset_stats();
  // The `http::Server` counters (connections, bytes, timeouts).
  [[nodiscard]] http::ServerStats server_stats() const;
  [[nodiscard]] const SimUpstreamOptions& options() const noexcept { return options_; }

  // The deterministic answer to `question` (what the chat endpoint returns as content).
  [[nodiscard]] static std::string answer_for(std::string_view question, size_t tokens);

 private:
  class Handler;
  SimUpstreamOptions options_;
  std::unique_ptr<Handler> handler_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace sluice::gateway
