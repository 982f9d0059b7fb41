#include "sluice/flow/token_bucket.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "sluice/base/check.h"
#include "sluice/base/hash.h"

namespace sluice::flow {
namespace {

int64_t now_ns(const base::Clock& clock) noexcept { return clock.now().time_since_epoch().count(); }

double interval_of(const TokenBucketOptions& options) {
  SLUICE_CHECK(options.rate_per_second > 0 && std::isfinite(options.rate_per_second),
               "token bucket rate_per_second must be a positive number");
  SLUICE_CHECK(options.burst >= 1, "token bucket burst must be at least 1");
  return 1e9 / options.rate_per_second;
}

int64_t cost_ns(double interval_ns, uint32_t n) noexcept {
  return std::llround(interval_ns * static_cast<double>(n));
}

// The GCRA step shared by both buckets: given the bucket's zero time, decides whether `n`
// tokens can be taken at `now` and computes the new zero time.
struct Step {
  bool allowed;
  int64_t new_zero_ns;
  int64_t wait_ns;
};

Step step(int64_t zero_ns, int64_t now, int64_t burst_ns, int64_t cost) noexcept {
  const int64_t base = std::max(zero_ns, now - burst_ns);
  const int64_t next = base + cost;
  if (next > now) return {false, zero_ns, next - now};
  return {true, next, 0};
}

double tokens_at(int64_t zero_ns, int64_t now, int64_t burst_ns, double interval_ns,
                 uint32_t burst) noexcept {
  const int64_t base = std::max(zero_ns, now - burst_ns);
  return std::min(static_cast<double>(burst), static_cast<double>(now - base) / interval_ns);
}

RateDecision rejected_forever() noexcept { return {false, Duration::max()}; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// TokenBucket

TokenBucket::TokenBucket(TokenBucketOptions options, const base::Clock& clock)
    : options_(options),
      clock_(clock),
      interval_ns_(interval_of(options)),
      burst_ns_(cost_ns(interval_ns_, options.burst)),
      zero_time_ns_(now_ns(clock) - burst_ns_) {}

RateDecision TokenBucket::try_acquire(uint32_t n) noexcept {
  if (n > options_.burst) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return rejected_forever();
  }
  const int64_t now = now_ns(clock_);
  const int64_t cost = cost_ns(interval_ns_, n);
  int64_t zero = zero_time_ns_.load(std::memory_order_relaxed);
  for (;;) {
    const Step s = step(zero, now, burst_ns_, cost);
    if (!s.allowed) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return {false, Duration(s.wait_ns)};
    }
    // Relaxed is enough: the zero time is the only state and publishes nothing else.
    if (zero_time_ns_.compare_exchange_weak(zero, s.new_zero_ns, std::memory_order_relaxed)) {
      allowed_.fetch_add(1, std::memory_order_relaxed);
      return {true, Duration(0)};
    }
  }
}

double TokenBucket::available() const noexcept {
  return tokens_at(zero_time_ns_.load(std::memory_order_relaxed), now_ns(clock_), burst_ns_,
                   interval_ns_, options_.burst);
}

TokenBucket::Stats TokenBucket::stats() const noexcept {
  Stats s;
  s.allowed_total = allowed_.load(std::memory_order_relaxed);
  s.rejected_total = rejected_.load(std::memory_order_relaxed);
  s.available = available();
  s.rate_per_second = options_.rate_per_second;
  s.burst = options_.burst;
  return s;
}

// ---------------------------------------------------------------------------------------------
// KeyedTokenBucket

namespace {

struct Entry {
  std::string key;
  int64_t zero_ns;
};

struct SeededHash {
  uint64_t seed;
  size_t operator()(std::string_view s) const noexcept { return base::hash_string(s, seed); }
};

}  // namespace

struct KeyedTokenBucket::Shard {
  explicit Shard(uint64_t seed) : index(16, SeededHash{seed}) {}

