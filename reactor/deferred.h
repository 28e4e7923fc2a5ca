// Public. Deferred<T>: a result that is not there yet (twisted.internet.defer.Deferred), and the
// C++20 coroutine glue that lets a coroutine returning Deferred<T> co_await any Deferred<U>.
//
// A Deferred holds a chain of callbacks. When its result arrives (callback(value) or
// errback(failure)) the chain runs in order: a value goes to the next callback, a Failure to the
// next errback. A callback that throws turns the result into that Failure; an errback that
// returns a value recovers. A callback may return another Deferred: the chain waits for it and
// goes on with its result.
//
// Types: addCallback/addCallbacks/addErrback/addBoth keep the type (T -> T): they extend this
// Deferred's chain in place and return a handle to it, so Twisted's
// `d.addCallback(f); d.addErrback(g); return d;` works (a callback of another type is a compile
// error that says to use then()). then(f) is the one that changes the type (T -> U), explicitly:
// it hands the chain on to the Deferred<U> it returns, and this Deferred takes no more callbacks
// (std::logic_error if you try). Callbacks may be move-only (they are held in UniqueFunctions).
//
// Copies of a Deferred are handles to the same one. Not thread safe: fire and chain it on one
// thread (the reactor's); use Reactor::callFromThread to get there.
#pragma once

#include <coroutine>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "twist/reactor/errors.h"
#include "twist/reactor/failure.h"
#include "twist/reactor/function.h"

namespace twist {

template <class T>
class Deferred;

// Deferred::callback or errback called on a Deferred that already has a result.
class AlreadyCalledError : public Error {
 public:
  AlreadyCalledError() : Error("AlreadyCalledError: the Deferred already has a result") {}
};

// The failure a Deferred gets when it is cancelled (and its canceller did not fire it).
class CancelledError : public Error {
 public:
  CancelledError() : Error("CancelledError: the Deferred was cancelled") {}
};

namespace detail {

template <class T>
using Stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
struct Unwrap {
  using type = T;
  static constexpr bool deferred = false;
};
template <class T>
struct Unwrap<Deferred<T>> {
  using type = T;
  static constexpr bool deferred = true;
};

void logUnhandledFailure(const Failure& f);

}  // namespace detail

// What a Deferred<T> ends with: a value (std::monostate for void) or a Failure.
template <class T>
using Outcome = std::variant<detail::Stored<T>, Failure>;

namespace detail {

template <class T>
struct DeferredState {
  using V = Stored<T>;
  // A link runs on the current result and either leaves a new one in `result` or returns a
  // Deferred<T> the chain must wait for. A link with a `chainee` instead hands the result to
  // that Deferred (one waiting for this one, or one fired by chainDeferred) and the chain goes
  // on there: Deferred::run does that in a loop, not by recursion (Twisted's fix of the same).
  struct Link {
    UniqueFunction<std::optional<Deferred<T>>(DeferredState&)> fn;
    std::shared_ptr<DeferredState> chainee;
    bool fireChainee = false;  // chainDeferred: fire it (else: resume it from waiting)
  };

  ~DeferredState() {
    if (!handedOn && result && result->index() == 1) logUnhandledFailure(std::get<1>(*result));
  }

  std::optional<Outcome<T>> result;
  std::deque<Link> links;
  bool called = false;     // callback/errback happened
  bool running = false;    // the chain is running (guards re-entry)
  bool waiting = false;    // paused on a Deferred a callback returned
  bool handedOn = false;   // a type-changing callback or co_await took the result
  bool cancelled = false;  // cancel() was called: a late callback/errback is ignored
  UniqueFunction<void(Deferred<T>&)> canceller;
  UniqueFunction<void()> cancelWaitedOn;  // cancels the Deferred the chain waits for
};

}  // namespace detail

template <class T>
class Deferred {
  using State = detail::DeferredState<T>;
  using V = detail::Stored<T>;

 public:
  using value_type = T;
  struct promise_type;

  // A new Deferred without a result. `canceller` (optional) runs on cancel() before it fires.
  Deferred() : s_(std::make_shared<State>()) {}
  explicit Deferred(UniqueFunction<void(Deferred<T>&)> canceller) : Deferred() {
    s_->canceller = std::move(canceller);
  }

