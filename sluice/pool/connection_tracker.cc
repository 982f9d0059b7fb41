#include "sluice/pool/connection_tracker.h"

#include <algorithm>
#include <utility>

#include "sluice/base/check.h"

namespace sluice::pool {

std::string_view to_string(CloseReason reason) noexcept {
  switch (reason) {
    case CloseReason::kIdle:
      return "idle";
    case CloseReason::kAge:
      return "age";
    case CloseReason::kErrorRate:
      return "error_rate";
    case CloseReason::kClosedByPeer:
      return "closed_by_peer";
    case CloseReason::kError:
      return "error";
    case CloseReason::kMakeRoom:
      return "make_room";
    case CloseReason::kShutdown:
      return "shutdown";
  }
  return "unknown";
}

uint64_t ConnectionStats::destroyed_total() const noexcept {
  uint64_t n = 0;
  for (uint64_t d : destroyed) n += d;
  return n;
}

ConnectionStats ConnectionTracker::Counters::snapshot() const {
  ConnectionStats s;
  s.created = created.load(std::memory_order_relaxed);
  s.reused = reused.load(std::memory_order_relaxed);
  s.waits = waits.load(std::memory_order_relaxed);
  s.requests = requests.load(std::memory_order_relaxed);
  s.errors = errors.load(std::memory_order_relaxed);
  s.bytes_sent = bytes_sent.load(std::memory_order_relaxed);
  s.bytes_received = bytes_received.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kCloseReasonCount; ++i) {
    s.destroyed[i] = destroyed[i].load(std::memory_order_relaxed);
  }
  s.active = active.load(std::memory_order_relaxed);
  s.idle = idle.load(std::memory_order_relaxed);
  s.waiters = waiters.load(std::memory_order_relaxed);
  return s;
}

ConnectionTracker::ConnectionTracker(ConnectionTrackerOptions options) : options_(options) {
  SLUICE_CHECK(options_.max_error_rate >= 0.0, "max_error_rate must be >= 0");
}

ConnectionTracker::~ConnectionTracker() = default;

ConnectionTracker::Host& ConnectionTracker::host_entry(std::string_view host) {
  if (auto it = hosts_.find(host); it != hosts_.end()) return *it->second;
  auto entry = std::make_unique<Host>();
  entry->key = std::string(host);
  Host& ref = *entry;
  std::lock_guard lock(hosts_mu_);
  hosts_.emplace(ref.key, std::move(entry));
  return ref;
}

std::optional<CloseReason> ConnectionTracker::broken_rule(const Record& r, TimePoint now) const {
  if (r.requests > 0 && r.requests >= options_.min_requests_for_error_rate &&
      static_cast<double>(r.errors) > options_.max_error_rate * static_cast<double>(r.requests)) {
    return CloseReason::kErrorRate;
  }
  if (now - r.created > options_.max_age) return CloseReason::kAge;
  if (r.state == ConnectionState::kIdle && now - r.last_used > options_.max_idle_time) {
    return CloseReason::kIdle;
  }
  return std::nullopt;
}

void ConnectionTracker::destroy(ConnectionId id, Record& r, CloseReason reason) {
  Host& h = *r.host;
  if (r.state == ConnectionState::kIdle) {
    auto it = std::find(h.idle.begin(), h.idle.end(), id);
    SLUICE_CHECK(it != h.idle.end(), "idle connection missing from its host's idle list");
    h.idle.erase(it);
    gauge(h, &Counters::idle, -1);
  } else {
    gauge(h, &Counters::active, -1);
  }
  --h.connections;
  add(h.counters.destroyed[static_cast<size_t>(reason)], 1);
  add(global_.destroyed[static_cast<size_t>(reason)], 1);
  records_.erase(id);
}

SlotResult ConnectionTracker::acquire_slot(std::string_view host, TimePoint now) {
  SlotResult result;
  Host& h = host_entry(host);
  if (shutting_down_) {
    result.decision = SlotDecision::kShuttingDown;
  } else {
    // Warmest idle connection first; stale ones met on the way are evicted.
    while (!h.idle.empty()) {
      const ConnectionId id = h.idle.back();
      Record& r = records_.at(id);
      if (auto reason = broken_rule(r, now)) {
        destroy(id, r, *reason);
        result.to_close.push_back(id);
        continue;
      }
      h.idle.pop_back();
      r.state = ConnectionState::kInUse;
      r.last_used = now;
      gauge(h, &Counters::idle, -1);
      gauge(h, &Counters::active, +1);
      count(h, &Counters::reused);
      result.decision = SlotDecision::kReuse;
      result.id = id;
      break;
    }
    if (result.id == 0) {
      const bool host_full = options_.max_per_host != 0 && h.connections >= options_.max_per_host;
      bool total_full = options_.max_total != 0 && records_.size() >= options_.max_total;
      if (!host_full && total_full) {
        // Make room: close the coldest idle connection of another host, if any.
        ConnectionId victim = 0;
        TimePoint coldest = TimePoint::max();
        for (const auto& [key, other] : hosts_) {
          if (other.get() == &h || other->idle.empty()) continue;
          const ConnectionId candidate = other->idle.front();  // the least recently released
          const TimePoint used = records_.at(candidate).last_used;
          if (used < coldest) {
            coldest = used;
            victim = candidate;
          }
        }
        if (victim != 0) {
          destroy(victim, records_.at(victim), CloseReason::kMakeRoom);
          result.to_close.push_back(victim);
          total_full = false;
        }
      }
      if (host_full || total_full) {
        result.decision = SlotDecision::kWait;
        result.at_host_limit = host_full;
        result.at_total_limit = total_full;
        count(h, &Counters::waits);
      } else {
        const ConnectionId id = next_id_++;
        Record r;
        r.host = &h;
        r.created = now;
        r.last_used = now;
        r.state = ConnectionState::kInUse;
        records_.emplace(id, r);
        ++h.connections;
        gauge(h, &Counters::active, +1);
        count(h, &Counters::created);
        result.decision = SlotDecision::kCreate;
        result.id = id;
      }
    }
  }
  result.host_connections = h.connections;
  result.total_connections = records_.size();
  return result;
}

