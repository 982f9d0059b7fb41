#include "sluice/metrics/exposition.h"

#include <charconv>
#include <cmath>

#include "sluice/metrics/internal/json.h"

namespace sluice::metrics {
namespace {

void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[32];
    const auto result = std::to_chars(buf, buf + sizeof(buf), value);
    out.append(buf, result.ptr);
  }
}

void append_help(std::string& out, std::string_view text) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
}

void append_label_value(std::string& out, std::string_view text) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
}

// `name{a="x",b="y"[,le="bound"]} value`
void append_series(std::string& out, std::string_view name, std::string_view suffix,
                   const Sample& sample, const std::string* le, double value) {
  out.append(name).append(suffix);
  if (!sample.labels.empty() || le != nullptr) {
    out.push_back('{');
    bool first = true;
    for (const auto& [label, label_value] : sample.labels) {
      if (!first) out.push_back(',');
      first = false;
      out.append(label).append("=\"");
      append_label_value(out, label_value);
      out.push_back('"');
    }
    if (le != nullptr) {
      if (!first) out.push_back(',');
      out.append("le=\"").append(*le).push_back('"');
    }
    out.push_back('}');
  }
  out.push_back(' ');
  append_number(out, value);
  out.push_back('\n');
}

}  // namespace

namespace internal {

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (u < 0x20) {
      out += "\\u00";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void append_json_number(std::string& out, double value) {
  if (std::isfinite(value)) {
    append_number(out, value);
  } else {
    out += "null";
  }
}

}  // namespace internal

using internal::append_json_number;
using internal::append_json_string;

std::string format_number(double value) {
  std::string out;
  append_number(out, value);
  return out;
}

std::string format_prometheus(std::span<const FamilySnapshot> families) {
  std::string out;
  for (const FamilySnapshot& family : families) {
    out.append("# HELP ").append(family.name).push_back(' ');
    append_help(out, family.help);
    out.append("\n# TYPE ").append(family.name).push_back(' ');
    out.append(type_name(family.type)).push_back('\n');
    for (const Sample& sample : family.samples) {
      if (family.type != MetricType::kHistogram || !sample.histogram) {
        append_series(out, family.name, "", sample, nullptr, sample.value);
        continue;
      }
      const HistogramSnapshot& h = *sample.histogram;
      const std::vector<uint64_t> counts = h.export_counts();
      for (size_t i = 0; i < counts.size(); ++i) {
        const std::string le = format_number(h.export_bounds()[i]);
        append_series(out, family.name, "_bucket", sample, &le, static_cast<double>(counts[i]));
      }
      const std::string inf = "+Inf";
      append_series(out, family.name, "_bucket", sample, &inf, static_cast<double>(h.count()));
      append_series(out, family.name, "_sum", sample, nullptr, h.sum());
      append_series(out, family.name, "_count", sample, nullptr, static_cast<double>(h.count()));
    }
  }
  return out;
}

std::string format_json(std::span<const FamilySnapshot> families) {
  std::string out = "[";
  bool first_family = true;
  for (const FamilySnapshot& family : families) {
    if (!first_family) out.push_back(',');
    first_family = false;
    out += "\n{\"name\":";
    append_json_string(out, family.name);
    out += ",\"type\":";
    append_json_string(out, type_name(family.type));
    out += ",\"help\":";
    append_json_string(out, family.help);
    out += ",\"series\":[";
    bool first_sample = true;
    for (const Sample& sample : family.samples) {
      if (!first_sample) out.push_back(',');
      first_sample = false;
      out += "{\"labels\":{";
      bool first_label = true;
      for (const auto& [label, value] : sample.labels) {
        if (!first_label) out.push_back(',');
        first_label = false;
        append_json_string(out, label);
        out.push_back(':');
        append_json_string(out, value);
      }
      out.push_back('}');
      if (sample.histogram) {
        const HistogramSnapshot& h = *sample.histogram;
        const std::pair<const char*, double> fields[] = {{"count", static_cast<double>(h.count())},
                                                         {"sum", h.sum()},
                                                         {"min", h.min()},
                                                         {"max", h.max()},
                                                         {"mean", h.mean()},
                                                         {"p50", h.p50()},
                                                         {"p90", h.p90()},
                                                         {"p99", h.p99()},
                                                         {"p999", h.p999()}};
        for (const auto& [key, value] : fields) {
          out += ",\"";
          out += key;
          out += "\":";
          append_json_number(out, value);
        }
      } else {
        out += ",\"value\":";
        append_json_number(out, sample.value);
      }
      out.push_back('}');
    }
    out += "]}";
  }
  out += first_family ? "]\n" : "\n]\n";
  return out;
}

}  // namespace sluice::metrics
