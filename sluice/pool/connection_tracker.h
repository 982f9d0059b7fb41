// ConnectionTracker: the bookkeeping of an upstream connection pool (no sockets). It keeps a
// record per connection (host, age, idle time, requests, errors, bytes), decides which ones to
// close (idle too long, too old, too many errors), enforces the total and per-host limits, and
// hands idle connections out LIFO. The HTTP client owns the sockets, keyed by `ConnectionId`,
// and does what the tracker says.
//
// Thread-safety: NOT thread-safe; one tracker per worker thread, used only by that thread.
// The exception is `stats()` and `host_stats()`, which any thread may call at any time: the
// counters and gauges are relaxed atomics (each value is exact, a snapshot of several values
// may mix moments), and the host table is guarded by a mutex that the owner takes only when it
// adds a host.
// Cost: `acquire_slot` is a hash lookup plus a `pop_back` on reuse; `release` and `close` are a
// hash lookup (and a scan of the host's idle list, at most `max_per_host` long, on close);
// `cleanup` walks every connection. Nothing allocates on reuse.
// Ordering: time comes from the `now` argument (the caller reads its injected clock once per
// event), so the tracker itself never reads a clock.
// Rules, checked for idle connections by `cleanup` and `acquire_slot`, and for a connection in
// use when it is released, in this order: error rate (`errors / requests > max_error_rate`
// once `requests >= min_requests_for_error_rate`), age (`now - created > max_age`), idle time
// (`now - last_used > max_idle_time`, idle connections only).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sluice/base/clock.h"
#include "sluice/base/hash.h"

namespace sluice::pool {

// Identifies one connection for the life of the tracker (never reused, never 0).
using ConnectionId = uint64_t;

enum class ConnectionState {
  kIdle,   // open, in the host's idle list, may be handed out
  kInUse,  // handed out by `acquire_slot` (connecting or serving a request)
};

// Why a connection was destroyed; `Stats::destroyed` is indexed by it.
enum class CloseReason {
  kIdle,          // idle longer than `max_idle_time`
  kAge,           // older than `max_age`
  kErrorRate,     // error rate above `max_error_rate` after enough requests
  kClosedByPeer,  // the upstream closed it (EOF, reset, `Connection: close`)
  kError,         // the owner closed it after an I/O error or a failed connect
  kMakeRoom,      // idle on another host, closed to make room at the total limit
  kShutdown,      // closed by `shutdown()`
};
inline constexpr size_t kCloseReasonCount = 7;

// A short lower-case name ("idle", "age", "error_rate", ...), for metrics labels and logs.
[[nodiscard]] std::string_view to_string(CloseReason reason) noexcept;

struct ConnectionTrackerOptions {
  // An idle connection unused for longer than this is closed (seed default 60 s).
  Duration max_idle_time = std::chrono::seconds(60);
  // A connection older than this is closed when idle or when released (seed default 300 s).
  Duration max_age = std::chrono::seconds(300);
  // A connection whose error share exceeds this is closed (seed default 0.5).
  double max_error_rate = 0.5;
  // The error rate is judged only from this many requests on (one early failure is not a trend).
  uint64_t min_requests_for_error_rate = 10;
  // Most connections open at once over all hosts (idle + in use); 0 means no limit.
  size_t max_total = 100;
  // Most connections open at once to one host; 0 means no limit.
  size_t max_per_host = 10;
};

// One connection's record, as `info()` returns it.
struct ConnectionInfo {
  ConnectionId id = 0;                              // the tracker's id for it
  std::string host;                                 // host key ("api.example.com:443")
  TimePoint created{};                              // when `acquire_slot` created it
  TimePoint last_used{};                            // when it was last handed out or released
  uint64_t requests = 0;                            // requests recorded on it
  uint64_t errors = 0;                              // of which failed
  uint64_t bytes_sent = 0;                          // request bytes written
  uint64_t bytes_received = 0;                      // response bytes read
  ConnectionState state = ConnectionState::kInUse;  // idle or in use
};

// What `acquire_slot` decided.
enum class SlotDecision {
  kReuse,         // use the idle connection `SlotResult::id` (now in use)
  kCreate,        // open a new connection and key it by `SlotResult::id` (now in use)
  kWait,          // a limit is reached: wait for a release or close, then ask again
  kShuttingDown,  // `shutdown()` was called: no more connections
};

struct SlotResult {
  SlotDecision decision = SlotDecision::kWait;  // what to do
  ConnectionId id = 0;                          // the connection to use (reuse or create)
  // Connections the tracker evicted while deciding (stale idle ones of this host, or an idle
  // one of another host at the total limit): the caller must close these sockets.
  std::vector<ConnectionId> to_close;
  size_t host_connections = 0;   // connections to this host after the decision
  size_t total_connections = 0;  // connections over all hosts after the decision
  bool at_host_limit = false;    // `kWait` because of `max_per_host`
  bool at_total_limit = false;   // `kWait` because of `max_total`
};

// A connection the tracker closed and why, as `cleanup` and `shutdown` return them.
struct Eviction {
  ConnectionId id = 0;   // the socket to close
  CloseReason reason{};  // why
};

// Counters and gauges, for one host or over all hosts.
struct ConnectionStats {
  uint64_t created = 0;         // connections created (`kCreate` decisions)
  uint64_t reused = 0;          // acquisitions served by an idle connection (`kReuse`)
  uint64_t waits = 0;           // `kWait` decisions (a limit was reached)
  uint64_t requests = 0;        // requests recorded
  uint64_t errors = 0;          // of which failed
  uint64_t bytes_sent = 0;      // request bytes
  uint64_t bytes_received = 0;  // response bytes
  std::array<uint64_t, kCloseReasonCount> destroyed{};  // connections destroyed, by reason
  size_t active = 0;                                    // connections in use now
  size_t idle = 0;                                      // idle connections now
  size_t waiters = 0;  // callers waiting for a slot now (`add_waiter`/`remove_waiter`)

