#include "sluice/store/sqlite_log_sink.h"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <limits>
#include <string_view>
#include <utility>

namespace sluice::store {
namespace {

// The migrations, in order: entry i takes the schema from version i to i + 1. Append only.
constexpr std::array<std::string_view, SqliteLogSink::kSchemaVersion> kMigrations = {
    // v1: the access log and its two indexes.
    R"sql(
CREATE TABLE access_log (
  id INTEGER PRIMARY KEY,
  time_ns INTEGER NOT NULL,
  route TEXT NOT NULL,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  status INTEGER NOT NULL,
  cache TEXT NOT NULL,
  upstream_latency_ns INTEGER NOT NULL,
  total_latency_ns INTEGER NOT NULL,
  bytes_in INTEGER NOT NULL,
  bytes_out INTEGER NOT NULL,
  tenant_digest TEXT NOT NULL,
  request_id TEXT NOT NULL,
  upstream TEXT NOT NULL
);
CREATE INDEX access_log_time ON access_log (time_ns);
CREATE INDEX access_log_route_time ON access_log (route, time_ns);
)sql",
    // v2: the ledger of replayed spill files (`import_once`), so a file is imported once.
    R"sql(
CREATE TABLE imports (
  key TEXT PRIMARY KEY,
  rows INTEGER NOT NULL,
  imported_unix_s INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
);
)sql",
};

constexpr int kColumnCount = 13;
constexpr std::string_view kColumns =
    "time_ns, route, method, path, status, cache, upstream_latency_ns, total_latency_ns, "
    "bytes_in, bytes_out, tenant_digest, request_id, upstream";

// Owns a statement for the duration of a scope.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  int prepare(sqlite3* db, std::string_view sql) {
    return sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// Runs a one-value query (a PRAGMA or count) returning its integer; SQLite's code on failure.
int query_int(sqlite3* db, std::string_view sql, int64_t& out) {
  Stmt stmt;
  int rc = stmt.prepare(db, sql);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) {
    out = sqlite3_column_int64(stmt.get(), 0);
    return SQLITE_OK;
  }
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int64_t clamp_to_int64(uint64_t v) {
  return static_cast<int64_t>(std::min<uint64_t>(v, std::numeric_limits<int64_t>::max()));
}

std::string text_column(sqlite3_stmt* stmt, int col) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
  return p == nullptr ? std::string()
                      : std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt, col)));
}

// Binds the 13 columns of `r` at parameters `first + 1` .. `first + 13`. Text is bound
// SQLITE_STATIC: `r` outlives the step, and the bindings are cleared before `write` returns.
void bind_record(sqlite3_stmt* stmt, int first, const AccessRecord& r) {
  const auto text = [&](int col, std::string_view v) {
    sqlite3_bind_text(stmt, first + col, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  };
  sqlite3_bind_int64(stmt, first + 1, r.time_unix_ns);
  text(2, r.route);
  text(3, r.method);
  text(4, r.path);
  sqlite3_bind_int(stmt, first + 5, r.status);
  text(6, to_string(r.cache));
  sqlite3_bind_int64(stmt, first + 7, r.upstream_latency.count());
  sqlite3_bind_int64(stmt, first + 8, r.total_latency.count());
  sqlite3_bind_int64(stmt, first + 9, clamp_to_int64(r.bytes_in));
  sqlite3_bind_int64(stmt, first + 10, clamp_to_int64(r.bytes_out));
  text(11, r.tenant_digest);
  text(12, r.request_id);
  text(13, r.upstream);
}

// "INSERT INTO access_log (...) VALUES (?,...,?),(?,...),..." for `rows` rows.
std::string insert_sql(std::size_t rows) {
  std::string sql = "INSERT INTO access_log (" + std::string(kColumns) + ") VALUES ";
  for (std::size_t r = 0; r < rows; ++r) {
    sql += r == 0 ? "(" : ",(";
    for (int c = 0; c < kColumnCount; ++c) sql += c == 0 ? "?" : ",?";
    sql += ")";
  }
  return sql;
}

class OpenFailure {
 public:
  explicit OpenFailure(const std::filesystem::path& path) : path_(path.string()) {}
  OpenError operator()(Errc code, std::string_view what) const {
    return OpenError{code, path_ + ": " + std::string(what)};
  }

 private:
  std::string path_;
};

// Closes a connection unless released.
struct DbGuard {
  sqlite3* db;
  ~DbGuard() {
    if (db != nullptr) sqlite3_close_v2(db);
  }
};

}  // namespace