  // Gives the Deferred its value and runs the chain. Throws AlreadyCalledError the second time
  // (unless the Deferred was cancelled: then late results are ignored, as in Twisted).
  template <class U = T>
  requires(!std::is_void_v<U>) void callback(U value) {
    fire(Outcome<T>(std::in_place_index<0>, std::move(value)));
  }
  void callback() requires std::is_void_v<T> { fire(Outcome<T>(std::in_place_index<0>)); }
  void errback(Failure failure) { fire(Outcome<T>(std::in_place_index<1>, std::move(failure))); }
  template <class E>
  void errback(E error) requires std::is_base_of_v<std::exception, E> {
    errback(Failure::of(std::move(error)));
  }

  // True once callback or errback was called.
  bool called() const { return s_->called; }
  // True once it has a result and the chain is not waiting on another Deferred.
  bool hasResult() const { return s_->result.has_value() && !s_->waiting; }

  // Cancels: before a result, runs the canceller and, if that did not fire it, errbacks with
  // CancelledError. While waiting on a Deferred a callback returned, cancels that one.
  void cancel() {
    Deferred<T> self = *this;  // the canceller may reassign *this
    State& s = *self.s_;
    if (!s.called) {
      s.cancelled = true;
      if (s.canceller) {
        auto c = std::move(s.canceller);
        c(self);
      }
      if (!s.called) self.fire(Outcome<T>(std::in_place_index<1>, Failure::of(CancelledError())));
    } else if (s.waiting && s.cancelWaitedOn) {
      auto c = std::move(s.cancelWaitedOn);
      c();
    }
  }

  // cb(value) and eb(failure), exactly one of which runs on this link. cb returns the next
  // value (or a Deferred of it); eb returns the same type to recover, or a Failure (or throws)
  // to go on failing. Returns the Deferred that carries the chain on (this one if the type
  // stays T).
  template <class CB, class EB>
  Deferred<T> addCallbacks(CB cb, EB eb) {
    using R = decltype(invokeCb(cb, std::declval<V&&>()));
    static_assert(std::is_same_v<typename detail::Unwrap<R>::type, T>,
                  "a callback of Deferred<T> returns T (or Deferred<T>); to change the type, use "
                  "then()");
    checkOpen();
    append(
        [cb = std::move(cb), eb = std::move(eb)](State& s) mutable -> std::optional<Deferred<T>> {
          Outcome<T> cur = std::move(*s.result);
          if (cur.index() == 0) {
            return store<T>(s, [&] { return invokeCb(cb, std::move(std::get<0>(cur))); });
          }
          return recover<T>(s, eb, std::get<1>(cur));
        });
    return *this;
  }

  // cb(value) -> a value of another type U (or a Deferred<U>); eb(failure) -> a U to recover, or
  // a Failure (or throw) to go on failing. Returns the Deferred<U> that carries the chain on;
  // this Deferred takes no more callbacks. (With U = T it is the same as addCallbacks.)
  template <class CB, class EB>
  auto then(CB cb, EB eb) {
    using R = decltype(invokeCb(cb, std::declval<V&&>()));
    using U = typename detail::Unwrap<R>::type;
    checkOpen();
    {
      Deferred<U> next;
      s_->handedOn = true;  // set now: no more callbacks here; the result moves on to `next`
      appendRaw([cb = std::move(cb), eb = std::move(eb),
                 next](State& s) mutable -> std::optional<Deferred<T>> {
        Outcome<T> cur = std::move(*s.result);
        detail::DeferredState<U> tmp;
        tmp.handedOn = true;
        std::optional<Deferred<U>> nested;
        if (cur.index() == 0) {
          nested = Deferred<U>::template store<U>(
              tmp, [&] { return invokeCb(cb, std::move(std::get<0>(cur))); });
        } else {
          nested = Deferred<U>::template recover<U>(tmp, eb, std::get<1>(cur));
        }
        if (nested) {
          next.chainFrom(*nested);
        } else {
          next.fire(std::move(*tmp.result));
        }
        return std::nullopt;
      });
      return next;
    }
  }

  // cb(value) -> a U (or Deferred<U>); failures pass by. See then(cb, eb).
  template <class CB>
  auto then(CB cb) {
    return then(std::move(cb), [](const Failure& f) -> Failure { return f; });
  }

  // cb(value) -> next value of type T, or Deferred<T>. Failures pass by.
  template <class CB>
  Deferred<T> addCallback(CB cb) {
    return addCallbacks(std::move(cb), [](const Failure& f) -> Failure { return f; });
  }

  // eb(failure) -> a value of T to recover (nothing, for Deferred<void>), a Deferred<T>, or a
  // Failure (or throw) to go on failing. Values pass by.
  template <class EB>
  Deferred<T> addErrback(EB eb) {
    if constexpr (std::is_void_v<T>) {
      return addCallbacks([] {}, std::move(eb));
    } else {
      return addCallbacks([](V v) { return v; }, std::move(eb));
    }
  }

