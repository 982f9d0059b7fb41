// `sluice demo`: the main job behind `make run`. In one process: a simulated LLM-style
// upstream, the gateway in front of it with the embedded defaults (in-process cache, SQLite
// access log), and a realistic burst of traffic — many users of a few applications asking
// a Zipf-distributed set of questions, some at the same instant — sent once straight to the
// upstream and once through sluice. It prints what sluice saved and what it cost, then keeps
// serving (printing URLs to try) until Ctrl-C, unless `--no-wait`.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <barrier>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "sluice/base/random.h"
#include "sluice/base/units.h"
#include "sluice/cache/workload.h"
#include "sluice/gateway/config.h"
#include "sluice/gateway/gateway.h"
#include "sluice/gateway/logger.h"
#include "sluice/gateway/sim_upstream.h"
#include "tools/sluice/command.h"

namespace sluice::tools {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bh = boost::beast::http;
using Clock = std::chrono::steady_clock;

struct DemoFlags {
  std::string listen = "127.0.0.1:8080";
  std::string admin = "127.0.0.1:9901";
  std::string latency = "250ms";
  std::string data_dir = "./sluice-data";
  size_t users = 48;        // concurrent client connections
  size_t requests = 600;    // requests in the burst (besides the storms)
  size_t questions = 60;    // distinct questions (Zipf-distributed)
  size_t storm_size = 100;  // identical requests sent at one instant, per storm
  size_t storms = 2;
  size_t apps = 3;  // API keys: answers are never shared across them
  bool no_wait = false;
};

// One blocking keep-alive client connection (the demo's users; not the gateway's client).
class UserConnection {
 public:
  UserConnection(asio::io_context& io, const asio::ip::tcp::endpoint& endpoint)
      : stream_(io), endpoint_(endpoint) {}

  // Sends one chat question; returns the status and the X-Cache header ("" if absent).
  std::pair<unsigned, std::string> ask(const std::string& question, const std::string& api_key) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        if (!connected_) {
          stream_.connect(endpoint_);
          connected_ = true;
        }
        bh::request<bh::string_body> req{bh::verb::post, "/v1/chat/completions", 11};
        req.set(bh::field::host, "demo");
        req.set(bh::field::content_type, "application/json");
        req.set(bh::field::authorization, "Bearer " + api_key);
        boost::json::object body;
        body["model"] = "sim-1";
        boost::json::array messages;
        boost::json::object message;
        message["role"] = "user";
        message["content"] = question;
        messages.push_back(std::move(message));
        body["messages"] = std::move(messages);
        req.body() = boost::json::serialize(body);
        req.prepare_payload();
        bh::write(stream_.socket(), req);
        beast::flat_buffer buffer;
        bh::response<bh::string_body> res;
        bh::read(stream_.socket(), buffer, res);
        std::string cache;
        if (auto it = res.find("X-Cache"); it != res.end()) cache = std::string(it->value());
        if (!res.keep_alive()) close();
        return {res.result_int(), cache};
      } catch (const std::exception&) {
        close();
      }
    }
    return {0, ""};
  }

 private:
  void close() {
    beast::error_code ignored;
    stream_.socket().close(ignored);
    connected_ = false;
  }
  beast::tcp_stream stream_;
  asio::ip::tcp::endpoint endpoint_;
  bool connected_ = false;
};

// `clients` identical streamed chat requests, started `stagger` apart (so that later ones
// join a stream in progress); returns how many answered 200 with the same body as the first.
size_t stream_storm(uint16_t port, size_t clients, std::chrono::milliseconds stagger) {
  std::vector<std::string> bodies(clients);
  std::vector<std::thread> threads;
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  for (size_t i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      try {
        asio::io_context io;
        beast::tcp_stream stream(io);
        stream.connect(endpoint);
        bh::request<bh::string_body> req{
            bh::verb::get, "/v1/chat/completions?q=how+does+stream+coalescing+work&stream=1", 11};
        req.set(bh::field::host, "demo");
        req.set(bh::field::authorization, "Bearer app-0");
        bh::write(stream.socket(), req);
        beast::flat_buffer buffer;
        bh::response<bh::string_body> res;
        bh::read(stream.socket(), buffer, res);
        if (res.result_int() == 200) bodies[i] = std::move(res.body());
      } catch (const std::exception&) {
      }
    });
    std::this_thread::sleep_for(stagger);
  }
  for (auto& t : threads) t.join();
  return static_cast<size_t>(std::count_if(bodies.begin(), bodies.end(), [&](const auto& b) {
    return !b.empty() && b == bodies.front();
  }));
}

