// The processes the end-to-end tests run: `sluice sim-upstream` and `sluice serve`, each
// started with port 0 and a ready file in the test's directory, and stopped with SIGTERM.
//
// Thread-safety: none; one test thread owns each process. All waits are bounded.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/e2e/process.h"

namespace sluice::e2e {

// Bound on waiting for a ready file.
inline constexpr std::chrono::milliseconds kReadyBound{10000};
// Bound on waiting for a process to exit after SIGTERM.
inline constexpr std::chrono::milliseconds kExitBound{15000};

// A running process that announced its ports in a ready file.
struct Service {
  ChildProcess child;
  uint16_t port = 0;        // "listen" of the ready file; 0 when the start failed
  uint16_t admin_port = 0;  // "admin" of the ready file, when present
};

// `sluice sim-upstream --listen 127.0.0.1:0 --workers 2 --ready-file ... <extra>`. On failure
// a gtest failure is recorded and `port` is 0.
[[nodiscard]] Service start_sim_upstream(const TestDir& dir, std::vector<std::string> extra = {});

// `sluice serve --ready-file <dir>/<name>.ready.json <args>`. On failure a gtest failure is
// recorded (with the child's stderr) and `port` is 0.
[[nodiscard]] Service start_gateway(const TestDir& dir, const std::vector<std::string>& args,
                                    const std::string& name = "gateway");

// Sends SIGTERM and waits for the exit; records a failure unless it exits with code 0.
void stop_service(Service& service, const std::string& what);

// GET /__sim/stats of the sim upstream at `port` (empty object on failure).
[[nodiscard]] boost::json::object sim_stats(uint16_t port);
// Requests counted for `path` in `stats` (0 when absent).
[[nodiscard]] uint64_t path_count(const boost::json::object& stats, const std::string& path);
// POST /__sim/reset; false on failure.
bool reset_sim(uint16_t port);

// Whether `sluice <command> --help` exits 0 (the command exists in this build); when not,
// `why` says what happened. Each answer is computed once per process.
[[nodiscard]] bool command_available(const std::string& command, std::string* why);

}  // namespace sluice::e2e
