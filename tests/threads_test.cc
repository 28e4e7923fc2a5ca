// Threads: callFromThread under load, the thread pool, deferToThread, blockingCallFromThread,
// and the pool being joined at shutdown. Also run under ThreadSanitizer, as every test is.
#include "twist/reactor/threads.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"
#include "twist/reactor/reactor.h"
#include "twist/reactor/task.h"
#include "twist/reactor/thread_pool.h"

namespace twist {
namespace {

using testing::quietOptions;
using testing::runUntil;

TEST(CallFromThread, EightThreadsTenThousandCallsEachArriveInPerThreadOrder) {
  Reactor r(quietOptions());
  constexpr int kThreads = 8, kCalls = 10000;
  std::vector<std::vector<int>> seen(kThreads);  // touched on the reactor thread only
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) {
      }
      for (int i = 0; i < kCalls; ++i) r.callFromThread([&seen, t, i] { seen[t].push_back(i); });
    });
  }
  auto total = [&] {
    size_t n = 0;
    for (auto& v : seen) n += v.size();
    return n;
  };
  ASSERT_TRUE(runUntil(
      r, [&] { return total() == size_t{kThreads} * kCalls; }, 60));
  for (auto& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(seen[t].size(), size_t{kCalls});
    for (int i = 0; i < kCalls; ++i) ASSERT_EQ(seen[t][i], i) << "thread " << t;
  }
}

TEST(ThreadPool, DeferToThreadDeliversResultsOnTheReactorThread) {
  Reactor r(quietOptions());
  std::thread::id reactorThread = std::this_thread::get_id();
  std::thread::id workerThread, callbackThread;
  int got = 0;
  deferToThread(r, [&] {
    workerThread = std::this_thread::get_id();
    return 6 * 7;
  }).addCallback([&](int v) {
    callbackThread = std::this_thread::get_id();
    got = v;
    return v;
  });
  ASSERT_TRUE(runUntil(r, [&] { return got != 0; }));
  EXPECT_EQ(got, 42);
  EXPECT_NE(workerThread, reactorThread);
  EXPECT_EQ(callbackThread, reactorThread);
}

TEST(ThreadPool, DeferToThreadExceptionBecomesTheFailure) {
  Reactor r(quietOptions());
  std::string error;
  deferToThread(r, []() -> int {
    throw std::runtime_error("worker failed");
  }).addErrback([&](const Failure& f) {
    error = f.getErrorMessage();
    return 0;
  });
  bool voidDone = false;
  deferToThread(r, [] {}).addCallback([&] { voidDone = true; });
  ASSERT_TRUE(runUntil(r, [&] { return !error.empty() && voidDone; }));
  EXPECT_EQ(error, "worker failed");
}

TEST(ThreadPool, RespectsItsSize) {
  Reactor r(quietOptions());
  r.suggestThreadPoolSize(2);
  std::atomic<int> running{0}, most{0}, done{0};
  for (int i = 0; i < 8; ++i) {
    r.callInThread([&] {
      int now = running.fetch_add(1) + 1;
      int m = most.load();
      while (now > m && !most.compare_exchange_weak(m, now)) {
      }
      for (volatile int spin = 0; spin < 100000; ++spin) {
      }
      running.fetch_sub(1);
      done.fetch_add(1);
    });
  }
  ASSERT_TRUE(runUntil(r, [&] { return done.load() == 8; }));
  EXPECT_LE(most.load(), 2);
  EXPECT_LE(r.getThreadPool().threads(), 2u);
}

TEST(ThreadPool, ShutdownWaitsForRunningWorkAndJoins) {
  Reactor r(quietOptions());
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<bool> started{false}, finished{false};
  // Outlives run(): the copies callLater holds refer to it.
  std::function<void()> stopOnceStarted = [&] {
    if (!started) {
      r.callLater(0.001, stopOnceStarted);
      return;
    }
    r.stop();
  };
  r.callWhenRunning([&] {
    r.callInThread([&] {
      started = true;
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return release; });
      finished = true;
    });
    stopOnceStarted();
  });
  r.addSystemEventTrigger("before", "shutdown", [&] {
    EXPECT_FALSE(finished.load());
    {
      std::lock_guard<std::mutex> lock(m);
      release = true;
    }
    cv.notify_all();
  });
  r.run();
  EXPECT_TRUE(finished.load());  // joined before run() returned
  EXPECT_TRUE(r.getThreadPool().stopped());
}

