#include "sluice/batch/batcher.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <latch>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <vector>

#include "sluice/base/clock.h"

namespace sluice::batch {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A sink that records batches and fails on demand.
class RecordingSink final : public Sink<int> {
 public:
  boost::system::error_code write(std::span<const int> items) override {
    std::lock_guard lk(mu_);
    ++attempts_;
    if (throw_next_ > 0) {
      --throw_next_;
      throw std::runtime_error("sink exploded");
    }
    if (fail_always_ || fail_next_ > 0) {
      if (fail_next_ > 0) --fail_next_;
      return boost::system::errc::make_error_code(boost::system::errc::io_error);
    }
    batches_.emplace_back(items.begin(), items.end());
    written_ += items.size();
    cv_.notify_all();
    return {};
  }

  void fail_next(int n) {
    std::lock_guard lk(mu_);
    fail_next_ = n;
  }
  void throw_next(int n) {
    std::lock_guard lk(mu_);
    throw_next_ = n;
  }
  void set_fail_always(bool on) {
    std::lock_guard lk(mu_);
    fail_always_ = on;
  }
  std::vector<std::vector<int>> batches() const {
    std::lock_guard lk(mu_);
    return batches_;
  }
  std::vector<int> items() const {
    std::lock_guard lk(mu_);
    std::vector<int> all;
    for (const auto& b : batches_) all.insert(all.end(), b.begin(), b.end());
    return all;
  }
  std::size_t attempts() const {
    std::lock_guard lk(mu_);
    return attempts_;
  }
  // Blocks until at least `n` items were written (a condition wait, not a sleep).
  void wait_for_written(std::size_t n) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return written_ >= n; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<int>> batches_;
  std::size_t written_ = 0;
  std::size_t attempts_ = 0;
  int fail_next_ = 0;
  int throw_next_ = 0;
  bool fail_always_ = false;
};

// Collects spilled batches.
struct SpillBox {
  std::mutex mu;
  std::vector<int> items;
  std::size_t calls = 0;
  bool fail = false;

