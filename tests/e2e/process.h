// Child processes for the end-to-end tests: spawn a real binary (posix_spawn) with its stdout
// and stderr in files of a per-test directory, wait for the ready file it writes once bound,
// send it signals, and collect its exit status. Every wait is bounded; a child still running
// when its `ChildProcess` is destroyed is killed (SIGKILL) and reaped.
//
// Thread-safety: none; one test thread owns a `ChildProcess` and its `TestDir`.
// Waiting uses a pidfd (poll on process exit) where the kernel allows it, otherwise waitpid
// polling at 5 ms; ready files are polled at 5 ms.
#pragma once

#include <sys/types.h>

#include <boost/json/value.hpp>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sluice::e2e {

// A fresh directory for one test, under $TMPDIR (or /tmp), named after the running gtest
// test. Removed by the destructor unless the test failed (then its path is printed, so the
// child's logs can be read).
class TestDir {
 public:
  TestDir();
  ~TestDir();
  TestDir(const TestDir&) = delete;
  TestDir& operator=(const TestDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  // `path() / name` as a string.
  [[nodiscard]] std::string file(const std::string& name) const;
  // Writes `content` to `path() / name` and returns the full path.
  std::string write_file(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// How a child ended.
struct ExitStatus {
  bool exited = false;  // ended by exit(); `code` is valid
  int code = -1;        // exit code when `exited`
  int signal = 0;       // terminating signal when not `exited`
  [[nodiscard]] std::string describe() const;
};

class ChildProcess {
 public:
  ChildProcess() = default;
  // Kills (SIGKILL) and reaps the child if it is still running.
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts `argv[0]` (a path) with `argv`; stdout and stderr go to `<dir>/<name>.stdout` and
  // `<dir>/<name>.stderr`; stdin is /dev/null. The environment is inherited. Returns an empty
  // process (`running()` false) and fills `error` if the spawn failed.
  static ChildProcess spawn(const std::vector<std::string>& argv, const TestDir& dir,
                            const std::string& name, std::string* error = nullptr);

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }
  [[nodiscard]] bool running() const noexcept { return pid_ > 0 && !status_; }

  // Waits up to `bound` for `path` to exist and hold a JSON object (it is written with
  // rename, so it is complete when it appears). nullopt if the bound passed or the child
  // exited first (`exit_status()` then says how).
  [[nodiscard]] std::optional<boost::json::value> wait_ready_file(const std::string& path,
                                                                  std::chrono::milliseconds bound);

  // Sends `sig`; false if the child is not running.
  bool signal(int sig);
  // Waits up to `bound` for the child to exit; nullopt if it is still running.
  [[nodiscard]] std::optional<ExitStatus> wait_exit(std::chrono::milliseconds bound);
  // The exit status once the child was reaped.
  [[nodiscard]] const std::optional<ExitStatus>& exit_status() const noexcept { return status_; }

  // Contents of the child's stdout / stderr files so far.
  [[nodiscard]] std::string stdout_text() const;
  [[nodiscard]] std::string stderr_text() const;

 private:
  // Reaps the child if it has exited; true if it has.
  bool try_reap();
  void close_pidfd() noexcept;

  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<ExitStatus> status_;
  std::string stdout_path_;
  std::string stderr_path_;
};

// Runs `argv` to completion (bounded by `bound`, then SIGKILL), capturing output. For
// commands such as `sluice check-config FILE` or `sluice serve --help`.
struct RunResult {
  ExitStatus status;
  bool timed_out = false;
  std::string out;
  std::string err;
};
[[nodiscard]] RunResult run_to_completion(const std::vector<std::string>& argv, const TestDir& dir,
                                          const std::string& name, std::chrono::milliseconds bound);

// Path of the `sluice` binary under test (compile definition `SLUICE_BINARY`, overridable by
// the environment variable SLUICE_BINARY).
[[nodiscard]] std::string sluice_binary();
// The repository root (compile definition `SLUICE_SOURCE_DIR`).
[[nodiscard]] std::string source_dir();

// A TCP port on 127.0.0.1 that was free a moment ago and has no listener now (bound, then
// closed): connecting to it is refused. For "upstream is down" tests.
[[nodiscard]] uint16_t closed_port();

}  // namespace sluice::e2e
