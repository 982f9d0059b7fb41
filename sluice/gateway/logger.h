// The gateway's operational log: one line per event on stderr, with a UTC timestamp and a
// level ("2026-11-23T14:07:30.123Z warn slow request ..."). Request records go to the access
// log (access_log.h), not here; this is for start-up, shutdown, slow requests and failures.
//
// Thread-safety: `log` from any thread (one write(2) per line, so lines never interleave);
// the level is a relaxed atomic, changed at run time through the admin API.
// Cost: a level check when the line is filtered out; otherwise formatting and one syscall.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::gateway {

enum class LogLevel : int {
  debug = 0,  // per-request detail
  info = 1,   // start, stop, configuration changes
  warn = 2,   // slow requests, refused work, failing sinks
  error = 3,  // failures that lose function
};

[[nodiscard]] std::optional<LogLevel> parse_log_level(std::string_view text) noexcept;
[[nodiscard]] std::string_view to_string(LogLevel level) noexcept;

void set_log_level(LogLevel level) noexcept;
[[nodiscard]] LogLevel log_level() noexcept;
[[nodiscard]] inline bool log_enabled(LogLevel level) noexcept { return level >= log_level(); }
// Writes one line at `level` if enabled.
void log(LogLevel level, std::string_view message);

}  // namespace sluice::gateway