  Batcher<int>::SpillFn fn() {
    return [this](std::span<const int> batch) -> boost::system::error_code {
      std::lock_guard lk(mu);
      ++calls;
      if (fail)
        return boost::system::errc::make_error_code(boost::system::errc::no_space_on_device);
      items.insert(items.end(), batch.begin(), batch.end());
      return {};
    };
  }
};

BatcherOptions manual_options() {
  BatcherOptions o;
  o.mode = RunMode::manual;
  o.batch_size = 3;
  o.flush_interval = seconds(5);
  o.max_queue = 100;
  o.retry_base_delay = milliseconds(100);
  o.retry_max_delay = seconds(1);
  return o;
}

void add_range(Batcher<int>& b, int from, int to) {
  for (int i = from; i < to; ++i) ASSERT_EQ(b.add(i), AddResult::accepted) << i;
}

// Checks the accounting identity: every accepted item is written, spilled, dropped or pending.
void expect_accounted(const BatcherStats& s) {
  EXPECT_EQ(s.added,
            s.written + s.spilled + s.dropped_oldest + s.dropped_sink_failed + s.pending());
}

std::vector<int> iota(int from, int to) {
  std::vector<int> v(static_cast<std::size_t>(to - from));
  std::iota(v.begin(), v.end(), from);
  return v;
}

TEST(Batcher, WritesFullBatchesBySize) {
  RecordingSink sink;
  base::ManualClock clock;
  Batcher<int> b(sink, manual_options(), {}, clock);
  add_range(b, 0, 7);
  EXPECT_FALSE(b.pump());
  EXPECT_EQ(sink.batches(), (std::vector<std::vector<int>>{{0, 1, 2}, {3, 4, 5}}));
  const BatcherStats s = b.stats();
  EXPECT_EQ(s.added, 7u);
  EXPECT_EQ(s.written, 6u);
  EXPECT_EQ(s.batches, 2u);
  EXPECT_DOUBLE_EQ(s.avg_batch_size(), 3.0);
  EXPECT_EQ(s.queue_depth, 1u);
  EXPECT_EQ(s.max_queue_depth, 7u);
  expect_accounted(s);
}

TEST(Batcher, WritesPartialBatchWhenOldestItemReachesInterval) {
  RecordingSink sink;
  base::ManualClock clock;
  Batcher<int> b(sink, manual_options(), {}, clock);
  const TimePoint start = clock.now();
  add_range(b, 0, 1);
  clock.advance(seconds(2));
  add_range(b, 1, 2);
  ASSERT_TRUE(b.next_due().has_value());
  EXPECT_EQ(*b.next_due(), start + seconds(5));
  b.pump();
  EXPECT_TRUE(sink.batches().empty());
  clock.advance(seconds(3) - milliseconds(1));
  b.pump();
  EXPECT_TRUE(sink.batches().empty());
  clock.advance(milliseconds(1));
  b.pump();
  EXPECT_EQ(sink.batches(), (std::vector<std::vector<int>>{{0, 1}}));
  EXPECT_FALSE(b.next_due().has_value());
}

TEST(Batcher, FlusherThreadHonoursIntervalOnManualClock) {
  RecordingSink sink;
  base::ManualClock clock;
  BatcherOptions o = manual_options();
  o.mode = RunMode::thread;
  o.batch_size = 100;
  Batcher<int> b(sink, o, {}, clock);
  add_range(b, 0, 2);
  EXPECT_EQ(b.stats().written, 0u);  // neither full nor aged: the flusher cannot have written
  clock.advance(seconds(5));
  b.wake();
  sink.wait_for_written(2);
  EXPECT_EQ(sink.batches(), (std::vector<std::vector<int>>{{0, 1}}));
}

TEST(Batcher, StopDrainsEverythingInOrder) {
  RecordingSink sink;
  base::ManualClock clock;
  BatcherOptions o;
  o.batch_size = 100;
  o.flush_interval = hours(1);
  Batcher<int> b(sink, o, {}, clock);
  add_range(b, 0, 250);
  b.stop();
  EXPECT_EQ(sink.items(), iota(0, 250));
  const BatcherStats s = b.stats();
  EXPECT_EQ(s.written, 250u);
  EXPECT_EQ(s.pending(), 0u);
  EXPECT_EQ(b.add(1), AddResult::stopped);
  EXPECT_EQ(b.stats().dropped_stopped, 1u);
  b.stop();  // idempotent
}

TEST(Batcher, ExplicitFlushWritesPartialBatchAndReturnsAfterwards) {
  RecordingSink sink;
  base::ManualClock clock;
  BatcherOptions o;
  o.batch_size = 100;
  o.flush_interval = hours(1);
  Batcher<int> b(sink, o, {}, clock);
  add_range(b, 0, 5);
  b.flush();
  EXPECT_EQ(sink.items(), iota(0, 5));
  EXPECT_EQ(b.stats().written, 5u);
  b.flush();  // nothing pending: returns at once
  add_range(b, 5, 6);
  b.flush();
  EXPECT_EQ(sink.batches().size(), 2u);
}

TEST(Batcher, RequestFlushInManualModeIsReadyAfterPump) {
  RecordingSink sink;
  base::ManualClock clock;
  Batcher<int> b(sink, manual_options(), {}, clock);
  add_range(b, 0, 2);
  std::future<void> f = b.request_flush();
  add_range(b, 2, 3);  // after the flush request; still written since it fills the batch
  EXPECT_EQ(f.wait_for(Duration::zero()), std::future_status::timeout);
  b.pump();
  EXPECT_EQ(f.wait_for(Duration::zero()), std::future_status::ready);
  EXPECT_EQ(sink.items(), iota(0, 3));
  std::future<void> empty = b.request_flush();
  EXPECT_EQ(empty.wait_for(Duration::zero()), std::future_status::ready);
}

TEST(Batcher, DropNewestRefusesItemsAtTheBound) {
  RecordingSink sink;
  base::ManualClock clock;
  BatcherOptions o = manual_options();
  o.max_queue = 3;
  o.batch_size = 10;
  o.overflow = OverflowPolicy::drop_newest;
  Batcher<int> b(sink, o, {}, clock);
  add_range(b, 0, 3);
  EXPECT_EQ(b.add(3), AddResult::dropped_full);
  EXPECT_EQ(b.add(4), AddResult::dropped_full);
  b.stop();
  EXPECT_TRUE(b.pump());
  EXPECT_EQ(sink.items(), iota(0, 3));
  const BatcherStats s = b.stats();
  EXPECT_EQ(s.dropped_full, 2u);
  EXPECT_EQ(s.dropped(), 2u);
  expect_accounted(s);
}

TEST(Batcher, DropOldestKeepsNewestItems) {
  RecordingSink sink;
  base::ManualClock clock;
  BatcherOptions o = manual_options();
  o.max_queue = 3;
  o.batch_size = 10;
  o.overflow = OverflowPolicy::drop_oldest;
  Batcher<int> b(sink, o, {}, clock);
  add_range(b, 0, 3);
  std::future<void> f = b.request_flush();  // covers 0..2
  EXPECT_EQ(b.add(3), AddResult::accepted_dropped_oldest);
  EXPECT_EQ(b.add(4), AddResult::accepted_dropped_oldest);
  EXPECT_EQ(f.wait_for(Duration::zero()), std::future_status::timeout);  // 2 still queued
  b.pump();
  EXPECT_EQ(f.wait_for(Duration::zero()), std::future_status::ready);
  EXPECT_EQ(sink.items(), (std::vector<int>{2, 3, 4}));
  const BatcherStats s = b.stats();
  EXPECT_EQ(s.dropped_oldest, 2u);
  EXPECT_EQ(s.added, 5u);
  expect_accounted(s);
}

// Spins until `pred` holds; each check is a state read under the batcher's lock, not a timer.
template <class Pred>
void await(Pred pred) {
  while (!pred()) std::this_thread::yield();
}

TEST(Batcher, BlockPolicyWaitsForRoom) {
  RecordingSink sink;
  base::ManualClock clock;
  BatcherOptions o = manual_options();
  o.max_queue = 2;
  o.batch_size = 2;
  o.overflow = OverflowPolicy::block;
  Batcher<int> b(sink, o, {}, clock);
  add_range(b, 0, 2);
  AddResult result = AddResult::stopped;
  std::thread producer([&] { result = b.add(2); });
  await([&] { return b.stats().blocked_producers == 1; });
  b.pump();  // writes {0, 1}: room for the producer
  producer.join();
  EXPECT_EQ(result, AddResult::accepted);
  EXPECT_EQ(b.stats().blocked_producers, 0u);
  b.stop();
  EXPECT_TRUE(b.pump());
  EXPECT_EQ(sink.items(), iota(0, 3));
}

TEST(Batcher, BlockPolicyTimesOutOnTheInjectedClock) {
  RecordingSink sink;
  base::ManualClock clock;
  BatcherOptions o = manual_options();
  o.max_queue = 1;
  o.overflow = OverflowPolicy::block;
  o.block_timeout = seconds(5);
  Batcher<int> b(sink, o, {}, clock);
  add_range(b, 0, 1);
  AddResult result = AddResult::accepted;
  std::thread producer([&] { result = b.add(1); });
  await([&] { return b.stats().blocked_producers == 1; });
  clock.advance(seconds(5));
  b.wake();
  producer.join();
  EXPECT_EQ(result, AddResult::timed_out);
  EXPECT_EQ(b.stats().dropped_timeout, 1u);
}

TEST(Batcher, BlockedProducerIsReleasedByStop) {
  RecordingSink sink;
  base::ManualClock clock;
  BatcherOptions o = manual_options();
  o.max_queue = 1;
  o.overflow = OverflowPolicy::block;
  Batcher<int> b(sink, o, {}, clock);
  add_range(b, 0, 1);
  AddResult result = AddResult::accepted;
  std::thread producer([&] { result = b.add(1); });
  await([&] { return b.stats().blocked_producers == 1; });
  b.stop();
  producer.join();
  EXPECT_EQ(result, AddResult::stopped);
  EXPECT_TRUE(b.pump());
  EXPECT_EQ(sink.items(), iota(0, 1));
  EXPECT_EQ(b.stats().dropped_stopped, 1u);
}

TEST(Batcher, RetriesWithBackoffUntilTheSinkRecovers) {
  RecordingSink sink;
  base::ManualClock clock;
  Batcher<int> b(sink, manual_options(), {}, clock);
  sink.fail_next(2);
  add_range(b, 0, 3);
  const TimePoint t0 = clock.now();
  b.pump();
  EXPECT_EQ(b.stats().sink_failures, 1u);
  EXPECT_EQ(b.stats().in_flight, 3u);
  EXPECT_EQ(*b.next_due(), t0 + milliseconds(100));
  add_range(b, 3, 6);  // a full batch queued behind the failing one must wait its turn
  clock.advance(milliseconds(99));
  b.pump();
  EXPECT_EQ(sink.attempts(), 1u);
  clock.advance(milliseconds(1));
  b.pump();
  EXPECT_EQ(sink.attempts(), 2u);
  EXPECT_EQ(*b.next_due(), clock.now() + milliseconds(200));
  clock.advance(milliseconds(200));
  b.pump();
  EXPECT_EQ(sink.batches(), (std::vector<std::vector<int>>{{0, 1, 2}, {3, 4, 5}}));
  const BatcherStats s = b.stats();
  EXPECT_EQ(s.sink_failures, 2u);
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.written, 6u);
  EXPECT_EQ(s.spilled, 0u);
  EXPECT_EQ(s.dropped(), 0u);
  EXPECT_EQ(s.max_flush_latency, milliseconds(300));  // taken at t0, written at t0 + 300 ms
  EXPECT_EQ(s.last_flush_latency, Duration::zero());  // the second batch went straight in
  expect_accounted(s);
}

