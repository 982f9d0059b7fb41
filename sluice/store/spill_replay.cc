#include "sluice/store/spill_replay.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include "sluice/base/hash.h"

namespace sluice::store {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

struct LineFree {
  void operator()(char* p) const { std::free(p); }
};

boost::system::error_code errno_code() { return {errno, boost::system::system_category()}; }

// "<size>:<16 hex digits>" of the file's bytes, read in fixed blocks so the value depends only
// on the content.
boost::system::error_code digest_file(const std::filesystem::path& path, std::string& key,
                                      std::string& hex) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) return errno_code();
  std::array<char, 1 << 16> block;
  uint64_t size = 0;
  uint64_t h = 0x736c756963650001ULL;  // "sluice", version 1 of this digest
  for (;;) {
    const std::size_t n = std::fread(block.data(), 1, block.size(), f.get());
    if (n > 0) {
      h = base::hash_combine(h, base::hash_bytes(block.data(), n));
      size += n;
    }
    if (n < block.size()) break;
  }
  if (std::ferror(f.get())) return errno_code();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  hex = buf;
  key = std::to_string(size) + ":" + hex;
  return {};
}

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

void throw_exception_from_error(const ReplayError& e, const boost::source_location&) {
  throw std::runtime_error(e.message);
}

boost::system::result<ReplayResult, ReplayError> replay_spill(const std::filesystem::path& spill,
                                                              SqliteLogSink& sink,
                                                              const ReplayOptions& options) {
  const auto fail = [&](boost::system::error_code code, const std::string& what) {
    return ReplayError{code, spill.string() + ": " + what};
  };
  ReplayResult result;
  std::string hex;
  if (const auto ec = digest_file(spill, result.key, hex)) {
    return fail(ec, "cannot read spill file: " + ec.message());
  }
  const std::filesystem::path rejected_path = spill.string() + "-" + hex + ".rejected";
  const std::filesystem::path replayed_path = spill.string() + "-" + hex + ".replayed";

  File in(std::fopen(spill.c_str(), "rb"));
  if (!in) {
    const auto ec = errno_code();
    return fail(ec, "cannot open spill file: " + ec.message());
  }
  File rejected_file;
  std::unique_ptr<char, LineFree> line_buf;
  std::size_t line_cap = 0;
  uint64_t line_no = 0;
  bool at_end = false;
  std::string io_failure;  // which file failed, for the message

  const auto reject = [&](std::string_view raw, std::string reason) -> boost::system::error_code {
    if (!rejected_file) {
      rejected_file.reset(std::fopen(rejected_path.c_str(), "wb"));
      if (!rejected_file) {
        io_failure = "cannot create " + rejected_path.string();
        return errno_code();
      }
      result.rejected_path = rejected_path;
    }
    if (std::fwrite(raw.data(), 1, raw.size(), rejected_file.get()) != raw.size() ||
        (raw.empty() || raw.back() != '\n' ? std::fputc('\n', rejected_file.get()) == EOF
                                           : false)) {
      io_failure = "cannot write " + rejected_path.string();
      return errno_code();
    }
    ++result.lines_rejected;
    if (result.rejected.size() < options.max_reported_rejections) {
      result.rejected.push_back({line_no, std::move(reason)});
    }
    return {};
  };

  const ImportSource source = [&](std::vector<AccessRecord>& chunk) -> boost::system::error_code {
    const std::size_t want = std::max<std::size_t>(options.chunk_rows, 1);
    while (!at_end && chunk.size() < want) {
      char* raw = line_buf.release();
      errno = 0;
      const ssize_t n = ::getline(&raw, &line_cap, in.get());
      line_buf.reset(raw);
      if (n < 0) {
        if (std::ferror(in.get())) {
          io_failure = "cannot read spill file";
          return errno != 0 ? errno_code() : make_error_code(boost::system::errc::io_error);
        }
        at_end = true;
        break;
      }
      ++line_no;
      const std::string_view line(raw, static_cast<std::size_t>(n));
      if (blank(line)) continue;
      ++result.lines_read;
      auto parsed = parse_json(line);
      if (parsed) {
        chunk.push_back(std::move(*parsed));
      } else if (const auto ec = reject(line, std::move(parsed.error().reason))) {
        return ec;
      }
    }
    // The rejected lines reach the disk before the import can commit.
    if (at_end && rejected_file) {
      if (std::fflush(rejected_file.get()) != 0 || ::fsync(::fileno(rejected_file.get())) != 0) {
        io_failure = "cannot sync " + rejected_path.string();
        return errno_code();
      }
    }
    return {};
  };

  const auto imported = sink.import_once(result.key, source);
  if (!imported) {
    const std::string what =
        io_failure.empty() ? "cannot import into " + sink.path().string() : io_failure;
    return fail(imported.error(),
                what + ": " + imported.error().message() +
                    (io_failure.empty() ? " (" + sink.stats().last_error + ")" : std::string()));
  }
  result.already_imported = imported->outcome == ImportOutcome::already_imported;
  result.rows_replayed = imported->rows;
  in.reset();

  std::error_code ec;
  std::filesystem::rename(spill, replayed_path, ec);
  if (ec) {
    result.rename_error =
        "cannot rename " + spill.string() + " to " + replayed_path.string() + ": " + ec.message();
  } else {
    result.replayed_path = replayed_path;
  }
  return result;
}

}  // namespace sluice::store
