// Small JSON writing helpers shared by the exposition and the profiler report.
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace sluice::metrics::internal {

// Appends `text` as a JSON string literal (quotes, escapes, \u00XX for control bytes).
void append_json_string(std::string& out, std::string_view text);
// Appends a number in shortest round-trip form; non-finite values become null.
void append_json_number(std::string& out, double value);

}  // namespace sluice::metrics::internal