TEST(Batcher, BackoffDoublesUpToTheCap) {
  RecordingSink sink;
  base::ManualClock clock;
  BatcherOptions o = manual_options();
  o.max_retries = 5;
  o.retry_base_delay = milliseconds(100);
  o.retry_max_delay = milliseconds(250);
  Batcher<int> b(sink, o, {}, clock);
  sink.set_fail_always(true);
  add_range(b, 0, 3);
  b.pump();
  std::vector<Duration> delays;
  for (int i = 0; i < 5; ++i) {
    const Duration d = *b.next_due() - clock.now();
    delays.push_back(d);
    clock.advance(d);
    b.pump();
  }
  EXPECT_EQ(delays, (std::vector<Duration>{milliseconds(100), milliseconds(200), milliseconds(250),
                                           milliseconds(250), milliseconds(250)}));
  EXPECT_EQ(b.stats().dropped_sink_failed, 3u);  // no spill: counted as dropped
  EXPECT_EQ(b.stats().sink_failures, 6u);
}

TEST(Batcher, PermanentlyDownSinkSpillsEverything) {
  RecordingSink sink;
  base::ManualClock clock;
  SpillBox spill;
  BatcherOptions o = manual_options();
  o.batch_size = 4;
  o.max_retries = 2;
  Batcher<int> b(sink, o, spill.fn(), clock);
  sink.set_fail_always(true);
  add_range(b, 0, 10);
  b.stop();
  while (!b.pump()) clock.advance(*b.next_due() - clock.now());
  const BatcherStats s = b.stats();
  EXPECT_EQ(spill.items, iota(0, 10));
  EXPECT_EQ(s.spilled, s.added - s.written);
  EXPECT_EQ(s.spilled, 10u);
  EXPECT_EQ(s.spilled_batches, 3u);
  // The first batch: 1 + 2 retries; later ones once each (the sink is known to be down).
  EXPECT_EQ(s.sink_failures, 5u);
  EXPECT_EQ(s.retries, 2u);
  EXPECT_EQ(s.dropped(), 0u);
  expect_accounted(s);
}

