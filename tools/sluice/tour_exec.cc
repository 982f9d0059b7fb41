#include <numeric>
#include <ostream>
#include <vector>

#include "sluice/base/units.h"
#include "sluice/exec/task_manager.h"
#include "tools/sluice/tour.h"

namespace {

void tour_exec(std::ostream& out) {
  using namespace sluice::exec;
  TaskManager tm({.workers = 2, .max_queue = 256});
  std::vector<std::future<int>> futures;
  for (int i = 0; i < 200; ++i) futures.push_back(tm.try_submit([i] { return i; }).value());
  const WaitAllResult waited = wait_all(futures, std::chrono::seconds(10));
  int sum = 0;
  for (auto& f : futures) sum += f.get();
  std::vector<int> inputs(10000);
  std::iota(inputs.begin(), inputs.end(), 0);
  const auto doubled = tm.parallel_map(
      inputs, [](const int& x) { return 2 * x; }, 2);
  tm.shutdown();
  const auto s = tm.stats();
  out << "TaskManager (2 workers): 200 tasks, " << waited.ready << " ready, sum " << sum
      << "; parallel_map of " << doubled.size() << " items (cap 2), last " << doubled.back()
      << "\n";
  out << "  submitted " << s.submitted << ", completed " << s.completed << ", max queue depth "
      << s.max_queue_depth << ", average task "
      << sluice::base::format_duration(s.average_task_time()) << ", average queue wait "
      << sluice::base::format_duration(s.average_queue_wait()) << "\n";
}

SLUICE_TOUR_STEP(80, "exec", tour_exec);

}  // namespace