boost::system::result<std::unique_ptr<SqliteLogSink>, OpenError> SqliteLogSink::open(
    const std::filesystem::path& path, SqliteLogSinkOptions options) {
  const OpenFailure fail(path);
  DbGuard guard{nullptr};
  int rc =
      sqlite3_open_v2(path.c_str(), &guard.db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string msg = guard.db != nullptr ? sqlite3_errmsg(guard.db) : sqlite3_errstr(rc);
    return fail(Errc::cannot_open, "cannot open database: " + msg);
  }
  sqlite3* db = guard.db;
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(options.busy_timeout.count()));

  // Identify the file before changing anything in it.
  int64_t app_id = 0;
  rc = query_int(db, "PRAGMA application_id", app_id);
  if (rc == SQLITE_NOTADB) {
    return fail(Errc::not_sluice_database,
                "not a sluice access-log database (not an SQLite file: " +
                    std::string(sqlite3_errmsg(db)) + ")");
  }
  if (rc != SQLITE_OK) {
    return fail(Errc::cannot_open, "cannot read database: " + std::string(sqlite3_errmsg(db)));
  }
  int64_t version = 0;
  int64_t objects = 0;
  rc = query_int(db, "PRAGMA user_version", version);
  if (rc == SQLITE_OK) rc = query_int(db, "SELECT count(*) FROM sqlite_schema", objects);
  if (rc != SQLITE_OK) {
    return fail(Errc::cannot_open, "cannot read database: " + std::string(sqlite3_errmsg(db)));
  }
  const bool fresh = app_id == 0 && version == 0 && objects == 0;
  if (!fresh && app_id != kApplicationId) {
    return fail(Errc::not_sluice_database,
                "not a sluice access-log database (application_id=" + std::to_string(app_id) +
                    ", expected " + std::to_string(kApplicationId) + ")");
  }
  if (version > kSchemaVersion) {
    return fail(Errc::newer_schema, "access-log schema version " + std::to_string(version) +
                                        " is newer than this sluice supports (" +
                                        std::to_string(kSchemaVersion) + "); upgrade sluice");
  }

  // WAL: readers never block the writer, and a commit is an append to the WAL.
  {
    Stmt wal;
    rc = wal.prepare(db, "PRAGMA journal_mode=WAL");
    if (rc == SQLITE_OK) rc = sqlite3_step(wal.get());
    if (rc != SQLITE_ROW || text_column(wal.get(), 0) != "wal") {
      return fail(Errc::wal_unavailable,
                  "cannot switch to WAL journal mode: " + std::string(sqlite3_errmsg(db)));
    }
  }  // finalized here: an unfinished statement would block the migrations' COMMIT
  const char* sync_sql = options.synchronous == SqliteSync::full ? "PRAGMA synchronous=FULL"
                                                                 : "PRAGMA synchronous=NORMAL";
  if (sqlite3_exec(db, sync_sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return fail(Errc::cannot_open, "cannot set synchronous: " + std::string(sqlite3_errmsg(db)));
  }

  // Migrations: each in its own IMMEDIATE transaction, re-reading the version inside it so that
  // two processes opening a new file at once apply each step once.
  for (int target = 1; target <= kSchemaVersion; ++target) {
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return fail(Errc::migration_failed, "cannot begin migration to schema version " +
                                              std::to_string(target) + ": " + sqlite3_errmsg(db));
    }
    int64_t current = 0;
    rc = query_int(db, "PRAGMA user_version", current);
    if (rc == SQLITE_OK && current < target) {
      const std::string sql = std::string(kMigrations[static_cast<std::size_t>(target - 1)]) +
                              "PRAGMA application_id=" + std::to_string(kApplicationId) +
                              ";PRAGMA user_version=" + std::to_string(target) + ";";
      rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      const std::string msg = sqlite3_errmsg(db);
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      return fail(Errc::migration_failed,
                  "migration to schema version " + std::to_string(target) + " failed: " + msg);
    }
  }

  std::unique_ptr<SqliteLogSink> sink(new SqliteLogSink(path, options, db));
  guard.db = nullptr;  // owned by `sink` now
  if (const boost::system::error_code ec = sink->prepare_statements()) {
    return fail(Errc::cannot_open,
                "cannot prepare statements: " + std::string(sqlite3_errmsg(sink->db_)));
  }
  return sink;
}

