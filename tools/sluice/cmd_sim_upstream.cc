// `sluice sim-upstream`: the simulated upstream (sluice/gateway/sim_upstream.h) as a process,
// for the end-to-end tests and bench/. Runs until SIGTERM or SIGINT; writes a ready file once
// bound: {"listen":"127.0.0.1:PORT","pid":N}.
#include <pthread.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "sluice/base/units.h"
#include "sluice/gateway/sim_upstream.h"
#include "tools/sluice/command.h"

namespace {

struct SimOptions {
  std::string listen = "127.0.0.1:0";
  size_t workers = 2;
  std::string latency = "100ms";
  std::string token_interval = "20ms";
  size_t tokens = 16;
  std::string ready_file;
};

// "127.0.0.1:8080", "[::1]:0" -> address and port; false when malformed.
bool split_listen(const std::string& listen, std::string& address, uint16_t& port) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  address = listen.substr(0, colon);
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
    address = address.substr(1, address.size() - 2);
  }
  const std::string port_text = listen.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5) return false;
  unsigned long value = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

std::string join_listen(const std::string& address, uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

// Writes `content` to `path` atomically: a temporary file beside it, fsync, rename.
bool write_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return false;
    out << content;
    out.flush();
    if (!out) return false;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

int run_sim_upstream(const SimOptions& opts) {
  sluice::gateway::SimUpstreamOptions options;
  if (!split_listen(opts.listen, options.address, options.port)) {
    std::cerr << "sim-upstream: --listen: expected ADDR:PORT, got '" << opts.listen << "'\n";
    return 2;
  }
  auto latency = sluice::base::parse_duration(opts.latency);
  if (!latency) {
    std::cerr << "sim-upstream: --latency: not a duration: '" << opts.latency << "'\n";
    return 2;
  }
  auto interval = sluice::base::parse_duration(opts.token_interval);
  if (!interval) {
    std::cerr << "sim-upstream: --token-interval: not a duration: '" << opts.token_interval
              << "'\n";
    return 2;
  }
  if (opts.workers == 0 || opts.tokens == 0) {
    std::cerr << "sim-upstream: --workers and --tokens must be at least 1\n";
    return 2;
  }
  options.workers = opts.workers;
  options.latency = *latency;
  options.token_interval = *interval;
  options.tokens_per_answer = opts.tokens;

  // Block the stop signals before the server threads exist (they inherit the mask), so that
  // only `sigwait` below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  sluice::gateway::SimUpstream sim(options);
  if (auto ec = sim.start()) {
    std::cerr << "sim-upstream: cannot listen on " << opts.listen << ": " << ec.message() << "\n";
    return 1;
  }
  const std::string bound = join_listen(options.address, sim.port());
  if (!opts.ready_file.empty()) {
    boost::json::object ready{{"listen", bound}, {"pid", static_cast<int64_t>(::getpid())}};
    if (!write_atomically(opts.ready_file, boost::json::serialize(ready) + "\n")) {
      std::cerr << "sim-upstream: cannot write the ready file " << opts.ready_file << "\n";
      sim.stop();
      sim.wait();
      return 1;
    }
  }
  std::cout << "sim-upstream listening on " << bound << " (workers " << options.workers
            << ", latency " << sluice::base::format_duration(options.latency) << ", token interval "
            << sluice::base::format_duration(options.token_interval) << ")" << std::endl;

  int received = 0;
  sigwait(&stop_signals, &received);
  std::cout << "sim-upstream: signal " << received << ", stopping" << std::endl;
  sim.stop();
  sim.wait();
  const auto stats = sim.stats();
  std::cout << "sim-upstream: served " << stats.requests << " counted requests since the last "
            << "reset" << std::endl;
  return 0;
}

}  // namespace

SLUICE_COMMAND(60, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("sim-upstream",
                                 "Run the simulated upstream (an LLM-like API with test knobs)");
  auto opts = std::make_shared<SimOptions>();
  cmd->add_option("--listen", opts->listen, "Address and port to listen on (port 0: any)")
      ->capture_default_str();
  cmd->add_option("--workers", opts->workers, "Worker threads")->capture_default_str();
  cmd->add_option("--latency", opts->latency, "Time before each answer (e.g. 100ms)")
      ->capture_default_str();
  cmd->add_option("--token-interval", opts->token_interval,
                  "Time between streamed tokens (e.g. 20ms)")
      ->capture_default_str();
  cmd->add_option("--tokens", opts->tokens, "Tokens per chat answer")->capture_default_str();
  cmd->add_option("--ready-file", opts->ready_file,
                  "Write {\"listen\",\"pid\"} JSON here once bound");
  cmd->callback([opts, &exit_code] { exit_code = run_sim_upstream(*opts); });
});