  mutable std::mutex mu;
  // Most recently used at the front. `index` keys view the strings owned by the list nodes.
  std::list<Entry> lru;
  std::unordered_map<std::string_view, std::list<Entry>::iterator, SeededHash> index;
  uint64_t allowed = 0;
  uint64_t rejected = 0;
  uint64_t evictions = 0;
  uint64_t evictions_not_full = 0;
  uint64_t pruned = 0;
};

KeyedTokenBucket::KeyedTokenBucket(Options options, const base::Clock& clock)
    : options_(options),
      clock_(clock),
      interval_ns_(interval_of(options.bucket)),
      burst_ns_(cost_ns(interval_ns_, options.bucket.burst)),
      per_shard_max_(0),
      seed_(base::process_seed()) {
  SLUICE_CHECK(options.max_keys >= 1, "KeyedTokenBucket max_keys must be at least 1");
  SLUICE_CHECK(options.shards >= 1, "KeyedTokenBucket shards must be at least 1");
  options_.shards = std::min(options.shards, options.max_keys);
  per_shard_max_ = (options.max_keys + options_.shards - 1) / options_.shards;
  shards_.reserve(options_.shards);
  for (size_t i = 0; i < options_.shards; ++i) shards_.push_back(std::make_unique<Shard>(seed_));
}

KeyedTokenBucket::~KeyedTokenBucket() = default;

KeyedTokenBucket::Shard& KeyedTokenBucket::shard_for(std::string_view key) const {
  const uint64_t hash = base::hash_string(key, seed_);
  // The high bits pick the shard; the table inside hashes again (cheap, keeps tables independent).
  return *shards_[static_cast<size_t>(base::mix64(hash) % shards_.size())];
}

RateDecision KeyedTokenBucket::try_acquire(std::string_view key, uint32_t n) {
  Shard& shard = shard_for(key);
  const int64_t now = now_ns(clock_);
  std::lock_guard lock(shard.mu);
  if (n > options_.bucket.burst) {
    ++shard.rejected;
    return rejected_forever();
  }
  auto it = shard.index.find(key);
  std::list<Entry>::iterator entry;
  if (it != shard.index.end()) {
    entry = it->second;
    if (entry != shard.lru.begin()) shard.lru.splice(shard.lru.begin(), shard.lru, entry);
  } else {
    if (shard.index.size() >= per_shard_max_) {
      Entry& victim = shard.lru.back();
      ++shard.evictions;
      if (victim.zero_ns > now - burst_ns_) ++shard.evictions_not_full;
      shard.index.erase(std::string_view(victim.key));
      shard.lru.pop_back();
    }
    shard.lru.push_front(Entry{std::string(key), now - burst_ns_});
    entry = shard.lru.begin();
    shard.index.emplace(std::string_view(entry->key), entry);
  }
  const Step s = step(entry->zero_ns, now, burst_ns_, cost_ns(interval_ns_, n));
  if (!s.allowed) {
    ++shard.rejected;
    return {false, Duration(s.wait_ns)};
  }
  entry->zero_ns = s.new_zero_ns;
  ++shard.allowed;
  return {true, Duration(0)};
}

double KeyedTokenBucket::available(std::string_view key) const {
  Shard& shard = shard_for(key);
  const int64_t now = now_ns(clock_);
  std::lock_guard lock(shard.mu);
  auto it = shard.index.find(key);
  if (it == shard.index.end()) return options_.bucket.burst;
  return tokens_at(it->second->zero_ns, now, burst_ns_, interval_ns_, options_.bucket.burst);
}

size_t KeyedTokenBucket::prune() {
  size_t removed = 0;
  const int64_t now = now_ns(clock_);
  for (auto& shard : shards_) {
    std::lock_guard lock(shard->mu);
    for (auto it = shard->lru.begin(); it != shard->lru.end();) {
      if (it->zero_ns <= now - burst_ns_) {
        shard->index.erase(std::string_view(it->key));
        it = shard->lru.erase(it);
        ++shard->pruned;
        ++removed;
      } else {
        ++it;
      }
    }
  }
  return removed;
}

KeyedTokenBucket::Stats KeyedTokenBucket::stats() const {
  Stats s;
  s.max_keys = per_shard_max_ * shards_.size();
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard->mu);
    s.allowed_total += shard->allowed;
    s.rejected_total += shard->rejected;
    s.keys += shard->index.size();
    s.evictions_total += shard->evictions;
    s.evictions_not_full_total += shard->evictions_not_full;
    s.pruned_total += shard->pruned;
  }
  return s;
}

}  // namespace sluice::flow
