#include "sluice/coalesce/async_coalescer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::coalesce {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using std::chrono::milliseconds;
using Result = boost::system::result<int>;

// A closed gate: work awaits `wait()` until the test calls `open()` (on the gate's executor).
class Gate {
 public:
  explicit Gate(const asio::any_io_executor& ex)
      : timer_(ex, asio::steady_timer::time_point::max()) {}
  awaitable<void> wait() {
    if (open_) co_return;
    co_await timer_.async_wait(asio::as_tuple(use_awaitable));
  }
  void open() {
    open_ = true;
    timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  bool open_ = false;
};

CoalescerOptions no_cache() {
  CoalescerOptions o;
  o.result_ttl = Duration::zero();
  return o;
}

// A completion handler for co_spawn that stores the result (or the exception).
struct Store {
  std::optional<Result>* out;
  std::exception_ptr* error = nullptr;
  void operator()(std::exception_ptr e, Result r) const {
    if (e) {
      ASSERT_NE(error, nullptr) << "unexpected exception";
      *error = e;
      return;
    }
    *out = std::move(r);
  }
};

TEST(AsyncCoalescer, ThousandWaitersShareOneExecution) {
  constexpr int kCallers = 1000;
  asio::io_context ctx;
  AsyncCoalescer<int> c(no_cache());
  Gate gate(ctx.get_executor());
  int executions = 0;
  std::vector<std::optional<Result>> results(kCallers);
  std::vector<int> resume_order;
  for (int i = 0; i < kCallers; ++i) {
    asio::co_spawn(
        ctx,
        [&, i]() -> awaitable<void> {
          results[i] = co_await c.run("k", [&]() -> awaitable<int> {
            ++executions;
            co_await gate.wait();
            co_return 42;
          });
          resume_order.push_back(i);
        },
        asio::detached);
  }
  while (c.stats().coalesced < kCallers - 1) ASSERT_EQ(ctx.run_one(), 1u);
  gate.open();
  ctx.run();
  EXPECT_EQ(executions, 1);
  for (const auto& r : results) {
    ASSERT_TRUE(r.has_value() && r->has_value());
    EXPECT_EQ(**r, 42);
  }
  ASSERT_EQ(resume_order.size(), size_t{kCallers});
  EXPECT_TRUE(std::is_sorted(resume_order.begin(), resume_order.end()))
      << "waiters are released in the order they joined";
  const auto s = c.stats();
  EXPECT_EQ(s.leaders, 1u);
  EXPECT_EQ(s.coalesced, uint64_t{kCallers - 1});
  EXPECT_EQ(s.waits, uint64_t{kCallers - 1});
  EXPECT_EQ(s.in_flight, 0u);
}

TEST(AsyncCoalescer, EachWaiterResumesOnItsOwnExecutor) {
  asio::io_context leader_ctx, waiter_ctx;
  auto guard_a = asio::make_work_guard(leader_ctx);
  auto guard_b = asio::make_work_guard(waiter_ctx);
  std::thread thread_a([&] { leader_ctx.run(); });
  std::thread thread_b([&] { waiter_ctx.run(); });
  const std::thread::id id_a = thread_a.get_id(), id_b = thread_b.get_id();

  AsyncCoalescer<int> c(no_cache());
  Gate gate(leader_ctx.get_executor());
  std::atomic<std::thread::id> work_thread, leader_thread, waiter_thread;
  std::promise<Result> leader_done, waiter_done;
  asio::co_spawn(
      leader_ctx,
      [&]() -> awaitable<void> {
        auto r = co_await c.run("k", [&]() -> awaitable<int> {
          work_thread = std::this_thread::get_id();
          co_await gate.wait();
          co_return 7;
        });
        leader_thread = std::this_thread::get_id();
        leader_done.set_value(r);
      },
      asio::detached);
  while (c.stats().in_flight == 0) std::this_thread::yield();
  asio::co_spawn(
      waiter_ctx,
      [&]() -> awaitable<void> {
        auto r = co_await c.run("k", []() -> awaitable<int> { co_return -1; });
        waiter_thread = std::this_thread::get_id();
        waiter_done.set_value(r);
      },
      asio::detached);
  while (c.stats().coalesced == 0) std::this_thread::yield();
  asio::post(leader_ctx, [&] { gate.open(); });
  const Result from_leader = leader_done.get_future().get();
  const Result from_waiter = waiter_done.get_future().get();
  guard_a.reset();
  guard_b.reset();
  thread_a.join();
  thread_b.join();

  EXPECT_EQ(*from_leader, 7);
  EXPECT_EQ(*from_waiter, 7);
  EXPECT_NE(id_a, id_b);
  EXPECT_EQ(work_thread.load(), id_a);
  EXPECT_EQ(leader_thread.load(), id_a);
  EXPECT_EQ(waiter_thread.load(), id_b) << "the waiter must resume on its own context";
}

TEST(AsyncCoalescer, CallerCancelledByATimerDoesNotCancelTheWork) {
  using namespace asio::experimental::awaitable_operators;
  asio::io_context ctx;
  AsyncCoalescer<int> c(no_cache());
  Gate gate(ctx.get_executor());
  int executions = 0;
  bool finished = false;
  std::vector<std::optional<Result>> joiners(3);
  asio::co_spawn(
      ctx,
      [&]() -> awaitable<void> {
        // The leader's own caller gives up after 1 ms; the work must keep running.
        asio::steady_timer timer(ctx, milliseconds(1));
        auto first = co_await (c.run("k", [&]() -> awaitable<int> {
          ++executions;
          co_await gate.wait();
          co_return 42;
        }) || timer.async_wait(use_awaitable));
        EXPECT_EQ(first.index(), 1u);
        EXPECT_EQ(c.stats().cancelled, 1u);
        EXPECT_EQ(c.stats().in_flight, 1u);
        for (auto& out : joiners) {
          asio::co_spawn(ctx, c.run("k", []() -> awaitable<int> { co_return -1; }), Store{&out});
        }
        co_await asio::post(ctx, use_awaitable);  // lets the joiners start and join
        EXPECT_EQ(c.stats().coalesced, 3u);
        gate.open();
        finished = true;
      },
      asio::detached);
  ctx.run();
  ASSERT_TRUE(finished);
  EXPECT_EQ(executions, 1);
  for (const auto& r : joiners) {
    ASSERT_TRUE(r.has_value() && r->has_value());
    EXPECT_EQ(**r, 42);
  }
}

TEST(AsyncCoalescer, JoinerCancelledThroughItsSlotLeavesTheOthers) {
  asio::io_context ctx;
  AsyncCoalescer<int> c(no_cache());
  Gate gate(ctx.get_executor());
  std::optional<Result> leader, cancelled, other;
  asio::cancellation_signal signal;
  asio::co_spawn(ctx,
                 c.run("k",
                       [&]() -> awaitable<int> {
                         co_await gate.wait();
                         co_return 9;
                       }),
                 Store{&leader});
  asio::co_spawn(ctx, c.run("k", []() -> awaitable<int> { co_return -1; }),
                 asio::bind_cancellation_slot(signal.slot(), Store{&cancelled}));
  asio::co_spawn(ctx, c.run("k", []() -> awaitable<int> { co_return -1; }), Store{&other});
  while (c.stats().coalesced < 2) ASSERT_EQ(ctx.run_one(), 1u);
  signal.emit(asio::cancellation_type::terminal);
  while (!cancelled) ASSERT_EQ(ctx.run_one(), 1u);
  ASSERT_TRUE(cancelled->has_error());
  EXPECT_EQ(cancelled->error(), CoalesceError::cancelled);
  EXPECT_FALSE(leader.has_value());
  gate.open();
  ctx.run();
  EXPECT_EQ(**leader, 9);
  EXPECT_EQ(**other, 9);
  EXPECT_EQ(c.stats().cancelled, 1u);
  EXPECT_EQ(c.stats().waits, 1u);
}

TEST(AsyncCoalescer, LeaderExceptionReachesEveryWaiter) {
  constexpr int kCallers = 10;
  asio::io_context ctx;
  AsyncCoalescer<int> c;
  Gate gate(ctx.get_executor());
  int executions = 0;
  std::vector<std::optional<Result>> results(kCallers);
  std::vector<std::exception_ptr> errors(kCallers);
  for (int i = 0; i < kCallers; ++i) {
    asio::co_spawn(ctx,
                   c.run("k",
                         [&]() -> awaitable<int> {
                           ++executions;
                           co_await gate.wait();
                           throw std::runtime_error("upstream exploded");
                         }),
                   Store{&results[i], &errors[i]});
  }
  while (c.stats().coalesced < kCallers - 1) ASSERT_EQ(ctx.run_one(), 1u);
  gate.open();
  ctx.run();
  EXPECT_EQ(executions, 1);
  for (int i = 0; i < kCallers; ++i) {
    ASSERT_TRUE(errors[i]);
    EXPECT_EQ(errors[i], errors[0]);
    try {
      std::rethrow_exception(errors[i]);
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "upstream exploded");
    }
  }
  EXPECT_EQ(c.stats().errors, 1u);
  EXPECT_EQ(c.stats().cached_results, 0u);  // failures are not cached by default
}

