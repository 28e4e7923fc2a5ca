// Public. Running blocking work off the reactor thread and getting back (twisted.internet.threads).
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include "twist/reactor/deferred.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/reactor_base.h"

namespace twist {

// Handing a Failure to another thread: the sender keeps no reference of its own once the
// receiver has it (the exception object is then owned and freed on one side only), so the
// hand-off is clean under ThreadSanitizer, which cannot see libstdc++'s internal refcounts.

// Runs fn() in the reactor's thread pool; the Deferred fires on the reactor thread with its
// result, or with its exception as the failure. Call on the reactor thread. Work still queued or
// running when the reactor stops is finished and its Deferred fired during the shutdown, after
// the pool is joined (before the "during shutdown" triggers).
template <class F>
auto deferToThread(ReactorBase& reactor, F fn) {
  using R = std::invoke_result_t<F>;
  Deferred<R> d;
  reactor.callInThread([&reactor, d, fn = std::move(fn)]() mutable {
    // The worker only moves the handle around; the Deferred is fired on the reactor thread.
    std::optional<Failure> failure;
    try {
      if constexpr (std::is_void_v<R>) {
        fn();
        reactor.callFromThread([d]() mutable { d.callback(); });
      } else {
        reactor.callFromThread([d, v = fn()]() mutable { d.callback(std::move(v)); });
      }
    } catch (...) {
      failure = Failure::current();  // posted after the catch block has released the exception
    }
    if (failure) reactor.callFromThread([d, f = std::move(*failure)]() mutable { d.errback(f); });
  });
  return d;
}

namespace detail {
// One blockingCallFromThread: the waiting thread sleeps on it until the reactor thread delivers
// the outcome or abandons it (shutdown).
template <class R>
class BlockingCall : public BlockingWaiter {
 public:
  // Reactor thread.
  void deliver(Outcome<R> out) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (abandoned_) return;
    out_.emplace(std::move(out));
    done_.notify_all();
  }
  void abandon() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (out_) return;
    abandoned_ = true;
    done_.notify_all();
  }
  bool abandoned() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return abandoned_;
  }
  // The waiting thread.
  Outcome<R> wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return out_.has_value() || abandoned_; });
    if (abandoned_) return Outcome<R>(std::in_place_index<1>, Failure::of(ReactorShutdownError()));
    return std::move(*out_);
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable done_;
  std::optional<Outcome<R>> out_;
  bool abandoned_ = false;
};
}  // namespace detail

// From a thread that is not the reactor's: runs fn() on the reactor thread and waits for its
// result (if fn returns a Deferred, for that Deferred's result). Returns the value or throws
// the failure's exception. Blocks until the reactor runs the call (forever if it never runs);
// throws ReactorShutdownError when the reactor shuts down (or has shut down) before the call
// completed, so that a pool thread waiting here never blocks the shutdown; throws
// std::logic_error when called on the reactor thread (it would deadlock).
template <class F>
auto blockingCallFromThread(ReactorBase& reactor, F fn) {
  using R0 = std::invoke_result_t<F>;
  using R = typename detail::Unwrap<R0>::type;
  if (reactor.isInReactorThread()) {
    throw std::logic_error("blockingCallFromThread called on the reactor thread");
  }
  auto call = std::make_shared<detail::BlockingCall<R>>();
  if (!reactor.addBlockingWaiter(call)) throw ReactorShutdownError();
  reactor.callFromThread([&reactor, call, &fn] {
    if (call->abandoned()) return;  // the reactor shut down: fn must not run now
    auto slot = std::make_shared<std::optional<Outcome<R>>>();
    // Completes the call on a later pass of the loop, once the code that produced the outcome
    // (a catch block, a callback chain) has let go of it.
    auto deliver = [&reactor, call, slot] {
      reactor.callLater(0, [call, slot] { call->deliver(std::move(**slot)); });
    };
    try {
      if constexpr (detail::Unwrap<R0>::deferred) {
        Deferred<R> d = fn();
        if constexpr (std::is_void_v<R>) {
          d.then(
              [slot, deliver] {
                slot->emplace(std::in_place_index<0>);
                deliver();
              },
              [slot, deliver](const Failure& f) {
                slot->emplace(std::in_place_index<1>, f);
                deliver();
              });
        } else {
          d.then(
              [slot, deliver](R v) {
                slot->emplace(std::in_place_index<0>, std::move(v));
                deliver();
              },
              [slot, deliver](const Failure& f) {
                slot->emplace(std::in_place_index<1>, f);
                deliver();
              });
        }
        return;
      } else if constexpr (std::is_void_v<R>) {
        fn();
        slot->emplace(std::in_place_index<0>);
      } else {
        slot->emplace(std::in_place_index<0>, fn());
      }
    } catch (...) {
      slot->emplace(std::in_place_index<1>, Failure::current());
    }
    deliver();
  });
  Outcome<R> out = call->wait();
  reactor.removeBlockingWaiter(call.get());
  if (out.index() == 1) std::get<1>(out).raise();
  if constexpr (!std::is_void_v<R>) return std::move(std::get<0>(out));
}

}  // namespace twist
