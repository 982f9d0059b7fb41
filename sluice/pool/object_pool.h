// ObjectPool<T>: keeps constructed objects (buffers, parsers, scratch state) for reuse so that a
// hot path pays a pop from a vector instead of an allocation and a constructor.
//
// Thread-safe: one `std::mutex` guards the idle list and the counts; an uncontended
// lock/unlock pair costs about 20-40 ns, so use one pool per worker where that matters.
// Cost: `acquire()` is one lock and a `vector::pop_back` when an idle object exists, or the
// factory (run outside the lock) when none does; the handle's destructor runs the reset
// function outside the lock, then one lock and a `push_back`. Idle objects are reused LIFO
// (the most recently returned, so the warmest in cache, goes out first).
// Bounds: `max_idle` objects are kept; an object returned while the idle list is full is
// destroyed and counted in `Stats::overflow`. With `max_total` set, `acquire()` fails with
// `PoolErrc::exhausted` (counted in `Stats::exhausted`) once outstanding + idle would pass it.
// Lifetime: the pool must outlive every handle it gave out (checked when the pool is
// destroyed). The factory and the reset function must not call back into the pool.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "sluice/base/check.h"

namespace sluice::pool {

// Expected failures of the pools, as `boost::system::error_code` values.
enum class PoolErrc {
  // `max_total` objects are outstanding or idle: nothing can be created now.
  exhausted = 1,
};

// The category of `PoolErrc` ("sluice.pool").
[[nodiscard]] const boost::system::error_category& pool_category() noexcept;

[[nodiscard]] inline boost::system::error_code make_error_code(PoolErrc e) noexcept {
  return {static_cast<int>(e), pool_category()};
}

}  // namespace sluice::pool

template <>
struct boost::system::is_error_code_enum<sluice::pool::PoolErrc> : std::true_type {};

namespace sluice::pool {

template <typename T>
class ObjectPool {
 public:
  // Makes a new object; may throw (the exception reaches the caller of `acquire`).
  using Factory = std::function<std::unique_ptr<T>()>;
  // Brings a returned object back to a clean state before it is kept idle. Must not throw:
  // an object whose reset throws is destroyed and counted as discarded.
  using Reset = std::function<void(T&)>;

  struct Options {
    // Most idle objects kept for reuse; a return beyond it destroys the object (`overflow`).
    size_t max_idle = 64;
    // Most objects alive at once (outstanding + idle); 0 means no limit.
    size_t max_total = 0;
  };

  // A snapshot of the counters, read under the pool's lock.
  struct Stats {
    uint64_t created = 0;    // objects made by the factory
    uint64_t reused = 0;     // acquires served from the idle list
    uint64_t returned = 0;   // handles that gave their object back to the idle list
    uint64_t discarded = 0;  // objects destroyed by `discard()` or a throwing reset
    uint64_t overflow = 0;   // objects destroyed because `max_idle` were already idle
    uint64_t exhausted = 0;  // acquires refused because of `max_total`
    size_t idle = 0;         // objects kept idle now
    size_t outstanding = 0;  // objects held by handles now
    // Share of successful acquires served without the factory, in [0, 1].
    [[nodiscard]] double reuse_rate() const noexcept {
      const uint64_t total = created + reused;
      return total == 0 ? 0.0 : static_cast<double>(reused) / static_cast<double>(total);
    }
  };

  // Owns one pooled object; gives it back to the pool when destroyed. Move-only.
  class Handle {
   public:
    Handle() = default;
    Handle(Handle&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), object_(std::move(other.object_)) {}
    Handle& operator=(Handle&& other) noexcept {
      if (this != &other) {
        reset();
        pool_ = std::exchange(other.pool_, nullptr);
        object_ = std::move(other.object_);
      }
      return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }

    [[nodiscard]] T* get() const noexcept { return object_.get(); }
    [[nodiscard]] T& operator*() const noexcept { return *object_; }
    [[nodiscard]] T* operator->() const noexcept { return object_.get(); }
    [[nodiscard]] explicit operator bool() const noexcept { return object_ != nullptr; }

