// `AccessLog`: the gateway's request log. Each answered request becomes one
// `store::AccessRecord`, queued in a `batch::Batcher` (never blocking the event loop: a full
// queue drops the record and counts it) and written in batches to the SQLite sink
// (`<data_dir>/access.db`, table `access_log`) by the batcher's own thread. A batch the
// sink refuses after its retries is spilled as JSON lines to `<data_dir>/access-spill.jsonl`
// (`sluice replay-spill` imports it later); a record is lost only if the spill fails too,
// and then it is counted in `dropped`.
//
// Thread-safety: `add` and `stats` from any thread (workers add concurrently); `flush` and
// `stop` from any thread. Cost of `add`: one lock and a move of the record (~200 bytes).
// Lifetime: `stop()` (or the destructor) writes everything queued before returning.
#pragma once

#include <boost/system/result.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "sluice/batch/batcher.h"
#include "sluice/batch/file_spill.h"
#include "sluice/store/access_record.h"
#include "sluice/store/sqlite_log_sink.h"

namespace sluice::gateway {

struct AccessLogOptions {
  // Directory of access.db and the spill file; created if missing.
  std::filesystem::path data_dir = "./sluice-data";
  // Records per SQLite transaction.
  size_t batch_size = 500;
  // Longest a record waits in the queue before a partial batch is written.
  Duration flush_interval = std::chrono::seconds(1);
  // Records queued at most; past it new records are dropped and counted.
  size_t queue_capacity = 100'000;
};

struct AccessLogStats {
  batch::BatcherStats batcher;     // queue, batches, failures, spills, drops
  store::SqliteLogSinkStats sink;  // rows and batches committed, failures
  uint64_t spill_lines = 0;        // records written to the spill file since start
};

class AccessLog {
 public:
  // Opens (creating) the data directory, the database and the spill file. The error is a
  // sentence naming the file for a person to read.
  [[nodiscard]] static boost::system::result<std::unique_ptr<AccessLog>, std::string> open(
      AccessLogOptions options);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // Queues one record; false when it was dropped (queue full or stopped), counted.
  bool add(store::AccessRecord record);
  // Writes everything queued now; returns when it is written (or spilled).
  void flush();
  // Stops accepting records and writes what is queued.
  void stop();
  [[nodiscard]] AccessLogStats stats() const;
  [[nodiscard]] const std::filesystem::path& database_path() const noexcept;
  [[nodiscard]] const std::filesystem::path& spill_path() const noexcept;

 private:
  AccessLog() = default;
  std::unique_ptr<store::SqliteLogSink> sink_;
  std::unique_ptr<batch::FileSpill> spill_;
  std::unique_ptr<batch::Batcher<store::AccessRecord>> batcher_;
};

}  // namespace sluice::gateway
