#include "sluice/metrics/registry.h"

#include <gtest/gtest.h>

#include <barrier>
#include <stdexcept>
#include <thread>

namespace sluice::metrics {
namespace {

// The message of the std::invalid_argument thrown by `fn`, or "" if none was thrown.
template <class F>
std::string registration_error(F&& fn) {
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

const FamilySnapshot* find(const std::vector<FamilySnapshot>& families, std::string_view name) {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

TEST(MetricNames, PrometheusConventions) {
  EXPECT_EQ(check_metric_name("sluice_cache_hits_total", MetricType::kCounter), "");
  EXPECT_EQ(check_metric_name("sluice_queue_depth", MetricType::kGauge), "");
  EXPECT_EQ(
      check_metric_name("sluice_request_seconds", MetricType::kHistogram, HistogramUnit::kSeconds),
      "");
  EXPECT_NE(check_metric_name("", MetricType::kGauge), "");
  EXPECT_NE(check_metric_name("9lives", MetricType::kGauge), "");
  EXPECT_NE(check_metric_name("sluice-cache", MetricType::kGauge), "");
  EXPECT_NE(check_metric_name("sluice:rule", MetricType::kGauge), "");
  EXPECT_NE(check_metric_name("__internal", MetricType::kGauge), "");
  EXPECT_NE(check_metric_name("sluice_cache_hits", MetricType::kCounter).find("_total"),
            std::string::npos);
  EXPECT_NE(check_metric_name("sluice_depth_total", MetricType::kGauge), "");
  EXPECT_NE(check_metric_name("sluice_latency_ms", MetricType::kGauge).find("base units"),
            std::string::npos);
  EXPECT_NE(check_metric_name("sluice_body_kilobytes", MetricType::kGauge), "");
  EXPECT_NE(
      check_metric_name("sluice_request_duration", MetricType::kHistogram, HistogramUnit::kSeconds)
          .find("_seconds"),
      std::string::npos);
  EXPECT_NE(check_metric_name("sluice_x_count", MetricType::kHistogram), "");
  EXPECT_EQ(check_label_name("method"), "");
  EXPECT_NE(check_label_name("le"), "");
  EXPECT_NE(check_label_name("__name__"), "");
  EXPECT_NE(check_label_name("bad-label"), "");
}

TEST(Registry, DuplicateNamesRejectedClearly) {
  Registry registry;
  Counter& c = registry.counter("sluice_requests_total", "Requests.");
  c.inc();
  const std::string again =
      registration_error([&] { (void)registry.counter("sluice_requests_total", "Requests."); });
  EXPECT_NE(again.find("sluice_requests_total"), std::string::npos) << again;
  EXPECT_NE(again.find("already registered"), std::string::npos) << again;
  // Also across types.
  EXPECT_NE(
      registration_error([&] { (void)registry.gauge_family("sluice_requests_total", "x", {"a"}); }),
      "");
  EXPECT_EQ(registry.stats().families, 1u);
  EXPECT_EQ(c.value(), 1u);  // the first registration is untouched
}

TEST(Registry, InvalidNamesAndLabelsRejected) {
  Registry registry;
  EXPECT_NE(
      registration_error([&] { (void)registry.counter("sluice_requests", "x"); }).find("_total"),
      std::string::npos);
  EXPECT_NE(registration_error([&] {
              (void)registry.counter_family("sluice_a_total", "x", {"code", "code"});
            }).find("twice"),
            std::string::npos);
  EXPECT_NE(
      registration_error([&] { (void)registry.histogram_family("sluice_b_seconds", "x", {"le"}); }),
      "");
  EXPECT_NE(registration_error([&] {
              (void)registry.histogram("sluice_size", "x", HistogramOptions::bytes());
            }).find("_bytes"),
            std::string::npos);
  Registry strict(RegistryOptions{.required_prefix = "sluice_"});
  EXPECT_NE(registration_error([&] { (void)strict.gauge("other_depth", "x"); }).find("sluice_"),
            std::string::npos);
  EXPECT_EQ(registry.stats().families, 0u);
}

TEST(Family, ChildrenAreStableAndLabelled) {
  Registry registry;
  auto& requests =
      registry.counter_family("sluice_http_requests_total", "Requests.", {"method", "code"});
  Counter& get_ok = requests.with({"GET", "200"});
  Counter& post_err = requests.with({"POST", "500"});
  EXPECT_NE(&get_ok, &post_err);
  EXPECT_EQ(&requests.with({"GET", "200"}), &get_ok);
  const std::vector<std::string> values{"GET", "200"};
  EXPECT_EQ(&requests.with(values), &get_ok);
  get_ok.inc(3);
  post_err.inc();
  const auto families = registry.collect();
  const FamilySnapshot* f = find(families, "sluice_http_requests_total");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->samples.size(), 2u);
  EXPECT_EQ(f->samples[0].labels[0], std::make_pair(std::string("method"), std::string("GET")));
  EXPECT_EQ(f->samples[0].value, 3.0);
  EXPECT_EQ(f->samples[1].labels[1], std::make_pair(std::string("code"), std::string("500")));
  EXPECT_EQ(requests.stats().children, 2u);
}

TEST(Family, CardinalityBoundSendsNewLabelSetsToOverflow) {
  Registry registry;
  auto& by_user = registry.counter_family("sluice_user_requests_total", "x", {"user"},
                                          FamilyOptions{.max_children = 3});
  by_user.with({"a"}).inc();
  by_user.with({"b"}).inc();
  Counter& c = by_user.with({"c"});  // third child: the overflow one takes the last slot
  Counter& d = by_user.with({"d"});
  EXPECT_EQ(&c, &d);
  c.inc(2);
  EXPECT_EQ(by_user.stats().children, 3u);
  EXPECT_EQ(by_user.stats().overflowed, 2u);
  const auto families = registry.collect();
  const auto& samples = find(families, "sluice_user_requests_total")->samples;
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].labels[0].second, kOverflowLabelValue);
  EXPECT_EQ(samples[0].value, 2.0);
}

struct FakeComponentStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  int64_t entries = 0;
};

