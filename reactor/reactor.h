// Public. Reactor: the reactor users run (Twisted's reactor): ReactorBase's loop, time, threads
// and triggers, and the transports, listenTCP and connectTCP (IReactorTCP). It depends on each
// transport directly: what it offers is there because it is linked, never registered at run
// time: TCP, UNIX sockets (IReactorUNIX), UDP (IReactorUDP), child processes
// (IReactorProcess); TLS is a layer over a stream (//transports:tls).
//
//   twist::Reactor reactor;
//   reactor.listenTCP(8000, twist::Factory::forProtocol<Echo>(), {.interface = "127.0.0.1"});
//   reactor.run();
#pragma once

#include <memory>
#include <string_view>

#include "twist/reactor/datagram.h"
#include "twist/reactor/interfaces.h"
#include "twist/reactor/process.h"
#include "twist/reactor/reactor_base.h"

namespace twist {

class Reactor : public ReactorBase,
                public IReactorTCP,
                public IReactorUNIX,
                public IReactorUDP,
                public IReactorProcess {
 public:
  using ReactorBase::ReactorBase;

  // IReactorUNIX: UNIX stream sockets (see interfaces.h).
  std::shared_ptr<IListeningPort> listenUNIX(std::string_view path,
                                             std::shared_ptr<Factory> factory,
                                             const ListenUNIXOptions& options = {}) override;
  std::shared_ptr<IConnector> connectUNIX(std::string_view path,
                                          std::shared_ptr<ClientFactory> factory,
                                          const ConnectUNIXOptions& options = {}) override;

  // IReactorProcess: child processes (see process.h).
  std::shared_ptr<IProcessTransport> spawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                  const std::string& executable,
                                                  std::vector<std::string> args,
                                                  const SpawnOptions& options = {}) override;

  // IReactorUDP: UDP ports (see datagram.h).
  std::shared_ptr<IUDPTransport> listenUDP(uint16_t port,
                                           std::shared_ptr<DatagramProtocol> protocol,
                                           const ListenUDPOptions& options = {}) override;

  // Twisted's IReactorSocket. Listens on `fd`, a TCP socket something else made, bound and set
  // listening (a parent process before fork(), systemd's socket activation): the reactor works
  // on a duplicate, the caller keeps fd and closes it when it likes. Throws
  // std::invalid_argument when fd is not a listening TCP socket.
  std::shared_ptr<IListeningPort> adoptStreamPort(int fd, std::shared_ptr<Factory> factory);
  // Serves `fd`, a connected TCP socket accepted elsewhere: the factory builds its protocol (its
  // startFactory is not called), which then runs as any accepted connection's. The reactor
  // works on a duplicate; the caller keeps fd. Throws std::invalid_argument when fd is not a
  // connected TCP socket.
  void adoptStreamConnection(int fd, std::shared_ptr<Factory> factory);

 protected:
  std::shared_ptr<IListeningPort> doListenTCP(uint16_t port, std::shared_ptr<Factory> factory,
                                              const ListenTCPOptions& options) override;
  std::shared_ptr<IConnector> doConnectTCP(std::string_view host, uint16_t port,
                                           std::shared_ptr<ClientFactory> factory,
                                           const ConnectTCPOptions& options) override;
};

}  // namespace twist
