#include "twist/reactor/reactor_base.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>

#include "twist/reactor/errors.h"
#include "twist/reactor/failure.h"
#include "twist/reactor/guard.h"
#include "twist/reactor/log.h"
#include "twist/reactor/selectable.h"
#include "twist/reactor/thread_pool.h"

namespace twist {
namespace {

enum class State { NotStarted, Running, Stopping, Stopped };
enum Phase { kBefore = 0, kDuring = 1, kAfter = 2 };

int parsePhase(std::string_view phase) {
  if (phase == "before") return kBefore;
  if (phase == "during") return kDuring;
  if (phase == "after") return kAfter;
  throw std::invalid_argument("unknown system event phase '" + std::string(phase) +
                              "' (use before, during or after)");
}

timeval toTimeval(double seconds) {
  // NaN and negatives wait not at all; the upper clamp keeps the conversion to time_t defined.
  if (!(seconds > 0)) seconds = 0;
  seconds = std::min(seconds, TimerQueue::kMaxDelay);
  timeval tv;
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  return tv;
}

struct Trigger {
  ReactorBase::TriggerId id;
  int phase;
  std::string eventType;
  std::shared_ptr<UniqueFunction<Deferred<void>()>> fn;  // shared: it may remove itself
};

}  // namespace

struct ReactorBase::Impl : TimerQueue::Owner {
  explicit Impl(ReactorBase& r, Options o) : reactor(r), options(o), timers(*this) {}

  double now() const override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void wakeUpBy(double time, double scheduledAt) override {
    if (timerArmed && time >= timerArmedFor) return;
    timeval tv{0, 0};
    if (time > scheduledAt) {
      // libevent measures the timeout from its cached loop time, which lags the real clock
      // inside callbacks; refresh it so the timer does not fire early. (A call due now needs
      // neither: a zero timeout fires on the next pass. Clock reads are not free.)
      event_base_update_cache_time(base);
      tv = toTimeval(time - now());
    }
    event_add(timerEvent, &tv);
    timerArmed = true;
    timerArmedFor = time;
  }

  static void onTimer(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    self->timerArmed = false;
    detail::guardCallback("reactor", "the timer queue", [self] {
      self->timers.runDue(self->now(),
                          [] { detail::logUnhandledException("reactor", "a delayed call"); });
    });
    double next = self->timers.nextTime();
    if (next >= 0) self->wakeUpBy(next, -1);
  }

  static void onWake(evutil_socket_t fd, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    uint64_t count;
    while (::read(fd, &count, sizeof count) > 0) {
    }
    self->runThreadCalls();
  }

  // Runs what callFromThread queued so far.
  void runThreadCalls() {
    std::deque<UniqueFunction<void()>> batch;
    {
      std::lock_guard<std::mutex> lock(threadCallsMutex);
      batch.swap(threadCalls);
      wakePending = false;
    }
    for (auto& fn : batch) detail::guardCallback("reactor", "a callFromThread function", fn);
  }

  static void onShutdown(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    detail::guardCallback("reactor", "shutdown", [self] {
      self->fire(
          "shutdown",
          [self] {
            self->disconnectAll();
            self->stopThreads();
            // What the workers queued meanwhile (deferToThread results) is delivered, not
            // dropped: the functions belong to a reactor that is still shutting down.
            self->runThreadCalls();
          },
          [self] {
            self->state = State::Stopped;
            event_base_loopbreak(self->base);
          },
          self->options.shutdownTimeout);
    });
  }

  static void onSignal(evutil_socket_t signum, short, void* arg) {
    auto* self = static_cast<Impl*>(arg);
    if (self->state != State::Running) return;
    log::info("reactor", std::string("Received ") + (signum == SIGINT ? "SIGINT" : "SIGTERM") +
                             ", shutting down.");
    detail::guardCallback("reactor", "stop", [self] { self->reactor.stop(); });
  }

  static void onReap(evutil_socket_t, short, void* arg) {
    // Destructors do not throw; clearing is guarded all the same.
    detail::guardCallback("reactor", "freeing closed connections",
                          [arg] { static_cast<Impl*>(arg)->graveyard.clear(); });
  }

