#include "sluice/base/hash.h"

#include <chrono>
#include <random>

namespace sluice::base {

uint64_t process_seed() noexcept {
  static const uint64_t seed = [] {
    uint64_t s = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    try {
      std::random_device rd;
      s ^= (static_cast<uint64_t>(rd()) << 32) ^ rd();
    } catch (...) {  // No entropy device: the clock alone still varies per process.
    }
    return mix64(s);
  }();
  return seed;
}

}  // namespace sluice::base