SqliteLogSink::SqliteLogSink(std::filesystem::path path, SqliteLogSinkOptions options, sqlite3* db)
    : path_(std::move(path)),
      options_(options),
      rows_per_statement_(std::clamp<std::size_t>(options.rows_per_statement, 1, 2000)),
      db_(db) {}

SqliteLogSink::~SqliteLogSink() {
  for (sqlite3_stmt* s : {insert_, insert_many_, import_find_, import_record_, begin_, commit_,
                          rollback_, prune_rows_, prune_age_}) {
    sqlite3_finalize(s);
  }
  sqlite3_close_v2(db_);
}

boost::system::error_code SqliteLogSink::prepare_statements() {
  const std::string insert = insert_sql(1);
  const std::string insert_many = insert_sql(std::max<std::size_t>(rows_per_statement_, 1));
  const std::pair<sqlite3_stmt**, std::string_view> statements[] = {
      {&insert_, insert},
      {&insert_many_, insert_many},
      {&begin_, "BEGIN IMMEDIATE"},
      {&import_find_, "SELECT 1 FROM imports WHERE key = ?1"},
      {&import_record_, "INSERT INTO imports (key, rows) VALUES (?1, ?2)"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
      // Rowids grow by one per insert, so "older than the newest max_rows" is a rowid range.
      {&prune_rows_,
       "DELETE FROM access_log WHERE id IN (SELECT id FROM access_log WHERE id <= "
       "(SELECT max(id) FROM access_log) - ?1 ORDER BY id LIMIT ?2)"},
      {&prune_age_,
       "DELETE FROM access_log WHERE id IN (SELECT id FROM access_log WHERE time_ns < ?1 "
       "ORDER BY time_ns LIMIT ?2)"},
  };
  for (const auto& [slot, sql] : statements) {
    const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, slot, nullptr);
    if (rc != SQLITE_OK) return make_sqlite_error(rc);
  }
  return {};
}

boost::system::error_code SqliteLogSink::fail_locked(int rc) {
  {
    std::lock_guard lk(error_mu_);
    last_error_ = sqlite3_errmsg(db_);
  }
  if (sqlite3_get_autocommit(db_) == 0) {
    sqlite3_step(rollback_);
    sqlite3_reset(rollback_);
  }
  failures_.fetch_add(1, std::memory_order_relaxed);
  const int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
    busy_failures_.fetch_add(1, std::memory_order_relaxed);
  }
  return make_sqlite_error(rc);
}

