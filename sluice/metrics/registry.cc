#include "sluice/metrics/registry.h"

#include <stdexcept>

#include "sluice/base/check.h"
#include "sluice/metrics/exposition.h"

namespace sluice::metrics {

CollectorHandle::CollectorHandle(CollectorHandle&& other) noexcept
    : registry_(std::exchange(other.registry_, nullptr)), id_(other.id_) {}

CollectorHandle& CollectorHandle::operator=(CollectorHandle&& other) noexcept {
  if (this != &other) {
    reset();
    registry_ = std::exchange(other.registry_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

void CollectorHandle::reset() noexcept {
  if (registry_ != nullptr) std::exchange(registry_, nullptr)->remove_collector(id_);
}

Registry::Registry(RegistryOptions options) : options_(std::move(options)) {}

Registry::~Registry() {
  SLUICE_CHECK(collectors_.empty(), "Registry destroyed while collectors are still registered");
}

template <class T>
Family<T>& Registry::add(std::string_view name, std::string_view help, MetricType type,
                         HistogramUnit unit, std::vector<std::string> label_names,
                         FamilyOptions options, HistogramOptions histogram_options) {
  if (!name.starts_with(options_.required_prefix)) {
    throw std::invalid_argument("metric \"" + std::string(name) + "\": must start with \"" +
                                options_.required_prefix + "\"");
  }
  if (std::string problem = check_metric_name(name, type, unit); !problem.empty()) {
    throw std::invalid_argument(problem);
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    if (std::string problem = check_label_name(label_names[i]); !problem.empty()) {
      throw std::invalid_argument("metric \"" + std::string(name) + "\": " + problem);
    }
    for (size_t j = 0; j < i; ++j) {
      if (label_names[i] == label_names[j]) {
        throw std::invalid_argument("metric \"" + std::string(name) + "\": label \"" +
                                    label_names[i] + "\" listed twice");
      }
    }
  }
  auto family =
      std::make_unique<Family<T>>(std::string(name), std::string(help), std::move(label_names),
                                  options, std::move(histogram_options));
  Family<T>& ref = *family;
  std::lock_guard lock(mutex_);
  if (!families_.try_emplace(std::string(name), std::move(family)).second) {
    throw std::invalid_argument("metric \"" + std::string(name) +
                                "\": already registered (each name may be registered once; "
                                "keep the first reference)");
  }
  return ref;
}

Counter& Registry::counter(std::string_view name, std::string_view help) {
  return counter_family(name, help, {}).with({});
}

Gauge& Registry::gauge(std::string_view name, std::string_view help) {
  return gauge_family(name, help, {}).with({});
}

IntGauge& Registry::int_gauge(std::string_view name, std::string_view help) {
  return int_gauge_family(name, help, {}).with({});
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               HistogramOptions options) {
  return histogram_family(name, help, {}, std::move(options)).with({});
}

Family<Counter>& Registry::counter_family(std::string_view name, std::string_view help,
                                          std::vector<std::string> label_names,
                                          FamilyOptions options) {
  return add<Counter>(name, help, MetricType::kCounter, HistogramUnit::kNone,
                      std::move(label_names), options, {});
}

Family<Gauge>& Registry::gauge_family(std::string_view name, std::string_view help,
                                      std::vector<std::string> label_names, FamilyOptions options) {
  return add<Gauge>(name, help, MetricType::kGauge, HistogramUnit::kNone, std::move(label_names),
                    options, {});
}

Family<IntGauge>& Registry::int_gauge_family(std::string_view name, std::string_view help,
                                             std::vector<std::string> label_names,
                                             FamilyOptions options) {
  return add<IntGauge>(name, help, MetricType::kGauge, HistogramUnit::kNone, std::move(label_names),
                       options, {});
}

Family<Histogram>& Registry::histogram_family(std::string_view name, std::string_view help,
                                              std::vector<std::string> label_names,
                                              HistogramOptions histogram_options,
                                              FamilyOptions options) {
  const HistogramUnit unit = histogram_options.unit;
  return add<Histogram>(name, help, MetricType::kHistogram, unit, std::move(label_names), options,
                        std::move(histogram_options));
}

CollectorHandle Registry::add_collector(std::string name, CollectFn collect) {
  SLUICE_CHECK(collect != nullptr, "Registry::add_collector: empty callback");
  std::lock_guard lock(mutex_);
  const uint64_t id = next_collector_id_++;
  collectors_.emplace(id, std::make_pair(std::move(name), std::move(collect)));
  return CollectorHandle(this, id);
}

void Registry::remove_collector(uint64_t id) noexcept {
  std::lock_guard lock(mutex_);
  collectors_.erase(id);
}

std::vector<FamilySnapshot> Registry::collect() {
  Writer writer(options_.required_prefix);
  std::lock_guard lock(mutex_);
  for (const auto& [name, family] : families_) family->collect(writer);
  for (const auto& [id, collector] : collectors_) {
    const uint64_t before = writer.rejected();
    collector.second(writer);
    if (writer.rejected() != before) {
      last_rejection_ = "collector \"" + collector.first + "\": " + writer.last_error();
    }
  }
  ++scrapes_;
  rejected_series_ += writer.rejected();
  return writer.take();
}

std::string Registry::prometheus() { return format_prometheus(collect()); }

std::string Registry::json() { return format_json(collect()); }

void Registry::reset() {
  std::lock_guard lock(mutex_);
  for (const auto& [name, family] : families_) family->reset();
}

Registry::Stats Registry::stats() const {
  std::lock_guard lock(mutex_);
  return Stats{families_.size(), collectors_.size(), scrapes_, rejected_series_, last_rejection_};
}

}  // namespace sluice::metrics
