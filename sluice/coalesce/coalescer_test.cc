#include "sluice/coalesce/coalescer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::coalesce {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Blocks until `done()` holds. Waits on a state (a counter of the coalescer), never on time.
template <class Pred>
void wait_until(Pred done) {
  while (!done()) std::this_thread::yield();
}

CoalescerOptions pure_single_flight(const base::Clock* clock = nullptr) {
  CoalescerOptions o;
  o.result_ttl = Duration::zero();
  o.clock = clock;
  return o;
}

TEST(Coalescer, SameKeyFromManyThreadsRunsTheWorkOnce) {
  constexpr int kThreads = 8;
  Coalescer<std::string> c(pure_single_flight());
  std::atomic<int> executions{0};
  std::latch release(1);
  std::vector<boost::system::result<std::string>> results(kThreads);
  std::vector<std::jthread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      results[i] = c.run("question", [&] {
        executions.fetch_add(1);
        release.wait();  // blocks until every other caller has joined
        return std::string("answer");
      });
    });
  }
  wait_until([&] { return c.stats().coalesced == kThreads - 1; });
  release.count_down();
  threads.clear();
  EXPECT_EQ(executions.load(), 1);
  for (const auto& r : results) {
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r, "answer");
  }
  const auto s = c.stats();
  EXPECT_EQ(s.total_requests, uint64_t{kThreads});
  EXPECT_EQ(s.leaders, 1u);
  EXPECT_EQ(s.coalesced, uint64_t{kThreads - 1});
  EXPECT_EQ(s.waits, uint64_t{kThreads - 1});
  EXPECT_EQ(s.in_flight, 0u);
}

TEST(Coalescer, DifferentKeysRunIndependently) {
  Coalescer<int> c(pure_single_flight());
  std::latch both_running(2);  // each work waits for the other: serialised keys would deadlock
  auto work = [&](int v) {
    return [&, v] {
      both_running.arrive_and_wait();
      return v;
    };
  };
  boost::system::result<int> a, b;
  {
    std::jthread ta([&] { a = c.run("a", work(1)); });
    std::jthread tb([&] { b = c.run("b", work(2)); });
  }
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(*a, 1);
  EXPECT_EQ(*b, 2);
  EXPECT_EQ(c.stats().leaders, 2u);
  EXPECT_EQ(c.stats().coalesced, 0u);
}

TEST(Coalescer, ErrorValueReachesEveryWaiterAndIsNotCached) {
  constexpr int kThreads = 4;
  Coalescer<int> c;  // result_ttl 60 s, error_ttl 0
  std::atomic<int> executions{0};
  std::latch release(1);
  const auto failure = make_error_code(boost::system::errc::connection_refused);
  std::vector<boost::system::result<int>> results(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        results[i] = c.run("k", [&]() -> boost::system::result<int> {
          executions.fetch_add(1);
          release.wait();
          return failure;
        });
      });
    }
    wait_until([&] { return c.stats().coalesced == kThreads - 1; });
    release.count_down();
  }
  EXPECT_EQ(executions.load(), 1);
  for (const auto& r : results) {
    ASSERT_TRUE(r.has_error());
    EXPECT_EQ(r.error(), failure);
  }
  // Not cached: the next call runs the work again.
  const auto again = c.run("k", [&]() -> boost::system::result<int> {
    executions.fetch_add(1);
    return 7;
  });
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, 7);
  EXPECT_EQ(executions.load(), 2);
  EXPECT_EQ(c.stats().errors, 1u);
  EXPECT_EQ(c.stats().cache_hits, 0u);
}

