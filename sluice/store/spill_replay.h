// `replay_spill`: puts the access records a `Batcher` spilled to a `batch::FileSpill` (JSON
// Lines written with `append_json`) back into the SQLite log, once.
//
// Thread-safety: a free function; it serialises with other users of the sink through the
// sink's own lock. Run it when no process is appending to the spill file (after the gateway
// stopped, or on a file it has rotated away from).
// Cost: reads the file twice (a 64-bit digest of its bytes, then the lines), parses each line
// with Boost.JSON and inserts everything in ONE transaction (`SqliteLogSink::import_once`), in
// chunks of `ReplayOptions::chunk_rows`; memory is one chunk. The write lock is held for the
// whole import.
// Idempotence: the file's digest (size + hash of its bytes) is recorded in table `imports` in
// the same transaction as the rows; a file whose digest is already there inserts nothing. After
// the commit the file is renamed to `<spill>-<hash>.replayed` (so a crash between commit and
// rename only leaves a file that a second run recognises and renames). Lines that do not parse
// are not lost: they are copied as they were to `<spill>-<hash>.rejected` (synced before the
// commit; the hash in the name keeps a later spill of the same name from overwriting it) and
// reported with their line numbers; the other lines are imported.
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sluice/store/sqlite_log_sink.h"

namespace sluice::store {

struct ReplayOptions {
  // Records parsed and inserted per statement round (memory bound of the replay).
  std::size_t chunk_rows = 500;
  // Rejected lines whose number and reason are kept in `ReplayResult::rejected` (all are
  // counted and all are copied to the .rejected file).
  std::size_t max_reported_rejections = 100;
};

// One line that is not an access record.
struct RejectedLine {
  uint64_t line = 0;   // 1-based line number in the spill file
  std::string reason;  // why it did not parse ("field \"status\": missing")
};

struct ReplayResult {
  uint64_t lines_read = 0;              // non-empty lines read (0 when already imported)
  uint64_t rows_replayed = 0;           // rows inserted by this run
  uint64_t lines_rejected = 0;          // lines copied to `rejected_path`
  bool already_imported = false;        // an earlier run had committed this file's rows
  std::vector<RejectedLine> rejected;   // the first `max_reported_rejections` rejections
  std::filesystem::path rejected_path;  // "<spill>-<hash>.rejected"; empty if none rejected
  std::filesystem::path replayed_path;  // "<spill>-<hash>.replayed"; empty if not renamed
  std::string rename_error;             // why the rename after the commit failed ("" if not)
  std::string key;                      // the digest recorded in `imports` ("<size>:<hash>")
};

// Why a replay failed: a code and a sentence starting with the file's path. Nothing was
// inserted, and the spill file is where it was (a rename failing after the commit is not a
// `ReplayError` but `ReplayResult::rename_error`: the rows are in, and a rerun only renames).
struct ReplayError {
  boost::system::error_code code;
  std::string message;
};

// Lets `result<ReplayResult, ReplayError>::value()` throw `std::runtime_error(message)`.
[[noreturn]] void throw_exception_from_error(const ReplayError& e,
                                             const boost::source_location& loc);

// Replays one spill file into `sink` (see the file comment). Blank lines are skipped. A file
// that cannot be read, a .rejected file that cannot be written, or a database failure is a
// `ReplayError`.
[[nodiscard]] boost::system::result<ReplayResult, ReplayError> replay_spill(
    const std::filesystem::path& spill, SqliteLogSink& sink, const ReplayOptions& options = {});

}  // namespace sluice::store
