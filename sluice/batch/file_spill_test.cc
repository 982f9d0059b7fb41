#include "sluice/batch/file_spill.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/batch/batcher.h"

namespace sluice::batch {
namespace {

// A fresh directory under the system temp dir, removed with its contents at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sluice-batch-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class DownSink final : public Sink<int> {
 public:
  boost::system::error_code write(std::span<const int>) override {
    return boost::system::errc::make_error_code(boost::system::errc::connection_refused);
  }
};

TEST(FileSpill, AppendsOneLinePerItemAndCreatesTheFileLazily) {
  TempDir dir;
  const auto path = dir.path() / "spool.jsonl";
  FileSpill spill(path, SpillSync::none);
  EXPECT_FALSE(std::filesystem::exists(path));
  auto fn = spill.spill_fn<int>(
      [](const int& v, std::string& out) { out += "{\"v\":" + std::to_string(v) + "}"; });
  const std::vector<int> a{1, 2};
  const std::vector<int> b{3};
  EXPECT_FALSE(fn(std::span<const int>(a)));
  EXPECT_FALSE(fn(std::span<const int>(b)));
  EXPECT_EQ(read_all(path), "{\"v\":1}\n{\"v\":2}\n{\"v\":3}\n");
  EXPECT_EQ(spill.lines_written(), 3u);
  EXPECT_EQ(spill.bytes_written(), 24u);
}

TEST(FileSpill, ReportsAnUnopenableFile) {
  TempDir dir;
  FileSpill spill(dir.path() / "missing-dir" / "spool.jsonl");
  const boost::system::error_code ec = spill.append("x\n");
  EXPECT_EQ(ec, boost::system::errc::no_such_file_or_directory);
  EXPECT_EQ(spill.bytes_written(), 0u);
}

TEST(FileSpill, ReceivesEverythingADeadSinkCouldNotTake) {
  TempDir dir;
  const auto path = dir.path() / "spool.jsonl";
  FileSpill spill(path);
  DownSink sink;
  base::ManualClock clock;
  BatcherOptions o;
  o.mode = RunMode::manual;
  o.batch_size = 4;
  o.max_retries = 0;
  {
    Batcher<int> b(sink, o, spill.spill_fn<int>([](const int& v, std::string& out) {
      out += std::to_string(v);
    }),
                   clock);
    for (int i = 0; i < 10; ++i) ASSERT_EQ(b.add(i), AddResult::accepted);
    b.stop();
    EXPECT_TRUE(b.pump());
    EXPECT_EQ(b.stats().spilled, 10u);
  }
  EXPECT_EQ(read_all(path), "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n");
  EXPECT_EQ(spill.lines_written(), 10u);
}

}  // namespace
}  // namespace sluice::batch