TEST(Coalescer, ExceptionIsRethrownToEveryWaiterAndIsNotCached) {
  constexpr int kThreads = 4;
  Coalescer<int> c;
  std::atomic<int> executions{0};
  std::latch release(1);
  // Each thread keeps its own reference to the exception until after the joins, so the
  // shared exception object dies on this thread (libstdc++'s exception refcount is invisible
  // to TSan, as for any exception shared between threads through std::exception_ptr).
  std::vector<std::exception_ptr> caught(kThreads);
  std::vector<std::string> messages(kThreads);
  {
    std::vector<std::jthread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        try {
          (void)c.run("k", [&]() -> int {
            executions.fetch_add(1);
            release.wait();
            throw std::runtime_error("upstream exploded");
          });
        } catch (const std::runtime_error& e) {
          caught[i] = std::current_exception();
          messages[i] = e.what();
        }
      });
    }
    wait_until([&] { return c.stats().coalesced == kThreads - 1; });
    release.count_down();
  }
  EXPECT_EQ(executions.load(), 1);
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(messages[i], "upstream exploded");
    ASSERT_TRUE(caught[i]);
    EXPECT_EQ(caught[i], caught[0]) << "every caller sees the one captured exception";
  }
  EXPECT_EQ(*c.run("k", [] { return 5; }), 5);  // not cached
  EXPECT_EQ(c.stats().errors, 1u);
  EXPECT_EQ(c.stats().leaders, 2u);
}

TEST(Coalescer, ErrorTtlCachesFailures) {
  base::ManualClock clock;
  CoalescerOptions o;
  o.error_ttl = seconds(5);
  o.clock = &clock;
  Coalescer<int> c(o);
  int executions = 0;
  auto failing = [&]() -> boost::system::result<int> {
    ++executions;
    return make_error_code(boost::system::errc::timed_out);
  };
  EXPECT_TRUE(c.run("k", failing).has_error());
  EXPECT_TRUE(c.run("k", failing).has_error());
  EXPECT_EQ(executions, 1);
  EXPECT_EQ(c.stats().cache_hits, 1u);
  clock.advance(seconds(5));
  EXPECT_TRUE(c.run("k", failing).has_error());
  EXPECT_EQ(executions, 2);
}

TEST(Coalescer, ResultTtlServesHitsUntilExpiry) {
  base::ManualClock clock;
  CoalescerOptions o;
  o.result_ttl = seconds(10);
  o.clock = &clock;
  Coalescer<std::string> c(o);
  int executions = 0;
  auto work = [&] { return "v" + std::to_string(++executions); };
  EXPECT_EQ(*c.run("k", work), "v1");
  EXPECT_EQ(*c.run("k", work), "v1");
  clock.advance(seconds(10) - Duration(1));
  EXPECT_EQ(*c.run("k", work), "v1");
  clock.advance(Duration(1));  // now exactly at expiry: expired
  EXPECT_EQ(*c.run("k", work), "v2");
  const auto s = c.stats();
  EXPECT_EQ(s.leaders, 2u);
  EXPECT_EQ(s.cache_hits, 2u);
  EXPECT_EQ(s.cache_expirations, 1u);
  EXPECT_EQ(s.cached_results, 1u);
  EXPECT_GT(s.cached_bytes, 0u);
}

TEST(Coalescer, ZeroTtlIsPureSingleFlight) {
  Coalescer<int> c(pure_single_flight());
  int executions = 0;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(*c.run("k", [&] { return ++executions; }), i + 1);
  EXPECT_EQ(c.stats().cache_hits, 0u);
  EXPECT_EQ(c.stats().cached_results, 0u);
  EXPECT_EQ(c.stats().leaders, 3u);
}

