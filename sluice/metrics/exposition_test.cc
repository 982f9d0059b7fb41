#include "sluice/metrics/exposition.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <set>
#include <sstream>

#include "sluice/metrics/registry.h"

namespace sluice::metrics {
namespace {

// A small checker of Prometheus text format 0.0.4: returns "" when `text` is well formed,
// else the first problem with its line number. Checks HELP/TYPE placement, names, label
// syntax and escapes, numbers, and for histograms: ascending `le`, cumulative buckets, a
// final +Inf bucket equal to `_count`.
std::string check_exposition(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  std::map<std::string, std::string> types;  // family -> type
  std::set<std::string> seen_series;
  std::string current;  // family of the last TYPE line
  // Histogram state per series (labels without le).
  std::map<std::string, std::pair<double, double>> last_bucket;  // key -> (le, count)
  std::map<std::string, double> inf_bucket;
  auto fail = [&](const std::string& why) { return "line " + std::to_string(n) + ": " + why; };
  auto valid_name = [](std::string_view s) {
    if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) {
      return false;
    }
    for (const char c : s) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':')) return false;
    }
    return true;
  };
  auto parse_number = [](const std::string& s, double& out) {
    if (s == "+Inf") {
      out = INFINITY;
      return true;
    }
    if (s == "-Inf") {
      out = -INFINITY;
      return true;
    }
    if (s == "NaN") {
      out = NAN;
      return true;
    }
    size_t used = 0;
    try {
      out = std::stod(s, &used);
    } catch (...) {
      return false;
    }
    return used == s.size();
  };
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) return fail("empty line");
    if (line.starts_with("# HELP ")) {
      const std::string rest = line.substr(7);
      const std::string name = rest.substr(0, rest.find(' '));
      if (!valid_name(name)) return fail("bad HELP name");
      for (size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] == '\\' &&
            (i + 1 == rest.size() || (rest[i + 1] != '\\' && rest[i + 1] != 'n'))) {
          return fail("bad escape in HELP");
        }
        if (rest[i] == '\\') ++i;
      }
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      std::istringstream words(line.substr(7));
      std::string name, type, extra;
      words >> name >> type;
      if (words >> extra) return fail("trailing words after TYPE");
      if (!valid_name(name)) return fail("bad TYPE name");
      if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
          type != "untyped") {
        return fail("unknown type " + type);
      }
      if (types.count(name)) return fail("second TYPE for " + name);
      types[name] = type;
      current = name;
      continue;
    }
    if (line[0] == '#') return fail("unknown comment");
    // name{labels} value
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    const std::string name = line.substr(0, i);
    if (!valid_name(name)) return fail("bad metric name '" + name + "'");
    std::string family = name;
    if (types.count(name) == 0) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (name.ends_with(suffix)) family = name.substr(0, name.size() - std::strlen(suffix));
      }
    }
    if (family != current) return fail("sample of '" + family + "' outside its TYPE block");
    if (types[family] == "histogram" && family == name) return fail("bare histogram sample");
    std::string key_without_le;
    std::string le;
    std::set<std::string> label_names;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (true) {
        if (i >= line.size()) return fail("unterminated labels");
        if (line[i] == '}') {
          ++i;
          break;
        }
        size_t j = i;
        while (j < line.size() && line[j] != '=') ++j;
        const std::string label = line.substr(i, j - i);
        if (!valid_name(label) || label.find(':') != std::string::npos) {
          return fail("bad label name '" + label + "'");
        }
        if (!label_names.insert(label).second) return fail("label twice");
        if (j + 1 >= line.size() || line[j + 1] != '"') return fail("label value not quoted");
        i = j + 2;
        std::string value;
        while (true) {
          if (i >= line.size()) return fail("unterminated label value");
          const char c = line[i];
          if (c == '"') break;
          if (c == '\\') {
            if (i + 1 >= line.size()) return fail("dangling escape");
            const char e = line[i + 1];
            if (e == '\\') {
              value += '\\';
            } else if (e == '"') {
              value += '"';
            } else if (e == 'n') {
              value += '\n';
            } else {
              return fail("bad escape in label value");
            }
            i += 2;
            continue;
          }
          value += c;
          ++i;
        }
        ++i;  // closing quote
        if (label == "le") {
          le = value;
        } else {
          key_without_le += label + "=" + value + ",";
        }
        if (i < line.size() && line[i] == ',') ++i;
      }
    }
    if (i >= line.size() || line[i] != ' ') return fail("missing space before value");
    double value = 0;
    if (!parse_number(line.substr(i + 1), value)) return fail("bad value");
    const std::string series = name + "{" + key_without_le + "le=" + le + "}";
    if (!seen_series.insert(series).second) return fail("duplicate series " + series);
    if (types[family] == "histogram" && name == family + "_bucket") {
      double bound = 0;
      if (le.empty() || !parse_number(le, bound)) return fail("bucket without a numeric le");
      auto it = last_bucket.find(key_without_le);
      if (it != last_bucket.end()) {
        if (!(bound > it->second.first)) return fail("le not ascending");
        if (value < it->second.second) return fail("buckets not cumulative");
      }
      last_bucket[key_without_le] = {bound, value};
      if (std::isinf(bound)) inf_bucket[family + key_without_le] = value;
    }
    if (types[family] == "histogram" && name == family + "_count") {
      auto it = inf_bucket.find(family + key_without_le);
      if (it == inf_bucket.end()) return fail("_count before the +Inf bucket");
      if (it->second != value) return fail("+Inf bucket differs from _count");
      last_bucket.erase(key_without_le);
    }
  }
  return {};
}

