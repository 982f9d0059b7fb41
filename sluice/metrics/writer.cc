#include "sluice/metrics/writer.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace sluice::metrics {
namespace {

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Words that name a scaled unit; Prometheus wants base units (seconds, bytes, ratios).
constexpr std::array<std::pair<std::string_view, std::string_view>, 16> kScaledUnits{{
    {"ns", "seconds"},
    {"nanoseconds", "seconds"},
    {"us", "seconds"},
    {"microseconds", "seconds"},
    {"ms", "seconds"},
    {"millis", "seconds"},
    {"milliseconds", "seconds"},
    {"minutes", "seconds"},
    {"hours", "seconds"},
    {"kb", "bytes"},
    {"kilobytes", "bytes"},
    {"mb", "bytes"},
    {"megabytes", "bytes"},
    {"gb", "bytes"},
    {"gigabytes", "bytes"},
    {"percent", "ratio (0..1)"},
}};

}  // namespace

std::string_view type_name(MetricType type) noexcept {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string check_metric_name(std::string_view name, MetricType type, HistogramUnit unit) {
  const std::string what = "metric " + quoted(name) + ": ";
  if (name.empty()) return "metric name is empty";
  if (!is_name_start(name[0]) || !std::all_of(name.begin(), name.end(), is_name_char)) {
    return what + "not a valid Prometheus name (expected [a-zA-Z_][a-zA-Z0-9_]*)";
  }
  if (name.starts_with("__")) return what + "names starting with \"__\" are reserved";
  const bool total = name.ends_with("_total");
  if (type == MetricType::kCounter && !total) return what + "a counter's name must end in _total";
  if (type != MetricType::kCounter && total) {
    return what + "only counters end in _total (this is a " + std::string(type_name(type)) + ")";
  }
  if (type == MetricType::kHistogram) {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (name.ends_with(suffix)) {
        return what + "a histogram's name must not end in " + std::string(suffix) +
               " (the exposition adds it)";
      }
    }
    const std::string_view u = unit_suffix(unit);
    if (!u.empty() && !name.ends_with("_" + std::string(u))) {
      return what + "a histogram of " + std::string(u) + " must end in _" + std::string(u);
    }
  }
  size_t start = 0;
  while (start <= name.size()) {
    const size_t end = std::min(name.find('_', start), name.size());
    const std::string_view word = name.substr(start, end - start);
    for (const auto& [scaled, base] : kScaledUnits) {
      if (word == scaled) {
        return what + "uses the scaled unit \"" + std::string(scaled) + "\"; use base units (" +
               std::string(base) + ")";
      }
    }
    start = end + 1;
  }
  return {};
}

std::string check_label_name(std::string_view name) {
  const std::string what = "label " + quoted(name) + ": ";
  if (name.empty()) return "label name is empty";
  if (!is_name_start(name[0]) || !std::all_of(name.begin(), name.end(), is_name_char)) {
    return what + "not a valid label name (expected [a-zA-Z_][a-zA-Z0-9_]*)";
  }
  if (name.starts_with("__")) return what + "names starting with \"__\" are reserved";
  if (name == "le" || name == "quantile") {
    return what + "reserved for histogram buckets and summaries";
  }
  return {};
}

Writer::Writer(std::string required_prefix) : required_prefix_(std::move(required_prefix)) {}

void Writer::reject(std::string message) {
  ++rejected_;
  last_error_ = std::move(message);
}

Sample* Writer::admit(std::string_view name, std::string_view help, MetricType type,
                      HistogramUnit unit, LabelsView labels) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    if (!name.starts_with(required_prefix_)) {
      reject("metric " + quoted(name) + ": must start with " + quoted(required_prefix_));
      return nullptr;
    }
    if (std::string problem = check_metric_name(name, type, unit); !problem.empty()) {
      reject(std::move(problem));
      return nullptr;
    }
  } else {
    const FamilySnapshot& existing = it->second.family;
    if (existing.type != type) {
      reject("metric " + quoted(name) + ": written as a " + std::string(type_name(type)) +
             " but already a " + std::string(type_name(existing.type)));
      return nullptr;
    }
    if (existing.help != help) {
      reject("metric " + quoted(name) + ": written with two different help texts");
      return nullptr;
    }
  }
  // The label key: names and values joined by bytes that cannot occur in UTF-8 text.
  std::string key;
  Sample sample;
  sample.labels.reserve(labels.size());
  for (const Label& label : labels) {
    if (std::string problem = check_label_name(label.name); !problem.empty()) {
      reject("metric " + quoted(name) + ": " + problem);
      return nullptr;
    }
    for (const auto& [seen, unused] : sample.labels) {
      if (seen == label.name) {
        reject("metric " + quoted(name) + ": label " + quoted(label.name) + " given twice");
        return nullptr;
      }
    }
    key.append(label.name).push_back('\xfe');
    key.append(label.value).push_back('\xff');
    sample.labels.emplace_back(label.name, label.value);
  }
  if (it == families_.end()) {
    Entry entry;
    entry.family.name = std::string(name);
    entry.family.help = std::string(help);
    entry.family.type = type;
    it = families_.emplace(std::string(name), std::move(entry)).first;
  }
  Entry& entry = it->second;
  if (!entry.label_keys.insert(std::move(key)).second) {
    reject("metric " + quoted(name) + ": the same label set written twice");
    return nullptr;
  }
  entry.family.samples.push_back(std::move(sample));
  return &entry.family.samples.back();
}

Writer& Writer::counter(std::string_view name, std::string_view help, LabelsView labels,
                        double value) {
  if (!(value >= 0)) {
    reject("metric " + quoted(name) + ": a counter cannot be negative or NaN");
    return *this;
  }
  if (Sample* s = admit(name, help, MetricType::kCounter, HistogramUnit::kNone, labels)) {
    s->value = value;
  }
  return *this;
}

Writer& Writer::gauge(std::string_view name, std::string_view help, LabelsView labels,
                      double value) {
  if (Sample* s = admit(name, help, MetricType::kGauge, HistogramUnit::kNone, labels)) {
    s->value = value;
  }
  return *this;
}

Writer& Writer::histogram(std::string_view name, std::string_view help, LabelsView labels,
                          const HistogramSnapshot& snapshot) {
  if (Sample* s = admit(name, help, MetricType::kHistogram, snapshot.unit(), labels)) {
    s->histogram = snapshot;
  }
  return *this;
}

std::vector<FamilySnapshot> Writer::take() {
  std::vector<FamilySnapshot> out;
  out.reserve(families_.size());
  for (auto& [name, entry] : families_) out.push_back(std::move(entry.family));
  families_.clear();
  return out;
}

}  // namespace sluice::metrics
