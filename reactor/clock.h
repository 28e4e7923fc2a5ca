// Public. task::Clock: a fake IReactorTime for tests (twisted.internet.task.Clock). Time stands
// still until advance() moves it; DelayedCalls behave exactly as on the Reactor (same TimerQueue).
#pragma once

#include <functional>
#include <vector>

#include "twist/reactor/delayed_call.h"
#include "twist/reactor/interfaces.h"

namespace twist::task {

// Not thread safe. An exception thrown by a call propagates out of advance() (after the other
// calls due in the same step have run).
class Clock : public IReactorTime, private TimerQueue::Owner {
 public:
  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;

  double seconds() const override { return now_; }
  DelayedCall callLater(double delaySeconds, UniqueFunction<void()> fn) override {
    return queue_.schedule(delaySeconds, std::move(fn));
  }
  std::vector<DelayedCall> getDelayedCalls() const { return queue_.pending(); }

  // Moves time forward by `amount` seconds (std::invalid_argument for NaN) and runs every call that
  // is then due, including the ones those calls schedule for no later than the new time.
  void advance(double amount);
  // advance() by each amount in turn.
  void pump(const std::vector<double>& amounts) {
    for (double a : amounts) advance(a);
  }

 private:
  double now() const override { return now_; }
  void wakeUpBy(double, double) override {}

  double now_ = 0;
  TimerQueue queue_{*this};
};

}  // namespace twist::task
