// sluice-loadgen: the load generator of the side-by-side benchmark (bench/run-peers.sh).
//
// Three modes, each a function that runs to completion and returns a `Report`:
// - storm: N connections are opened first, then one identical request per connection is
//   released at the same instant (a barrier across the I/O threads); every response is timed
//   from that common instant.
// - rate: open loop at a constant rate over C keep-alive connections (the wrk2 model): each
//   connection has a fixed schedule, and latency is measured from the intended send time, so a
//   slow response that delays the next send is charged to that next request too (coordinated
//   omission accounted for). `rate == 0` is closed loop (send as soon as the previous response
//   arrived) with an optional request count. Optional Zipf key distribution and tenants.
// - sse: N subscribers on one event stream and one publisher; deliveries/s and the
//   publish-to-receive latency of every delivery (timestamps in the events); optional
//   never-reading subscribers and subscriber churn (the broadcaster soak).
// - slow-readers: M connections request a large or streaming response and read it at B
//   bytes/s with a small receive buffer, so the server sees real back-pressure.
// And a stand-in upstream (the knobs of `sluice sim-upstream`) for machines without it.
//
// Thread-safety: each mode owns its threads; one connection lives on one io_context that one
// thread runs, so per-connection state needs no lock. Histograms are shared (lock-free).
// Cost: one coroutine frame and one Beast flat buffer per connection.
#pragma once

#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sluice/metrics/histogram.h"

namespace sluice::loadgen {

// Where requests go: an `http://host:port/target` URL, split once.
struct Target {
  std::string host;  // numeric IPv4/IPv6 address or a name resolved once at start
  std::string port;  // decimal port
  std::string path;  // origin-form target, with the query (may contain `{key}`)

  // Parses `http://host[:port]/path?query`; nullopt with `error` set when malformed.
  [[nodiscard]] static std::optional<Target> parse(const std::string& url, std::string& error);
  // `host:port` for the Host header.
  [[nodiscard]] std::string authority() const { return host + ":" + port; }
};

// Options every mode shares.
struct CommonOptions {
  std::string url;                   // target URL (see `Target::parse`)
  std::string method = "GET";        // request method
  std::vector<std::string> headers;  // extra "Name: value" request headers
  unsigned threads = 1;              // I/O threads, each with its own io_context
  double timeout_s = 30;             // per response; a slower one counts as a timeout error
  std::string label;                 // free text copied into the report (peer name)
};

// Summary of one run: counts, statuses, latency quantiles, plus mode-specific extras.
struct Report {
  std::string mode;                         // "storm", "rate", "slow-readers"
  std::string label;                        // CommonOptions::label
  uint64_t sent = 0;                        // requests written
  uint64_t completed = 0;                   // full responses read
  std::map<std::string, uint64_t> errors;   // error kind -> count (connect, read, timeout, ...)
  std::map<int, uint64_t> statuses;         // HTTP status -> count
  std::map<std::string, uint64_t> x_cache;  // X-Cache response header value -> count
  double elapsed_s = 0;                     // wall time of the measured phase
  uint64_t body_bytes = 0;                  // response body bytes read
  // Latency from the intended (rate) or common (storm) send instant.
  metrics::HistogramSnapshot latency{metrics::HistogramOptions::seconds(1000)};
  // rate only: latency from the actual send (what a closed-loop tool would report).
  std::optional<metrics::HistogramSnapshot> service_time;
  boost::json::object extra;  // mode-specific figures (achieved rate, settings, ...)

  [[nodiscard]] uint64_t error_count() const;
  [[nodiscard]] boost::json::value to_json() const;
  // Human table on stdout.
  void print() const;
};

struct StormOptions {
  CommonOptions common;
  unsigned connections = 500;  // concurrent connections, one request each
};

struct RateOptions {
  CommonOptions common;
  double rate = 1000;         // requests per second over all connections; 0 = closed loop
  double duration_s = 10;     // length of the measured schedule
  uint64_t requests = 0;      // closed loop only: stop after this many (0 = duration only)
  unsigned connections = 32;  // keep-alive connections
  double zipf_s = 0;          // Zipf exponent of the key choice (0 with keys > 1: uniform)
  uint64_t keys = 1;          // distinct keys; 1 = the URL as given
  unsigned tenants = 0;       // 0 = no Authorization header; else uniform over T tenants
  uint64_t seed = 42;         // random seed (keys, tenants)
};

struct SlowReaderOptions {
  CommonOptions common;
  unsigned connections = 10;       // concurrent slow readers
  double bytes_per_second = 1024;  // read pace per connection
  size_t chunk = 1024;             // bytes per read (and the receive buffer size)
  double duration_s = 10;          // stop reading after this long even if not done
};

// N subscribers on one SSE channel and one publisher (bench/run-sse.sh, bench/soak-broadcast.sh).
struct SseOptions {
  CommonOptions common;     // `url`: the subscribe URL (GET, text/event-stream)
  std::string publish_url;  // POST target of the publisher
  unsigned subscribers = 1000;
  unsigned slow = 0;          // of the subscribers, this many never read
  uint64_t events = 1000;     // events published
  double rate = 0;            // events/s; 0 = each as soon as the previous was answered
  size_t size = 100;          // bytes of data per event (>= 48: holds the timestamp)
  double churn = 0;           // extra subscribers joining (and leaving after 2-6 s) per second
  unsigned settle_ms = 500;   // pause between the last subscribe and the first event
  unsigned drain_ms = 10000;  // after the last publish, longest wait for every delivery
};

// Stand-in for `sluice sim-upstream` (bench/README.md lists its knobs).
struct StandInOptions {
  std::string listen = "127.0.0.1:0";  // address:port; port 0 picks a free one
  unsigned workers = 2;                // threads running the one io_context
  std::string ready_file;              // written (tmp + rename) once listening
};

[[nodiscard]] Report run_storm(const StormOptions& options);
[[nodiscard]] Report run_rate(const RateOptions& options);
[[nodiscard]] Report run_slow_readers(const SlowReaderOptions& options);
[[nodiscard]] Report run_sse(const SseOptions& options);
// Runs until SIGINT/SIGTERM; returns the exit code.
[[nodiscard]] int run_stand_in_upstream(const StandInOptions& options);

// The request text for `target` with `{key}` replaced by `key` (or `key=N` appended when the
// path has no `{key}` and `keys` > 1), the Host header, `headers`, and a tenant's
// Authorization header when `tenant` >= 0.
[[nodiscard]] std::string build_request(const Target& target, const CommonOptions& common,
                                        std::optional<uint64_t> key, int tenant);

// Elapsed seconds from `from` to `to`.
[[nodiscard]] inline double seconds_between(std::chrono::steady_clock::time_point from,
                                            std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

}  // namespace sluice::loadgen