  [[nodiscard]] uint64_t destroyed_total() const noexcept;
  [[nodiscard]] uint64_t destroyed_by(CloseReason r) const noexcept {
    return destroyed[static_cast<size_t>(r)];
  }
  // Share of acquisitions served by an existing connection, in [0, 1] (seed 000's
  // `reuse_rate_percent` divided by 100).
  [[nodiscard]] double reuse_rate() const noexcept {
    const uint64_t n = created + reused;
    return n == 0 ? 0.0 : static_cast<double>(reused) / static_cast<double>(n);
  }
};

struct HostConnectionStats {
  std::string host;       // host key
  ConnectionStats stats;  // its counters
};

class ConnectionTracker {
 public:
  explicit ConnectionTracker(ConnectionTrackerOptions options = {});
  ConnectionTracker(const ConnectionTracker&) = delete;
  ConnectionTracker& operator=(const ConnectionTracker&) = delete;
  ~ConnectionTracker();

  // Decides how to serve one request to `host`: reuse the warmest idle connection, create
  // one, or wait. Stale idle connections of `host` met on the way are evicted into `to_close`.
  // At the total limit, when `host` is below its own limit, the coldest idle connection of
  // another host is evicted (`kMakeRoom`) so that one busy host cannot starve another.
  [[nodiscard]] SlotResult acquire_slot(std::string_view host, TimePoint now);

  // Records one request served on an in-use connection.
  void record_request(ConnectionId id, bool success, uint64_t bytes_sent, uint64_t bytes_received);

  // The caller is done with the connection and it is still usable. Returns a reason when the
  // tracker decided to close it instead of keeping it idle (the caller closes the socket);
  // `std::nullopt` when it is now idle.
  [[nodiscard]] std::optional<CloseReason> release(ConnectionId id, TimePoint now);

  // The caller closed the connection (peer closed, I/O error, failed connect). Idle or in use.
  void close(ConnectionId id, CloseReason reason);

