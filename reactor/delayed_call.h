// Public. DelayedCall: the handle callLater returns (Twisted's IDelayedCall), and TimerQueue, the
// ordered set of pending calls that a Reactor (or the fake task::Clock) drives. IReactorTime is
// in reactor/interfaces.h.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <vector>

#include "twist/reactor/function.h"

namespace twist {

class TimerQueue;

namespace detail {
struct DelayedCallState;
}

// Handle to one scheduled call. Copyable; copies refer to the same call. Safe to keep after the
// call ran, was cancelled, or after its reactor was destroyed (then it counts as cancelled).
// Not thread safe: use it on its reactor's thread.
class DelayedCall {
 public:
  DelayedCall() = default;  // refers to no call: active() is false, the rest throw AlreadyCancelled

  // Seconds (on the owner's clock) at which the call is due.
  double getTime() const;
  // Stops the call. Throws AlreadyCalled if it ran, AlreadyCancelled if it was cancelled.
  void cancel();
  // Makes it due `secondsFromNow` from now. Throws like cancel(), and std::invalid_argument for
  // NaN; a negative delay means now, a huge one is clamped to TimerQueue::kMaxDelay.
  void reset(double secondsFromNow);
  // Moves its due time later by `seconds` (earlier if negative; never before now). Throws like
  // reset().
  void delay(double seconds);
  // True until it runs or is cancelled.
  bool active() const;
  bool called() const;
  bool cancelled() const;

  bool operator==(const DelayedCall& other) const { return state_ == other.state_; }

 private:
  friend class TimerQueue;
  explicit DelayedCall(std::shared_ptr<detail::DelayedCallState> s) : state_(std::move(s)) {}
  detail::DelayedCallState& checkedState() const;

  std::shared_ptr<detail::DelayedCallState> state_;
};

namespace detail {
struct DelayedCallState : std::enable_shared_from_this<DelayedCallState> {
  enum class Status { Pending, Called, Cancelled };
  double time = 0;
  uint64_t seq = 0;  // schedule order: breaks ties so equal times run first-in first-out
  UniqueFunction<void()> fn;
  Status status = Status::Pending;
  bool queued = false;          // in its queue's ordered set
  TimerQueue* queue = nullptr;  // null once the queue is gone
};
}  // namespace detail

// Pending calls ordered by (time, schedule order). The owner supplies the clock and is told
// when the earliest due time may have moved earlier, so it can re-arm its wake-up.
// Not thread safe.
class TimerQueue {
 public:
  class Owner {
   public:
    virtual double now() const = 0;
    // A call was scheduled for `time` (`now` is the owner's time when it was scheduled, read
    // once by the queue); wake up no later than then.
    virtual void wakeUpBy(double time, double now) = 0;

   protected:
    ~Owner() = default;
  };

  // The longest delay a call can have (about 31 years): longer ones, and infinity, are clamped
  // to it, so that every due time converts to a valid timeout.
  static constexpr double kMaxDelay = 1e9;

  explicit TimerQueue(Owner& owner) : owner_(owner) {}
  ~TimerQueue();  // pending calls become cancelled; their handles stay safe
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  // Throws std::invalid_argument when delaySeconds is NaN; clamps it to [0, kMaxDelay].
  DelayedCall schedule(double delaySeconds, UniqueFunction<void()> fn);

  // Runs the calls due at `now` that were scheduled before this call began, in order. Calls they
  // schedule (even with delay 0) wait for the next runDue, so a re-arming callback cannot starve
  // the owner's I/O. `onError` is called (inside a catch block) when a call throws.
  // Returns how many calls ran.
  size_t runDue(double now, const std::function<void()>& onError);

  // Earliest due time, or a negative value when nothing is pending.
  double nextTime() const;
  bool empty() const { return calls_.empty(); }
  size_t size() const { return calls_.size(); }
  std::vector<DelayedCall> pending() const;

 private:
  friend class DelayedCall;
  // Orders by (time, seq); transparent so a raw pointer finds its owning shared_ptr.
  struct Earlier {
    using is_transparent = void;
    static const detail::DelayedCallState* raw(const detail::DelayedCallState* p) { return p; }
    static const detail::DelayedCallState* raw(const std::shared_ptr<detail::DelayedCallState>& p) {
      return p.get();
    }
    template <class A, class B>
    bool operator()(const A& x, const B& y) const {
      const detail::DelayedCallState* a = raw(x);
      const detail::DelayedCallState* b = raw(y);
      return a->time < b->time || (a->time == b->time && a->seq < b->seq);
    }
  };
  void cancel(detail::DelayedCallState& s);
  void moveTo(detail::DelayedCallState& s, double time);

  Owner& owner_;
  uint64_t nextSeq_ = 0;
  std::set<std::shared_ptr<detail::DelayedCallState>, Earlier> calls_;
};

}  // namespace twist
