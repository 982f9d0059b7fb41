// A registry with a labelled counter, a histogram and a collector exporting a component's
// Stats, scraped as Prometheus text and as JSON.
#include <cstdio>

#include "sluice/metrics/exposition.h"
#include "sluice/metrics/registry.h"

namespace {

// Stands for any component's Stats snapshot (cache, coalescer, pool...).
struct QueueStats {
  uint64_t pushed = 0;
  uint64_t dropped = 0;
  int64_t depth = 0;
};

}  // namespace

int main() {
  sluice::metrics::Registry registry({.required_prefix = "sluice_"});
  auto& requests =
      registry.counter_family("sluice_http_requests_total", "Requests served.", {"route", "code"});
  sluice::metrics::Counter& chat_ok = requests.with({"/v1/chat", "200"});
  chat_ok.inc(41);
  requests.with({"/v1/chat", "503"}).inc();

  sluice::metrics::HistogramOptions options;
  options.export_bounds = {0.005, 0.05, 0.5, 5};
  auto& latency = registry.histogram("sluice_http_request_seconds", "Request latency.", options);
  for (int i = 1; i <= 42; ++i) latency.record(i * 0.01);

  QueueStats queue{1000, 3, 17};
  auto handle = registry.add_collector("log_queue", [&queue](sluice::metrics::Writer& w) {
    w.counter("sluice_log_queue_pushed_total", "Records queued.", {}, queue.pushed)
        .counter("sluice_log_queue_dropped_total", "Records dropped at the bound.", {},
                 queue.dropped)
        .gauge("sluice_log_queue_depth", "Records waiting.", {}, queue.depth);
  });

  const std::string text = registry.prometheus();
  std::printf("Content-Type: %s\n\n%s\n", sluice::metrics::kPrometheusContentType.data(),
              text.c_str());
  const std::string json = registry.json();
  std::printf("JSON: %zu bytes, first family: %.120s...\n", json.size(), json.c_str());
  const auto stats = registry.stats();
  std::printf("%zu families, %zu collectors, %llu rejected series\n", stats.families,
              stats.collectors, static_cast<unsigned long long>(stats.rejected_series));
  return stats.rejected_series == 0 && text.find("sluice_log_queue_depth 17") != std::string::npos
             ? 0
             : 1;
}
