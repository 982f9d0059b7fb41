#include "sluice/base/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <system_error>

namespace sluice::base {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Reads a non-negative decimal number with an optional fraction from the front of `s`.
bool take_number(std::string_view& s, double& out) {
  size_t i = 0;
  double value = 0;
  bool digits = false;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    value = value * 10 + (s[i] - '0');
    ++i;
    digits = true;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    double scale = 0.1;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      value += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
      digits = true;
    }
  }
  if (!digits) return false;
  out = value;
  s.remove_prefix(i);
  return true;
}

std::string_view take_unit(std::string_view& s) {
  size_t i = 0;
  while (i < s.size() && !std::isdigit(static_cast<unsigned char>(s[i])) && s[i] != '.') ++i;
  std::string_view unit = s.substr(0, i);
  s.remove_prefix(i);
  return trim(unit);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

boost::system::error_code invalid() { return std::make_error_code(std::errc::invalid_argument); }

}  // namespace

boost::system::result<Duration> parse_duration(std::string_view text) {
  std::string_view s = trim(text);
  if (s.empty()) return invalid();
  if (s == "0") return Duration::zero();
  double total_ns = 0;
  while (!s.empty()) {
    double value = 0;
    if (!take_number(s, value)) return invalid();
    const std::string_view unit = take_unit(s);
    double scale = 0;
    if (unit == "ns") {
      scale = 1;
    } else if (unit == "us" || unit == "\xC2\xB5s") {
      scale = 1e3;
    } else if (unit == "ms") {
      scale = 1e6;
    } else if (unit == "s") {
      scale = 1e9;
    } else if (unit == "m") {
      scale = 60e9;
    } else if (unit == "h") {
      scale = 3600e9;
    } else if (unit == "d") {
      scale = 86400e9;
    } else {
      return invalid();
    }
    total_ns += value * scale;
  }
  if (total_ns > static_cast<double>(std::numeric_limits<int64_t>::max())) {
    return std::make_error_code(std::errc::result_out_of_range);
  }
  return Duration(static_cast<int64_t>(std::llround(total_ns)));
}

boost::system::result<uint64_t> parse_size(std::string_view text) {
  std::string_view s = trim(text);
  double value = 0;
  if (!take_number(s, value)) return invalid();
  const std::string_view unit = trim(s);
  double scale = 0;
  struct Unit {
    std::string_view name;
    double scale;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},
      {"b", 1},
      {"k", 1e3},
      {"kb", 1e3},
      {"kib", 1024.0},
      {"m", 1e6},
      {"mb", 1e6},
      {"mib", 1048576.0},
      {"g", 1e9},
      {"gb", 1e9},
      {"gib", 1073741824.0},
      {"t", 1e12},
      {"tb", 1e12},
      {"tib", 1099511627776.0},
  };
  for (const auto& u : kUnits) {
    if (iequals(unit, u.name)) {
      scale = u.scale;
      break;
    }
  }
  if (scale == 0) return invalid();
  const double bytes = value * scale;
  if (bytes >= 18446744073709551615.0) return std::make_error_code(std::errc::result_out_of_range);
  return static_cast<uint64_t>(std::llround(bytes));
}

std::string format_duration(Duration d) {
  const double ns = static_cast<double>(d.count());
  char buf[48];
  if (std::fabs(ns) < 1e3) {
    std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  } else if (std::fabs(ns) < 1e6) {
    std::snprintf(buf, sizeof buf, "%.3g us", ns / 1e3);
  } else if (std::fabs(ns) < 1e9) {
    std::snprintf(buf, sizeof buf, "%.3g ms", ns / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g s", ns / 1e9);
  }
  return buf;
}

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* kNames[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  size_t i = 0;
  while (v >= 1024 && i + 1 < std::size(kNames)) {
    v /= 1024;
    ++i;
  }
  char buf[48];
  if (i == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kNames[i]);
  }
  return buf;
}

}  // namespace sluice::base
