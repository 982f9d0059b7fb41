// Tour step of the flow module: a bounded stream with a slow consumer, a semaphore, token
// buckets and the adaptive limiter, each briefly, with numbers.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/units.h"
#include "sluice/flow/adaptive_limiter.h"
#include "sluice/flow/async_semaphore.h"
#include "sluice/flow/bounded_stream.h"
#include "sluice/flow/token_bucket.h"
#include "tools/sluice/tour.h"

namespace {

namespace asio = boost::asio;
namespace flow = sluice::flow;
using namespace std::chrono_literals;

void tour_stream(std::ostream& out) {
  int transitions = 0;
  flow::BoundedStream stream(
      {.buffer_size = 8,
       .max_buffered_bytes = 8 * 1024,
       .on_state_change = [&](flow::StreamState, flow::StreamState) { ++transitions; }});
  asio::io_context io;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 200; ++i) (void)co_await stream.push(std::string(1024, 'x'));
        stream.close();
      },
      asio::detached);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          for (int y = 0; y < 3; ++y) co_await asio::post(io, asio::use_awaitable);  // slow
          if (!co_await stream.pop()) break;
        }
      },
      asio::detached);
  io.run();
  const auto s = stream.stats();
  out << "BoundedStream (block_producer, 8 chunks / 8 KiB): " << s.chunks_consumed
      << " x 1 KiB delivered, max buffered " << sluice::base::format_bytes(s.max_buffered_bytes)
      << ", producer suspended " << s.overflow_count << " times, " << transitions
      << " state changes, now " << flow::to_string(s.state) << "\n";
  if (s.chunks_consumed != 200 || s.max_buffered_bytes > 8 * 1024) {
    throw std::runtime_error("BoundedStream exceeded its bound");
  }
}

void tour_semaphore(std::ostream& out) {
  asio::io_context io;
  flow::AsyncSemaphore sem({.capacity = 2});
  int holders = 0;
  int max_holders = 0;
  for (int c = 0; c < 6; ++c) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          auto permit = co_await sem.acquire();
          max_holders = std::max(max_holders, ++holders);
          co_await asio::post(io, asio::use_awaitable);
          --holders;
        },
        asio::detached);
  }
  io.run();
  const auto s = sem.stats();
  out << "AsyncSemaphore (2 permits, 6 coroutines): max holders " << max_holders << ", "
      << s.waited_total << " of " << s.acquired_total << " waited (FIFO hand-off)\n";
}

void tour_rate_limit(std::ostream& out) {
  sluice::base::ManualClock clock;
  flow::TokenBucket bucket({.rate_per_second = 10, .burst = 5}, clock);
  int allowed = 0;
  for (int i = 0; i < 40; ++i) {  // 2 s at 20 req/s
    allowed += bucket.try_acquire() ? 1 : 0;
    clock.advance(50ms);
  }
  flow::KeyedTokenBucket keyed(
      {.bucket = {.rate_per_second = 1, .burst = 2}, .max_keys = 16, .shards = 2}, clock);
  for (int i = 0; i < 100; ++i) (void)keyed.try_acquire("client-" + std::to_string(i % 40));
  const auto k = keyed.stats();
  out << "TokenBucket 10/s burst 5: " << allowed << " of 40 requests in 2 s allowed; "
      << "KeyedTokenBucket (16 keys max): " << k.keys << " keys, " << k.evictions_total
      << " LRU evictions\n";
}

void tour_limiter(std::ostream& out) {
  sluice::base::ManualClock clock;
  flow::AdaptiveLimiter limiter(std::make_unique<flow::AimdPolicy>(),
                                {.initial_limit = 10, .min_limit = 1, .max_limit = 100}, clock);
  uint32_t peak = 0;
  for (int round = 0; round < 30; ++round) {
    std::vector<flow::LimiterToken> batch;
    while (auto t = limiter.try_acquire()) batch.push_back(std::move(*t));
    const bool overloaded = batch.size() > 25;  // the upstream drops above 25 in flight
    for (auto& t : batch) overloaded ? t.on_dropped() : t.on_success(10ms);
    peak = std::max(peak, limiter.limit());
  }
  const auto s = limiter.stats();
  out << "AdaptiveLimiter (AIMD, upstream drops above 25): limit 10 -> peak " << peak << " -> now "
      << s.limit << ", " << s.rejected_total << " shed, " << s.limit_increases_total
      << " increases / " << s.limit_decreases_total << " decreases\n";
}

void tour_flow(std::ostream& out) {
  tour_stream(out);
  tour_semaphore(out);
  tour_rate_limit(out);
  tour_limiter(out);
}

SLUICE_TOUR_STEP(40, "flow", tour_flow);

}  // namespace
