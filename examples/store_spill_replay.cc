// The access log's failure path end to end: a Batcher whose sink is down spills 2,000 records
// to a JSON Lines file (batch::FileSpill + store::append_json); `store::replay_spill` then
// imports the file into the SQLite log in one transaction, and a second run inserts nothing.
#include <stdlib.h>

#include <boost/system/errc.hpp>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>

#include "sluice/batch/batcher.h"
#include "sluice/batch/file_spill.h"
#include "sluice/store/spill_replay.h"
#include "sluice/store/sqlite_log_sink.h"

namespace {

// The database is unreachable: every write fails, so the batcher spills.
class DownSink final : public sluice::batch::Sink<sluice::store::AccessRecord> {
 public:
  boost::system::error_code write(std::span<const sluice::store::AccessRecord>) override {
    return make_error_code(boost::system::errc::io_error);
  }
};

int run(const std::filesystem::path& dir) {
  const std::filesystem::path spill_path = dir / "access.spill";
  {
    DownSink down;
    sluice::batch::FileSpill spill(spill_path);
    sluice::batch::BatcherOptions o;
    o.batch_size = 500;
    o.max_retries = 0;
    o.overflow = sluice::batch::OverflowPolicy::block;
    sluice::batch::Batcher<sluice::store::AccessRecord> batcher(
        down, o, spill.spill_fn<sluice::store::AccessRecord>(&sluice::store::append_json));
    for (int i = 0; i < 2'000; ++i) {
      sluice::store::AccessRecord r;
      r.time_unix_ns = 1'700'000'000'000'000'000 + int64_t{i} * 1'000'000;
      r.route = "chat";
      r.method = "POST";
      r.path = "/v1/chat/completions";
      r.status = 200;
      r.cache = sluice::store::CacheOutcome::miss;
      r.request_id = "req-" + std::to_string(i);
      (void)batcher.add(std::move(r));
    }
    batcher.stop();
    std::printf("sink down: %llu records spilled to %s (%llu bytes)\n",
                static_cast<unsigned long long>(spill.lines_written()),
                spill_path.filename().c_str(),
                static_cast<unsigned long long>(spill.bytes_written()));
  }

  auto sink = sluice::store::SqliteLogSink::open(dir / "access.db").value();
  const auto first = sluice::store::replay_spill(spill_path, *sink);
  if (!first) {
    std::fprintf(stderr, "%s\n", first.error().message.c_str());
    return 1;
  }
  std::printf("replay: %llu rows in one transaction, %llu lines rejected, file moved to %s\n",
              static_cast<unsigned long long>(first->rows_replayed),
              static_cast<unsigned long long>(first->lines_rejected),
              first->replayed_path.filename().c_str());

  // As if the first run had crashed after its commit and before the rename.
  std::filesystem::copy_file(first->replayed_path, spill_path);
  const auto second = sluice::store::replay_spill(spill_path, *sink).value();
  const uint64_t rows = sink->count().value();
  std::printf("replay again: %s, %llu rows inserted; table has %llu rows (key %s)\n",
              second.already_imported ? "already imported" : "imported",
              static_cast<unsigned long long>(second.rows_replayed),
              static_cast<unsigned long long>(rows), second.key.c_str());
  return rows == 2'000 && first->rows_replayed == 2'000 && second.already_imported ? 0 : 1;
}

}  // namespace

int main() {
  std::string pattern = (std::filesystem::temp_directory_path() / "sluice-example-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) return 1;
  const std::filesystem::path dir = pattern;
  int rc = 1;
  try {
    rc = run(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_spill_replay: %s\n", e.what());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return rc;
}
