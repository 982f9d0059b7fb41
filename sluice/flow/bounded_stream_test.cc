#include "sluice/flow/bounded_stream.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/flow/internal/test_util.h"

namespace sluice::flow {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using internal::spawn;
using Transition = std::pair<StreamState, StreamState>;

// Pushes `chunk`, runs the io_context until idle, returns the push result.
boost::system::result<PushOutcome> push_now(asio::io_context& io, BoundedStream& stream,
                                            std::string chunk) {
  std::optional<boost::system::result<PushOutcome>> out;
  spawn(io, [&, c = std::move(chunk)]() mutable -> asio::awaitable<void> {
    out = co_await stream.push(std::move(c));
  });
  io.restart();
  io.poll();
  EXPECT_TRUE(out.has_value()) << "push did not complete";
  return out.value_or(make_error_code(Errc::stream_cancelled));
}

boost::system::result<std::string> pop_now(asio::io_context& io, BoundedStream& stream) {
  std::optional<boost::system::result<std::string>> out;
  spawn(io, [&]() -> asio::awaitable<void> { out = co_await stream.pop(); });
  io.restart();
  io.poll();
  EXPECT_TRUE(out.has_value()) << "pop did not complete";
  return out.value_or(make_error_code(Errc::stream_cancelled));
}

TEST(BoundedStream, DeliversChunksInOrderThenEndOfStream) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 4});
  EXPECT_EQ(push_now(io, stream, "a").value(), PushOutcome::queued);
  EXPECT_EQ(push_now(io, stream, "bb").value(), PushOutcome::queued);
  EXPECT_EQ(push_now(io, stream, "").value(), PushOutcome::queued);  // empty chunk: one slot
  stream.close();
  EXPECT_EQ(push_now(io, stream, "late").error(), Errc::stream_closed);
  EXPECT_EQ(pop_now(io, stream).value(), "a");
  EXPECT_EQ(pop_now(io, stream).value(), "bb");
  EXPECT_EQ(pop_now(io, stream).value(), "");
  EXPECT_EQ(pop_now(io, stream).error(), Errc::end_of_stream);
  EXPECT_EQ(pop_now(io, stream).error(), Errc::end_of_stream);
  const auto s = stream.stats();
  EXPECT_EQ(s.chunks_produced, 3u);
  EXPECT_EQ(s.bytes_produced, 3u);
  EXPECT_EQ(s.chunks_consumed, 3u);
  EXPECT_EQ(s.bytes_consumed, 3u);
  EXPECT_EQ(s.buffered_chunks, 0u);
  EXPECT_TRUE(s.closed);
  EXPECT_FALSE(s.failed);
}

TEST(BoundedStream, WaitingConsumerGetsEndOfStreamOnClose) {
  asio::io_context io;
  BoundedStream stream({});
  std::optional<boost::system::result<std::string>> got;
  spawn(io, [&]() -> asio::awaitable<void> { got = co_await stream.pop(); });
  io.poll();
  EXPECT_FALSE(got.has_value());
  EXPECT_EQ(stream.stats().pending_pops, 1u);
  stream.close();
  io.restart();
  io.poll();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->error(), Errc::end_of_stream);
}

TEST(BoundedStream, ProducerFasterThanConsumerIsSuspendedAndLosesNothing) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 4, .max_buffered_bytes = 1 << 20});
  constexpr int kChunks = 200;
  std::vector<std::string> received;
  bool producer_done = false;
  spawn(io, [&]() -> asio::awaitable<void> {
    for (int i = 0; i < kChunks; ++i) {
      auto r = co_await stream.push(std::to_string(i));
      EXPECT_TRUE(r && *r == PushOutcome::queued) << i;
      EXPECT_LE(stream.stats().buffered_chunks, 4u);
    }
    stream.close();
    producer_done = true;
  });
  spawn(io, [&]() -> asio::awaitable<void> {
    for (;;) {
      // A slow consumer: yields to the scheduler several times per chunk.
      for (int y = 0; y < 5; ++y) co_await asio::post(io, asio::use_awaitable);
      auto r = co_await stream.pop();
      if (!r) {
        EXPECT_EQ(r.error(), Errc::end_of_stream);
        break;
      }
      received.push_back(std::move(*r));
    }
  });
  io.run();
  ASSERT_TRUE(producer_done);
  ASSERT_EQ(received.size(), size_t{kChunks});
  for (int i = 0; i < kChunks; ++i) EXPECT_EQ(received[i], std::to_string(i));
  const auto s = stream.stats();
  EXPECT_GT(s.overflow_count, 0u);                 // the producer did hit the bound
  EXPECT_LE(s.overflow_count, uint64_t{kChunks});  // at most once per push
  EXPECT_EQ(s.max_buffered_chunks, 4u);
  EXPECT_EQ(s.dropped_chunks, 0u);
  EXPECT_DOUBLE_EQ(s.max_fill, 1.0);
}

