#include "sluice/base/clock.h"

namespace sluice::base {

const SteadyClock& SteadyClock::instance() noexcept {
  static const SteadyClock clock;
  return clock;
}

}  // namespace sluice::base
