// Replaces the global operator new/delete of the test binary with counting versions. In a
// translation unit of its own so that the compiler never inlines them into callers.
#include "sluice/cache/internal/alloc_counter.h"

#include <cstdlib>
#include <new>

namespace {
thread_local uint64_t t_allocations = 0;
}  // namespace

namespace sluice::cache::internal {
uint64_t thread_allocations() noexcept { return t_allocations; }
}  // namespace sluice::cache::internal

void* operator new(size_t size) {
  ++t_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return ::operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
