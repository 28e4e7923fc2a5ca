// Public: //reactor:pool. ReactorPool: N reactors on N threads, for a server that uses every
// core with the same Protocol code (muduo's EventLoopThreadPool, Tornado's many processes, in
// one process). Each connection lives on one reactor, on one thread, for its whole life, so
// protocols need no locks.
//
//   twist::ReactorPool pool;  // one reactor per core
//   pool.listenTCP(8000, [](twist::Reactor&) { return twist::Factory::forProtocol<Echo>(); },
//                  {.interface = "127.0.0.1"});
//   pool.run();  // until SIGINT/SIGTERM or pool.stop()
//
// Two ways to spread connections (ListenPoolOptions::balance):
//   ReusePort  every reactor listens on the port with SO_REUSEPORT and the kernel spreads new
//              connections by a hash of their addresses. No hand-off between threads, and
//              accepting scales with the reactors: pick it for many short connections. The
//              spread is by hash, so a few long connections can land unevenly, and connections
//              still in a closing listener's queue are reset when the pool stops.
//   Handoff    reactor 0 accepts every connection and hands it to the next reactor in turn
//              (round robin, one callFromThread each). Exactly even, and one listening socket:
//              pick it for few, long, busy connections. Accepting is bounded by one thread.
//
// Factories: the pool never shares one between threads behind your back. listenTCP takes a
// function that makes the factory of one reactor; it runs on that reactor's thread, once per
// reactor, and a factory it returns twice is refused, unless it is a ThreadSafeFactory (whose
// buildProtocol you made safe to call from several threads at once).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "twist/reactor/interfaces.h"
#include "twist/reactor/reactor.h"

namespace twist::tcp {
class Port;
}  // namespace twist::tcp

namespace twist {

// A factory whose buildProtocol (and whatever it shares) is safe from several threads at once:
// one instance may serve every reactor of a pool. startFactory and stopFactory run once, on
// the thread that calls ReactorPool::listenTCP, and when the pool has stopped.
class ThreadSafeFactory : public ServerFactory {
 public:
  // A ThreadSafeFactory whose buildProtocol makes P(args...) (args copied for each protocol,
  // only read meanwhile).
  template <class P, class... Args>
  static std::shared_ptr<ThreadSafeFactory> forProtocol(Args... args) {
    return std::make_shared<detail::ProtocolFactory<P, ThreadSafeFactory, Args...>>(
        std::move(args)...);
  }
};

struct ListenPoolOptions {
  enum class Balance { ReusePort, Handoff };
  std::string interface {};  // as ListenTCPOptions
  int backlog = 0;
  bool ipv6Only = false;
  Balance balance = Balance::ReusePort;
};

class ReactorPool {
 public:
  struct Options {
    // How many reactors (threads); 0: one per core (std::thread::hardware_concurrency).
    size_t reactors = 0;
    // For each reactor. installSignalHandlers is for the pool (run() handles SIGINT and
    // SIGTERM); the reactors never install handlers of their own.
    ReactorBase::Options reactor{};
  };

  // Starts the threads; each makes its reactor and runs it (serving as soon as something
  // listens). Throws what a reactor's constructor throws (a bad backend).
  explicit ReactorPool(Options options);
  ReactorPool() : ReactorPool(Options{}) {}
  // Stops every reactor (gracefully, as stop() does) and joins the threads.
  ~ReactorPool();
  ReactorPool(const ReactorPool&) = delete;
  ReactorPool& operator=(const ReactorPool&) = delete;

  size_t size() const { return reactors_.size(); }
  // Reactor i: use it on its own thread only (inside its callbacks, or through callFromThread).
  Reactor& reactor(size_t i) { return *reactors_.at(i); }
  // Runs fn on reactor i's thread (its callFromThread). Thread safe.
  void callFromThread(size_t i, UniqueFunction<void()> fn) {
    reactor(i).callFromThread(std::move(fn));
  }
  // Runs fn(reactor) on every reactor's thread and waits until each has returned; rethrows the
  // first exception. Not from a reactor thread of this pool (it would wait for itself).
  void onEach(const std::function<void(Reactor&)>& fn);

  // Listens on `port` (0: any free one, the same for every reactor) as `options.balance` says,
  // with makeFactory(reactor) the factory of each reactor (called on that reactor's thread).
  // Returns the address bound. Throws CannotListenError (nothing stays listening then),
  // std::logic_error when makeFactory returns one factory for two reactors (unless it is a
  // ThreadSafeFactory) or nullptr. Not from a reactor thread of this pool.
  Address listenTCP(uint16_t port, std::function<std::shared_ptr<Factory>(Reactor&)> makeFactory,
                    const ListenPoolOptions& options = {});
  // The same ThreadSafeFactory on every reactor.
  Address listenTCP(uint16_t port, std::shared_ptr<ThreadSafeFactory> factory,
                    const ListenPoolOptions& options = {});

