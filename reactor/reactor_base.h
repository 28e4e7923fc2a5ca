// Public. ReactorBase: the event loop (one libevent event_base) with time, threads, system event
// triggers and signals: everything of a reactor but the transports (Twisted's ReactorBase).
// Reactor (reactor/reactor.h) adds listenTCP and connectTCP on top; transports take a
// ReactorBase&. At most one thread drives a reactor; every method except callFromThread must be
// called on that thread (debug builds check it and abort otherwise).
//
// Life cycle: a Reactor runs once. run() blocks until stop() finishes shutting down; after that,
// run() throws ReactorNotRestartable (as Twisted's reactor does): make a new Reactor instead.
// iterate() may be used before run(), for tests and for embedding in another loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "twist/reactor/deferred.h"
#include "twist/reactor/delayed_call.h"
#include "twist/reactor/interfaces.h"

struct event_base;
struct evdns_base;

namespace twist {

class Selectable;
class ThreadPool;

namespace detail {
// A thread blocked in blockingCallFromThread. The reactor abandons it (abandon() is called on
// the reactor thread) when it shuts down before the call has completed, so that the thread can
// go on and the thread pool can be joined.
class BlockingWaiter {
 public:
  virtual ~BlockingWaiter() = default;
  virtual void abandon() = 0;
};
}  // namespace detail

class ReactorBase : public IReactorTime {
 public:
  struct Options {
    // SIGINT and SIGTERM call stop() while run() is running (libevent signal events, removed
    // when run() returns). Turn off when embedding or when several reactors share a process.
    bool installSignalHandlers = true;
    // How long stop() waits for the Deferreds that "before shutdown" triggers returned before it
    // closes the connections anyway (a warning says which were still pending).
    double shutdownTimeout = 30;
    // libevent's backend: "epoll", "poll" or "select"; "" = the best the system has (epoll on
    // Linux). An unknown or unavailable one throws std::invalid_argument naming those there are.
    std::string backend{};
  };

  ReactorBase();
  explicit ReactorBase(Options options);
  // Closes every port and connection that is left (connectionLost runs with ConnectionLost),
  // cancels pending delayed calls (their handles stay safe). Must not run inside run().
  ~ReactorBase() override;
  ReactorBase(const ReactorBase&) = delete;
  ReactorBase& operator=(const ReactorBase&) = delete;

  // Fires the "startup" system event (callWhenRunning functions run then), then runs the loop
  // until stop() completes. Throws ReactorAlreadyRunning if running, ReactorNotRestartable if
  // it already ran.
  void run();
  // Asks a running reactor to stop: on the next pass of the loop it fires "before shutdown"
  // triggers and waits (serving I/O meanwhile, for at most Options::shutdownTimeout) for the
  // Deferreds they returned; then it closes all ports and connections, stops the thread pool
  // (delivering the results of work that finished meanwhile), fires "during" and "after"
  // shutdown triggers, and run() returns. Safe from any callback. Throws ReactorNotRunning if
  // not running or already stopping.
  void stop();
  // True from run() until stop() begins.
  bool running() const;

  // Runs one pass of the loop, waiting at most `maxWaitSeconds` for something to happen
  // (0: do not wait). Throws ReactorAlreadyRunning when called from inside the loop.
  void iterate(double maxWaitSeconds = 0);

  // The libevent backend in use ("epoll", "poll", "select").
  std::string backend() const;
  // Whether the backend can watch descriptor fd: select() cannot watch one of FD_SETSIZE
  // (1024) or more (glibc aborts the process if asked to). Transports refuse such sockets.
  bool canWatch(int fd) const;
  // Why it cannot ("the select backend cannot watch descriptor 1030 (FD_SETSIZE 1024)").
  std::string cannotWatch(int fd) const;

  // Monotonic time in seconds; the clock of callLater.
  double seconds() const override;

  // Runs `fn` on this reactor's thread after `delaySeconds` (0 or negative: on the next pass of
  // the loop, after pending I/O). Calls due at the same time run in the order they were made.
  DelayedCall callLater(double delaySeconds, UniqueFunction<void()> fn) override;
  template <class Rep, class Period>
  DelayedCall callLater(std::chrono::duration<Rep, Period> delay, UniqueFunction<void()> fn) {
    return callLater(std::chrono::duration<double>(delay).count(), std::move(fn));
  }
  // The calls that are still pending, earliest first.
  std::vector<DelayedCall> getDelayedCalls() const;