TEST(Batcher, SinkThatComesBackAfterSpillGetsRetriesAgain) {
  RecordingSink sink;
  base::ManualClock clock;
  SpillBox spill;
  BatcherOptions o = manual_options();
  o.max_retries = 1;
  Batcher<int> b(sink, o, spill.fn(), clock);
  sink.fail_next(2);
  add_range(b, 0, 3);
  b.pump();
  clock.advance(milliseconds(100));
  b.pump();  // second failure: spilled
  EXPECT_EQ(spill.items, iota(0, 3));
  add_range(b, 3, 6);
  b.pump();  // sink is back
  EXPECT_EQ(sink.items(), iota(3, 6));
  sink.fail_next(1);
  add_range(b, 6, 9);
  b.pump();  // fails once; since the last write succeeded it is retried, not spilled
  EXPECT_EQ(b.stats().in_flight, 3u);
  clock.advance(milliseconds(100));
  b.pump();
  EXPECT_EQ(sink.items(), iota(3, 9));
  EXPECT_EQ(spill.calls, 1u);
}

TEST(Batcher, FailedSpillIsCountedAsDropped) {
  RecordingSink sink;
  base::ManualClock clock;
  SpillBox spill;
  spill.fail = true;
  BatcherOptions o = manual_options();
  o.max_retries = 0;
  Batcher<int> b(sink, o, spill.fn(), clock);
  sink.set_fail_always(true);
  add_range(b, 0, 3);
  b.pump();
  const BatcherStats s = b.stats();
  EXPECT_EQ(s.spill_failures, 1u);
  EXPECT_EQ(s.dropped_sink_failed, 3u);
  EXPECT_EQ(s.spilled, 0u);
  expect_accounted(s);
}

