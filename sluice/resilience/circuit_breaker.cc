#include "sluice/resilience/circuit_breaker.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "sluice/base/check.h"

namespace sluice::resilience {

const char* to_string(BreakerState state) noexcept {
  switch (state) {
    case BreakerState::closed:
      return "closed";
    case BreakerState::open:
      return "open";
    case BreakerState::half_open:
      return "half_open";
  }
  return "?";
}

const char* to_string(RejectReason reason) noexcept {
  switch (reason) {
    case RejectReason::open:
      return "open";
    case RejectReason::probes_exhausted:
      return "probes_exhausted";
  }
  return "?";
}

std::optional<std::string> BreakerOptions::validate() const {
  if (window <= Duration::zero()) return std::string("breaker: window must be positive");
  if (window_buckets < 1 || window_buckets > 1000) {
    return "breaker: window_buckets must be in [1, 1000], found " + std::to_string(window_buckets);
  }
  if (window / window_buckets <= Duration::zero()) {
    return std::string("breaker: window is shorter than one nanosecond per bucket");
  }
  if (!(failure_rate_threshold > 0.0 && failure_rate_threshold <= 1.0)) {
    return "breaker: failure_rate_threshold must be in (0, 1], found " +
           std::to_string(failure_rate_threshold);
  }
  if (open_duration <= Duration::zero()) {
    return std::string("breaker: open_duration must be positive");
  }
  if (!(open_duration_multiplier >= 1.0) || !std::isfinite(open_duration_multiplier)) {
    return "breaker: open_duration_multiplier must be a finite number >= 1, found " +
           std::to_string(open_duration_multiplier);
  }
  if (max_open_duration < open_duration) {
    return std::string("breaker: max_open_duration must be at least open_duration");
  }
  if (half_open_max_probes < 1) {
    return std::string("breaker: half_open_max_probes must be at least 1");
  }
  if (half_open_successes_to_close < 1) {
    return std::string("breaker: half_open_successes_to_close must be at least 1");
  }
  return std::nullopt;
}

// ---- Permit ----

CircuitBreaker::Permit::Permit(Permit&& other) noexcept
    : breaker_(std::exchange(other.breaker_, nullptr)),
      generation_(other.generation_),
      probe_(other.probe_),
      reason_(other.reason_) {}

CircuitBreaker::Permit& CircuitBreaker::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    release();
    breaker_ = std::exchange(other.breaker_, nullptr);
    generation_ = other.generation_;
    probe_ = other.probe_;
    reason_ = other.reason_;
  }
  return *this;
}

CircuitBreaker::Permit::~Permit() { release(); }

void CircuitBreaker::Permit::release() noexcept {
  if (breaker_ != nullptr) std::exchange(breaker_, nullptr)->abandon(generation_, probe_);
}

void CircuitBreaker::Permit::record(Outcome outcome) {
  SLUICE_CHECK(breaker_ != nullptr,
               "CircuitBreaker::Permit::record on a refused or already recorded permit");
  std::exchange(breaker_, nullptr)->record(outcome, generation_, probe_);
}

// ---- CircuitBreaker ----

