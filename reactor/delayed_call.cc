#include "reactor/delayed_call.h"

#include "reactor/errors.h"

namespace twist {

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
  s.queue->moveTo(s, s.queue->owner_.now() + secondsFromNow);
}

void DelayedCall::delay(double seconds) {
  DelayedCallState& s = checkedState();
  if (s.queue == nullptr) throw AlreadyCancelled();
  s.queue->moveTo(s, s.time + seconds);
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

DelayedCall TimerQueue::schedule(double delaySeconds, std::function<void()> fn) {
  auto s = std::make_shared<DelayedCallState>();
  const double now = owner_.now();
  s->time = now + (delaySeconds > 0 ? delaySeconds : 0);
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
    std::function<void()> fn = std::move(s.fn);
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
