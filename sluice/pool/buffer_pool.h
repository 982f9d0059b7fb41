// BufferPool: byte buffers by power-of-two size class (1 KiB to 1 MiB by default) for the
// HTTP layer's body chunks, so that steady traffic stops calling malloc for every chunk.
//
// Thread-safe: each size class has its own `std::mutex` (requests of different sizes never
// contend), which also guards that class's counters; `stats()` takes each class lock briefly.
// Cost: `acquire(n)` finds the class with a bit scan, then one lock and a `pop_back`; returning
// a buffer is one lock and a `push_back` (no atomics besides the lock). Buffers are not
// zeroed: contents are unspecified. In a tight single-threaded loop it costs about what glibc's
// malloc/free does when malloc keeps reusing one chunk (docs/benchmarks.md (pool)); the pool's
// gain is a bound on what is kept and large buffers kept off the mmap/munmap path whatever
// the allocator's thresholds.
// Bounds: a class keeps at most `max_idle_bytes_per_class` bytes idle (so at least one
// buffer); a buffer returned beyond that is freed and counted in `Stats::overflow`. A request
// larger than `max_size` gets a buffer of exactly that size that is never pooled, counted in
// `Stats::oversized`.
// Lifetime: the pool must outlive every buffer it gave out (checked when it is destroyed).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

namespace sluice::pool {

class BufferPool;

// One buffer of at least the requested size; returns itself to its pool when destroyed.
// Move-only.
class PooledBuffer {
 public:
  PooledBuffer() = default;
  PooledBuffer(PooledBuffer&& other) noexcept;
  PooledBuffer& operator=(PooledBuffer&& other) noexcept;
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  ~PooledBuffer() { reset(); }

  [[nodiscard]] std::byte* data() const noexcept { return data_.get(); }
  // The usable size: the size class (a power of two), or the exact size when oversized.
  [[nodiscard]] size_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] std::span<std::byte> span() const noexcept { return {data_.get(), capacity_}; }
  [[nodiscard]] explicit operator bool() const noexcept { return data_ != nullptr; }
  // Whether the buffer will go back to a size class (false for oversized buffers).
  [[nodiscard]] bool pooled() const noexcept { return class_index_ >= 0; }

  // Gives the buffer back to its pool now.
  void reset() noexcept;
  // Frees the buffer instead of returning it.
  void discard() noexcept;

 private:
  friend class BufferPool;
  PooledBuffer(BufferPool* pool, std::unique_ptr<std::byte[]> data, size_t capacity,
               int class_index) noexcept
      : pool_(pool), data_(std::move(data)), capacity_(capacity), class_index_(class_index) {}

  BufferPool* pool_ = nullptr;
  std::unique_ptr<std::byte[]> data_;
  size_t capacity_ = 0;
  int class_index_ = -1;  // -1: oversized, never pooled
};

class BufferPool {
 public:
  // Most size classes a pool can have (1 B .. 2^kMaxClasses B).
  static constexpr size_t kMaxClasses = 40;

  struct Options {
    // Smallest class; smaller requests get a buffer of this size. Power of two, >= 1.
    size_t min_size = 1024;
    // Largest pooled class; larger requests are served unpooled. Power of two, >= min_size.
    size_t max_size = 1024 * 1024;
    // Idle bytes kept per class (at least one buffer); returns beyond it free the buffer.
    size_t max_idle_bytes_per_class = 2 * 1024 * 1024;
  };

  // Counters for one size class (or the sum over all of them in `Stats::total`).
  struct ClassStats {
    size_t size = 0;         // the class's buffer size in bytes (0 in the total)
    uint64_t created = 0;    // buffers allocated for the class
    uint64_t reused = 0;     // acquires served from the idle list
    uint64_t returned = 0;   // buffers given back and kept idle
    uint64_t overflow = 0;   // buffers freed on return because the class was full
    uint64_t discarded = 0;  // buffers freed by `discard()`
    size_t idle = 0;         // buffers idle now
    size_t outstanding = 0;  // buffers held now
  };

  struct Stats {
    std::vector<ClassStats> classes;  // one per size class, smallest first
    ClassStats total;                 // sums over the classes
    uint64_t oversized = 0;           // requests above `max_size`, served unpooled
    uint64_t oversized_bytes = 0;     // bytes allocated for those requests
    size_t idle_bytes = 0;            // bytes held idle over all classes
    // Share of pooled acquires served without allocating, in [0, 1].
    [[nodiscard]] double reuse_rate() const noexcept {
      const uint64_t n = total.created + total.reused;
      return n == 0 ? 0.0 : static_cast<double>(total.reused) / static_cast<double>(n);
    }
  };

  // Checks the options (powers of two, min <= max) and aborts with a message if they are wrong.
  explicit BufferPool(Options options);
  BufferPool() : BufferPool(Options{}) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  // A buffer of at least `size` bytes (the next power of two, at least `min_size`).
  [[nodiscard]] PooledBuffer acquire(size_t size);

  // The class size `acquire(size)` would use, or 0 when `size` is oversized.
  [[nodiscard]] size_t class_size(size_t size) const noexcept;
  // Frees every idle buffer; returns how many bytes were freed.
  size_t trim();

  [[nodiscard]] Stats stats() const;
  [[nodiscard]] const Options& options() const noexcept { return options_; }

 private:
  friend class PooledBuffer;
  struct SizeClass {
    size_t size = 0;
    size_t max_idle = 0;
    mutable std::mutex mu;
    // Guarded by `mu`:
    std::vector<std::unique_ptr<std::byte[]>> idle;
    uint64_t created = 0;
    uint64_t reused = 0;
    uint64_t returned = 0;
    uint64_t overflow = 0;
    uint64_t discarded = 0;
    size_t outstanding = 0;
  };

  [[nodiscard]] int class_index(size_t size) const noexcept;
  void give_back(std::unique_ptr<std::byte[]> data, int class_index) noexcept;
  void drop(int class_index) noexcept;

  const Options options_;
  size_t class_count_ = 0;
  int min_shift_ = 0;
  std::array<SizeClass, kMaxClasses> classes_;
  std::atomic<uint64_t> oversized_{0};
  std::atomic<uint64_t> oversized_bytes_{0};
  std::atomic<size_t> oversized_outstanding_{0};
};

}  // namespace sluice::pool