  // Runs the triggers of one phase of `eventType` in the order they were added (a trigger may
  // remove a later one). Returns the Deferreds of "before" triggers that have no result yet.
  std::vector<Deferred<void>> runPhase(const std::string& eventType, int phase) {
    std::vector<TriggerId> ids;
    for (const auto& t : triggers) {
      if (t.phase == phase && t.eventType == eventType) ids.push_back(t.id);
    }
    std::vector<Deferred<void>> pending;
    const std::string what = "a '" + eventType + "' system event trigger";
    for (TriggerId id : ids) {
      auto it = std::find_if(triggers.begin(), triggers.end(),
                             [id](const Trigger& t) { return t.id == id; });
      if (it == triggers.end()) continue;  // removed by an earlier trigger
      std::shared_ptr<UniqueFunction<Deferred<void>()>> fn = it->fn;
      detail::guardCallback("reactor", what.c_str(), [&] {
        Deferred<void> d = (*fn)();
        d.addErrback([what](const Failure& f) {
          log::error("reactor", "Unhandled error in the Deferred of " + what + ": " + f.toString());
        });
        if (phase == kBefore && !d.hasResult()) pending.push_back(d);
      });
    }
    return pending;
  }

  // Fires one system event: its "before" triggers; then, once the Deferreds they returned have
  // fired (or after `timeout` seconds, if positive), `internalDuring`, the "during" and the
  // "after" triggers, and `done`. When it had to wait, the rest runs from the loop.
  void fire(const std::string& eventType, std::function<void()> internalDuring,
            std::function<void()> done, double timeout = 0) {
    auto rest = [this, eventType, internalDuring = std::move(internalDuring),
                 done = std::move(done)] {
      if (internalDuring) internalDuring();
      runPhase(eventType, kDuring);
      runPhase(eventType, kAfter);
      if (done) done();
    };
    std::vector<Deferred<void>> pending = runPhase(eventType, kBefore);
    if (pending.empty()) {
      rest();
      return;
    }
    struct Wait {
      size_t left;
      bool finished = false;
      DelayedCall timer;
      std::function<void()> rest;
    };
    auto wait = std::make_shared<Wait>();
    wait->left = pending.size();
    wait->rest = std::move(rest);
    auto finish = [this, wait] {
      if (wait->finished) return;
      wait->finished = true;
      if (wait->timer.active()) wait->timer.cancel();
      timers.schedule(0, std::move(wait->rest));
    };
    for (auto& d : pending) {
      d.addBoth([wait, finish] {
        if (--wait->left == 0) finish();
      });
    }
    if (timeout > 0 && !wait->finished) {
      wait->timer = timers.schedule(timeout, [wait, finish, eventType, timeout] {
        log::warn("reactor", std::to_string(wait->left) + " Deferred(s) of 'before " + eventType +
                                 "' triggers still pending after " + std::to_string(timeout) +
                                 " s; going on without them.");
        finish();
      });
    }
  }

  void disconnectAll() {
    std::vector<std::shared_ptr<Selectable>> all;
    all.reserve(selectables.size());
    for (auto& [raw, owned] : selectables) all.push_back(owned);
    for (auto& s : all) {
      detail::guardCallback("reactor", "closing a port or connection at shutdown",
                            [&] { s->reactorShutdown(); });
    }
  }

  // Fails the threads blocked in blockingCallFromThread (the reactor will not complete their
  // calls) and joins the thread pool.
  void stopThreads() {
    std::vector<std::shared_ptr<detail::BlockingWaiter>> abandoned;
    {
      std::lock_guard<std::mutex> lock(waitersMutex);
      refusingWaiters = true;
      for (auto& [raw, weak] : waiters) {
        if (auto w = weak.lock()) abandoned.push_back(std::move(w));
      }
      waiters.clear();
    }
    for (auto& w : abandoned) w->abandon();
    if (pool) pool->stop();
  }

  ReactorBase& reactor;
  Options options;
  event_base* base = nullptr;
  State state = State::NotStarted;
  bool inLoop = false;
  std::atomic<std::thread::id> owner{std::this_thread::get_id()};

  TimerQueue timers;
  event* timerEvent = nullptr;
  bool timerArmed = false;
  double timerArmedFor = 0;

  std::mutex threadCallsMutex;
  std::deque<UniqueFunction<void()>> threadCalls;  // guarded by threadCallsMutex
  bool wakePending = false;                        // guarded by threadCallsMutex
  int wakeFd = -1;
  event* wakeEvent = nullptr;

  event* shutdownEvent = nullptr;
  event* reapEvent = nullptr;
  event* iterateTimeout = nullptr;
  std::vector<event*> signalEvents;

