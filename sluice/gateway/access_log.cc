#include "sluice/gateway/access_log.h"

#include <system_error>

namespace sluice::gateway {

boost::system::result<std::unique_ptr<AccessLog>, std::string> AccessLog::open(
    AccessLogOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return "cannot create data directory " + options.data_dir.string() + ": " + ec.message();
  }
  std::unique_ptr<AccessLog> log(new AccessLog());
  store::SqliteLogSinkOptions sink_options;
  sink_options.rows_per_statement = options.batch_size;  // a full batch is one INSERT
  auto sink = store::SqliteLogSink::open(options.data_dir / "access.db", sink_options);
  if (!sink) return sink.error().message;
  log->sink_ = std::move(*sink);
  log->spill_ = std::make_unique<batch::FileSpill>(options.data_dir / "access-spill.jsonl");
  batch::BatcherOptions batcher;
  batcher.batch_size = options.batch_size;
  batcher.flush_interval = options.flush_interval;
  batcher.max_queue = options.queue_capacity;
  batcher.overflow = batch::OverflowPolicy::drop_newest;  // never block an event loop
  log->batcher_ = std::make_unique<batch::Batcher<store::AccessRecord>>(
      *log->sink_, batcher,
      log->spill_->spill_fn<store::AccessRecord>(
          [](const store::AccessRecord& r, std::string& out) { store::append_json(r, out); }));
  return log;
}

AccessLog::~AccessLog() { stop(); }

bool AccessLog::add(store::AccessRecord record) {
  return batcher_->add(std::move(record)) == batch::AddResult::accepted;
}

void AccessLog::flush() { batcher_->flush(); }

void AccessLog::stop() {
  if (batcher_) batcher_->stop();
}

AccessLogStats AccessLog::stats() const {
  AccessLogStats s;
  s.batcher = batcher_->stats();
  s.sink = sink_->stats();
  s.spill_lines = spill_->lines_written();
  return s;
}

const std::filesystem::path& AccessLog::database_path() const noexcept { return sink_->path(); }
const std::filesystem::path& AccessLog::spill_path() const noexcept { return spill_->path(); }

}  // namespace sluice::gateway
