// ObjectPool and BufferPool: reuse of 4 KiB scratch buffers and of HTTP body chunks by size
// class, with the pools' own counters printed at the end.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "sluice/pool/buffer_pool.h"
#include "sluice/pool/object_pool.h"

int main() {
  using sluice::pool::ObjectPool;
  ObjectPool<std::string> scratch([] { return std::make_unique<std::string>(); },
                                  [](std::string& s) { s.clear(); },
                                  {.max_idle = 4, .max_total = 8});
  // 1000 "requests", each needing up to 3 scratch strings at once.
  for (int request = 0; request < 1000; ++request) {
    std::vector<ObjectPool<std::string>::Handle> held;
    for (int i = 0; i <= request % 3; ++i) {
      auto h = scratch.acquire();
      if (!h) return 1;
      (*h)->append(4096, 'x');
      held.push_back(std::move(*h));
    }
  }
  auto os = scratch.stats();
  std::printf("object pool: %llu acquires, %llu created, %llu reused (reuse %.1f%%), idle %zu\n",
              static_cast<unsigned long long>(os.created + os.reused),
              static_cast<unsigned long long>(os.created),
              static_cast<unsigned long long>(os.reused), 100 * os.reuse_rate(), os.idle);

  // max_total: the 9th simultaneous object is refused with a value, not an exception.
  std::vector<ObjectPool<std::string>::Handle> all;
  for (int i = 0; i < 8; ++i) all.push_back(std::move(scratch.acquire().value()));
  auto refused = scratch.acquire();
  std::printf("9th acquire with max_total=8: %s\n",
              refused ? "granted" : refused.error().message().c_str());
  all.clear();

  sluice::pool::BufferPool buffers;  // 1 KiB .. 1 MiB classes
  const size_t chunk_sizes[] = {900, 3000, 16000, 65536, 3000, 900, 2'000'000};
  for (int round = 0; round < 100; ++round) {
    for (size_t size : chunk_sizes) {
      auto b = buffers.acquire(size);
      std::memset(b.data(), 0, size);
    }
  }
  auto bs = buffers.stats();
  std::printf(
      "buffer pool: %llu pooled acquires, reuse %.1f%%, %llu oversized (not pooled), "
      "%zu bytes idle in %zu buffers\n",
      static_cast<unsigned long long>(bs.total.created + bs.total.reused), 100 * bs.reuse_rate(),
      static_cast<unsigned long long>(bs.oversized), bs.idle_bytes, bs.total.idle);
  for (const auto& c : bs.classes) {
    if (c.created + c.reused == 0) continue;
    std::printf("  class %7zu B: created %llu, reused %llu\n", c.size,
                static_cast<unsigned long long>(c.created),
                static_cast<unsigned long long>(c.reused));
  }
  return os.reuse_rate() > 0.9 && bs.reuse_rate() > 0.9 ? 0 : 1;
}
