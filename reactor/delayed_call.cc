#include "twist/reactor/delayed_call.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "twist/reactor/errors.h"

namespace twist {
namespace {

// A NaN would break the queue's ordering (the set's comparison is no longer a strict weak
// order) and an infinite or huge one would overflow the timeval libevent is given.
double checkedDelay(double seconds, const char* what) {
  if (std::isnan(seconds)) {
    throw std::invalid_argument(std::string(what) + ": the delay is NaN");
  }
  if (seconds < 0) return 0;
  return std::min(seconds, TimerQueue::kMaxDelay);
}

}  // namespace

using detail::DelayedCallState;
using Status = DelayedCallState::Status;

DelayedCallState& DelayedCall::checkedState() const {
  if (!state_ || state_->status == Status::Cancelled) throw AlreadyCancelled();
  if (state_->status == Status::Called) throw AlreadyCalled();
  return *state_;
}

double DelayedCall::getTime() const { return state_ ? state_->time : 0.0; }

void DelayedCall::cancel() {
  DelayedCallState& s = checkedState();
  if (s.queue != nullptr) {
    s.queue->cancel(s);
  } else {
    s.status = Status::Cancelled;
    s.fn = nullptr;
  }
}

void DelayedCall::reset(double secondsFromNow) {
  DelayedCallState& s = checkedState();
  if (s.queue == nullptr) throw AlreadyCancelled();
  double delay = checkedDelay(secondsFromNow, "DelayedCall::reset");
  s.queue->moveTo(s, s.queue->owner_.now() + delay);
}

void DelayedCall::delay(double seconds) {
  DelayedCallState& s = checkedState();
  if (s.queue == nullptr) throw AlreadyCancelled();
  if (std::isnan(seconds)) throw std::invalid_argument("DelayedCall::delay: the delay is NaN");
  // Clamped like any delay: no earlier than now, no later than kMaxDelay from now.
  double now = s.queue->owner_.now();
  double remaining = std::min(std::max(s.time + seconds - now, 0.0), TimerQueue::kMaxDelay);
  s.queue->moveTo(s, now + remaining);
}

bool DelayedCall::active() const { return state_ && state_->status == Status::Pending; }
bool DelayedCall::called() const { return state_ && state_->status == Status::Called; }
bool DelayedCall::cancelled() const { return state_ && state_->status == Status::Cancelled; }

TimerQueue::~TimerQueue() {
  for (const auto& s : calls_) {
    s->queue = nullptr;
    s->queued = false;
    s->status = Status::Cancelled;
    s->fn = nullptr;
  }
}

DelayedCall TimerQueue::schedule(double delaySeconds, UniqueFunction<void()> fn) {
  const double delay = checkedDelay(delaySeconds, "callLater");
  auto s = std::make_shared<DelayedCallState>();
  const double now = owner_.now();
  s->time = now + delay;
  s->seq = nextSeq_++;
  s->fn = std::move(fn);
  s->queue = this;
  s->queued = true;
  calls_.insert(s);
  owner_.wakeUpBy(s->time, now);
  return DelayedCall(std::move(s));
}

void TimerQueue::cancel(DelayedCallState& s) {
  s.status = Status::Cancelled;
  if (s.queued) {
    calls_.erase(calls_.find(&s));
    s.queued = false;
  }
  s.fn = nullptr;  // releases what the callback captured now, not when the last handle dies
}

void TimerQueue::moveTo(DelayedCallState& s, double time) {
  // Not queued means runDue has taken it out for the batch it is running; the batch must then
  // skip it (it checks `queued`).
  if (s.queued) calls_.erase(calls_.find(&s));
  s.time = time;
  s.seq = nextSeq_++;  // a moved call goes behind the calls already due at the same time
  s.queued = true;
  calls_.insert(s.shared_from_this());
  owner_.wakeUpBy(s.time, owner_.now());
}

size_t TimerQueue::runDue(double now, const std::function<void()>& onError) {
  const uint64_t seqLimit = nextSeq_;
  std::vector<std::shared_ptr<DelayedCallState>> due;
  for (auto it = calls_.begin(); it != calls_.end() && (*it)->time <= now;) {
    if ((*it)->seq >= seqLimit) {
      ++it;
      continue;
    }
    (*it)->queued = false;
    due.push_back(*it);
    it = calls_.erase(it);
  }
  size_t ran = 0;
  for (auto& call : due) {
    DelayedCallState& s = *call;
    // An earlier call of this batch may have cancelled or rescheduled this one.
    if (s.status != Status::Pending || s.queued) continue;
    s.status = Status::Called;
    UniqueFunction<void()> fn = std::move(s.fn);
    ++ran;
    try {
      fn();
    } catch (...) {
      onError();
    }
  }
  return ran;
}

double TimerQueue::nextTime() const { return calls_.empty() ? -1.0 : (*calls_.begin())->time; }

std::vector<DelayedCall> TimerQueue::pending() const {
  std::vector<DelayedCall> out;
  out.reserve(calls_.size());
  for (const auto& s : calls_) out.push_back(DelayedCall(s));
  return out;
}

}  // namespace twist