TEST(Exposition, CheckerCatchesBrokenText) {
  EXPECT_EQ(check_exposition("# HELP a_total x\n# TYPE a_total counter\na_total 1\n"), "");
  EXPECT_NE(check_exposition("a_total 1\n"), "");  // no TYPE
  EXPECT_NE(check_exposition("# TYPE a gauge\na{x=\"\\q\"} 1\n"), "");
  EXPECT_NE(check_exposition("# TYPE a gauge\na{x=\"1} 1\n"), "");
  EXPECT_NE(check_exposition("# TYPE a gauge\na 1x\n"), "");
  EXPECT_NE(check_exposition("# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"2\"} 4\n"),
            "");
  EXPECT_NE(check_exposition("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 5\nh_count 4\n"), "");
}

TEST(Exposition, GoldenCounterAndGauge) {
  Registry registry;
  registry.counter_family("sluice_http_requests_total", "Requests served.", {"method", "code"})
      .with({"GET", "200"})
      .inc(7);
  registry.gauge("sluice_pool_utilisation_ratio", "Share of connections in use.").set(0.25);
  registry.int_gauge("sluice_queue_depth", "Items waiting.\nSecond line \\ backslash.").set(-3);
  const std::string text = registry.prometheus();
  EXPECT_EQ(text,
            "# HELP sluice_http_requests_total Requests served.\n"
            "# TYPE sluice_http_requests_total counter\n"
            "sluice_http_requests_total{method=\"GET\",code=\"200\"} 7\n"
            "# HELP sluice_pool_utilisation_ratio Share of connections in use.\n"
            "# TYPE sluice_pool_utilisation_ratio gauge\n"
            "sluice_pool_utilisation_ratio 0.25\n"
            "# HELP sluice_queue_depth Items waiting.\\nSecond line \\\\ backslash.\n"
            "# TYPE sluice_queue_depth gauge\n"
            "sluice_queue_depth -3\n");
  EXPECT_EQ(check_exposition(text), "") << text;
}

TEST(Exposition, GoldenHistogram) {
  Registry registry;
  HistogramOptions options = HistogramOptions::seconds();
  options.export_bounds = {0.001, 0.01, 0.1};
  Histogram& h = registry.histogram("sluice_upstream_seconds", "Upstream latency.", options);
  h.record(0.0005);
  h.record(0.002);
  h.record(0.002);
  h.record(0.05);
  h.record(3.0);
  const std::string text = registry.prometheus();
  EXPECT_EQ(text,
            "# HELP sluice_upstream_seconds Upstream latency.\n"
            "# TYPE sluice_upstream_seconds histogram\n"
            "sluice_upstream_seconds_bucket{le=\"0.001\"} 1\n"
            "sluice_upstream_seconds_bucket{le=\"0.01\"} 3\n"
            "sluice_upstream_seconds_bucket{le=\"0.1\"} 4\n"
            "sluice_upstream_seconds_bucket{le=\"+Inf\"} 5\n"
            "sluice_upstream_seconds_sum 3.0545\n"
            "sluice_upstream_seconds_count 5\n");
  EXPECT_EQ(check_exposition(text), "") << text;
}

