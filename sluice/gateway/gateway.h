// `Gateway`: the `sluice serve` daemon in one object. It owns the public listener (an
// `http::Server` whose handler is the `Proxy`), the admin listener (JSON admin API and
// Prometheus `/metrics`), the access log and the metrics registry, and runs them until a
// stop.
//
// Start-up: `start()` opens the access log (a clear error naming the file if it cannot),
// binds both listeners (refusing an admin listener off loopback without a token) and
// starts the workers. Shutdown (`stop()`, or SIGTERM/SIGINT in `run_until_signal`): both
// listeners stop accepting, in-flight requests get `server.drain_timeout` to finish, then
// the upstream connections are closed and the access log writes everything queued; nothing
// answered goes unlogged. SIGHUP reloads the config file's run-time knobs.
//
// Thread-safety: `start`, `wait`, `run_until_signal` from one owning thread; `stop` and the
// accessors from any thread.
#pragma once

#include <atomic>
#include <boost/json/object.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "sluice/gateway/access_log.h"
#include "sluice/gateway/config.h"
#include "sluice/gateway/proxy.h"
#include "sluice/http/server.h"
#include "sluice/metrics/registry.h"

namespace sluice::gateway {

class Admin;

class Gateway {
 public:
  explicit Gateway(Config config);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Opens the access log and binds the listeners. Returns "" on success, else a sentence
  // saying what failed (for a person; `sluice serve` prints it and exits 1).
  [[nodiscard]] std::string start();
  // The bound ports (after a successful start); admin 0 when disabled.
  [[nodiscard]] uint16_t port() const noexcept;
  [[nodiscard]] uint16_t admin_port() const noexcept;
  // Stops accepting and drains (see the header comment); returns at once; idempotent.
  void stop();
  // Returns when both listeners have stopped, the connections are closed and the access log
  // is written.
  void wait();
  // Blocks SIGTERM, SIGINT and SIGHUP in every thread the gateway starts (call before
  // `start`), then, in `run_until_signal`, waits for them: SIGTERM/SIGINT stop and drain,
  // SIGHUP reloads `config_path` (run-time knobs only). Returns the exit code (0).
  static void block_signals();
  int run_until_signal(const std::string& config_path);

  [[nodiscard]] Proxy& proxy() noexcept { return *proxy_; }
  [[nodiscard]] metrics::Registry& registry() noexcept { return registry_; }
  [[nodiscard]] AccessLog* access_log() noexcept { return access_log_.get(); }
  [[nodiscard]] http::ServerStats server_stats() const;
  [[nodiscard]] std::shared_ptr<const Config> config() const { return proxy_->config(); }
  // Validates `patch` (see `apply_runtime_patch`) and installs it; "" or the reason.
  [[nodiscard]] std::string patch_config(const boost::json::value& patch);
  // Reloads the run-time knobs from `path`; "" or the reason.
  [[nodiscard]] std::string reload(const std::string& path);
  // /admin/stats.
  [[nodiscard]] boost::json::object stats_json() const;
  // Seconds since start.
  [[nodiscard]] double uptime_seconds() const;

 private:
  void collect(metrics::Writer& writer) const;
  // Every `kMaintenanceInterval`: idle upstream connections past their idle time or age are
  // closed (on each worker's loop) and expired cache entries are swept.
  void maintain();

  Config initial_;
  metrics::Registry registry_;
  std::unique_ptr<AccessLog> access_log_;
  std::unique_ptr<Proxy> proxy_;
  std::unique_ptr<Admin> admin_;
  // Servers after the proxy: destroyed first, so no handler outlives the proxy.
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<http::Server> admin_server_;
  metrics::CollectorHandle collector_;
  TimePoint started_at_{};
  std::atomic<bool> stopped_{false};
  bool waited_ = false;
  std::mutex config_mu_;  // serialises PUT /admin/config and SIGHUP reloads
  std::mutex maintenance_mu_;
  std::condition_variable maintenance_cv_;
  std::thread maintenance_;
};

// Resident set size of this process in bytes (from /proc/self/statm); 0 if unknown.
[[nodiscard]] uint64_t resident_bytes();

}  // namespace sluice::gateway
