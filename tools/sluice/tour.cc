#include "tools/sluice/tour.h"

#include <algorithm>
#include <chrono>
#include <exception>

namespace sluice::tools {

std::vector<TourStep>& tour_steps() {
  static std::vector<TourStep> steps;
  return steps;
}

int run_tour(std::ostream& out) {
  auto steps = tour_steps();
  std::sort(steps.begin(), steps.end(),
            [](const TourStep& a, const TourStep& b) { return a.order < b.order; });
  out << "sluice tour: every primitive of libsluice, run once, with what it did.\n";
  const auto start = std::chrono::steady_clock::now();
  for (const auto& step : steps) {
    out << "\n== " << step.name << " ==\n";
    try {
      step.run(out);
    } catch (const std::exception& e) {
      out << "tour step '" << step.name << "' failed: " << e.what() << "\n";
      return 1;
    }
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  out << "\n" << steps.size() << " modules toured in " << ms << " ms.\n";
  return 0;
}

}  // namespace sluice::tools
