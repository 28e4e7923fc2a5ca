// Public: //reactor:prefork. Many processes on one port (Tornado's bind + fork_processes +
// add_sockets, a pre-forking server): the parent binds the listening socket, forks workers that
// each run their own reactor on it (Reactor::adoptStreamPort), and supervises them.
//
//   int fd = twist::prefork::bindTCP(8000, {.interface = "127.0.0.1"});
//   return twist::prefork::run([fd](size_t) {
//     twist::Reactor reactor;  // in the worker: its own loop, SIGTERM stops it
//     auto port = reactor.adoptStreamPort(fd, twist::Factory::forProtocol<Echo>());
//     reactor.run();
//     return 0;
//   });
//
// The kernel spreads the connections among the workers blocked on the one socket. A worker
// that dies is restarted; SIGTERM or SIGINT to the parent stops every worker (SIGTERM, then
// SIGKILL after stopTimeout) and run() returns 0; SIGHUP replaces the workers one at a time (a
// new one starts before the old one is told to stop), so the port never stops accepting.
// Workers that call drainOnShutdown finish the connections they have when they stop.
// Fork before anything starts threads (a Reactor, a ReactorPool, a thread pool): only the
// forking thread lives on in a child.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "twist/reactor/interfaces.h"
#include "twist/reactor/reactor_base.h"

namespace twist::prefork {

// A listening TCP socket, as listenTCP would make (options.reusePort and the rest apply), for
// the workers to adopt. Throws CannotListenError.
int bindTCP(uint16_t port, const ListenTCPOptions& options = {});

// The address socket `fd` is bound to (one from bindTCP or listenFds): to say where it listens.
Address localAddress(int fd);

// systemd socket activation (sd_listen_fds): the descriptors systemd passed (3, 4, ...) when
// LISTEN_PID is this process and LISTEN_FDS says how many; otherwise none. The variables are
// removed from the environment (so children do not take them as theirs), and the descriptors
// made close-on-exec. Read on the first call; later calls return the same list.
std::vector<int> listenFds();

struct Options {
  // Worker processes; 0: one per core.
  size_t workers = 0;
  // A worker that died is started again after this many seconds (doubling, up to 30 s, while
  // workers keep dying within a second of starting: a crash loop does not spin).
  double restartDelay = 0.1;
  // How long stopping waits for a worker after SIGTERM before SIGKILL.
  double stopTimeout = 30;
  // Called in the parent once SIGTERM/SIGINT/SIGHUP are taken by run() (none can end the
  // process any more), before the workers start: the moment to say "ready".
  std::function<void()> whenReady{};
};

// In a worker (or any server): when `reactor` shuts down, stop accepting on `port` first, then
// let the connections it has end by themselves before the reactor closes what is left (at most
// the reactor's Options::shutdownTimeout). A SIGHUP's rolling restart then loses nothing: the
// old worker finishes what it accepted while the new one accepts.
void drainOnShutdown(ReactorBase& reactor, std::shared_ptr<IListeningPort> port);

// Forks the workers; each runs worker(index) (0 <= index < workers) and exits with what it
// returns (1 if it throws). The parent supervises until SIGTERM/SIGINT and returns 0 once every
// worker has stopped; it never returns in a worker. Throws std::system_error if it cannot fork
// the first time.
int run(const std::function<int(size_t worker)>& worker, const Options& options = {});

}  // namespace twist::prefork