// A consumer that never reads: under every policy, buffered bytes and chunks stay within the
// bounds at every step, and the high-water marks prove it over the whole run.
class StoppedConsumer : public ::testing::TestWithParam<OverflowPolicy> {};

TEST_P(StoppedConsumer, MemoryNeverGrowsPastTheBound) {
  const OverflowPolicy policy = GetParam();
  constexpr size_t kMaxChunks = 8;
  constexpr size_t kMaxBytes = 1000;
  asio::io_context io;
  BoundedStream stream(
      {.buffer_size = kMaxChunks, .max_buffered_bytes = kMaxBytes, .overflow = policy});
  int pushes_completed = 0;
  bool saw_overflow_error = false;
  spawn(io, [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 1000; ++i) {
      const size_t size = 1 + static_cast<size_t>(i * 37) % 300;  // 1..300 bytes
      auto r = co_await stream.push(std::string(size, 'x'));
      const auto s = stream.stats();
      EXPECT_LE(s.buffered_bytes, kMaxBytes);
      EXPECT_LE(s.buffered_chunks, kMaxChunks);
      if (!r) {
        if (policy == OverflowPolicy::block_producer) {
          EXPECT_EQ(r.error(), Errc::stream_cancelled);  // released by cancel() below
        } else {
          EXPECT_EQ(policy, OverflowPolicy::fail);
          EXPECT_EQ(r.error(), Errc::stream_overflow);
          saw_overflow_error = true;
        }
        break;
      }
      ++pushes_completed;
    }
  });
  io.poll();
  auto s = stream.stats();
  EXPECT_LE(s.max_buffered_bytes, kMaxBytes);
  EXPECT_LE(s.max_buffered_chunks, kMaxChunks);
  EXPECT_LE(s.max_fill, 1.0);
  EXPECT_EQ(s.chunks_consumed, 0u);
  switch (policy) {
    case OverflowPolicy::block_producer:
      EXPECT_LT(pushes_completed, 1000);
      EXPECT_EQ(s.pending_pushes, 1u);
      EXPECT_EQ(s.state, StreamState::blocked);
      stream.cancel();  // the consumer gives up: the suspended producer is released
      io.restart();
      io.poll();
      EXPECT_EQ(stream.stats().pending_pushes, 0u);
      break;
    case OverflowPolicy::drop_oldest:
    case OverflowPolicy::drop_newest:
      EXPECT_EQ(pushes_completed, 1000);
      EXPECT_GT(s.dropped_chunks, 900u);
      EXPECT_EQ(s.dropped_chunks + s.buffered_chunks, 1000u);
      // drop_newest drops one chunk per overflow; drop_oldest may drop several to fit one.
      if (policy == OverflowPolicy::drop_newest) {
        EXPECT_EQ(s.overflow_count, s.dropped_chunks);
      }
      EXPECT_LE(s.overflow_count, s.dropped_chunks);
      EXPECT_EQ(s.bytes_produced - s.buffered_bytes,
                policy == OverflowPolicy::drop_oldest ? s.dropped_bytes : 0u);
      break;
    case OverflowPolicy::fail:
      EXPECT_TRUE(saw_overflow_error);
      EXPECT_TRUE(s.failed);
      EXPECT_EQ(s.buffered_bytes, 0u);
      EXPECT_GT(s.discarded_chunks, 0u);
      EXPECT_EQ(pop_now(io, stream).error(), Errc::stream_overflow);  // the consumer sees it
      break;
  }
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, StoppedConsumer,
                         ::testing::Values(OverflowPolicy::block_producer,
                                           OverflowPolicy::drop_oldest, OverflowPolicy::drop_newest,
                                           OverflowPolicy::fail),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(BoundedStream, DropOldestKeepsTheNewestChunks) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 3, .overflow = OverflowPolicy::drop_oldest});
  for (int i = 1; i <= 3; ++i)
    EXPECT_EQ(push_now(io, stream, std::to_string(i)).value(), PushOutcome::queued);
  EXPECT_EQ(push_now(io, stream, "4").value(), PushOutcome::queued_after_dropping_oldest);
  EXPECT_EQ(push_now(io, stream, "5").value(), PushOutcome::queued_after_dropping_oldest);
  stream.close();
  EXPECT_EQ(pop_now(io, stream).value(), "3");
  EXPECT_EQ(pop_now(io, stream).value(), "4");
  EXPECT_EQ(pop_now(io, stream).value(), "5");
  EXPECT_EQ(pop_now(io, stream).error(), Errc::end_of_stream);
  EXPECT_EQ(stream.stats().dropped_chunks, 2u);
  EXPECT_EQ(stream.stats().dropped_bytes, 2u);
}

