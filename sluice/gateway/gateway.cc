#include "sluice/gateway/gateway.h"

#include <pthread.h>
#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <csignal>
#include <fstream>

#include "sluice/gateway/admin.h"
#include "sluice/gateway/logger.h"
#include "sluice/metrics/writer.h"

namespace sluice::gateway {

namespace {

constexpr auto kMaintenanceInterval = std::chrono::seconds(15);

http::ServerOptions listener_options(const Config& c) {
  http::ServerOptions o;
  o.address = c.listener.address;
  o.port = c.listener.port;
  o.workers = c.server.workers == 0 ? http::default_worker_count() : c.server.workers;
  o.max_connections = c.listener.max_connections;
  o.max_header_bytes = c.listener.max_header_bytes;
  o.max_body_bytes = c.listener.max_body_bytes;
  o.header_timeout = c.listener.header_timeout;
  o.idle_timeout = c.listener.idle_timeout;
  o.body_timeout = c.listener.body_timeout;
  o.write_timeout = c.listener.write_timeout;
  o.drain_timeout = c.server.drain_timeout;
  return o;
}

bool is_loopback(const std::string& address) {
  boost::system::error_code ec;
  const auto a = boost::asio::ip::make_address(address, ec);
  return !ec && a.is_loopback();
}

}  // namespace

uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages_total = 0;
  uint64_t pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return pages_resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

Gateway::Gateway(Config config) : initial_(std::move(config)) {}

Gateway::~Gateway() {
  stop();
  wait();
}

std::string Gateway::start() {
  if (auto level = parse_log_level(initial_.log.level)) set_log_level(*level);
  if (initial_.admin.enabled && !is_loopback(initial_.admin.address) &&
      initial_.admin.token.empty()) {
    return "refusing to start: the admin listener binds " + initial_.admin.address +
           ", which is not loopback, and admin.token is empty";
  }
  if (initial_.log.access == "sqlite") {
    AccessLogOptions lo;
    lo.data_dir = initial_.server.data_dir;
    lo.batch_size = initial_.log.batch_size;
    lo.flush_interval = initial_.log.flush_interval;
    lo.queue_capacity = initial_.log.queue_capacity;
    auto opened = AccessLog::open(lo);
    if (!opened) return "cannot open the access log: " + opened.error();
    access_log_ = std::move(*opened);
  }
  const http::ServerOptions public_options = listener_options(initial_);
  if (auto why = public_options.validate(); !why.empty()) return "listener: " + why;
  proxy_ = std::make_unique<Proxy>(std::make_shared<const Config>(initial_), public_options.workers,
                                   access_log_.get(), registry_);
  server_ = std::make_unique<http::Server>(
      public_options, [proxy = proxy_.get()](http::Request& request, http::ResponseWriter& writer) {
        return proxy->handle(request, writer);
      });
  collector_ = registry_.add_collector("server", [this](metrics::Writer& w) { collect(w); });
  started_at_ = base::SteadyClock::instance().now();
  if (auto ec = server_->start()) {
    return "cannot listen on " + public_options.address + ":" +
           std::to_string(public_options.port) + ": " + ec.message();
  }
  if (initial_.admin.enabled) {
    admin_ = std::make_unique<Admin>(*this, initial_.admin.token);
    http::ServerOptions ao;
    ao.address = initial_.admin.address;
    ao.port = initial_.admin.port;
    ao.workers = 1;
    ao.max_connections = 256;
    ao.max_body_bytes = 1024 * 1024;
    ao.drain_timeout = std::chrono::seconds(2);
    admin_server_ = std::make_unique<http::Server>(
        ao, [admin = admin_.get()](http::Request& request, http::ResponseWriter& writer) {
          return admin->handle(request, writer);
        });
    if (auto ec = admin_server_->start()) {
      server_->stop();
      server_->wait();
      proxy_->release_connections();
      return "cannot listen (admin) on " + ao.address + ":" + std::to_string(ao.port) + ": " +
             ec.message();
    }
  }
  maintenance_ = std::thread([this] { maintain(); });
  log(LogLevel::info, "listening on " + initial_.listener.address + ":" + std::to_string(port()) +
                          " with " + std::to_string(server_->worker_count()) + " workers" +
                          (admin_server_ ? "; admin on " + initial_.admin.address + ":" +
                                               std::to_string(admin_port())
                                         : std::string("; admin off")));
  return {};
}

uint16_t Gateway::port() const noexcept { return server_ ? server_->port() : 0; }
uint16_t Gateway::admin_port() const noexcept { return admin_server_ ? admin_server_->port() : 0; }

void Gateway::maintain() {
  // The broadcaster's heartbeats and sweep may be due more often than the pools' cleanup.
  const BroadcastConfig& bc = initial_.broadcast;
  const Duration tick = bc.enabled ? std::min<Duration>({kMaintenanceInterval, bc.cleanup_interval,
                                                         bc.heartbeat_interval / 4})
                                   : Duration(kMaintenanceInterval);
  TimePoint last_cleanup = base::SteadyClock::instance().now();
  TimePoint last_sweep = last_cleanup;
  std::unique_lock lock(maintenance_mu_);
  while (!maintenance_cv_.wait_for(lock, tick, [this] { return stopped_.load(); })) {
    lock.unlock();
    const TimePoint now = base::SteadyClock::instance().now();
    if (bc.enabled) {
      proxy_->heartbeat_broadcast();
      if (now - last_sweep >= bc.cleanup_interval) {
        last_sweep = now;
        proxy_->sweep_broadcast();
      }
    }
    if (now - last_cleanup >= kMaintenanceInterval) {
      last_cleanup = now;
      proxy_->cleanup_pools();
      proxy_->sweep();
    }
    lock.lock();
  }
}

void Gateway::stop() {
  {
    std::lock_guard lock(maintenance_mu_);
    if (stopped_.exchange(true)) return;
  }
  maintenance_cv_.notify_all();
  // Subscriptions never end on their own: end them so the drain does not wait on them.
  if (proxy_) proxy_->shutdown_broadcast();
  if (server_) server_->stop();
  if (admin_server_) admin_server_->stop();
}

void Gateway::wait() {
  if (waited_) return;
  if (maintenance_.joinable()) maintenance_.join();
  if (server_) server_->wait();
  if (admin_server_) admin_server_->wait();
  // The workers' loops have stopped: their upstream sockets can go now.
  if (proxy_) proxy_->release_connections();
  if (access_log_) {
    access_log_->stop();
    const auto s = access_log_->stats();
    log(LogLevel::info, "access log: " + std::to_string(s.batcher.written) + " records written, " +
                            std::to_string(s.batcher.spilled) + " spilled, " +
                            std::to_string(s.batcher.dropped()) + " dropped");
  }
  waited_ = true;
}

void Gateway::block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int Gateway::run_until_signal(const std::string& config_path) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  while (true) {
    int signal = 0;
    if (sigwait(&set, &signal) != 0) continue;
    if (signal == SIGHUP) {
      if (config_path.empty()) {
        log(LogLevel::warn, "SIGHUP ignored: started without --config");
        continue;
      }
      const std::string why = reload(config_path);
      log(why.empty() ? LogLevel::info : LogLevel::error,
          why.empty() ? "reloaded " + config_path
                      : "reload of " + config_path + " refused: " + why);
      continue;
    }
    log(LogLevel::info,
        std::string("received ") + (signal == SIGTERM ? "SIGTERM" : "SIGINT") + ": draining");
    break;
  }
  stop();
  wait();
  return 0;
}

