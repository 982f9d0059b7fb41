#include <cmath>
#include <ostream>
#include <stdexcept>

#include "sluice/base/clock.h"
#include "sluice/base/random.h"
#include "sluice/metrics/profiler.h"
#include "sluice/metrics/registry.h"
#include "tools/sluice/tour.h"

namespace {

void tour_metrics(std::ostream& out) {
  namespace metrics = sluice::metrics;
  metrics::Registry registry;
  auto& requests = registry.counter_family("sluice_tour_requests_total", "Requests.", {"code"});
  requests.with({"200"}).inc(97);
  requests.with({"503"}).inc(3);
  auto& latency = registry.histogram("sluice_tour_latency_seconds", "Latency.");
  sluice::base::Xoshiro256 rng(10);
  for (int i = 0; i < 10'000; ++i) latency.record(std::pow(10.0, -4.0 + 3.0 * rng.uniform01()));
  const auto snap = latency.snapshot();
  out << "histogram: 10000 log-uniform latencies 100 us..100 ms -> p50 " << snap.p50() * 1e3
      << " ms, p99 " << snap.p99() * 1e3 << " ms, p999 " << snap.p999() * 1e3 << " ms\n";

  sluice::base::ManualClock clock;
  metrics::Profiler profiler(clock);
  for (int i = 0; i < 10; ++i) {
    metrics::Span request = profiler.span("request", "http");
    clock.advance(std::chrono::microseconds(100));
    metrics::Span upstream = profiler.span("upstream", "http_client");
    clock.advance(std::chrono::milliseconds(2));
  }
  auto handle =
      registry.add_collector("profiler", [&](metrics::Writer& w) { profiler.collect(w); });
  const std::string text = registry.prometheus();
  const auto report = profiler.report();
  out << "profiler: " << report.spans.size() << " span names, '" << report.spans[1].name
      << "' under '" << report.spans[1].parent << "', self time of 'request' "
      << sluice::base::to_seconds(report.spans[0].self) * 1e3 << " ms of "
      << sluice::base::to_seconds(report.spans[0].total) * 1e3 << " ms\n";
  out << "registry: " << registry.stats().families << " families + 1 collector -> " << text.size()
      << " bytes of Prometheus text, " << registry.stats().rejected_series << " series rejected\n";
  if (registry.stats().rejected_series != 0) throw std::runtime_error("metrics tour: rejected");
}

SLUICE_TOUR_STEP(10, "metrics", tour_metrics);

}  // namespace
