// A fixed set of io_contexts, one thread each, kept alive by work guards until `stop`.
//
// Thread-safety: `context`, `start`, `stop` and `join` are called from the owning (main)
// thread; the contexts themselves are used from their threads and through `post`.
// Cost: one thread per context.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>
#include <vector>

namespace sluice::loadgen::internal {

class IoPool {
 public:
  explicit IoPool(unsigned threads) {
    if (threads == 0) threads = 1;
    for (unsigned i = 0; i < threads; ++i) {
      contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
      guards_.emplace_back(contexts_.back()->get_executor());
    }
  }
  ~IoPool() {
    stop();
    join();
  }
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  [[nodiscard]] size_t size() const { return contexts_.size(); }
  boost::asio::io_context& context(size_t i) { return *contexts_[i % contexts_.size()]; }

  void start() {
    for (auto& ctx : contexts_) threads_.emplace_back([c = ctx.get()] { c->run(); });
  }
  // Lets the contexts finish once they run out of work.
  void release() { guards_.clear(); }
  // Stops every context now.
  void stop() {
    guards_.clear();
    for (auto& ctx : contexts_) ctx->stop();
  }
  void join() {
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<Guard> guards_;
  std::vector<std::thread> threads_;
};

}  // namespace sluice::loadgen::internal
