// A stand-in for `sluice sim-upstream`, for machines where that command is not built yet:
// an HTTP/1.1 keep-alive server whose answer is shaped by query knobs.
//   delay_ms=N      answer after N ms (default 0)
//   cc=VALUE        Cache-Control header (percent-decoded), e.g. cc=max-age%3D60, cc=no-store
//   status=N        response status (default 200)
//   size=N          body of N bytes (default: a short text naming the path)
//   chunks=N&chunk_ms=M  stream the body as N chunks M ms apart (chunked encoding)
//   GET /__sim/stats  -> {"requests":N}: requests served so far, stats requests excluded
//
// Thread-safety: `start`/`stop` from one thread; sessions run on `workers` threads sharing one
// io_context (a session's handlers never run concurrently: one operation at a time).
// Cost: one coroutine per connection.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace sluice::loadgen {

class StandInUpstream {
 public:
  StandInUpstream() = default;
  ~StandInUpstream() { stop(); }
  StandInUpstream(const StandInUpstream&) = delete;
  StandInUpstream& operator=(const StandInUpstream&) = delete;

  // Binds `address:port` (port 0: any free port) and starts `workers` threads; returns the
  // bound port. Throws on a bind failure.
  uint16_t start(const std::string& address, uint16_t port, unsigned workers);
  void stop();
  // Runs until stopped (from a signal handler posted to the context, or `stop`).
  void wait();
  [[nodiscard]] uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  boost::asio::io_context& context() { return ctx_; }

 private:
  boost::asio::io_context ctx_;
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> requests_{0};
};

}  // namespace sluice::loadgen