    // Returns the object to the pool now (reset, then kept idle or destroyed).
    void reset() noexcept {
      if (pool_ != nullptr) std::exchange(pool_, nullptr)->give_back(std::move(object_));
      object_.reset();
    }
    // Destroys the object instead of returning it (it is broken or in an unknown state).
    void discard() noexcept {
      if (pool_ != nullptr) std::exchange(pool_, nullptr)->drop(std::move(object_));
      object_.reset();
    }

   private:
    friend class ObjectPool;
    Handle(ObjectPool* pool, std::unique_ptr<T> object) noexcept
        : pool_(pool), object_(std::move(object)) {}
    ObjectPool* pool_ = nullptr;
    std::unique_ptr<T> object_;
  };

  // `reset` may be empty (objects are kept as returned). `factory` must not be empty.
  ObjectPool(Factory factory, Reset reset, Options options)
      : factory_(std::move(factory)), reset_(std::move(reset)), options_(options) {
    SLUICE_CHECK(factory_ != nullptr, "ObjectPool needs a factory");
    idle_.reserve(options_.max_idle);
  }
  explicit ObjectPool(Factory factory) : ObjectPool(std::move(factory), nullptr, Options{}) {}

  ObjectPool(const ObjectPool&) = delete;
  ObjectPool& operator=(const ObjectPool&) = delete;
  ~ObjectPool() { SLUICE_CHECK(outstanding_ == 0, "ObjectPool destroyed while handles are out"); }

  // An idle object (most recently returned first) or a new one from the factory; fails with
  // `PoolErrc::exhausted` when `max_total` objects are alive.
  [[nodiscard]] boost::system::result<Handle> acquire() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        std::unique_ptr<T> object = std::move(idle_.back());
        idle_.pop_back();
        ++outstanding_;
        ++stats_.reused;
        return Handle(this, std::move(object));
      }
      // The idle list is empty here, so the live objects are exactly the outstanding ones.
      if (options_.max_total != 0 && outstanding_ >= options_.max_total) {
        ++stats_.exhausted;
        return make_error_code(PoolErrc::exhausted);
      }
      ++outstanding_;  // reserve the slot; the factory runs outside the lock
    }
    std::unique_ptr<T> object;
    try {
      object = factory_();
    } catch (...) {
      std::lock_guard lock(mu_);
      --outstanding_;
      throw;
    }
    SLUICE_CHECK(object != nullptr, "ObjectPool factory returned null");
    std::lock_guard lock(mu_);
    ++stats_.created;
    return Handle(this, std::move(object));
  }

  // Destroys idle objects until at most `keep` remain; returns how many were destroyed.
  size_t trim(size_t keep = 0) {
    std::vector<std::unique_ptr<T>> doomed;
    {
      std::lock_guard lock(mu_);
      while (idle_.size() > keep) {
        doomed.push_back(std::move(idle_.back()));
        idle_.pop_back();
      }
    }
    return doomed.size();  // destroyed here, outside the lock
  }

  [[nodiscard]] Stats stats() const {
    std::lock_guard lock(mu_);
    Stats s = stats_;
    s.idle = idle_.size();
    s.outstanding = outstanding_;
    return s;
  }

  [[nodiscard]] const Options& options() const noexcept { return options_; }

 private:
  void give_back(std::unique_ptr<T> object) noexcept {
    if (reset_) {
      try {
        reset_(*object);
      } catch (...) {
        drop(std::move(object));
        return;
      }
    }
    std::unique_ptr<T> doomed;
    {
      std::lock_guard lock(mu_);
      --outstanding_;
      if (idle_.size() < options_.max_idle) {
        idle_.push_back(std::move(object));
        ++stats_.returned;
        return;
      }
      ++stats_.overflow;
      doomed = std::move(object);
    }
  }

  void drop(std::unique_ptr<T> object) noexcept {
    {
      std::lock_guard lock(mu_);
      --outstanding_;
      ++stats_.discarded;
    }
    object.reset();
  }

  Factory factory_;
  Reset reset_;
  const Options options_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<T>> idle_;
  size_t outstanding_ = 0;  // objects held by handles (or being made by the factory)
  Stats stats_;
};

}  // namespace sluice::pool