http::ServerStats Gateway::server_stats() const {
  return server_ ? server_->stats() : http::ServerStats{};
}

std::string Gateway::patch_config(const boost::json::value& patch) {
  std::lock_guard lock(config_mu_);  // read-modify-write against SIGHUP reloads
  const auto current = proxy_->config();
  auto next = apply_runtime_patch(*current, patch);
  if (!next) return next.error().to_string();
  proxy_->set_config(std::make_shared<const Config>(std::move(*next)));
  return {};
}

std::string Gateway::reload(const std::string& path) {
  auto loaded = load_config_file(path, process_environment());
  if (!loaded) return loaded.error().to_string();
  std::lock_guard lock(config_mu_);
  const auto held = proxy_->config();  // keeps the running config alive while we read it
  const Config& current = *held;
  const Config& next = *loaded;
  // Only run-time knobs change without a restart: the routes and upstreams must be the same.
  if (next.routes.size() != current.routes.size() ||
      next.upstreams.size() != current.upstreams.size()) {
    return "routes or upstreams were added or removed: restart to apply";
  }
  for (size_t i = 0; i < next.upstreams.size(); ++i) {
    if (next.upstreams[i].name != current.upstreams[i].name ||
        next.upstreams[i].url != current.upstreams[i].url) {
      return "upstream '" + next.upstreams[i].name + "' changed: restart to apply";
    }
  }
  Config merged = current;
  for (size_t i = 0; i < next.routes.size(); ++i) {
    const RouteConfig& from = next.routes[i];
    RouteConfig& to = merged.routes[i];
    if (from.name != to.name) {
      return "route '" + from.name + "' replaces route '" + to.name + "': restart to apply";
    }
    // The run-time knobs (those PUT /admin/config accepts); the rest needs a restart.
    to.cache_ttl = from.cache_ttl;
    to.max_ttl = from.max_ttl;
    to.error_ttl = from.error_ttl;
    to.max_waiters = from.max_waiters;
    to.waiter_timeout = from.waiter_timeout;
    to.hit_for_miss_ttl = from.hit_for_miss_ttl;
    to.coalesce = from.coalesce;
    to.cache = from.cache;
    to.rate_limit.enabled = from.rate_limit.enabled;
    to.rate_limit.rate = from.rate_limit.rate;
    to.rate_limit.burst = from.rate_limit.burst;
  }
  merged.cache.max_object_bytes = next.cache.max_object_bytes;
  merged.log.level = next.log.level;
  merged.log.slow_request = next.log.slow_request;
  proxy_->set_config(std::make_shared<const Config>(std::move(merged)));
  return {};
}