int SqliteLogSink::prune_locked(int64_t newest_time_ns) {
  const auto limit = static_cast<int64_t>(options_.max_prune_per_write);
  if (options_.max_rows > 0) {
    sqlite3_bind_int64(prune_rows_, 1, clamp_to_int64(options_.max_rows));
    sqlite3_bind_int64(prune_rows_, 2, limit);
    const int rc = sqlite3_step(prune_rows_);
    sqlite3_reset(prune_rows_);
    if (rc != SQLITE_DONE) return rc;
    pruned_rows_.fetch_add(static_cast<uint64_t>(sqlite3_changes(db_)), std::memory_order_relaxed);
  }
  if (options_.max_age > Duration::zero()) {
    sqlite3_bind_int64(prune_age_, 1, newest_time_ns - options_.max_age.count());
    sqlite3_bind_int64(prune_age_, 2, limit);
    const int rc = sqlite3_step(prune_age_);
    sqlite3_reset(prune_age_);
    if (rc != SQLITE_DONE) return rc;
    pruned_rows_.fetch_add(static_cast<uint64_t>(sqlite3_changes(db_)), std::memory_order_relaxed);
  }
  return SQLITE_DONE;
}

int SqliteLogSink::insert_locked(std::span<const AccessRecord> records) {
  int rc = SQLITE_DONE;
  // Full chunks through the multi-row statement, the rest one row at a time.
  const std::size_t chunk = rows_per_statement_;
  std::size_t i = 0;
  for (; chunk > 1 && records.size() - i >= chunk; i += chunk) {
    for (std::size_t k = 0; k < chunk; ++k) {
      bind_record(insert_many_, static_cast<int>(k * kColumnCount), records[i + k]);
    }
    rc = sqlite3_step(insert_many_);
    sqlite3_reset(insert_many_);
    if (rc != SQLITE_DONE) {
      sqlite3_clear_bindings(insert_many_);
      return rc;
    }
  }
  if (i > 0) sqlite3_clear_bindings(insert_many_);  // drop pointers into `records`
  for (; i < records.size(); ++i) {
    bind_record(insert_, 0, records[i]);
    rc = sqlite3_step(insert_);
    sqlite3_reset(insert_);
    if (rc != SQLITE_DONE) {
      sqlite3_clear_bindings(insert_);
      return rc;
    }
  }
  sqlite3_clear_bindings(insert_);  // drop pointers into `records`
  return SQLITE_DONE;
}

boost::system::error_code SqliteLogSink::write(std::span<const AccessRecord> records) {
  if (records.empty()) return {};
  std::lock_guard lk(mu_);
  int rc = sqlite3_step(begin_);
  sqlite3_reset(begin_);
  if (rc != SQLITE_DONE) return fail_locked(rc);
  int64_t newest = std::numeric_limits<int64_t>::min();
  for (const AccessRecord& r : records) newest = std::max(newest, r.time_unix_ns);
  rc = insert_locked(records);
  if (rc != SQLITE_DONE) return fail_locked(rc);
  rc = prune_locked(newest);
  if (rc != SQLITE_DONE) return fail_locked(rc);
  rc = sqlite3_step(commit_);
  sqlite3_reset(commit_);
  if (rc != SQLITE_DONE) return fail_locked(rc);
  batches_.fetch_add(1, std::memory_order_relaxed);
  rows_.fetch_add(records.size(), std::memory_order_relaxed);
  return {};
}