  // Binds a UDP port on every reactor (SO_REUSEPORT; 0: any free one, the same for all), each
  // with its own protocol from makeProtocol(reactor), called on that reactor's thread (the same
  // protocol for two reactors is refused: std::logic_error). The kernel spreads senders over
  // the sockets by a hash of their addresses: one sender's datagrams all reach one reactor.
  // Returns the address bound. Throws CannotListenError (nothing stays bound then).
  Address listenUDP(uint16_t port,
                    std::function<std::shared_ptr<DatagramProtocol>(Reactor&)> makeProtocol,
                    ListenUDPOptions options = {});

  // Listens on the UNIX socket `path` (see Reactor::listenUNIX): reactor 0 accepts and deals
  // the connections out in turn (Balance::Handoff; SO_REUSEPORT does not apply to UNIX
  // sockets). makeFactory as for listenTCP (one factory per reactor). Returns the address.
  Address listenUNIX(std::string_view path,
                     std::function<std::shared_ptr<Factory>(Reactor&)> makeFactory,
                     const ListenUNIXOptions& options = {});

  // Serves `fd`, a listening TCP socket made elsewhere (systemd's, a parent's), on every
  // reactor: each adopts a duplicate and they all accept from its one queue (the kernel wakes
  // one or more of them per connection). The caller keeps fd. makeFactory as for listenTCP.
  // Throws std::invalid_argument when fd is not a listening TCP socket.
  Address adoptStreamPort(int fd, std::function<std::shared_ptr<Factory>(Reactor&)> makeFactory);

  // Blocks until stop() (or SIGINT/SIGTERM, unless Options::reactor.installSignalHandlers is
  // off), then stops every reactor and joins the threads. Returns at once if stop() came first.
  void run();
  // Runs fn on run()'s thread once run() is under way and handles SIGINT/SIGTERM: the moment to
  // say "ready" (a signal that came before would have found no handler). Before run() only.
  void callWhenRunning(std::function<void()> fn);
  // Asks run() to return, after every reactor has shut down gracefully. Thread safe, idempotent,
  // also from inside a reactor's callbacks.
  void stop();

 private:
  void stopAndJoin();
  // Queues fn on reactor i's thread; the future has its outcome. Throws std::logic_error once
  // the pool has stopped (nothing is queued then).
  std::future<void> post(size_t i, std::function<void(Reactor&)> fn);
  // Runs fn on reactor i's thread and waits for it; rethrows its exception.
  void onOne(size_t i, const std::function<void(Reactor&)>& fn);
  // Runs fn(i, reactor i) on every reactor's thread and waits for all; rethrows the first
  // exception.
  void onAll(const std::function<void(size_t, Reactor&)>& fn);
  void checkNotOnAPoolThread(const char* what) const;
  Address listenEach(uint16_t port, std::vector<std::shared_ptr<Factory>> factories,
                     const ListenPoolOptions& options);
  // Each reactor's factory, made on its thread; one for all only if allowShared and it is a
  // ThreadSafeFactory (else std::logic_error).
  std::vector<std::shared_ptr<Factory>> makeFactories(
      const std::function<std::shared_ptr<Factory>(Reactor&)>& makeFactory, bool allowShared);
  // SO_REUSEPORT on every reactor: listen(i, reactor i, port) on each, reactor 0 first (with port
  // 0 it learns the port the others then share); if one fails, those already listening stop.
  Address listenOnEach(
      uint16_t port,
      const std::function<std::shared_ptr<IListeningPort>(size_t, Reactor&, uint16_t)>& listen);
  // Reactor 0 listens with `listen` (its factory) and deals each accepted socket to the next
  // reactor in turn; the others' factories are started here.
  Address listenHandoff(
      std::vector<std::shared_ptr<Factory>> factories,
      const std::function<std::shared_ptr<tcp::Port>(Reactor&, std::shared_ptr<Factory>)>& listen);

  Options options_;
  std::vector<Reactor*> reactors_;
  std::vector<std::thread> threads_;
  std::vector<std::shared_ptr<Factory>> sharedFactories_;  // started here, stopped at the end
  std::mutex mutex_;                                       // guards what follows
  Reactor* control_ = nullptr;                      // run()'s reactor while it runs (signals, stop)
  std::vector<std::function<void()>> whenRunning_;  // for run()'s reactor
  bool stopRequested_ = false;
  bool joined_ = false;
  std::condition_variable changed_;
  size_t finished_ = 0;   // reactors whose run() has returned
  bool release_ = false;  // they may be destroyed now
  std::atomic<size_t> nextHandoff_{0};
};

}  // namespace twist
