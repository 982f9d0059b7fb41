#include "sluice/metrics/profiler.h"

#include <gtest/gtest.h>

#include <barrier>
#include <boost/json.hpp>
#include <thread>

#include "sluice/metrics/registry.h"

namespace sluice::metrics {
namespace {

using std::chrono::milliseconds;

const SpanSummary* find(const ProfileReport& report, std::string_view name) {
  for (const auto& s : report.spans) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

TEST(Profiler, NestedSpansAggregateWithSelfTime) {
  base::ManualClock clock;
  Profiler profiler(clock);
  for (int i = 0; i < 3; ++i) {
    Span request = profiler.span("handle_request", "http");
    clock.advance(milliseconds(1));
    {
      Span lookup = profiler.span("cache_lookup", "cache");
      clock.advance(milliseconds(2));
    }
    {
      Span query = profiler.span("db_query", "db");
      clock.advance(milliseconds(10));
      Span decode = profiler.span("decode", "db");
      clock.advance(milliseconds(1));
    }
  }
  const ProfileReport report = profiler.report();
  ASSERT_EQ(report.spans.size(), 4u);
  // Sorted by total, descending.
  EXPECT_EQ(report.spans[0].name, "handle_request");
  EXPECT_EQ(report.spans[1].name, "db_query");
  EXPECT_EQ(report.spans[2].name, "cache_lookup");
  EXPECT_EQ(report.spans[3].name, "decode");

  const SpanSummary& request = report.spans[0];
  EXPECT_EQ(request.category, "http");
  EXPECT_EQ(request.parent, "");
  EXPECT_EQ(request.count, 3u);
  EXPECT_EQ(request.total, milliseconds(42));
  EXPECT_EQ(request.self, milliseconds(3));
  EXPECT_EQ(request.mean, milliseconds(14));
  EXPECT_EQ(request.max, milliseconds(14));

  const SpanSummary& query = report.spans[1];
  EXPECT_EQ(query.parent, "handle_request");
  EXPECT_EQ(query.total, milliseconds(33));
  EXPECT_EQ(query.self, milliseconds(30));
  EXPECT_EQ(find(report, "decode")->parent, "db_query");
  EXPECT_EQ(find(report, "decode")->self, milliseconds(3));
  EXPECT_EQ(find(report, "cache_lookup")->p99, milliseconds(2));

  const auto stats = profiler.stats();
  EXPECT_EQ(stats.span_names, 4u);
  EXPECT_EQ(stats.spans, 12u);
  EXPECT_EQ(stats.misnested, 0u);
}

TEST(Profiler, MarkdownReportListsSpansByTotal) {
  base::ManualClock clock;
  Profiler profiler(clock);
  {
    Span outer = profiler.span("render", "api");
    clock.advance(milliseconds(3));
    Span inner = profiler.span("load|data", "io");
    clock.advance(milliseconds(7));
  }
  profiler.record("external", "rpc", std::chrono::microseconds(1500));
  const std::string md = profiler.report().to_markdown();
  EXPECT_EQ(md,
            "| span | category | parent | count | total | self | mean | p99 | max |\n"
            "|---|---|---|---:|---:|---:|---:|---:|---:|\n"
            "| render | api | - | 1 | 10 ms | 3 ms | 10 ms | 10 ms | 10 ms |\n"
            "| load\\|data | io | render | 1 | 7 ms | 7 ms | 7 ms | 7 ms | 7 ms |\n"
            "| external | rpc | - | 1 | 1.5 ms | 1.5 ms | 1.5 ms | 1.5 ms | 1.5 ms |\n");
}

TEST(Profiler, JsonReportParses) {
  base::ManualClock clock;
  Profiler profiler(clock);
  profiler.profile("work", "cpu", [&] { clock.advance(milliseconds(4)); });
  const int answer = profiler.profile("compute", "cpu", [&] {
    clock.advance(milliseconds(1));
    return 42;
  });
  EXPECT_EQ(answer, 42);
  const auto doc = boost::json::parse(profiler.report().to_json());
  const auto& spans = doc.at("spans").as_array();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].at("name").as_string(), "work");
  EXPECT_EQ(spans[0].at("category").as_string(), "cpu");
  EXPECT_EQ(spans[0].at("count").to_number<uint64_t>(), 1u);
  EXPECT_DOUBLE_EQ(spans[0].at("total_seconds").to_number<double>(), 0.004);
  EXPECT_DOUBLE_EQ(spans[1].at("p99_seconds").to_number<double>(), 0.001);
}

TEST(Profiler, OutOfOrderEndIsUnlinkedAndCounted) {
  base::ManualClock clock;
  Profiler profiler(clock);
  {
    Span outer = profiler.span("outer");
    auto* inner = new Span(profiler.span("inner"));  // NOLINT: deliberately outlives `outer`
    clock.advance(milliseconds(1));
    outer.end();  // ends while `inner` is open
    clock.advance(milliseconds(1));
    delete inner;
    // The thread's stack is empty again: a new span is top level.
    Span next = profiler.span("next");
  }
  const auto report = profiler.report();
  EXPECT_EQ(find(report, "next")->parent, "");
  EXPECT_EQ(find(report, "inner")->total, milliseconds(2));
  EXPECT_EQ(profiler.stats().misnested, 1u);
}

TEST(Profiler, DisabledRecordsNothing) {
  base::ManualClock clock;
  Profiler profiler(clock, ProfilerOptions{.enabled = false});
  {
    Span s = profiler.span("x");
    EXPECT_FALSE(s.active());
    clock.advance(milliseconds(1));
  }
  profiler.record("y", "z", milliseconds(1));
  EXPECT_TRUE(profiler.report().spans.empty());
  profiler.set_enabled(true);
  { Span s = profiler.span("x"); }
  EXPECT_EQ(profiler.report().spans.size(), 1u);
}

TEST(Profiler, NameBoundAggregatesUnderOther) {
  base::ManualClock clock;
  Profiler profiler(clock, ProfilerOptions{.max_span_names = 3});
  for (int i = 0; i < 5; ++i) profiler.record("op" + std::to_string(i), "x", milliseconds(1));
  const auto report = profiler.report();
  EXPECT_EQ(report.spans.size(), 3u);
  ASSERT_NE(find(report, "(other)"), nullptr);
  EXPECT_EQ(find(report, "(other)")->count, 3u);
  EXPECT_EQ(profiler.stats().overflowed, 3u);
}

TEST(Profiler, ResetKeepsNamesZeroesFigures) {
  base::ManualClock clock;
  Profiler profiler(clock);
  profiler.record("a", "x", milliseconds(5));
  profiler.reset();
  const auto report = profiler.report();
  ASSERT_EQ(report.spans.size(), 1u);
  EXPECT_EQ(report.spans[0].count, 0u);
  EXPECT_EQ(report.spans[0].self, Duration::zero());
}

TEST(Profiler, ConcurrentSpansFromSeveralThreads) {
  constexpr int kThreads = 4;
  constexpr int kSpans = 2000;
  base::ManualClock clock;
  Profiler profiler(clock);
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kSpans; ++i) {
        Span outer = profiler.span("outer", "t");
        Span inner = profiler.span("inner_" + std::to_string(t % 2), "t");
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto report = profiler.report();
  EXPECT_EQ(find(report, "outer")->count, uint64_t{kThreads} * kSpans);
  EXPECT_EQ(find(report, "inner_0")->count, uint64_t{kThreads / 2} * kSpans);
  EXPECT_EQ(find(report, "inner_1")->parent, "outer");
  EXPECT_EQ(profiler.stats().spans, uint64_t{kThreads} * kSpans * 2);
  EXPECT_EQ(profiler.stats().misnested, 0u);
}

TEST(Profiler, ExportsThroughARegistryCollector) {
  base::ManualClock clock;
  Profiler profiler(clock);
  profiler.record("db_query", "db", milliseconds(12));
  Registry registry;
  auto handle = registry.add_collector("profiler", [&](Writer& w) { profiler.collect(w); });
  const std::string text = registry.prometheus();
  EXPECT_NE(text.find("sluice_profiler_span_seconds_count{span=\"db_query\",category=\"db\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find(
          "sluice_profiler_span_self_seconds_total{span=\"db_query\",category=\"db\"} 0.012\n"),
      std::string::npos)
      << text;
  EXPECT_EQ(registry.stats().rejected_series, 0u);
}

}  // namespace
}  // namespace sluice::metrics
