#include "sluice/batch/micro_batcher.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <latch>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::batch {
namespace {

using std::chrono::milliseconds;

// A batch function that doubles each request and records the batch sizes it saw.
struct Doubler {
  std::mutex mu;
  std::vector<std::size_t> sizes;

  MicroBatcher<int, int>::BatchFn fn() {
    return [this](std::span<int> reqs) {
      {
        std::lock_guard lk(mu);
        sizes.push_back(reqs.size());
      }
      std::vector<Result<int>> out;
      for (int r : reqs) out.emplace_back(r * 2);
      return out;
    };
  }
  std::vector<std::size_t> seen() {
    std::lock_guard lk(mu);
    return sizes;
  }
};

MicroBatcherOptions options(std::size_t max_batch) {
  MicroBatcherOptions o;
  o.max_batch = max_batch;
  o.max_wait = milliseconds(10);
  return o;
}

TEST(MicroBatcher, GroupsCallsIntoFullBatches) {
  base::ManualClock clock;  // never advanced: only full batches can be cut
  Doubler d;
  MicroBatcher<int, int> mb(d.fn(), options(4), clock);
  std::vector<std::future<Result<int>>> futures;
  for (int i = 0; i < 8; ++i) futures.push_back(mb.submit(i));
  for (int i = 0; i < 8; ++i) {
    Result<int> r = futures[static_cast<std::size_t>(i)].get();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r, i * 2);
  }
  EXPECT_EQ(d.seen(), (std::vector<std::size_t>{4, 4}));
  const MicroBatcherStats s = mb.stats();
  EXPECT_EQ(s.calls, 8u);
  EXPECT_EQ(s.batches, 2u);
  EXPECT_EQ(s.batches_full, 2u);
  EXPECT_EQ(s.min_batch_size, 4u);
  EXPECT_EQ(s.max_batch_size, 4u);
  EXPECT_DOUBLE_EQ(s.avg_batch_size(), 4.0);
  EXPECT_EQ(s.batch_size_buckets[MicroBatcherStats::bucket_of(4)], 2u);
}

TEST(MicroBatcher, CutsAPartialBatchAfterMaxWait) {
  base::ManualClock clock;
  Doubler d;
  MicroBatcher<int, int> mb(d.fn(), options(10), clock);
  std::vector<std::future<Result<int>>> futures;
  for (int i = 0; i < 3; ++i) futures.push_back(mb.submit(i));
  EXPECT_EQ(mb.stats().batches, 0u);  // not full, not aged
  EXPECT_EQ(futures[0].wait_for(Duration::zero()), std::future_status::timeout);
  clock.advance(milliseconds(10));
  mb.wake();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*futures[static_cast<std::size_t>(i)].get(), i * 2);
  EXPECT_EQ(d.seen(), (std::vector<std::size_t>{3}));
  EXPECT_EQ(mb.stats().batches_waited, 1u);
}

TEST(MicroBatcher, EachCallerGetsItsOwnResultOrError) {
  base::ManualClock clock;
  auto fn = [](std::span<int> reqs) {
    std::vector<Result<int>> out;
    for (int r : reqs) {
      if (r % 2 == 1) {
        out.emplace_back(
            boost::system::errc::make_error_code(boost::system::errc::invalid_argument));
      } else {
        out.emplace_back(r + 100);
      }
    }
    return out;
  };
  MicroBatcher<int, int> mb(fn, options(4), clock);
  std::vector<std::future<Result<int>>> futures;
  for (int i = 0; i < 4; ++i) futures.push_back(mb.submit(i));
  for (int i = 0; i < 4; ++i) {
    Result<int> r = futures[static_cast<std::size_t>(i)].get();
    if (i % 2 == 1) {
      ASSERT_FALSE(r.has_value());
      EXPECT_EQ(r.error(), boost::system::errc::invalid_argument);
    } else {
      EXPECT_EQ(*r, i + 100);
    }
  }
  const MicroBatcherStats s = mb.stats();
  EXPECT_EQ(s.results_ok, 2u);
  EXPECT_EQ(s.results_error, 2u);
}

TEST(MicroBatcher, WrongResultCountFailsEveryCallerOfTheBatch) {
  base::ManualClock clock;
  auto fn = [](std::span<int> reqs) {
    std::vector<Result<int>> out;
    for (std::size_t i = 0; i + 1 < reqs.size(); ++i) out.emplace_back(1);
    return out;
  };
  MicroBatcher<int, int> mb(fn, options(3), clock);
  std::vector<std::future<Result<int>>> futures;
  for (int i = 0; i < 3; ++i) futures.push_back(mb.submit(i));
  for (auto& f : futures) {
    Result<int> r = f.get();
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), Errc::wrong_result_count);
    EXPECT_NE(r.error().message().find("number of results"), std::string::npos);
  }
  EXPECT_EQ(mb.stats().wrong_result_count, 1u);
  EXPECT_EQ(mb.stats().results_error, 3u);
}

