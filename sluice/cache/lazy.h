// Lazy<T>: a value computed on first use, at most once successfully, by any thread.
//
// Thread-safety: `get` is thread-safe. The first callers race to a mutex; one runs the
// initialiser while the others wait; once it succeeds every later `get` is one acquire load.
// Errors (the choice): if the initialiser throws, the exception propagates to that caller,
// nothing is stored, and the next `get` (a waiting thread, or a later call) runs the
// initialiser again. A transient failure (an upstream down at start) is thus retried rather
// than cached forever; an initialiser that always throws makes every `get` pay for it, and
// `failures()` counts them. (This is `std::call_once`'s contract, implemented with a mutex
// because libstdc++'s `call_once` does not wake waiters when the callable throws.)
// Lifetime: the initialiser (and what it captured) is destroyed after it succeeds. The value
// lives as long as the Lazy; references from `get` stay valid until then. Not copyable or
// movable (threads may hold references into it).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>

namespace sluice::cache {

template <class T>
class Lazy {
 public:
  explicit Lazy(std::function<T()> init) : init_(std::move(init)) {}
  Lazy(const Lazy&) = delete;
  Lazy& operator=(const Lazy&) = delete;

  // The value, computing it first if no call has succeeded yet. Throws what the initialiser
  // throws.
  [[nodiscard]] const T& get() {
    if (ready_.load(std::memory_order_acquire)) return *value_;
    std::lock_guard lock(mu_);
    if (!ready_.load(std::memory_order_relaxed)) {
      try {
        value_.emplace(init_());
      } catch (...) {
        failures_.fetch_add(1, std::memory_order_relaxed);
        throw;
      }
      init_ = nullptr;
      ready_.store(true, std::memory_order_release);
    }
    return *value_;
  }
  const T& operator*() { return get(); }
  const T* operator->() { return &get(); }

  // Whether a call has succeeded (the value is there).
  [[nodiscard]] bool ready() const noexcept { return ready_.load(std::memory_order_acquire); }
  // Calls whose initialiser threw.
  [[nodiscard]] uint64_t failures() const noexcept {
    return failures_.load(std::memory_order_relaxed);
  }

 private:
  std::mutex mu_;
  std::function<T()> init_;  // guarded by mu_; empty after success
  std::optional<T> value_;   // written once under mu_ before ready_ is released
  std::atomic<bool> ready_{false};
  std::atomic<uint64_t> failures_{0};
};

}  // namespace sluice::cache
