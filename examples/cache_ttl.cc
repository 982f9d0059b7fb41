// TtlCache: per-entry time to live with lazy expiry and sweep, driven by a ManualClock so the
// example is instant and exact.
#include <chrono>
#include <iostream>
#include <string>

#include "sluice/base/clock.h"
#include "sluice/cache/ttl_cache.h"

int main() {
  using namespace std::chrono_literals;
  sluice::base::ManualClock clock;
  sluice::cache::TtlCache<std::string, std::string> cache({.max_entries = 100, .default_ttl = 30s},
                                                          clock);
  cache.put("session:alice", "token-a");            // default ttl: 30 s
  cache.put("quote:ACME", "101.5", 2s);             // short-lived
  cache.put("config", "v7", 10min);                 // long-lived
  const bool zero = cache.put("nonce", "n-1", 0s);  // ttl 0: not stored
  std::cout << "stored 3 entries (ttl 0 put " << (zero ? "stored" : "rejected") << ")\n";

  clock.advance(2s - 1ns);
  std::cout << "t=2s-1ns quote " << (cache.get("quote:ACME") ? "live" : "expired") << "\n";
  clock.advance(1ns);
  std::cout << "t=2s     quote " << (cache.get("quote:ACME") ? "live" : "expired") << "\n";

  clock.advance(1min);
  const size_t swept = cache.sweep();
  std::cout << "t=62s sweep removed " << swept << " expired entry (session); left: " << cache.size()
            << " (config, expires in "
            << std::chrono::duration_cast<std::chrono::seconds>(*cache.expires_at("config") -
                                                                clock.now())
                   .count()
            << " s)\n";
  std::cout << "stats: " << cache.stats() << "\n";
  const auto s = cache.stats();
  return !zero && swept == 1 && s.expirations == 2 && cache.size() == 1 ? 0 : 1;
}
