// DnsCache: a table of resolved addresses per host name with a time to live, so that the HTTP
// client resolves each upstream name once per `ttl` instead of once per connection. It holds
// no sockets and does no resolution itself (the client resolves asynchronously with Asio and
// stores the answer here); it needs no Asio and reads time only from the injected clock.
//
// Thread-safety: NOT thread-safe; one cache per client (one per worker thread). `stats()` may
// be called from any thread (relaxed atomics: each value exact, several values may mix moments).
// Cost: `find` and `insert` are one hash lookup; `insert` into a full table first drops expired
// entries and, if none expired, the entry that expires first (one scan of the table, at most
// `max_entries` long; happens only at the bound).
// Bound: at most `max_entries` names. Policy at the bound: evict expired entries, else the one
// closest to expiry (`evictions` counts both kinds). Failed resolutions are not cached (no
// negative caching): the next request resolves again.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/hash.h"

namespace sluice::http {

struct DnsCacheOptions {
  // How long a resolved address list is reused; 0 disables caching (every `find` misses).
  Duration ttl = std::chrono::seconds(30);
  // Most host names kept; at the bound expired entries, then the one expiring first, go.
  size_t max_entries = 1024;
};

struct DnsCacheStats {
  uint64_t hits = 0;       // `find` calls answered from a live entry
  uint64_t misses = 0;     // `find` calls with no entry or an expired one
  uint64_t inserts = 0;    // address lists stored
  uint64_t expired = 0;    // entries found expired by `find` (each also counts as a miss)
  uint64_t evictions = 0;  // entries removed at the `max_entries` bound
  size_t entries = 0;      // names in the table now (gauge)
};

class DnsCache {
 public:
  explicit DnsCache(DnsCacheOptions options = {},
                    const base::Clock& clock = base::SteadyClock::instance());
  DnsCache(const DnsCache&) = delete;
  DnsCache& operator=(const DnsCache&) = delete;

  // The addresses (IP literals, in resolver order) stored for `host` if they are younger than
  // `ttl`; otherwise nullopt (and an expired entry is removed). Counts a hit or a miss.
  [[nodiscard]] std::optional<std::vector<std::string>> find(std::string_view host);
  // Stores `addresses` for `host` (replacing what was there) for `ttl` from now. An empty list
  // or a zero `ttl` stores nothing.
  void insert(std::string_view host, std::vector<std::string> addresses);
  // Forgets `host` (e.g. after every address of it refused connections).
  void erase(std::string_view host);
  // Forgets everything.
  void clear();

  [[nodiscard]] size_t size() const noexcept { return entries_.size(); }
  [[nodiscard]] DnsCacheStats stats() const noexcept;
  [[nodiscard]] const DnsCacheOptions& options() const noexcept { return options_; }

 private:
  struct Entry {
    std::vector<std::string> addresses;
    TimePoint expires{};
  };
  static void add(std::atomic<uint64_t>& c) noexcept {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void make_room(TimePoint now);

  const DnsCacheOptions options_;
  const base::Clock& clock_;
  std::unordered_map<std::string, Entry, base::StringHash, std::equal_to<>> entries_;
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
  std::atomic<uint64_t> inserts_{0};
  std::atomic<uint64_t> expired_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<size_t> size_{0};
};

}  // namespace sluice::http
