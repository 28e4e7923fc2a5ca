// The reactor: DelayedCall semantics, run/stop life cycle, triggers, callFromThread, fairness.
#include "twist/reactor/reactor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/task.h"

namespace twist {
namespace {

using testing::LogCaptureScope;
using testing::quietOptions;
using testing::runUntil;

TEST(DelayedCall, RunsInDueOrderAndSameTimeInScheduleOrder) {
  Reactor r(quietOptions());
  std::vector<int> order;
  r.callLater(0.03, [&] { order.push_back(3); });
  r.callLater(0.01, [&] { order.push_back(1); });
  // Calls made with the same delay in one go are due at (nearly) the same time; force exactly
  // equal due times through reset to check first-in first-out.
  DelayedCall a = r.callLater(10, [&] { order.push_back(20); });
  DelayedCall b = r.callLater(10, [&] { order.push_back(21); });
  DelayedCall c = r.callLater(10, [&] { order.push_back(22); });
  double due = r.seconds() + 0.02;
  a.delay(due - a.getTime());
  b.delay(due - b.getTime());
  c.delay(due - c.getTime());
  ASSERT_EQ(a.getTime(), b.getTime());
  ASSERT_EQ(b.getTime(), c.getTime());
  ASSERT_TRUE(runUntil(r, [&] { return order.size() == 5; }));
  EXPECT_EQ(order, (std::vector<int>{1, 20, 21, 22, 3}));
}

TEST(DelayedCall, ZeroDelayCallsKeepScheduleOrder) {
  Reactor r(quietOptions());
  std::vector<int> order;
  for (int i = 0; i < 100; ++i) r.callLater(0, [&order, i] { order.push_back(i); });
  ASSERT_TRUE(runUntil(r, [&] { return order.size() == 100; }));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(DelayedCall, CancelStopsTheCall) {
  Reactor r(quietOptions());
  bool ran = false, other = false;
  DelayedCall d = r.callLater(0.01, [&] { ran = true; });
  r.callLater(0.02, [&] { other = true; });
  EXPECT_TRUE(d.active());
  d.cancel();
  EXPECT_FALSE(d.active());
  EXPECT_TRUE(d.cancelled());
  ASSERT_TRUE(runUntil(r, [&] { return other; }));
  EXPECT_FALSE(ran);
  EXPECT_TRUE(r.getDelayedCalls().empty());
}

TEST(DelayedCall, ErrorsAfterRunOrCancel) {
  Reactor r(quietOptions());
  bool ran = false;
  DelayedCall d = r.callLater(0, [&] { ran = true; });
  ASSERT_TRUE(runUntil(r, [&] { return ran; }));
  EXPECT_TRUE(d.called());
  EXPECT_FALSE(d.active());
  EXPECT_THROW(d.cancel(), AlreadyCalled);
  EXPECT_THROW(d.reset(1), AlreadyCalled);
  EXPECT_THROW(d.delay(1), AlreadyCalled);

  DelayedCall e = r.callLater(5, [] {});
  e.cancel();
  EXPECT_THROW(e.cancel(), AlreadyCancelled);
  EXPECT_THROW(e.reset(1), AlreadyCancelled);
  EXPECT_THROW(e.delay(1), AlreadyCancelled);

  DelayedCall empty;
  EXPECT_FALSE(empty.active());
  EXPECT_THROW(empty.cancel(), AlreadyCancelled);
}

TEST(DelayedCall, ResetAndDelayMoveTheDueTime) {
  Reactor r(quietOptions());
  std::vector<std::string> order;
  DelayedCall late = r.callLater(0.01, [&] { order.push_back("reset-later"); });
  DelayedCall early = r.callLater(100, [&] { order.push_back("reset-sooner"); });
  DelayedCall delayed = r.callLater(0.005, [&] { order.push_back("delayed"); });
  double before = late.getTime();
  late.reset(0.06);
  EXPECT_GT(late.getTime(), before + 0.04);
  early.reset(0.02);
  double d0 = delayed.getTime();
  delayed.delay(0.03);
  EXPECT_DOUBLE_EQ(delayed.getTime(), d0 + 0.03);
  ASSERT_TRUE(runUntil(r, [&] { return order.size() == 3; }));
  EXPECT_EQ(order, (std::vector<std::string>{"reset-sooner", "delayed", "reset-later"}));
}

TEST(DelayedCall, DoesNotRunEarly) {
  Reactor r(quietOptions());
  double start = r.seconds();
  double ranAt = 0;
  r.callLater(0.05, [&] { ranAt = r.seconds(); });
  ASSERT_TRUE(runUntil(r, [&] { return ranAt > 0; }));
  EXPECT_GE(ranAt - start, 0.05);
}

TEST(DelayedCall, CancelAndResetFromAnEarlierCallOfTheSameBatch) {
  Reactor r(quietOptions());
  std::vector<int> order;
  DelayedCall second, third;
  DelayedCall first = r.callLater(10, [&] {
    order.push_back(1);
    second.cancel();
    third.reset(0.01);
  });
  second = r.callLater(10, [&] { order.push_back(2); });
  third = r.callLater(10, [&] { order.push_back(3); });
  double due = r.seconds() + 0.01;
  for (DelayedCall* d : {&first, &second, &third}) d->delay(due - d->getTime());
  ASSERT_TRUE(runUntil(r, [&] { return order.size() == 2; }));
  EXPECT_EQ(order, (std::vector<int>{1, 3}));
  EXPECT_TRUE(third.called());
}

TEST(DelayedCall, GetDelayedCallsListsPendingEarliestFirst) {
  Reactor r(quietOptions());
  DelayedCall a = r.callLater(20, [] {});
  DelayedCall b = r.callLater(10, [] {});
  auto calls = r.getDelayedCalls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_TRUE(calls[0] == b);
  EXPECT_TRUE(calls[1] == a);
}

TEST(DelayedCall, HandleOutlivesReactor) {
  DelayedCall d;
  bool ran = false;
  {
    Reactor r(quietOptions());
    d = r.callLater(1, [&] { ran = true; });
  }
  EXPECT_FALSE(d.active());
  EXPECT_TRUE(d.cancelled());
  EXPECT_THROW(d.cancel(), AlreadyCancelled);
  EXPECT_THROW(d.reset(1), AlreadyCancelled);
  EXPECT_FALSE(ran);
}

TEST(DelayedCall, CancelReleasesCapturedState) {
  Reactor r(quietOptions());
  auto token = std::make_shared<int>(1);
  DelayedCall d = r.callLater(5, [token] {});
  EXPECT_EQ(token.use_count(), 2);
  d.cancel();
  EXPECT_EQ(token.use_count(), 1);
}

TEST(DelayedCall, ExceptionIsLoggedAndLoopGoesOn) {
  LogCaptureScope logs;
  Reactor r(quietOptions());
  bool after = false;
  r.callLater(0, [] { throw std::runtime_error("boom in a timer"); });
  r.callLater(0.01, [&] { after = true; });
  ASSERT_TRUE(runUntil(r, [&] { return after; }));
  EXPECT_EQ(logs->count("boom in a timer"), 1);
}

TEST(DelayedCall, ChronoDelay) {
  Reactor r(quietOptions());
  bool ran = false;
  DelayedCall d = r.callLater(std::chrono::milliseconds(10), [&] { ran = true; });
  EXPECT_NEAR(d.getTime() - r.seconds(), 0.01, 0.005);
  ASSERT_TRUE(runUntil(r, [&] { return ran; }));
}

TEST(DelayedCall, NaNDelaysAreRefusedAndTheQueueStaysIntact) {
  Reactor r(quietOptions());
  std::vector<int> order;
  DelayedCall a = r.callLater(0.02, [&] { order.push_back(1); });
  DelayedCall b = r.callLater(0.01, [&] { order.push_back(2); });
  EXPECT_THROW(r.callLater(std::nan(""), [] {}), std::invalid_argument);
  EXPECT_THROW(a.reset(std::nan("")), std::invalid_argument);
  EXPECT_THROW(a.delay(std::nan("")), std::invalid_argument);
  EXPECT_TRUE(a.active());
  EXPECT_EQ(r.getDelayedCalls().size(), 2u);
  a.cancel();  // the ordered set still finds it: nothing was corrupted
  ASSERT_TRUE(runUntil(r, [&] { return !b.active(); }));
  EXPECT_EQ(order, std::vector<int>{2});
  EXPECT_TRUE(r.getDelayedCalls().empty());
}

// Counts passes of the loop over `seconds` of wall time, each waiting up to 50 ms.
int loopPasses(Reactor& r, double seconds) {
  int passes = 0;
  double end = r.seconds() + seconds;
  while (r.seconds() < end) {
    r.iterate(0.05);
    ++passes;
  }
  return passes;
}

TEST(DelayedCall, HugeAndInfiniteDelaysAreClampedAndDoNotSpinTheLoop) {
  Reactor r(quietOptions());
  bool ran = false;
  DelayedCall inf = r.callLater(std::numeric_limits<double>::infinity(), [&] { ran = true; });
  DelayedCall huge = r.callLater(1e300, [&] { ran = true; });
  DelayedCall chrono = r.callLater(std::chrono::hours::max(), [&] { ran = true; });
  DelayedCall moved = r.callLater(1, [&] { ran = true; });
  moved.reset(std::numeric_limits<double>::infinity());
  for (const DelayedCall& d : {inf, huge, chrono, moved}) {
    EXPECT_TRUE(d.active());
    EXPECT_NEAR(d.getTime() - r.seconds(), TimerQueue::kMaxDelay, 1.0);
  }
  // An overflowing timeout used to become a negative one: the timer fired on every pass.
  EXPECT_LT(loopPasses(r, 0.3), 30);
  EXPECT_FALSE(ran);
  huge.delay(-std::numeric_limits<double>::infinity());  // now: runs on the next pass
  ASSERT_TRUE(runUntil(r, [&] { return ran; }));
  EXPECT_THROW(r.iterate(std::nan("")), std::invalid_argument);
}

TEST(Reactor, StopFromACallbackEndsRun) {
  Reactor r(quietOptions());
  bool stopped = false;
  r.callLater(0.01, [&] {
    EXPECT_TRUE(r.running());
    r.stop();
    EXPECT_FALSE(r.running());
    stopped = true;
  });
  r.run();
  EXPECT_TRUE(stopped);
  EXPECT_FALSE(r.running());
}

TEST(Reactor, MisuseIsAClearError) {
  Reactor r(quietOptions());
  EXPECT_THROW(r.stop(), ReactorNotRunning);
  bool checked = false;
  r.callWhenRunning([&] {
    EXPECT_THROW(r.run(), ReactorAlreadyRunning);
    EXPECT_THROW(r.iterate(), ReactorAlreadyRunning);
    r.stop();
    EXPECT_THROW(r.stop(), ReactorNotRunning);
    checked = true;
  });
  r.run();
  EXPECT_TRUE(checked);
  EXPECT_THROW(r.stop(), ReactorNotRunning);
  // A stopped reactor does not run again (documented in reactor.h).
  EXPECT_THROW(r.run(), ReactorNotRestartable);
}

TEST(Reactor, CallWhenRunningRunsAtStartupOrAtOnce) {
  Reactor r(quietOptions());
  std::vector<std::string> order;
  r.callWhenRunning([&] {
    order.push_back("first");
    r.callWhenRunning([&] { order.push_back("nested, at once"); });
    order.push_back("after nested");
    r.stop();
  });
  r.callWhenRunning([&] { order.push_back("second"); });
  r.run();
  EXPECT_EQ(order,
            (std::vector<std::string>{"first", "nested, at once", "after nested", "second"}));
}

TEST(Reactor, SystemEventTriggersRunByPhase) {
  Reactor r(quietOptions());
  std::vector<std::string> order;
  r.addSystemEventTrigger("after", "startup", [&] { order.push_back("after startup"); });
  r.addSystemEventTrigger("before", "startup", [&] { order.push_back("before startup"); });
  r.addSystemEventTrigger("during", "startup", [&] { order.push_back("during startup"); });
  r.addSystemEventTrigger("after", "shutdown", [&] { order.push_back("after shutdown"); });
  r.addSystemEventTrigger("during", "shutdown", [&] { order.push_back("during shutdown"); });
  r.addSystemEventTrigger("before", "shutdown", [&] { order.push_back("before shutdown"); });
  auto removed = r.addSystemEventTrigger("before", "shutdown", [&] { order.push_back("removed"); });
  r.removeSystemEventTrigger(removed);
  EXPECT_THROW(r.removeSystemEventTrigger(removed), std::invalid_argument);
  EXPECT_THROW(r.addSystemEventTrigger("sometime", "startup", [] {}), std::invalid_argument);
  r.callWhenRunning([&] { r.stop(); });
  r.run();
  EXPECT_EQ(order,
            (std::vector<std::string>{"before startup", "during startup", "after startup",
                                      "before shutdown", "during shutdown", "after shutdown"}));
}

TEST(Reactor, BeforeShutdownTriggersCanDelayTheRestWithADeferred) {
  Reactor r(quietOptions());
  std::vector<std::string> order;
  r.callWhenRunning([&] { r.stop(); });
  r.addSystemEventTrigger("before", "shutdown", [&]() -> Deferred<void> {
    order.push_back("before");
    // The loop keeps running meanwhile: timers (and connections) are still served.
    r.callLater(0.01, [&] { order.push_back("timer while draining"); });
    return task::deferLater(r, 0.05, [&] { order.push_back("drained"); });
  });
  r.addSystemEventTrigger("before", "shutdown", [&]() -> Deferred<void> {
    return fail<void>(Failure::of(std::runtime_error("a failing drain")));  // logged, not fatal
  });
  r.addSystemEventTrigger("during", "shutdown", [&] { order.push_back("during"); });
  r.addSystemEventTrigger("after", "shutdown", [&] { order.push_back("after"); });
  LogCaptureScope logs;
  r.run();
  EXPECT_EQ(order, (std::vector<std::string>{"before", "timer while draining", "drained", "during",
                                             "after"}));
  EXPECT_EQ(logs->count("a failing drain"), 1);
}

TEST(Reactor, ShutdownWaitsForBeforeTriggersAtMostTheShutdownTimeout) {
  Reactor::Options options = quietOptions();
  options.shutdownTimeout = 0.05;
  Reactor r(options);
  bool during = false;
  r.callWhenRunning([&] { r.stop(); });
  r.addSystemEventTrigger("before", "shutdown", [] { return Deferred<void>(); });  // never fires
  r.addSystemEventTrigger("during", "shutdown", [&] { during = true; });
  LogCaptureScope logs;
  r.run();
  EXPECT_TRUE(during);
  EXPECT_EQ(logs->count("still pending after"), 1);
}

TEST(Reactor, CustomSystemEvent) {
  Reactor r(quietOptions());
  int fired = 0;
  r.addSystemEventTrigger("during", "reload", [&] { ++fired; });
  r.fireSystemEvent("reload");
  r.fireSystemEvent("reload");
  EXPECT_EQ(fired, 2);
}

TEST(Reactor, RearmingZeroDelayCallDoesNotStarveOtherWork) {
  Reactor r(quietOptions());
  long spins = 0;
  bool other = false;
  std::function<void()> spin = [&] {
    ++spins;
    if (!other) r.callLater(0, spin);
  };
  r.callLater(0, spin);
  // A call due a little later, and a cross-thread wake-up (an I/O event on the loop).
  r.callLater(0.02, [&] { other = true; });
  ASSERT_TRUE(runUntil(
      r, [&] { return other; }, 5));
  bool woke = false;
  other = false;
  r.callLater(0, spin);
  std::thread t([&] {
    r.callFromThread([&] {
      woke = true;
      other = true;
    });
  });
  ASSERT_TRUE(runUntil(
      r, [&] { return woke; }, 5));
  t.join();
  EXPECT_GT(spins, 1);
}

TEST(Reactor, CallFromThreadRunsOnTheReactorThreadInOrder) {
  Reactor r(quietOptions());
  std::vector<int> got;
  std::thread::id loopThread = std::this_thread::get_id();
  bool sameThread = true;
  std::thread t([&] {
    for (int i = 0; i < 1000; ++i) {
      r.callFromThread([&, i] {
        got.push_back(i);
        sameThread = sameThread && std::this_thread::get_id() == loopThread;
      });
    }
  });
  t.join();  // queued before the loop ever runs
  ASSERT_TRUE(runUntil(r, [&] { return got.size() == 1000; }));
  EXPECT_TRUE(sameThread);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(got[i], i);
}

TEST(Reactor, SigtermStopsRunGracefully) {
  Reactor r;  // with signal handlers
  bool shutdownRan = false;
  r.addSystemEventTrigger("before", "shutdown", [&] { shutdownRan = true; });
  r.callWhenRunning([] { ::raise(SIGTERM); });
  r.run();
  EXPECT_TRUE(shutdownRan);
}

#ifndef NDEBUG
TEST(ReactorDeathTest, OffThreadCallAbortsInDebugBuilds) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Reactor r(quietOptions());
        std::thread t([&] { r.callLater(1, [] {}); });
        t.join();
      },
      "off the reactor's thread");
}
#endif

}  // namespace
}  // namespace twist
