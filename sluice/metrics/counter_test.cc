#include "sluice/metrics/counter.h"

#include <gtest/gtest.h>

#include <barrier>
#include <thread>
#include <vector>

namespace sluice::metrics {
namespace {

TEST(Counter, IncrementsAndResets) {
  Counter c;
  EXPECT_EQ(c.value(), 0u);
  c.inc();
  c.inc(41);
  EXPECT_EQ(c.value(), 42u);
  c.reset();
  EXPECT_EQ(c.value(), 0u);
}

TEST(Counter, ConcurrentIncrementsAllCount) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50'000;
  Counter c;
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) c.inc();
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(c.value(), uint64_t{kThreads} * kPerThread);
}

TEST(Gauge, SetAddSub) {
  Gauge g;
  g.set(1.5);
  g.add(2.25);
  g.sub(0.75);
  EXPECT_DOUBLE_EQ(g.value(), 3.0);
  IntGauge depth;
  depth.add(5);
  depth.sub(7);
  EXPECT_EQ(depth.value(), -2);
  depth.reset();
  EXPECT_EQ(depth.value(), 0);
}

TEST(Gauge, ConcurrentAddsBalance) {
  IntGauge in_flight;
  Gauge level;
  std::barrier start(2);
  auto worker = [&] {
    start.arrive_and_wait();
    for (int i = 0; i < 20'000; ++i) {
      in_flight.add(1);
      level.add(0.5);
      in_flight.sub(1);
      level.sub(0.5);
    }
  };
  std::thread a(worker);
  std::thread b(worker);
  a.join();
  b.join();
  EXPECT_EQ(in_flight.value(), 0);
  EXPECT_DOUBLE_EQ(level.value(), 0.0);
}

}  // namespace
}  // namespace sluice::metrics