void ConnectionTracker::record_request(ConnectionId id, bool success, uint64_t bytes_sent,
                                       uint64_t bytes_received) {
  auto it = records_.find(id);
  SLUICE_CHECK(it != records_.end(), "record_request on an unknown connection");
  Record& r = it->second;
  ++r.requests;
  r.bytes_sent += bytes_sent;
  r.bytes_received += bytes_received;
  Host& h = *r.host;
  count(h, &Counters::requests);
  count(h, &Counters::bytes_sent, bytes_sent);
  count(h, &Counters::bytes_received, bytes_received);
  if (!success) {
    ++r.errors;
    count(h, &Counters::errors);
  }
}

std::optional<CloseReason> ConnectionTracker::release(ConnectionId id, TimePoint now) {
  auto it = records_.find(id);
  SLUICE_CHECK(it != records_.end(), "release of an unknown connection");
  Record& r = it->second;
  SLUICE_CHECK(r.state == ConnectionState::kInUse, "release of a connection that is not in use");
  r.last_used = now;
  std::optional<CloseReason> reason =
      shutting_down_ ? std::optional(CloseReason::kShutdown) : broken_rule(r, now);
  if (reason) {
    destroy(id, r, *reason);
    return reason;
  }
  Host& h = *r.host;
  r.state = ConnectionState::kIdle;
  h.idle.push_back(id);
  gauge(h, &Counters::active, -1);
  gauge(h, &Counters::idle, +1);
  return std::nullopt;
}

void ConnectionTracker::close(ConnectionId id, CloseReason reason) {
  auto it = records_.find(id);
  SLUICE_CHECK(it != records_.end(), "close of an unknown connection");
  destroy(id, it->second, reason);
}

std::vector<Eviction> ConnectionTracker::cleanup(TimePoint now) {
  std::vector<Eviction> evicted;
  for (auto& [key, host] : hosts_) {
    // Copy: `destroy` edits the idle list.
    const std::vector<ConnectionId> idle = host->idle;
    for (ConnectionId id : idle) {
      Record& r = records_.at(id);
      if (auto reason = broken_rule(r, now)) {
        evicted.push_back({id, *reason});
        destroy(id, r, *reason);
      }
    }
  }
  return evicted;
}

std::vector<Eviction> ConnectionTracker::shutdown() {
  shutting_down_ = true;
  std::vector<Eviction> evicted;
  for (auto& [key, host] : hosts_) {
    while (!host->idle.empty()) {
      const ConnectionId id = host->idle.back();
      evicted.push_back({id, CloseReason::kShutdown});
      destroy(id, records_.at(id), CloseReason::kShutdown);
    }
  }
  return evicted;
}

void ConnectionTracker::add_waiter(std::string_view host) {
  gauge(host_entry(host), &Counters::waiters, +1);
}

void ConnectionTracker::remove_waiter(std::string_view host) {
  Host& h = host_entry(host);
  SLUICE_CHECK(h.counters.waiters.load(std::memory_order_relaxed) > 0,
               "remove_waiter without add_waiter");
  gauge(h, &Counters::waiters, -1);
}

std::optional<ConnectionInfo> ConnectionTracker::info(ConnectionId id) const {
  auto it = records_.find(id);
  if (it == records_.end()) return std::nullopt;
  const Record& r = it->second;
  ConnectionInfo out;
  out.id = id;
  out.host = r.host->key;
  out.created = r.created;
  out.last_used = r.last_used;
  out.requests = r.requests;
  out.errors = r.errors;
  out.bytes_sent = r.bytes_sent;
  out.bytes_received = r.bytes_received;
  out.state = r.state;
  return out;
}

size_t ConnectionTracker::connections(std::string_view host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? 0 : it->second->connections;
}

ConnectionStats ConnectionTracker::stats() const { return global_.snapshot(); }

std::vector<HostConnectionStats> ConnectionTracker::host_stats() const {
  std::vector<HostConnectionStats> out;
  std::lock_guard lock(hosts_mu_);
  out.reserve(hosts_.size());
  for (const auto& [key, host] : hosts_) out.push_back({key, host->counters.snapshot()});
  std::sort(out.begin(), out.end(), [](const HostConnectionStats& a, const HostConnectionStats& b) {
    return a.host < b.host;
  });
  return out;
}

}  // namespace sluice::pool
