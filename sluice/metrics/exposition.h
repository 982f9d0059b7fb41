// Exposition: renders scraped families as Prometheus text format 0.0.4 or as JSON.
//
// Prometheus: per family `# HELP` (backslash and newline escaped) and `# TYPE` lines, then one
// line per series, label values escaped (`\\`, `\"`, `\n`). A histogram gives cumulative
// `<name>_bucket{...,le="<bound>"}` lines for its export bounds (see `HistogramOptions`) and
// `le="+Inf"`, then `<name>_sum` and `<name>_count`. Numbers use the shortest form that reads
// back exactly; NaN and infinities as `NaN`, `+Inf`, `-Inf`.
// JSON: an array with one object per family:
//   {"name": ..., "type": "counter"|"gauge"|"histogram", "help": ...,
//    "series": [{"labels": {...}, "value": v}]}        (counters, gauges)
//    "series": [{"labels": {...}, "count", "sum", "min", "max", "mean",
//                "p50", "p90", "p99", "p999"}]}       (histograms)
// Non-finite numbers become null.
// Thread-safety: pure functions. Cost: linear in the output size.
#pragma once

#include <span>
#include <string>

#include "sluice/metrics/writer.h"

namespace sluice::metrics {

// The content type to send with `format_prometheus` output.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

[[nodiscard]] std::string format_prometheus(std::span<const FamilySnapshot> families);
[[nodiscard]] std::string format_json(std::span<const FamilySnapshot> families);

// A number as Prometheus writes it (shortest round-trip form, `+Inf`, `NaN`).
[[nodiscard]] std::string format_number(double value);

}  // namespace sluice::metrics
