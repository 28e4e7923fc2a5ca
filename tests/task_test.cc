// task::Clock (fake time), deferLater and task::LoopingCall, on the fake clock and on the real
// reactor.
#include "twist/reactor/task.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/test_util.h"
#include "twist/reactor/clock.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/reactor.h"

namespace twist {
namespace {

TEST(Clock, RunsCallsWhenAdvanced) {
  task::Clock clock;
  std::vector<int> order;
  clock.callLater(2, [&] { order.push_back(2); });
  DelayedCall one = clock.callLater(1, [&] { order.push_back(1); });
  DelayedCall cancelled = clock.callLater(1.5, [&] { order.push_back(99); });
  cancelled.cancel();
  EXPECT_EQ(clock.seconds(), 0);
  clock.advance(0.5);
  EXPECT_TRUE(order.empty());
  one.reset(0.25);  // now due at 0.75
  clock.advance(0.25);
  EXPECT_EQ(order, (std::vector<int>{1}));
  clock.advance(10);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  EXPECT_EQ(clock.seconds(), 10.75);
  EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST(Clock, CallsScheduledWhileAdvancingRunIfDue) {
  task::Clock clock;
  int runs = 0;
  clock.callLater(1, [&] {
    ++runs;
    clock.callLater(0, [&] { ++runs; });
    clock.callLater(5, [&] { ++runs; });
  });
  clock.advance(1);
  EXPECT_EQ(runs, 2);
  clock.pump({1, 1, 1, 1});  // t = 5: the call due at 6 waits
  EXPECT_EQ(runs, 2);
  clock.advance(1);
  EXPECT_EQ(runs, 3);
}

TEST(Clock, ExceptionsPropagateOutOfAdvance) {
  task::Clock clock;
  bool other = false;
  clock.callLater(1, [] { throw std::runtime_error("in a fake-clock call"); });
  clock.callLater(1, [&] { other = true; });
  EXPECT_THROW(clock.advance(1), std::runtime_error);
  EXPECT_TRUE(other);
}

TEST(DeferLater, FiresWithTheResultAndCancels) {
  task::Clock clock;
  int got = 0;
  task::deferLater(clock, 3, [] { return 5; }).addCallback([&](int v) {
    got = v;
    return v;
  });
  clock.advance(2.9);
  EXPECT_EQ(got, 0);
  clock.advance(0.1);
  EXPECT_EQ(got, 5);

  bool ran = false, cancelled = false;
  Deferred<void> d = task::deferLater(clock, 1, [&] { ran = true; });
  d.addErrback([&](const Failure& f) { cancelled = f.check<CancelledError>(); });
  d.cancel();
  clock.advance(5);
  EXPECT_FALSE(ran);
  EXPECT_TRUE(cancelled);
  EXPECT_TRUE(clock.getDelayedCalls().empty());
}

TEST(LoopingCall, CallsOnTheGridAndStops) {
  task::Clock clock;
  std::vector<double> times;
  task::LoopingCall lc(clock, [&] { times.push_back(clock.seconds()); });
  bool stopped = false;
  lc.start(1.0).addCallback([&] { stopped = true; });
  EXPECT_TRUE(lc.running());
  EXPECT_EQ(times, (std::vector<double>{0}));  // now = true
  clock.pump({0.5, 0.5, 1, 1});
  EXPECT_EQ(times, (std::vector<double>{0, 1, 2, 3}));
  lc.stop();
  EXPECT_TRUE(stopped);
  EXPECT_FALSE(lc.running());
  clock.advance(5);
  EXPECT_EQ(times.size(), 4u);
  EXPECT_THROW(lc.stop(), std::logic_error);
}

TEST(LoopingCall, NotNowWaitsOneInterval) {
  task::Clock clock;
  int calls = 0;
  task::LoopingCall lc(clock, [&] { ++calls; });
  lc.start(2.0, false);
  EXPECT_EQ(calls, 0);
  clock.advance(2);
  EXPECT_EQ(calls, 1);
  EXPECT_THROW(lc.start(1), std::logic_error);
}

TEST(LoopingCall, SkippedIntervalsAreCountedNotBurst) {
  task::Clock clock;
  std::vector<int> counts;
  auto lc = task::LoopingCall::withCount(clock, [&](int n) { counts.push_back(n); });
  lc.start(1.0);
  clock.advance(1);    // on time
  clock.advance(3.5);  // late: intervals 2, 3 and 4 passed; one call, told 3
  clock.advance(0.5);  // back on the grid at 5
  EXPECT_EQ(counts, (std::vector<int>{1, 1, 3, 1}));
  EXPECT_EQ(lc.calls(), 4);
}

TEST(LoopingCall, ExceptionStopsItAndErrbacks) {
  task::Clock clock;
  int calls = 0;
  task::LoopingCall lc(clock, [&] {
    if (++calls == 3) throw std::runtime_error("third call fails");
  });
  std::string error;
  lc.start(1).addErrback([&](const Failure& f) { error = f.getErrorMessage(); });
  clock.pump({1, 1, 1, 1});
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(error, "third call fails");
  EXPECT_FALSE(lc.running());
}

TEST(LoopingCall, StopFromInsideTheFunction) {
  task::Clock clock;
  int calls = 0;
  std::unique_ptr<task::LoopingCall> lc;
  lc = std::make_unique<task::LoopingCall>(clock, [&] {
    if (++calls == 2) lc->stop();
  });
  bool done = false;
  lc->start(1).addCallback([&] { done = true; });
  clock.pump({1, 1, 1});
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(done);
}

TEST(LoopingCall, NaNOrInfiniteIntervalsAndNaNTimeAreRefused) {
  task::Clock clock;
  int calls = 0;
  task::LoopingCall loop(clock, [&] { ++calls; });
  EXPECT_THROW(loop.start(std::nan("")), std::invalid_argument);
  EXPECT_THROW(loop.start(std::numeric_limits<double>::infinity()), std::invalid_argument);
  EXPECT_THROW(loop.start(-1), std::invalid_argument);
  EXPECT_FALSE(loop.running());
  EXPECT_EQ(calls, 0);
  EXPECT_THROW(clock.advance(std::nan("")), std::invalid_argument);
  EXPECT_THROW(clock.callLater(std::nan(""), [] {}), std::invalid_argument);
  EXPECT_EQ(clock.seconds(), 0);
}

TEST(LoopingCall, RunsOnTheRealReactor) {
  Reactor r(testing::quietOptions());
  int calls = 0;
  task::LoopingCall lc(r, [&] { ++calls; });
  lc.start(0.01);
  ASSERT_TRUE(testing::runUntil(r, [&] { return calls >= 5; }));
  lc.stop();
}

}  // namespace
}  // namespace twist
