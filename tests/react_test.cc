// task::react: a coroutine as main, its result as the exit code.
#include "twist/reactor/react.h"

#include <gtest/gtest.h>

#include <csignal>
#include <stdexcept>

#include "tests/test_util.h"
#include "twist/reactor/task.h"

namespace twist {
namespace {

TEST(React, TheValueOfMainIsTheExitCode) {
  int code = task::react([](Reactor& r) -> Deferred<int> {
    co_await task::deferLater(r, 0.01, [] {});
    co_return 3;
  });
  EXPECT_EQ(code, 3);
  EXPECT_EQ(task::react([](Reactor&) -> Deferred<void> { co_return; }), 0);
}

TEST(React, AFailureOrAnExceptionIsOne) {
  EXPECT_EQ(task::react([](Reactor& r) -> Deferred<int> {
              co_await task::deferLater(r, 0, [] {});
              throw std::runtime_error("no luck");
            }),
            1);
  EXPECT_EQ(task::react([](Reactor&) -> Deferred<void> { throw std::logic_error("at once"); }), 1);
}

TEST(React, ASignalBeforeMainEndsCancelsItAndIsOne) {
  bool cancelled = false;
  int code = task::react([&](Reactor& r) -> Deferred<void> {
    r.callLater(0, [] { std::raise(SIGTERM); });
    Deferred<void> never([&](Deferred<void>&) { cancelled = true; });
    co_await never;
  });
  EXPECT_EQ(code, 1);
  EXPECT_TRUE(cancelled);
}

}  // namespace
}  // namespace twist
