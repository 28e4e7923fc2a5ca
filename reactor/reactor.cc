#include "twist/reactor/reactor.h"

#include "twist/transports/tcp_connector.h"
#include "twist/transports/tcp_port.h"

namespace twist {

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
