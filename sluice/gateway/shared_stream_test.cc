#include "sluice/gateway/shared_stream.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "sluice/flow/error.h"

namespace sluice::gateway {
namespace {

SharedStream::Options options(size_t history_bytes = 1024, size_t joiner_chunks = 16,
                              flow::OverflowPolicy overflow = flow::OverflowPolicy::fail) {
  SharedStream::Options o;
  o.history_bytes = history_bytes;
  o.joiner.buffer_size = joiner_chunks;
  o.joiner.max_buffered_bytes = 1024;
  o.joiner.overflow = overflow;
  return o;
}

// Everything buffered in `s` now, concatenated; `end` says how the stream stood after it.
std::string drain(flow::BoundedStream& s, boost::system::error_code* end = nullptr) {
  std::string out;
  while (true) {
    auto chunk = s.try_pop();
    if (!chunk) {
      if (end != nullptr) *end = chunk.error();
      return out;
    }
    out += *chunk;
  }
}

std::string concat(const std::vector<SharedStream::Chunk>& chunks) {
  std::string out;
  for (const auto& c : chunks) out += *c;
  return out;
}

TEST(SharedStream, LateJoinerGetsTheReplayThenTheLiveChunksWithoutGapOrDuplicate) {
  SharedStream s(options());
  auto first = s.join();
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->replay.empty());
  EXPECT_TRUE(s.append("a"));
  EXPECT_TRUE(s.append("b"));
  auto late = s.join();
  ASSERT_TRUE(late);
  EXPECT_EQ(concat(late->replay), "ab");
  EXPECT_TRUE(s.append("c"));
  s.end(SharedStream::End::completed);

  boost::system::error_code end;
  EXPECT_EQ(drain(*first->stream, &end), "abc");
  EXPECT_EQ(end, flow::Errc::end_of_stream);
  EXPECT_EQ(drain(*late->stream, &end), "c");
  EXPECT_EQ(end, flow::Errc::end_of_stream);
  EXPECT_EQ(s.body(), "abc");
  const auto st = s.stats();
  EXPECT_EQ(st.joined, 2u);
  EXPECT_EQ(st.late_joins, 1u);
  EXPECT_EQ(st.replayed_bytes, 2u);
  EXPECT_EQ(st.bytes, 3u);
}

TEST(SharedStream, AReplayOverTheJoinersBoundIsTakenInRoundsUntilCaughtUp) {
  SharedStream::Options o = options();
  o.joiner.max_buffered_bytes = 4;
  SharedStream s(o);
  auto leader = s.join();
  ASSERT_TRUE(leader && leader->live);
  std::string leader_got;  // the leader keeps up (its buffer holds one chunk of 4 bytes)
  EXPECT_TRUE(s.append("aaaa"));
  leader_got += drain(*leader->stream);
  EXPECT_TRUE(s.append("bbbb"));
  leader_got += drain(*leader->stream);
  auto late = s.join();
  ASSERT_TRUE(late);
  EXPECT_FALSE(late->live);  // 8 bytes of replay > 4: not live yet
  EXPECT_EQ(concat(late->replay), "aaaabbbb");
  EXPECT_TRUE(s.append("cccc"));  // while it writes the first round: history only
  leader_got += drain(*leader->stream);
  EXPECT_EQ(drain(*late->stream), "");
  ASSERT_TRUE(s.catch_up(*late));
  EXPECT_EQ(concat(late->replay), "cccc");
  EXPECT_TRUE(late->live);
  EXPECT_TRUE(s.append("dddd"));
  s.end(SharedStream::End::completed);
  EXPECT_EQ(drain(*late->stream), "dddd");
  EXPECT_EQ(leader_got + drain(*leader->stream), "aaaabbbbccccdddd");
  EXPECT_EQ(s.stats().catch_up_rounds, 1u);
  EXPECT_EQ(s.stats().replayed_bytes, 12u);
}

TEST(SharedStream, CatchingUpFailsOnceTheHistoryIsGone) {
  SharedStream::Options o = options(10);
  o.joiner.max_buffered_bytes = 4;
  SharedStream s(o);
  auto leader = s.join();
  EXPECT_TRUE(s.append("123456"));
  auto late = s.join();
  ASSERT_TRUE(late && !late->live);
  EXPECT_TRUE(s.append("789012"));  // past the history bound
  EXPECT_FALSE(s.catch_up(*late));
}

TEST(SharedStream, OnEjectedCanBeSetAfterTheJoin) {
  SharedStream s(options(1024, 1));
  auto slow = s.join();
  auto other = s.join();
  ASSERT_TRUE(slow && other);
  int cut = 0;
  EXPECT_TRUE(s.set_on_ejected(slow->id, [&] { ++cut; }));
  EXPECT_TRUE(s.append("a"));
  (void)drain(*other->stream);
  EXPECT_TRUE(s.append("b"));  // the slow one's buffer of one chunk overflows
  EXPECT_EQ(cut, 1);
  EXPECT_FALSE(s.set_on_ejected(slow->id, [] {}));  // no longer registered
}

TEST(SharedStream, SlowJoinerIsEndedAloneAndNeverHoldsUpTheOthers) {
  SharedStream s(options(1024, 2));
  int ejected = 0;
  auto slow = s.join([&] { ++ejected; });
  auto fast = s.join([&] { ADD_FAILURE() << "the fast joiner was ejected"; });
  ASSERT_TRUE(slow && fast);
  std::string fast_got;
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(s.append(std::to_string(i)));  // never waits: the reader goes on
    fast_got += drain(*fast->stream);
  }
  s.end(SharedStream::End::completed);
  EXPECT_EQ(fast_got, "0123456789");
  boost::system::error_code end;
  (void)drain(*slow->stream, &end);
  EXPECT_EQ(end, flow::Errc::stream_overflow);
  EXPECT_EQ(s.stats().joiners_ended, 1u);
  EXPECT_EQ(ejected, 1);
}

