// sluice-loadgen: load generator of the side-by-side benchmark (see bench/README.md).
//
//   sluice-loadgen storm --url http://127.0.0.1:8080/x?delay_ms=100 -n 500 [--json out.json]
//   sluice-loadgen rate --url URL --rate 2000 --duration 10 -c 32 [--zipf 0.9 --keys 1000]
//                       [--tenants 4] [--json out.json]
//   sluice-loadgen rate --url URL --rate 0 --requests 1000000 -c 64      (closed loop)
//   sluice-loadgen slow-readers --url URL -c 50 --bytes-per-second 1024 --duration 10
//   sluice-loadgen sse --url http://127.0.0.1:8080/events/news
//                      --publish-url http://127.0.0.1:8080/events/news -n 1000 --events 2000
//   sluice-loadgen stand-in-upstream --listen 127.0.0.1:0 --ready-file F
//   sluice-loadgen self-test        (a storm and a short rate run against the stand-in)
//
// Exit codes: 0 ok, 1 runtime failure (or self-test mismatch), 2 usage error.
#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "bench/loadgen/loadgen.h"
#include "bench/loadgen/stand_in_upstream.h"

namespace sluice::loadgen {
namespace {

void add_common(CLI::App* cmd, CommonOptions& common, std::string& json_path) {
  cmd->add_option("--url", common.url, "Target http://host:port/path?query")->required();
  cmd->add_option("--method", common.method, "Request method");
  cmd->add_option("-H,--header", common.headers, "Extra request header \"Name: value\"");
  cmd->add_option("--threads", common.threads, "I/O threads")->check(CLI::Range(1, 64));
  cmd->add_option("--timeout", common.timeout_s, "Seconds per response before a timeout");
  cmd->add_option("--label", common.label, "Name of the system under test, for the report");
  cmd->add_option("--json", json_path, "Write the report as JSON to this file");
}

int emit(const Report& report, const std::string& json_path) {
  report.print();
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << boost::json::serialize(report.to_json()) << "\n";
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
      return 1;
    }
  }
  return 0;
}

