// Benchmarks of sluice/store: SQLite access-log rows/s, batched beside one transaction per row,
// on the same records in the same run.
//
//   cmake --build build/release --target sluice_store_benchmark
//   build/release/sluice/store/sluice_store_benchmark --benchmark_repetitions=5
//   --benchmark_report_aggregates_only=true
//
// Each iteration writes 500 records through `SqliteLogSink::write`: as batches of
// `range(0)` rows (one transaction each), or as 500 one-row transactions (the baseline, with
// the same durability settings). Record times advance 500 ms per iteration, as a live log's do.
// The sink writes a full chunk of `rows_per_statement` (500) rows with one multi-row INSERT;
// BM_SqliteBatchedRowStatements is the same batch with one INSERT per row (and
// BM_SqliteBatched/50, being under a chunk, also goes row by row). The database is a fresh file
// in a mkdtemp directory under $SLUICE_BENCH_DIR, else the system temp dir (on this machine
// /tmp is the real disk, not tmpfs); WAL, synchronous=NORMAL unless the name says SyncFull.
// BM_BatcherToSqlite adds the records through a `Batcher` (flusher thread, batch 500) and
// flushes. Sample (2-core VM shared with ~7 parallel builds, load average 15-19, medians of
// 5, per 500 rows, wall / CPU): BM_SqliteBatched/500 4.98 / 1.29 ms (100 k rows/s wall, 388 k
// CPU) vs BM_SqlitePerRow/1 82.9 / 20.0 ms: 16.6x wall, 15.5x CPU; BM_SqliteBatchedSyncFull/500
// 11.1 / 1.46 ms vs BM_SqlitePerRowSyncFull/1 3440 / 130 ms: 310x wall, 89x CPU.
// More in docs/benchmarks/store.md.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/batch/batcher.h"
#include "sluice/store/sqlite_log_sink.h"

namespace {

using sluice::store::AccessRecord;
using sluice::store::SqliteLogSink;
using sluice::store::SqliteLogSinkOptions;
using sluice::store::SqliteSync;

constexpr int kRowsPerIteration = 500;

class BenchDb {
 public:
  explicit BenchDb(SqliteSync sync, std::size_t rows_per_statement = 500) {
    const char* base = std::getenv("SLUICE_BENCH_DIR");
    const std::filesystem::path root =
        base != nullptr ? std::filesystem::path(base) : std::filesystem::temp_directory_path();
    std::string pattern = (root / "sluice-store-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    SqliteLogSinkOptions o;
    o.synchronous = sync;
    o.rows_per_statement = rows_per_statement;
    auto r = SqliteLogSink::open(dir_ / "access.db", o);
    if (!r) throw std::runtime_error(r.error().message);
    sink_ = std::move(*r);
  }
  ~BenchDb() {
    sink_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  SqliteLogSink& sink() { return *sink_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<SqliteLogSink> sink_;
};

const std::vector<AccessRecord>& sample_records() {
  static const std::vector<AccessRecord> records = [] {
    std::vector<AccessRecord> v;
    for (int i = 0; i < kRowsPerIteration; ++i) {
      AccessRecord r;
      r.time_unix_ns = 1'700'000'000'000'000'000 + int64_t{i} * 1'000'000;
      r.route = i % 3 == 0 ? "chat" : "embeddings";
      r.method = "POST";
      r.path = "/v1/chat/completions";
      r.status = i % 50 == 0 ? 502 : 200;
      r.cache = static_cast<sluice::store::CacheOutcome>(i % 5);
      r.upstream_latency = std::chrono::microseconds(1500 + i);
      r.total_latency = std::chrono::microseconds(1700 + i);
      r.bytes_in = 900;
      r.bytes_out = 4096 + static_cast<uint64_t>(i);
      r.tenant_digest = "9f86d081884c7d650a2fde3a8b9d0b7c";
      r.request_id = "01HZX3K9Q2" + std::to_string(100000 + i);
      r.upstream = "openai";
      v.push_back(std::move(r));
    }
    return v;
  }();
  return records;
}

// Moves every record forward by one iteration's span (500 ms), as a live log's times advance:
// rows are appended at the end of the time indexes instead of into the middle of earlier ones.
void advance_time(std::vector<AccessRecord>& records) {
  for (AccessRecord& r : records) r.time_unix_ns += int64_t{kRowsPerIteration} * 1'000'000;
}

void write_batched(benchmark::State& state, SqliteSync sync, std::size_t rows_per_statement = 500) {
  BenchDb db(sync, rows_per_statement);
  std::vector<AccessRecord> records = sample_records();
  const auto batch = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    advance_time(records);
    for (std::size_t i = 0; i < records.size(); i += batch) {
      const std::size_t n = std::min(batch, records.size() - i);
      if (db.sink().write(std::span<const AccessRecord>(records).subspan(i, n))) {
        state.SkipWithError("write failed");
      }
    }
  }
  state.SetItemsProcessed(state.iterations() * kRowsPerIteration);
}

void BM_SqliteBatched(benchmark::State& state) { write_batched(state, SqliteSync::normal); }
BENCHMARK(BM_SqliteBatched)->Arg(500)->Arg(50)->Unit(benchmark::kMillisecond);

// The same batches, each row its own INSERT statement (the multi-row statement's gain).
void BM_SqliteBatchedRowStatements(benchmark::State& state) {
  write_batched(state, SqliteSync::normal, 1);
}
BENCHMARK(BM_SqliteBatchedRowStatements)->Arg(500)->Unit(benchmark::kMillisecond);

void BM_SqlitePerRow(benchmark::State& state) { write_batched(state, SqliteSync::normal); }
BENCHMARK(BM_SqlitePerRow)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_SqliteBatchedSyncFull(benchmark::State& state) { write_batched(state, SqliteSync::full); }
BENCHMARK(BM_SqliteBatchedSyncFull)->Arg(500)->Unit(benchmark::kMillisecond);

void BM_SqlitePerRowSyncFull(benchmark::State& state) { write_batched(state, SqliteSync::full); }
BENCHMARK(BM_SqlitePerRowSyncFull)->Arg(1)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_BatcherToSqlite(benchmark::State& state) {
  BenchDb db(SqliteSync::normal);
  sluice::batch::BatcherOptions o;
  o.batch_size = 500;
  o.max_queue = 100'000;
  o.overflow = sluice::batch::OverflowPolicy::block;
  sluice::batch::Batcher<AccessRecord> batcher(db.sink(), o);
  std::vector<AccessRecord> records = sample_records();
  for (auto _ : state) {
    advance_time(records);
    for (const AccessRecord& r : records) {
      if (batcher.add(r) != sluice::batch::AddResult::accepted) state.SkipWithError("dropped");
    }
    batcher.flush();
  }
  state.SetItemsProcessed(state.iterations() * kRowsPerIteration);
  state.counters["avg_batch"] = batcher.stats().avg_batch_size();
}
BENCHMARK(BM_BatcherToSqlite)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
