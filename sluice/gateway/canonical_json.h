// Canonical JSON: one byte string per JSON value, whatever the key order and whitespace of
// the text it came from. The gateway digests it to key POST bodies (LLM completions,
// embeddings) so that `{"a":1, "b":2}` and `{"b":2,"a":1}` share one cache entry.
//
// Thread-safety: pure function. Cost: one pass of Boost.JSON's SAX parser plus, per object,
// a sort of its members; about one allocation per member. Depth is bounded by
// `kCanonicalJsonMaxDepth` (deeper documents are an error, not a stack overflow).
//
// The canonical form:
//   - no insignificant whitespace;
//   - object members sorted by key, bytewise over the UNESCAPED UTF-8 key (so "\u0061" and
//     "a" are the same key);
//   - duplicate keys (after unescaping) are an error (`CanonicalJsonError::duplicate_key`):
//     parsers disagree about which one wins, so such a body must not share a key with
//     either reading of it;
//   - strings re-escaped minimally, as Boost.JSON serializes them: `\"`, `\\`, `\b \f \n \r
//     \t`, other control characters as `\u00xx`; everything else (including `/` and
//     non-ASCII UTF-8) verbatim. Invalid UTF-8 is an error;
//   - numbers as Boost.JSON serializes them. Integers stay integers (`1`, `-7`, `-0` -> `0`,
//     up to 2^64-1); anything with a fraction or exponent is a double and prints in
//     Boost.JSON's shortest round-trip form with an exponent: `1.0` -> `1E0`, `1e2` ->
//     `1E2`, `0.1` -> `1E-1`, `-0.0` -> `-0E0`. So `1` and `1.0` are DIFFERENT canonical
//     values (an upstream may treat them differently too). Integers beyond 64 bits become
//     doubles (`123456789012345678901` -> `1.2345678901234568E20`, precision lost:
//     the nearest double; numbers are converted with `std::from_chars`, correctly rounded,
//     so `0.1`, `1E-1` and `0.100` agree and the form is idempotent). Doubles that overflow
//     or underflow (`1e400`, `1e-400`) are an error (`number_out_of_range`);
//   - literals `true`, `false`, `null` as is. Comments and trailing commas are errors.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

namespace sluice::gateway {

// Maximum nesting of arrays and objects accepted by `canonical_json`.
inline constexpr size_t kCanonicalJsonMaxDepth = 64;

// Failures of `canonical_json` beyond Boost.JSON's own syntax errors (`boost::json::error`).
enum class CanonicalJsonError {
  // An object has two members with the same (unescaped) key.
  duplicate_key = 1,
  // A number does not fit a finite double (e.g. `1e400`).
  number_out_of_range,
};

[[nodiscard]] const boost::system::error_category& canonical_json_category() noexcept;
[[nodiscard]] inline boost::system::error_code make_error_code(CanonicalJsonError e) noexcept {
  return {static_cast<int>(e), canonical_json_category()};
}

// The canonical form of the JSON text `text` (one value, optional surrounding whitespace),
// or the error that makes it invalid.
[[nodiscard]] boost::system::result<std::string> canonical_json(std::string_view text);

}  // namespace sluice::gateway

template <>
struct boost::system::is_error_code_enum<sluice::gateway::CanonicalJsonError> : std::true_type {};
