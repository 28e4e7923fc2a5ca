#include "twist/reactor/reactor.h"

#include <sys/socket.h>

#include <stdexcept>
#include <string>
#include <system_error>

#include "twist/transports/process.h"
#include "twist/transports/tcp_connector.h"
#include "twist/transports/tcp_port.h"
#include "twist/transports/udp.h"
#include "twist/transports/unix.h"

namespace twist {

std::shared_ptr<IListeningPort> Reactor::adoptStreamPort(int fd, std::shared_ptr<Factory> factory) {
  assertInReactorThread();
  return tcp::Port::adopt(*this, fd, std::move(factory));
}

void Reactor::adoptStreamConnection(int fd, std::shared_ptr<Factory> factory) {
  assertInReactorThread();
  if (!factory) throw std::invalid_argument("adoptStreamConnection needs a factory");
  sockaddr_storage peer{};
  socklen_t len = 0;
  int own = tcp::duplicateSocket(fd, false, &peer, &len);
  if (own < 0) {
    throw std::system_error(errno, std::generic_category(), "adoptStreamConnection: dup");
  }
  tcp::serveAccepted(*this, own, factory,
                     Address::fromSockaddr(reinterpret_cast<sockaddr*>(&peer), len));
}

std::shared_ptr<IListeningPort> Reactor::listenUNIX(std::string_view path,
                                                    std::shared_ptr<Factory> factory,
                                                    const ListenUNIXOptions& options) {
  assertInReactorThread();
  return unixsock::listen(*this, path, std::move(factory), options);
}

std::shared_ptr<IConnector> Reactor::connectUNIX(std::string_view path,
                                                 std::shared_ptr<ClientFactory> factory,
                                                 const ConnectUNIXOptions& options) {
  assertInReactorThread();
  return unixsock::connect(*this, path, std::move(factory), options);
}

std::shared_ptr<IProcessTransport> Reactor::spawnProcess(std::shared_ptr<ProcessProtocol> protocol,
                                                         const std::string& executable,
                                                         std::vector<std::string> args,
                                                         const SpawnOptions& options) {
  assertInReactorThread();
  return process::Process::spawn(*this, std::move(protocol), executable, std::move(args), options);
}

std::shared_ptr<IUDPTransport> Reactor::listenUDP(uint16_t port,
                                                  std::shared_ptr<DatagramProtocol> protocol,
                                                  const ListenUDPOptions& options) {
  assertInReactorThread();
  return udp::Port::listen(*this, port, std::move(protocol), options);
}

std::shared_ptr<IListeningPort> Reactor::doListenTCP(uint16_t port,
                                                     std::shared_ptr<Factory> factory,
                                                     const ListenTCPOptions& options) {
  assertInReactorThread();
  return tcp::Port::listen(*this, port, std::move(factory), options);
}

std::shared_ptr<IConnector> Reactor::doConnectTCP(std::string_view host, uint16_t port,
                                                  std::shared_ptr<ClientFactory> factory,
                                                  const ConnectTCPOptions& options) {
  assertInReactorThread();
  return tcp::Connector::start(*this, std::string(host), port, std::move(factory), options);
}

}  // namespace twist
