// Test support: counts `operator new` calls made by the calling thread. Linked only into the
// test binary (alloc_counter.cc replaces the global operator new/delete there), so tests can
// prove that a path does not allocate. Thread-safety: each thread reads its own count.
#pragma once

#include <cstdint>

namespace sluice::cache::internal {

// Allocations by the calling thread so far.
[[nodiscard]] uint64_t thread_allocations() noexcept;

}  // namespace sluice::cache::internal
