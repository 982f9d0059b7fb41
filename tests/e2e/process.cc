#include "tests/e2e/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <utility>

extern char** environ;

namespace sluice::e2e {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kPollStep{5};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string sanitize(std::string s) {
  for (char& c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!ok) c = '_';
  }
  return s;
}

ExitStatus decode(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) {
    s.exited = true;
    s.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    s.signal = WTERMSIG(wstatus);
  }
  return s;
}

}  // namespace

// TestDir

TestDir::TestDir() {
  const char* base = std::getenv("TMPDIR");
  std::string name = "sluice-e2e";
  if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info()) {
    name += "-" + sanitize(std::string(info->test_suite_name()) + "." + info->name());
  }
  std::string templ = (fs::path(base && *base ? base : "/tmp") / (name + "-XXXXXX")).string();
  char* made = ::mkdtemp(templ.data());
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp(" << templ << "): " << std::strerror(errno);
    return;
  }
  path_ = made;
}

TestDir::~TestDir() {
  if (path_.empty()) return;
  if (::testing::Test::HasFailure()) {
    std::cerr << "[e2e] test failed; its files are kept in " << path_ << "\n";
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string TestDir::file(const std::string& name) const { return (path_ / name).string(); }

std::string TestDir::write_file(const std::string& name, const std::string& content) const {
  const std::string p = file(name);
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << content;
  return p;
}

// ExitStatus

std::string ExitStatus::describe() const {
  if (exited) return "exit code " + std::to_string(code);
  return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
}

// ChildProcess

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int ws = 0;
    while (::waitpid(pid_, &ws, 0) < 0 && errno == EINTR) {
    }
  }
  close_pidfd();
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::exchange(other.pidfd_, -1)),
      status_(std::move(other.status_)),
      stdout_path_(std::move(other.stdout_path_)),
      stderr_path_(std::move(other.stderr_path_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    ChildProcess dying(std::move(*this));
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::exchange(other.pidfd_, -1);
    status_ = std::move(other.status_);
    stdout_path_ = std::move(other.stdout_path_);
    stderr_path_ = std::move(other.stderr_path_);
  }
  return *this;
}

void ChildProcess::close_pidfd() noexcept {
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
}

ChildProcess ChildProcess::spawn(const std::vector<std::string>& argv, const TestDir& dir,
                                 const std::string& name, std::string* error) {
  ChildProcess child;
  child.stdout_path_ = dir.file(name + ".stdout");
  child.stderr_path_ = dir.file(name + ".stderr");
  if (argv.empty()) {
    if (error) *error = "empty argv";
    return child;
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, child.stdout_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, child.stderr_path_.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // The child starts with no blocked signals and default SIGTERM/SIGINT/SIGPIPE handling,
  // whatever the test process did.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    if (error) *error = "posix_spawn(" + argv[0] + "): " + std::strerror(rc);
    return child;
  }
  child.pid_ = pid;
#ifdef SYS_pidfd_open
  const long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) child.pidfd_ = static_cast<int>(fd);
#endif
  return child;
}

bool ChildProcess::try_reap() {
  if (status_) return true;
  if (pid_ <= 0) return false;
  int ws = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &ws, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = decode(ws);
    close_pidfd();
    return true;
  }
  return false;
}

bool ChildProcess::signal(int sig) {
  if (!running()) return false;
  return ::kill(pid_, sig) == 0;
}

std::optional<ExitStatus> ChildProcess::wait_exit(milliseconds bound) {
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = Clock::now() + bound;
  while (!try_reap()) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left <= milliseconds::zero()) return std::nullopt;
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      (void)::poll(&p, 1, static_cast<int>(left.count()) + 1);
    } else {
      std::this_thread::sleep_for(std::min(left, kPollStep));
    }
  }
  return status_;
}

std::optional<boost::json::value> ChildProcess::wait_ready_file(const std::string& path,
                                                                milliseconds bound) {
  const auto deadline = Clock::now() + bound;
  for (;;) {
    std::error_code ec;
    if (fs::exists(path, ec)) {
      boost::system::error_code jec;
      auto value = boost::json::parse(read_file(path), jec);
      if (!jec && value.is_object()) return value;
    }
    if (try_reap()) return std::nullopt;
    if (Clock::now() >= deadline) return std::nullopt;
    // A pidfd turns the pause into "until the child exits or 5 ms pass".
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      (void)::poll(&p, 1, static_cast<int>(kPollStep.count()));
    } else {
      std::this_thread::sleep_for(kPollStep);
    }
  }
}

std::string ChildProcess::stdout_text() const { return read_file(stdout_path_); }
std::string ChildProcess::stderr_text() const { return read_file(stderr_path_); }

RunResult run_to_completion(const std::vector<std::string>& argv, const TestDir& dir,
                            const std::string& name, milliseconds bound) {
  RunResult result;
  std::string error;
  ChildProcess child = ChildProcess::spawn(argv, dir, name, &error);
  if (!child.running()) {
    result.err = error;
    return result;
  }
  auto status = child.wait_exit(bound);
  if (!status) {
    result.timed_out = true;
    child.signal(SIGKILL);
    status = child.wait_exit(milliseconds(5000));
  }
  if (status) result.status = *status;
  result.out = child.stdout_text();
  result.err = child.stderr_text();
  return result;
}

std::string sluice_binary() {
  if (const char* env = std::getenv("SLUICE_BINARY"); env && *env) return env;
#ifdef SLUICE_BINARY
  return SLUICE_BINARY;
#else
  return "sluice";
#endif
}

std::string source_dir() {
#ifdef SLUICE_SOURCE_DIR
  return SLUICE_SOURCE_DIR;
#else
  return ".";
#endif
}

uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  uint16_t port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace sluice::e2e
