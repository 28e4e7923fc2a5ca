// An echo server: everything a client sends comes back. Run it, then: nc 127.0.0.1 8000
// Anywhere an endpoint string says: --listen unix:/tmp/echo.sock (then nc -U /tmp/echo.sock),
// --listen tcp6:8000, --listen ssl:8443:privateKey=key.pem:certKey=cert.pem,
// --listen systemd:domain=INET:index=0.
//
// Beyond the echo itself, what a server facing the internet needs: a connection that stays
// silent for --idle-timeout seconds is closed (TimeoutMixin), and TCP keepalive finds clients
// that vanished without a FIN or a reset (a crashed host, a dropped NAT entry), which would
// otherwise hold their socket forever. A client that sends without reading is not buffered
// without bound: the transport stops reading it while its replies wait (README, "Flow
// control").
//
// --threads N runs N reactors on N threads (0: one per core), spreading connections with
// SO_REUSEPORT or, with --balance handoff, from one acceptor; --backend epoll|poll|select picks
// libevent's method. --workers N forks N supervised worker processes on one socket instead
// (SIGHUP replaces them one at a time; a stopping worker finishes its connections first, for at
// most --drain-timeout seconds, default 10). Started by systemd with a socket (LISTEN_FDS), it
// serves that socket.
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "examples/echo.h"
#include "examples/flags.h"
#include "twist/reactor/errors.h"
#include "twist/reactor/prefork.h"
#include "twist/reactor/protocol.h"
#include "twist/reactor/reactor.h"
#include "twist/reactor/reactor_pool.h"
#include "twist/transports/endpoints.h"
#include "twist/transports/tcp_port.h"

using Echo = twist::examples::IdleEcho;

namespace {

// --threads N: N reactors on N threads (0: one per core), connections spread by SO_REUSEPORT,
// or with --balance handoff by one acceptor dealing them out in turn (README, "Every core").
int serveOnThreads(const twist::examples::ServerFlags& flags, const std::string& threads,
                   std::optional<int> inherited) {
  char* end = nullptr;
  long n = std::strtol(threads.c_str(), &end, 10);
  std::string balance = flags.get("--balance");
  if (threads.empty() || *end != '\0' || n < 0 || n > 1024 ||
      (!balance.empty() && balance != "reuseport" && balance != "handoff")) {
    std::cerr << "--threads N (0: one per core) [--balance reuseport|handoff]" << std::endl;
    return 2;
  }
  twist::ReactorPool::Options options;
  options.reactors = static_cast<size_t>(n);
  options.reactor.backend = flags.get("--backend");
  try {
    twist::ReactorPool pool(options);  // SIGINT and SIGTERM stop it
    double idle = flags.idleTimeout;
    auto make = [idle](twist::Reactor& r) {
      return twist::Factory::forProtocol<Echo>(static_cast<twist::IReactorTime*>(&r), idle);
    };
    auto bound =
        inherited ? pool.adoptStreamPort(*inherited, make)
                  : pool.listenTCP(flags.port, make,
                                   {.interface = flags.interface,
                                    .balance = balance == "handoff"
                                                   ? twist::ListenPoolOptions::Balance::Handoff
                                                   : twist::ListenPoolOptions::Balance::ReusePort});
    // Announced once run() handles SIGINT/SIGTERM (tests signal as soon as they read it).
    size_t n = pool.size();
    pool.callWhenRunning([bound, n, balance] {
      std::cout << "listening on " << bound.toString() << std::endl;
      std::cout << n << " reactors on " << n << " threads ("
                << (balance.empty() ? "reuseport" : balance) << ")" << std::endl;
    });
    pool.run();
  } catch (const std::exception& e) {  // CannotListenError, a bad backend
    std::cerr << e.what() << std::endl;
    return 1;
  }
  return 0;
}

// One reactor on `fd` (a socket systemd or the parent passed), or on a port of its own.
// A worker (`drain`) finishes its connections when it stops, for at most --drain-timeout s.
int serve(const twist::examples::ServerFlags& flags, std::optional<int> fd, bool announce,
          bool drain = false) {
  std::shared_ptr<twist::Reactor> reactor;
  std::shared_ptr<twist::IListeningPort> port;
  try {
    twist::ReactorBase::Options options{.backend = flags.get("--backend")};
    if (drain) {
      std::string t = flags.get("--drain-timeout");
      options.shutdownTimeout = t.empty() ? 10 : std::strtod(t.c_str(), nullptr);
    }
    reactor = std::make_shared<twist::Reactor>(options);  // SIGINT/SIGTERM stop it
    auto factory = twist::Factory::forProtocol<Echo>(
        static_cast<twist::IReactorTime*>(reactor.get()), flags.idleTimeout);
    port = fd ? reactor->adoptStreamPort(*fd, factory)
              : twist::endpoints::serverFromString(*reactor, flags.endpoint())->listen(factory);
  } catch (const std::exception& e) {  // CannotListenError, a bad backend or endpoint
    std::cerr << e.what() << std::endl;
    return 1;
  }
  if (drain) twist::prefork::drainOnShutdown(*reactor, port);
  if (announce) {
    twist::examples::announceWhenRunning(*reactor, port);
  }
  reactor->run();
  return 0;
}

// --workers N: bind here (or take systemd's socket), fork N supervised worker processes.
int serveOnWorkers(const twist::examples::ServerFlags& flags, std::optional<int> inherited) {
  char* end = nullptr;
  std::string workers = flags.get("--workers");
  long n = std::strtol(workers.c_str(), &end, 10);
  if (workers.empty() || *end != '\0' || n < 0 || n > 1024) {
    std::cerr << "--workers N (0: one per core)" << std::endl;
    return 2;
  }
  int fd;
  try {
    fd = inherited ? *inherited
                   : twist::prefork::bindTCP(flags.port, {.interface = flags.interface});
  } catch (const std::exception& e) {
    std::cerr << e.what() << std::endl;
    return 1;
  }
  return twist::prefork::run(
      [&](size_t) { return serve(flags, fd, false, true); },
      {.workers = static_cast<size_t>(n), .whenReady = [fd] {
         // Once the parent takes SIGTERM (tests signal as soon as they read this).
         std::cout << "listening on " << twist::prefork::localAddress(fd).toString() << std::endl;
       }});
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = twist::examples::parseServerFlags(
      argc, argv, {"--threads", "--balance", "--backend", "--workers", "--drain-timeout"});
  if (!flags.listen.empty() &&
      (!flags.get("--workers").empty() || !flags.get("--threads").empty())) {
    // Workers and reactor pools share one TCP socket (or systemd's); they take --port.
    std::cerr << "--listen is for one reactor; --threads and --workers take --port and --interface"
              << std::endl;
    return 2;
  }
  // Started by systemd with a socket (LISTEN_FDS): serve that one instead of binding.
  std::vector<int> inherited = twist::prefork::listenFds();
  std::optional<int> fd;
  if (!inherited.empty()) fd = inherited[0];
  if (!flags.get("--workers").empty()) return serveOnWorkers(flags, fd);
  if (!flags.get("--threads").empty()) return serveOnThreads(flags, flags.get("--threads"), fd);
  return serve(flags, fd, true);
}