TEST(BoundedStream, DropOldestMakesRoomByBytes) {
  asio::io_context io;
  BoundedStream stream(
      {.buffer_size = 10, .max_buffered_bytes = 10, .overflow = OverflowPolicy::drop_oldest});
  ASSERT_TRUE(push_now(io, stream, "aaaa"));
  ASSERT_TRUE(push_now(io, stream, "bbbb"));
  EXPECT_EQ(push_now(io, stream, "cccccc").value(), PushOutcome::queued_after_dropping_oldest);
  const auto s = stream.stats();
  EXPECT_EQ(s.buffered_bytes, 10u);
  EXPECT_EQ(s.dropped_chunks, 1u);
  EXPECT_EQ(pop_now(io, stream).value(), "bbbb");
}

TEST(BoundedStream, DropNewestKeepsTheOldestChunks) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 3, .overflow = OverflowPolicy::drop_newest});
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(push_now(io, stream, std::to_string(i)));
  EXPECT_EQ(push_now(io, stream, "4").value(), PushOutcome::dropped);
  EXPECT_EQ(pop_now(io, stream).value(), "1");
  EXPECT_EQ(push_now(io, stream, "5").value(), PushOutcome::queued);
  EXPECT_EQ(pop_now(io, stream).value(), "2");
  EXPECT_EQ(pop_now(io, stream).value(), "3");
  EXPECT_EQ(pop_now(io, stream).value(), "5");
  EXPECT_EQ(stream.stats().dropped_chunks, 1u);
}

TEST(BoundedStream, FailPolicyEndsTheStreamForBothSides) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 2, .overflow = OverflowPolicy::fail});
  ASSERT_TRUE(push_now(io, stream, "1"));
  ASSERT_TRUE(push_now(io, stream, "2"));
  EXPECT_EQ(push_now(io, stream, "3").error(), Errc::stream_overflow);
  EXPECT_EQ(push_now(io, stream, "4").error(), Errc::stream_overflow);
  EXPECT_EQ(pop_now(io, stream).error(), Errc::stream_overflow);
  const auto s = stream.stats();
  EXPECT_TRUE(s.failed);
  EXPECT_EQ(s.discarded_chunks, 2u);
  EXPECT_EQ(s.overflow_count, 1u);
  EXPECT_EQ(s.state, StreamState::normal);
}

TEST(BoundedStream, RefusesAChunkLargerThanTheByteBound) {
  asio::io_context io;
  BoundedStream stream({.max_buffered_bytes = 8});
  EXPECT_EQ(push_now(io, stream, std::string(9, 'x')).error(), Errc::chunk_too_large);
  EXPECT_EQ(push_now(io, stream, std::string(8, 'x')).value(), PushOutcome::queued);
  EXPECT_EQ(stream.stats().rejected_chunks, 1u);
}

TEST(BoundedStream, ConsumerCancelReleasesABlockedProducer) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 1});
  ASSERT_TRUE(push_now(io, stream, "1"));
  std::optional<boost::system::result<PushOutcome>> second;
  spawn(io, [&]() -> asio::awaitable<void> { second = co_await stream.push("2"); });
  io.restart();
  io.poll();
  EXPECT_FALSE(second.has_value());
  EXPECT_EQ(stream.state(), StreamState::blocked);
  stream.cancel();
  io.restart();
  io.poll();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->error(), Errc::stream_cancelled);
  EXPECT_EQ(pop_now(io, stream).error(), Errc::stream_cancelled);
  EXPECT_EQ(stream.stats().discarded_chunks, 1u);
}

