#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/batch/batcher.h"
#include "sluice/batch/file_spill.h"
#include "sluice/store/spill_replay.h"
#include "sluice/store/sqlite_log_sink.h"
#include "tools/sluice/tour.h"

namespace {

void tour_store(std::ostream& out) {
  std::string pattern = (std::filesystem::temp_directory_path() / "sluice-tour-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  const std::filesystem::path dir = pattern;
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};

  auto sink = sluice::store::SqliteLogSink::open(dir / "access.db").value();
  const auto start = std::chrono::steady_clock::now();
  {
    sluice::batch::BatcherOptions o;
    o.batch_size = 500;
    o.overflow = sluice::batch::OverflowPolicy::block;
    sluice::batch::Batcher<sluice::store::AccessRecord> batcher(*sink, o);
    for (int i = 0; i < 5'000; ++i) {
      sluice::store::AccessRecord r;
      r.time_unix_ns = 1'700'000'000'000'000'000 + int64_t{i} * 1'000'000;
      r.route = "chat";
      r.method = "POST";
      r.path = "/v1/chat/completions";
      r.status = 200;
      r.cache = i % 3 == 0 ? sluice::store::CacheOutcome::miss : sluice::store::CacheOutcome::hit;
      r.request_id = "req-" + std::to_string(i);
      (void)batcher.add(std::move(r));
    }
    batcher.stop();
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto s = sink->stats();
  out << "sqlite: 5000 access records -> " << sink->count().value() << " rows in " << s.batches
      << " transactions (WAL, schema v" << sink->schema_version().value() << "), "
      << static_cast<long long>(static_cast<double>(s.rows) / secs) << " rows/s\n";
  out << "sqlite: newest row " << sink->recent(1).value().at(0).request_id << "\n";

  // A spill as the batcher leaves it when the sink is down, plus one torn line; replayed twice.
  {
    sluice::batch::FileSpill spill(dir / "access.spill", sluice::batch::SpillSync::none);
    std::vector<sluice::store::AccessRecord> lost(300);
    for (std::size_t i = 0; i < lost.size(); ++i) {
      lost[i].time_unix_ns = 1'800'000'000'000'000'000 + static_cast<int64_t>(i);
      lost[i].request_id = "spilled-" + std::to_string(i);
    }
    auto serialize = &sluice::store::append_json;
    if (spill.append_items(std::span<const sluice::store::AccessRecord>(lost), serialize) ||
        spill.append("{\"time_unix_ns\":17")) {
      throw std::runtime_error("store tour: spill failed");
    }
  }
  const auto replayed = sluice::store::replay_spill(dir / "access.spill", *sink).value();
  std::filesystem::copy_file(replayed.replayed_path, dir / "access.spill");
  const auto again = sluice::store::replay_spill(dir / "access.spill", *sink).value();
  out << "replay-spill: " << replayed.rows_replayed << " rows replayed, " << replayed.lines_rejected
      << " line rejected (line " << replayed.rejected.at(0).line << ": "
      << replayed.rejected.at(0).reason
      << "); second run: " << (again.already_imported ? "already imported, " : "imported again?! ")
      << again.rows_replayed << " rows; table now " << sink->count().value() << " rows\n";

  {
    std::FILE* f = std::fopen((dir / "notes.db").c_str(), "w");
    std::fputs(
        "not a database, just text that is long enough for SQLite to look at......"
        "..........................................................................",
        f);
    std::fclose(f);
  }
  auto refused = sluice::store::SqliteLogSink::open(dir / "notes.db");
  out << "sqlite: opening a foreign file -> "
      << (refused ? std::string("opened?!")
                  : refused.error().message.substr(dir.string().size() + 1))
      << "\n";
  if (refused || s.rows != 5'000 || replayed.rows_replayed != 300 || !again.already_imported)
    throw std::runtime_error("store tour: wrong outcome");
}

SLUICE_TOUR_STEP(110, "store", tour_store);

}  // namespace
