// `FileSpill`: a ready-made spill target for `Batcher<T>`: appends each item of a batch the
// sink could not take to a file, one line per item, through a user-supplied serializer (write
// JSON there and the file is JSON Lines, which can be replayed into the sink later).
//
// Thread-safety: `append` and `spill_fn` callables are safe from any thread (one mutex).
// Cost: one `write(2)` of the whole batch (plus an `fdatasync` when `sync` is on) per spilled
// batch; the file is opened on the first spill, so an unused spill creates no file.
// Lifetime: the `FileSpill` must outlive every `SpillFn` made by `spill_fn`.
#pragma once

#include <boost/system/error_code.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace sluice::batch {

// Whether each spill is flushed to stable storage before it counts as kept.
enum class SpillSync {
  // `fdatasync` after each batch: a spilled batch survives a crash (the default).
  data,
  // No sync: faster, a crash may lose the last spilled batches.
  none,
};

class FileSpill {
 public:
  explicit FileSpill(std::filesystem::path path, SpillSync sync = SpillSync::data);
  ~FileSpill();

  FileSpill(const FileSpill&) = delete;
  FileSpill& operator=(const FileSpill&) = delete;

  // Appends `bytes` as they are (the caller ends lines). On failure (errno as the code) a
  // partial write may have left part of `bytes` in the file.
  [[nodiscard]] boost::system::error_code append(std::string_view bytes);

  // Serializes every item with `serialize(item, out)` (which appends one line without its
  // '\n'), then appends all lines in one write.
  template <class T, class Serializer>
  [[nodiscard]] boost::system::error_code append_items(std::span<const T> items,
                                                       Serializer& serialize) {
    std::string buffer;
    for (const T& item : items) {
      serialize(item, buffer);
      buffer.push_back('\n');
    }
    const boost::system::error_code ec = append(buffer);
    if (!ec) {
      std::lock_guard lk(mu_);
      lines_ += items.size();
    }
    return ec;
  }

  // A `Batcher<T>::SpillFn` that appends through `serialize`.
  template <class T>
  [[nodiscard]] std::function<boost::system::error_code(std::span<const T>)> spill_fn(
      std::function<void(const T&, std::string&)> serialize) {
    return [this, serialize = std::move(serialize)](std::span<const T> items) mutable {
      return append_items(items, serialize);
    };
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  // Lines appended through `append_items` so far.
  [[nodiscard]] uint64_t lines_written() const;
  // Bytes appended so far.
  [[nodiscard]] uint64_t bytes_written() const;

 private:
  const std::filesystem::path path_;
  const SpillSync sync_;
  mutable std::mutex mu_;
  int fd_ = -1;
  uint64_t lines_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace sluice::batch
