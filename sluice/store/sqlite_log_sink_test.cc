#include "sluice/store/sqlite_log_sink.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/batch/batcher.h"
#include "sluice/batch/file_spill.h"

namespace sluice::store {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// A fresh directory under the system temp dir, removed with its contents at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sluice-store-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::filesystem::path operator/(const char* name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

AccessRecord record(int i) {
  AccessRecord r;
  r.time_unix_ns = 1'700'000'000'000'000'000 + int64_t{i} * 1'000'000;
  r.route = i % 2 == 0 ? "chat" : "embeddings";
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.status = 200;
  r.cache = static_cast<CacheOutcome>(i % 5);
  r.upstream_latency = microseconds(1500 + i);
  r.total_latency = microseconds(1700 + i);
  r.bytes_in = 512;
  r.bytes_out = 4096 + static_cast<uint64_t>(i);
  r.tenant_digest = "9f86d081884c7d65";
  r.request_id = "req-" + std::to_string(i);
  r.upstream = "openai";
  return r;
}

std::vector<AccessRecord> records(int from, int to) {
  std::vector<AccessRecord> v;
  for (int i = from; i < to; ++i) v.push_back(record(i));
  return v;
}

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

}  // namespace
}  // namespace sluice::store
