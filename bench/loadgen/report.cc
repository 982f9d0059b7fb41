// Report: the human table and the JSON form of a run.
#include <boost/json.hpp>
#include <cstdio>
#include <numeric>

#include "bench/loadgen/loadgen.h"

namespace sluice::loadgen {
namespace {

boost::json::object latency_json(const metrics::HistogramSnapshot& h) {
  boost::json::object o;
  o["count"] = h.count();
  o["mean_ms"] = h.mean() * 1e3;
  o["p50_ms"] = h.p50() * 1e3;
  o["p90_ms"] = h.p90() * 1e3;
  o["p99_ms"] = h.p99() * 1e3;
  o["p999_ms"] = h.p999() * 1e3;
  o["max_ms"] = h.max() * 1e3;
  o["min_ms"] = h.min() * 1e3;
  return o;
}

void print_latency(const char* name, const metrics::HistogramSnapshot& h) {
  std::printf("  %-13s p50 %9.3f ms  p90 %9.3f ms  p99 %9.3f ms  p99.9 %9.3f ms  max %9.3f ms\n",
              name, h.p50() * 1e3, h.p90() * 1e3, h.p99() * 1e3, h.p999() * 1e3, h.max() * 1e3);
}

}  // namespace

uint64_t Report::error_count() const {
  return std::accumulate(errors.begin(), errors.end(), uint64_t{0},
                         [](uint64_t sum, const auto& kv) { return sum + kv.second; });
}

boost::json::value Report::to_json() const {
  boost::json::object o;
  o["mode"] = mode;
  o["label"] = label;
  o["sent"] = sent;
  o["completed"] = completed;
  o["errors_total"] = error_count();
  boost::json::object errs;
  for (const auto& [kind, n] : errors) errs[kind] = n;
  o["errors"] = std::move(errs);
  boost::json::object st;
  for (const auto& [status, n] : statuses) st[std::to_string(status)] = n;
  o["statuses"] = std::move(st);
  boost::json::object xc;
  for (const auto& [value, n] : x_cache) xc[value.empty() ? "(none)" : value] = n;
  o["x_cache"] = std::move(xc);
  o["elapsed_s"] = elapsed_s;
  o["body_bytes"] = body_bytes;
  o["latency"] = latency_json(latency);
  if (service_time) o["service_time"] = latency_json(*service_time);
  for (const auto& [k, v] : extra) o[k] = v;
  return o;
}

void Report::print() const {
  std::printf("%s%s%s: sent %llu, completed %llu, errors %llu, %.3f s\n", mode.c_str(),
              label.empty() ? "" : " ", label.c_str(), static_cast<unsigned long long>(sent),
              static_cast<unsigned long long>(completed),
              static_cast<unsigned long long>(error_count()), elapsed_s);
  std::printf("  statuses:");
  for (const auto& [status, n] : statuses) {
    std::printf(" %d=%llu", status, static_cast<unsigned long long>(n));
  }
  for (const auto& [kind, n] : errors) {
    std::printf(" %s=%llu", kind.c_str(), static_cast<unsigned long long>(n));
  }
  std::printf("\n");
  if (!x_cache.empty() && !(x_cache.size() == 1 && x_cache.begin()->first.empty())) {
    std::printf("  X-Cache:");
    for (const auto& [value, n] : x_cache) {
      std::printf(" %s=%llu", value.empty() ? "(none)" : value.c_str(),
                  static_cast<unsigned long long>(n));
    }
    std::printf("\n");
  }
  print_latency("latency", latency);
  if (service_time) print_latency("service time", *service_time);
  for (const auto& [k, v] : extra) {
    if (v.is_double()) {
      std::printf("  %-13s %.3f\n", std::string(k).c_str(), v.as_double());
    } else if (!v.is_object() && !v.is_array()) {
      std::printf("  %-13s %s\n", std::string(k).c_str(), boost::json::serialize(v).c_str());
    }
  }
}

}  // namespace sluice::loadgen
