// Profiler: named, categorised, nested spans aggregated per name (count, total, self time,
// mean, p99, max), with a markdown and a JSON report: "where did the time go" for a request
// path or a batch job, cheap enough to leave on.
//
//   metrics::Profiler profiler(base::SteadyClock::instance());
//   {
//     metrics::Span request = profiler.span("handle_request", "http");
//     { metrics::Span s = profiler.span("cache_lookup", "cache"); ... }
//     auto rows = profiler.profile("db_query", "db", [&] { return db.query(...); });
//   }
//   std::cout << profiler.report().to_markdown();
//
// Nesting: each thread keeps a stack of its open spans. A span's parent is the span that was
// open on the same thread when it started; its self time is its time minus its children's.
// A `Span` must end on the thread that started it (SLUICE_CHECK); spans ended out of order
// are unlinked correctly and counted in `Stats::misnested`.
// Thread-safety: `span`, `record`, `report`, `reset` and `stats` are safe from any thread.
// Cost: a span is two `clock.now()` calls, a shared-lock hash lookup of its name (an
// exclusive lock and an allocation the first time a name is seen) and one histogram record;
// roughly 100 ns with the steady clock. A disabled profiler reads no clock.
// Bound: at most `max_span_names` names; policy: further names are aggregated under the name
// "(other)", counted in `Stats::overflowed`.
// Lifetime: the profiler must outlive its spans; `reset` zeroes the figures but keeps names.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/hash.h"
#include "sluice/metrics/histogram.h"
#include "sluice/metrics/writer.h"

namespace sluice::metrics {

struct ProfilerOptions {
  // When false, `span` returns an inert span and nothing is recorded.
  bool enabled = true;
  // Most distinct span names; further ones are aggregated under "(other)".
  size_t max_span_names = 1000;
  // Layout of each name's duration histogram.
  HistogramOptions histogram = HistogramOptions::seconds();
};

// The aggregate of one span name.
struct SpanSummary {
  std::string name;
  std::string category;  // the category given when the name was first seen
  std::string parent;    // the enclosing span's name when first seen ("" at the top level)
  uint64_t count = 0;
  Duration total{0};  // sum of the spans' durations
  Duration self{0};   // total minus the time spent in child spans
  Duration mean{0};
  Duration p99{0};
  Duration max{0};
};

// A profile at one moment, spans sorted by total time, descending.
struct ProfileReport {
  std::vector<SpanSummary> spans;

  // A markdown table: span, category, parent, count, total, self, mean, p99, max.
  [[nodiscard]] std::string to_markdown() const;
  // {"spans": [{"name", "category", "parent", "count", "total_seconds", "self_seconds",
  //             "mean_seconds", "p99_seconds", "max_seconds"}]}
  [[nodiscard]] std::string to_json() const;
};

class Profiler;

namespace internal {
struct SpanEntry;
}  // namespace internal

// An open span; ends (and records) when destroyed or at `end()`. Not copyable or movable:
// keep it in the scope it measures.
class [[nodiscard]] Span {
 public:
  ~Span() { end(); }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

  // Ends the span now (once; later calls do nothing).
  void end() noexcept;
  // Time since the span started (zero for an inert span).
  [[nodiscard]] Duration elapsed() const noexcept;
  // False for the inert spans of a disabled profiler.
  [[nodiscard]] bool active() const noexcept { return profiler_ != nullptr; }

 private:
  friend class Profiler;
  Span() = default;
  Span(Profiler* profiler, internal::SpanEntry* entry, TimePoint start) noexcept;

  Profiler* profiler_ = nullptr;
  internal::SpanEntry* entry_ = nullptr;
  Span* parent_ = nullptr;
  Span** stack_ = nullptr;  // the starting thread's stack top
  TimePoint start_{};
  Duration child_time_{0};
};

class Profiler {
 public:
  struct Stats {
    size_t span_names = 0;    // distinct names aggregated ("(other)" included)
    uint64_t spans = 0;       // spans recorded
    uint64_t overflowed = 0;  // spans aggregated under "(other)" because of the name bound
    uint64_t misnested = 0;   // spans that ended while a span they enclose was still open
  };

  explicit Profiler(const base::Clock& clock, ProfilerOptions options = {});
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  // Starts a span named `name` in `category`, nested under the thread's innermost open span.
  [[nodiscard]] Span span(std::string_view name, std::string_view category = "default");
  // Runs `fn` inside a span and returns its result.
  template <class F>
  decltype(auto) profile(std::string_view name, std::string_view category, F&& fn) {
    Span s = span(name, category);
    return std::forward<F>(fn)();
  }
  // Adds a span measured elsewhere (top level, no nesting).
  void record(std::string_view name, std::string_view category, Duration elapsed);

  [[nodiscard]] ProfileReport report() const;
  // Emits `sluice_profiler_span_seconds{span,category}` (histogram) and
  // `sluice_profiler_span_self_seconds_total{span,category}` (counter) through `writer`.
  void collect(Writer& writer) const;
  // Zeroes every aggregate (names are kept: open spans may still refer to them).
  void reset();
  void set_enabled(bool enabled) noexcept { enabled_.store(enabled, std::memory_order_relaxed); }
  [[nodiscard]] bool enabled() const noexcept { return enabled_.load(std::memory_order_relaxed); }
  [[nodiscard]] Stats stats() const;

 private:
  friend class Span;

  internal::SpanEntry* find_or_add(std::string_view name, std::string_view category,
                                   std::string_view parent);
  void finish(internal::SpanEntry* entry, Duration elapsed, Duration child_time) noexcept;

  const base::Clock& clock_;
  const ProfilerOptions options_;
  std::atomic<bool> enabled_;
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::unique_ptr<internal::SpanEntry>, base::StringHash,
                     std::equal_to<>>
      entries_;
  std::atomic<uint64_t> spans_{0};
  std::atomic<uint64_t> overflowed_{0};
  std::atomic<uint64_t> misnested_{0};
};

}  // namespace sluice::metrics