TEST(BoundedStream, ProducerAbortGivesTheConsumerItsReason) {
  asio::io_context io;
  BoundedStream stream({});
  std::optional<boost::system::result<std::string>> got;
  spawn(io, [&]() -> asio::awaitable<void> { got = co_await stream.pop(); });
  io.poll();
  stream.cancel(asio::error::connection_reset);  // e.g. the upstream connection broke
  stream.cancel();                               // no effect once ended
  io.restart();
  io.poll();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->error(), asio::error::connection_reset);
  EXPECT_EQ(push_now(io, stream, "x").error(), asio::error::connection_reset);
}

TEST(BoundedStream, CancelledPushLeavesNothingBehind) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 2});
  ASSERT_TRUE(push_now(io, stream, "1"));
  ASSERT_TRUE(push_now(io, stream, "2"));
  asio::cancellation_signal signal;
  std::optional<boost::system::result<PushOutcome>> third;
  spawn(io, signal, [&]() -> asio::awaitable<void> { third = co_await stream.push("3"); });
  io.restart();
  io.poll();
  ASSERT_EQ(stream.stats().pending_pushes, 1u);
  signal.emit(asio::cancellation_type::terminal);
  io.restart();
  io.poll();
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->error(), asio::error::operation_aborted);
  auto s = stream.stats();
  EXPECT_EQ(s.pending_pushes, 0u);
  EXPECT_EQ(s.chunks_produced, 2u);
  EXPECT_EQ(s.cancelled_waits, 1u);
  // The stream is still usable.
  EXPECT_EQ(pop_now(io, stream).value(), "1");
  EXPECT_EQ(push_now(io, stream, "4").value(), PushOutcome::queued);
  EXPECT_EQ(pop_now(io, stream).value(), "2");
  EXPECT_EQ(pop_now(io, stream).value(), "4");
}

TEST(BoundedStream, CancelledPopLeavesTheStreamUsable) {
  asio::io_context io;
  BoundedStream stream({});
  asio::cancellation_signal signal;
  std::optional<boost::system::result<std::string>> got;
  spawn(io, signal, [&]() -> asio::awaitable<void> { got = co_await stream.pop(); });
  io.poll();
  ASSERT_EQ(stream.stats().pending_pops, 1u);
  signal.emit(asio::cancellation_type::terminal);
  io.restart();
  io.poll();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->error(), asio::error::operation_aborted);
  EXPECT_EQ(stream.stats().pending_pops, 0u);
  ASSERT_TRUE(push_now(io, stream, "after"));
  EXPECT_EQ(pop_now(io, stream).value(), "after");
}

TEST(BoundedStream, StateTransitionsAndThrottleTime) {
  base::ManualClock clock;
  asio::io_context io;
  std::vector<Transition> transitions;
  BoundedStream stream(
      {.buffer_size = 10,
       .warning_threshold = 0.5,
       .throttle_threshold = 0.8,
       .blocked_threshold = 1.0,
       .on_state_change = [&](StreamState from,
                              StreamState to) { transitions.emplace_back(from, to); }},
      clock);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(push_now(io, stream, "c"));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(push_now(io, stream, "c"));
  clock.advance(1s);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(push_now(io, stream, "c"));
  clock.advance(2s);
  ASSERT_TRUE(pop_now(io, stream));
  clock.advance(500ms);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(pop_now(io, stream));
  clock.advance(10s);
  const std::vector<Transition> expected = {
      {StreamState::normal, StreamState::warning},
      {StreamState::warning, StreamState::throttled},
      {StreamState::throttled, StreamState::blocked},
      {StreamState::blocked, StreamState::throttled},
      {StreamState::throttled, StreamState::warning},
  };
  EXPECT_EQ(transitions, expected);
  const auto s = stream.stats();
  EXPECT_EQ(s.state, StreamState::warning);
  EXPECT_EQ(s.state_changes, 5u);
  EXPECT_EQ(s.total_throttle_time, 3500ms);
  EXPECT_DOUBLE_EQ(s.max_fill, 1.0);
}

