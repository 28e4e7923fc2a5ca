#include "twist/reactor/task.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace twist::task {

LoopingCall::LoopingCall(IReactorTime& clock, UniqueFunction<void(int)> fn, int)
    : clock_(clock), fn_(std::move(fn)) {}

LoopingCall::LoopingCall(IReactorTime& clock, UniqueFunction<void()> fn)
    : LoopingCall(
          clock, [fn = std::move(fn)](int) mutable { fn(); }, 0) {}

LoopingCall LoopingCall::withCount(IReactorTime& clock, UniqueFunction<void(int)> fn) {
  return LoopingCall(clock, std::move(fn), 0);
}

LoopingCall::~LoopingCall() {
  if (next_.active()) next_.cancel();
}

Deferred<void> LoopingCall::start(double intervalSeconds, bool now) {
  if (running_) throw std::logic_error("LoopingCall::start: already running");
  if (!(intervalSeconds >= 0) || intervalSeconds > TimerQueue::kMaxDelay) {
    throw std::invalid_argument("LoopingCall::start: the interval must be a number from 0 to " +
                                std::to_string(TimerQueue::kMaxDelay) + " seconds");
  }
  running_ = true;
  interval_ = intervalSeconds;
  start_ = clock_.seconds();
  lastIndex_ = 0;
  calls_ = 0;
  deferred_ = Deferred<void>();
  Deferred<void> d = deferred_;
  if (now) {
    lastIndex_ = -1;  // the call at index 0 counts one interval
    run();
  } else {
    scheduleNext();
  }
  return d;
}

void LoopingCall::stop() {
  if (!running_) throw std::logic_error("LoopingCall::stop: not running");
  running_ = false;
  if (next_.active()) next_.cancel();
  Deferred<void> d = deferred_;
  d.callback();
}

void LoopingCall::reset() {
  if (!running_) throw std::logic_error("LoopingCall::reset: not running");
  if (next_.active()) next_.cancel();
  start_ = clock_.seconds();
  lastIndex_ = 0;
  scheduleNext();
}

void LoopingCall::run() {
  long index = 0;
  if (interval_ > 0) {
    // A little tolerance: a call due exactly on the grid must count as that grid point.
    index = static_cast<long>(std::floor((clock_.seconds() - start_) / interval_ + 1e-9));
  }
  int count = interval_ > 0 ? static_cast<int>(std::max(1L, index - lastIndex_)) : 1;
  lastIndex_ = std::max(index, lastIndex_ + (interval_ > 0 ? 0 : 1));
  ++calls_;
  try {
    fn_(count);
  } catch (...) {
    if (!running_) throw;  // stop() was called, then it threw: nothing left to report to
    running_ = false;
    Deferred<void> d = deferred_;
    d.errback(Failure::current());
    return;
  }
  if (running_) scheduleNext();
}

void LoopingCall::scheduleNext() {
  if (interval_ == 0) {
    next_ = clock_.callLater(0, [this] { run(); });
    return;
  }
  double now = clock_.seconds();
  long index = static_cast<long>(std::floor((now - start_) / interval_ + 1e-9)) + 1;
  index = std::max(index, lastIndex_ + 1);
  next_ =
      clock_.callLater(start_ + static_cast<double>(index) * interval_ - now, [this] { run(); });
}

}  // namespace twist::task