TEST(AsyncCoalescer, ErrorValueReachesEveryWaiter) {
  asio::io_context ctx;
  AsyncCoalescer<int> c;
  const auto failure = make_error_code(boost::system::errc::connection_reset);
  std::vector<std::optional<Result>> results(3);
  for (auto& out : results) {
    asio::co_spawn(ctx,
                   c.run("k",
                         [&]() -> awaitable<Result> {
                           // Yield once so the other callers join before the work ends (the
                           // work starts inline on the leader's executor).
                           co_await asio::post(ctx, use_awaitable);
                           co_return failure;
                         }),
                   Store{&out});
  }
  ctx.run();
  for (const auto& r : results) {
    ASSERT_TRUE(r && r->has_error());
    EXPECT_EQ(r->error(), failure);
  }
  EXPECT_EQ(c.stats().leaders, 1u);
  EXPECT_EQ(c.stats().coalesced, 2u);
}

TEST(AsyncCoalescer, PerCallTimeoutReleasesOnlyThatCaller) {
  asio::io_context ctx;
  AsyncCoalescer<int> c(no_cache());
  Gate gate(ctx.get_executor());
  std::optional<Result> timed, patient;
  asio::co_spawn(
      ctx,
      [&]() -> awaitable<void> {
        const Result r = co_await c.run(
            "k",
            [&]() -> awaitable<int> {
              co_await gate.wait();
              co_return 5;
            },
            RunOptions{.timeout = milliseconds(1)});
        timed = r;
        EXPECT_EQ(c.stats().in_flight, 1u) << "the work outlives the caller that timed out";
        asio::co_spawn(ctx, c.run("k", []() -> awaitable<int> { co_return -1; }), Store{&patient});
        co_await asio::post(ctx, use_awaitable);
        gate.open();
      },
      asio::detached);
  ctx.run();
  ASSERT_TRUE(timed && timed->has_error());
  EXPECT_EQ(timed->error(), CoalesceError::timeout);
  ASSERT_TRUE(patient && patient->has_value());
  EXPECT_EQ(**patient, 5);
  EXPECT_EQ(c.stats().timed_out, 1u);
  EXPECT_EQ(c.stats().leaders, 1u);
}

