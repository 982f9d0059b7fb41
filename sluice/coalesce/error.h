// Errors the coalescer itself produces (as opposed to errors of the work it runs), as a
// Boost.System error enum with its own category, in the style of Beast's `http::error`.
//
// `run` returns them as values in a `boost::system::result<T>`; compare with
// `r.error() == CoalesceError::too_many_in_flight`. Thread-safety: the category is a
// process-wide immutable singleton; everything here is safe from any thread.
#pragma once

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace sluice::coalesce {

enum class CoalesceError {
  // A new key arrived while `max_in_flight` distinct keys were already executing; the call
  // was refused without running the work (counted in `Stats::rejected`).
  too_many_in_flight = 1,
  // The async caller's wait was cancelled (cancellation slot) before the result arrived; the
  // shared execution keeps running for the others (counted in `Stats::cancelled`).
  cancelled,
  // The async caller's per-call timeout expired before the result arrived; the shared
  // execution keeps running for the others (counted in `Stats::timed_out`).
  timeout,
};

// The category of `CoalesceError`; its name is "sluice.coalesce".
[[nodiscard]] const boost::system::error_category& coalesce_category() noexcept;

[[nodiscard]] inline boost::system::error_code make_error_code(CoalesceError e) noexcept {
  return {static_cast<int>(e), coalesce_category()};
}

}  // namespace sluice::coalesce

namespace boost::system {
template <>
struct is_error_code_enum<sluice::coalesce::CoalesceError> : std::true_type {};
}  // namespace boost::system