CircuitBreaker::CircuitBreaker(BreakerOptions options, const base::Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      origin_(clock.now()),
      bucket_width_(options_.window / std::max<uint32_t>(options_.window_buckets, 1)),
      open_for_(options_.open_duration) {
  const auto error = options_.validate();
  SLUICE_CHECK(!error, error ? *error : "");
  buckets_.resize(options_.window_buckets);
  counters_.last_transition = origin_;
}

CircuitBreaker::Permit CircuitBreaker::allow() {
  std::unique_lock lock(mu_);
  refresh(clock_.now());
  Permit permit(RejectReason::open);
  switch (state_) {
    case BreakerState::closed:
      ++counters_.calls_allowed;
      permit = Permit(this, generation_, /*probe=*/false);
      break;
    case BreakerState::open:
      ++counters_.calls_rejected;
      ++counters_.rejected_open;
      break;
    case BreakerState::half_open:
      if (probes_in_flight_ < options_.half_open_max_probes) {
        ++probes_in_flight_;
        ++counters_.calls_allowed;
        permit = Permit(this, generation_, /*probe=*/true);
      } else {
        ++counters_.calls_rejected;
        ++counters_.rejected_probes_exhausted;
        permit = Permit(RejectReason::probes_exhausted);
      }
      break;
  }
  deliver(lock);
  return permit;
}

BreakerState CircuitBreaker::state() {
  std::unique_lock lock(mu_);
  refresh(clock_.now());
  const BreakerState state = state_;
  deliver(lock);
  return state;
}

CircuitBreaker::Stats CircuitBreaker::stats() {
  std::unique_lock lock(mu_);
  const TimePoint now = clock_.now();
  refresh(now);
  Stats s = counters_;
  s.state = state_;
  s.probes_in_flight = state_ == BreakerState::half_open ? probes_in_flight_ : 0;
  uint64_t successes = 0;
  uint64_t failures = 0;
  window_totals(now, successes, failures);
  s.window_requests = successes + failures;
  s.window_error_rate = s.window_requests == 0 ? 0.0
                                               : static_cast<double>(failures) /
                                                     static_cast<double>(s.window_requests);
  s.current_open_duration = open_for_;
  deliver(lock);
  return s;
}

void CircuitBreaker::record(Outcome outcome, uint64_t generation, bool probe) {
  std::unique_lock lock(mu_);
  record_locked(outcome, generation, probe, clock_.now());
  deliver(lock);
}

void CircuitBreaker::record_now(Outcome outcome) {
  std::unique_lock lock(mu_);
  const TimePoint now = clock_.now();
  refresh(now);
  record_locked(outcome, generation_, /*probe=*/false, now);
  deliver(lock);
}

void CircuitBreaker::abandon(uint64_t generation, bool probe) {
  std::lock_guard lock(mu_);
  ++counters_.abandoned;
  if (probe && generation == generation_) {
    SLUICE_CHECK(probes_in_flight_ > 0, "CircuitBreaker: probe count underflow");
    --probes_in_flight_;
  }
}

void CircuitBreaker::record_locked(Outcome outcome, uint64_t generation, bool probe,
                                   TimePoint now) {
  if (outcome == Outcome::success) {
    ++counters_.successes;
  } else {
    ++counters_.failures;
  }
  // A permit holds its probe slot until its outcome arrives: free it before `refresh` can
  // start a new generation (the slot belongs to the generation that granted it).
  if (probe && generation == generation_) {
    SLUICE_CHECK(probes_in_flight_ > 0, "CircuitBreaker: probe count underflow");
    --probes_in_flight_;
  }
  refresh(now);
  if (generation != generation_) {
    ++counters_.stale_outcomes;
    return;
  }
  switch (state_) {
    case BreakerState::closed: {
      Bucket& bucket = bucket_at(now);
      if (outcome == Outcome::success) {
        ++bucket.successes;
        consecutive_failures_ = 0;
        return;
      }
      ++bucket.failures;
      ++consecutive_failures_;
      if (options_.consecutive_failures != 0 &&
          consecutive_failures_ >= options_.consecutive_failures) {
        trip(TripCause::consecutive, now);
        return;
      }
      uint64_t successes = 0;
      uint64_t failures = 0;
      window_totals(now, successes, failures);
      const uint64_t total = successes + failures;
      if (total >= options_.min_requests && total > 0 &&
          static_cast<double>(failures) >=
              options_.failure_rate_threshold * static_cast<double>(total)) {
        trip(TripCause::rate, now);
      }
      return;
    }
    case BreakerState::half_open:
      if (outcome == Outcome::failure) {
        trip(TripCause::probe, now);
      } else if (++probe_successes_ >= options_.half_open_successes_to_close) {
        transition(BreakerState::closed, now);
      }
      return;
    case BreakerState::open:
      return;  // only reachable through on_success/on_failure: counted above
  }
}

void CircuitBreaker::refresh(TimePoint now) {
  if (state_ == BreakerState::open && now >= open_until_) {
    transition(BreakerState::half_open, now);
  }
}

void CircuitBreaker::trip(TripCause cause, TimePoint now) {
  ++consecutive_trips_;
  const double grown =
      static_cast<double>(options_.open_duration.count()) *
      std::pow(options_.open_duration_multiplier, static_cast<double>(consecutive_trips_ - 1));
  open_for_ = grown >= static_cast<double>(options_.max_open_duration.count())
                  ? options_.max_open_duration
                  : Duration(static_cast<int64_t>(grown));
  switch (cause) {
    case TripCause::rate:
      ++counters_.opened_by_rate;
      break;
    case TripCause::consecutive:
      ++counters_.opened_by_consecutive;
      break;
    case TripCause::probe:
      ++counters_.opened_by_probe;
      break;
  }
  transition(BreakerState::open, now);
}

void CircuitBreaker::transition(BreakerState to, TimePoint now) {
  const BreakerState from = state_;
  state_ = to;
  ++generation_;
  counters_.last_transition = now;
  switch (to) {
    case BreakerState::open:
      ++counters_.times_opened;
      open_until_ = now + open_for_;
      break;
    case BreakerState::half_open:
      probes_in_flight_ = 0;
      probe_successes_ = 0;
      break;
    case BreakerState::closed:
      clear_window();
      consecutive_failures_ = 0;
      consecutive_trips_ = 0;
      open_for_ = options_.open_duration;
      break;
  }
  if (options_.on_state_change) pending_.push_back(BreakerTransition{from, to, now});
}

CircuitBreaker::Bucket& CircuitBreaker::bucket_at(TimePoint now) {
  const int64_t index = (now - origin_) / bucket_width_;
  Bucket& bucket = buckets_[static_cast<size_t>(index) % buckets_.size()];
  if (bucket.index != index) bucket = Bucket{index, 0, 0};
  return bucket;
}

void CircuitBreaker::window_totals(TimePoint now, uint64_t& successes, uint64_t& failures) const {
  const int64_t current = (now - origin_) / bucket_width_;
  const int64_t oldest = current - static_cast<int64_t>(buckets_.size()) + 1;
  for (const Bucket& bucket : buckets_) {
    if (bucket.index >= oldest && bucket.index <= current) {
      successes += bucket.successes;
      failures += bucket.failures;
    }
  }
}

void CircuitBreaker::clear_window() {
  for (Bucket& bucket : buckets_) bucket = Bucket{};
}

void CircuitBreaker::notify(const BreakerTransition& transition) const noexcept {
  // noexcept: a throwing callback would leave `delivering_` set forever; terminate instead.
  options_.on_state_change(transition);
}

void CircuitBreaker::deliver(std::unique_lock<std::mutex>& lock) {
  // Whoever finds callbacks pending and nobody delivering becomes the deliverer and drains
  // the queue in order; a transition raised meanwhile (by another thread, or by a callback
  // calling the breaker) is queued and drained by the same loop.
  if (delivering_ || pending_.empty()) return;
  delivering_ = true;
  std::vector<BreakerTransition> batch;
  while (!pending_.empty()) {
    batch.swap(pending_);
    lock.unlock();
    for (const BreakerTransition& t : batch) notify(t);
    batch.clear();
    lock.lock();
  }
  delivering_ = false;
}

}  // namespace sluice::resilience