TEST(AsyncCoalescer, JoinersOnlyTimeoutLetsTheLeaderWaitForItsOwnWork) {
  asio::io_context ctx;
  AsyncCoalescer<int> c(no_cache());
  Gate gate(ctx.get_executor());
  const RunOptions options{.timeout = milliseconds(1), .timeout_joiners_only = true};
  std::optional<Result> leader;
  std::optional<Result> joiner;
  asio::co_spawn(ctx,
                 c.run(
                     "k",
                     [&]() -> awaitable<int> {
                       co_await gate.wait();
                       co_return 5;
                     },
                     options),
                 Store{&leader});
  asio::co_spawn(
      ctx,
      [&]() -> awaitable<void> {
        joiner = co_await c.run(
            "k", []() -> awaitable<int> { co_return -1; }, options);
        gate.open();  // only after the joiner gave up: the leader outlived the same timeout
      },
      asio::detached);
  ctx.run();
  ASSERT_TRUE(joiner && joiner->has_error());
  EXPECT_EQ(joiner->error(), CoalesceError::timeout);
  ASSERT_TRUE(leader && leader->has_value());
  EXPECT_EQ(**leader, 5);
  EXPECT_EQ(c.stats().timed_out, 1u);
  EXPECT_EQ(c.stats().leaders, 1u);
}

