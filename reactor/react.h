// Public. task::react (Twisted's twisted.internet.task.react): runs a coroutine (or any function
// returning a Deferred) as a program's main, on a fresh Reactor, and turns how it ends into an
// exit code:
//
//   twist::Deferred<int> amain(twist::Reactor& reactor) { ...; co_return 0; }
//   int main() { return twist::task::react(amain); }
//
// The reactor stops when main's Deferred fires. Its value is the exit code (0 for
// Deferred<void>); a failure prints "main failed: <message>" on stderr and gives 1; SIGINT or
// SIGTERM before main finishes cancel it and give 1 as well. Nothing hangs on a forgotten
// errback: main's failure is always reported.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "twist/reactor/deferred.h"
#include "twist/reactor/reactor.h"

namespace twist::task {

template <class Main>
int react(Main main, ReactorBase::Options options = {}) {
  using D = std::invoke_result_t<Main&, Reactor&>;
  static_assert(detail::Unwrap<D>::deferred,
                "react's main returns a Deferred<void> or Deferred<int>");
  using T = typename detail::Unwrap<D>::type;
  static_assert(std::is_void_v<T> || std::is_convertible_v<T, int>,
                "react's main returns a Deferred<void> or a Deferred of an exit code");
  Reactor reactor(options);
  int code = 1;
  bool finished = false;
  std::optional<Deferred<T>> running;
  auto finish = [&](int c) {
    code = c;
    finished = true;
    if (reactor.running()) reactor.stop();
  };
  auto failed = [&](const Failure& f) {
    std::string message = "main failed: " + f.typeName() + ": " + f.getErrorMessage() + "\n";
    std::fputs(message.c_str(), stderr);
    finish(1);
  };
  reactor.callWhenRunning([&] {
    try {
      running = main(reactor);
    } catch (...) {
      failed(Failure::current());
      return;
    }
    if constexpr (std::is_void_v<T>) {
      running->then([&] { finish(0); }, [&](const Failure& f) { failed(f); });
    } else {
      running->then([&](T value) { finish(static_cast<int>(value)); },
                    [&](const Failure& f) { failed(f); });
    }
  });
  // Stopped from outside (a signal) before main finished: cancel it, report that.
  reactor.addSystemEventTrigger("before", "shutdown", [&] {
    if (!finished && running) running->cancel();
  });
  reactor.run();
  if (!finished) {
    std::fputs("main did not finish: the reactor stopped first\n", stderr);
    return 1;
  }
  return code;
}

}  // namespace twist::task
