#include "sluice/base/check.h"

#include <cstdio>
#include <cstdlib>

namespace sluice::base::internal {

void check_failed(std::string_view condition, std::string_view message, std::string_view file,
                  int line) noexcept {
  std::fprintf(stderr, "sluice: check failed at %.*s:%d: %.*s (%.*s)\n",
               static_cast<int>(file.size()), file.data(), line, static_cast<int>(condition.size()),
               condition.data(), static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
  std::abort();
}

}  // namespace sluice::base::internal
