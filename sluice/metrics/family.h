// Family: one metric name with label names, and one child metric per distinct label values.
//
//   auto& requests = registry.counter_family("sluice_http_requests_total", "Requests served.",
//                                            {"method", "code"});
//   Counter& get_ok = requests.with({"GET", "200"});   // look up once, keep the reference
//   get_ok.inc();                                       // lock-free from then on
//
// Thread-safety: every member is safe from any thread. `with` takes the family's mutex (a map
// lookup, and an allocation the first time a label set is seen), so cache its result: the
// reference stays valid for the family's life. The child is recorded into without locks.
// Bound: at most `FamilyOptions::max_children` children. Policy at the bound: a new label set
// gets the shared overflow child, whose every label value is `__overflow__` (so the totals
// stay right while the cardinality stays capped), counted in `Stats::overflowed`.
// `T` is one of `Counter`, `Gauge`, `IntGauge`, `Histogram`.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/metrics/counter.h"
#include "sluice/metrics/histogram.h"
#include "sluice/metrics/writer.h"

namespace sluice::metrics {

struct FamilyOptions {
  // Most distinct label sets; further ones share the overflow child.
  size_t max_children = 1000;
};

// The label value of the overflow child.
inline constexpr std::string_view kOverflowLabelValue = "__overflow__";

namespace internal {

// What the registry needs of any family.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  virtual void collect(Writer& writer) const = 0;
  virtual void reset() = 0;
};

}  // namespace internal

template <class T>
class Family final : public internal::FamilyBase {
 public:
  struct Stats {
    size_t children = 0;      // label sets in use, the overflow child included
    uint64_t overflowed = 0;  // `with` calls that got the overflow child because of the bound
  };

  // Prefer `Registry::*_family`, which validates the names; `histogram_options` is used for
  // `Family<Histogram>` only.
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         FamilyOptions options = {}, HistogramOptions histogram_options = {});
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  // The child for these label values, one per label name, in order (a count mismatch is a
  // programming error: SLUICE_CHECK).
  [[nodiscard]] T& with(std::initializer_list<std::string_view> values) {
    return with(std::span<const std::string_view>(values.begin(), values.size()));
  }
  [[nodiscard]] T& with(std::span<const std::string_view> values);
  [[nodiscard]] T& with(std::span<const std::string> values);

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& help() const noexcept { return help_; }
  [[nodiscard]] const std::vector<std::string>& label_names() const noexcept {
    return label_names_;
  }
  [[nodiscard]] Stats stats() const;

  // Emits one series per child.
  void collect(Writer& writer) const override;
  // Resets every child's value (children and references stay).
  void reset() override;

 private:
  struct Child {
    std::vector<std::string> values;
    std::unique_ptr<T> metric;
  };

  T& find_or_add(std::string key, std::span<const std::string_view> values);
  std::unique_ptr<T> make() const;

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const FamilyOptions options_;
  const HistogramOptions histogram_options_;
  mutable std::mutex mutex_;
  std::map<std::string, Child, std::less<>> children_;  // by joined label values
  uint64_t overflowed_ = 0;
};

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<IntGauge>;
extern template class Family<Histogram>;

}  // namespace sluice::metrics
