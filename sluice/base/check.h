// SLUICE_CHECK: an assertion that stays on in release builds.
//
// Use it for states that cannot happen unless sluice itself is wrong (a broken invariant),
// never for input, network or disk failures: those are values (error codes, results) that
// callers handle and count. On failure it prints the condition, file and line, then aborts.
// Thread-safe. Cost: one predictable branch when the condition holds.
#pragma once

#include <string_view>

namespace sluice::base::internal {

[[noreturn]] void check_failed(std::string_view condition, std::string_view message,
                               std::string_view file, int line) noexcept;

}  // namespace sluice::base::internal

#define SLUICE_CHECK(condition, message)                                                 \
  do {                                                                                   \
    if (!(condition)) [[unlikely]] {                                                     \
      ::sluice::base::internal::check_failed(#condition, (message), __FILE__, __LINE__); \
    }                                                                                    \
  } while (false)
