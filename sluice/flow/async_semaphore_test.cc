#include "sluice/flow/async_semaphore.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "sluice/flow/internal/test_util.h"

namespace sluice::flow {
namespace {

namespace asio = boost::asio;
using internal::spawn;
using Permit = AsyncSemaphore::Permit;

TEST(AsyncSemaphore, TryAcquireAndRaiiRelease) {
  AsyncSemaphore sem({.capacity = 2});
  auto a = sem.try_acquire();
  auto b = sem.try_acquire();
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(sem.try_acquire());
  EXPECT_EQ(sem.in_use(), 2u);
  a.reset();
  EXPECT_EQ(sem.in_use(), 1u);
  Permit moved = std::move(*b);
  EXPECT_FALSE(*b);
  EXPECT_TRUE(moved);
  moved.release();
  moved.release();  // idempotent
  EXPECT_EQ(sem.in_use(), 0u);
  const auto s = sem.stats();
  EXPECT_EQ(s.acquired_total, 2u);
  EXPECT_EQ(s.try_failed_total, 1u);
}

TEST(AsyncSemaphore, WaitersAreServedInFifoOrder) {
  asio::io_context io;
  AsyncSemaphore sem({.capacity = 1});
  auto first = sem.try_acquire();
  ASSERT_TRUE(first);
  std::vector<int> order;
  std::vector<Permit> held(5);
  for (int i = 0; i < 5; ++i) {
    spawn(io, [&, i]() -> asio::awaitable<void> {
      auto p = co_await sem.acquire();
      EXPECT_TRUE(p);
      order.push_back(i);
      held[i] = std::move(*p);
    });
  }
  io.poll();
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(sem.stats().waiters, 5u);
  EXPECT_FALSE(sem.try_acquire());  // no barging while others wait
  first.reset();
  for (int i = 0; i < 5; ++i) {
    io.restart();
    io.poll();
    ASSERT_EQ(order.size(), static_cast<size_t>(i + 1));
    EXPECT_EQ(order.back(), i);
    EXPECT_EQ(sem.in_use(), 1u);
    held[i].release();  // hands the permit straight to the next waiter
  }
  const auto s = sem.stats();
  EXPECT_EQ(s.acquired_total, 6u);
  EXPECT_EQ(s.waited_total, 5u);
  EXPECT_EQ(s.max_waiters_seen, 5u);
  EXPECT_EQ(s.in_use, 0u);
}

TEST(AsyncSemaphore, CancelledWaiterLeavesTheQueueWithoutAPermit) {
  asio::io_context io;
  AsyncSemaphore sem({.capacity = 1});
  auto holder = sem.try_acquire();
  asio::cancellation_signal signal;
  std::optional<boost::system::result<Permit>> cancelled;
  std::optional<boost::system::result<Permit>> next;
  spawn(io, signal, [&]() -> asio::awaitable<void> { cancelled = co_await sem.acquire(); });
  spawn(io, [&]() -> asio::awaitable<void> { next = co_await sem.acquire(); });
  io.poll();
  ASSERT_EQ(sem.stats().waiters, 2u);
  signal.emit(asio::cancellation_type::terminal);
  io.restart();
  io.poll();
  ASSERT_TRUE(cancelled.has_value());
  EXPECT_EQ(cancelled->error(), asio::error::operation_aborted);
  EXPECT_EQ(sem.stats().waiters, 1u);
  EXPECT_EQ(sem.in_use(), 1u);  // still only the holder
  holder.reset();               // goes to the second waiter, not the cancelled one
  io.restart();
  io.poll();
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(*next);
  EXPECT_EQ(sem.in_use(), 1u);
  next.reset();
  EXPECT_EQ(sem.in_use(), 0u);
  const auto s = sem.stats();
  EXPECT_EQ(s.cancelled_total, 1u);
  EXPECT_EQ(s.acquired_total, 2u);
}

TEST(AsyncSemaphore, RejectsBeyondMaxWaiters) {
  asio::io_context io;
  AsyncSemaphore sem({.capacity = 0, .max_waiters = 2});
  std::vector<std::optional<boost::system::result<Permit>>> results(3);
  for (int i = 0; i < 3; ++i) {
    spawn(io, [&, i]() -> asio::awaitable<void> { results[i] = co_await sem.acquire(); });
  }
  io.poll();
  EXPECT_FALSE(results[0].has_value());
  EXPECT_FALSE(results[1].has_value());
  ASSERT_TRUE(results[2].has_value());
  EXPECT_EQ(results[2]->error(), Errc::too_many_waiters);
  EXPECT_EQ(sem.stats().rejected_total, 1u);
  sem.set_capacity(2);  // growing grants both waiters
  io.restart();
  io.poll();
  EXPECT_TRUE(results[0].has_value() && *results[0]);
  EXPECT_TRUE(results[1].has_value() && *results[1]);
  EXPECT_EQ(sem.in_use(), 2u);
}

TEST(AsyncSemaphore, ShrinkingTakesEffectAsHoldersRelease) {
  asio::io_context io;
  AsyncSemaphore sem({.capacity = 3});
  auto a = sem.try_acquire();
  auto b = sem.try_acquire();
  auto c = sem.try_acquire();
  sem.set_capacity(1);
  EXPECT_EQ(sem.in_use(), 3u);  // held permits are not revoked
  std::optional<boost::system::result<Permit>> waiter;
  spawn(io, [&]() -> asio::awaitable<void> { waiter = co_await sem.acquire(); });
  io.poll();
  a.reset();
  b.reset();
  io.restart();
  io.poll();
  EXPECT_FALSE(waiter.has_value());  // in_use 1 == capacity 1
  c.reset();
  io.restart();
  io.poll();
  ASSERT_TRUE(waiter.has_value());
  EXPECT_TRUE(*waiter);
  EXPECT_EQ(sem.in_use(), 1u);
}

TEST(AsyncSemaphore, CloseFailsWaitersAndLaterAcquires) {
  asio::io_context io;
  AsyncSemaphore sem({.capacity = 1});
  auto holder = sem.try_acquire();
  std::optional<boost::system::result<Permit>> waiter;
  spawn(io, [&]() -> asio::awaitable<void> { waiter = co_await sem.acquire(); });
  io.poll();
  sem.close();
  io.restart();
  io.poll();
  ASSERT_TRUE(waiter.has_value());
  EXPECT_EQ(waiter->error(), Errc::semaphore_closed);
  EXPECT_FALSE(sem.try_acquire());
  holder.reset();  // a held permit stays valid and releases normally
  EXPECT_EQ(sem.in_use(), 0u);
  EXPECT_TRUE(sem.stats().closed);
}

// Coroutines on two threads contend for 3 permits; the count of simultaneous holders never
// exceeds the capacity (run under TSan in CI).
TEST(AsyncSemaphore, CrossThreadContentionRespectsCapacity) {
  constexpr int kCoroutines = 8;
  constexpr int kIterations = 500;
  asio::io_context io_a;
  asio::io_context io_b;
  AsyncSemaphore sem({.capacity = 3});
  std::atomic<int> holders{0};
  std::atomic<int> max_holders{0};
  std::atomic<int> done{0};
  for (int c = 0; c < kCoroutines; ++c) {
    auto& io = (c % 2 == 0) ? io_a : io_b;
    spawn(io, [&]() -> asio::awaitable<void> {
      for (int i = 0; i < kIterations; ++i) {
        auto p = co_await sem.acquire();
        EXPECT_TRUE(p);
        const int now = ++holders;
        int seen = max_holders.load();
        while (now > seen && !max_holders.compare_exchange_weak(seen, now)) {
        }
        co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
        --holders;
      }
      ++done;
    });
  }
  std::thread ta([&] { io_a.run(); });
  std::thread tb([&] { io_b.run(); });
  ta.join();
  tb.join();
  EXPECT_EQ(done.load(), kCoroutines);
  EXPECT_LE(max_holders.load(), 3);
  const auto s = sem.stats();
  EXPECT_EQ(s.in_use, 0u);
  EXPECT_EQ(s.acquired_total, uint64_t{kCoroutines} * kIterations);
}

}  // namespace
}  // namespace sluice::flow
