// SqliteLogSink behind a Batcher: 20,000 access records from 4 threads into a WAL database in a
// temp dir, then the row count and the newest record read back.
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "sluice/base/units.h"
#include "sluice/batch/batcher.h"
#include "sluice/store/sqlite_log_sink.h"

int main() {
  std::string pattern = (std::filesystem::temp_directory_path() / "sluice-example-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) return 1;
  const std::filesystem::path dir = pattern;
  int rc = 1;
  {
    auto opened = sluice::store::SqliteLogSink::open(dir / "access.db");
    if (!opened) {
      std::fprintf(stderr, "%s\n", opened.error().message.c_str());
      return 1;
    }
    sluice::store::SqliteLogSink& sink = **opened;
    sluice::batch::BatcherOptions o;
    o.batch_size = 500;
    o.overflow = sluice::batch::OverflowPolicy::block;
    const auto start = std::chrono::steady_clock::now();
    {
      sluice::batch::Batcher<sluice::store::AccessRecord> batcher(sink, o);
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&batcher, t] {
          for (int i = 0; i < 5'000; ++i) {
            sluice::store::AccessRecord r;
            r.time_unix_ns = 1'700'000'000'000'000'000 + int64_t{t * 5'000 + i} * 1'000;
            r.route = "chat";
            r.method = "POST";
            r.path = "/v1/chat/completions";
            r.status = 200;
            r.cache =
                i % 4 == 0 ? sluice::store::CacheOutcome::miss : sluice::store::CacheOutcome::hit;
            r.upstream_latency = std::chrono::milliseconds(i % 4 == 0 ? 420 : 0);
            r.total_latency = std::chrono::microseconds(i % 4 == 0 ? 421'000 : 180);
            r.bytes_in = 700;
            r.bytes_out = 2'048;
            r.tenant_digest = "5e884898da280471";
            r.request_id = "t" + std::to_string(t) + "-" + std::to_string(i);
            r.upstream = "llm";
            (void)batcher.add(std::move(r));
          }
        });
      }
      for (auto& th : threads) th.join();
      batcher.stop();
      const auto s = batcher.stats();
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf(
          "batcher: %llu records written in %llu transactions (avg %.0f rows), %.0f rows/s\n",
          static_cast<unsigned long long>(s.written), static_cast<unsigned long long>(s.batches),
          s.avg_batch_size(), static_cast<double>(s.written) / secs);
    }
    const uint64_t rows = sink.count().value();
    const auto newest = sink.recent(1).value();
    std::printf("database %s: %llu rows, schema v%d, WAL\n", sink.path().filename().c_str(),
                static_cast<unsigned long long>(rows), sink.schema_version().value());
    if (!newest.empty()) {
      std::printf("newest: %s %s status %d cache %s total %s request %s\n",
                  newest[0].method.c_str(), newest[0].path.c_str(), newest[0].status,
                  std::string(to_string(newest[0].cache)).c_str(),
                  sluice::base::format_duration(newest[0].total_latency).c_str(),
                  newest[0].request_id.c_str());
    }
    rc = rows == 20'000 ? 0 : 1;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return rc;
}