double Gateway::uptime_seconds() const {
  return std::chrono::duration<double>(base::SteadyClock::instance().now() - started_at_).count();
}

boost::json::object Gateway::stats_json() const {
  boost::json::object o;
  o["uptime_seconds"] = uptime_seconds();
  o["rss_bytes"] = resident_bytes();
  const ProxyStats p = proxy_->stats();
  boost::json::object requests;
  requests["total"] = p.requests;
  requests["hit"] = p.hits;
  requests["miss"] = p.misses;
  requests["coalesced"] = p.coalesced;
  requests["bypass"] = p.bypassed;
  requests["not_modified"] = p.not_modified;
  requests["no_route"] = p.no_route;
  requests["rate_limited"] = p.rate_limited;
  requests["over_limit"] = p.over_limit;
  requests["breaker_rejected"] = p.breaker_rejected;
  requests["slow"] = p.slow_requests;
  requests["client_disconnects"] = p.client_disconnects;
  const uint64_t answered = p.hits + p.misses + p.coalesced + p.bypassed;
  requests["upstream_calls_saved"] = p.hits + p.coalesced;
  requests["saved_rate"] =
      answered == 0 ? 0.0
                    : static_cast<double>(p.hits + p.coalesced) / static_cast<double>(answered);
  o["requests"] = std::move(requests);
  boost::json::object upstream;
  upstream["requests"] = p.upstream_requests;
  upstream["errors"] = p.upstream_errors;
  upstream["timeouts"] = p.upstream_timeouts;
  upstream["aborted"] = p.upstream_aborted;
  upstream["retries"] = p.retries;
  o["upstream"] = std::move(upstream);
  const http::ServerStats s = server_stats();
  boost::json::object server;
  server["connections_active"] = s.connections_active;
  server["connections_accepted"] = s.connections_accepted;
  server["connections_rejected"] = s.connections_rejected;
  server["requests"] = s.requests;
  server["keepalive_reuses"] = s.keepalive_reuses;
  server["bad_requests"] = s.bad_requests_total();
  server["request_timeouts"] = s.request_timeouts();
  server["headers_too_large"] = s.headers_too_large;
  server["bodies_too_large"] = s.bodies_too_large;
  server["bytes_in"] = s.bytes_in;
  server["bytes_out"] = s.bytes_out;
  o["server"] = std::move(server);
  if (access_log_) {
    const auto a = access_log_->stats();
    boost::json::object log_json;
    log_json["queued"] = a.batcher.queue_depth;
    log_json["written"] = a.batcher.written;
    log_json["batches"] = a.batcher.batches;
    log_json["avg_batch_size"] = a.batcher.avg_batch_size();
    log_json["sink_failures"] = a.batcher.sink_failures;
    log_json["spilled"] = a.batcher.spilled;
    log_json["dropped"] = a.batcher.dropped();  // includes the proxy's refused adds
    log_json["database"] = access_log_->database_path().string();
    o["access_log"] = std::move(log_json);
  } else {
    o["access_log"] = nullptr;
  }
  return o;
}

