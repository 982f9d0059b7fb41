#include "sluice/gateway/shared_stream.h"

#include <utility>

#include "sluice/base/check.h"

namespace sluice::gateway {

SharedStream::SharedStream(Options options) : options_(std::move(options)) {
  SLUICE_CHECK(options_.joiner.overflow != flow::OverflowPolicy::block_producer,
               "SharedStream: a joiner must not block the reader");
}

void SharedStream::next_round_locked(Joiner& joiner) {
  size_t bytes = 0;
  joiner.replay.assign(history_.begin() + static_cast<std::ptrdiff_t>(joiner.next), history_.end());
  for (const auto& c : joiner.replay) bytes += c->size();
  joiner.next = history_.size();
  stats_.replayed_bytes += bytes;
  joiner.live = end_ == End::completed || bytes <= options_.joiner.max_buffered_bytes;
  if (joiner.live) joiners_[joiner.id].live = true;
}

std::optional<SharedStream::Joiner> SharedStream::join(std::function<void()> on_ejected) {
  std::lock_guard lock(mu_);
  if (!stats_.history_whole || end_ == End::failed || end_ == End::abandoned) return std::nullopt;
  Joiner j;
  j.id = next_id_++;
  j.stream = std::make_shared<flow::BoundedStream>(options_.joiner);
  if (end_ == End::completed) j.stream->close();  // the replay is all there is
  joiners_.emplace(j.id, JoinerState{j.stream, false, std::move(on_ejected)});
  next_round_locked(j);
  if (!j.replay.empty()) ++stats_.late_joins;
  ++stats_.joined;
  stats_.joiners = joiners_.size();
  return j;
}

bool SharedStream::catch_up(Joiner& joiner) {
  std::lock_guard lock(mu_);
  if (!stats_.history_whole || !joiners_.contains(joiner.id)) return false;
  ++stats_.catch_up_rounds;
  next_round_locked(joiner);
  return true;
}

bool SharedStream::set_on_ejected(uint64_t id, std::function<void()> on_ejected) {
  std::lock_guard lock(mu_);
  auto it = joiners_.find(id);
  if (it == joiners_.end()) return false;
  it->second.on_ejected = std::move(on_ejected);
  return true;
}

std::shared_ptr<void> SharedStream::hold() {
  {
    std::lock_guard lock(mu_);
    ++holds_;
  }
  return {this, [self = shared_from_this()](void*) { self->release(); }};
}

void SharedStream::release() {
  std::function<void()> abandoned;
  {
    std::lock_guard lock(mu_);
    --holds_;
    abandoned = abandon_if_idle_locked();
  }
  if (abandoned) abandoned();
}

void SharedStream::leave(uint64_t id) {
  std::function<void()> abandoned;
  std::shared_ptr<flow::BoundedStream> stream;
  {
    std::lock_guard lock(mu_);
    auto it = joiners_.find(id);
    if (it == joiners_.end()) return;
    stream = std::move(it->second.stream);
    joiners_.erase(it);
    stats_.joiners = joiners_.size();
    abandoned = abandon_if_idle_locked();
  }
  stream->cancel();
  if (abandoned) abandoned();
}

bool SharedStream::should_stop_locked() const {
  return joiners_.empty() && (holds_ == 0 || !stats_.history_whole);
}

std::function<void()> SharedStream::abandon_if_idle_locked() {
  if (end_ != End::running || !should_stop_locked()) return nullptr;
  // Decided here, under the lock: from now on nobody joins a stream nobody reads.
  end_ = End::abandoned;
  history_.clear();
  stats_.history_bytes = 0;
  stats_.history_whole = false;
  return std::move(on_abandoned_);
}

bool SharedStream::append(std::string chunk) {
  std::vector<std::function<void()>> ejected;
  std::unique_lock lock(mu_);
  if (end_ != End::running) return false;
  stats_.bytes += chunk.size();
  ++stats_.chunks;
  if (stats_.history_whole && stats_.history_bytes + chunk.size() > options_.history_bytes) {
    // Past the bound: late joiners could not get the beginning, the cache could not have
    // the whole body; the memory goes back.
    stats_.history_whole = false;
    history_.clear();
    history_.shrink_to_fit();
    stats_.history_bytes = 0;
  }
  for (auto it = joiners_.begin(); it != joiners_.end();) {
    if (!it->second.live) {  // catching up: it gets this chunk from the history
      ++it;
      continue;
    }
    auto offered = it->second.stream->offer(chunk);
    if (!offered && offered.error() == flow::Errc::stream_overflow) {
      // This joiner fell behind under `fail`: its stream ended for it alone (its writer sees
      // the overflow and disconnects it); the others go on.
      ++stats_.joiners_ended;
      if (it->second.on_ejected) ejected.push_back(std::move(it->second.on_ejected));
      it = joiners_.erase(it);
      continue;
    }
    ++it;
  }
  stats_.joiners = joiners_.size();
  if (stats_.history_whole) {
    stats_.history_bytes += chunk.size();
    history_.push_back(std::make_shared<const std::string>(std::move(chunk)));
  }
  // No joiner left and none to come: the reader stops (its own end, no callback needed).
  (void)abandon_if_idle_locked();
  const bool go_on = end_ == End::running;
  lock.unlock();
  for (auto& callback : ejected) callback();
  return go_on;
}

void SharedStream::end(End how, boost::system::error_code error) {
  SLUICE_CHECK(how != End::running, "SharedStream::end: running is not an end");
  std::vector<std::shared_ptr<flow::BoundedStream>> streams;
  {
    std::lock_guard lock(mu_);
    if (end_ != End::running) return;
    end_ = how;
    error_ = error;
    on_abandoned_ = nullptr;
    if (how != End::completed) {
      history_.clear();
      stats_.history_bytes = 0;
      stats_.history_whole = false;
    }
    streams.reserve(joiners_.size());
    for (const auto& [id, j] : joiners_) streams.push_back(j.stream);
  }
  // Each joiner drains what it holds, then sees the end (and asks `state()` how it ended).
  for (const auto& s : streams) s->close();
}

void SharedStream::set_on_abandoned(std::function<void()> callback) {
  {
    std::lock_guard lock(mu_);
    if (end_ != End::abandoned) {
      on_abandoned_ = std::move(callback);
      return;
    }
  }
  callback();  // abandoned already: the reader must not wait on its upstream
}

SharedStream::End SharedStream::state() const {
  std::lock_guard lock(mu_);
  return end_;
}

boost::system::error_code SharedStream::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

bool SharedStream::joinable() const {
  std::lock_guard lock(mu_);
  return stats_.history_whole && (end_ == End::running || end_ == End::completed);
}

std::optional<std::string> SharedStream::body() const {
  std::lock_guard lock(mu_);
  if (!stats_.history_whole) return std::nullopt;
  std::string out;
  out.reserve(stats_.history_bytes);
  for (const auto& c : history_) out += *c;
  return out;
}

SharedStream::Stats SharedStream::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace sluice::gateway