TEST(AsyncCoalescer, TimeoutLongerThanTheWorkReturnsTheValue) {
  asio::io_context ctx;
  AsyncCoalescer<int> c(no_cache());
  std::optional<Result> r;
  asio::co_spawn(ctx,
                 c.run(
                     "k", []() -> awaitable<int> { co_return 3; },
                     RunOptions{.timeout = std::chrono::hours(1)}),
                 Store{&r});
  ctx.run();
  EXPECT_EQ(**r, 3);
  EXPECT_EQ(c.stats().timed_out, 0u);
}

TEST(AsyncCoalescer, CachedResultIsServedWithoutCallingTheFactory) {
  base::ManualClock clock;
  CoalescerOptions o;
  o.result_ttl = std::chrono::seconds(30);
  o.clock = &clock;
  asio::io_context ctx;
  AsyncCoalescer<std::string> c(o);
  int executions = 0;
  auto factory = [&]() -> awaitable<std::string> { co_return "v" + std::to_string(++executions); };
  std::vector<std::string> seen;
  asio::co_spawn(
      ctx,
      [&]() -> awaitable<void> {
        seen.push_back(*co_await c.run("k", factory));
        seen.push_back(*co_await c.run("k", factory));
        clock.advance(std::chrono::seconds(30));
        seen.push_back(*co_await c.run("k", factory));
      },
      asio::detached);
  ctx.run();
  EXPECT_EQ(seen, (std::vector<std::string>{"v1", "v1", "v2"}));
  EXPECT_EQ(c.stats().cache_hits, 1u);
}

TEST(AsyncCoalescer, RejectsAndOverflowsLikeTheSyncForm) {
  CoalescerOptions o = no_cache();
  o.max_in_flight = 1;
  o.max_waiters_per_key = 1;
  asio::io_context ctx;
  AsyncCoalescer<int> c(o);
  Gate gate(ctx.get_executor());
  std::optional<Result> leader, joiner, alone, refused;
  asio::co_spawn(ctx,
                 c.run("a",
                       [&]() -> awaitable<int> {
                         co_await gate.wait();
                         co_return 1;
                       }),
                 Store{&leader});
  asio::co_spawn(ctx, c.run("a", []() -> awaitable<int> { co_return -1; }), Store{&joiner});
  asio::co_spawn(ctx, c.run("a", []() -> awaitable<int> { co_return 2; }), Store{&alone});
  asio::co_spawn(ctx, c.run("b", []() -> awaitable<int> { co_return 3; }), Store{&refused});
  while (!alone || !refused) ASSERT_EQ(ctx.run_one(), 1u);
  gate.open();
  ctx.run();
  EXPECT_EQ(**leader, 1);
  EXPECT_EQ(**joiner, 1);
  EXPECT_EQ(**alone, 2);
  EXPECT_EQ(refused->error(), CoalesceError::too_many_in_flight);
  const auto s = c.stats();
  EXPECT_EQ(s.overflow, 1u);
  EXPECT_EQ(s.rejected, 1u);
  EXPECT_EQ(s.total_requests, 4u);
}

TEST(AsyncCoalescer, CoalescerMayBeDestroyedWhileWorkRuns) {
  asio::io_context ctx;
  std::optional<Gate> gate(std::in_place, ctx.get_executor());
  std::optional<Result> r;
  {
    AsyncCoalescer<int> c(no_cache());
    asio::co_spawn(ctx,
                   c.run("k",
                         [&]() -> awaitable<int> {
                           co_await gate->wait();
                           co_return 1;
                         }),
                   Store{&r});
    while (c.stats().in_flight == 0) ASSERT_EQ(ctx.run_one(), 1u);
    // Pending calls and the detached work own the shared core.
  }
  gate->open();
  ctx.run();
  EXPECT_EQ(**r, 1);
}