TEST(SharedStream, DropPolicyKeepsASlowJoinersNewestChunks) {
  SharedStream s(options(1024, 2, flow::OverflowPolicy::drop_oldest));
  auto slow = s.join();
  ASSERT_TRUE(slow);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(s.append(std::to_string(i)));
  s.end(SharedStream::End::completed);
  EXPECT_EQ(drain(*slow->stream), "34");
  EXPECT_EQ(slow->stream->stats().dropped_chunks, 3u);
}

TEST(SharedStream, PastTheHistoryBoundTheStreamIsNeitherJoinableNorCacheable) {
  SharedStream s(options(10));
  auto j = s.join();
  ASSERT_TRUE(j);
  EXPECT_TRUE(s.append("123456"));
  EXPECT_TRUE(s.joinable());
  EXPECT_TRUE(s.append("789012"));  // 12 bytes > 10: the history goes
  EXPECT_FALSE(s.joinable());
  EXPECT_FALSE(s.join());
  EXPECT_EQ(s.stats().history_bytes, 0u);
  s.end(SharedStream::End::completed);
  EXPECT_FALSE(s.body());
  EXPECT_EQ(drain(*j->stream), "123456789012");  // the joiner had it all anyway
}

TEST(SharedStream, NobodyJoinedAndNobodyExpectedStopsTheReader) {
  SharedStream s(options(4));
  EXPECT_FALSE(s.append("12"));  // no joiner, no hold: nobody would read it
  EXPECT_EQ(s.state(), SharedStream::End::abandoned);
  EXPECT_FALSE(s.join());
}

TEST(SharedStream, AHoldKeepsTheStreamForCallersAboutToJoin) {
  auto s = std::make_shared<SharedStream>(options(4));
  int abandoned = 0;
  s->set_on_abandoned([&] { ++abandoned; });
  std::shared_ptr<void> waiter = s->hold();
  EXPECT_TRUE(s->append("12"));  // a caller holds it: it will join and get the replay
  auto leader = s->join();
  ASSERT_TRUE(leader);
  s->leave(leader->id);  // the leader's client left; the waiter has not joined yet
  EXPECT_EQ(abandoned, 0);
  auto late = s->join();
  ASSERT_TRUE(late);
  EXPECT_EQ(concat(late->replay), "12");
  waiter.reset();
  EXPECT_EQ(abandoned, 0);  // joined: it reads
  s->leave(late->id);
  EXPECT_EQ(abandoned, 1);
  EXPECT_FALSE(s->join()) << "nobody joins a stream nobody reads";
}

TEST(SharedStream, PastTheHistoryBoundWithNoJoinerTheReaderStopsDespiteHolds) {
  auto s = std::make_shared<SharedStream>(options(4));
  std::shared_ptr<void> waiter = s->hold();
  EXPECT_TRUE(s->append("12"));
  EXPECT_FALSE(s->append("345"));  // nobody could join it whole any more
}

TEST(SharedStream, LastJoinerLeavingAbandonsTheStreamOnce) {
  SharedStream s(options());
  int abandoned = 0;
  s.set_on_abandoned([&] { ++abandoned; });
  auto a = s.join();
  auto b = s.join();
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(s.append("x"));
  s.leave(a->id);
  EXPECT_EQ(abandoned, 0);
  EXPECT_TRUE(s.append("y"));  // b still reads
  s.leave(b->id);
  s.leave(b->id);  // twice: no effect
  EXPECT_EQ(abandoned, 1);
  EXPECT_FALSE(s.append("z"));
  s.end(SharedStream::End::abandoned);
  EXPECT_FALSE(s.join());
  EXPECT_FALSE(s.body());
}

TEST(SharedStream, AbandonedBeforeTheReaderSetItsCallbackCallsItAtOnce) {
  SharedStream s(options());
  auto a = s.join();
  ASSERT_TRUE(a);
  s.leave(a->id);
  int abandoned = 0;
  s.set_on_abandoned([&] { ++abandoned; });
  EXPECT_EQ(abandoned, 1);
}

TEST(SharedStream, AFailedStreamIsNeverJoinedNorStoredAndItsJoinersDrainThenEnd) {
  SharedStream s(options());
  auto j = s.join();
  ASSERT_TRUE(j);
  EXPECT_TRUE(s.append("partial"));
  s.end(SharedStream::End::failed, make_error_code(boost::system::errc::connection_reset));
  s.end(SharedStream::End::completed);  // the first end wins
  EXPECT_EQ(s.state(), SharedStream::End::failed);
  EXPECT_EQ(s.error(), boost::system::errc::connection_reset);
  EXPECT_FALSE(s.joinable());
  EXPECT_FALSE(s.join());
  EXPECT_FALSE(s.body());
  boost::system::error_code end;
  EXPECT_EQ(drain(*j->stream, &end), "partial");
  EXPECT_EQ(end, flow::Errc::end_of_stream);
}

TEST(SharedStream, JoiningACompletedStreamReplaysItAll) {
  SharedStream s(options());
  auto first = s.join();
  EXPECT_TRUE(s.append("ab"));
  s.end(SharedStream::End::completed);
  auto after = s.join();
  ASSERT_TRUE(after);
  EXPECT_EQ(concat(after->replay), "ab");
  boost::system::error_code end;
  EXPECT_EQ(drain(*after->stream, &end), "");
  EXPECT_EQ(end, flow::Errc::end_of_stream);
}

}  // namespace
}  // namespace sluice::gateway