struct BurstResult {
  std::vector<double> latencies_ms;
  size_t ok = 0;
  size_t failed = 0;
  std::map<std::string, size_t> by_cache;
  double seconds = 0;
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

// The traffic: `users` connections working through a shared list of (question, app)
// pairs, plus `storms` moments where `storm_size` users send the same new question at once.
BurstResult run_burst(const DemoFlags& flags, uint16_t port, const std::string& label,
                      const std::function<uint64_t()>& upstream_calls) {
  struct Job {
    std::string question;
    std::string api_key;
  };
  std::vector<Job> jobs;
  base::Xoshiro256 random(42);
  const cache::ZipfGenerator zipf(flags.questions, 0.9);
  for (size_t i = 0; i < flags.requests; ++i) {
    jobs.push_back({"What is the capital of country #" + std::to_string(zipf.next(random)) + "?",
                    "app-" + std::to_string(random.next_u64() % flags.apps)});
  }
  const asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  BurstResult result;
  std::mutex mu;
  auto record = [&](double ms, unsigned status, const std::string& cache) {
    std::lock_guard lock(mu);
    if (status == 200) {
      ++result.ok;
      result.latencies_ms.push_back(ms);
    } else {
      ++result.failed;
    }
    ++result.by_cache[cache.empty() ? "-" : cache];
  };
  const auto started = Clock::now();
  std::atomic<size_t> done{0};
  const size_t total = flags.requests + flags.storms * flags.storm_size;
  std::atomic<bool> finished{false};
  // A progress line, rewritten in place on a terminal (and left out of logs and pipes).
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  std::thread progress([&] {
    while (tty && !finished.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      std::printf("\r  %-14s %5zu/%zu requests, %llu upstream calls", label.c_str(), done.load(),
                  total, static_cast<unsigned long long>(upstream_calls()));
      std::fflush(stdout);
    }
  });

  // The storms first: everyone asks the same fresh question at the same instant.
  for (size_t s = 0; s < flags.storms; ++s) {
    const std::string question = "Summarise today's incident report #" + std::to_string(s) + ".";
    std::barrier start(static_cast<std::ptrdiff_t>(flags.storm_size));
    std::vector<std::thread> users;
    for (size_t u = 0; u < flags.storm_size; ++u) {
      users.emplace_back([&] {
        asio::io_context io;
        UserConnection connection(io, endpoint);
        start.arrive_and_wait();
        const auto t0 = Clock::now();
        auto [status, cache] = connection.ask(question, "app-0");
        record(std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), status, cache);
        ++done;
      });
    }
    for (auto& t : users) t.join();
  }

  // Then the steady traffic.
  std::atomic<size_t> next{0};
  std::vector<std::thread> users;
  for (size_t u = 0; u < flags.users; ++u) {
    users.emplace_back([&] {
      asio::io_context io;
      UserConnection connection(io, endpoint);
      for (size_t i = next++; i < jobs.size(); i = next++) {
        const auto t0 = Clock::now();
        auto [status, cache] = connection.ask(jobs[i].question, jobs[i].api_key);
        record(std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), status, cache);
        ++done;
      }
    });
  }
  for (auto& t : users) t.join();
  finished = true;
  progress.join();
  std::printf("\r  %-14s %5zu/%zu requests, %llu upstream calls\n", label.c_str(), done.load(),
              total, static_cast<unsigned long long>(upstream_calls()));
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return result;
}

bool split(const std::string& text, std::string& host, uint16_t& port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  host = text.substr(0, colon);
  try {
    port = static_cast<uint16_t>(std::stoul(text.substr(colon + 1)));
  } catch (...) {
    return false;
  }
  return true;
}

