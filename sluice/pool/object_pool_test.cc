#include "sluice/pool/object_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sluice::pool {
namespace {

struct Buffer {
  std::string data;
  int generation = 0;
};

ObjectPool<Buffer>::Factory counting_factory(std::atomic<int>& made) {
  return [&made] {
    auto b = std::make_unique<Buffer>();
    b->generation = ++made;
    return b;
  };
}

TEST(ObjectPoolTest, ReusesReturnedObjectAndResetsIt) {
  std::atomic<int> made{0};
  int resets = 0;
  ObjectPool<Buffer> pool(counting_factory(made),
                          [&resets](Buffer& b) {
                            b.data.clear();
                            ++resets;
                          },
                          {.max_idle = 4, .max_total = 0});
  Buffer* first = nullptr;
  {
    auto h = pool.acquire();
    ASSERT_TRUE(h.has_value());
    h->get()->data = "dirty";
    first = h->get();
  }
  EXPECT_EQ(resets, 1);
  auto h = pool.acquire();
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->get(), first);
  EXPECT_TRUE((*h)->data.empty());
  EXPECT_EQ(made.load(), 1);
  const auto s = pool.stats();
  EXPECT_EQ(s.created, 1u);
  EXPECT_EQ(s.reused, 1u);
  EXPECT_EQ(s.returned, 1u);
  EXPECT_EQ(s.outstanding, 1u);
  EXPECT_EQ(s.idle, 0u);
  EXPECT_DOUBLE_EQ(s.reuse_rate(), 0.5);
}

TEST(ObjectPoolTest, LifoReuseHandsOutTheWarmestObject) {
  std::atomic<int> made{0};
  ObjectPool<Buffer> pool(counting_factory(made), nullptr, {.max_idle = 4});
  auto a = pool.acquire().value();
  auto b = pool.acquire().value();
  Buffer* pb = b.get();
  a.reset();
  b.reset();  // returned last
  auto c = pool.acquire().value();
  EXPECT_EQ(c.get(), pb);
}

TEST(ObjectPoolTest, MaxIdleDestroysTheSurplusAndCountsIt) {
  std::atomic<int> made{0};
  ObjectPool<Buffer> pool(counting_factory(made), nullptr, {.max_idle = 2});
  std::vector<ObjectPool<Buffer>::Handle> held;
  for (int i = 0; i < 5; ++i) held.push_back(pool.acquire().value());
  held.clear();
  const auto s = pool.stats();
  EXPECT_EQ(s.idle, 2u);
  EXPECT_EQ(s.returned, 2u);
  EXPECT_EQ(s.overflow, 3u);
  EXPECT_EQ(s.outstanding, 0u);
}

TEST(ObjectPoolTest, MaxTotalRefusesWithExhaustedUntilAnObjectComesBack) {
  std::atomic<int> made{0};
  ObjectPool<Buffer> pool(counting_factory(made), nullptr, {.max_idle = 4, .max_total = 2});
  auto a = pool.acquire();
  auto b = pool.acquire();
  ASSERT_TRUE(a && b);
  auto c = pool.acquire();
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error(), make_error_code(PoolErrc::exhausted));
  EXPECT_EQ(c.error().message(), "pool exhausted: max_total objects are alive");
  EXPECT_EQ(pool.stats().exhausted, 1u);
  a->reset();
  auto d = pool.acquire();
  EXPECT_TRUE(d.has_value());
  EXPECT_EQ(made.load(), 2);
}

TEST(ObjectPoolTest, DiscardDestroysAndFreesTheSlot) {
  std::atomic<int> made{0};
  ObjectPool<Buffer> pool(counting_factory(made), nullptr, {.max_idle = 4, .max_total = 1});
  auto a = pool.acquire().value();
  a.discard();
  EXPECT_FALSE(a);
  auto s = pool.stats();
  EXPECT_EQ(s.discarded, 1u);
  EXPECT_EQ(s.idle, 0u);
  EXPECT_EQ(s.outstanding, 0u);
  auto b = pool.acquire();
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ((*b)->generation, 2);  // a new object, not the discarded one
}

TEST(ObjectPoolTest, ThrowingResetDiscardsTheObject) {
  std::atomic<int> made{0};
  ObjectPool<Buffer> pool(counting_factory(made), [](Buffer&) { throw std::runtime_error("bad"); },
                          {.max_idle = 4});
  { auto a = pool.acquire().value(); }
  const auto s = pool.stats();
  EXPECT_EQ(s.discarded, 1u);
  EXPECT_EQ(s.idle, 0u);
}

TEST(ObjectPoolTest, ThrowingFactoryReleasesTheReservedSlot) {
  bool fail = true;
  ObjectPool<Buffer> pool(
      [&fail]() -> std::unique_ptr<Buffer> {
        if (fail) throw std::runtime_error("no memory");
        return std::make_unique<Buffer>();
      },
      nullptr, {.max_idle = 1, .max_total = 1});
  EXPECT_THROW((void)pool.acquire(), std::runtime_error);
  fail = false;
  EXPECT_TRUE(pool.acquire().has_value());
}

TEST(ObjectPoolTest, MovedHandleReturnsOnce) {
  std::atomic<int> made{0};
  ObjectPool<Buffer> pool(counting_factory(made), nullptr, {.max_idle = 4});
  auto a = pool.acquire().value();
  ObjectPool<Buffer>::Handle b = std::move(a);
  ObjectPool<Buffer>::Handle c;
  c = std::move(b);
  c.reset();
  EXPECT_EQ(pool.stats().returned, 1u);
  EXPECT_EQ(pool.stats().outstanding, 0u);
}

TEST(ObjectPoolTest, TrimDestroysIdleObjects) {
  std::atomic<int> made{0};
  ObjectPool<Buffer> pool(counting_factory(made), nullptr, {.max_idle = 8});
  {
    std::vector<ObjectPool<Buffer>::Handle> held;
    for (int i = 0; i < 5; ++i) held.push_back(pool.acquire().value());
  }
  EXPECT_EQ(pool.trim(2), 3u);
  EXPECT_EQ(pool.stats().idle, 2u);
}

TEST(ObjectPoolTest, ConcurrentAcquireReleaseKeepsCountsAndLimit) {
  constexpr int kThreads = 4;
  constexpr int kIterations = 2000;
  constexpr size_t kMaxTotal = 3;
  std::atomic<int> made{0};
  ObjectPool<Buffer> pool(counting_factory(made), [](Buffer& b) { b.data.clear(); },
                          {.max_idle = 2, .max_total = kMaxTotal});
  std::atomic<int> held{0};
  std::atomic<int> max_held{0};
  std::atomic<uint64_t> ok{0};
  std::atomic<uint64_t> refused{0};
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < kIterations; ++i) {
        auto h = pool.acquire();
        if (!h) {
          refused.fetch_add(1);
          continue;
        }
        ok.fetch_add(1);
        const int now = held.fetch_add(1) + 1;
        int prev = max_held.load();
        while (now > prev && !max_held.compare_exchange_weak(prev, now)) {
        }
        (*h)->data.append("x");  // exclusive use: TSan would flag sharing
        held.fetch_sub(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto s = pool.stats();
  EXPECT_LE(max_held.load(), static_cast<int>(kMaxTotal));
  EXPECT_EQ(s.created + s.reused, ok.load());
  EXPECT_EQ(s.exhausted, refused.load());
  EXPECT_EQ(s.outstanding, 0u);
  EXPECT_EQ(s.returned + s.overflow, ok.load());
  EXPECT_LE(s.idle, 2u);
}

}  // namespace
}  // namespace sluice::pool
