// `SqliteLogSink`: the embedded default sink for the gateway's request log. Implements
// `batch::Sink<AccessRecord>`: each batch a `Batcher` hands it is one transaction, in an SQLite
// database in WAL mode (`synchronous=NORMAL` by default).
//
// Thread-safety: all member functions are safe from any thread; one mutex serialises writes
// and queries on the single connection. Every call does disk I/O and may wait up to
// `busy_timeout` for another process's lock: call it from the batcher's flusher thread or a
// blocking pool, never from an event loop.
//
// Schema: created and migrated on `open`, versioned by `PRAGMA user_version` (a list of
// migrations, applied each in its own transaction); `PRAGMA application_id` is set to
// `kApplicationId`, so a file that is not a sluice database, or one from a newer sluice, is
// refused with a message naming the file. v1: table `access_log` (one row per `AccessRecord`,
// latencies in integer nanoseconds, `cache` as its name), indexes on time and on (route, time).
// v2: table `imports`, the ledger of `import_once` (spill files replayed).
//
// Cost: a batch is one `BEGIN IMMEDIATE ... COMMIT` with two persistent prepared INSERTs: a
// multi-row one of `rows_per_statement` rows for full chunks and a one-row one for the rest;
// text is bound without copies. Retention (`max_rows`, `max_age`) runs inside the same
// transaction and deletes at most `max_prune_per_write` rows per batch, so a write never turns
// into an unbounded delete.
//
// Durability: with `synchronous=NORMAL` a successful `write` survives a crash of the process;
// a power loss or OS crash can lose the commits since the last WAL checkpoint (SQLite's
// automatic one, every ~1,000 WAL pages, which fsyncs) but never corrupts the file. With
// `SqliteSync::full` every commit is fsynced and survives a power loss.
//
// Errors: a failed write rolls back and returns an `error_code` of `sqlite_category()` (the
// extended result code), so the batcher retries and then spills the batch; `SQLITE_BUSY`
// after `busy_timeout` is such a failure. `stats().last_error` keeps SQLite's message.
#pragma once

#include <atomic>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/batch/sink.h"
#include "sluice/store/access_record.h"
#include "sluice/store/errors.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sluice::store {

// SQLite's `PRAGMA synchronous` for the log database.
enum class SqliteSync {
  // fsync only at WAL checkpoints: a commit survives a process crash; a power loss may lose
  // the commits since the last checkpoint (default).
  normal,
  // fsync at every commit: each batch survives a power loss; much slower per batch.
  full,
};

struct SqliteLogSinkOptions {
  // How long a write or query waits for another connection's lock before `SQLITE_BUSY`.
  std::chrono::milliseconds busy_timeout = std::chrono::seconds(5);
  // Keep at most this many rows (oldest deleted first); 0 keeps every row.
  uint64_t max_rows = 0;
  // Delete rows whose time is this much older than the newest record of the batch just
  // written; zero keeps every row. Measured on record times, so no clock is needed.
  Duration max_age = Duration::zero();
  // Most rows one write deletes for retention; a backlog is worked off over several writes.
  std::size_t max_prune_per_write = 10'000;
  // Durability of each commit.
  SqliteSync synchronous = SqliteSync::normal;
  // Rows per multi-row INSERT statement (clamped to 1..2000; 1 = one-row INSERTs only). A batch
  // is written as full chunks of this many rows, then one-row INSERTs for the rest: set it to
  // the batcher's `batch_size` so a full batch is one statement.
  std::size_t rows_per_statement = 500;
};

// A snapshot of the sink's counters (totals since open).
struct SqliteLogSinkStats {
  uint64_t batches = 0;        // committed batches
  uint64_t rows = 0;           // rows inserted
  uint64_t failures = 0;       // batches rolled back (the batcher retries or spills them)
  uint64_t busy_failures = 0;  // of which SQLITE_BUSY/LOCKED after `busy_timeout`
  uint64_t pruned_rows = 0;    // rows deleted by retention
  uint64_t imports = 0;        // committed `import_once` calls (not counting already-imported)
  uint64_t imported_rows = 0;  // rows inserted by them (not in `rows`)
  std::string last_error;      // SQLite's message for the last failure ("" if none)
};