TEST(Coalescer, MaxInFlightRejectsNewKeysButNotJoiners) {
  CoalescerOptions o = pure_single_flight();
  o.max_in_flight = 1;
  Coalescer<int> c(o);
  std::latch release(1);
  boost::system::result<int> leader, joiner;
  std::jthread t1([&] {
    leader = c.run("a", [&] {
      release.wait();
      return 1;
    });
  });
  wait_until([&] { return c.stats().in_flight == 1; });
  std::jthread t2([&] { joiner = c.run("a", [] { return -1; }); });
  wait_until([&] { return c.stats().coalesced == 1; });
  bool ran = false;
  const auto refused = c.run("b", [&] {
    ran = true;
    return 2;
  });
  ASSERT_TRUE(refused.has_error());
  EXPECT_EQ(refused.error(), CoalesceError::too_many_in_flight);
  EXPECT_EQ(refused.error().category().name(), std::string("sluice.coalesce"));
  EXPECT_FALSE(ran);
  release.count_down();
  t1.join();
  t2.join();
  EXPECT_EQ(*leader, 1);
  EXPECT_EQ(*joiner, 1);
  EXPECT_EQ(*c.run("b", [] { return 2; }), 2);  // room again
  EXPECT_EQ(c.stats().rejected, 1u);
}

TEST(Coalescer, PastMaxWaitersTheCallerRunsAlone) {
  CoalescerOptions o = pure_single_flight();
  o.max_waiters_per_key = 1;
  Coalescer<int> c(o);
  std::latch release(1);
  boost::system::result<int> leader, joiner;
  std::jthread t1([&] {
    leader = c.run("k", [&] {
      release.wait();
      return 1;
    });
  });
  wait_until([&] { return c.stats().in_flight == 1; });
  std::jthread t2([&] { joiner = c.run("k", [] { return -1; }); });
  wait_until([&] { return c.stats().coalesced == 1; });
  const auto alone = c.run("k", [] { return 3; });  // would be the second waiter
  EXPECT_EQ(*alone, 3);
  release.count_down();
  t1.join();
  t2.join();
  EXPECT_EQ(*leader, 1);
  EXPECT_EQ(*joiner, 1);
  const auto s = c.stats();
  EXPECT_EQ(s.overflow, 1u);
  EXPECT_EQ(s.leaders, 1u);
  EXPECT_EQ(s.total_requests, 3u);
}

TEST(Coalescer, ForgetDropsTheCachedResultAndDetachesTheExecution) {
  base::ManualClock clock;
  CoalescerOptions o;
  o.result_ttl = seconds(60);
  o.clock = &clock;
  Coalescer<int> c(o);
  EXPECT_EQ(*c.run("k", [] { return 1; }), 1);
  EXPECT_EQ(*c.run("k", [] { return 2; }), 1);  // hit
  c.forget("k");
  EXPECT_EQ(*c.run("k", [] { return 3; }), 3);  // fresh execution
  c.forget("k");

  // Detach an execution in flight: its waiter still gets its result, but the next caller
  // starts afresh and the detached result is not cached over the fresh one.
  std::latch release(1);
  boost::system::result<int> old_leader, old_joiner;
  std::jthread t1([&] {
    old_leader = c.run("k", [&] {
      release.wait();
      return 4;
    });
  });
  wait_until([&] { return c.stats().in_flight == 1; });
  std::jthread t2([&] { old_joiner = c.run("k", [] { return -1; }); });
  wait_until([&] { return c.stats().coalesced == 1; });
  c.forget("k");
  EXPECT_EQ(*c.run("k", [] { return 5; }), 5);  // a new leader while the old one runs
  release.count_down();
  t1.join();
  t2.join();
  EXPECT_EQ(*old_leader, 4);
  EXPECT_EQ(*old_joiner, 4);
  EXPECT_EQ(*c.run("k", [] { return 6; }), 5) << "the detached result must not replace 5";
  EXPECT_EQ(c.stats().in_flight, 0u);
}