TEST(MicroBatcher, ThrowingBatchFunctionFailsEveryCaller) {
  base::ManualClock clock;
  auto fn = [](std::span<int>) -> std::vector<Result<int>> { throw std::runtime_error("down"); };
  MicroBatcher<int, int> mb(fn, options(2), clock);
  auto a = mb.submit(1);
  auto b = mb.submit(2);
  EXPECT_EQ(a.get().error(), Errc::batch_function_threw);
  EXPECT_EQ(b.get().error(), Errc::batch_function_threw);
  EXPECT_EQ(mb.stats().function_threw, 1u);
}

TEST(MicroBatcher, CallbackFormRunsOnAWorker) {
  base::ManualClock clock;
  Doubler d;
  MicroBatcher<int, int> mb(d.fn(), options(2), clock);
  std::promise<std::thread::id> where;
  std::promise<int> value;
  mb.submit(20, [&](Result<int> r) {
    where.set_value(std::this_thread::get_id());
    value.set_value(*r);
  });
  EXPECT_EQ(*mb.call(1), 2);  // fills the batch of two
  EXPECT_EQ(value.get_future().get(), 40);
  EXPECT_NE(where.get_future().get(), std::this_thread::get_id());
}

TEST(MicroBatcher, RefusesCallsBeyondMaxPendingAndRunsQueuedOnStop) {
  base::ManualClock clock;
  Doubler d;
  MicroBatcherOptions o = options(100);
  o.max_pending = 2;
  MicroBatcher<int, int> mb(d.fn(), o, clock);
  auto a = mb.submit(1);
  auto b = mb.submit(2);
  Result<int> refused = mb.submit(3).get();  // refused inline
  EXPECT_EQ(refused.error(), Errc::overloaded);
  mb.stop();
  EXPECT_EQ(*a.get(), 2);
  EXPECT_EQ(*b.get(), 4);
  EXPECT_EQ(mb.submit(4).get().error(), Errc::stopped);
  const MicroBatcherStats s = mb.stats();
  EXPECT_EQ(s.rejected_overloaded, 1u);
  EXPECT_EQ(s.rejected_stopped, 1u);
  EXPECT_EQ(s.batches_stopping, 1u);
  EXPECT_EQ(s.max_pending_seen, 2u);
}

TEST(MicroBatcher, TimedCallReturnsTimedOutWhileTheBatchRuns) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  auto fn = [released](std::span<int> reqs) {
    released.wait();
    return std::vector<Result<int>>(reqs.size(), Result<int>(7));
  };
  MicroBatcherOptions o = options(1);
  MicroBatcher<int, int> mb(fn, o);
  // The batch function cannot return before `release`, so the wait must run out.
  Result<int> r = mb.call(1, milliseconds(1));
  EXPECT_EQ(r.error(), Errc::timed_out);
  release.set_value();
  mb.stop();
  EXPECT_EQ(mb.stats().caller_timeouts, 1u);
  EXPECT_EQ(mb.stats().results_ok, 1u);
}

TEST(MicroBatcher, ManyThreadsEachGetTheirOwnAnswer) {
  Doubler d;
  MicroBatcherOptions o;
  o.max_batch = 16;
  o.max_wait = std::chrono::microseconds(200);
  o.workers = 2;
  MicroBatcher<int, int> mb(d.fn(), o);
  constexpr int kThreads = 8;
  constexpr int kCalls = 500;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kCalls; ++i) {
        const int req = t * kCalls + i;
        Result<int> r = mb.call(req);
        ASSERT_TRUE(r.has_value());
        ASSERT_EQ(*r, req * 2);
      }
    });
  }
  for (auto& t : threads) t.join();
  const MicroBatcherStats s = mb.stats();
  EXPECT_EQ(s.calls, static_cast<uint64_t>(kThreads * kCalls));
  EXPECT_EQ(s.results_ok, s.calls);
  uint64_t bucketed = 0;
  for (uint64_t n : s.batch_size_buckets) bucketed += n;
  EXPECT_EQ(bucketed, s.batches);
  EXPECT_LE(s.max_batch_size, 16u);
  EXPECT_GE(s.min_batch_size, 1u);
}

TEST(MicroBatcherStats, Buckets) {
  EXPECT_EQ(MicroBatcherStats::bucket_of(1), 0u);
  EXPECT_EQ(MicroBatcherStats::bucket_of(2), 1u);
  EXPECT_EQ(MicroBatcherStats::bucket_of(3), 1u);
  EXPECT_EQ(MicroBatcherStats::bucket_of(4), 2u);
  EXPECT_EQ(MicroBatcherStats::bucket_of(127), 6u);
  EXPECT_EQ(MicroBatcherStats::bucket_of(128), 7u);
  EXPECT_EQ(MicroBatcherStats::bucket_of(100000), 7u);
}

}  // namespace
}  // namespace sluice::batch