  // Evicts every idle connection that breaks a rule; returns the sockets to close. Run it
  // periodically (seed 000: every 30 s).
  [[nodiscard]] std::vector<Eviction> cleanup(TimePoint now);

  // Closes every idle connection (returned) and makes later `release` calls close theirs
  // (`kShutdown`) and `acquire_slot` answer `kShuttingDown`.
  [[nodiscard]] std::vector<Eviction> shutdown();

  // Waiter bookkeeping for the `waiters` gauge; the caller owns the wait queue itself.
  void add_waiter(std::string_view host);
  void remove_waiter(std::string_view host);

  // The record of a live connection, or nullopt. Owner thread only.
  [[nodiscard]] std::optional<ConnectionInfo> info(ConnectionId id) const;
  // Live connections to `host` / over all hosts. Owner thread only.
  [[nodiscard]] size_t connections(std::string_view host) const;
  [[nodiscard]] size_t connections() const noexcept { return records_.size(); }

  // Global counters; any thread.
  [[nodiscard]] ConnectionStats stats() const;
  // Per-host counters, one entry per host ever seen; any thread.
  [[nodiscard]] std::vector<HostConnectionStats> host_stats() const;

  [[nodiscard]] const ConnectionTrackerOptions& options() const noexcept { return options_; }

 private:
  // Relaxed-atomic counters, written by the owner, read by anyone.
  struct Counters {
    std::atomic<uint64_t> created{0};
    std::atomic<uint64_t> reused{0};
    std::atomic<uint64_t> waits{0};
    std::atomic<uint64_t> requests{0};
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> bytes_sent{0};
    std::atomic<uint64_t> bytes_received{0};
    std::array<std::atomic<uint64_t>, kCloseReasonCount> destroyed{};
    std::atomic<size_t> active{0};
    std::atomic<size_t> idle{0};
    std::atomic<size_t> waiters{0};
    [[nodiscard]] ConnectionStats snapshot() const;
  };
  struct Host {
    std::string key;
    std::vector<ConnectionId> idle;  // LIFO: back is the most recently released
    size_t connections = 0;          // idle + in use
    Counters counters;
  };
  struct Record {
    Host* host = nullptr;
    TimePoint created{};
    TimePoint last_used{};
    uint64_t requests = 0;
    uint64_t errors = 0;
    uint64_t bytes_sent = 0;
    uint64_t bytes_received = 0;
    ConnectionState state = ConnectionState::kInUse;
  };

  Host& host_entry(std::string_view host);
  [[nodiscard]] std::optional<CloseReason> broken_rule(const Record& r, TimePoint now) const;
  // Removes a record (from its host's idle list too) and counts the reason.
  void destroy(ConnectionId id, Record& r, CloseReason reason);
  static void add(std::atomic<uint64_t>& c, uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  static void add_gauge(std::atomic<size_t>& g, std::ptrdiff_t d) noexcept {
    g.store(g.load(std::memory_order_relaxed) + static_cast<size_t>(d), std::memory_order_relaxed);
  }
  void count(Host& h, std::atomic<uint64_t> Counters::*field, uint64_t n = 1) noexcept {
    add(h.counters.*field, n);
    add(global_.*field, n);
  }
  void gauge(Host& h, std::atomic<size_t> Counters::*field, std::ptrdiff_t d) noexcept {
    add_gauge(h.counters.*field, d);
    add_gauge(global_.*field, d);
  }

  const ConnectionTrackerOptions options_;
  // Host table: written by the owner under `hosts_mu_`; the owner reads it without the lock
  // (it is the only writer), other threads read it under the lock.
  mutable std::mutex hosts_mu_;
  std::unordered_map<std::string, std::unique_ptr<Host>, base::StringHash, std::equal_to<>> hosts_;
  std::unordered_map<ConnectionId, Record> records_;
  ConnectionId next_id_ = 1;
  bool shutting_down_ = false;
  Counters global_;
};

}  // namespace sluice::pool