TEST(Registry, CollectorsExportComponentStats) {
  Registry registry;
  FakeComponentStats stats{10, 4, 7};
  auto handle = registry.add_collector("fake_cache", [&stats](Writer& w) {
    w.counter("sluice_cache_lookups_total", "Lookups by result.", {{"result", "hit"}},
              static_cast<double>(stats.hits))
        .counter("sluice_cache_lookups_total", "Lookups by result.", {{"result", "miss"}},
                 static_cast<double>(stats.misses))
        .gauge("sluice_cache_entries", "Entries held.", {}, static_cast<double>(stats.entries));
  });
  auto families = registry.collect();
  const FamilySnapshot* lookups = find(families, "sluice_cache_lookups_total");
  ASSERT_NE(lookups, nullptr);
  EXPECT_EQ(lookups->type, MetricType::kCounter);
  ASSERT_EQ(lookups->samples.size(), 2u);
  EXPECT_EQ(lookups->samples[1].value, 4.0);
  EXPECT_EQ(find(families, "sluice_cache_entries")->samples[0].value, 7.0);

  stats.hits = 11;  // read at scrape time, not at registration
  families = registry.collect();
  EXPECT_EQ(find(families, "sluice_cache_lookups_total")->samples[0].value, 11.0);
  EXPECT_EQ(registry.stats().collectors, 1u);

  handle.reset();
  EXPECT_EQ(registry.stats().collectors, 0u);
  EXPECT_EQ(find(registry.collect(), "sluice_cache_entries"), nullptr);
}

TEST(Registry, CollectorHandleMovesOwnership) {
  Registry registry;
  CollectorHandle outer;
  {
    CollectorHandle inner =
        registry.add_collector("x", [](Writer& w) { w.gauge("sluice_x", "x", {}, 1); });
    outer = std::move(inner);
    EXPECT_FALSE(inner.active());  // NOLINT(bugprone-use-after-move): checking the moved-from
  }
  EXPECT_TRUE(outer.active());
  EXPECT_EQ(registry.stats().collectors, 1u);
  outer.reset();
  EXPECT_EQ(registry.stats().collectors, 0u);
}

TEST(Registry, BadCollectorSeriesAreDroppedAndCounted) {
  Registry registry;
  registry.gauge("sluice_depth", "Depth.").set(3);
  auto handle = registry.add_collector("broken", [](Writer& w) {
    w.counter("sluice_bad_name", "no _total", {}, 1)                    // invalid name
        .counter("sluice_depth_total", "ok", {}, 1)                     // fine
        .counter("sluice_depth_total", "ok", {}, 2)                     // same labels again
        .gauge("sluice_depth", "Depth.", {{"le", "1"}}, 1)              // reserved label
        .counter("sluice_depth", "Depth.", {}, 1)                       // type conflict
        .gauge("sluice_temperature", "t", {{"a", "1"}, {"a", "2"}}, 1)  // label twice
        .counter("sluice_negative_total", "n", {}, -1);                 // negative counter
  });
  const auto families = registry.collect();
  EXPECT_EQ(find(families, "sluice_bad_name"), nullptr);
  ASSERT_NE(find(families, "sluice_depth_total"), nullptr);
  EXPECT_EQ(find(families, "sluice_depth_total")->samples.size(), 1u);
  EXPECT_EQ(find(families, "sluice_depth")->samples.size(), 1u);
  EXPECT_EQ(find(families, "sluice_temperature"), nullptr);
  const auto stats = registry.stats();
  EXPECT_EQ(stats.rejected_series, 6u);
  EXPECT_NE(stats.last_rejection.find("broken"), std::string::npos) << stats.last_rejection;
  EXPECT_EQ(stats.scrapes, 1u);
}

TEST(Registry, ResetZeroesRegisteredMetrics) {
  Registry registry;
  Counter& c = registry.counter("sluice_a_total", "a");
  Histogram& h = registry.histogram("sluice_b_seconds", "b");
  c.inc(5);
  h.record(0.1);
  registry.reset();
  EXPECT_EQ(c.value(), 0u);
  EXPECT_EQ(h.count(), 0u);
}

TEST(Registry, ScrapesWhileRecordingAndRegistering) {
  Registry registry;
  auto& family = registry.histogram_family("sluice_op_seconds", "Ops.", {"op"});
  std::barrier start(3);
  std::thread recorder([&] {
    start.arrive_and_wait();
    Histogram& h = family.with({"read"});
    for (int i = 0; i < 20'000; ++i) h.record(Duration(1000 + i));
  });
  std::thread labeller([&] {
    start.arrive_and_wait();
    for (int i = 0; i < 200; ++i) family.with({"op" + std::to_string(i % 50)}).record(1e-3);
  });
  start.arrive_and_wait();
  uint64_t scraped = 0;
  for (int i = 0; i < 20; ++i) {
    for (const auto& f : registry.collect()) scraped += f.samples.size();
  }
  EXPECT_LE(scraped, 20u * 51u);
  recorder.join();
  labeller.join();
  EXPECT_EQ(family.with({"read"}).count(), 20'000u);
  EXPECT_EQ(family.stats().children, 51u);
  EXPECT_EQ(registry.stats().rejected_series, 0u);
}

}  // namespace
}  // namespace sluice::metrics
