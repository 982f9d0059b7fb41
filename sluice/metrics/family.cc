#include "sluice/metrics/family.h"

#include "sluice/base/check.h"

namespace sluice::metrics {
namespace {

// Joins label values with a byte that cannot occur in UTF-8 text.
template <class S>
std::string join_key(std::span<const S> values) {
  std::string key;
  for (const auto& v : values) {
    key.append(v);
    key.push_back('\xff');
  }
  return key;
}

void emit(Writer& w, const Family<Counter>& f, std::span<const Label> labels, const Counter& c) {
  w.counter(f.name(), f.help(), labels, static_cast<double>(c.value()));
}
void emit(Writer& w, const Family<Gauge>& f, std::span<const Label> labels, const Gauge& g) {
  w.gauge(f.name(), f.help(), labels, g.value());
}
void emit(Writer& w, const Family<IntGauge>& f, std::span<const Label> labels, const IntGauge& g) {
  w.gauge(f.name(), f.help(), labels, static_cast<double>(g.value()));
}
void emit(Writer& w, const Family<Histogram>& f, std::span<const Label> labels,
          const Histogram& h) {
  w.histogram(f.name(), f.help(), labels, h.snapshot());
}

}  // namespace

template <class T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  FamilyOptions options, HistogramOptions histogram_options)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      options_(options),
      histogram_options_(std::move(histogram_options)) {
  SLUICE_CHECK(options_.max_children >= 1, "FamilyOptions::max_children must be at least 1");
}

template <class T>
std::unique_ptr<T> Family<T>::make() const {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_unique<Histogram>(histogram_options_);
  } else {
    return std::make_unique<T>();
  }
}

template <class T>
T& Family<T>::find_or_add(std::string key, std::span<const std::string_view> values) {
  SLUICE_CHECK(values.size() == label_names_.size(),
               "Family::with: one value per label name is required");
  std::lock_guard lock(mutex_);
  if (auto it = children_.find(key); it != children_.end()) return *it->second.metric;
  std::vector<std::string> owned(values.begin(), values.end());
  // One slot is kept for the overflow child.
  if (children_.size() + 1 >= options_.max_children) {
    ++overflowed_;
    owned.assign(label_names_.size(), std::string(kOverflowLabelValue));
    key = join_key(std::span<const std::string>(owned));
    if (auto it = children_.find(key); it != children_.end()) return *it->second.metric;
  }
  Child child{std::move(owned), make()};
  T& metric = *child.metric;
  children_.emplace(std::move(key), std::move(child));
  return metric;
}

template <class T>
T& Family<T>::with(std::span<const std::string_view> values) {
  return find_or_add(join_key(values), values);
}

template <class T>
T& Family<T>::with(std::span<const std::string> values) {
  std::vector<std::string_view> views(values.begin(), values.end());
  return with(std::span<const std::string_view>(views));
}

template <class T>
typename Family<T>::Stats Family<T>::stats() const {
  std::lock_guard lock(mutex_);
  return Stats{children_.size(), overflowed_};
}

template <class T>
void Family<T>::collect(Writer& writer) const {
  std::lock_guard lock(mutex_);
  std::vector<Label> labels(label_names_.size());
  for (const auto& [key, child] : children_) {
    for (size_t i = 0; i < label_names_.size(); ++i) {
      labels[i] = Label{label_names_[i], child.values[i]};
    }
    emit(writer, *this, labels, *child.metric);
  }
}

template <class T>
void Family<T>::reset() {
  std::lock_guard lock(mutex_);
  for (auto& [key, child] : children_) child.metric->reset();
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<IntGauge>;
template class Family<Histogram>;

}  // namespace sluice::metrics
