// For //transports:tcp only. The Reactor's listenTCP/connectTCP forward to these, which the
// TCP transport registers when it is linked in (it depends on the reactor, not the reverse).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace twist {
class ClientFactory;
class IConnector;
class IListeningPort;
class Reactor;
class ServerFactory;
}  // namespace twist

namespace twist::detail {

struct TcpHooks {
  std::function<std::shared_ptr<IListeningPort>(Reactor&, uint16_t, std::shared_ptr<ServerFactory>,
                                                int, std::string_view)>
      listen;
  std::function<std::shared_ptr<IConnector>(Reactor&, std::string_view, uint16_t,
                                            std::shared_ptr<ClientFactory>, double,
                                            std::optional<std::pair<std::string, uint16_t>>)>
      connect;
};

TcpHooks& tcpHooks();

}  // namespace twist::detail
