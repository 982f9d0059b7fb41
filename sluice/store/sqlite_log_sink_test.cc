#include "sluice/store/sqlite_log_sink.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/batch/batcher.h"
#include "sluice/batch/file_spill.h"
#include "sluice/store/internal/test_support.h"

namespace sluice::store {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

using internal::TempDir;

AccessRecord record(int i) { return internal::sample_record(i); }
std::vector<AccessRecord> records(int from, int to) { return internal::sample_records(from, to); }

// Runs SQL on a raw connection (to craft foreign or future files).
void raw_exec(const std::filesystem::path& path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "");
  sqlite3_free(err);
  sqlite3_close(db);
}

std::unique_ptr<SqliteLogSink> open_ok(const std::filesystem::path& path,
                                       SqliteLogSinkOptions options = {}) {
  auto r = SqliteLogSink::open(path, options);
  if (!r) throw std::runtime_error(r.error().message);
  return std::move(*r);
}

TEST(SqliteLogSink, CreatesSchemaInWalMode) {
  TempDir dir;
  auto sink = open_ok(dir / "access.db");
  EXPECT_EQ(sink->schema_version().value(), SqliteLogSink::kSchemaVersion);
  EXPECT_EQ(sink->count().value(), 0u);
  EXPECT_EQ(sink->path(), dir / "access.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "access.db").c_str(), &db), SQLITE_OK);
  auto one = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
    std::string v = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return v;
  };
  EXPECT_EQ(one("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(one("PRAGMA application_id"), std::to_string(SqliteLogSink::kApplicationId));
  EXPECT_EQ(one("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name LIKE "
                "'access_log_%'"),
            "2");
  sqlite3_close(db);
}

TEST(SqliteLogSink, BatchInsertRoundTrips) {
  TempDir dir;
  auto sink = open_ok(dir / "access.db");
  const std::vector<AccessRecord> in = records(0, 10);
  ASSERT_FALSE(sink->write(in));
  EXPECT_EQ(sink->count().value(), 10u);
  const std::vector<AccessRecord> out = sink->recent(3).value();
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0], in[9]);
  EXPECT_EQ(out[1], in[8]);
  EXPECT_EQ(out[2], in[7]);
  EXPECT_EQ(sink->recent(100).value().size(), 10u);
  const SqliteLogSinkStats s = sink->stats();
  EXPECT_EQ(s.batches, 1u);
  EXPECT_EQ(s.rows, 10u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_FALSE(sink->write({}));  // an empty batch is a no-op
}

TEST(SqliteLogSink, ReopenKeepsRowsAndMigrationIsIdempotent) {
  TempDir dir;
  {
    auto sink = open_ok(dir / "access.db");
    ASSERT_FALSE(sink->write(records(0, 5)));
  }
  for (int i = 0; i < 2; ++i) {
    auto sink = open_ok(dir / "access.db");
    EXPECT_EQ(sink->schema_version().value(), SqliteLogSink::kSchemaVersion);
    EXPECT_EQ(sink->count().value(), 5u);
  }
}

TEST(SqliteLogSink, TwoSinksOnOneFileBothWrite) {
  TempDir dir;
  auto a = open_ok(dir / "access.db");
  auto b = open_ok(dir / "access.db");
  ASSERT_FALSE(a->write(records(0, 3)));
  ASSERT_FALSE(b->write(records(3, 6)));
  EXPECT_EQ(a->count().value(), 6u);
}

TEST(SqliteLogSink, RefusesAForeignDatabaseNamingTheFile) {
  TempDir dir;
  const auto path = dir / "other.db";
  raw_exec(path, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)");
  auto r = SqliteLogSink::open(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_sluice_database);
  EXPECT_EQ(r.error().message.rfind(path.string() + ": not a sluice access-log database "
                                                    "(application_id=0",
                                    0),
            0u)
      << r.error().message;
  // The file is untouched: still not in WAL mode, still without our table.
  raw_exec(path, "SELECT name FROM users");
}

TEST(SqliteLogSink, RefusesAFileThatIsNotSqlite) {
  TempDir dir;
  const auto path = dir / "notes.txt";
  {
    std::ofstream out(path);
    out << "this is a text file, long enough to fill SQLite's 100-byte header check......."
           "........................................................................\n";
  }
  auto r = SqliteLogSink::open(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_sluice_database);
  EXPECT_NE(r.error().message.find(path.string() + ": not a sluice access-log database"),
            std::string::npos)
      << r.error().message;
}

TEST(SqliteLogSink, RefusesANewerSchemaVersion) {
  TempDir dir;
  const auto path = dir / "access.db";
  { auto sink = open_ok(path); }
  raw_exec(path, "PRAGMA user_version = 99");
  auto r = SqliteLogSink::open(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::newer_schema);
  EXPECT_NE(r.error().message.find(path.string() + ": access-log schema version 99 is newer"),
            std::string::npos)
      << r.error().message;
}

TEST(SqliteLogSink, UnwritablePathErrorNamesTheFile) {
  TempDir dir;
  const auto path = dir / "no-such-dir" / "access.db";
  auto r = SqliteLogSink::open(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::cannot_open);
  EXPECT_EQ(r.error().message.rfind(path.string() + ": cannot open database", 0), 0u)
      << r.error().message;
  EXPECT_THROW((void)SqliteLogSink::open(path).value(), std::runtime_error);
}

TEST(SqliteLogSink, RetentionKeepsTheNewestRows) {
  TempDir dir;
  SqliteLogSinkOptions o;
  o.max_rows = 25;
  o.max_prune_per_write = 3;
  auto sink = open_ok(dir / "access.db", o);
  ASSERT_FALSE(sink->write(records(0, 30)));
  EXPECT_EQ(sink->count().value(), 27u);  // 30 inserted, 5 over the bound, 3 pruned (per write)
  ASSERT_FALSE(sink->write(records(30, 31)));
  EXPECT_EQ(sink->count().value(), 25u);  // the backlog is worked off
  EXPECT_EQ(sink->recent(25).value().back().request_id, "req-6");
  EXPECT_EQ(sink->stats().pruned_rows, 6u);
}

TEST(SqliteLogSink, RetentionByAgeUsesRecordTimes) {
  TempDir dir;
  SqliteLogSinkOptions o;
  o.max_age = milliseconds(10);  // records are 1 ms apart
  auto sink = open_ok(dir / "access.db", o);
  ASSERT_FALSE(sink->write(records(0, 5)));
  EXPECT_EQ(sink->count().value(), 5u);
  ASSERT_FALSE(sink->write(records(20, 21)));  // newest at 20 ms: rows before 10 ms go
  EXPECT_EQ(sink->count().value(), 1u);
  EXPECT_EQ(sink->stats().pruned_rows, 5u);
}

TEST(SqliteLogSink, BusyDatabaseFailsTheWriteAndRollsBack) {
  TempDir dir;
  SqliteLogSinkOptions o;
  o.busy_timeout = milliseconds(0);
  auto sink = open_ok(dir / "access.db", o);
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "access.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const boost::system::error_code ec = sink->write(records(0, 3));
  EXPECT_TRUE(ec);
  EXPECT_EQ(&ec.category(), &sqlite_category());
  EXPECT_EQ(ec.value() & 0xff, SQLITE_BUSY);
  EXPECT_EQ(sink->stats().busy_failures, 1u);
  EXPECT_FALSE(sink->stats().last_error.empty());
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_FALSE(sink->write(records(0, 3)));  // the retry goes through
  EXPECT_EQ(sink->count().value(), 3u);
}

TEST(SqliteLogSink, BatcherEndToEndFromSeveralThreads) {
  TempDir dir;
  auto sink = open_ok(dir / "access.db");
  batch::BatcherOptions o;
  o.batch_size = 128;
  o.max_queue = 10'000;
  o.overflow = batch::OverflowPolicy::block;
  o.flush_interval = milliseconds(5);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2'500;
  {
    batch::Batcher<AccessRecord> batcher(*sink, o);
    std::latch start(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kPerThread; ++i) {
          EXPECT_EQ(batcher.add(record(t * kPerThread + i)), batch::AddResult::accepted);
        }
      });
    }
    for (auto& th : threads) th.join();
    batcher.stop();
    EXPECT_EQ(batcher.stats().written, static_cast<uint64_t>(kThreads * kPerThread));
  }
  EXPECT_EQ(sink->count().value(), static_cast<uint64_t>(kThreads * kPerThread));
}

