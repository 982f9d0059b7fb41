#include "sluice/store/spill_replay.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "sluice/batch/batcher.h"
#include "sluice/batch/file_spill.h"
#include "sluice/store/internal/test_support.h"

namespace sluice::store {
namespace {

using internal::sample_record;
using internal::sample_records;
using internal::TempDir;

std::unique_ptr<SqliteLogSink> open_ok(const std::filesystem::path& path) {
  auto r = SqliteLogSink::open(path);
  if (!r) throw std::runtime_error(r.error().message);
  return std::move(*r);
}

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string json_line(int i) {
  std::string line;
  append_json(sample_record(i), line);
  return line + "\n";
}

// A sink that always fails, so a batcher spills every batch.
class BrokenSink final : public batch::Sink<AccessRecord> {
 public:
  boost::system::error_code write(std::span<const AccessRecord>) override {
    return make_error_code(boost::system::errc::io_error);
  }
};

TEST(ReplaySpill, ReplaysWhatABatcherSpilledOnceAndRenamesTheFile) {
  TempDir dir;
  const auto spill_path = dir / "access.spill";
  {
    BrokenSink broken;
    batch::FileSpill spill(spill_path, batch::SpillSync::none);
    batch::BatcherOptions o;
    o.batch_size = 100;
    o.max_retries = 0;
    o.overflow = batch::OverflowPolicy::block;
    batch::Batcher<AccessRecord> batcher(broken, o, spill.spill_fn<AccessRecord>(&append_json));
    for (const AccessRecord& r : sample_records(0, 1050))
      ASSERT_EQ(batcher.add(r), batch::AddResult::accepted);
    batcher.stop();
    ASSERT_EQ(spill.lines_written(), 1050u);
  }
  const std::string spilled = read_all(spill_path);
  auto sink = open_ok(dir / "access.db");
  const ReplayResult r = replay_spill(spill_path, *sink).value();
  EXPECT_EQ(r.rows_replayed, 1050u);
  EXPECT_EQ(r.lines_read, 1050u);
  EXPECT_EQ(r.lines_rejected, 0u);
  EXPECT_FALSE(r.already_imported);
  EXPECT_TRUE(r.rejected_path.empty());
  EXPECT_TRUE(r.rename_error.empty());
  EXPECT_FALSE(std::filesystem::exists(spill_path));
  EXPECT_EQ(read_all(r.replayed_path), spilled);
  EXPECT_EQ(r.key.substr(0, r.key.find(':')), std::to_string(spilled.size()));
  EXPECT_EQ(sink->count().value(), 1050u);
  std::vector<AccessRecord> rows = sink->recent(2000).value();
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.time_unix_ns < b.time_unix_ns; });
  EXPECT_EQ(rows, sample_records(0, 1050));

  // A crash after the commit and before the rename leaves the file in place: a second run
  // recognises it, inserts nothing and renames it.
  write_all(spill_path, spilled);
  const ReplayResult again = replay_spill(spill_path, *sink).value();
  EXPECT_TRUE(again.already_imported);
  EXPECT_EQ(again.rows_replayed, 0u);
  EXPECT_EQ(again.key, r.key);
  EXPECT_FALSE(std::filesystem::exists(spill_path));
  EXPECT_EQ(sink->count().value(), 1050u);
  EXPECT_EQ(sink->stats().imports, 1u);
}

TEST(ReplaySpill, MalformedLinesAreCountedNumberedAndKept) {
  TempDir dir;
  const auto spill_path = dir / "access.spill";
  const std::string garbage = "{\"time_unix_ns\": oops}\n";
  std::string no_status = json_line(4);
  no_status.replace(no_status.find("\"status\":200,"), 13, "");
  const std::string torn = json_line(6).substr(0, 40);  // a write cut short, no newline
  write_all(spill_path, json_line(0) + json_line(1) + garbage + json_line(2) + "\n" + no_status +
                            json_line(3) + torn);
  auto sink = open_ok(dir / "access.db");
  const ReplayResult r = replay_spill(spill_path, *sink).value();
  EXPECT_EQ(r.rows_replayed, 4u);
  EXPECT_EQ(r.lines_read, 7u);  // the blank line 5 is skipped, not counted
  EXPECT_EQ(r.lines_rejected, 3u);
  ASSERT_EQ(r.rejected.size(), 3u);
  EXPECT_EQ(r.rejected[0].line, 3u);
  EXPECT_EQ(r.rejected[0].reason.substr(0, 9), "not JSON:");
  EXPECT_EQ(r.rejected[1].line, 6u);
  EXPECT_EQ(r.rejected[1].reason, "field \"status\": missing");
  EXPECT_EQ(r.rejected[2].line, 8u);
  ASSERT_FALSE(r.rejected_path.empty());
  EXPECT_EQ(r.rejected_path.string(),
            spill_path.string() + "-" + r.key.substr(r.key.find(':') + 1) + ".rejected");
  EXPECT_EQ(read_all(r.rejected_path), garbage + no_status + torn + "\n");
  EXPECT_EQ(sink->count().value(), 4u);
}

TEST(ReplaySpill, ReportsOnlyTheFirstRejectionsButCountsAll) {
  TempDir dir;
  const auto spill_path = dir / "access.spill";
  std::string bytes;
  for (int i = 0; i < 20; ++i) bytes += "not json " + std::to_string(i) + "\n";
  write_all(spill_path, bytes);
  auto sink = open_ok(dir / "access.db");
  ReplayOptions o;
  o.max_reported_rejections = 5;
  const ReplayResult r = replay_spill(spill_path, *sink, o).value();
  EXPECT_EQ(r.lines_rejected, 20u);
  EXPECT_EQ(r.rejected.size(), 5u);
  EXPECT_EQ(r.rows_replayed, 0u);
  EXPECT_EQ(read_all(r.rejected_path), bytes);
}

TEST(ReplaySpill, AMissingFileIsAnErrorNamingIt) {
  TempDir dir;
  auto sink = open_ok(dir / "access.db");
  const auto r = replay_spill(dir / "nope.spill", *sink);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, boost::system::errc::no_such_file_or_directory);
  EXPECT_EQ(r.error().message.rfind((dir / "nope.spill").string() + ": cannot read spill file", 0),
            0u)
      << r.error().message;
}

TEST(ReplaySpill, ADatabaseFailureInsertsNothingAndLeavesTheFile) {
  TempDir dir;
  const auto spill_path = dir / "access.spill";
  write_all(spill_path, json_line(0) + json_line(1));
  SqliteLogSinkOptions o;
  o.busy_timeout = std::chrono::milliseconds(0);
  auto sink = SqliteLogSink::open(dir / "access.db", o).value();
  // Another connection holds the write lock.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((dir / "access.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const auto failed = replay_spill(spill_path, *sink);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code.category(), sqlite_category());
  EXPECT_EQ(failed.error().message.rfind(spill_path.string() + ": cannot import into", 0), 0u)
      << failed.error().message;
  EXPECT_TRUE(std::filesystem::exists(spill_path));
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  const ReplayResult r = replay_spill(spill_path, *sink).value();
  EXPECT_EQ(r.rows_replayed, 2u);
  EXPECT_EQ(sink->count().value(), 2u);
}

}  // namespace
}  // namespace sluice::store
