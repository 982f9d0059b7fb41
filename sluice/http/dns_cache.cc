#include "sluice/http/dns_cache.h"

#include <utility>

namespace sluice::http {

DnsCache::DnsCache(DnsCacheOptions options, const base::Clock& clock)
    : options_(options), clock_(clock) {}

std::optional<std::vector<std::string>> DnsCache::find(std::string_view host) {
  const auto it = entries_.find(host);
  if (it == entries_.end()) {
    add(misses_);
    return std::nullopt;
  }
  if (clock_.now() >= it->second.expires) {
    entries_.erase(it);
    size_.store(entries_.size(), std::memory_order_relaxed);
    add(expired_);
    add(misses_);
    return std::nullopt;
  }
  add(hits_);
  return it->second.addresses;
}

void DnsCache::insert(std::string_view host, std::vector<std::string> addresses) {
  if (addresses.empty() || options_.ttl <= Duration::zero() || options_.max_entries == 0) return;
  const TimePoint now = clock_.now();
  auto it = entries_.find(host);
  if (it == entries_.end()) {
    if (entries_.size() >= options_.max_entries) make_room(now);
    it = entries_.emplace(std::string(host), Entry{}).first;
  }
  it->second.addresses = std::move(addresses);
  it->second.expires = now + options_.ttl;
  add(inserts_);
  size_.store(entries_.size(), std::memory_order_relaxed);
}

void DnsCache::make_room(TimePoint now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now >= it->second.expires) {
      it = entries_.erase(it);
      add(evictions_);
    } else {
      ++it;
    }
  }
  if (entries_.size() < options_.max_entries) return;
  auto oldest = entries_.begin();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.expires < oldest->second.expires) oldest = it;
  }
  entries_.erase(oldest);
  add(evictions_);
}

void DnsCache::erase(std::string_view host) {
  const auto it = entries_.find(host);
  if (it == entries_.end()) return;
  entries_.erase(it);
  size_.store(entries_.size(), std::memory_order_relaxed);
}

void DnsCache::clear() {
  entries_.clear();
  size_.store(0, std::memory_order_relaxed);
}

DnsCacheStats DnsCache::stats() const noexcept {
  DnsCacheStats s;
  s.hits = hits_.load(std::memory_order_relaxed);
  s.misses = misses_.load(std::memory_order_relaxed);
  s.inserts = inserts_.load(std::memory_order_relaxed);
  s.expired = expired_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  s.entries = size_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sluice::http