void Gateway::collect(metrics::Writer& w) const {
  const metrics::LabelsView none;
  const http::ServerStats s = server_stats();
  auto counter = [&](std::string_view name, std::string_view help, uint64_t v) {
    w.counter(name, help, none, static_cast<double>(v));
  };
  w.gauge("sluice_http_connections_active", "Client connections open now", none,
          static_cast<double>(s.connections_active));
  counter("sluice_http_connections_accepted_total", "Client connections accepted",
          s.connections_accepted);
  counter("sluice_http_connections_rejected_total",
          "Client connections refused past max_connections (503)", s.connections_rejected);
  counter("sluice_http_requests_total", "Complete requests read", s.requests);
  counter("sluice_http_keepalive_reuses_total", "Requests on a reused client connection",
          s.keepalive_reuses);
  counter("sluice_http_bad_requests_total", "Requests refused for framing (400)",
          s.bad_requests_total());
  counter("sluice_http_header_timeouts_total", "Heads not complete in header_timeout (408)",
          s.header_timeouts);
  counter("sluice_http_body_timeouts_total", "Bodies not complete in body_timeout (408)",
          s.body_timeouts);
  counter("sluice_http_headers_too_large_total", "Heads over max_header_bytes (431)",
          s.headers_too_large);
  counter("sluice_http_bodies_too_large_total", "Bodies over max_body_bytes (413)",
          s.bodies_too_large);
  counter("sluice_http_idle_timeouts_total", "Keep-alive connections closed idle", s.idle_timeouts);
  counter("sluice_http_write_timeouts_total", "Connections closed on a stalled write",
          s.write_timeouts);
  counter("sluice_http_received_bytes_total", "Request bytes read", s.bytes_in);
  counter("sluice_http_sent_bytes_total", "Response bytes written", s.bytes_out);
  w.gauge("sluice_process_resident_memory_bytes", "Resident set size", none,
          static_cast<double>(resident_bytes()));
  if (access_log_) {
    const auto a = access_log_->stats();
    counter("sluice_access_log_written_total", "Access records written to the sink",
            a.batcher.written);
    counter("sluice_access_log_batches_total", "Access-log batches committed", a.batcher.batches);
    counter("sluice_access_log_sink_failures_total", "Failed access-log batch writes",
            a.batcher.sink_failures);
    counter("sluice_access_log_spilled_total", "Access records spilled to the spill file",
            a.batcher.spilled);
    counter("sluice_access_log_dropped_total", "Access records lost (queue full or spill failed)",
            a.batcher.dropped());
    w.gauge("sluice_access_log_queue_depth", "Access records waiting to be written", none,
            static_cast<double>(a.batcher.queue_depth));
  }
}

}  // namespace sluice::gateway