TEST(BlockingCallFromThread, ReturnsValuesDeferredResultsAndExceptions) {
  Reactor r(quietOptions());
  std::atomic<bool> done{false};
  int plain = 0, deferred = 0;
  std::string error;
  std::thread t([&] {
    plain = blockingCallFromThread(r, [&] { return r.isInReactorThread() ? 1 : -1; });
    deferred =
        blockingCallFromThread(r, [&] { return task::deferLater(r, 0.01, [] { return 2; }); });
    try {
      blockingCallFromThread(r, []() -> int { throw std::runtime_error("on the reactor"); });
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
    blockingCallFromThread(r, [] {});
    done = true;
  });
  ASSERT_TRUE(runUntil(r, [&] { return done.load(); }));
  t.join();
  EXPECT_EQ(plain, 1);
  EXPECT_EQ(deferred, 2);
  EXPECT_EQ(error, "on the reactor");
  EXPECT_THROW(blockingCallFromThread(r, [] { return 0; }), std::logic_error);
}

TEST(BlockingCallFromThread, APoolThreadWaitingAtShutdownFailsAndTheShutdownFinishes) {
  Reactor r(quietOptions());
  std::atomic<bool> failedWithShutdown{false};
  r.callWhenRunning([&] {
    r.callInThread([&] {
      try {
        // Runs on the reactor thread, which stops while this thread waits for the result.
        blockingCallFromThread(r, [&] {
          r.stop();
          return Deferred<int>();  // never fires
        });
      } catch (const ReactorShutdownError&) {
        failedWithShutdown = true;
      }
    });
  });
  r.run();  // used to deadlock: the reactor joined the pool while the worker waited for it
  EXPECT_TRUE(failedWithShutdown.load());
}

TEST(BlockingCallFromThread, ACallQueuedDuringShutdownFailsWithoutRunning) {
  Reactor r(quietOptions());
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::atomic<bool> waiting{false}, failedWithShutdown{false}, ran{false};
  std::function<void()> stopWhenWaiting = [&] {
    if (!waiting) {
      r.callLater(0.001, stopWhenWaiting);
      return;
    }
    r.stop();
  };
  r.callWhenRunning([&] {
    r.callInThread([&] {
      {
        std::unique_lock<std::mutex> lock(m);
        waiting = true;
        cv.wait(lock, [&] { return release; });
      }
      try {
        blockingCallFromThread(r, [&] { ran = true; });
      } catch (const ReactorShutdownError&) {
        failedWithShutdown = true;
      }
    });
    stopWhenWaiting();
  });
  // The worker asks for the reactor only once the reactor has started to shut down.
  r.addSystemEventTrigger("before", "shutdown", [&] {
    std::lock_guard<std::mutex> lock(m);
    release = true;
    cv.notify_all();
  });
  r.run();
  EXPECT_TRUE(failedWithShutdown.load());
  EXPECT_FALSE(ran.load());
  // After the shutdown: refused at once.
  std::atomic<bool> refused{false};
  std::thread late([&] {
    try {
      blockingCallFromThread(r, [] { return 1; });
    } catch (const ReactorShutdownError&) {
      refused = true;
    }
  });
  late.join();
  EXPECT_TRUE(refused.load());
}

TEST(DeferToThread, ResultsThatArriveDuringShutdownAreDelivered) {
  Reactor r(quietOptions());
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::vector<std::string> order;
  r.callWhenRunning([&] {
    deferToThread(r,
                  [&] {
                    std::unique_lock<std::mutex> lock(m);
                    cv.wait(lock, [&] { return release; });
                    return 42;
                  })
        .then([&](int v) { order.push_back("result " + std::to_string(v)); },
              [&](const Failure& f) { order.push_back("failure " + f.toString()); });
    r.stop();
  });
  r.addSystemEventTrigger("before", "shutdown", [&] {
    order.push_back("before shutdown");
    std::lock_guard<std::mutex> lock(m);
    release = true;  // the result now arrives while the reactor shuts down
    cv.notify_all();
  });
  r.addSystemEventTrigger("during", "shutdown", [&] { order.push_back("during shutdown"); });
  r.run();
  EXPECT_EQ(order, (std::vector<std::string>{"before shutdown", "result 42", "during shutdown"}));
}

}  // namespace
}  // namespace twist
