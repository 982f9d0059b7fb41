// Registry: owns the process's metric families by name and the collectors that export other
// components' `Stats`; produces scrapes in Prometheus text format and JSON.
//
// Thread-safety: every member is safe from any thread. Registration and scrapes take the
// registry's mutex; recording into a metric never touches the registry. Collectors run under
// that mutex, one scrape at a time, so a collector must not call back into the registry; and
// a collector's handle, when destroyed, waits for a scrape in progress, so a component whose
// destructor drops its handle is never read after it is gone.
// Errors: registering a name twice, an invalid name or label name throws
// `std::invalid_argument` with a message naming the metric and the rule (registration happens
// at start-up: fail fast and say what is wrong). At scrape time, series that break the rules
// are dropped and counted in `Stats::rejected_series` (see writer.h for the rules).
// Cost: a scrape walks every family, child and bucket; it allocates its output.
// Lifetime: references returned by the registry live as long as the registry; the registry
// must outlive every `CollectorHandle`.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/metrics/counter.h"
#include "sluice/metrics/family.h"
#include "sluice/metrics/histogram.h"
#include "sluice/metrics/writer.h"

namespace sluice::metrics {

struct RegistryOptions {
  // Every metric name must start with this (e.g. "sluice_"); "" accepts any valid name.
  std::string required_prefix;
};

class Registry;

// Keeps a collector registered; removes it when destroyed or `reset()`. Move-only.
class [[nodiscard]] CollectorHandle {
 public:
  CollectorHandle() = default;
  CollectorHandle(CollectorHandle&& other) noexcept;
  CollectorHandle& operator=(CollectorHandle&& other) noexcept;
  ~CollectorHandle() { reset(); }

  // Unregisters now (waits for a scrape in progress). Idempotent.
  void reset() noexcept;
  [[nodiscard]] bool active() const noexcept { return registry_ != nullptr; }

 private:
  friend class Registry;
  CollectorHandle(Registry* registry, uint64_t id) noexcept : registry_(registry), id_(id) {}

  Registry* registry_ = nullptr;
  uint64_t id_ = 0;
};

class Registry {
 public:
  // Called at scrape time; emits series through the writer.
  using CollectFn = std::function<void(Writer&)>;

  struct Stats {
    size_t families = 0;           // registered families
    size_t collectors = 0;         // live collectors
    uint64_t scrapes = 0;          // calls to `collect` (and so to `prometheus`/`json`)
    uint64_t rejected_series = 0;  // series dropped at scrape time, all scrapes together
    std::string last_rejection;    // why the last one was dropped ("" if none)
  };

  explicit Registry(RegistryOptions options = {});
  // Requires that no collector is still registered (SLUICE_CHECK).
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Unlabelled metrics: the family's single child.
  Counter& counter(std::string_view name, std::string_view help);
  Gauge& gauge(std::string_view name, std::string_view help);
  IntGauge& int_gauge(std::string_view name, std::string_view help);
  Histogram& histogram(std::string_view name, std::string_view help, HistogramOptions options = {});

  // Labelled families.
  Family<Counter>& counter_family(std::string_view name, std::string_view help,
                                  std::vector<std::string> label_names, FamilyOptions options = {});
  Family<Gauge>& gauge_family(std::string_view name, std::string_view help,
                              std::vector<std::string> label_names, FamilyOptions options = {});
  Family<IntGauge>& int_gauge_family(std::string_view name, std::string_view help,
                                     std::vector<std::string> label_names,
                                     FamilyOptions options = {});
  Family<Histogram>& histogram_family(std::string_view name, std::string_view help,
                                      std::vector<std::string> label_names,
                                      HistogramOptions histogram_options = {},
                                      FamilyOptions options = {});

  // Registers a collector; `name` identifies it in messages. Keep the handle as long as the
  // collected component lives.
  [[nodiscard]] CollectorHandle add_collector(std::string name, CollectFn collect);

  // Every family and collector, merged by name and sorted by name.
  [[nodiscard]] std::vector<FamilySnapshot> collect();
  // `collect()` rendered as Prometheus text format 0.0.4.
  [[nodiscard]] std::string prometheus();
  // `collect()` rendered as JSON (see exposition.h).
  [[nodiscard]] std::string json();

  // Resets every registered family's values (the admin "reset metrics" action). Collectors
  // export their components' own counters and are not affected.
  void reset();

  [[nodiscard]] Stats stats() const;

 private:
  friend class CollectorHandle;

  template <class T>
  Family<T>& add(std::string_view name, std::string_view help, MetricType type, HistogramUnit unit,
                 std::vector<std::string> label_names, FamilyOptions options,
                 HistogramOptions histogram_options);
  void remove_collector(uint64_t id) noexcept;

  const RegistryOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<internal::FamilyBase>, std::less<>> families_;
  std::map<uint64_t, std::pair<std::string, CollectFn>> collectors_;
  uint64_t next_collector_id_ = 1;
  uint64_t scrapes_ = 0;
  uint64_t rejected_series_ = 0;
  std::string last_rejection_;
};

}  // namespace sluice::metrics