  // fn() runs whatever the result (Twisted's addBoth used for clean-up); the result passes on
  // unchanged unless fn throws.
  template <class F>
  Deferred<T> addBoth(F fn) {
    checkOpen();
    append([fn = std::move(fn)](State& s) mutable -> std::optional<Deferred<T>> {
      try {
        fn();
      } catch (...) {
        s.result.emplace(std::in_place_index<1>, Failure::current());
      }
      return std::nullopt;
    });
    return *this;
  }

  // Makes `other` fire with this Deferred's result (this one's chain ends there).
  void chainDeferred(Deferred<T> other) {
    checkOpen();
    other.chainFrom(*this);
  }

  // co_await support: see detail::DeferredAwaiter below.
  auto operator co_await() const;

 private:
  template <class>
  friend class Deferred;
  template <class>
  friend struct DeferredAwaiter;

  explicit Deferred(std::shared_ptr<State> s) : s_(std::move(s)) {}

  template <class F, class X>
  static decltype(auto) invokeCb(F& f, X&& x) {
    if constexpr (std::is_void_v<T>) {
      return f();
    } else {
      return f(std::forward<X>(x));
    }
  }

  // Runs `produce` (a callback) and stores its result in `s`, or returns a Deferred to wait on.
  template <class W, class St, class P>
  static std::optional<Deferred<W>> store(St& s, P&& produce) {
    using R = decltype(produce());
    try {
      if constexpr (detail::Unwrap<R>::deferred) {
        return produce();
      } else if constexpr (std::is_void_v<R>) {
        produce();
        s.result.emplace(std::in_place_index<0>);
      } else {
        s.result.emplace(std::in_place_index<0>, produce());
      }
    } catch (...) {
      s.result.emplace(std::in_place_index<1>, Failure::current());
    }
    return std::nullopt;
  }

  // Runs errback `eb` on `f`: a value (or void) recovers, a Failure goes on failing.
  template <class W, class St, class EB>
  static std::optional<Deferred<W>> recover(St& s, EB& eb, const Failure& f) {
    using R = decltype(eb(f));
    try {
      if constexpr (std::is_same_v<R, Failure>) {
        s.result.emplace(std::in_place_index<1>, eb(f));
      } else if constexpr (detail::Unwrap<R>::deferred) {
        return eb(f);
      } else if constexpr (std::is_void_v<R>) {
        static_assert(std::is_void_v<W>,
                      "an errback of Deferred<T> must return T, a Deferred<T> or a Failure");
        eb(f);
        s.result.emplace(std::in_place_index<0>);
      } else {
        s.result.emplace(std::in_place_index<0>, eb(f));
      }
    } catch (...) {
      s.result.emplace(std::in_place_index<1>, Failure::current());
    }
    return std::nullopt;
  }

  void checkOpen() const {
    if (s_->handedOn) {
      throw std::logic_error(
          "Deferred: its chain was handed on (by a callback that changed the type, co_await or "
          "chainDeferred); add callbacks to the Deferred that took it");
    }
  }

  using LinkFn = UniqueFunction<std::optional<Deferred<T>>(State&)>;
  void append(LinkFn fn) { appendRaw(std::move(fn)); }
  void appendRaw(LinkFn fn) {
    s_->links.push_back(typename State::Link{std::move(fn), nullptr, false});
    run(s_);  // run copies the reference before any callback can touch *this
  }

  // Fires this Deferred with whatever `source` ends with.
  void chainFrom(Deferred<T> source) {
    source.s_->handedOn = true;
    source.s_->links.push_back(typename State::Link{nullptr, s_, true});
    run(source.s_);
  }

  void fire(Outcome<T> outcome) {
    std::shared_ptr<State> s = s_;  // callbacks may reassign *this
    if (s->called) {
      if (s->cancelled) return;  // the operation finished after it was cancelled
      throw AlreadyCalledError();
    }
    s->called = true;
    s->result.emplace(std::move(outcome));
    run(std::move(s));
  }

