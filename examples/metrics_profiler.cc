// The span profiler: nested spans over a fake request path, then the markdown report.
#include <cstdio>

#include "sluice/base/clock.h"
#include "sluice/metrics/profiler.h"

int main() {
  using std::chrono::microseconds;
  sluice::base::ManualClock clock;  // deterministic durations
  sluice::metrics::Profiler profiler(clock);
  for (int i = 0; i < 100; ++i) {
    sluice::metrics::Span request = profiler.span("handle_request", "http");
    clock.advance(microseconds(50));
    {
      sluice::metrics::Span lookup = profiler.span("cache_lookup", "cache");
      clock.advance(microseconds(20 + i % 7));
    }
    if (i % 4 == 0) {  // a cache miss: go upstream
      profiler.profile("upstream_call", "http_client", [&] {
        clock.advance(microseconds(3000 + 40 * i));
        sluice::metrics::Span parse = profiler.span("parse_response", "json");
        clock.advance(microseconds(120));
      });
    }
  }
  const auto report = profiler.report();
  std::printf("%s", report.to_markdown().c_str());
  const auto stats = profiler.stats();
  std::printf("%zu span names, %llu spans recorded\n", stats.span_names,
              static_cast<unsigned long long>(stats.spans));
  return report.spans.size() == 4 && report.spans[0].name == "handle_request" ? 0 : 1;
}