TEST(SqliteLogSink, BatcherSpillsToJsonLinesWhileTheDatabaseIsLocked) {
  TempDir dir;
  SqliteLogSinkOptions so;
  so.busy_timeout = milliseconds(0);
  auto sink = open_ok(dir / "access.db", so);
  batch::FileSpill spool(dir / "spool.jsonl", batch::SpillSync::none);
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "access.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  base::ManualClock clock;
  batch::BatcherOptions o;
  o.mode = batch::RunMode::manual;
  o.batch_size = 4;
  o.max_retries = 0;
  {
    batch::Batcher<AccessRecord> batcher(*sink, o, spool.spill_fn<AccessRecord>(append_json),
                                         clock);
    for (const AccessRecord& r : records(0, 8)) {
      ASSERT_EQ(batcher.add(r), batch::AddResult::accepted);
    }
    batcher.pump();
    EXPECT_EQ(batcher.stats().spilled, 8u);
  }
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  EXPECT_EQ(spool.lines_written(), 8u);
  EXPECT_EQ(sink->count().value(), 0u);
}

TEST(AccessRecord, CacheOutcomeNamesRoundTrip) {
  for (int i = 0; i < 5; ++i) {
    const auto c = static_cast<CacheOutcome>(i);
    EXPECT_EQ(parse_cache_outcome(to_string(c)), c);
  }
  EXPECT_FALSE(parse_cache_outcome("HIT").has_value());
}