TEST(Coalescer, StatsAreExact) {
  base::ManualClock clock;
  CoalescerOptions o;
  o.result_ttl = seconds(1);
  o.max_in_flight = 1;
  o.clock = &clock;
  Coalescer<int> c(o);
  constexpr int kJoiners = 3;
  std::latch release(1);
  std::vector<std::jthread> threads;
  threads.emplace_back([&] {
    (void)c.run("k", [&] {
      release.wait();
      return 1;
    });
  });
  wait_until([&] { return c.stats().in_flight == 1; });
  for (int i = 0; i < kJoiners; ++i) {
    threads.emplace_back([&] { (void)c.run("k", [] { return -1; }); });
  }
  wait_until([&] { return c.stats().coalesced == kJoiners; });
  EXPECT_TRUE(c.run("other", [] { return 0; }).has_error());  // rejected
  clock.advance(milliseconds(5));  // every joiner waits exactly 5 ms of ManualClock time
  release.count_down();
  threads.clear();
  EXPECT_EQ(*c.run("k", [] { return -1; }), 1);  // hit
  EXPECT_TRUE(c.run("bad", [] {
                 return boost::system::result<int>(make_error_code(boost::system::errc::io_error));
               }).has_error());  // an execution that failed

  auto s = c.stats();
  EXPECT_EQ(s.total_requests, 7u);
  EXPECT_EQ(s.leaders, 2u);
  EXPECT_EQ(s.coalesced, uint64_t{kJoiners});
  EXPECT_EQ(s.cache_hits, 1u);
  EXPECT_EQ(s.rejected, 1u);
  EXPECT_EQ(s.overflow, 0u);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.total_requests, s.leaders + s.coalesced + s.cache_hits + s.rejected + s.overflow);
  EXPECT_DOUBLE_EQ(s.coalesce_rate(), 4.0 / 7.0);
  EXPECT_EQ(s.waits, uint64_t{kJoiners});
  EXPECT_EQ(s.total_wait, kJoiners * milliseconds(5));
  EXPECT_EQ(s.average_wait(), milliseconds(5));
  EXPECT_EQ(s.max_wait, milliseconds(5));
  EXPECT_EQ(s.cached_results, 1u);

  c.reset_stats();
  c.clear_cache();
  s = c.stats();
  EXPECT_EQ(s.total_requests, 0u);
  EXPECT_EQ(s.max_wait, Duration::zero());
  EXPECT_EQ(s.cached_results, 0u);
  EXPECT_DOUBLE_EQ(s.coalesce_rate(), 0.0);
}

TEST(Coalescer, CacheIsBoundedByEntriesAndBytes) {
  CoalescerOptions o;
  o.shards = 1;
  o.max_cached_results = 2;
  Coalescer<std::string> c(o);
  for (const char* key : {"a", "b", "c"}) (void)c.run(key, [] { return std::string("x"); });
  auto s = c.stats();
  EXPECT_EQ(s.cached_results, 2u);
  EXPECT_EQ(s.cache_evictions, 1u);

  o.max_cached_results = 100;
  o.max_cached_bytes = 1000;
  Coalescer<std::string> by_bytes(o);
  for (int i = 0; i < 10; ++i) {
    (void)by_bytes.run("k" + std::to_string(i), [] { return std::string(300, 'x'); });
  }
  s = by_bytes.stats();
  EXPECT_LE(s.cached_bytes, 1000u);
  EXPECT_GE(s.cached_results, 1u);
  EXPECT_LT(s.cached_results, 10u);
  EXPECT_GT(s.cache_evictions, 0u);
}

TEST(Coalescer, CustomWeigherChargesTheCache) {
  CoalescerOptions o;
  o.shards = 1;
  o.max_cached_bytes = 100;
  Coalescer<int> c(o, [](std::string_view, const internal::Outcome<int>&) { return size_t{40}; });
  for (int i = 0; i < 5; ++i) (void)c.run(std::to_string(i), [i] { return i; });
  EXPECT_EQ(c.stats().cached_results, 2u);
  EXPECT_EQ(c.stats().cached_bytes, 80u);
}

TEST(Coalescer, WorkMayReturnAConvertibleValue) {
  Coalescer<std::string> c;
  EXPECT_EQ(*c.run("lit", [] { return "literal"; }), "literal");
  EXPECT_EQ(*c.run("res", [] { return boost::system::result<std::string>("wrapped"); }), "wrapped");
}

}  // namespace
}  // namespace sluice::coalesce
