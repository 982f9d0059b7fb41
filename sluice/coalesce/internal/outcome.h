// The shared outcome of one execution: a value, an error code or a captured exception,
// handed to the leader, every joiner and the result cache as one immutable object.
//
// Thread-safety: an `Outcome` is immutable after construction and shared by
// `std::shared_ptr<const Outcome>`; reading it from many threads is safe. An exception is
// rethrown to each caller from the same `std::exception_ptr` (as `std::shared_future` does),
// so callers must treat the caught exception as const.
#pragma once

#include <boost/system/result.hpp>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace sluice::coalesce::internal {

template <class T>
class Outcome {
 public:
  explicit Outcome(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  explicit Outcome(boost::system::error_code ec) : state_(std::in_place_index<1>, ec) {}
  explicit Outcome(std::exception_ptr e) : state_(std::in_place_index<2>, std::move(e)) {}

  // True for an error value or an exception.
  [[nodiscard]] bool failed() const noexcept { return state_.index() != 0; }
  // The value if there is one, else nullptr.
  [[nodiscard]] const T* value() const noexcept { return std::get_if<0>(&state_); }

  // The error code of a failed outcome (default-constructed for a value); rethrows a captured
  // exception.
  [[nodiscard]] boost::system::error_code error() const {
    if (state_.index() == 2) std::rethrow_exception(std::get<2>(state_));
    if (const auto* ec = std::get_if<1>(&state_)) return *ec;
    return {};
  }

  // A copy of the value, or the error code; rethrows a captured exception.
  [[nodiscard]] boost::system::result<T> get() const {
    switch (state_.index()) {
      case 0:
        return std::get<0>(state_);
      case 1:
        return std::get<1>(state_);
      default:
        std::rethrow_exception(std::get<2>(state_));
    }
  }

 private:
  std::variant<T, boost::system::error_code, std::exception_ptr> state_;
};

template <class T>
using OutcomePtr = std::shared_ptr<const Outcome<T>>;

template <class R>
struct IsSystemResult : std::false_type {};
template <class U, class E>
struct IsSystemResult<boost::system::result<U, E>> : std::true_type {};

// Turns what the work returned (`T`, something convertible to `T`, or
// `boost::system::result<U>`) into an outcome.
template <class T, class R>
[[nodiscard]] OutcomePtr<T> make_outcome(R&& r) {
  using D = std::remove_cvref_t<R>;
  if constexpr (IsSystemResult<D>::value) {
    static_assert(std::is_convertible_v<typename D::error_type, boost::system::error_code>,
                  "the work's boost::system::result must carry an error_code");
    if (r.has_value()) return std::make_shared<const Outcome<T>>(T(std::move(*r)));
    return std::make_shared<const Outcome<T>>(boost::system::error_code(r.error()));
  } else {
    static_assert(std::is_constructible_v<T, R&&>,
                  "the work must return T or boost::system::result<T>");
    return std::make_shared<const Outcome<T>>(T(std::forward<R>(r)));
  }
}

// Runs `work()` and captures its result or exception.
template <class T, class F>
[[nodiscard]] OutcomePtr<T> invoke_captured(F& work) {
  try {
    return make_outcome<T>(std::invoke(work));
  } catch (...) {
    return std::make_shared<const Outcome<T>>(std::current_exception());
  }
}

// Estimated bytes of a cached result: the key, the outcome object, and for values with
// `size()` and `value_type` (strings, vectors) their elements.
template <class T>
[[nodiscard]] size_t default_weight(std::string_view key, const Outcome<T>& outcome) {
  size_t bytes = key.size() + sizeof(Outcome<T>) + 2 * sizeof(void*);  // + control block
  if constexpr (requires(const T& v) {
                  { v.size() } -> std::convertible_to<size_t>;
                  typename T::value_type;
                }) {
    if (const T* v = outcome.value()) bytes += v->size() * sizeof(typename T::value_type);
  }
  return bytes;
}

}  // namespace sluice::coalesce::internal
