// Deferred: Twisted's callback-chain semantics, helpers, and C++20 coroutines.
#include "twist/reactor/deferred.h"

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "twist/reactor/clock.h"
#include "twist/reactor/function.h"
#include "twist/reactor/task.h"

namespace twist {
namespace {

using testing::LogCaptureScope;

TEST(Deferred, CallbacksRunInOrderOnTheValue) {
  Deferred<int> d;
  std::vector<int> seen;
  d.addCallback([&](int v) {
    seen.push_back(v);
    return v + 1;
  });
  d.addCallback([&](int v) {
    seen.push_back(v);
    return v * 10;
  });
  EXPECT_FALSE(d.called());
  d.callback(1);
  EXPECT_TRUE(d.called());
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  int last = 0;
  d.addCallback([&](int v) {  // added after the result: runs at once on the current value
    last = v;
    return v;
  });
  EXPECT_EQ(last, 20);
}

TEST(Deferred, ACallbackMayChangeTheType) {
  Deferred<int> d;
  std::string got;
  Deferred<std::string> s = d.then([](int v) { return std::to_string(v) + "!"; });
  s.addCallback([&](std::string v) {
    got = v;
    return v;
  });
  d.callback(42);
  EXPECT_EQ(got, "42!");
  // The int Deferred handed its chain on: adding to it again is a clear error.
  EXPECT_THROW(d.addCallback([](int v) { return v; }), std::logic_error);
}

TEST(Deferred, ExceptionsBecomeFailuresAndErrbacksRecover) {
  Deferred<int> d;
  std::vector<std::string> trace;
  d.addCallback([&](int) -> int { throw std::runtime_error("bad value"); });
  d.addCallback([&](int v) {
    trace.push_back("skipped callback");
    return v;
  });
  d.addErrback([&](const Failure& f) {
    trace.push_back("errback: " + f.getErrorMessage());
    EXPECT_TRUE(f.check<std::runtime_error>());
    return 7;  // recover
  });
  d.addCallback([&](int v) {
    trace.push_back("recovered with " + std::to_string(v));
    return v;
  });
  d.callback(1);
  EXPECT_EQ(trace, (std::vector<std::string>{"errback: bad value", "recovered with 7"}));
}

TEST(Deferred, ErrbackCanKeepFailing) {
  Deferred<int> d;
  int errbacks = 0;
  d.addErrback([&](const Failure& f) -> Failure {
    ++errbacks;
    return f;
  });
  d.addErrback([&](const Failure& f) -> int {
    ++errbacks;
    f.trap<ConnectionDone>();  // not a ConnectionDone: rethrows
    return 0;
  });
  bool sawLost = false;
  d.addErrback([&](const Failure& f) {
    sawLost = f.check<ConnectionLost>();
    return -1;
  });
  d.errback(ConnectionLost::fromErrno(ECONNRESET));
  EXPECT_EQ(errbacks, 2);
  EXPECT_TRUE(sawLost);
}

TEST(Deferred, AddCallbacksRunsExactlyOneOfThePair) {
  Deferred<int> d;
  std::string which;
  d.addCallbacks([&](int) -> int { throw std::runtime_error("from the callback"); },
                 [&](const Failure&) {
                   which += "eb";
                   return 0;
                 });
  d.addErrback([&](const Failure& f) {
    which += "next-eb:" + f.getErrorMessage();
    return 0;
  });
  d.callback(1);
  EXPECT_EQ(which, "next-eb:from the callback");
}

TEST(Deferred, AddBothRunsOnValueAndFailure) {
  int cleanups = 0;
  Deferred<int> ok;
  ok.addBoth([&] { ++cleanups; });
  ok.callback(1);
  Deferred<int> bad;
  bad.addBoth([&] { ++cleanups; });
  bad.addErrback([](const Failure&) { return 0; });
  bad.errback(std::runtime_error("x"));
  EXPECT_EQ(cleanups, 2);
}

TEST(Deferred, ChainWaitsForANestedDeferred) {
  Deferred<int> outer;
  Deferred<int> inner;
  std::vector<int> seen;
  outer.addCallback([&](int v) {
    seen.push_back(v);
    return inner;
  });
  outer.addCallback([&](int v) {
    seen.push_back(v);
    return v;
  });
  outer.callback(1);
  EXPECT_EQ(seen, (std::vector<int>{1}));
  EXPECT_FALSE(outer.hasResult());
  inner.callback(2);
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  EXPECT_TRUE(outer.hasResult());
}

TEST(Deferred, NestedDeferredOfAnotherType) {
  Deferred<int> d;
  Deferred<std::string> later;
  std::string got;
  d.then([&](int) { return later; }).then([&](std::string s) {
    got = s;
    return s.size();
  });
  d.callback(0);
  EXPECT_EQ(got, "");
  later.callback("done");
  EXPECT_EQ(got, "done");
}

TEST(Deferred, ACallbackMayReplaceTheDeferredThatIsRunning) {
  // A protocol that hands out "the next line" keeps one Deferred and replaces it from inside the
  // callback of the previous one; the chain that is running must not follow the replacement.
  std::optional<Deferred<int>> slot(std::in_place);
  std::vector<int> seen;
  bool laterRan = false;
  slot->addCallback([&](int v) {
    seen.push_back(v);
    slot = Deferred<int>();  // replaces the Deferred whose chain is running
    slot->addCallback([&](int w) {
      laterRan = true;
      return w;
    });
    return v;
  });
  slot->callback(1);
  EXPECT_EQ(seen, (std::vector<int>{1}));
  EXPECT_FALSE(laterRan) << "the new Deferred has no result yet";
  slot->callback(2);
  EXPECT_TRUE(laterRan);
}

TEST(Deferred, CallingTwiceIsAnError) {
  Deferred<int> d;
  d.callback(1);
  EXPECT_THROW(d.callback(2), AlreadyCalledError);
  EXPECT_THROW(d.errback(std::runtime_error("x")), AlreadyCalledError);
}

TEST(Deferred, CancelRunsTheCancellerAndFailsWithCancelledError) {
  bool cancellerRan = false;
  Deferred<int> d([&](Deferred<int>&) { cancellerRan = true; });
  bool cancelled = false;
  d.addErrback([&](const Failure& f) {
    cancelled = f.check<CancelledError>();
    return 0;
  });
  d.cancel();
  EXPECT_TRUE(cancellerRan);
  EXPECT_TRUE(cancelled);
  d.callback(5);  // the operation finishing late is ignored after a cancel
}

TEST(Deferred, CancelWhileWaitingCancelsTheNestedDeferred) {
  Deferred<int> inner;
  Deferred<int> outer;
  outer.addCallback([&](int) { return inner; });
  outer.callback(1);
  bool outerCancelled = false;
  outer.addErrback([&](const Failure& f) {
    outerCancelled = f.check<CancelledError>();
    return 0;
  });
  outer.cancel();
  EXPECT_TRUE(inner.called());
  EXPECT_TRUE(outerCancelled);
}

TEST(Deferred, UnhandledFailureIsLoggedWhenTheDeferredDies) {
  LogCaptureScope logs;
  {
    Deferred<int> d;
    d.errback(std::runtime_error("nobody handled me"));
  }
  EXPECT_EQ(logs->count("Unhandled error in Deferred"), 1);
  EXPECT_EQ(logs->count("nobody handled me"), 1);
  {
    Deferred<int> d;
    d.errback(std::runtime_error("handled"));
    d.addErrback([](const Failure&) { return 0; });
  }
  EXPECT_EQ(logs->count("handled"), 1);  // only the first one
}

TEST(Deferred, VoidDeferred) {
  Deferred<void> d;
  int calls = 0;
  d.addCallback([&] { ++calls; });
  d.addCallback([&] { ++calls; });
  d.callback();
  EXPECT_EQ(calls, 2);
  Deferred<int> toInt = succeed().then([] { return 3; });
  int v = 0;
  toInt.addCallback([&](int x) {
    v = x;
    return x;
  });
  EXPECT_EQ(v, 3);
}

TEST(Deferred, MoveOnlyValues) {
  Deferred<std::unique_ptr<int>> d;
  int got = 0;
  d.addCallback([](std::unique_ptr<int> p) {
    *p += 1;
    return p;
  });
  d.addCallback([&](std::unique_ptr<int> p) {
    got = *p;
    return p;
  });
  d.callback(std::make_unique<int>(41));
  EXPECT_EQ(got, 42);
}

TEST(Deferred, SucceedFailGatherAndList) {
  std::vector<int> all;
  std::vector<Deferred<int>> ds = {Deferred<int>(), succeed(2), Deferred<int>()};
  gatherResults(ds).then([&](std::vector<int> v) {
    all = v;
    return v;
  });
  ds[2].callback(3);
  EXPECT_TRUE(all.empty());
  ds[0].callback(1);
  EXPECT_EQ(all, (std::vector<int>{1, 2, 3}));

  std::string firstError;
  std::vector<Deferred<int>> es = {Deferred<int>(),
                                   fail<int>(Failure::of(std::runtime_error("e1")))};
  gatherResults(es).addErrback([&](const Failure& f) {
    firstError = f.getErrorMessage();
    return std::vector<int>{};
  });
  EXPECT_EQ(firstError, "e1");
  es[0].errback(std::runtime_error("e2"));  // consumed, not logged as unhandled

  std::vector<Outcome<int>> outcomes;
  std::vector<Deferred<int>> ls = {succeed(1), fail<int>(Failure::of(std::runtime_error("no")))};
  DeferredList(ls).then([&](std::vector<Outcome<int>> v) {
    outcomes = std::move(v);
    return 0;
  });
  ASSERT_EQ(outcomes.size(), 2u);
  EXPECT_EQ(std::get<0>(outcomes[0]), 1);
  EXPECT_EQ(std::get<1>(outcomes[1]).getErrorMessage(), "no");
}

// ---- coroutines ----

Deferred<int> addLater(Deferred<int> a, Deferred<int> b) {
  int x = co_await a;
  int y = co_await b;
  co_return x + y;
}

Deferred<std::string> describe(Deferred<int> d) {
  try {
    int v = co_await d;
    co_return "value " + std::to_string(v);
  } catch (const ConnectionLost& e) {
    co_return std::string("lost: ") + e.what();
  }
}

Deferred<void> throwsAfterAwait(Deferred<int> d) {
  co_await d;
  throw std::runtime_error("thrown in a coroutine");
}

// A chain of 100,000 callbacks, each returning a Deferred: the first pending (the chain waits),
// the rest already fired when the chain reaches them (their results are taken at once).
TEST(Deferred, AChainOfAHundredThousandReturnedDeferreds) {
  constexpr int kSteps = 100000;
  std::vector<Deferred<int>> gates(kSteps);
  Deferred<int> head = succeed(0);
  Deferred<int> d = head;
  for (int i = 0; i < kSteps; ++i) {
    d.addCallback(
        [&gates, i](int v) { return gates[i].addCallback([v](int x) { return v + x; }); });
  }
  int result = -1;
  d.addCallback([&](int v) {
    result = v;
    return v;
  });
  // Fire from the last gate to the first: each step waits on a gate that has not fired yet...
  for (int i = kSteps - 1; i > 0; --i) gates[i].callback(1);
  EXPECT_EQ(result, -1);
  gates[0].callback(1);  // ...until the first, which lets the whole chain run in one go
  EXPECT_EQ(result, kSteps);
}

TEST(Deferred, WaitingChainsOfAHundredThousandUnwindWithoutRecursion) {
  // d[i]'s callback returns d[i+1], which has not fired: each waits on the next. When the last
  // fires, every waiter resumes in turn; that used to recurse once per Deferred and overflow
  // the stack at about 17,500.
  constexpr int kDepth = 100000;
  std::vector<Deferred<int>> ds(kDepth);
  for (int i = 0; i + 1 < kDepth; ++i) {
    Deferred<int> next = ds[i + 1];
    ds[i].addCallback([next](int) { return next; });
  }
  for (int i = 0; i + 1 < kDepth; ++i) ds[i].callback(0);  // each now waits on the next
  int result = 0;
  ds[0].addCallback([&](int v) {
    result = v;
    return v;
  });
  ds[kDepth - 1].callback(7);
  EXPECT_EQ(result, 7);

  std::vector<Deferred<int>> chained(kDepth);
  for (int i = 0; i + 1 < kDepth; ++i) chained[i].chainDeferred(chained[i + 1]);
  int last = 0;
  chained[kDepth - 1].addCallback([&](int v) {
    last = v;
    return v;
  });
  chained[0].callback(9);
  EXPECT_EQ(last, 9);
}

TEST(Deferred, CallbacksMayBeMoveOnly) {
  Deferred<int> d;
  auto owned = std::make_unique<int>(40);
  int seen = 0;
  d.addCallback([p = std::move(owned)](int v) {
     return v + *p;
   }).addErrback([p = std::make_unique<int>(0)](const Failure&) { return *p; });
  d.then([&seen, keep = std::make_unique<int>(1)](int v) { seen = v + *keep; });
  d.callback(1);
  EXPECT_EQ(seen, 42);
  task::Clock clock;
  int ran = 0;
  clock.callLater(1, [p = std::make_unique<int>(7), &ran] { ran = *p; });
  clock.advance(1);
  EXPECT_EQ(ran, 7);
}

TEST(UniqueFunction, HoldsSmallAndLargeCallablesAndMoves) {
  UniqueFunction<int(int)> empty;
  EXPECT_FALSE(empty);
  EXPECT_THROW(empty(1), std::bad_function_call);
  std::function<int(int)> none;
  UniqueFunction<int(int)> fromEmpty = none;
  EXPECT_FALSE(fromEmpty);
  UniqueFunction<int(int)> small = [](int x) { return x + 1; };
  std::array<char, 200> big{};
  big[199] = 5;
  UniqueFunction<int(int)> large = [big](int x) { return x + big[199]; };  // on the heap
  EXPECT_EQ(small(1), 2);
  EXPECT_EQ(large(1), 6);
  UniqueFunction<int(int)> moved = std::move(large);
  EXPECT_FALSE(large);  // NOLINT: checking the moved-from state on purpose
  EXPECT_EQ(moved(2), 7);
  moved = std::move(small);
  EXPECT_EQ(moved(2), 3);
  auto counter = std::make_shared<int>(0);
  {
    UniqueFunction<void()> f = [counter] { ++*counter; };
    EXPECT_EQ(counter.use_count(), 2);
  }
  EXPECT_EQ(counter.use_count(), 1);  // destroyed with the holder
}

TEST(Coroutines, CancellingACoroutineCancelsWhatItAwaitsAndStopsIt) {
  bool awaitedCancelled = false;
  bool wentOn = false;
  Deferred<int> awaited([&](Deferred<int>&) { awaitedCancelled = true; });
  auto work = [&]() -> Deferred<int> {
    int v = co_await awaited;
    wentOn = true;
    co_return v;
  };
  Deferred<int> d = work();
  Failure reason;
  d.addErrback([&](const Failure& f) {
    reason = f;
    return 0;
  });
  d.cancel();
  EXPECT_TRUE(awaitedCancelled);
  EXPECT_FALSE(wentOn) << "the coroutine went on after it was cancelled";
  EXPECT_TRUE(reason.check<CancelledError>()) << reason.toString();
}

TEST(Coroutines, ATimedOutCoroutineStopsWorking) {
  task::Clock clock;
  int steps = 0;
  auto work = [&]() -> Deferred<void> {
    for (int i = 0; i < 10; ++i) {
      co_await task::deferLater(clock, 1, [] {});
      ++steps;
    }
  };
  Deferred<void> d = addTimeout(work(), clock, 2.5);
  Failure reason;
  d.addErrback([&](const Failure& f) { reason = f; });
  clock.pump({1, 1, 1, 1, 1, 1});
  EXPECT_EQ(steps, 2) << "the work went on after the timeout";
  EXPECT_TRUE(reason.check<DeferredTimeoutError>()) << reason.toString();
  EXPECT_FALSE(reason.check<ConnectError>()) << "nothing was connecting";
}

TEST(Failure, ErrorsCarryTheirOsErrorAndCommonReasonsArePrebuilt) {
  ConnectionLost reset = ConnectionLost::fromErrno(ECONNRESET);
  EXPECT_EQ(reset.code(), std::errc::connection_reset);
  EXPECT_EQ(reset.osError(), ECONNRESET);
  EXPECT_NE(std::string(reset.what()).find("reset"), std::string::npos);
  EXPECT_FALSE(ConnectionLost::reactorShutdown().code());
  EXPECT_EQ(ConnectionRefusedError().code(), std::errc::connection_refused);
  EXPECT_EQ(TimeoutError::fromErrno(ETIMEDOUT).code(), std::errc::timed_out);
  EXPECT_EQ(CannotListenError::fromErrno("::1", 80, EACCES).code(), std::errc::permission_denied);
  EXPECT_EQ(ConnectBindError("127.0.0.1:1", "in use", osErrorCode(EADDRINUSE)).osError(),
            EADDRINUSE);

  const Failure& done = ConnectionDone::failure();
  EXPECT_EQ(&done, &ConnectionDone::failure()) << "one prebuilt Failure, not one per close";
  EXPECT_TRUE(done.check<ConnectionDone>());
  EXPECT_TRUE(done.check<ConnectionClosed>());
  EXPECT_FALSE(done.check<ConnectionLost>());
  EXPECT_TRUE(ConnectionAborted::failure().check<ConnectionLost>());
  Failure copy = done;
  EXPECT_EQ(copy.get<ConnectionDone>(), done.get<ConnectionDone>()) << "copies share the error";

  Failure odd = [] {
    try {
      throw 42;
    } catch (...) {
      return Failure::current();
    }
  }();
  EXPECT_TRUE(odd.check<int>());
  EXPECT_FALSE(odd.check<std::exception>());
  EXPECT_EQ(odd.typeName(), "int");
  EXPECT_EQ(Failure::of(DeferredTimeoutError(2.5)).getErrorMessage(),
            "Deferred timed out after 2.5 seconds.");
}

TEST(Coroutines, AwaitValues) {
  Deferred<int> a, b;
  Deferred<int> sum = addLater(a, b);
  EXPECT_FALSE(sum.called());
  a.callback(2);
  EXPECT_FALSE(sum.called());
  b.callback(40);
  int got = 0;
  sum.addCallback([&](int v) {
    got = v;
    return v;
  });
  EXPECT_EQ(got, 42);
}

TEST(Coroutines, AwaitAnAlreadyFiredDeferredDoesNotSuspend) {
  int got = 0;
  addLater(succeed(1), succeed(2)).addCallback([&](int v) {
    got = v;
    return v;
  });
  EXPECT_EQ(got, 3);
}

TEST(Coroutines, AwaitedFailureIsThrownAndCanBeCaught) {
  Deferred<int> d;
  std::string got;
  describe(d).addCallback([&](std::string s) {
    got = s;
    return s;
  });
  d.errback(ConnectionLost::fromErrno(ECONNRESET));
  EXPECT_NE(got.find("lost: "), std::string::npos) << got;
}

TEST(Coroutines, EscapingExceptionBecomesTheFailure) {
  Deferred<int> d;
  std::string error;
  throwsAfterAwait(d).addErrback([&](const Failure& f) { error = f.getErrorMessage(); });
  d.callback(1);
  EXPECT_EQ(error, "thrown in a coroutine");
}

Deferred<int> sleeper(task::Clock& clock) {
  co_await task::deferLater(clock, 5, [] {});
  int v = co_await task::deferLater(clock, 1, [] { return 7; });
  co_return v * 6;
}

TEST(Coroutines, AwaitTimersOnAFakeClock) {
  task::Clock clock;
  int got = 0;
  sleeper(clock).addCallback([&](int v) {
    got = v;
    return v;
  });
  clock.advance(5);
  EXPECT_EQ(got, 0);
  clock.advance(1);
  EXPECT_EQ(got, 42);
}

}  // namespace
}  // namespace twist
