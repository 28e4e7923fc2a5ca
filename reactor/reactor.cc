#include "twist/reactor/reactor.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <stdexcept>
#include <string>
#include <system_error>

#include "twist/transports/tcp_connector.h"
#include "twist/transports/tcp_port.h"

namespace twist {

std::shared_ptr<IListeningPort> Reactor::adoptStreamPort(int fd, std::shared_ptr<Factory> factory) {
  assertInReactorThread();
  return tcp::Port::adopt(*this, fd, std::move(factory));
}

void Reactor::adoptStreamConnection(int fd, std::shared_ptr<Factory> factory) {
  assertInReactorThread();
  if (!factory) throw std::invalid_argument("adoptStreamConnection needs a factory");
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int type = 0;
  socklen_t typeLen = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &typeLen) != 0 || type != SOCK_STREAM ||
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0 ||
      (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
    throw std::invalid_argument("adoptStreamConnection: descriptor " + std::to_string(fd) +
                                " is not a connected TCP socket");
  }
  int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) {
    throw std::system_error(errno, std::generic_category(), "adoptStreamConnection: dup");
  }
  ::fcntl(own, F_SETFL, ::fcntl(own, F_GETFL) | O_NONBLOCK);
  tcp::serveAccepted(*this, own, factory,
                     Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len));
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