TEST(Exposition, LabelValuesAreEscaped) {
  Registry registry;
  auto& f = registry.counter_family("sluice_paths_total", "Paths.", {"path"});
  f.with({"/a\"b\\c\nd"}).inc();
  f.with({"plain"}).inc(2);
  const std::string text = registry.prometheus();
  EXPECT_NE(text.find("sluice_paths_total{path=\"/a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos)
      << text;
  EXPECT_EQ(check_exposition(text), "") << text;
}

TEST(Exposition, FullScrapeParsesWithDefaultBounds) {
  Registry registry;
  auto& latency = registry.histogram_family("sluice_request_seconds", "Latency.", {"route"});
  for (int i = 1; i <= 1000; ++i) latency.with({"chat"}).record(i * 1e-4);
  latency.with({"embed"}).record(0.2);
  registry.histogram("sluice_body_bytes", "Body sizes.", HistogramOptions::bytes()).record(5000);
  registry.counter("sluice_errors_total", "Errors.");
  auto handle = registry.add_collector("c", [](Writer& w) {
    w.gauge("sluice_special", "Specials.", {{"kind", "nan"}}, std::nan(""))
        .gauge("sluice_special", "Specials.", {{"kind", "inf"}}, INFINITY);
  });
  const std::string text = registry.prometheus();
  EXPECT_EQ(check_exposition(text), "") << text;
  // 500 of the values are <= 0.05; an exported bound is exact to one log-linear bucket
  // (1/64 of the value), so the count lies between those <= 0.05 * (1 -+ 1/64).
  const std::string le = "sluice_request_seconds_bucket{route=\"chat\",le=\"0.05\"} ";
  const size_t at = text.find(le);
  ASSERT_NE(at, std::string::npos) << text;
  const int below = std::stoi(text.substr(at + le.size()));
  EXPECT_GE(below, 492);
  EXPECT_LE(below, 507);
  EXPECT_NE(text.find("sluice_special{kind=\"nan\"} NaN\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_special{kind=\"inf\"} +Inf\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_body_bytes_bucket{le=\"4096\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("sluice_body_bytes_bucket{le=\"16384\"} 1\n"), std::string::npos);
}

TEST(Exposition, JsonHasOneObjectPerFamilyWithQuantiles) {
  Registry registry;
  auto& latency = registry.histogram_family("sluice_request_seconds", "Latency.", {"route"});
  for (int i = 1; i <= 1000; ++i) latency.with({"chat"}).record(i * 1e-3);
  registry.counter_family("sluice_x_total", "Quote \" and \\ and \x01.", {"k"})
      .with({"v\"1"})
      .inc(3);
  auto handle = registry.add_collector(
      "c", [](Writer& w) { w.gauge("sluice_special", "s", {}, std::nan("")); });
  const std::string text = registry.json();
  const boost::json::value doc = boost::json::parse(text);
  const auto& families = doc.as_array();
  ASSERT_EQ(families.size(), 3u);
  const auto& hist = families[0].as_object();
  EXPECT_EQ(hist.at("name").as_string(), "sluice_request_seconds");
  EXPECT_EQ(hist.at("type").as_string(), "histogram");
  const auto& series = hist.at("series").as_array()[0].as_object();
  EXPECT_EQ(series.at("labels").as_object().at("route").as_string(), "chat");
  EXPECT_EQ(series.at("count").to_number<double>(), 1000.0);
  EXPECT_NEAR(series.at("p50").to_number<double>(), 0.5, 0.005);
  EXPECT_NEAR(series.at("p99").to_number<double>(), 0.99, 0.0099);
  EXPECT_NEAR(series.at("p999").to_number<double>(), 0.999, 0.00999);
  EXPECT_NEAR(series.at("mean").to_number<double>(), 0.5005, 1e-9);
  EXPECT_EQ(series.at("min").to_number<double>(), 0.001);
  EXPECT_EQ(series.at("max").to_number<double>(), 1.0);
  EXPECT_TRUE(families[1].as_object().at("series").as_array()[0].as_object().at("value").is_null());
  const auto& counter = families[2].as_object();
  EXPECT_EQ(counter.at("help").as_string(), "Quote \" and \\ and \x01.");
  EXPECT_EQ(counter.at("series").as_array()[0].as_object().at("labels").as_object().at("k"),
            "v\"1");
  EXPECT_EQ(counter.at("series").as_array()[0].as_object().at("value").to_number<double>(), 3.0);
  EXPECT_EQ(format_json({}), "[]\n");
}

TEST(Exposition, NumbersRoundTrip) {
  EXPECT_EQ(format_number(0.1), "0.1");
  EXPECT_EQ(format_number(2.5e-06), "2.5e-06");
  EXPECT_EQ(format_number(100), "100");
  EXPECT_EQ(format_number(-INFINITY), "-Inf");
  EXPECT_EQ(std::stod(format_number(1.0 / 3)), 1.0 / 3);
}

}  // namespace
}  // namespace sluice::metrics