TEST(BoundedStream, BytesDriveTheStateAndASuspendedProducerMeansBlocked) {
  base::ManualClock clock;
  asio::io_context io;
  BoundedStream stream({.buffer_size = 100, .max_buffered_bytes = 100}, clock);
  ASSERT_TRUE(push_now(io, stream, std::string(60, 'x')));
  EXPECT_EQ(stream.state(), StreamState::warning);  // 60% of the bytes, 1% of the chunks
  ASSERT_TRUE(push_now(io, stream, std::string(35, 'x')));
  EXPECT_EQ(stream.state(), StreamState::throttled);  // 95%
  std::optional<boost::system::result<PushOutcome>> big;
  spawn(io, [&]() -> asio::awaitable<void> { big = co_await stream.push(std::string(10, 'x')); });
  io.restart();
  io.poll();
  EXPECT_FALSE(big.has_value());
  EXPECT_EQ(stream.state(), StreamState::blocked);  // not full, but the producer waits
  clock.advance(250ms);
  EXPECT_EQ(pop_now(io, stream).value().size(), 60u);  // makes room: the push completes
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(big->value(), PushOutcome::queued);
  const auto s = stream.stats();
  EXPECT_EQ(s.producer_wait_time, 250ms);
  EXPECT_EQ(s.total_throttle_time, 250ms);
  EXPECT_EQ(s.buffered_bytes, 45u);
  EXPECT_EQ(s.state, StreamState::normal);
}

// ---------------------------------------------------------------------------------------------
// offer(): the non-suspending push

TEST(BoundedStream, OfferUnderBlockProducerRefusesWithWouldBlockAndQueuesNothing) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 2, .max_buffered_bytes = 100});
  EXPECT_EQ(stream.offer("1").value(), PushOutcome::queued);
  EXPECT_EQ(stream.offer("2").value(), PushOutcome::queued);
  EXPECT_EQ(stream.offer("3").error(), Errc::would_block);
  auto s = stream.stats();
  EXPECT_EQ(s.buffered_chunks, 2u);
  EXPECT_EQ(s.chunks_produced, 2u);
  EXPECT_EQ(s.overflow_count, 1u);
  EXPECT_EQ(s.dropped_chunks, 0u);
  EXPECT_EQ(s.pending_pushes, 0u);  // nothing waits
  EXPECT_FALSE(s.failed);
  EXPECT_EQ(pop_now(io, stream).value(), "1");
  EXPECT_EQ(stream.offer("4").value(), PushOutcome::queued);  // room again
  stream.close();
  EXPECT_EQ(pop_now(io, stream).value(), "2");
  EXPECT_EQ(pop_now(io, stream).value(), "4");
  EXPECT_EQ(pop_now(io, stream).error(), Errc::end_of_stream);
}

TEST(BoundedStream, TryPopTakesWhatIsBufferedAndNeverWaits) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 4, .max_buffered_bytes = 100});
  EXPECT_EQ(stream.try_pop().error(), Errc::would_block);  // empty: no wait, no error state
  ASSERT_TRUE(stream.offer("a").has_value());
  ASSERT_TRUE(stream.offer("b").has_value());
  EXPECT_EQ(stream.try_pop().value(), "a");
  EXPECT_EQ(stream.try_pop().value(), "b");
  EXPECT_EQ(stream.try_pop().error(), Errc::would_block);
  ASSERT_TRUE(stream.offer("c").has_value());
  stream.close();
  EXPECT_EQ(stream.try_pop().value(), "c");  // drains what was buffered before the end
  EXPECT_EQ(stream.try_pop().error(), Errc::end_of_stream);
  EXPECT_EQ(stream.stats().chunks_consumed, 3u);
  BoundedStream failed(
      {.buffer_size = 1, .max_buffered_bytes = 100, .overflow = OverflowPolicy::fail});
  ASSERT_TRUE(failed.offer("x").has_value());
  EXPECT_EQ(failed.offer("y").error(), Errc::stream_overflow);
  EXPECT_EQ(failed.try_pop().error(), Errc::stream_overflow);
}

TEST(BoundedStream, OfferUnderBlockProducerDoesNotOvertakeASuspendedPush) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 10, .max_buffered_bytes = 10});
  ASSERT_TRUE(push_now(io, stream, std::string(8, 'a')));
  std::optional<boost::system::result<PushOutcome>> waiting;
  spawn(io, [&]() -> asio::awaitable<void> { waiting = co_await stream.push("bbbbb"); });
  io.restart();
  io.poll();
  ASSERT_FALSE(waiting.has_value());
  // One byte would fit, but a producer waits: first come, first served.
  EXPECT_EQ(stream.offer("c").error(), Errc::would_block);
  EXPECT_EQ(pop_now(io, stream).value(), std::string(8, 'a'));
  ASSERT_TRUE(waiting.has_value());
  EXPECT_EQ(waiting->value(), PushOutcome::queued);
  EXPECT_EQ(stream.offer("c").value(), PushOutcome::queued);
  EXPECT_EQ(pop_now(io, stream).value(), "bbbbb");
  EXPECT_EQ(pop_now(io, stream).value(), "c");
}