boost::system::result<ImportResult> SqliteLogSink::import_once(std::string_view key,
                                                               const ImportSource& source) {
  std::lock_guard lk(mu_);
  int rc = sqlite3_step(begin_);
  sqlite3_reset(begin_);
  if (rc != SQLITE_DONE) return fail_locked(rc);
  sqlite3_bind_text(import_find_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  rc = sqlite3_step(import_find_);
  sqlite3_reset(import_find_);
  sqlite3_clear_bindings(import_find_);
  if (rc == SQLITE_ROW) {
    sqlite3_step(rollback_);
    sqlite3_reset(rollback_);
    return ImportResult{ImportOutcome::already_imported, 0};
  }
  if (rc != SQLITE_DONE) return fail_locked(rc);
  uint64_t rows = 0;
  std::vector<AccessRecord> chunk;
  for (;;) {
    chunk.clear();
    if (const boost::system::error_code ec = source(chunk)) {
      sqlite3_step(rollback_);
      sqlite3_reset(rollback_);
      return ec;
    }
    if (chunk.empty()) break;
    rc = insert_locked(chunk);
    if (rc != SQLITE_DONE) return fail_locked(rc);
    rows += chunk.size();
  }
  sqlite3_bind_text(import_record_, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  sqlite3_bind_int64(import_record_, 2, clamp_to_int64(rows));
  rc = sqlite3_step(import_record_);
  sqlite3_reset(import_record_);
  sqlite3_clear_bindings(import_record_);
  if (rc != SQLITE_DONE) return fail_locked(rc);
  rc = sqlite3_step(commit_);
  sqlite3_reset(commit_);
  if (rc != SQLITE_DONE) return fail_locked(rc);
  imports_.fetch_add(1, std::memory_order_relaxed);
  imported_rows_.fetch_add(rows, std::memory_order_relaxed);
  return ImportResult{ImportOutcome::imported, rows};
}

boost::system::result<uint64_t> SqliteLogSink::count() const {
  std::lock_guard lk(mu_);
  int64_t n = 0;
  const int rc = query_int(db_, "SELECT count(*) FROM access_log", n);
  if (rc != SQLITE_OK) return make_sqlite_error(rc);
  return static_cast<uint64_t>(n);
}

boost::system::result<int> SqliteLogSink::schema_version() const {
  std::lock_guard lk(mu_);
  int64_t v = 0;
  const int rc = query_int(db_, "PRAGMA user_version", v);
  if (rc != SQLITE_OK) return make_sqlite_error(rc);
  return static_cast<int>(v);
}

boost::system::result<std::vector<AccessRecord>> SqliteLogSink::recent(std::size_t n) const {
  std::lock_guard lk(mu_);
  Stmt stmt;
  int rc = stmt.prepare(
      db_, "SELECT " + std::string(kColumns) + " FROM access_log ORDER BY id DESC LIMIT ?1");
  if (rc != SQLITE_OK) return make_sqlite_error(rc);
  sqlite3_bind_int64(stmt.get(), 1, clamp_to_int64(n));
  std::vector<AccessRecord> out;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    sqlite3_stmt* s = stmt.get();
    AccessRecord r;
    r.time_unix_ns = sqlite3_column_int64(s, 0);
    r.route = text_column(s, 1);
    r.method = text_column(s, 2);
    r.path = text_column(s, 3);
    r.status = sqlite3_column_int(s, 4);
    r.cache = parse_cache_outcome(text_column(s, 5)).value_or(CacheOutcome::bypass);
    r.upstream_latency = Duration(sqlite3_column_int64(s, 6));
    r.total_latency = Duration(sqlite3_column_int64(s, 7));
    r.bytes_in = static_cast<uint64_t>(sqlite3_column_int64(s, 8));
    r.bytes_out = static_cast<uint64_t>(sqlite3_column_int64(s, 9));
    r.tenant_digest = text_column(s, 10);
    r.request_id = text_column(s, 11);
    r.upstream = text_column(s, 12);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return make_sqlite_error(rc);
  return out;
}

SqliteLogSinkStats SqliteLogSink::stats() const {
  SqliteLogSinkStats s;
  s.batches = batches_.load(std::memory_order_relaxed);
  s.rows = rows_.load(std::memory_order_relaxed);
  s.failures = failures_.load(std::memory_order_relaxed);
  s.busy_failures = busy_failures_.load(std::memory_order_relaxed);
  s.pruned_rows = pruned_rows_.load(std::memory_order_relaxed);
  s.imports = imports_.load(std::memory_order_relaxed);
  s.imported_rows = imported_rows_.load(std::memory_order_relaxed);
  std::lock_guard lk(error_mu_);
  s.last_error = last_error_;
  return s;
}

}  // namespace sluice::store
