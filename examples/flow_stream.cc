// A fast producer and a slow consumer joined by a BoundedStream: the producer is suspended
// whenever the buffer is full, the states move NORMAL -> WARNING -> THROTTLED -> BLOCKED and
// back, and memory stays under the bound while 256 KiB flow through a 16 KiB buffer. Then a
// consumer that stops reading, under drop_oldest: memory still stays at the bound.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/units.h"
#include "sluice/flow/bounded_stream.h"

namespace {

namespace asio = boost::asio;
namespace flow = sluice::flow;
using sluice::base::format_bytes;
using sluice::base::format_duration;

constexpr int kChunks = 256;
constexpr size_t kChunkSize = 1024;

asio::awaitable<void> produce(flow::BoundedStream& stream) {
  for (int i = 0; i < kChunks; ++i) {
    auto r = co_await stream.push(std::string(kChunkSize, static_cast<char>('a' + i % 26)));
    if (!r) break;
  }
  stream.close();
}

asio::awaitable<void> consume_slowly(flow::BoundedStream& stream, size_t& bytes) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (int n = 0;; ++n) {
    auto r = co_await stream.pop();
    if (!r) break;  // end_of_stream
    bytes += r->size();
    if (n % 4 == 0) {  // a slow client: 1 ms every 4 chunks
      timer.expires_after(std::chrono::milliseconds(1));
      co_await timer.async_wait(asio::use_awaitable);
    }
  }
}

}  // namespace

int main() {
  std::vector<std::pair<flow::StreamState, flow::StreamState>> transitions;
  flow::BoundedStream stream({.buffer_size = 16,
                              .max_buffered_bytes = 16 * kChunkSize,
                              .overflow = flow::OverflowPolicy::block_producer,
                              .warning_threshold = 0.5,
                              .throttle_threshold = 0.9,
                              .blocked_threshold = 1.0,
                              .on_state_change = [&](flow::StreamState from, flow::StreamState to) {
                                transitions.emplace_back(from, to);
                              }});
  asio::io_context io;
  size_t consumed_bytes = 0;
  asio::co_spawn(io, produce(stream), asio::detached);
  asio::co_spawn(io, consume_slowly(stream, consumed_bytes), asio::detached);
  io.run();

  const auto s = stream.stats();
  std::printf("block_producer: %llu chunks (%s) through a %zu-chunk / %s buffer\n",
              static_cast<unsigned long long>(s.chunks_consumed),
              format_bytes(consumed_bytes).c_str(), stream.options().buffer_size,
              format_bytes(stream.options().max_buffered_bytes).c_str());
  std::printf("  max buffered %s (max fill %.0f%%), producer suspended %llu times for %s\n",
              format_bytes(s.max_buffered_bytes).c_str(), s.max_fill * 100,
              static_cast<unsigned long long>(s.overflow_count),
              format_duration(s.producer_wait_time).c_str());
  std::printf("  %llu state changes, first: ", static_cast<unsigned long long>(s.state_changes));
  for (size_t i = 0; i < transitions.size() && i < 4; ++i) {
    std::printf("%s->%s ", std::string(flow::to_string(transitions[i].first)).c_str(),
                std::string(flow::to_string(transitions[i].second)).c_str());
  }
  std::printf("\n  throttled or blocked for %s in total\n",
              format_duration(s.total_throttle_time).c_str());
  if (s.chunks_consumed != kChunks || s.max_buffered_bytes > 16 * kChunkSize) return 1;

  // A consumer that never reads, drop_oldest: the newest chunks are kept, memory is bounded.
  flow::BoundedStream live({.buffer_size = 16,
                            .max_buffered_bytes = 16 * kChunkSize,
                            .overflow = flow::OverflowPolicy::drop_oldest});
  asio::io_context io2;
  asio::co_spawn(io2, produce(live), asio::detached);
  io2.run();
  const auto l = live.stats();
  std::printf("drop_oldest, consumer stopped: produced %s, buffered %s (bound %s), dropped %llu\n",
              format_bytes(l.bytes_produced).c_str(), format_bytes(l.buffered_bytes).c_str(),
              format_bytes(16 * kChunkSize).c_str(),
              static_cast<unsigned long long>(l.dropped_chunks));
  return l.max_buffered_bytes <= 16 * kChunkSize ? 0 : 1;
}