// A hermetic check of both main modes against the stand-in: counts must match exactly.
int self_test() {
  StandInUpstream upstream;
  const uint16_t port = upstream.start("127.0.0.1", 0, 2);
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  int failures = 0;
  auto expect = [&failures](bool ok, const char* what) {
    std::printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
    if (!ok) ++failures;
  };

  StormOptions storm;
  storm.common.url = base + "/storm?delay_ms=20&cc=max-age%3D60";
  storm.common.threads = 2;
  storm.connections = 64;
  const Report s = run_storm(storm);
  s.print();
  expect(s.completed == 64 && s.error_count() == 0, "storm: 64 of 64 responses, no error");
  expect(s.statuses.size() == 1 && s.statuses.begin()->first == 200, "storm: all 200");
  expect(upstream.requests() == 64, "storm: the upstream saw 64 requests");
  expect(s.latency.min() >= 0.020, "storm: no response before the 20 ms upstream delay");

  RateOptions rate;
  rate.common.url = base + "/item/{key}";
  rate.rate = 400;
  rate.duration_s = 0.25;
  rate.connections = 8;
  rate.keys = 50;
  rate.zipf_s = 0.9;
  rate.tenants = 3;
  const Report r = run_rate(rate);
  r.print();
  // 8 connections, each every 20 ms from offset i * 2.5 ms, within 250 ms: 13 + 7 * 12.
  const uint64_t scheduled = 100;
  expect(r.completed + r.extra.at("unsent").as_uint64() == scheduled,
         "rate: completed + unsent == the 100 scheduled requests");
  expect(r.error_count() == 0, "rate: no error");
  expect(upstream.requests() == 64 + r.completed, "rate: the upstream saw every request");

  RateOptions closed;
  closed.common.url = base + "/closed";
  closed.rate = 0;
  closed.requests = 500;
  closed.duration_s = 60;
  closed.connections = 4;
  const Report c = run_rate(closed);
  c.print();
  expect(c.completed == 500 && c.error_count() == 0, "closed loop: exactly 500 requests");

  SlowReaderOptions slow;
  slow.common.url = base + "/big?size=20000";
  slow.connections = 3;
  slow.bytes_per_second = 1e6;
  slow.chunk = 4096;
  slow.duration_s = 30;
  const Report sr = run_slow_readers(slow);
  sr.print();
  expect(sr.completed == 3 && sr.body_bytes == 60000, "slow readers: 3 x 20000 bytes read");

  upstream.stop();
  std::printf("self-test: %d passed, %d failed\n", 9 - failures, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace sluice::loadgen

int main(int argc, char** argv) {
  using namespace sluice::loadgen;
  CLI::App app{"sluice-loadgen: storm, open-loop rate and slow-reader load for bench/"};
  app.require_subcommand(1);
  int exit_code = 0;
  std::string json_path;

  StormOptions storm;
  auto* storm_cmd = app.add_subcommand("storm", "N warmed connections, one request each at once");
  add_common(storm_cmd, storm.common, json_path);
  storm_cmd->add_option("-n,--connections", storm.connections, "Connections (one request each)");

  RateOptions rate;
  auto* rate_cmd = app.add_subcommand("rate", "Open-loop constant rate (wrk2 model)");
  add_common(rate_cmd, rate.common, json_path);
  rate_cmd->add_option("-r,--rate", rate.rate, "Requests/s over all connections; 0 = closed loop");
  rate_cmd->add_option("-d,--duration", rate.duration_s, "Seconds of schedule");
  rate_cmd->add_option("--requests", rate.requests, "Closed loop: stop after this many");
  rate_cmd->add_option("-c,--connections", rate.connections, "Keep-alive connections");
  rate_cmd->add_option("--zipf", rate.zipf_s, "Zipf exponent of the key choice");
  rate_cmd->add_option("--keys", rate.keys, "Distinct keys ({key} in the URL, else key=N)");
  rate_cmd->add_option("--tenants", rate.tenants, "Tenants (Authorization: Bearer tenant-N)");
  rate_cmd->add_option("--seed", rate.seed, "Random seed");

  SlowReaderOptions slow;
  auto* slow_cmd = app.add_subcommand("slow-readers", "M connections reading at B bytes/s");
  add_common(slow_cmd, slow.common, json_path);
  slow_cmd->add_option("-c,--connections", slow.connections, "Slow connections");
  slow_cmd->add_option("-b,--bytes-per-second", slow.bytes_per_second, "Read pace per connection");
  slow_cmd->add_option("--chunk", slow.chunk, "Bytes per read and receive buffer size");
  slow_cmd->add_option("-d,--duration", slow.duration_s, "Stop reading after this many seconds");

  SseOptions sse;
  auto* sse_cmd = app.add_subcommand("sse", "N SSE subscribers, one publisher, delivery latency");
  add_common(sse_cmd, sse.common, json_path);
  sse_cmd->add_option("--publish-url", sse.publish_url, "POST target of the publisher")->required();
  sse_cmd->add_option("-n,--subscribers", sse.subscribers, "Subscribers");
  sse_cmd->add_option("--slow", sse.slow, "Of them, subscribers that never read");
  sse_cmd->add_option("--events", sse.events, "Events published");
  sse_cmd->add_option("-r,--rate", sse.rate, "Events/s; 0 = closed loop");
  sse_cmd->add_option("--size", sse.size, "Data bytes per event (>= 48)");
  sse_cmd->add_option("--churn", sse.churn, "Subscribers joining and leaving per second");
  sse_cmd->add_option("--settle-ms", sse.settle_ms, "Pause before the first event");
  sse_cmd->add_option("--drain-ms", sse.drain_ms, "Longest wait for deliveries after publishing");

  StandInOptions stand_in;
  auto* up_cmd = app.add_subcommand("stand-in-upstream", "Stand-in for `sluice sim-upstream`");
  up_cmd->add_option("--listen", stand_in.listen, "ADDR:PORT (port 0: any free port)");
  up_cmd->add_option("--workers", stand_in.workers, "Threads");
  up_cmd->add_option("--ready-file", stand_in.ready_file, "Written once listening");

  auto* self_cmd = app.add_subcommand("self-test", "Check the modes against the stand-in");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (storm_cmd->parsed()) exit_code = emit(run_storm(storm), json_path);
    if (rate_cmd->parsed()) exit_code = emit(run_rate(rate), json_path);
    if (slow_cmd->parsed()) exit_code = emit(run_slow_readers(slow), json_path);
    if (sse_cmd->parsed()) exit_code = emit(run_sse(sse), json_path);
    if (up_cmd->parsed()) exit_code = run_stand_in_upstream(stand_in);
    if (self_cmd->parsed()) exit_code = self_test();
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "sluice-loadgen: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice-loadgen: %s\n", e.what());
    return 1;
  }
  return exit_code;
}