  // Runs the chain of `start`, and of every Deferred its result is handed to, in one loop: a
  // chain of thousands of Deferreds each waiting for the next unwinds without recursing.
  // Holds its own references: callbacks may reassign or drop the Deferreds involved.
  static void run(std::shared_ptr<State> start) {
    // Re-entered from its own callbacks (then it is running), or nothing to run yet.
    if (!start->called || start->running || start->waiting) return;
    std::shared_ptr<State> cur = std::move(start);
    // The Deferreds whose chains wait for the one running (empty, so no allocation, unless a
    // result is handed on).
    std::vector<std::shared_ptr<State>> parents;
    for (;;) {
      cur->running = true;
      std::shared_ptr<State> next;
      while (!cur->links.empty() && !cur->waiting) {
        typename State::Link link = std::move(cur->links.front());
        cur->links.pop_front();
        if (link.chainee) {
          std::shared_ptr<State> target = std::move(link.chainee);
          if (link.fireChainee) {
            if (target->called) {
              if (target->cancelled) continue;  // finished after it was cancelled: ignored
              cur->running = false;
              for (auto& p : parents) p->running = false;
              throw AlreadyCalledError();
            }
            target->called = true;
          } else {
            target->waiting = false;
            target->cancelWaitedOn = nullptr;
          }
          target->result = std::move(cur->result);
          cur->result.reset();
          if (target->running) continue;  // an outer loop is running it: it goes on there
          next = std::move(target);       // go on with it; the rest of this chain after it
          break;
        }
        std::optional<Deferred<T>> nested = link.fn(*cur);
        if (!nested) continue;
        if (nested->s_ == cur) {
          cur->result.emplace(
              std::in_place_index<1>,
              Failure::of(std::logic_error("a callback returned its own Deferred")));
          continue;
        }
        std::shared_ptr<State> n = std::move(nested->s_);
        n->handedOn = true;
        if (n->called && !n->waiting && !n->running) {
          // It has its result already: take it and go on, no waiting.
          cur->result = std::move(n->result);
          n->result.reset();
          continue;
        }
        cur->waiting = true;
        // Weak: the waited-on Deferred keeps this chain alive (as in Twisted), not the reverse.
        std::weak_ptr<State> waitedOn = n;
        cur->cancelWaitedOn = [waitedOn] {
          if (auto w = waitedOn.lock()) Deferred<T>(std::move(w)).cancel();
        };
        n->links.push_back(typename State::Link{nullptr, cur, false});
      }
      cur->running = false;
      if (next) {
        parents.push_back(std::move(cur));
        cur = std::move(next);
        continue;
      }
      if (parents.empty()) return;
      cur = std::move(parents.back());
      parents.pop_back();
    }
  }

  std::shared_ptr<State> s_;
};

// ---- coroutines ----

namespace detail {
// What the promise of a coroutine returning a Deferred knows: how to cancel what it awaits.
struct CoroutineCancel {
  UniqueFunction<void()> cancelAwaited;  // set while suspended on a Deferred
};
}  // namespace detail

// Awaiting a Deferred<U> inside a coroutine: suspends until it has a result, then returns the
// value or throws the failure's exception. While suspended, cancelling the coroutine's own
// Deferred cancels this one (the coroutine then sees CancelledError here).
template <class U>
struct DeferredAwaiter {
  Deferred<U> d;
  std::optional<Outcome<U>> out;
  bool suspended = false;
  detail::CoroutineCancel* cancel = nullptr;