  std::vector<Trigger> triggers;
  TriggerId nextTriggerId = 1;

  std::unordered_map<Selectable*, std::shared_ptr<Selectable>> selectables;
  std::vector<std::shared_ptr<Selectable>> graveyard;
  std::unique_ptr<char[]> readBuffer{new char[kReadBufferSize]};
  std::unique_ptr<ThreadPool> pool;
  size_t poolSize = 10;
  std::mutex waitersMutex;
  std::unordered_map<const detail::BlockingWaiter*, std::weak_ptr<detail::BlockingWaiter>>
      waiters;                   // guarded by waitersMutex
  bool refusingWaiters = false;  // guarded by waitersMutex
  evdns_base* dns = nullptr;
  bool selectBackend = false;  // select(): descriptors of FD_SETSIZE and more cannot be watched
};

ReactorBase::ReactorBase() : ReactorBase(Options{}) {}

ReactorBase::ReactorBase(Options options) : impl_(std::make_unique<Impl>(*this, options)) {
  event_config* cfg = event_config_new();
  // One thread drives the base, and callFromThread wakes it through our own eventfd, so
  // libevent's internal locking is not needed. Precise timers keep callLater on time.
  event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_PRECISE_TIMER);
  if (!options.backend.empty()) {
    // libevent picks among the methods not avoided: avoid all but the one asked for.
    std::string known;
    bool found = false;
    for (const char** m = event_get_supported_methods(); m != nullptr && *m != nullptr; ++m) {
      known += (known.empty() ? "" : ", ") + std::string(*m);
      if (options.backend == *m) {
        found = true;
      } else {
        event_config_avoid_method(cfg, *m);
      }
    }
    if (!found) {
      event_config_free(cfg);
      throw std::invalid_argument("twist: no libevent backend '" + options.backend +
                                  "' here (there are: " + known + ")");
    }
  }
  impl_->base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  if (impl_->base == nullptr) {
    throw std::runtime_error(
        "twist: event_base_new failed" +
        (options.backend.empty() ? std::string() : " with backend " + options.backend));
  }
  impl_->selectBackend = backend() == "select";
  Impl* i = impl_.get();
  i->timerEvent = event_new(i->base, -1, 0, &Impl::onTimer, i);
  i->wakeFd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (i->wakeFd < 0) throw std::runtime_error(std::string("twist: eventfd: ") + strerror(errno));
  if (!canWatch(i->wakeFd)) {
    std::string what = "twist: " + cannotWatch(i->wakeFd) + ": use epoll or poll";
    ::close(i->wakeFd);
    i->wakeFd = -1;
    event_free(i->timerEvent);
    i->timerEvent = nullptr;
    event_base_free(i->base);
    i->base = nullptr;
    throw std::runtime_error(what);
  }
  i->wakeEvent = event_new(i->base, i->wakeFd, EV_READ | EV_PERSIST, &Impl::onWake, i);
  event_add(i->wakeEvent, nullptr);
  i->shutdownEvent = event_new(i->base, -1, 0, &Impl::onShutdown, i);
  i->reapEvent = event_new(i->base, -1, 0, &Impl::onReap, i);
  i->iterateTimeout = event_new(
      i->base, -1, 0, [](evutil_socket_t, short, void*) {}, nullptr);
}

ReactorBase::~ReactorBase() {
  Impl* i = impl_.get();
  if (i->inLoop) {
    log::error("reactor", "Reactor destroyed from inside its own loop; aborting.");
    std::abort();
  }
  i->stopThreads();  // first: workers may still queue callFromThread calls
  i->disconnectAll();
  i->graveyard.clear();
  for (event* e : {i->timerEvent, i->wakeEvent, i->shutdownEvent, i->reapEvent, i->iterateTimeout})
    event_free(e);
  if (i->dns != nullptr) {
    // A cancelled lookup finishes in a libevent deferred callback; with every connection and all
    // of our own events gone, one pass of the loop runs only such internal work.
    event_base_loop(i->base, EVLOOP_NONBLOCK);
    evdns_base_free(i->dns, 1);
    event_base_loop(i->base, EVLOOP_NONBLOCK);
  }
  ::close(i->wakeFd);
  {
    std::lock_guard<std::mutex> lock(i->threadCallsMutex);
    if (!i->threadCalls.empty()) {
      log::warn("reactor", std::to_string(i->threadCalls.size()) +
                               " function(s) queued with callFromThread after the reactor had "
                               "stopped were dropped.");
    }
  }
  impl_->triggers.clear();
  event_base* base = i->base;
  impl_.reset();  // the timer queue cancels what is pending; handles stay safe
  event_base_free(base);
}

