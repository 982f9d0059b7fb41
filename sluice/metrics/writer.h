// Writer: what a scrape is made of. Registered families and collectors (callbacks that turn a
// component's `Stats` snapshot into series) all emit through one `Writer`, which validates
// names and gathers the series into `FamilySnapshot`s for exposition.
//
// An adapter in another module looks like:
//
//   registry.add_collector("cache", [&cache](metrics::Writer& w) {
//     const auto s = cache.stats();
//     w.counter("sluice_cache_hits_total", "Lookups that found a fresh entry.", {}, s.hits)
//      .gauge("sluice_cache_entries", "Entries held.", {{"tier", "l1"}}, s.entries);
//   });
//
// Thread-safety: a Writer belongs to one scrape; NOT thread-safe.
// Rules checked on every series (a failing series is dropped, counted in `rejected()` and
// described in `last_error()`; the scrape goes on): valid Prometheus names, `_total` on
// counters and only on counters, base units (`_seconds`, `_bytes`, no `_ms`/`_kb`/...),
// histogram names ending in their unit, valid label names (not `le`, `quantile` or `__*`),
// one type and help per name, no label set twice in one family, the registry's required
// prefix if any.
// Cost: a map lookup per family and a set insertion per series; scrapes are not a hot path.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/metrics/histogram.h"

namespace sluice::metrics {

// The kind of a metric family.
enum class MetricType {
  kCounter,    // a monotonic total; name ends in `_total`
  kGauge,      // a value that goes up and down
  kHistogram,  // a distribution: buckets, sum and count (quantiles in JSON)
};

// "counter", "gauge" or "histogram".
[[nodiscard]] std::string_view type_name(MetricType type) noexcept;

// One label, borrowed for the duration of a call.
struct Label {
  std::string_view name;
  std::string_view value;
};

// A borrowed list of labels: `{{"method", "GET"}, {"code", "200"}}`, `{}` or a span. A braced
// list lives until the end of the full expression: pass it straight to the call, never keep
// a `LabelsView` made from one in a variable (keep a `std::array<Label, N>` instead).
class LabelsView {
 public:
  LabelsView() = default;
  LabelsView(std::initializer_list<Label> labels) noexcept  // NOLINT: implicit on purpose
      : labels_(labels.begin(), labels.size()) {}
  LabelsView(std::span<const Label> labels) noexcept : labels_(labels) {}  // NOLINT

  [[nodiscard]] auto begin() const noexcept { return labels_.begin(); }
  [[nodiscard]] auto end() const noexcept { return labels_.end(); }
  [[nodiscard]] size_t size() const noexcept { return labels_.size(); }

 private:
  std::span<const Label> labels_;
};

// One series of a family: its labels and its value.
struct Sample {
  // Label names and values, in the order they were written.
  std::vector<std::pair<std::string, std::string>> labels;
  // The value of a counter or gauge (unused for histograms).
  double value = 0;
  // The distribution of a histogram (empty for counters and gauges).
  std::optional<HistogramSnapshot> histogram;
};

// One metric family as scraped: every series that shares a name.
struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<Sample> samples;
};

// Empty when `name` is acceptable for a family of `type`, else a sentence saying why not.
// `unit` applies to histograms (their name must end in `_seconds` / `_bytes`).
[[nodiscard]] std::string check_metric_name(std::string_view name, MetricType type,
                                            HistogramUnit unit = HistogramUnit::kNone);
// Empty when `name` is an acceptable label name, else why not.
[[nodiscard]] std::string check_label_name(std::string_view name);

class Writer {
 public:
  // `required_prefix`: every name must start with it ("" accepts any valid name).
  explicit Writer(std::string required_prefix = {});

  // A counter series (`value` should only grow between scrapes).
  Writer& counter(std::string_view name, std::string_view help, LabelsView labels, double value);
  // A gauge series.
  Writer& gauge(std::string_view name, std::string_view help, LabelsView labels, double value);
  // A histogram series (use `Histogram::snapshot()`; quantiles appear in JSON).
  Writer& histogram(std::string_view name, std::string_view help, LabelsView labels,
                    const HistogramSnapshot& snapshot);

  // Series dropped by the rules above, since construction.
  [[nodiscard]] uint64_t rejected() const noexcept { return rejected_; }
  // Why the last series was dropped ("" if none was).
  [[nodiscard]] const std::string& last_error() const noexcept { return last_error_; }
  // The families written so far, sorted by name; leaves the writer empty.
  [[nodiscard]] std::vector<FamilySnapshot> take();

 private:
  struct Entry {
    FamilySnapshot family;
    std::set<std::string, std::less<>> label_keys;  // to refuse a label set written twice
  };

  Sample* admit(std::string_view name, std::string_view help, MetricType type, HistogramUnit unit,
                LabelsView labels);
  void reject(std::string message);

  std::string required_prefix_;
  std::map<std::string, Entry, std::less<>> families_;
  uint64_t rejected_ = 0;
  std::string last_error_;
};

}  // namespace sluice::metrics
