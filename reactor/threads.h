// Public. Running blocking work off the reactor thread and getting back (twisted.internet.threads).
#pragma once

#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>

#include "reactor/deferred.h"
#include "reactor/reactor.h"

namespace twist {

// Runs fn() in the reactor's thread pool; the Deferred fires on the reactor thread with its
// result, or with its exception as the failure. Call on the reactor thread.
// Handing a Failure to another thread: the sender keeps no reference of its own once the
// receiver has it (the exception object is then owned and freed on one side only), so the
// hand-off is clean under ThreadSanitizer, which cannot see libstdc++'s internal refcounts.

// Runs fn() in the reactor's thread pool; the Deferred fires on the reactor thread with its
// result, or with its exception as the failure. Call on the reactor thread.
template <class F>
auto deferToThread(Reactor& reactor, F fn) {
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

// From a thread that is not the reactor's: runs fn() on the reactor thread and waits for its
// result (if fn returns a Deferred, for that Deferred's result). Returns the value or throws
// the failure's exception. Blocks forever if the reactor never runs the call; throws
// std::logic_error when called on the reactor thread (it would deadlock).
template <class F>
auto blockingCallFromThread(Reactor& reactor, F fn) {
  using R0 = std::invoke_result_t<F>;
  using R = typename detail::Unwrap<R0>::type;
  if (reactor.isInReactorThread()) {
    throw std::logic_error("blockingCallFromThread called on the reactor thread");
  }
  std::promise<Outcome<R>> promise;
  auto future = promise.get_future();
  reactor.callFromThread([&reactor, &promise, &fn] {
    auto slot = std::make_shared<std::optional<Outcome<R>>>();
    // Completes the promise on a later pass of the loop, once the code that produced the
    // outcome (a catch block, a callback chain) has let go of it.
    auto deliver = [&reactor, &promise, slot] {
      reactor.callLater(0, [&promise, slot] { promise.set_value(std::move(**slot)); });
    };
    try {
      if constexpr (detail::Unwrap<R0>::deferred) {
        Deferred<R> d = fn();
        if constexpr (std::is_void_v<R>) {
          d.addCallbacks(
              [slot, deliver] {
                slot->emplace(std::in_place_index<0>);
                deliver();
              },
              [slot, deliver](const Failure& f) {
                slot->emplace(std::in_place_index<1>, f);
                deliver();
              });
        } else {
          d.addCallbacks(
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
  Outcome<R> out = future.get();
  if (out.index() == 1) std::get<1>(out).raise();
  if constexpr (!std::is_void_v<R>) return std::move(std::get<0>(out));
}

}  // namespace twist