// What `import_once` did.
enum class ImportOutcome {
  // The rows were inserted and the key recorded, in one transaction.
  imported,
  // The key was already recorded: nothing was inserted and the source was not read.
  already_imported,
};

struct ImportResult {
  ImportOutcome outcome = ImportOutcome::imported;  // see `ImportOutcome`
  uint64_t rows = 0;                                // rows inserted (0 when already imported)
};

// Where `import_once` pulls records from: appends the next records to `chunk` (handed over
// empty) and returns; leaving it empty ends the import. A failure code aborts the import, which
// is rolled back, and is returned by `import_once`.
using ImportSource = std::function<boost::system::error_code(std::vector<AccessRecord>& chunk)>;

class SqliteLogSink final : public batch::Sink<AccessRecord> {
 public:
  // `PRAGMA application_id` of every sluice database ("SLIC").
  static constexpr int32_t kApplicationId = 0x534c4943;
  // The schema version this build writes (the number of migrations).
  static constexpr int kSchemaVersion = 2;

  // Opens (creating if needed) the database at `path`, checks that it is a sluice access-log
  // database no newer than `kSchemaVersion`, switches it to WAL and migrates it.
  [[nodiscard]] static boost::system::result<std::unique_ptr<SqliteLogSink>, OpenError> open(
      const std::filesystem::path& path, SqliteLogSinkOptions options = {});

  ~SqliteLogSink() override;
  SqliteLogSink(const SqliteLogSink&) = delete;
  SqliteLogSink& operator=(const SqliteLogSink&) = delete;

  // Inserts every record in one transaction; on failure nothing is inserted.
  [[nodiscard]] boost::system::error_code write(std::span<const AccessRecord> records) override;

  // Inserts every record `source` yields and records `key` in table `imports`, all in ONE
  // transaction, unless `key` is already recorded (then nothing is read or inserted). Used by
  // `replay_spill` with a digest of the file's bytes as the key, so a file is imported once
  // even if the run is repeated. Retention does not run here (the next `write` does it). Holds
  // the write lock for the whole import: other writers wait up to `busy_timeout`.
  [[nodiscard]] boost::system::result<ImportResult> import_once(std::string_view key,
                                                                const ImportSource& source);

  // Rows in the table (a full count: O(rows), for tests and the admin API).
  [[nodiscard]] boost::system::result<uint64_t> count() const;
  // The newest `n` rows, newest first.
  [[nodiscard]] boost::system::result<std::vector<AccessRecord>> recent(std::size_t n) const;
  // `PRAGMA user_version` of the open database.
  [[nodiscard]] boost::system::result<int> schema_version() const;

  [[nodiscard]] SqliteLogSinkStats stats() const;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  SqliteLogSink(std::filesystem::path path, SqliteLogSinkOptions options, sqlite3* db);
  boost::system::error_code prepare_statements();
  boost::system::error_code fail_locked(int rc);
  int prune_locked(int64_t newest_time_ns);
  int insert_locked(std::span<const AccessRecord> records);

  const std::filesystem::path path_;
  const SqliteLogSinkOptions options_;
  std::size_t rows_per_statement_ = 1;  // rows of `insert_many_` (clamped options value)
  mutable std::mutex mu_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;       // one row
  sqlite3_stmt* insert_many_ = nullptr;  // `rows_per_statement_` rows
  sqlite3_stmt* import_find_ = nullptr;
  sqlite3_stmt* import_record_ = nullptr;
  sqlite3_stmt* begin_ = nullptr;
  sqlite3_stmt* commit_ = nullptr;
  sqlite3_stmt* rollback_ = nullptr;
  sqlite3_stmt* prune_rows_ = nullptr;
  sqlite3_stmt* prune_age_ = nullptr;

  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> rows_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> busy_failures_{0};
  std::atomic<uint64_t> pruned_rows_{0};
  std::atomic<uint64_t> imports_{0};
  std::atomic<uint64_t> imported_rows_{0};
  mutable std::mutex error_mu_;
  std::string last_error_;
};

}  // namespace sluice::store
