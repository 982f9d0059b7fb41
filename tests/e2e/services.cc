#include "tests/e2e/services.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <boost/json.hpp>
#include <map>
#include <mutex>

#include "tests/e2e/http_probe.h"

namespace sluice::e2e {

namespace json = boost::json;
using std::chrono::milliseconds;

namespace {

uint16_t port_of(const json::value& info, std::string_view key) {
  const auto* v = info.as_object().if_contains(key);
  if (v == nullptr || !v->is_string()) return 0;
  const std::string s(v->as_string());
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) return 0;
  return static_cast<uint16_t>(std::stoul(s.substr(colon + 1)));
}

Service start(const TestDir& dir, std::vector<std::string> argv, const std::string& name,
              const std::string& ready) {
  Service service;
  std::string error;
  service.child = ChildProcess::spawn(argv, dir, name, &error);
  if (!service.child.running()) {
    ADD_FAILURE() << "cannot start " << name << ": " << error;
    return service;
  }
  auto info = service.child.wait_ready_file(ready, kReadyBound);
  if (!info) {
    const auto& status = service.child.exit_status();
    ADD_FAILURE() << name << " wrote no ready file "
                  << (status ? "(it exited: " + status->describe() + ")" : "(still running)")
                  << "; stderr:\n"
                  << service.child.stderr_text();
    return service;
  }
  const auto* pid = info->as_object().if_contains("pid");
  EXPECT_TRUE(pid && pid->is_int64() && pid->as_int64() == service.child.pid())
      << name << " ready file: " << json::serialize(*info);
  service.port = port_of(*info, "listen");
  service.admin_port = port_of(*info, "admin");
  EXPECT_NE(service.port, 0) << name << " ready file: " << json::serialize(*info);
  return service;
}

}  // namespace

Service start_sim_upstream(const TestDir& dir, std::vector<std::string> extra) {
  const std::string ready = dir.file("sim.ready.json");
  std::vector<std::string> argv = {sluice_binary(), "sim-upstream", "--listen",
                                   "127.0.0.1:0",   "--workers",    "2",
                                   "--ready-file",  ready};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return start(dir, std::move(argv), "sim", ready);
}

Service start_gateway(const TestDir& dir, const std::vector<std::string>& args,
                      const std::string& name) {
  const std::string ready = dir.file(name + ".ready.json");
  std::vector<std::string> argv = {sluice_binary(), "serve", "--ready-file", ready};
  argv.insert(argv.end(), args.begin(), args.end());
  return start(dir, std::move(argv), name, ready);
}

void stop_service(Service& service, const std::string& what) {
  if (!service.child.running()) {
    const auto& status = service.child.exit_status();
    ADD_FAILURE() << what << " is not running"
                  << (status ? " (" + status->describe() + ")" : std::string());
    return;
  }
  service.child.signal(SIGTERM);
  const auto status = service.child.wait_exit(kExitBound);
  if (!status) {
    ADD_FAILURE() << what << " did not exit within " << kExitBound.count()
                  << " ms of SIGTERM; stderr:\n"
                  << service.child.stderr_text();
    return;
  }
  EXPECT_TRUE(status->exited && status->code == 0)
      << what << " ended with " << status->describe() << "; stderr:\n"
      << service.child.stderr_text();
}

json::object sim_stats(uint16_t port) {
  const HttpResponse r = http_get(port, "/__sim/stats");
  EXPECT_EQ(r.status, 200u) << "sim stats: " << r.ec.message();
  if (r.status != 200) return {};
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

uint64_t path_count(const json::object& stats, const std::string& path) {
  const auto* by_path = stats.if_contains("by_path");
  if (by_path == nullptr || !by_path->is_object()) return 0;
  const auto* n = by_path->as_object().if_contains(path);
  return n ? n->to_number<uint64_t>() : 0;
}

bool reset_sim(uint16_t port) {
  HttpRequest reset;
  reset.method = "POST";
  reset.target = "/__sim/reset";
  return http_request(port, reset).status == 200;
}

bool command_available(const std::string& command, std::string* why) {
  static std::mutex mu;
  static std::map<std::string, std::pair<bool, std::string>> answers;
  std::lock_guard lock(mu);
  auto it = answers.find(command);
  if (it == answers.end()) {
    TestDir dir;
    const RunResult r =
        run_to_completion({sluice_binary(), command, "--help"}, dir, "probe", milliseconds(10000));
    // CLI11 answers `--help` with exit 0 even for an unknown subcommand (it prints the main
    // help), so the command exists only if its own usage line names it.
    const size_t usage = r.out.find("Usage:");
    const std::string usage_line = usage == std::string::npos
                                       ? std::string()
                                       : r.out.substr(usage, r.out.find('\n', usage) - usage);
    const bool named = usage_line.find(" " + command + " ") != std::string::npos ||
                       usage_line.ends_with(" " + command);
    const bool ok = !r.timed_out && r.status.exited && r.status.code == 0 && named;
    std::string reason;
    if (!ok) {
      reason = "`sluice " + command + " --help` " +
               (r.timed_out ? std::string("timed out") : r.status.describe()) +
               (named ? "" : ", and its usage line does not name the command") +
               " (not in this build yet)";
    }
    it = answers.emplace(command, std::make_pair(ok, reason)).first;
  }
  if (why) *why = it->second.second;
  return it->second.first;
}

}  // namespace sluice::e2e