TEST(AsyncCoalescer, RunSharedHandsEveryCallerTheOneValue) {
  constexpr int kCallers = 10;
  asio::io_context ctx;
  AsyncCoalescer<std::string> c(no_cache());
  Gate gate(ctx.get_executor());
  std::vector<std::shared_ptr<const std::string>> got(kCallers);
  for (int i = 0; i < kCallers; ++i) {
    asio::co_spawn(
        ctx,
        [&, i]() -> awaitable<void> {
          auto r = co_await c.run_shared("k", [&]() -> awaitable<std::string> {
            co_await gate.wait();
            co_return std::string(1000, 'b');
          });
          if (r) got[i] = *r;
        },
        asio::detached);
  }
  while (c.stats().coalesced < kCallers - 1) ASSERT_EQ(ctx.run_one(), 1u);
  gate.open();
  ctx.run();
  for (const auto& p : got) {
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p.get(), got[0].get()) << "no copy: every caller points at the same value";
    EXPECT_EQ(*p, std::string(1000, 'b'));
  }
}

TEST(AsyncCoalescer, RunSharedDeliversErrorsExceptionsAndCachedValues) {
  asio::io_context ctx;
  CoalescerOptions o;
  o.result_ttl = std::chrono::hours(1);
  AsyncCoalescer<std::string> c(o);
  std::optional<boost::system::result<std::shared_ptr<const std::string>>> err, first, cached;
  std::exception_ptr thrown;
  asio::co_spawn(
      ctx,
      [&]() -> awaitable<void> {
        err = co_await c.run_shared("e", []() -> awaitable<boost::system::result<std::string>> {
          co_return asio::error::connection_refused;
        });
        try {
          (void)co_await c.run_shared("x", []() -> awaitable<std::string> {
            throw std::runtime_error("upstream");
            co_return "";
          });
        } catch (const std::runtime_error&) {
          thrown = std::current_exception();
        }
        first = co_await c.run_shared("v", []() -> awaitable<std::string> { co_return "v1"; });
        cached = co_await c.run_shared("v", []() -> awaitable<std::string> { co_return "v2"; });
      },
      asio::detached);
  ctx.run();
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->error(), asio::error::connection_refused);
  EXPECT_NE(thrown, nullptr);
  ASSERT_TRUE(first && first->has_value() && cached && cached->has_value());
  EXPECT_EQ(***first, "v1");
  EXPECT_EQ((*first)->get(), (*cached)->get()) << "the cache hit aliases the cached outcome";
  EXPECT_EQ(c.stats().cache_hits, 1u);
}

// Waiters spread over more executors than a release batches (8): each still resumes on its
// own executor, in join order within it, and each joiner's wait is recorded exactly.
TEST(AsyncCoalescer, ReleaseAcrossManyExecutorsRecordsEveryWait) {
  constexpr size_t kContexts = 12;
  constexpr int kPerContext = 5;
  base::ManualClock clock;
  CoalescerOptions o = no_cache();
  o.clock = &clock;
  AsyncCoalescer<int> c(o);
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  for (size_t k = 0; k < kContexts; ++k) contexts.push_back(std::make_unique<asio::io_context>());
  Gate gate(contexts[0]->get_executor());
  std::vector<std::vector<int>> order(kContexts);
  int executions = 0, delivered = 0;
  for (int i = 0; i < kPerContext; ++i) {
    for (size_t k = 0; k < kContexts; ++k) {
      asio::co_spawn(
          *contexts[k],
          [&, i, k]() -> awaitable<void> {
            auto r = co_await c.run("k", [&]() -> awaitable<int> {
              ++executions;
              co_await gate.wait();
              co_return 5;
            });
            if (r && *r == 5) ++delivered;
            order[k].push_back(i);
          },
          asio::detached);
      // Join one at a time, in a known order.
      while (contexts[k]->poll() != 0) {
      }
    }
  }
  ASSERT_EQ(c.stats().coalesced, kContexts * kPerContext - 1);
  clock.advance(std::chrono::milliseconds(3));
  gate.open();
  for (auto& ctx : contexts) ctx->run();
  EXPECT_EQ(executions, 1);
  EXPECT_EQ(delivered, static_cast<int>(kContexts * kPerContext));
  for (const auto& v : order) {
    ASSERT_EQ(v.size(), size_t{kPerContext});
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
  }
  const auto s = c.stats();
  EXPECT_EQ(s.waits, kContexts * kPerContext - 1);
  EXPECT_EQ(s.total_wait, static_cast<int64_t>(s.waits) * std::chrono::milliseconds(3));
  EXPECT_EQ(s.max_wait, std::chrono::milliseconds(3));
}

}  // namespace
}  // namespace sluice::coalesce