TEST(BoundedStream, OfferUnderDropOldestKeepsTheNewestChunks) {
  asio::io_context io;
  BoundedStream stream(
      {.buffer_size = 3, .max_buffered_bytes = 10, .overflow = OverflowPolicy::drop_oldest});
  for (const char* c : {"1", "2", "3"}) EXPECT_EQ(stream.offer(c).value(), PushOutcome::queued);
  EXPECT_EQ(stream.offer("4").value(), PushOutcome::queued_after_dropping_oldest);
  // By bytes: 9 more bytes fit only once "2" and "3" are gone.
  EXPECT_EQ(stream.offer("555555555").value(), PushOutcome::queued_after_dropping_oldest);
  auto s = stream.stats();
  EXPECT_EQ(s.dropped_chunks, 3u);
  EXPECT_EQ(s.dropped_bytes, 3u);
  EXPECT_EQ(s.overflow_count, 2u);
  EXPECT_EQ(s.buffered_bytes, 10u);
  EXPECT_EQ(pop_now(io, stream).value(), "4");
  EXPECT_EQ(pop_now(io, stream).value(), "555555555");
}

TEST(BoundedStream, OfferUnderDropNewestDiscardsTheNewChunk) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 2, .overflow = OverflowPolicy::drop_newest});
  ASSERT_TRUE(stream.offer("1"));
  ASSERT_TRUE(stream.offer("2"));
  EXPECT_EQ(stream.offer("3").value(), PushOutcome::dropped);
  EXPECT_EQ(stream.stats().dropped_chunks, 1u);
  EXPECT_EQ(pop_now(io, stream).value(), "1");
  EXPECT_EQ(stream.offer("4").value(), PushOutcome::queued);
  EXPECT_EQ(pop_now(io, stream).value(), "2");
  EXPECT_EQ(pop_now(io, stream).value(), "4");
}

TEST(BoundedStream, OfferUnderFailEndsTheStreamForBothSides) {
  asio::io_context io;
  BoundedStream stream({.buffer_size = 1, .overflow = OverflowPolicy::fail});
  ASSERT_TRUE(stream.offer("1"));
  EXPECT_EQ(stream.offer("2").error(), Errc::stream_overflow);
  EXPECT_EQ(stream.offer("3").error(), Errc::stream_overflow);
  EXPECT_EQ(pop_now(io, stream).error(), Errc::stream_overflow);
  const auto s = stream.stats();
  EXPECT_TRUE(s.failed);
  EXPECT_EQ(s.discarded_chunks, 1u);
  EXPECT_EQ(s.overflow_count, 1u);
}

TEST(BoundedStream, OfferReportsClosedCancelledAndTooLarge) {
  BoundedStream stream({.max_buffered_bytes = 4});
  EXPECT_EQ(stream.offer("12345").error(), Errc::chunk_too_large);
  EXPECT_EQ(stream.stats().rejected_chunks, 1u);
  stream.close();
  EXPECT_EQ(stream.offer("1").error(), Errc::stream_closed);
  BoundedStream cancelled({});
  cancelled.cancel(asio::error::connection_reset);
  EXPECT_EQ(cancelled.offer("1").error(), asio::error::connection_reset);
}

// A consumer suspended in pop() is resumed by an offer through its executor (posted, never
// inline): nothing runs until its io_context does.
TEST(BoundedStream, OfferResumesAWaitingConsumerOnItsExecutor) {
  asio::io_context io;
  BoundedStream stream({});
  std::optional<boost::system::result<std::string>> got;
  spawn(io, [&]() -> asio::awaitable<void> { got = co_await stream.pop(); });
  io.poll();
  ASSERT_EQ(stream.stats().pending_pops, 1u);
  EXPECT_EQ(stream.offer("hello").value(), PushOutcome::queued);
  EXPECT_FALSE(got.has_value());  // posted, not run inline by offer()
  EXPECT_EQ(stream.stats().pending_pops, 0u);
  io.restart();
  io.poll();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->value(), "hello");
}