TEST(Batcher, ThrowingSinkIsAFailure) {
  RecordingSink sink;
  base::ManualClock clock;
  Batcher<int> b(sink, manual_options(), {}, clock);
  sink.throw_next(1);
  add_range(b, 0, 3);
  b.pump();
  EXPECT_EQ(b.stats().sink_failures, 1u);
  clock.advance(milliseconds(100));
  b.pump();
  EXPECT_EQ(sink.items(), iota(0, 3));
}

TEST(Batcher, ManualModeDestructorDrainsWithoutBackoff) {
  RecordingSink sink;
  base::ManualClock clock;
  SpillBox spill;
  sink.set_fail_always(true);
  {
    Batcher<int> b(sink, manual_options(), spill.fn(), clock);
    add_range(b, 0, 5);
    b.pump();  // first batch fails and waits for a retry
  }
  EXPECT_EQ(spill.items, iota(0, 5));
}

TEST(Batcher, ConcurrentProducersLoseNothing) {
  RecordingSink sink;
  BatcherOptions o;
  o.batch_size = 64;
  o.max_queue = 1'000;
  o.overflow = OverflowPolicy::block;
  o.flush_interval = milliseconds(1);
  Batcher<int> b(sink, o);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5'000;
  std::latch start(kThreads);
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) {
        EXPECT_EQ(b.add(t * kPerThread + i), AddResult::accepted);
        if (i % 1000 == 0) (void)b.stats();
      }
    });
  }
  for (auto& p : producers) p.join();
  b.stop();
  std::vector<int> items = sink.items();
  ASSERT_EQ(items.size(), static_cast<std::size_t>(kThreads * kPerThread));
  // Each producer's items arrive in its own order.
  std::vector<int> last(kThreads, -1);
  for (int v : items) {
    const int t = v / kPerThread;
    EXPECT_GT(v, last[static_cast<std::size_t>(t)]);
    last[static_cast<std::size_t>(t)] = v;
  }
  std::sort(items.begin(), items.end());
  EXPECT_EQ(items, iota(0, kThreads * kPerThread));
  const BatcherStats s = b.stats();
  EXPECT_EQ(s.written, s.added);
  EXPECT_LE(s.max_queue_depth, 1'000u);
  for (const auto& batch : sink.batches()) EXPECT_LE(batch.size(), 64u);
}

TEST(Batcher, ConcurrentFlushersAllReturn) {
  RecordingSink sink;
  BatcherOptions o;
  o.batch_size = 1'000;
  o.flush_interval = hours(1);
  Batcher<int> b(sink, o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        ASSERT_EQ(b.add(t * 100 + i), AddResult::accepted);
        b.flush();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(b.stats().written, 200u);
}

TEST(AddResult, Names) {
  EXPECT_TRUE(is_accepted(AddResult::accepted));
  EXPECT_TRUE(is_accepted(AddResult::accepted_dropped_oldest));
  EXPECT_FALSE(is_accepted(AddResult::dropped_full));
  EXPECT_EQ(to_string(AddResult::timed_out), "timed_out");
}

}  // namespace
}  // namespace sluice::batch
