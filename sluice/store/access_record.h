// `AccessRecord`: one line of the gateway's request log, as the gateway fills it and the log
// sinks (SQLite here, PostgreSQL later) store it. A plain value type.
//
// Thread-safety: a value; share copies or const references freely.
// Cost: four short strings plus fixed fields (about 200 bytes before string contents).
// Privacy: `tenant_digest` is a hex digest of the caller's credentials, never a raw key or
// token; nothing in a record may carry a credential.
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/base/clock.h"

namespace sluice::store {

// How the cache took part in one request.
enum class CacheOutcome : uint8_t {
  // Served from the cache (L1 or L2) without an upstream call.
  hit,
  // Not in the cache: this request led an upstream call.
  miss,
  // Joined an identical in-flight upstream call led by another request.
  coalesced,
  // Not cacheable (method, route or headers): went straight upstream.
  bypass,
  // Served a stale entry (stale-while-revalidate or upstream failure).
  stale,
};

// "hit", "miss", "coalesced", "bypass", "stale" (the stored form).
[[nodiscard]] std::string_view to_string(CacheOutcome outcome) noexcept;
// The inverse of `to_string`; nullopt for anything else.
[[nodiscard]] std::optional<CacheOutcome> parse_cache_outcome(std::string_view text) noexcept;

struct AccessRecord {
  int64_t time_unix_ns = 0;                   // when the request arrived, Unix time in nanoseconds
  std::string route;                          // name of the matched route ("" when none matched)
  std::string method;                         // HTTP method ("GET", "POST", ...)
  std::string path;                           // request path without the query string
  int status = 0;                             // HTTP status sent to the client
  CacheOutcome cache = CacheOutcome::bypass;  // how the cache took part
  Duration upstream_latency{};                // time spent waiting on the upstream (0 on a hit)
  Duration total_latency{};                   // arrival to last byte sent
  uint64_t bytes_in = 0;                      // request bytes read (headers and body)
  uint64_t bytes_out = 0;                     // response bytes written (headers and body)
  std::string tenant_digest;                  // hex digest of the caller's credentials ("" if none)
  std::string request_id;                     // the request's id (X-Request-Id or generated)
  std::string upstream;                       // name of the upstream called ("" when none)

  bool operator==(const AccessRecord&) const = default;
};

// Appends `record` as one JSON object (no newline): the line format of an access-log spool
// (`batch::FileSpill`). Latencies are integer nanoseconds, `cache` its `to_string` name.
void append_json(const AccessRecord& record, std::string& out);

// Why a spool line is not an `AccessRecord`: a sentence naming the offending field
// ("field \"status\": expected an integer").
struct RecordError {
  std::string reason;
};

// Lets `result<AccessRecord, RecordError>::value()` throw `std::invalid_argument(reason)`.
[[noreturn]] void throw_exception_from_error(const RecordError& e,
                                             const boost::source_location& loc);

// The inverse of `append_json`: parses one JSON object (surrounding whitespace allowed) into a
// record. Every field `append_json` writes is required, with its type (integers must be
// integral and in range, `cache` one of the `to_string` names); unknown extra fields are
// ignored, so a newer writer's lines still parse. String bytes that are not UTF-8 are kept as
// they are (`append_json` writes them so). Cost: one Boost.JSON parse into a DOM (~1-2 us).
[[nodiscard]] boost::system::result<AccessRecord, RecordError> parse_json(std::string_view line);

}  // namespace sluice::store
