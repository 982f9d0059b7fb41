#include "sluice/cache/cache_stats.h"

#include <ostream>

namespace sluice::cache {

double CacheStats::hit_rate() const noexcept {
  const uint64_t lookups = hits + misses;
  return lookups == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(lookups);
}

CacheStats& CacheStats::operator+=(const CacheStats& other) noexcept {
  hits += other.hits;
  misses += other.misses;
  inserts += other.inserts;
  updates += other.updates;
  evictions += other.evictions;
  expirations += other.expirations;
  rejections += other.rejections;
  entries += other.entries;
  bytes += other.bytes;
  capacity_entries += other.capacity_entries;
  capacity_bytes += other.capacity_bytes;
  return *this;
}

std::ostream& operator<<(std::ostream& out, const CacheStats& s) {
  out << "hits=" << s.hits << " misses=" << s.misses << " hit_rate=" << s.hit_rate() * 100.0
      << "% inserts=" << s.inserts << " updates=" << s.updates << " evictions=" << s.evictions
      << " expirations=" << s.expirations << " rejections=" << s.rejections
      << " entries=" << s.entries << "/" << s.capacity_entries << " bytes=" << s.bytes;
  if (s.capacity_bytes != 0) out << "/" << s.capacity_bytes;
  return out;
}

}  // namespace sluice::cache
