#include "sluice/base/random.h"

#include <chrono>
#include <functional>
#include <thread>

namespace sluice::base {

RandomSource& thread_local_random() noexcept {
  thread_local Xoshiro256 generator(
      std::hash<std::thread::id>{}(std::this_thread::get_id()) ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  return generator;
}

}  // namespace sluice::base