int run_demo(const DemoFlags& flags) {
  auto latency = base::parse_duration(flags.latency);
  if (!latency) {
    std::cerr << "sluice demo: --latency: expected a duration such as 250ms\n";
    return 2;
  }
  gateway::Gateway::block_signals();

  gateway::SimUpstreamOptions so;
  so.latency = *latency;
  so.workers = 1;
  gateway::SimUpstream upstream(so);
  if (auto ec = upstream.start()) {
    std::cerr << "sluice demo: cannot start the simulated upstream: " << ec.message() << "\n";
    return 1;
  }
  const std::string upstream_url = "http://127.0.0.1:" + std::to_string(upstream.port());

  std::cout << "sluice demo: a simulated LLM upstream (" << flags.latency << " per answer) at "
            << upstream_url << "\n\n";
  std::cout << "1) the burst straight to the upstream, without sluice\n";
  upstream.reset_stats();
  const BurstResult direct =
      run_burst(flags, upstream.port(), "direct", [&] { return upstream.stats().requests; });
  const uint64_t direct_calls = upstream.stats().requests;

  // The gateway: quick-start defaults, POST coalescing on (chat completions).
  gateway::QuickStart q;
  q.upstream = upstream_url;
  q.listen = flags.listen;
  q.admin = flags.admin;
  q.coalesce_post = true;
  q.coalesce_streams = true;  // identical streamed answers share one upstream stream
  q.data_dir = flags.data_dir;
  q.log_level = "warn";
  q.broadcast_prefix = "/events/";  // the SSE broadcaster, to try by hand afterwards
  auto config = gateway::config_from_flags(q, gateway::process_environment());
  if (!config) {
    std::cerr << "sluice demo: " << config.error().to_string() << "\n";
    return 2;
  }
  auto gw = std::make_unique<gateway::Gateway>(*config);
  std::string why = gw->start();
  if (!why.empty()) {
    // The default ports are taken (another demo?): fall back to free ones.
    std::cerr << "sluice demo: " << why << "; using free ports instead\n";
    gw.reset();
    split("127.0.0.1:0", config->listener.address, config->listener.port);
    split("127.0.0.1:0", config->admin.address, config->admin.port);
    gw = std::make_unique<gateway::Gateway>(*config);
    why = gw->start();
    if (!why.empty()) {
      std::cerr << "sluice demo: " << why << "\n";
      return 1;
    }
  }

  std::cout << "\n2) the same burst through sluice (http://" << config->listener.address << ":"
            << gw->port() << ")\n";
  upstream.reset_stats();
  const BurstResult through =
      run_burst(flags, gw->port(), "through sluice", [&] { return upstream.stats().requests; });
  const uint64_t sluice_calls = upstream.stats().requests;
  if (gw->access_log() != nullptr) gw->access_log()->flush();

  const gateway::ProxyStats p = gw->proxy().stats();
  const auto upstreams = gw->proxy().upstreams_json();
  double reuse = 0;
  if (!upstreams.empty()) {
    reuse = upstreams[0].as_object().at("pool").as_object().at("reuse_rate").to_number<double>();
  }
  const size_t sent = through.ok + through.failed;
  std::printf(
      "\nReport (%zu requests: %zu storms of %zu identical questions, then %zu users "
      "asking %zu questions for %zu apps)\n",
      sent, flags.storms, flags.storm_size, flags.users, flags.questions, flags.apps);
  std::printf(
      "  upstream calls        without sluice %6llu    with sluice %6llu  (%.1fx fewer)\n",
      static_cast<unsigned long long>(direct_calls), static_cast<unsigned long long>(sluice_calls),
      sluice_calls == 0 ? 0.0
                        : static_cast<double>(direct_calls) / static_cast<double>(sluice_calls));
  std::printf("  saved by coalescing   %6llu requests joined a call in flight\n",
              static_cast<unsigned long long>(p.coalesced));
  std::printf("  saved by the cache    %6llu requests answered from cache (hit rate %.1f%%)\n",
              static_cast<unsigned long long>(p.hits),
              sent == 0 ? 0.0 : 100.0 * static_cast<double>(p.hits) / static_cast<double>(sent));
  std::printf("  latency p50/p90/p99   without %7.1f / %7.1f / %7.1f ms\n",
              percentile(direct.latencies_ms, 0.5), percentile(direct.latencies_ms, 0.9),
              percentile(direct.latencies_ms, 0.99));
  std::printf("                        with    %7.1f / %7.1f / %7.1f ms\n",
              percentile(through.latencies_ms, 0.5), percentile(through.latencies_ms, 0.9),
              percentile(through.latencies_ms, 0.99));
  std::printf("  wall time             without %6.2f s    with %6.2f s\n", direct.seconds,
              through.seconds);
  std::printf("  upstream pool reuse   %.1f%% of upstream requests on a kept-alive connection\n",
              100.0 * reuse);
  std::printf("  failed requests       without %zu    with %zu\n", direct.failed, through.failed);
  std::printf("  resident memory       %.1f MiB (whole demo process)\n",
              static_cast<double>(gateway::resident_bytes()) / (1024.0 * 1024.0));
  if (gw->access_log() != nullptr) {
    const auto a = gw->access_log()->stats();
    std::printf("  access log            %llu records in %s\n",
                static_cast<unsigned long long>(a.batcher.written),
                gw->access_log()->database_path().c_str());
  }

  // Streamed answers: identical requests share one upstream stream, late joiners included.
  constexpr size_t kStreamClients = 20;
  const uint64_t streams_before = upstream.stats().streams;
  const size_t same = stream_storm(gw->port(), kStreamClients, std::chrono::milliseconds(15));
  const uint64_t upstream_streams = upstream.stats().streams - streams_before;
  const boost::json::object shared = gw->proxy().streams_json(0).at("shared").as_object();
  std::printf(
      "\n3) %zu identical streamed chat answers (SSE), started 15 ms apart, through sluice\n"
      "  upstream streams      %llu for %zu clients; %llu joined a stream in progress and were\n"
      "                        replayed its beginning first; %zu received the identical stream\n",
      kStreamClients, static_cast<unsigned long long>(upstream_streams), kStreamClients,
      static_cast<unsigned long long>(shared.at("late_joins").to_number<uint64_t>()), same);

  const std::string base = "http://" + config->listener.address + ":" + std::to_string(gw->port());
  const std::string admin =
      "http://" + config->admin.address + ":" + std::to_string(gw->admin_port());
  std::cout << "\nTry it:\n"
            << "  curl -s " << base
            << "/v1/chat/completions -H 'Authorization: Bearer app-0' -H 'Content-Type: "
               "application/json' -d '{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}' -i\n"
            << "  curl -sN '" << base << "/v1/chat/completions?q=hello&stream=1'\n"
            << "  curl -sN " << base << "/events/news      # subscribe (SSE), then publish:\n"
            << "  curl -s -d 'hello' '" << base << "/events/news?event=greeting'\n"
            << "  curl -s " << admin << "/admin/stats\n"
            << "  curl -s " << admin << "/admin/streams\n"
            << "  curl -s " << admin << "/admin/broadcast\n"
            << "  curl -s " << admin << "/metrics\n";
  if (flags.no_wait || direct.failed + through.failed > 0) {
    gw->stop();
    gw->wait();
    upstream.stop();
    upstream.wait();
    return through.failed > 0 ? 1 : 0;
  }
  std::cout << "\nServing until Ctrl-C.\n" << std::flush;
  const int code = gw->run_until_signal("");
  upstream.stop();
  upstream.wait();
  return code;
}

}  // namespace
}  // namespace sluice::tools

SLUICE_COMMAND(30, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "demo", "Run a simulated LLM upstream, sluice in front of it, and a burst of traffic");
  auto flags = std::make_shared<sluice::tools::DemoFlags>();
  cmd->add_option("--listen", flags->listen, "Proxy listener (falls back to a free port)");
  cmd->add_option("--admin", flags->admin, "Admin listener (falls back to a free port)");
  cmd->add_option("--latency", flags->latency, "Latency of each simulated answer");
  cmd->add_option("--data-dir", flags->data_dir, "Directory of the access log");
  cmd->add_option("--users", flags->users, "Concurrent users in the steady traffic");
  cmd->add_option("--requests", flags->requests, "Requests in the steady traffic");
  cmd->add_option("--questions", flags->questions, "Distinct questions (Zipf-distributed)");
  cmd->add_option("--storm-size", flags->storm_size, "Identical requests per storm");
  cmd->add_option("--storms", flags->storms, "Storms before the steady traffic");
  cmd->add_flag("--no-wait", flags->no_wait, "Exit after the report instead of serving");
  cmd->callback([flags, &exit_code] { exit_code = sluice::tools::run_demo(*flags); });
});