std::string ReactorBase::backend() const { return event_base_get_method(impl_->base); }

bool ReactorBase::canWatch(int fd) const {
  return fd >= 0 && (fd < FD_SETSIZE || !impl_->selectBackend);
}

std::string ReactorBase::cannotWatch(int fd) const {
  return "the " + backend() + " backend cannot watch descriptor " + std::to_string(fd) +
         " (FD_SETSIZE " + std::to_string(FD_SETSIZE) + ")";
}

void ReactorBase::assertInReactorThread() const {
#ifndef NDEBUG
  if (std::this_thread::get_id() != impl_->owner.load()) {
    log::error("reactor", "Reactor method called off the reactor's thread (use callFromThread).");
    std::abort();
  }
#endif
}

void ReactorBase::run() {
  assertInReactorThread();
  Impl* i = impl_.get();
  if (i->state == State::Stopped) throw ReactorNotRestartable();
  if (i->state != State::NotStarted || i->inLoop) throw ReactorAlreadyRunning();
  i->owner.store(std::this_thread::get_id());
  if (i->options.installSignalHandlers) {
    for (int sig : {SIGINT, SIGTERM}) {
      event* e = evsignal_new(i->base, sig, &Impl::onSignal, i);
      event_add(e, nullptr);
      i->signalEvents.push_back(e);
    }
  }
  i->state = State::Running;
  i->inLoop = true;
  detail::guardCallback("reactor", "startup", [i] { i->fire("startup", nullptr, nullptr); });
  if (i->state != State::Stopped) event_base_loop(i->base, EVLOOP_NO_EXIT_ON_EMPTY);
  i->inLoop = false;
  i->state = State::Stopped;
  for (event* e : i->signalEvents) event_free(e);
  i->signalEvents.clear();
}

void ReactorBase::stop() {
  assertInReactorThread();
  if (impl_->state != State::Running) throw ReactorNotRunning();
  impl_->state = State::Stopping;
  event_active(impl_->shutdownEvent, 0, 0);
}

bool ReactorBase::running() const { return impl_->state == State::Running; }

void ReactorBase::iterate(double maxWaitSeconds) {
  assertInReactorThread();
  Impl* i = impl_.get();
  if (i->inLoop) throw ReactorAlreadyRunning();
  if (std::isnan(maxWaitSeconds)) throw std::invalid_argument("ReactorBase::iterate: NaN wait");
  i->inLoop = true;
  if (maxWaitSeconds <= 0) {
    event_base_loop(i->base, EVLOOP_NONBLOCK);
  } else {
    timeval tv = toTimeval(maxWaitSeconds);
    event_add(i->iterateTimeout, &tv);
    event_base_loop(i->base, EVLOOP_ONCE);
    event_del(i->iterateTimeout);
  }
  i->inLoop = false;
}

double ReactorBase::seconds() const { return impl_->now(); }

DelayedCall ReactorBase::callLater(double delaySeconds, UniqueFunction<void()> fn) {
  assertInReactorThread();
  return impl_->timers.schedule(delaySeconds, std::move(fn));
}

std::vector<DelayedCall> ReactorBase::getDelayedCalls() const {
  assertInReactorThread();
  return impl_->timers.pending();
}

void ReactorBase::callWhenRunning(UniqueFunction<void()> fn) {
  assertInReactorThread();
  if (impl_->state == State::Running) {
    fn();
  } else {
    addSystemEventTrigger("after", "startup", std::move(fn));
  }
}

void ReactorBase::callFromThread(UniqueFunction<void()> fn) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(impl_->threadCallsMutex);
    impl_->threadCalls.push_back(std::move(fn));
    wake = !impl_->wakePending;
    impl_->wakePending = true;
  }
  if (wake) {
    uint64_t one = 1;
    ssize_t n = ::write(impl_->wakeFd, &one, sizeof one);
    (void)n;  // EAGAIN means the counter is already non-zero: the loop will wake anyway
  }
}

void ReactorBase::callInThread(UniqueFunction<void()> fn) {
  getThreadPool().callInThread(std::move(fn));
}