// Offers from a plain thread (no coroutine) to a consumer on another thread's io_context.
TEST(BoundedStream, OfferFromAPlainThreadToACoroutineConsumer) {
  constexpr int kChunks = 5000;
  asio::io_context consumer_io;
  BoundedStream stream({.buffer_size = 8});
  int received = 0;
  bool in_order = true;
  spawn(consumer_io, [&]() -> asio::awaitable<void> {
    for (;;) {
      auto r = co_await stream.pop();
      if (!r) break;
      in_order = in_order && *r == std::to_string(received);
      ++received;
    }
  });
  std::thread consumer([&] { consumer_io.run(); });
  uint64_t refused = 0;
  for (int i = 0; i < kChunks;) {
    auto r = stream.offer(std::to_string(i));
    if (r) {
      ++i;
    } else {
      if (r.error() != Errc::would_block) {
        ADD_FAILURE() << r.error().message();
        stream.cancel();
        break;
      }
      ++refused;
      std::this_thread::yield();
    }
  }
  stream.close();
  consumer.join();
  EXPECT_EQ(received, kChunks);
  EXPECT_TRUE(in_order);
  EXPECT_EQ(stream.stats().overflow_count, refused);
  EXPECT_LE(stream.stats().max_buffered_chunks, 8u);
}

// Producer and consumer on two io_contexts run by two threads (run under TSan in CI). The
// consumer's io_context has no other work: the pending pop's work guard keeps it running.
TEST(BoundedStream, CrossThreadProducerAndConsumer) {
  constexpr int kChunks = 20'000;
  asio::io_context producer_io;
  asio::io_context consumer_io;
  BoundedStream stream({.buffer_size = 16, .max_buffered_bytes = 4096});
  int received = 0;
  bool in_order = true;
  size_t max_seen_bytes = 0;
  spawn(producer_io, [&]() -> asio::awaitable<void> {
    for (int i = 0; i < kChunks; ++i) {
      auto r = co_await stream.push(std::to_string(i));
      EXPECT_TRUE(r) << i;
    }
    stream.close();
  });
  spawn(consumer_io, [&]() -> asio::awaitable<void> {
    for (;;) {
      auto r = co_await stream.pop();
      if (!r) {
        EXPECT_EQ(r.error(), Errc::end_of_stream);
        break;
      }
      in_order = in_order && *r == std::to_string(received);
      ++received;
    }
    max_seen_bytes = stream.stats().max_buffered_bytes;
  });
  std::thread producer([&] { producer_io.run(); });
  std::thread consumer([&] { consumer_io.run(); });
  producer.join();
  consumer.join();
  EXPECT_EQ(received, kChunks);
  EXPECT_TRUE(in_order);
  EXPECT_LE(max_seen_bytes, 4096u);
  const auto s = stream.stats();
  EXPECT_EQ(s.chunks_produced, uint64_t{kChunks});
  EXPECT_EQ(s.chunks_consumed, uint64_t{kChunks});
  EXPECT_LE(s.max_buffered_chunks, 16u);
}

// Several producers and consumers sharing one multi-threaded io_context.
TEST(BoundedStream, ManyProducersAndConsumersOnAThreadPool) {
  constexpr int kProducers = 3;
  constexpr int kConsumers = 3;
  constexpr int kPerProducer = 3000;
  asio::io_context io;
  BoundedStream stream({.buffer_size = 8});
  std::atomic<int> producers_left{kProducers};
  std::atomic<uint64_t> consumed_sum{0};
  std::atomic<int> consumed{0};
  for (int p = 0; p < kProducers; ++p) {
    spawn(io, [&, p]() -> asio::awaitable<void> {
      for (int i = 0; i < kPerProducer; ++i) {
        auto r = co_await stream.push(std::to_string(p * kPerProducer + i));
        EXPECT_TRUE(r);
      }
      if (producers_left.fetch_sub(1) == 1) stream.close();
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    spawn(io, [&]() -> asio::awaitable<void> {
      for (;;) {
        auto r = co_await stream.pop();
        if (!r) break;
        consumed_sum += std::stoull(*r);
        ++consumed;
      }
    });
  }
  std::thread helper([&] { io.run(); });
  io.run();
  helper.join();
  constexpr uint64_t n = uint64_t{kProducers} * kPerProducer;
  EXPECT_EQ(consumed.load(), static_cast<int>(n));
  EXPECT_EQ(consumed_sum.load(), n * (n - 1) / 2);
  EXPECT_LE(stream.stats().max_buffered_chunks, 8u);
}

}  // namespace
}  // namespace sluice::flow
