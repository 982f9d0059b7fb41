// An AsyncSemaphore capping concurrent "upstream calls" at 3 among 10 coroutines, FIFO, then
// resized to 5 at run time (as the adaptive limiter does), with one waiter cancelled.
#include <atomic>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdio>
#include <vector>

#include "sluice/flow/async_semaphore.h"

namespace {

namespace asio = boost::asio;
namespace flow = sluice::flow;

int holders = 0;
int max_holders = 0;

asio::awaitable<void> call_upstream(flow::AsyncSemaphore& sem, int rounds) {
  for (int i = 0; i < rounds; ++i) {
    auto permit = co_await sem.acquire();
    if (!permit) co_return;
    max_holders = std::max(max_holders, ++holders);
    for (int y = 0; y < 3; ++y) {  // "work" across a few suspensions
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    }
    --holders;
  }
}

}  // namespace

int main() {
  asio::io_context io;
  flow::AsyncSemaphore sem({.capacity = 3, .max_waiters = 100});
  for (int c = 0; c < 10; ++c) asio::co_spawn(io, call_upstream(sem, 20), asio::detached);
  io.run();
  auto s = sem.stats();
  std::printf(
      "capacity 3: %llu permits granted (%llu after waiting), max holders %d, "
      "max waiters %zu\n",
      static_cast<unsigned long long>(s.acquired_total),
      static_cast<unsigned long long>(s.waited_total), max_holders, s.max_waiters_seen);
  if (max_holders > 3) return 1;

  max_holders = 0;
  sem.set_capacity(5);
  {
    // All 5 permits held: a late caller queues, then gives up (its cancellation slot fires);
    // it leaves the queue without consuming a permit.
    std::vector<flow::AsyncSemaphore::Permit> held;
    while (auto p = sem.try_acquire()) held.push_back(std::move(*p));
    asio::cancellation_signal signal;
    asio::co_spawn(io, call_upstream(sem, 1),
                   asio::bind_cancellation_slot(signal.slot(), asio::detached));
    io.restart();
    io.poll();
    signal.emit(asio::cancellation_type::terminal);
    io.poll();
  }
  for (int c = 0; c < 10; ++c) asio::co_spawn(io, call_upstream(sem, 20), asio::detached);
  io.restart();
  io.run();
  s = sem.stats();
  std::printf("resized to 5: max holders %d, cancelled waits %llu, in use now %zu\n", max_holders,
              static_cast<unsigned long long>(s.cancelled_total), s.in_use);
  return max_holders <= 5 && s.in_use == 0 ? 0 : 1;
}
