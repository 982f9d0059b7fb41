#include "sluice/base/clock.h"

#include <gtest/gtest.h>

namespace sluice::base {
namespace {

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock;
  const TimePoint t0 = clock.now();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(std::chrono::milliseconds(250));
  EXPECT_EQ(clock.now() - t0, std::chrono::milliseconds(250));
  clock.advance(Duration(-5));  // ignored
  EXPECT_EQ(clock.now() - t0, std::chrono::milliseconds(250));
  clock.set(t0 + std::chrono::seconds(10));
  EXPECT_EQ(clock.now() - t0, std::chrono::seconds(10));
}

TEST(ManualClock, StartsFarEnoughFromEpochToSubtract) {
  ManualClock clock;
  EXPECT_GT(clock.now().time_since_epoch(), std::chrono::hours(0));
  EXPECT_GE(clock.now() - std::chrono::seconds(999), TimePoint{});
}

TEST(SteadyClock, IsMonotonic) {
  const Clock& clock = SteadyClock::instance();
  TimePoint prev = clock.now();
  for (int i = 0; i < 1000; ++i) {
    const TimePoint t = clock.now();
    EXPECT_GE(t, prev);
    prev = t;
  }
}

TEST(ToSeconds, Converts) { EXPECT_DOUBLE_EQ(to_seconds(std::chrono::milliseconds(1500)), 1.5); }

}  // namespace
}  // namespace sluice::base
