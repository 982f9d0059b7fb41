#include "sluice/pool/buffer_pool.h"

#include <algorithm>
#include <bit>

#include "sluice/base/check.h"

namespace sluice::pool {

PooledBuffer::PooledBuffer(PooledBuffer&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      data_(std::move(other.data_)),
      capacity_(std::exchange(other.capacity_, 0)),
      class_index_(std::exchange(other.class_index_, -1)) {}

PooledBuffer& PooledBuffer::operator=(PooledBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = std::exchange(other.pool_, nullptr);
    data_ = std::move(other.data_);
    capacity_ = std::exchange(other.capacity_, 0);
    class_index_ = std::exchange(other.class_index_, -1);
  }
  return *this;
}

void PooledBuffer::reset() noexcept {
  if (pool_ != nullptr) std::exchange(pool_, nullptr)->give_back(std::move(data_), class_index_);
  data_.reset();
  capacity_ = 0;
  class_index_ = -1;
}

void PooledBuffer::discard() noexcept {
  if (pool_ != nullptr) std::exchange(pool_, nullptr)->drop(class_index_);
  data_.reset();
  capacity_ = 0;
  class_index_ = -1;
}

BufferPool::BufferPool(Options options) : options_(options) {
  SLUICE_CHECK(std::has_single_bit(options_.min_size), "BufferPool min_size must be a power of 2");
  SLUICE_CHECK(std::has_single_bit(options_.max_size), "BufferPool max_size must be a power of 2");
  SLUICE_CHECK(options_.min_size <= options_.max_size, "BufferPool min_size must be <= max_size");
  min_shift_ = std::countr_zero(options_.min_size);
  class_count_ = static_cast<size_t>(std::countr_zero(options_.max_size) - min_shift_) + 1;
  SLUICE_CHECK(class_count_ <= kMaxClasses, "BufferPool has too many size classes");
  for (size_t i = 0; i < class_count_; ++i) {
    SizeClass& c = classes_[i];
    c.size = options_.min_size << i;
    c.max_idle = std::max<size_t>(1, options_.max_idle_bytes_per_class / c.size);
  }
}

BufferPool::~BufferPool() {
  size_t outstanding = oversized_outstanding_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < class_count_; ++i) {
    std::lock_guard lock(classes_[i].mu);
    outstanding += classes_[i].outstanding;
  }
  SLUICE_CHECK(outstanding == 0, "BufferPool destroyed while buffers are out");
}

int BufferPool::class_index(size_t size) const noexcept {
  if (size > options_.max_size) return -1;
  if (size <= options_.min_size) return 0;
  return std::bit_width(size - 1) - min_shift_;
}

size_t BufferPool::class_size(size_t size) const noexcept {
  const int index = class_index(size);
  return index < 0 ? 0 : classes_[static_cast<size_t>(index)].size;
}

PooledBuffer BufferPool::acquire(size_t size) {
  const int index = class_index(size);
  if (index < 0) {
    oversized_.fetch_add(1, std::memory_order_relaxed);
    oversized_bytes_.fetch_add(size, std::memory_order_relaxed);
    oversized_outstanding_.fetch_add(1, std::memory_order_relaxed);
    // for_overwrite: no zeroing, as for pooled buffers.
    return PooledBuffer(this, std::make_unique_for_overwrite<std::byte[]>(size), size, -1);
  }
  SizeClass& c = classes_[static_cast<size_t>(index)];
  {
    std::lock_guard lock(c.mu);
    ++c.outstanding;
    if (!c.idle.empty()) {
      std::unique_ptr<std::byte[]> data = std::move(c.idle.back());
      c.idle.pop_back();
      ++c.reused;
      return PooledBuffer(this, std::move(data), c.size, index);
    }
    ++c.created;
  }
  std::unique_ptr<std::byte[]> data;
  try {
    data = std::make_unique_for_overwrite<std::byte[]>(c.size);
  } catch (...) {
    std::lock_guard lock(c.mu);
    --c.outstanding;
    --c.created;
    throw;
  }
  return PooledBuffer(this, std::move(data), c.size, index);
}

void BufferPool::give_back(std::unique_ptr<std::byte[]> data, int index) noexcept {
  if (index < 0) {
    oversized_outstanding_.fetch_sub(1, std::memory_order_relaxed);
    return;  // `data` is freed on return
  }
  SizeClass& c = classes_[static_cast<size_t>(index)];
  {
    std::lock_guard lock(c.mu);
    --c.outstanding;
    if (c.idle.size() < c.max_idle) {
      c.idle.push_back(std::move(data));
      ++c.returned;
      return;
    }
    ++c.overflow;
  }
  // `data` is freed here, outside the lock.
}

void BufferPool::drop(int index) noexcept {
  if (index < 0) {
    oversized_outstanding_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  SizeClass& c = classes_[static_cast<size_t>(index)];
  std::lock_guard lock(c.mu);
  --c.outstanding;
  ++c.discarded;
}

size_t BufferPool::trim() {
  size_t freed = 0;
  for (size_t i = 0; i < class_count_; ++i) {
    SizeClass& c = classes_[i];
    std::vector<std::unique_ptr<std::byte[]>> doomed;
    {
      std::lock_guard lock(c.mu);
      doomed.swap(c.idle);
    }
    freed += doomed.size() * c.size;
  }
  return freed;
}

BufferPool::Stats BufferPool::stats() const {
  Stats s;
  s.classes.reserve(class_count_);
  for (size_t i = 0; i < class_count_; ++i) {
    const SizeClass& c = classes_[i];
    ClassStats cs;
    cs.size = c.size;
    {
      std::lock_guard lock(c.mu);
      cs.created = c.created;
      cs.reused = c.reused;
      cs.returned = c.returned;
      cs.overflow = c.overflow;
      cs.discarded = c.discarded;
      cs.idle = c.idle.size();
      cs.outstanding = c.outstanding;
    }
    s.total.created += cs.created;
    s.total.reused += cs.reused;
    s.total.returned += cs.returned;
    s.total.overflow += cs.overflow;
    s.total.discarded += cs.discarded;
    s.total.idle += cs.idle;
    s.total.outstanding += cs.outstanding;
    s.idle_bytes += cs.idle * cs.size;
    s.classes.push_back(cs);
  }
  s.oversized = oversized_.load(std::memory_order_relaxed);
  s.oversized_bytes = oversized_bytes_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sluice::pool
