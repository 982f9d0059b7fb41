// Parsing and formatting of the human units used in configuration and reports:
// durations ("250ms", "1.5s", "2m", "1h30m") and byte sizes ("512", "64KiB", "1.5MB", "2GiB").
//
// Parsing returns a `boost::system::result`: an invalid string is an expected failure
// (`std::errc::invalid_argument`, or `result_out_of_range` on overflow), for the config
// layer to report with file, line and key. Thread-safety: pure functions.
#pragma once

#include <boost/system/result.hpp>
#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/base/clock.h"

namespace sluice::base {

// Accepts a sequence of <number><unit> terms, units ns, us (or µs), ms, s, m, h, d; the number
// may have a fraction. A bare "0" is zero. Whitespace around the string is ignored.
[[nodiscard]] boost::system::result<Duration> parse_duration(std::string_view text);

// Accepts <number>[unit] with units B, K/KB (1000), KiB (1024), M/MB, MiB, G/GB, GiB, T/TB,
// TiB, case-insensitive. A bare number is bytes.
[[nodiscard]] boost::system::result<uint64_t> parse_size(std::string_view text);

// "1.50 ms", "250 us", "3.2 s": three significant digits, for reports.
[[nodiscard]] std::string format_duration(Duration d);
// "1.5 MiB", "512 B": binary units, for reports.
[[nodiscard]] std::string format_bytes(uint64_t bytes);

}  // namespace sluice::base
