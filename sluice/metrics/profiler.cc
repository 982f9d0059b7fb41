#include "sluice/metrics/profiler.h"

#include <algorithm>
#include <mutex>

#include "sluice/base/check.h"
#include "sluice/base/units.h"
#include "sluice/metrics/internal/json.h"

namespace sluice::metrics {

namespace internal {

struct SpanEntry {
  SpanEntry(std::string n, std::string c, std::string p, const HistogramOptions& options)
      : name(std::move(n)), category(std::move(c)), parent(std::move(p)), histogram(options) {}

  const std::string name;
  const std::string category;
  const std::string parent;
  Histogram histogram;
  std::atomic<int64_t> self_ns{0};
};

}  // namespace internal

namespace {

constexpr std::string_view kOtherName = "(other)";

// The innermost open span of this thread (of any profiler).
thread_local Span* t_top = nullptr;

Duration from_seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

SpanSummary summarise(const internal::SpanEntry& entry) {
  const HistogramSnapshot h = entry.histogram.snapshot();
  SpanSummary s;
  s.name = entry.name;
  s.category = entry.category;
  s.parent = entry.parent;
  s.count = h.count();
  s.total = from_seconds(h.sum());
  s.self = Duration(entry.self_ns.load(std::memory_order_relaxed));
  s.mean = from_seconds(h.mean());
  s.p99 = from_seconds(h.p99());
  s.max = from_seconds(h.max());
  return s;
}

void append_cell(std::string& out, std::string_view text) {
  out += " ";
  for (const char c : text) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n') {
      out += ' ';
    } else {
      out.push_back(c);
    }
  }
  out += " |";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Span

Span::Span(Profiler* profiler, internal::SpanEntry* entry, TimePoint start) noexcept
    : profiler_(profiler), entry_(entry), parent_(t_top), stack_(&t_top), start_(start) {
  t_top = this;
}

Duration Span::elapsed() const noexcept {
  return profiler_ == nullptr ? Duration::zero() : profiler_->clock_.now() - start_;
}

void Span::end() noexcept {
  if (profiler_ == nullptr) return;
  Profiler* profiler = std::exchange(profiler_, nullptr);
  const Duration elapsed = profiler->clock_.now() - start_;
  SLUICE_CHECK(stack_ == &t_top, "a Span must end on the thread that started it");
  if (t_top == this) {
    t_top = parent_;
  } else {
    // Ended before a span it encloses: unlink it so the inner span pops to our parent.
    profiler->misnested_.fetch_add(1, std::memory_order_relaxed);
    for (Span* s = t_top; s != nullptr; s = s->parent_) {
      if (s->parent_ == this) {
        s->parent_ = parent_;
        break;
      }
    }
  }
  if (parent_ != nullptr && parent_->profiler_ == profiler) parent_->child_time_ += elapsed;
  profiler->finish(entry_, elapsed, child_time_);
}

// ---------------------------------------------------------------------------------------------
// Profiler

Profiler::Profiler(const base::Clock& clock, ProfilerOptions options)
    : clock_(clock), options_(std::move(options)), enabled_(options_.enabled) {
  SLUICE_CHECK(options_.max_span_names >= 1, "ProfilerOptions::max_span_names must be >= 1");
}

Profiler::~Profiler() = default;

internal::SpanEntry* Profiler::find_or_add(std::string_view name, std::string_view category,
                                           std::string_view parent) {
  {
    std::shared_lock lock(mutex_);
    if (auto it = entries_.find(name); it != entries_.end()) return it->second.get();
  }
  std::unique_lock lock(mutex_);
  if (auto it = entries_.find(name); it != entries_.end()) return it->second.get();
  // One slot is kept for "(other)".
  if (entries_.size() + 1 >= options_.max_span_names && name != kOtherName) {
    overflowed_.fetch_add(1, std::memory_order_relaxed);
    name = kOtherName;
    category = "";
    parent = "";
    if (auto it = entries_.find(name); it != entries_.end()) return it->second.get();
  }
  auto entry = std::make_unique<internal::SpanEntry>(std::string(name), std::string(category),
                                                     std::string(parent), options_.histogram);
  internal::SpanEntry* raw = entry.get();
  entries_.emplace(std::string(name), std::move(entry));
  return raw;
}

Span Profiler::span(std::string_view name, std::string_view category) {
  if (!enabled()) return Span();
  std::string_view parent;
  if (t_top != nullptr && t_top->profiler_ == this) parent = t_top->entry_->name;
  internal::SpanEntry* entry = find_or_add(name, category, parent);
  return Span(this, entry, clock_.now());
}

void Profiler::record(std::string_view name, std::string_view category, Duration elapsed) {
  if (!enabled()) return;
  finish(find_or_add(name, category, ""), elapsed, Duration::zero());
}

void Profiler::finish(internal::SpanEntry* entry, Duration elapsed, Duration child_time) noexcept {
  entry->histogram.record(elapsed);
  entry->self_ns.fetch_add(std::max(Duration::zero(), elapsed - child_time).count(),
                           std::memory_order_relaxed);
  spans_.fetch_add(1, std::memory_order_relaxed);
}

ProfileReport Profiler::report() const {
  ProfileReport report;
  {
    std::shared_lock lock(mutex_);
    report.spans.reserve(entries_.size());
    for (const auto& [name, entry] : entries_) report.spans.push_back(summarise(*entry));
  }
  std::sort(report.spans.begin(), report.spans.end(),
            [](const SpanSummary& a, const SpanSummary& b) {
              return a.total != b.total ? a.total > b.total : a.name < b.name;
            });
  return report;
}

void Profiler::collect(Writer& writer) const {
  std::shared_lock lock(mutex_);
  for (const auto& [name, entry] : entries_) {
    const Label labels[] = {{"span", entry->name}, {"category", entry->category}};
    writer.histogram("sluice_profiler_span_seconds", "Duration of profiled spans, by span name.",
                     std::span<const Label>(labels), entry->histogram.snapshot());
    writer.counter("sluice_profiler_span_self_seconds_total",
                   "Time spent in profiled spans outside their child spans.",
                   std::span<const Label>(labels),
                   base::to_seconds(Duration(entry->self_ns.load(std::memory_order_relaxed))));
  }
}

void Profiler::reset() {
  std::shared_lock lock(mutex_);
  for (const auto& [name, entry] : entries_) {
    entry->histogram.reset();
    entry->self_ns.store(0, std::memory_order_relaxed);
  }
}

Profiler::Stats Profiler::stats() const {
  std::shared_lock lock(mutex_);
  return Stats{entries_.size(), spans_.load(std::memory_order_relaxed),
               overflowed_.load(std::memory_order_relaxed),
               misnested_.load(std::memory_order_relaxed)};
}

// ---------------------------------------------------------------------------------------------
// ProfileReport

std::string ProfileReport::to_markdown() const {
  std::string out =
      "| span | category | parent | count | total | self | mean | p99 | max |\n"
      "|---|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const SpanSummary& s : spans) {
    out += "|";
    append_cell(out, s.name);
    append_cell(out, s.category);
    append_cell(out, s.parent.empty() ? "-" : s.parent);
    append_cell(out, std::to_string(s.count));
    for (const Duration d : {s.total, s.self, s.mean, s.p99, s.max}) {
      append_cell(out, base::format_duration(d));
    }
    out += "\n";
  }
  return out;
}

std::string ProfileReport::to_json() const {
  using internal::append_json_number;
  using internal::append_json_string;
  std::string out = "{\"spans\":[";
  bool first = true;
  for (const SpanSummary& s : spans) {
    if (!first) out += ",";
    first = false;
    out += "\n{\"name\":";
    append_json_string(out, s.name);
    out += ",\"category\":";
    append_json_string(out, s.category);
    out += ",\"parent\":";
    append_json_string(out, s.parent);
    out += ",\"count\":" + std::to_string(s.count);
    const std::pair<const char*, Duration> fields[] = {{"total_seconds", s.total},
                                                       {"self_seconds", s.self},
                                                       {"mean_seconds", s.mean},
                                                       {"p99_seconds", s.p99},
                                                       {"max_seconds", s.max}};
    for (const auto& [key, d] : fields) {
      out += ",\"";
      out += key;
      out += "\":";
      append_json_number(out, base::to_seconds(d));
    }
    out += "}";
  }
  out += first ? "]}\n" : "\n]}\n";
  return out;
}

}  // namespace sluice::metrics
