// Public. Timed helpers from twisted.internet.task: task::deferLater and task::LoopingCall, both
// on any IReactorTime (the Reactor, or a task::Clock in tests); and addTimeout for Deferreds.
#pragma once

#include <functional>
#include <type_traits>

#include "twist/reactor/deferred.h"
#include "twist/reactor/delayed_call.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/interfaces.h"

namespace twist {
namespace task {

// A Deferred that fires with fn()'s result `delaySeconds` from now (or with its exception).
// Cancelling the Deferred cancels the call.
template <class F>
auto deferLater(IReactorTime& clock, double delaySeconds, F fn) {
  using R = std::invoke_result_t<F>;
  auto call = std::make_shared<DelayedCall>();
  Deferred<R> d([call](Deferred<R>&) {
    if (call->active()) call->cancel();
  });
  *call = clock.callLater(delaySeconds, [d, fn = std::move(fn)]() mutable {
    try {
      if constexpr (std::is_void_v<R>) {
        fn();
        d.callback();
      } else {
        d.callback(fn());
      }
    } catch (...) {
      d.errback(Failure::current());
    }
  });
  return d;
}

}  // namespace task

// Cancels `d` if it has no result within `seconds` on `clock`; it then fails with TimeoutError
// (instead of CancelledError). Extends d's chain (Twisted's Deferred.addTimeout) and returns it.
template <class T>
Deferred<T> addTimeout(Deferred<T> d, IReactorTime& clock, double seconds) {
  auto timedOut = std::make_shared<bool>(false);
  DelayedCall timer = clock.callLater(seconds, [d, timedOut]() mutable {
    *timedOut = true;
    d.cancel();
  });
  d.addBoth([timer]() mutable {
    if (timer.active()) timer.cancel();
  });
  return d.addErrback([timedOut, seconds](const Failure& f) -> Failure {
    if (*timedOut && f.check<CancelledError>()) {
      return Failure::of(DeferredTimeoutError(seconds));
    }
    return f;
  });
}

namespace task {

// Calls a function every `interval` seconds (twisted.internet.task.LoopingCall). Calls are
// scheduled on the grid start + k * interval; when a call runs late and whole intervals were
// missed, they are skipped, not run in a burst, and withCount's function is told how many
// intervals passed since its last call. Stopped by stop(), by destruction, or by the function
// throwing. Not thread safe.
class LoopingCall {
 public:
  LoopingCall(IReactorTime& clock, UniqueFunction<void()> fn);
  // fn(count): count is the number of intervals since the previous call (1 unless some were
  // skipped). Twisted's LoopingCall.withCount.
  static LoopingCall withCount(IReactorTime& clock, UniqueFunction<void(int)> fn);
  ~LoopingCall();
  LoopingCall(LoopingCall&&) = delete;
  LoopingCall& operator=(LoopingCall&&) = delete;

  // Starts calling; the first call now (or after one interval if !now). The Deferred fires when
  // stop() is called, or errbacks with the function's exception (which also stops the loop).
  // Throws std::logic_error if already running, std::invalid_argument for a negative interval.
  Deferred<void> start(double intervalSeconds, bool now = true);
  // Stops; the Deferred from start() fires. Throws std::logic_error if not running.
  void stop();
  // Restarts the interval grid from now (the next call is one interval away).
  void reset();
  bool running() const { return running_; }
  double interval() const { return interval_; }
  // How many calls ran since start().
  long calls() const { return calls_; }

 private:
  LoopingCall(IReactorTime& clock, UniqueFunction<void(int)> fn, int);
  void run();
  void scheduleNext();

  IReactorTime& clock_;
  UniqueFunction<void(int)> fn_;
  bool running_ = false;
  double interval_ = 0;
  double start_ = 0;
  long lastIndex_ = 0;  // grid index of the previous call
  long calls_ = 0;
  DelayedCall next_;
  Deferred<void> deferred_;
};

}  // namespace task
}  // namespace twist
