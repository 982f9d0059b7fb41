// TaskManager: results and exceptions through futures, a full queue refused with a value, a
// deadline that passes in the queue, parallel_map with a concurrency cap, and a drain.
#include <atomic>
#include <cstdio>
#include <latch>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/exec/task_manager.h"

// Only for ThreadSanitizer builds: libstdc++ is not instrumented, so the reference count of the
// `std::exception_ptr` that carries an exception through a future looks like a race to TSan.
extern "C" const char* __tsan_default_suppressions() {
  return "race:std::__exception_ptr::exception_ptr::_M_release\n";
}

int main() {
  using namespace sluice::exec;
  using std::chrono::seconds;
  sluice::base::ManualClock clock;
  TaskManager tm({.workers = 2, .max_queue = 4}, clock);

  auto answer = tm.try_submit([] { return 6 * 7; });
  auto broken = tm.try_submit([]() -> int { throw std::runtime_error("upstream 503"); });
  std::printf("result %d; ", answer.value().get());
  try {
    broken.value().get();
  } catch (const std::exception& e) {
    std::printf("exception through the future: %s\n", e.what());
  }

  // Occupy both workers, fill the queue, and see the fifth submission refused.
  std::latch release(1);
  std::latch both_running(2);
  std::vector<std::future<void>> blockers;
  for (int i = 0; i < 2; ++i) {
    blockers.push_back(tm.try_submit([&] {
                           both_running.count_down();
                           release.wait();
                         }).value());
  }
  both_running.wait();
  auto expiring = tm.try_submit([] { return 1; }, {.timeout = seconds(5)});
  std::vector<std::future<int>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(tm.try_submit([i] { return i; }).value());
  auto refused = tm.try_submit([] { return 99; });
  std::printf("5th queued task with max_queue=4: %s\n",
              refused ? "accepted" : refused.error().message().c_str());
  clock.advance(seconds(10));  // the 5 s deadline passes while the task waits
  release.count_down();
  try {
    expiring.value().get();
  } catch (const TaskError& e) {
    std::printf("task with a 5 s timeout after 10 s in the queue: %s\n", e.what());
  }

  std::vector<int> inputs(1000);
  std::iota(inputs.begin(), inputs.end(), 1);
  std::atomic<int> current{0};
  std::atomic<int> peak{0};
  const auto squares = tm.parallel_map(
      inputs,
      [&](const int& x) {
        const int now = current.fetch_add(1) + 1;
        int prev = peak.load();
        while (now > prev && !peak.compare_exchange_weak(prev, now)) {
        }
        current.fetch_sub(1);
        return static_cast<long long>(x) * x;
      },
      2);
  const long long sum = std::accumulate(squares.begin(), squares.end(), 0LL);
  std::printf("parallel_map of 1000 squares (cap 2): sum %lld, peak concurrency %d\n", sum,
              peak.load());

  tm.shutdown(ShutdownMode::kDrain);
  const auto s = tm.stats();
  std::printf(
      "stats: submitted %llu, completed %llu, failed %llu, rejected %llu, timed out %llu, "
      "max queue depth %zu\n",
      static_cast<unsigned long long>(s.submitted), static_cast<unsigned long long>(s.completed),
      static_cast<unsigned long long>(s.failed), static_cast<unsigned long long>(s.rejected),
      static_cast<unsigned long long>(s.timed_out()), s.max_queue_depth);
  const bool ok = sum == 333'833'500LL && peak.load() <= 2 && s.rejected == 1 &&
                  s.timed_out_not_started == 1 && s.failed == 1;
  return ok ? 0 : 1;
}