  // Runs `fn` once the reactor is running (at once if it already is).
  void callWhenRunning(UniqueFunction<void()> fn);

  // The one thread-safe entry: queues `fn` to run on the reactor's thread and wakes the loop.
  // Calls from one thread run in the order they were made. Works before run(). Calls queued
  // while the reactor shuts down still run, once its thread pool is joined (so deferToThread
  // results are delivered); calls left when the reactor is destroyed are dropped with a warning
  // saying how many.
  void callFromThread(UniqueFunction<void()> fn);

  // Runs fn on a thread of the reactor's pool (started on first use, at most 10 threads unless
  // suggestThreadPoolSize says otherwise; stopped and joined during shutdown, after the
  // "before shutdown" triggers). See reactor/threads.h for deferToThread and
  // blockingCallFromThread. Call on the reactor thread.
  void callInThread(UniqueFunction<void()> fn);
  ThreadPool& getThreadPool();
  void suggestThreadPoolSize(size_t maxThreads);
  // True when called on the thread that drives this reactor. Thread safe.
  bool isInReactorThread() const;

  using TriggerId = uint64_t;
  // Registers `fn` to run in `phase` ("before", "during" or "after") of the system event
  // `eventType` ("startup", "shutdown", or one of your own fired with fireSystemEvent).
  // A "before" trigger may return a Deferred<void>: the "during" phase then waits until every
  // such Deferred has fired (Twisted's contract; a failure is logged). "before shutdown" uses it
  // to drain connections gracefully; stop() waits at most Options::shutdownTimeout for them.
  // Throws std::invalid_argument for another phase.
  template <class F>
  TriggerId addSystemEventTrigger(std::string_view phase, std::string_view eventType, F fn) {
    if constexpr (std::is_same_v<std::invoke_result_t<F&>, Deferred<void>>) {
      return addTrigger(phase, eventType, UniqueFunction<Deferred<void>()>(std::move(fn)));
    } else {
      return addTrigger(phase, eventType,
                        UniqueFunction<Deferred<void>()>([fn = std::move(fn)]() mutable {
                          fn();
                          return succeed();
                        }));
    }
  }
  // Removes a trigger; an unknown id throws std::invalid_argument.
  void removeSystemEventTrigger(TriggerId id);
  // Runs the before, during and after triggers of `eventType`, in the order they were added
  // (during and after once the Deferreds of the before triggers have fired).
  void fireSystemEvent(std::string_view eventType);

  // Resolve names with these DNS servers ("127.0.0.1", "127.0.0.1:5353", "[::1]:53") instead of
  // those of /etc/resolv.conf; /etc/hosts is still read first. Throws std::invalid_argument
  // for a server that is not an IP address.
  void setNameservers(const std::vector<std::string>& servers);
  // A libevent resolver option ("timeout:", "attempts:", ...), see evdns_base_set_option.
  void setResolverOption(const std::string& option, const std::string& value);

  // ---- For transports (not needed to write protocols) ----

  // The reactor's libevent DNS resolver (made on first use).
  evdns_base* dnsBase();

  event_base* eventBase() const;
  // The reactor keeps `s` alive until removeSelectable, and ends it at shutdown.
  void addSelectable(std::shared_ptr<Selectable> s);
  // Forgets `s`; it is freed after the callback that is running returns, never inside it.
  void removeSelectable(Selectable* s);
  size_t selectableCount() const;
  // One buffer all connections of this reactor read into. Valid during a callback only.
  char* readBuffer() const;
  static constexpr size_t kReadBufferSize = 64 * 1024;
  // Debug builds: aborts with a message if not called on the reactor's thread.
  void assertInReactorThread() const;

  // For blockingCallFromThread (reactor/threads.h). Thread safe. Registers a waiter, to be
  // abandoned if the reactor shuts down first; false when it already has (the caller fails at
  // once). Forget it with removeBlockingWaiter once the call has completed.
  bool addBlockingWaiter(const std::shared_ptr<detail::BlockingWaiter>& waiter);
  void removeBlockingWaiter(const detail::BlockingWaiter* waiter);

 private:
  TriggerId addTrigger(std::string_view phase, std::string_view eventType,
                       UniqueFunction<Deferred<void>()> fn);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace twist