ThreadPool& ReactorBase::getThreadPool() {
  assertInReactorThread();
  if (!impl_->pool) impl_->pool = std::make_unique<ThreadPool>(impl_->poolSize);
  return *impl_->pool;
}

void ReactorBase::suggestThreadPoolSize(size_t maxThreads) {
  assertInReactorThread();
  impl_->poolSize = maxThreads;
  if (impl_->pool) impl_->pool->adjustPoolsize(maxThreads);
}

bool ReactorBase::isInReactorThread() const {
  return std::this_thread::get_id() == impl_->owner.load();
}

ReactorBase::TriggerId ReactorBase::addTrigger(std::string_view phase, std::string_view eventType,
                                               UniqueFunction<Deferred<void>()> fn) {
  assertInReactorThread();
  int p = parsePhase(phase);
  TriggerId id = impl_->nextTriggerId++;
  impl_->triggers.push_back(
      Trigger{id, p, std::string(eventType),
              std::make_shared<UniqueFunction<Deferred<void>()>>(std::move(fn))});
  return id;
}

void ReactorBase::removeSystemEventTrigger(TriggerId id) {
  assertInReactorThread();
  auto& t = impl_->triggers;
  auto it = std::find_if(t.begin(), t.end(), [id](const Trigger& x) { return x.id == id; });
  if (it == t.end()) throw std::invalid_argument("no system event trigger with that id");
  t.erase(it);
}

void ReactorBase::fireSystemEvent(std::string_view eventType) {
  assertInReactorThread();
  impl_->fire(std::string(eventType), nullptr, nullptr);
}

bool ReactorBase::addBlockingWaiter(const std::shared_ptr<detail::BlockingWaiter>& waiter) {
  std::lock_guard<std::mutex> lock(impl_->waitersMutex);
  if (impl_->refusingWaiters) return false;
  impl_->waiters.emplace(waiter.get(), waiter);
  return true;
}

void ReactorBase::removeBlockingWaiter(const detail::BlockingWaiter* waiter) {
  std::lock_guard<std::mutex> lock(impl_->waitersMutex);
  impl_->waiters.erase(waiter);
}

event_base* ReactorBase::eventBase() const { return impl_->base; }

evdns_base* ReactorBase::dnsBase() {
  assertInReactorThread();
  if (impl_->dns == nullptr) {
    // DISABLE_WHEN_INACTIVE: an idle resolver keeps no event registered in the loop.
    impl_->dns = evdns_base_new(
        impl_->base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (impl_->dns == nullptr) throw std::runtime_error("twist: evdns_base_new failed");
  }
  return impl_->dns;
}

void ReactorBase::setNameservers(const std::vector<std::string>& servers) {
  assertInReactorThread();
  if (impl_->dns == nullptr) {
    impl_->dns = evdns_base_new(impl_->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (impl_->dns == nullptr) throw std::runtime_error("twist: evdns_base_new failed");
    evdns_base_load_hosts(impl_->dns, "/etc/hosts");
  } else {
    evdns_base_clear_nameservers_and_suspend(impl_->dns);
  }
  for (const auto& server : servers) {
    if (evdns_base_nameserver_ip_add(impl_->dns, server.c_str()) != 0) {
      evdns_base_resume(impl_->dns);
      throw std::invalid_argument("not a name server address: '" + server + "'");
    }
  }
  evdns_base_resume(impl_->dns);
}

void ReactorBase::setResolverOption(const std::string& option, const std::string& value) {
  if (evdns_base_set_option(dnsBase(), option.c_str(), value.c_str()) != 0) {
    throw std::invalid_argument("bad resolver option " + option + " " + value);
  }
}

void ReactorBase::addSelectable(std::shared_ptr<Selectable> s) {
  Selectable* raw = s.get();
  impl_->selectables.emplace(raw, std::move(s));
}

void ReactorBase::removeSelectable(Selectable* s) {
  auto it = impl_->selectables.find(s);
  if (it == impl_->selectables.end()) return;
  impl_->graveyard.push_back(std::move(it->second));
  impl_->selectables.erase(it);
  if (!impl_->inLoop) {
    impl_->graveyard.clear();
  } else {
    event_active(impl_->reapEvent, 0, 0);
  }
}

size_t ReactorBase::selectableCount() const { return impl_->selectables.size(); }

char* ReactorBase::readBuffer() const { return impl_->readBuffer.get(); }

}  // namespace twist
