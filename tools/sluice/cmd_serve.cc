// `sluice serve`: run the gateway. `sluice check-config FILE`: validate a config file.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>

#include "sluice/base/units.h"
#include "sluice/gateway/config.h"
#include "sluice/gateway/gateway.h"
#include "sluice/gateway/logger.h"
#include "tools/sluice/command.h"

namespace sluice::tools {
namespace {

struct ServeFlags {
  std::string config;
  std::string listen;
  std::string upstream;
  std::string admin;
  bool no_admin = false;
  std::string cache_ttl;
  bool coalesce_post = false;
  bool coalesce_streams = false;
  size_t workers = 0;
  std::string data_dir;
  std::string access_log;
  std::string log_level;
  std::string broadcast_prefix;
  std::string ready_file;
};

int usage_error(const std::string& message) {
  std::cerr << "sluice: " << message << "\n";
  return 2;
}

// The quick-start view of the flags (defaults where a flag was not given).
boost::system::result<gateway::QuickStart, int> quick_start(const ServeFlags& f) {
  gateway::QuickStart q;
  if (!f.listen.empty()) q.listen = f.listen;
  q.upstream = f.upstream;
  if (!f.admin.empty()) q.admin = f.admin;
  q.admin_enabled = !f.no_admin;
  if (!f.cache_ttl.empty()) {
    auto ttl = base::parse_duration(f.cache_ttl);
    if (!ttl) return usage_error("--cache-ttl: expected a duration such as 60s");
    q.cache_ttl = *ttl;
  }
  q.coalesce_post = f.coalesce_post;
  q.coalesce_streams = f.coalesce_streams;
  q.workers = f.workers;
  if (!f.data_dir.empty()) q.data_dir = f.data_dir;
  if (!f.access_log.empty()) q.access_log = f.access_log;
  if (!f.log_level.empty()) q.log_level = f.log_level;
  q.broadcast_prefix = f.broadcast_prefix;
  return q;
}

// Builds the configuration from the file and/or the flags; exits 2 on a bad one. `given`
// names the flags given explicitly (without dashes): they win over the file.
boost::system::result<gateway::Config, int> build_config(const ServeFlags& f,
                                                         const std::vector<std::string>& given) {
  const auto env = gateway::process_environment();
  auto q = quick_start(f);
  if (!q) return q.error();
  if (f.config.empty()) {
    if (f.upstream.empty())
      return usage_error("give --upstream URL (quick start) or --config FILE");
    auto built = gateway::config_from_flags(*q, env);
    if (!built) return usage_error(built.error().to_string());
    return std::move(*built);
  }
  auto loaded = gateway::load_config_file(f.config, env);
  if (!loaded) return usage_error(loaded.error().to_string());
  auto merged = gateway::apply_flags(*loaded, *q, given);
  if (!merged) return usage_error(merged.error().to_string());
  return std::move(*merged);
}

// Writes `text` to `path` atomically (a reader sees nothing or all of it).
bool write_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!(out << text)) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

int run_serve(const ServeFlags& flags, const std::vector<std::string>& given) {
  auto config = build_config(flags, given);
  if (!config) return config.error();
  const std::string listen_address = config->listener.address;
  const std::string admin_address = config->admin.address;
  gateway::Gateway::block_signals();
  gateway::Gateway gateway(std::move(*config));
  if (auto why = gateway.start(); !why.empty()) {
    std::cerr << "sluice: " << why << "\n";
    return 1;
  }
  std::cout << "sluice: proxy on http://" << listen_address << ":" << gateway.port();
  if (gateway.admin_port() != 0) {
    std::cout << ", admin on http://" << admin_address << ":" << gateway.admin_port();
  }
  std::cout << std::endl;
  if (!flags.ready_file.empty()) {
    std::string json =
        "{\"listen\":\"" + listen_address + ":" + std::to_string(gateway.port()) + "\"";
    if (gateway.admin_port() != 0) {
      json += ",\"admin\":\"" + admin_address + ":" + std::to_string(gateway.admin_port()) + "\"";
    }
    json += ",\"pid\":" + std::to_string(::getpid()) + "}\n";
    if (!write_atomically(flags.ready_file, json)) {
      std::cerr << "sluice: cannot write the ready file " << flags.ready_file << "\n";
      gateway.stop();
      gateway.wait();
      return 1;
    }
  }
  return gateway.run_until_signal(flags.config);
}

int run_check_config(const std::string& path) {
  auto loaded = gateway::load_config_file(path, gateway::process_environment());
  if (!loaded) {
    std::cerr << loaded.error().to_string() << "\n";
    return 2;
  }
  std::cout << "ok: " << path << ": " << loaded->upstreams.size() << " upstream(s), "
            << loaded->routes.size() << " route(s)\n";
  return 0;
}

}  // namespace
}  // namespace sluice::tools

SLUICE_COMMAND(10, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("serve", "Run the gateway in front of one or more upstreams");
  auto flags = std::make_shared<sluice::tools::ServeFlags>();
  cmd->add_option("--config", flags->config, "TOML config file (see docs/configuration.md)");
  cmd->add_option("--listen", flags->listen, "Proxy listener ADDR:PORT (default 127.0.0.1:8080)");
  cmd->add_option("--upstream", flags->upstream, "Quick start: the one upstream URL");
  cmd->add_option("--admin", flags->admin, "Admin listener ADDR:PORT (default 127.0.0.1:9901)");
  cmd->add_flag("--no-admin", flags->no_admin, "Do not start the admin listener");
  cmd->add_option("--cache-ttl", flags->cache_ttl,
                  "TTL of answers without explicit freshness (default 60s)");
  cmd->add_flag("--coalesce-post", flags->coalesce_post,
                "Coalesce and cache identical POSTs (key over canonical JSON bodies)");
  cmd->add_flag("--coalesce-streams", flags->coalesce_streams,
                "Identical streaming requests share one upstream stream (late joiners get a "
                "replay); completed streams are cached");
  cmd->add_option("--workers", flags->workers, "Worker threads (default: one per core)");
  cmd->add_option("--data-dir", flags->data_dir, "Directory of the access log (./sluice-data)");
  cmd->add_option("--access-log", flags->access_log, "sqlite (default) or off");
  cmd->add_option("--log-level", flags->log_level, "debug, info, warn or error");
  cmd->add_option("--broadcast-prefix", flags->broadcast_prefix,
                  "Turn the SSE broadcaster on under this path prefix (e.g. /events/)");
  cmd->add_option("--ready-file", flags->ready_file,
                  "Write {\"listen\",\"admin\",\"pid\"} JSON here once listening");
  cmd->callback([cmd, flags, &exit_code] {
    std::vector<std::string> given;
    for (const char* name : {"listen", "upstream", "admin", "no-admin", "cache-ttl",
                             "coalesce-post", "coalesce-streams", "workers", "data-dir",
                             "access-log", "log-level", "broadcast-prefix"}) {
      if (cmd->count(std::string("--") + name) > 0) given.emplace_back(name);
    }
    exit_code = sluice::tools::run_serve(*flags, given);
  });
});

SLUICE_COMMAND(20, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("check-config", "Validate a config file and exit (2 if invalid)");
  auto path = std::make_shared<std::string>();
  cmd->add_option("file", *path, "The TOML file")->required();
  cmd->callback([path, &exit_code] { exit_code = sluice::tools::run_check_config(*path); });
});
