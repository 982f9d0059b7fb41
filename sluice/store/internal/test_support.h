// Helpers shared by the store tests: a self-removing temp directory and sample records.
//
// Thread-safety: test-only values; not shared between threads.
#pragma once

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "sluice/store/access_record.h"

namespace sluice::store::internal {

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
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path operator/(const char* name) const { return path_ / name; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Record number `i`: times 1 ms apart, fields varying with `i`.
inline AccessRecord sample_record(int i) {
  AccessRecord r;
  r.time_unix_ns = 1'700'000'000'000'000'000 + int64_t{i} * 1'000'000;
  r.route = i % 2 == 0 ? "chat" : "embeddings";
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.status = 200;
  r.cache = static_cast<CacheOutcome>(i % 5);
  r.upstream_latency = std::chrono::microseconds(1500 + i);
  r.total_latency = std::chrono::microseconds(1700 + i);
  r.bytes_in = 512;
  r.bytes_out = 4096 + static_cast<uint64_t>(i);
  r.tenant_digest = "9f86d081884c7d65";
  r.request_id = "req-" + std::to_string(i);
  r.upstream = "openai";
  return r;
}

// Records `from` .. `to - 1`.
inline std::vector<AccessRecord> sample_records(int from, int to) {
  std::vector<AccessRecord> v;
  for (int i = from; i < to; ++i) v.push_back(sample_record(i));
  return v;
}

}  // namespace sluice::store::internal
