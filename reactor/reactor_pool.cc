#include "twist/reactor/reactor_pool.h"

#include <unistd.h>

#include <future>
#include <set>
#include <stdexcept>
#include <string>

#include "twist/transports/tcp_port.h"
#include "twist/transports/unix.h"

namespace twist {

namespace {

// The same ThreadSafeFactory behind each reactor's port: the ports count their starts and
// stops on this one (on their own threads), never on the shared one.
class SharedFactoryProxy : public ServerFactory {
 public:
  explicit SharedFactoryProxy(std::shared_ptr<Factory> target) : target_(std::move(target)) {}
  std::shared_ptr<Protocol> buildProtocol(const Address& addr) override {
    auto p = target_->buildProtocol(addr);
    if (p && p->factory() == nullptr) p->setFactory(target_);
    return p;
  }

 private:
  std::shared_ptr<Factory> target_;
};

// An accepted socket on its way to another reactor: closed if it never gets there.
struct OwnedFd {
  int fd;
  explicit OwnedFd(int f) : fd(f) {}
  ~OwnedFd() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

}  // namespace

ReactorPool::ReactorPool(Options options) : options_(std::move(options)) {
  size_t n = options_.reactors != 0 ? options_.reactors : std::thread::hardware_concurrency();
  if (n == 0) n = 1;
  reactors_.assign(n, nullptr);
  ReactorBase::Options ro = options_.reactor;
  ro.installSignalHandlers = false;  // the pool's run() has them
  for (size_t i = 0; i < n; ++i) {
    std::promise<Reactor*> made;
    auto future = made.get_future();
    // Each reactor is made, run and destroyed on its own thread (a reactor belongs to the
    // thread that made it).
    threads_.emplace_back([this, ro, &made] {
      std::unique_ptr<Reactor> r;
      try {
        r = std::make_unique<Reactor>(ro);
      } catch (...) {
        made.set_exception(std::current_exception());
        return;
      }
      made.set_value(r.get());
      r->run();
      // Other reactors may still hand connections to this one while they shut down: it stays
      // (refusing them) until every reactor has stopped.
      std::unique_lock<std::mutex> lock(mutex_);
      ++finished_;
      changed_.notify_all();
      changed_.wait(lock, [this] { return release_; });
    });
    try {
      reactors_[i] = future.get();
    } catch (...) {
      threads_.back().join();
      threads_.pop_back();
      reactors_.resize(i);
      stopAndJoin();
      throw;
    }
  }
}

ReactorPool::~ReactorPool() { stopAndJoin(); }

void ReactorPool::checkNotOnAPoolThread(const char* what) const {
  for (Reactor* r : reactors_) {
    if (r != nullptr && r->isInReactorThread()) {
      throw std::logic_error(std::string("ReactorPool::") + what +
                             " from one of the pool's reactor threads would wait for itself");
    }
  }
}

std::future<void> ReactorPool::post(size_t i, std::function<void(Reactor&)> fn) {
  Reactor* r = reactors_.at(i);
  if (r == nullptr) throw std::logic_error("ReactorPool: the pool has stopped");
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> result = done->get_future();
  r->callFromThread([r, fn = std::move(fn), done] {
    try {
      fn(*r);
      done->set_value();
    } catch (...) {
      done->set_exception(std::current_exception());
    }
  });
  return result;
}

void ReactorPool::onOne(size_t i, const std::function<void(Reactor&)>& fn) { post(i, fn).get(); }

void ReactorPool::onAll(const std::function<void(size_t, Reactor&)>& fn) {
  // All or none: what is queued refers to fn, which must outlive it.
  for (Reactor* r : reactors_) {
    if (r == nullptr) throw std::logic_error("ReactorPool: the pool has stopped");
  }
  std::vector<std::future<void>> done;
  for (size_t i = 0; i < reactors_.size(); ++i) {
    done.push_back(post(i, [&fn, i](Reactor& r) { fn(i, r); }));
  }
  std::exception_ptr first;
  for (auto& d : done) {
    try {
      d.get();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

void ReactorPool::onEach(const std::function<void(Reactor&)>& fn) {
  checkNotOnAPoolThread("onEach");
  onAll([&fn](size_t, Reactor& r) { fn(r); });
}

Address ReactorPool::adoptStreamPort(
    int fd, std::function<std::shared_ptr<Factory>(Reactor&)> makeFactory) {
  checkNotOnAPoolThread("adoptStreamPort");
  std::vector<std::shared_ptr<Factory>> factories = makeFactories(makeFactory, false);
  const size_t n = reactors_.size();
  std::vector<std::shared_ptr<IListeningPort>> ports(n);
  try {
    for (size_t i = 0; i < n; ++i) {
      onOne(i, [&](Reactor& r) { ports[i] = r.adoptStreamPort(fd, factories[i]); });
    }
  } catch (...) {
    for (size_t i = 0; i < n; ++i) {
      if (ports[i]) onOne(i, [&](Reactor&) { (void)ports[i]->stopListening(); });
    }
    throw;
  }
  return ports[0]->getHost();
}

std::vector<std::shared_ptr<Factory>> ReactorPool::makeFactories(
    const std::function<std::shared_ptr<Factory>(Reactor&)>& makeFactory, bool allowShared) {
  std::vector<std::shared_ptr<Factory>> factories(reactors_.size());
  onAll([&](size_t i, Reactor& r) { factories[i] = makeFactory(r); });  // each its own slot
  std::set<Factory*> seen;
  for (auto& f : factories) {
    if (!f) throw std::logic_error("ReactorPool: the factory maker returned nullptr");
    if (!seen.insert(f.get()).second) {
      // One factory for several reactors: only a thread-safe one, and then for all of them.
      if (!allowShared || !std::dynamic_pointer_cast<ThreadSafeFactory>(f) || seen.size() != 1) {
        throw std::logic_error(
            "ReactorPool: the factory maker returned the same factory for two reactors; return "
            "a new one per reactor, or share a ThreadSafeFactory");
      }
    }
  }
  return factories;
}

Address ReactorPool::listenTCP(uint16_t port,
                               std::function<std::shared_ptr<Factory>(Reactor&)> makeFactory,
                               const ListenPoolOptions& options) {
  checkNotOnAPoolThread("listenTCP");
  std::vector<std::shared_ptr<Factory>> factories = makeFactories(makeFactory, true);
  if (factories.size() > 1 && factories[0] == factories[1]) {  // one ThreadSafeFactory for all
    return listenTCP(port, std::dynamic_pointer_cast<ThreadSafeFactory>(factories[0]), options);
  }
  return listenEach(port, std::move(factories), options);
}

Address ReactorPool::listenTCP(uint16_t port, std::shared_ptr<ThreadSafeFactory> factory,
                               const ListenPoolOptions& options) {
  checkNotOnAPoolThread("listenTCP");
  if (!factory) throw std::invalid_argument("ReactorPool::listenTCP needs a factory");
  factory->doStart();
  std::vector<std::shared_ptr<Factory>> proxies;
  for (size_t i = 0; i < reactors_.size(); ++i) {
    proxies.push_back(std::make_shared<SharedFactoryProxy>(factory));
  }
  try {
    Address bound = listenEach(port, std::move(proxies), options);
    std::lock_guard<std::mutex> lock(mutex_);
    sharedFactories_.push_back(factory);  // stopped once the reactors have
    return bound;
  } catch (...) {
    factory->doStop();
    throw;
  }
}

Address ReactorPool::listenEach(uint16_t port, std::vector<std::shared_ptr<Factory>> factories,
                                const ListenPoolOptions& options) {
  ListenTCPOptions tcp{.interface = options.interface,
                       .backlog = options.backlog,
                       .reusePort = options.balance == ListenPoolOptions::Balance::ReusePort,
                       .ipv6Only = options.ipv6Only};
  if (tcp.reusePort) {
    return listenOnEach(
        port, [&](size_t i, Reactor& r, uint16_t p) { return r.listenTCP(p, factories[i], tcp); });
  }
  return listenHandoff(std::move(factories), [&](Reactor& r, std::shared_ptr<Factory> f) {
    return tcp::Port::listen(r, port, std::move(f), tcp);
  });
}

Address ReactorPool::listenUDP(
    uint16_t port, std::function<std::shared_ptr<DatagramProtocol>(Reactor&)> makeProtocol,
    ListenUDPOptions options) {
  checkNotOnAPoolThread("listenUDP");
  const size_t n = reactors_.size();
  std::vector<std::shared_ptr<DatagramProtocol>> protocols(n);
  onAll([&](size_t i, Reactor& r) { protocols[i] = makeProtocol(r); });
  std::set<DatagramProtocol*> seen;
  for (auto& p : protocols) {
    if (!p) throw std::logic_error("ReactorPool::listenUDP: the maker returned nullptr");
    if (!seen.insert(p.get()).second) {
      throw std::logic_error(
          "ReactorPool::listenUDP: the maker returned the same protocol for two reactors");
    }
  }
  options.listenMultiple = true;  // SO_REUSEPORT: the kernel spreads senders over the sockets
  return listenOnEach(port, [&](size_t i, Reactor& r, uint16_t p) {
    return r.listenUDP(p, protocols[i], options);
  });
}

Address ReactorPool::listenOnEach(
    uint16_t port,
    const std::function<std::shared_ptr<IListeningPort>(size_t, Reactor&, uint16_t)>& listen) {
  const size_t n = reactors_.size();
  std::vector<std::shared_ptr<IListeningPort>> ports(n);
  Address bound;
  try {
    // Reactor 0 first: with port 0 it learns the port the others then share.
    onOne(0, [&](Reactor& r) {
      ports[0] = listen(0, r, port);
      bound = ports[0]->getHost();
    });
    for (size_t i = 1; i < n; ++i) {
      onOne(i, [&](Reactor& r) { ports[i] = listen(i, r, bound.port()); });
    }
  } catch (...) {
    for (size_t i = 0; i < n; ++i) {
      if (ports[i]) onOne(i, [&](Reactor&) { (void)ports[i]->stopListening(); });
    }
    throw;
  }
  return bound;
}

Address ReactorPool::listenUNIX(std::string_view path,
                                std::function<std::shared_ptr<Factory>(Reactor&)> makeFactory,
                                const ListenUNIXOptions& options) {
  checkNotOnAPoolThread("listenUNIX");
  std::string p(path);
  return listenHandoff(makeFactories(makeFactory, false),
                       [&](Reactor& r, std::shared_ptr<Factory> f) {
                         return unixsock::listen(r, p, std::move(f), options);
                       });
}

Address ReactorPool::listenHandoff(
    std::vector<std::shared_ptr<Factory>> factories,
    const std::function<std::shared_ptr<tcp::Port>(Reactor&, std::shared_ptr<Factory>)>& listen) {
  // The others start their factories (and stop them when they shut down); reactor 0 listens
  // and deals the accepted sockets out.
  const size_t n = reactors_.size();
  std::vector<ReactorBase::TriggerId> triggers(n);
  size_t started = 1;
  auto undo = [&] {
    for (size_t i = 1; i < started; ++i) {
      onOne(i, [&](Reactor& r) {
        r.removeSystemEventTrigger(triggers[i]);
        factories[i]->doStop();
      });
    }
  };
  try {
    for (; started < n; ++started) {
      size_t i = started;
      onOne(i, [&](Reactor& r) {
        factories[i]->doStart();
        triggers[i] =
            r.addSystemEventTrigger("during", "shutdown", [f = factories[i]] { f->doStop(); });
      });
    }
  } catch (...) {
    undo();
    throw;
  }
  std::vector<Reactor*> targets(reactors_);
  Address bound;
  try {
    onOne(0, [&](Reactor& r) {
      auto p = listen(r, factories[0]);
      bound = p->getHost();
      p->setHandoff([this, targets, factories, bound](int fd, const Address& peer) {
        size_t i = nextHandoff_.fetch_add(1, std::memory_order_relaxed) % targets.size();
        if (i == 0) {
          tcp::serveAccepted(*targets[0], fd, factories[0], peer, bound);
          return;
        }
        auto owned = std::make_shared<OwnedFd>(fd);
        Reactor* target = targets[i];
        target->callFromThread([target, owned, f = factories[i], peer, bound] {
          if (!target->running()) return;  // shutting down: the socket is closed
          tcp::serveAccepted(*target, owned->release(), f, peer, bound);
        });
      });
    });
  } catch (...) {
    undo();
    throw;
  }
  return bound;
}

void ReactorPool::callWhenRunning(std::function<void()> fn) {
  checkNotOnAPoolThread("callWhenRunning");
  whenRunning_.push_back(std::move(fn));
}

void ReactorPool::run() {
  checkNotOnAPoolThread("run");
  {
    Reactor control(options_.reactor);  // this thread's: SIGINT/SIGTERM (if asked) and stop()
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!stopRequested_ && !joined_) control_ = &control;
    }
    if (control_ != nullptr) {
      for (auto& fn : whenRunning_) control.callWhenRunning(std::move(fn));
      whenRunning_.clear();
      control.run();
      std::lock_guard<std::mutex> lock(mutex_);
      control_ = nullptr;
    }
  }
  stopAndJoin();
}

void ReactorPool::stop() {
  std::lock_guard<std::mutex> lock(mutex_);
  stopRequested_ = true;
  if (control_ != nullptr) {
    Reactor* c = control_;
    c->callFromThread([c] {
      if (c->running()) c->stop();
    });
  }
}

void ReactorPool::stopAndJoin() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (joined_) return;
    joined_ = true;
    stopRequested_ = true;
  }
  size_t running = 0;
  for (Reactor* r : reactors_) {
    if (r == nullptr) continue;
    ++running;
    r->callFromThread([r] {
      if (r->running()) r->stop();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return finished_ >= running; });
    release_ = true;
    changed_.notify_all();
  }
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  for (auto& r : reactors_) r = nullptr;  // gone with their threads
  for (auto& f : sharedFactories_) f->doStop();
  sharedFactories_.clear();
}

}  // namespace twist
