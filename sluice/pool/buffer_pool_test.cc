#include "sluice/pool/buffer_pool.h"

#include <gtest/gtest.h>

#include <barrier>
#include <cstring>
#include <thread>
#include <vector>

namespace sluice::pool {
namespace {

TEST(BufferPoolTest, SizeClassesArePowersOfTwoFromMinToMax) {
  BufferPool pool;
  EXPECT_EQ(pool.class_size(0), 1024u);
  EXPECT_EQ(pool.class_size(1), 1024u);
  EXPECT_EQ(pool.class_size(1024), 1024u);
  EXPECT_EQ(pool.class_size(1025), 2048u);
  EXPECT_EQ(pool.class_size(4096), 4096u);
  EXPECT_EQ(pool.class_size(4097), 8192u);
  EXPECT_EQ(pool.class_size(1024 * 1024), 1024u * 1024u);
  EXPECT_EQ(pool.class_size(1024 * 1024 + 1), 0u);
  EXPECT_EQ(pool.stats().classes.size(), 11u);
}

TEST(BufferPoolTest, ReusesABufferOfTheSameClass) {
  BufferPool pool;
  std::byte* first = nullptr;
  {
    PooledBuffer b = pool.acquire(3000);
    EXPECT_EQ(b.capacity(), 4096u);
    EXPECT_TRUE(b.pooled());
    std::memset(b.data(), 0xab, b.capacity());  // the whole capacity is usable
    first = b.data();
  }
  PooledBuffer same = pool.acquire(4000);
  EXPECT_EQ(same.data(), first);
  PooledBuffer other = pool.acquire(100);
  EXPECT_NE(other.data(), first);
  EXPECT_EQ(other.capacity(), 1024u);
  const auto s = pool.stats();
  EXPECT_EQ(s.total.created, 2u);
  EXPECT_EQ(s.total.reused, 1u);
  EXPECT_EQ(s.classes[2].size, 4096u);
  EXPECT_EQ(s.classes[2].reused, 1u);
  EXPECT_EQ(s.classes[2].outstanding, 1u);
  EXPECT_EQ(s.classes[0].outstanding, 1u);
  EXPECT_NEAR(s.reuse_rate(), 1.0 / 3.0, 1e-9);
}

TEST(BufferPoolTest, OversizedBuffersAreServedButNeverPooled) {
  BufferPool pool({.min_size = 1024, .max_size = 4096, .max_idle_bytes_per_class = 8192});
  {
    PooledBuffer big = pool.acquire(10000);
    EXPECT_EQ(big.capacity(), 10000u);
    EXPECT_FALSE(big.pooled());
    std::memset(big.data(), 1, big.capacity());
  }
  const auto s = pool.stats();
  EXPECT_EQ(s.oversized, 1u);
  EXPECT_EQ(s.oversized_bytes, 10000u);
  EXPECT_EQ(s.total.idle, 0u);
  EXPECT_EQ(s.idle_bytes, 0u);
}

TEST(BufferPoolTest, IdleBytesPerClassBoundTheIdleList) {
  // 8 KiB per class: 8 buffers of 1 KiB, 2 of 4 KiB.
  BufferPool pool({.min_size = 1024, .max_size = 4096, .max_idle_bytes_per_class = 8192});
  std::vector<PooledBuffer> held;
  for (int i = 0; i < 5; ++i) held.push_back(pool.acquire(4096));
  held.clear();
  auto s = pool.stats();
  EXPECT_EQ(s.classes[2].idle, 2u);
  EXPECT_EQ(s.classes[2].returned, 2u);
  EXPECT_EQ(s.classes[2].overflow, 3u);
  EXPECT_EQ(s.idle_bytes, 8192u);
  EXPECT_EQ(pool.trim(), 8192u);
  EXPECT_EQ(pool.stats().idle_bytes, 0u);
}

TEST(BufferPoolTest, DiscardFreesWithoutReturning) {
  BufferPool pool;
  PooledBuffer b = pool.acquire(2048);
  b.discard();
  EXPECT_FALSE(b);
  const auto s = pool.stats();
  EXPECT_EQ(s.total.discarded, 1u);
  EXPECT_EQ(s.total.idle, 0u);
  EXPECT_EQ(s.total.outstanding, 0u);
}

TEST(BufferPoolTest, MoveTransfersOwnership) {
  BufferPool pool;
  PooledBuffer a = pool.acquire(2048);
  PooledBuffer b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): checking the moved-from state
  PooledBuffer c;
  c = std::move(b);
  EXPECT_EQ(c.capacity(), 2048u);
  c.reset();
  EXPECT_EQ(pool.stats().total.returned, 1u);
}

TEST(BufferPoolTest, ConcurrentAcquireReleaseOfMixedSizes) {
  constexpr int kThreads = 4;
  constexpr int kIterations = 2000;
  BufferPool pool;
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kIterations; ++i) {
        const size_t size = 512u << ((i + t) % 6);
        PooledBuffer b = pool.acquire(size);
        std::memset(b.data(), t, size);
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto s = pool.stats();
  EXPECT_EQ(s.total.created + s.total.reused, uint64_t{kThreads} * kIterations);
  EXPECT_EQ(s.total.outstanding, 0u);
  EXPECT_EQ(s.total.returned + s.total.overflow, uint64_t{kThreads} * kIterations);
}

}  // namespace
}  // namespace sluice::pool