TEST(AccessRecord, JsonEscapesStrings) {
  AccessRecord r = record(0);
  r.path = "/a\"b\\c\n";
  r.route = std::string("x\x01", 2);
  std::string out;
  append_json(r, out);
  EXPECT_NE(out.find(R"("path":"/a\"b\\c\n")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("route":"x\u0001")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("cache":"hit")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("upstream_latency_ns":1500000)"), std::string::npos) << out;
  EXPECT_EQ(out.front(), '{');
  EXPECT_EQ(out.back(), '}');
}

TEST(SqliteLogSink, MultiRowStatementsKeepOrderAndValues) {
  for (const std::size_t per_statement : {std::size_t{1}, std::size_t{7}, std::size_t{500}}) {
    TempDir dir;
    SqliteLogSinkOptions o;
    o.rows_per_statement = per_statement;
    auto sink = open_ok(dir / "access.db", o);
    // 1,234 rows: full chunks of `per_statement`, then one-row inserts for the rest.
    const std::vector<AccessRecord> in = records(0, 1234);
    ASSERT_FALSE(sink->write(in));
    ASSERT_FALSE(sink->write(records(1234, 1240)));  // smaller than a chunk
    std::vector<AccessRecord> out = sink->recent(2000).value();
    ASSERT_EQ(out.size(), 1240u) << per_statement;
    std::reverse(out.begin(), out.end());
    for (int i = 0; i < 1240; ++i) ASSERT_EQ(out[static_cast<std::size_t>(i)], record(i)) << i;
    EXPECT_EQ(sink->stats().rows, 1240u);
  }
}

TEST(SqliteLogSink, MigratesAVersionOneDatabase) {
  TempDir dir;
  const auto path = dir / "access.db";
  // A v1 file as the previous release left it, with one row.
  raw_exec(path,
           "PRAGMA journal_mode=WAL;"
           "CREATE TABLE access_log (id INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, route TEXT "
           "NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, cache "
           "TEXT NOT NULL, upstream_latency_ns INTEGER NOT NULL, total_latency_ns INTEGER NOT "
           "NULL, bytes_in INTEGER NOT NULL, bytes_out INTEGER NOT NULL, tenant_digest TEXT NOT "
           "NULL, request_id TEXT NOT NULL, upstream TEXT NOT NULL);"
           "CREATE INDEX access_log_time ON access_log (time_ns);"
           "CREATE INDEX access_log_route_time ON access_log (route, time_ns);"
           "INSERT INTO access_log VALUES (1, 5, 'chat', 'GET', '/', 200, 'hit', 0, 9, 1, 2, '', "
           "'old', '');"
           "PRAGMA application_id=1397508419; PRAGMA user_version=1;");
  auto sink = open_ok(path);
  EXPECT_EQ(sink->schema_version().value(), 2);
  EXPECT_EQ(sink->count().value(), 1u);
  EXPECT_EQ(sink->recent(1).value().at(0).request_id, "old");
  const auto imported = sink->import_once(
      "k", [](std::vector<AccessRecord>&) { return boost::system::error_code{}; });
  ASSERT_TRUE(imported);  // the v2 table exists
  EXPECT_EQ(imported->outcome, ImportOutcome::imported);
}

TEST(SqliteLogSink, ImportOnceInsertsAKeyOnce) {
  TempDir dir;
  auto sink = open_ok(dir / "access.db");
  int calls = 0;
  const ImportSource source = [&](std::vector<AccessRecord>& chunk) {
    if (calls < 3) chunk = records(calls * 400, calls * 400 + 400);
    ++calls;
    return boost::system::error_code{};
  };
  const auto first = sink->import_once("file-a", source);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->outcome, ImportOutcome::imported);
  EXPECT_EQ(first->rows, 1200u);
  EXPECT_EQ(calls, 4);
  calls = 0;
  const auto second = sink->import_once("file-a", source);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->outcome, ImportOutcome::already_imported);
  EXPECT_EQ(second->rows, 0u);
  EXPECT_EQ(calls, 0);  // the source is not read
  EXPECT_EQ(sink->count().value(), 1200u);
  const SqliteLogSinkStats s = sink->stats();
  EXPECT_EQ(s.imports, 1u);
  EXPECT_EQ(s.imported_rows, 1200u);
  EXPECT_EQ(s.rows, 0u);
}

TEST(SqliteLogSink, ImportSourceFailureRollsBackEverything) {
  TempDir dir;
  auto sink = open_ok(dir / "access.db");
  int calls = 0;
  const auto failed = sink->import_once("file-b", [&](std::vector<AccessRecord>& chunk) {
    if (++calls == 1) {
      chunk = records(0, 600);
      return boost::system::error_code{};
    }
    return make_error_code(boost::system::errc::io_error);
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error(), boost::system::errc::io_error);
  EXPECT_EQ(sink->count().value(), 0u);
  // The key was not recorded: the same key imports later, and ordinary writes still work.
  const auto retried = sink->import_once("file-b", [&](std::vector<AccessRecord>& chunk) {
    if (++calls == 3) chunk = records(0, 10);
    return boost::system::error_code{};
  });
  ASSERT_TRUE(retried);
  EXPECT_EQ(retried->rows, 10u);
  ASSERT_FALSE(sink->write(records(10, 20)));
  EXPECT_EQ(sink->count().value(), 20u);
}

}  // namespace
}  // namespace sluice::store
