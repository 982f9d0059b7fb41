#include "sluice/cache/lazy.h"

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sluice::cache {
namespace {

TEST(Lazy, ComputesOnFirstUseOnly) {
  int calls = 0;
  Lazy<std::string> lazy([&] {
    ++calls;
    return std::string("config");
  });
  EXPECT_FALSE(lazy.ready());
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(lazy.get(), "config");
  EXPECT_EQ(*lazy, "config");
  EXPECT_EQ(lazy->size(), 6u);
  EXPECT_TRUE(lazy.ready());
  EXPECT_EQ(calls, 1);
}

TEST(Lazy, ExceptionPropagatesAndNextCallRetries) {
  int calls = 0;
  Lazy<int> lazy([&] {
    if (++calls < 3) throw std::runtime_error("not yet");
    return 7;
  });
  EXPECT_THROW((void)lazy.get(), std::runtime_error);
  EXPECT_THROW((void)lazy.get(), std::runtime_error);
  EXPECT_FALSE(lazy.ready());
  EXPECT_EQ(lazy.get(), 7);
  EXPECT_EQ(lazy.get(), 7);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(lazy.failures(), 2u);
}

TEST(Lazy, ManyThreadsSeeOneComputation) {
  constexpr int kThreads = 8;
  std::atomic<int> calls{0};
  Lazy<std::vector<int>> lazy([&] {
    calls.fetch_add(1);
    return std::vector<int>(1000, 42);
  });
  std::barrier start(kThreads);
  std::vector<std::thread> threads;
  std::vector<const std::vector<int>*> seen(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      seen[t] = &lazy.get();
      EXPECT_EQ(seen[t]->at(999), 42);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(calls.load(), 1);
  for (const auto* p : seen) EXPECT_EQ(p, seen[0]);
}

TEST(Lazy, ConcurrentCallersRetryAfterAFailure) {
  constexpr int kThreads = 6;
  std::atomic<int> calls{0};
  Lazy<int> lazy([&] {
    if (calls.fetch_add(1) == 0) throw std::runtime_error("first attempt fails");
    return 99;
  });
  std::barrier start(kThreads);
  std::atomic<int> failures{0};
  std::atomic<int> successes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      try {
        EXPECT_EQ(lazy.get(), 99);
        successes.fetch_add(1);
      } catch (const std::runtime_error&) {
        failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 1);  // exactly the caller whose attempt threw
  EXPECT_EQ(successes.load(), kThreads - 1);
  EXPECT_EQ(calls.load(), 2);  // one failure, one success, then the value is shared
}

}  // namespace
}  // namespace sluice::cache
