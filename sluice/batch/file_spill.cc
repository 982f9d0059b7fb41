#include "sluice/batch/file_spill.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace sluice::batch {
namespace {

boost::system::error_code last_errno() { return {errno, boost::system::system_category()}; }

}  // namespace

FileSpill::FileSpill(std::filesystem::path path, SpillSync sync)
    : path_(std::move(path)), sync_(sync) {}

FileSpill::~FileSpill() {
  if (fd_ >= 0) ::close(fd_);
}

boost::system::error_code FileSpill::append(std::string_view bytes) {
  std::lock_guard lk(mu_);
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) return last_errno();
  }
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_errno();
    }
    done += static_cast<std::size_t>(n);
  }
  if (sync_ == SpillSync::data && ::fdatasync(fd_) != 0) return last_errno();
  bytes_ += bytes.size();
  return {};
}

uint64_t FileSpill::lines_written() const {
  std::lock_guard lk(mu_);
  return lines_;
}

uint64_t FileSpill::bytes_written() const {
  std::lock_guard lk(mu_);
  return bytes_;
}

}  // namespace sluice::batch
