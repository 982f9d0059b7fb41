// The tour: `sluice tour` runs every primitive of libsluice once and prints what it did,
// with numbers. Each module contributes one step in its own `tour_<module>.cc`:
//
//   SLUICE_TOUR_STEP(20, "cache", [](std::ostream& out) { ... });
//
// Steps run in ascending `order`. A step returns nothing; it prints and may throw on a
// broken invariant (the tour then exits non-zero).
#pragma once

#include <ostream>
#include <string_view>
#include <vector>

namespace sluice::tools {

struct TourStep {
  int order;              // position in the tour (module order of DESIGN.md, times 10)
  std::string_view name;  // module name, printed as a heading
  void (*run)(std::ostream& out);
};

// Steps registered so far (by the static initialisers of the tour_*.cc files).
std::vector<TourStep>& tour_steps();

struct TourRegistrar {
  explicit TourRegistrar(TourStep step) { tour_steps().push_back(step); }
};

// Runs every step in order; returns the process exit code.
int run_tour(std::ostream& out);

}  // namespace sluice::tools

#define SLUICE_TOUR_CONCAT_INNER(a, b) a##b
#define SLUICE_TOUR_CONCAT(a, b) SLUICE_TOUR_CONCAT_INNER(a, b)
#define SLUICE_TOUR_STEP(order, name, fn)                                         \
  static const ::sluice::tools::TourRegistrar SLUICE_TOUR_CONCAT(tour_registrar_, \
                                                                 __LINE__)({order, name, fn})