  bool await_ready() const noexcept { return false; }
  template <class Promise>
  bool await_suspend(std::coroutine_handle<Promise> h) {
    d.checkOpen();
    d.s_->handedOn = true;
    d.s_->links.push_back(typename detail::DeferredState<U>::Link{
        [this, h](detail::DeferredState<U>& s) -> std::optional<Deferred<U>> {
          out = std::move(s.result);
          if (cancel != nullptr) cancel->cancelAwaited = nullptr;
          if (suspended) h.resume();
          return std::nullopt;
        },
        nullptr, false});
    Deferred<U>::run(d.s_);
    if (out) return false;  // it already had a result: go on without suspending
    if constexpr (std::is_base_of_v<detail::CoroutineCancel, Promise>) {
      cancel = &h.promise();
      std::weak_ptr<detail::DeferredState<U>> awaited = d.s_;
      cancel->cancelAwaited = [awaited] {
        if (auto a = awaited.lock()) Deferred<U>(std::move(a)).cancel();
      };
    }
    suspended = true;
    return true;
  }
  U await_resume() {
    if (out->index() == 1) std::get<1>(*out).raise();
    if constexpr (!std::is_void_v<U>) return std::move(std::get<0>(*out));
  }
};

template <class T>
auto Deferred<T>::operator co_await() const {
  return DeferredAwaiter<T>{*this, std::nullopt, false, nullptr};
}

namespace detail {
template <class T>
struct PromiseBase : CoroutineCancel {
  // Cancelling the coroutine's Deferred cancels the Deferred it is suspended on (Twisted's
  // inlineCallbacks does the same): CancelledError is thrown at that co_await, and unless the
  // coroutine catches it, it ends there and its Deferred fails with it.
  Deferred<T> d{[this](Deferred<T>&) {
    if (cancelAwaited) {
      auto c = std::move(cancelAwaited);
      c();
    }
  }};
  Deferred<T> get_return_object() { return d; }
  std::suspend_never initial_suspend() noexcept { return {}; }
  std::suspend_never final_suspend() noexcept { return {}; }
  void unhandled_exception() { d.errback(Failure::current()); }
};
}  // namespace detail

// A coroutine returning Deferred<T> starts at once and fires its Deferred with what it
// co_returns (or with the exception that escapes it). Twisted's inlineCallbacks/ensureDeferred.
// Cancelling its Deferred cancels what it awaits (see PromiseBase). A coroutine suspended on a
// Deferred that never fires stays suspended (its frame is not freed).
template <class T>
struct Deferred<T>::promise_type : detail::PromiseBase<T> {
  template <class X>
  void return_value(X&& v) {
    this->d.callback(std::forward<X>(v));
  }
};
template <>
struct Deferred<void>::promise_type : detail::PromiseBase<void> {
  void return_void() { this->d.callback(); }
};

// ---- helpers (twisted.internet.defer) ----

// A Deferred that already has `value`.
template <class T>
Deferred<T> succeed(T value) {
  Deferred<T> d;
  d.callback(std::move(value));
  return d;
}
inline Deferred<void> succeed() {
  Deferred<void> d;
  d.callback();
  return d;
}

// A Deferred that already failed with `f`.
template <class T>
Deferred<T> fail(Failure f) {
  Deferred<T> d;
  d.errback(std::move(f));
  return d;
}

// Fires with every value, in the order given, once all have; or with the first failure
// (the other failures are consumed, not logged as unhandled).
template <class T>
requires(!std::is_void_v<T>) Deferred<std::vector<T>> gatherResults(std::vector<Deferred<T>> ds) {
  struct Gather {
    std::vector<std::optional<T>> values;
    size_t left;
    Deferred<std::vector<T>> out;
    bool failed = false;
  };
  auto g = std::make_shared<Gather>();
  g->values.resize(ds.size());
  g->left = ds.size();
  if (ds.empty()) g->out.callback(std::vector<T>{});
  for (size_t i = 0; i < ds.size(); ++i) {
    ds[i].then(
        [g, i](T v) {
          g->values[i] = std::move(v);
          if (--g->left == 0 && !g->failed) {
            std::vector<T> all;
            all.reserve(g->values.size());
            for (auto& x : g->values) all.push_back(std::move(*x));
            g->out.callback(std::move(all));
          }
        },
        [g](const Failure& f) {
          --g->left;
          if (!g->failed) {
            g->failed = true;
            g->out.errback(f);
          }
        });
  }
  return g->out;
}

// Fires, once every Deferred has a result, with all of them in order (values and failures).
// Failures are consumed (not logged as unhandled). Twisted's DeferredList(consumeErrors=True).
template <class T>
Deferred<std::vector<Outcome<T>>> DeferredList(std::vector<Deferred<T>> ds) {
  struct Collect {
    std::vector<std::optional<Outcome<T>>> results;
    size_t left;
    Deferred<std::vector<Outcome<T>>> out;
    void done() {
      if (--left != 0) return;
      std::vector<Outcome<T>> all;
      all.reserve(results.size());
      for (auto& r : results) all.push_back(std::move(*r));
      out.callback(std::move(all));
    }
  };
  auto c = std::make_shared<Collect>();
  c->results.resize(ds.size());
  c->left = ds.size();
  if (ds.empty()) c->out.callback(std::vector<Outcome<T>>{});
  for (size_t i = 0; i < ds.size(); ++i) {
    if constexpr (std::is_void_v<T>) {
      ds[i].then(
          [c, i] {
            c->results[i].emplace(std::in_place_index<0>);
            c->done();
          },
          [c, i](const Failure& f) {
            c->results[i].emplace(std::in_place_index<1>, f);
            c->done();
          });
    } else {
      ds[i].then(
          [c, i](T v) {
            c->results[i].emplace(std::in_place_index<0>, std::move(v));
            c->done();
          },
          [c, i](const Failure& f) {
            c->results[i].emplace(std::in_place_index<1>, f);
            c->done();
          });
    }
  }
  return c->out;
}

}  // namespace twist
