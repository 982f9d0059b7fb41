// `sluice replay-spill --db FILE SPILL...`: puts the access records the gateway spilled (JSON
// Lines from `batch::FileSpill`) back into the SQLite access log, each file once.
//
// For each SPILL: one transaction; the file's digest is recorded with its rows, then the file
// is renamed to SPILL-<hash>.replayed. Unparseable lines go to SPILL-<hash>.rejected and are
// listed as "SPILL:LINE: reason". Exit 0 when every file was imported (or had been before),
// 1 when a file or the database failed, 2 on usage errors.
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "sluice/store/spill_replay.h"
#include "sluice/store/sqlite_log_sink.h"
#include "tools/sluice/command.h"

namespace {

struct ReplayOptions {
  std::string db;
  std::vector<std::string> spills;
};

int run_replay(const ReplayOptions& o) {
  auto opened = sluice::store::SqliteLogSink::open(o.db);
  if (!opened) {
    std::cerr << "sluice replay-spill: " << opened.error().message << "\n";
    return 1;
  }
  sluice::store::SqliteLogSink& sink = **opened;
  int exit_code = 0;
  uint64_t total_rows = 0;
  uint64_t total_rejected = 0;
  for (const std::string& spill : o.spills) {
    const auto r = sluice::store::replay_spill(spill, sink);
    if (!r) {
      std::cerr << "sluice replay-spill: " << r.error().message << "\n";
      exit_code = 1;
      continue;
    }
    for (const auto& rejected : r->rejected) {
      std::cerr << spill << ":" << rejected.line << ": " << rejected.reason << "\n";
    }
    if (r->lines_rejected > r->rejected.size()) {
      std::cerr << spill << ": ... and " << (r->lines_rejected - r->rejected.size())
                << " more rejected lines\n";
    }
    if (r->already_imported) {
      std::cout << spill << ": already imported (" << r->key << "), nothing inserted";
    } else {
      std::cout << spill << ": " << r->rows_replayed << " rows replayed, " << r->lines_rejected
                << " lines rejected";
      if (!r->rejected_path.empty()) std::cout << " (kept in " << r->rejected_path.string() << ")";
    }
    if (!r->replayed_path.empty()) std::cout << "; moved to " << r->replayed_path.string();
    std::cout << "\n";
    if (!r->rename_error.empty()) {
      std::cerr << "sluice replay-spill: " << r->rename_error
                << " (the rows are in; run again to rename)\n";
      exit_code = 1;
    }
    total_rows += r->rows_replayed;
    total_rejected += r->lines_rejected;
  }
  std::cout << "total: " << total_rows << " rows replayed into " << o.db << ", " << total_rejected
            << " lines rejected\n";
  return exit_code;
}

}  // namespace

SLUICE_COMMAND(70, [](CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "replay-spill",
      "Import access-log spill files (JSON Lines) into the SQLite access log, once");
  auto opts = std::make_shared<ReplayOptions>();
  cmd->add_option("--db", opts->db, "The SQLite access-log database (created if missing)")
      ->required();
  cmd->add_option("spill", opts->spills, "Spill files to import")->required();
  cmd->callback([opts, &exit_code] { exit_code = run_replay(*opts); });
});
